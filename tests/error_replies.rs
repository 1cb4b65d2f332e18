//! Failures become error replies at the request's address: handler errors, payloads
//! that do not decode, and panics. The responder keeps serving.

mod common;

use common::{Fixture, ProbeLog, ProbeReq};
use kafka_responder::testkit::RunningResponder;
use kafka_responder::{
    Bincode, ERROR_CODE_HEADER, ERROR_MESSAGE_HEADER, ErrorReply, Handler, HeaderConvention, Raw,
    RequestContext, codes,
};
use serde::{Deserialize, Serialize};

#[tokio::test]
async fn handler_errors_decode_failures_and_panics_become_error_replies() {
    let fx = Fixture::new(1, 1).await;
    let running = fx.serve(ProbeLog::new(), |b| b);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;

    let failing = ProbeReq {
        fail: Some("wallet is frozen".into()),
        ..ProbeReq::id(1)
    };
    let reply = requester
        .request(&fx.requests, Some(b"k"), &failing.bytes())
        .await
        .expect("reply");
    assert_eq!(reply.error_code(), Some("probe_failed"));
    assert_eq!(reply.error_message(), Some("wallet is frozen"));
    assert_eq!(reply.payload, None, "error replies carry no payload");
    assert_eq!(reply.key.as_deref(), Some(&b"k"[..]));

    let reply = requester
        .request(&fx.requests, None, b"{\"id\": \"not a number\"}")
        .await
        .expect("reply");
    assert_eq!(reply.error_code(), Some(codes::BAD_REQUEST));
    assert!(reply.error_message().is_some_and(|m| m.contains("json")));

    let reply = requester
        .request(&fx.requests, None, b"")
        .await
        .expect("reply to an empty payload");
    assert_eq!(reply.error_code(), Some(codes::BAD_REQUEST));

    let panicking = ProbeReq {
        panic: true,
        ..ProbeReq::id(2)
    };
    let reply = requester
        .request(&fx.requests, None, &panicking.bytes())
        .await
        .expect("reply to a panicking handler");
    assert_eq!(reply.error_code(), Some(codes::INTERNAL_ERROR));
    assert!(
        reply
            .error_message()
            .is_some_and(|m| m.contains("probe asked to panic"))
    );

    // Still serving.
    let reply = requester
        .request(&fx.requests, None, &ProbeReq::id(3).bytes())
        .await
        .expect("reply after the panic");
    assert_eq!(reply.error_code(), None);

    // Counters move when the broker acknowledges a reply, which may be after the
    // requester saw it: read them once the responder has drained.
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.replied, m.error_replies, m.panics), (1, 4, 1));
}

#[tokio::test]
async fn conventions_with_an_error_header_get_it_too() {
    let fx = Fixture::new(1, 1).await;
    let running = fx.serve(ProbeLog::new(), |b| {
        b.reply_checks(|c| {
            c.header_conventions([HeaderConvention::nestjs(), HeaderConvention::smallrye()])
        })
    });
    let failing = ProbeReq {
        fail: Some("no".into()),
        ..ProbeReq::id(1)
    };
    for (convention, header, value) in [
        (HeaderConvention::smallrye(), "REPLY_ERROR", &b"no"[..]),
        // NestJS hands this value to the requester's code as the error object.
        (
            HeaderConvention::nestjs(),
            "kafka_nest-err",
            &br#"{"code":"probe_failed","message":"no","status":"error"}"#[..],
        ),
    ] {
        let requester = fx.requester(convention.clone(), 0).await;
        let reply = requester
            .request(&fx.requests, None, &failing.bytes())
            .await
            .expect("reply");
        assert_eq!(reply.header(header), Some(value), "{convention}");
        // NestJS completes `ClientKafka.send()`'s observable only on a reply marked
        // disposed; its error replies carry the mark too, as NestJS's server does.
        let disposed = reply.header("kafka_nest-is-disposed");
        match convention.name() {
            "nestjs" => assert_eq!(disposed, Some(&[0u8][..])),
            _ => assert_eq!(disposed, None),
        }
        assert_eq!(reply.header(ERROR_CODE_HEADER), Some(&b"probe_failed"[..]));
        assert_eq!(reply.header(ERROR_MESSAGE_HEADER), Some(&b"no"[..]));
        assert_eq!(
            reply.header("REPLY_TOPIC"),
            None,
            "never echo the reply topic"
        );
    }
    running.shutdown().await.expect("shutdown");
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i32,
    label: String,
}

struct Mirror;

impl Handler for Mirror {
    type Request = Point;
    type Reply = Point;
    type Error = ErrorReply;

    async fn handle(&self, p: Point, _cx: &RequestContext) -> Result<Point, ErrorReply> {
        Ok(Point {
            x: -p.x,
            label: p.label,
        })
    }
}

struct Reverse;

impl Handler for Reverse {
    type Request = Vec<u8>;
    type Reply = Vec<u8>;
    type Error = std::convert::Infallible;

    async fn handle(&self, mut b: Vec<u8>, _cx: &RequestContext) -> Result<Vec<u8>, Self::Error> {
        b.reverse();
        Ok(b)
    }
}

#[tokio::test]
async fn bincode_and_raw_codecs() {
    let fx = Fixture::new(1, 1).await;
    let raw_topic = kafka_responder::testkit::unique_name("raw");
    fx.broker.create_topic(&raw_topic, 1).await.expect("topic");
    let responder = fx
        .builder()
        .route(&fx.requests, Bincode, Mirror)
        .route(&raw_topic, Raw, Reverse)
        .build()
        .expect("responder");
    let running = RunningResponder::spawn(responder);
    let requester = fx.requester(HeaderConvention::plain(), 0).await;

    let point = Point {
        x: 5,
        label: "p".into(),
    };
    let reply = requester
        .request(
            &fx.requests,
            None,
            &bincode::serialize(&point).expect("bincode"),
        )
        .await
        .expect("reply");
    let back: Point =
        bincode::deserialize(reply.payload.as_deref().expect("payload")).expect("decode");
    assert_eq!(
        back,
        Point {
            x: -5,
            label: "p".into()
        }
    );

    // A length prefix that promises more than the payload holds: refused, not allocated.
    let mut lying = 5i32.to_le_bytes().to_vec();
    lying.extend_from_slice(&u64::MAX.to_le_bytes());
    let reply = requester
        .request(&fx.requests, None, &lying)
        .await
        .expect("reply");
    assert_eq!(reply.error_code(), Some(codes::BAD_REQUEST));

    let reply = requester
        .request(&raw_topic, None, &[1, 2, 3, 0xff])
        .await
        .expect("reply");
    assert_eq!(reply.payload.as_deref(), Some(&[0xff, 3, 2, 1][..]));
    running.shutdown().await.expect("shutdown");
}
