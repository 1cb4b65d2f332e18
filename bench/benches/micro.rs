//! Micro-benchmarks of the per-request pieces, so a regression in one shows on its
//! own: reading and validating the reply address from the headers (each convention,
//! plus the reply-topic policy), and the codecs at both payload sizes.
//!
//! Run: `cargo bench -p responder-bench --bench micro`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kafka_responder::address::{AddressReader, RequestHeaders};
use kafka_responder::{Bincode, Codec, HeaderConvention, Json, ReplyTopicPolicy};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use responder_bench::contract::{Payload, Query, Score, score};

fn headers(convention: &HeaderConvention) -> OwnedHeaders {
    let mut h = traceparent().insert(Header {
        key: convention.reply_topic_header(),
        value: Some("WALLET-KYC-RESPONSE"),
    });
    if let (Some((key, _)), Some(bytes)) = (
        convention.reply_partition_header(),
        convention.encode_partition(3),
    ) {
        h = h.insert(Header {
            key,
            value: Some(&bytes[..]),
        });
    }
    h.insert(Header {
        key: convention.correlation_id_header(),
        value: Some(&[7u8; 16][..]),
    })
}

/// Every convention; NestJS shares Spring's header names (with an ASCII partition),
/// so a reader takes one of the two, never both.
fn conventions() -> [HeaderConvention; 4] {
    [
        HeaderConvention::spring(),
        HeaderConvention::smallrye(),
        HeaderConvention::nestjs(),
        HeaderConvention::plain(),
    ]
}

fn traceparent() -> OwnedHeaders {
    OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    })
}

/// The headers read from the record once, as the runtime does (included in the cost).
fn index(h: &OwnedHeaders) -> RequestHeaders<'_> {
    h.iter().map(|h| (h.key, h.value)).collect()
}

fn address(c: &mut Criterion) {
    let policy: ReplyTopicPolicy = "WALLET-KYC-RESPONSE*".parse().expect("a valid policy");
    let mut group = c.benchmark_group("reply_address");
    // Each convention read by a reader of that convention alone.
    for convention in conventions() {
        let reader = AddressReader::new([convention.clone()]);
        let h = headers(&convention);
        group.bench_function(convention.name().to_owned(), |b| {
            b.iter(|| {
                let address = reader.read(&index(black_box(&h))).expect("answerable");
                black_box(policy.allows(&address.topic))
            })
        });
    }
    // The KYC service's reader (spring, smallrye, plain): SmallRye matches second.
    let kyc = AddressReader::new([
        HeaderConvention::spring(),
        HeaderConvention::smallrye(),
        HeaderConvention::plain(),
    ]);
    let h = headers(&HeaderConvention::smallrye());
    group.bench_function("kyc_reader_smallrye", |b| {
        b.iter(|| {
            let address = kyc.read(&index(black_box(&h))).expect("answerable");
            black_box(policy.allows(&address.topic))
        })
    });
    let none = traceparent();
    group.bench_function("kyc_reader_no_address", |b| {
        b.iter(|| black_box(kyc.read(&index(black_box(&none))).is_err()))
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("codecs");
    for payload in [Payload::Small, Payload::Large] {
        let json = Json;
        let bincode = Bincode;
        let (_, query) = payload.request(42);
        let reply = Score {
            score: score(&query.wallet_id),
            wallet_id: query.wallet_id.clone(),
            documents: query.documents.clone(),
        };
        let json_bytes = payload.body(42);
        let bincode_bytes = bincode::serialize(&query).expect("serializes");
        let label = payload.label().replace(' ', "");
        group.bench_function(format!("json_decode_{label}"), |b| {
            b.iter(|| {
                black_box(
                    Codec::<Query, Score>::decode(&json, black_box(&json_bytes)).expect("decodes"),
                )
            })
        });
        group.bench_function(format!("json_encode_{label}"), |b| {
            b.iter_batched(
                || reply.clone(),
                |r| black_box(Codec::<Query, Score>::encode(&json, r).expect("encodes")),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("bincode_decode_{label}"), |b| {
            b.iter(|| {
                black_box(
                    Codec::<Query, Score>::decode(&bincode, black_box(&bincode_bytes))
                        .expect("decodes"),
                )
            })
        });
        group.bench_function(format!("bincode_encode_{label}"), |b| {
            b.iter_batched(
                || reply.clone(),
                |r| black_box(Codec::<Query, Score>::encode(&bincode, r).expect("encodes")),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, address, codecs);
criterion_main!(benches);
