//! Requests that cannot be answered go to the dead-letter topic, as received, with
//! headers saying why and where they came from; then they are committed.

mod common;

use std::time::Duration;

use common::{Fixture, ProbeLog, ProbeReq, eventually};
use kafka_responder::testkit::{Requester, RunningResponder, unique_name};
use kafka_responder::{
    DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER, DLQ_TIME_HEADER, DLQ_TOPIC_HEADER,
    HeaderConvention,
};

/// A responder that dead-letters to a topic of its own, a reader of that topic, and a
/// Spring requester.
struct DeadLetters {
    fx: Fixture,
    dlq_reader: Requester,
    running: RunningResponder,
    requester: Requester,
}

impl DeadLetters {
    async fn serve() -> Self {
        let fx = Fixture::new(1, 1).await;
        let dlq = unique_name("dead-letters");
        fx.broker.create_topic(&dlq, 1).await.expect("topic");
        let dlq_reader = Requester::new(fx.bootstrap(), HeaderConvention::plain(), &dlq, 0)
            .await
            .expect("dead-letter reader");
        let running = fx.serve(ProbeLog::new(), |b| b.dead_letters(|d| d.topic(&dlq)));
        let requester = fx.requester(HeaderConvention::spring(), 0).await;
        DeadLetters {
            fx,
            dlq_reader,
            running,
            requester,
        }
    }
}

/// `requester`'s reply-address headers for `corr`, keys as bytes.
fn address_headers(requester: &Requester, corr: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    requester
        .request_headers(corr)
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v))
        .collect()
}

#[tokio::test]
async fn unanswerable_requests_are_dead_lettered_with_their_reason() {
    let DeadLetters {
        fx,
        dlq_reader,
        running,
        requester,
    } = DeadLetters::serve().await;
    let outside = unique_name("outside");
    fx.broker.create_topic(&outside, 1).await.expect("topic");

    let body = ProbeReq::id(1).bytes();
    let not_allowed = vec![
        ("kafka_replyTopic".to_owned(), outside.clone().into_bytes()),
        ("kafka_correlationId".to_owned(), b"c-1".to_vec()),
    ];
    let at_a = requester
        .send_raw(
            &fx.requests,
            Some(0),
            Some(b"k-a"),
            Some(&body),
            &not_allowed,
        )
        .await
        .expect("sent");
    // No reply address, and dead-letter headers of its own: a requester must not be
    // able to forge why or from where a dead letter came.
    let forged = vec![
        ("responder-dlq-reason".to_owned(), b"forged".to_vec()),
        ("responder-dlq-topic".to_owned(), b"elsewhere".to_vec()),
        ("responder-dlq-offset".to_owned(), b"0".to_vec()),
        ("x-trace".to_owned(), b"kept".to_vec()),
    ];
    let at_b = requester
        .send_raw(&fx.requests, Some(0), Some(b"k-b"), Some(&body), &forged)
        .await
        .expect("sent");
    requester
        .request(&fx.requests, None, &ProbeReq::id(2).bytes())
        .await
        .expect("a good request is still answered");

    eventually(Duration::from_secs(20), || dlq_reader.received().len() == 2).await;
    let letters = dlq_reader.received();
    let find = |key: &[u8]| {
        letters
            .iter()
            .find(|l| l.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no dead letter for {key:?}"))
            .clone()
    };
    for (key, at, reason) in [
        (&b"k-a"[..], at_a, "reply_topic_not_allowed"),
        (&b"k-b"[..], at_b, "no_reply_address"),
    ] {
        let l = find(key);
        assert_eq!(l.payload.as_deref(), Some(&body[..]), "payload kept");
        assert_eq!(l.header(DLQ_REASON_HEADER), Some(reason.as_bytes()));
        assert_eq!(l.header(DLQ_TOPIC_HEADER), Some(fx.requests.as_bytes()));
        assert_eq!(
            l.header(DLQ_PARTITION_HEADER),
            Some(at.0.to_string().as_bytes())
        );
        assert_eq!(
            l.header(DLQ_OFFSET_HEADER),
            Some(at.1.to_string().as_bytes())
        );
        let time: u128 = std::str::from_utf8(l.header(DLQ_TIME_HEADER).expect("time"))
            .expect("utf8")
            .parse()
            .expect("epoch millis");
        assert!(time > 1_600_000_000_000);
    }
    // The original headers travel with the dead letter, but none of its own.
    assert_eq!(
        find(b"k-a").header("kafka_replyTopic"),
        Some(outside.as_bytes())
    );
    let b = find(b"k-b");
    assert_eq!(b.header("x-trace"), Some(&b"kept"[..]));
    let reasons = b
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with(kafka_responder::DLQ_HEADER_PREFIX))
        .count();
    assert_eq!(
        reasons, 6,
        "one of each dead-letter header: {:?}",
        b.headers
    );
    // Nothing was written to the disallowed topic, and everything is committed.
    assert!(dlq_reader.received().len() == 2);
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.unanswerable, m.dead_lettered, m.replied), (2, 2, 1));
    assert_eq!(
        kafka_responder::testkit::end_offset(fx.bootstrap(), &outside, 0)
            .await
            .expect("end"),
        0
    );
    assert_eq!(fx.committed(&fx.requests).await, Some(at_b.1 + 2));
}

#[test]
fn a_dead_letter_topic_that_is_a_request_topic_is_refused() {
    let built = kafka_responder::Responder::builder()
        .bootstrap_servers("127.0.0.1:1")
        .group_id("g")
        .route("requests", kafka_responder::Raw, Echo)
        .reply_topics("replies".parse().expect("policy"))
        .dead_letters(|d| d.topic("requests"))
        .build();
    assert!(matches!(built, Err(kafka_responder::Error::Config(_))));
}

struct Echo;

impl kafka_responder::Handler for Echo {
    type Request = Vec<u8>;
    type Reply = Vec<u8>;
    type Error = kafka_responder::ErrorReply;

    async fn handle(
        &self,
        b: Vec<u8>,
        _cx: &kafka_responder::RequestContext,
    ) -> Result<Vec<u8>, kafka_responder::ErrorReply> {
        Ok(b)
    }
}

/// A header key need not be UTF-8 (Kafka and librdkafka take any bytes, and
/// rust-rdkafka's own reader panics on such a key): a request carrying one is answered
/// as any other, and one that cannot be answered is dead-lettered with that header
/// byte for byte.
#[tokio::test]
async fn header_keys_that_are_not_utf8_change_nothing() {
    let DeadLetters {
        fx,
        dlq_reader,
        running,
        requester,
    } = DeadLetters::serve().await;
    let odd_key = b"\xff\xfe-key".to_vec();

    let corr = requester.new_correlation_id();
    let pending = requester.expect(corr.clone());
    let mut headers = address_headers(&requester, &corr);
    headers.insert(0, (odd_key.clone(), b"x".to_vec()));
    requester
        .send_raw_keys(
            &fx.requests,
            Some(0),
            Some(b"k-1"),
            Some(&ProbeReq::id(1).bytes()),
            &headers,
        )
        .await
        .expect("sent");
    let reply = requester.wait(pending).await.expect("answered");
    assert_eq!(reply.error_code(), None);

    // No reply address: dead-lettered, the odd header kept byte for byte.
    let at = requester
        .send_raw_keys(
            &fx.requests,
            Some(0),
            Some(b"k-2"),
            Some(&ProbeReq::id(2).bytes()),
            &[(odd_key.clone(), b"y".to_vec())],
        )
        .await
        .expect("sent");
    eventually(Duration::from_secs(20), || dlq_reader.received().len() == 1).await;
    let letter = &dlq_reader.received()[0];
    let i = letter
        .header_keys
        .iter()
        .position(|k| *k == odd_key)
        .expect("the odd header is kept");
    assert_eq!(letter.headers[i].1.as_deref(), Some(&b"y"[..]));
    assert_eq!(
        letter.header(DLQ_REASON_HEADER),
        Some(&b"no_reply_address"[..])
    );
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.replied, m.dead_lettered), (1, 1));
    assert_eq!(fx.committed(&fx.requests).await, Some(at.1 + 1));
}

/// A request with more headers than a record's copy reads in its first pass (8): it is
/// answered with its reply address found past them, and one that cannot be answered is
/// dead-lettered with every header, in order, byte for byte.
#[tokio::test]
async fn requests_with_many_headers_keep_them_all() {
    let DeadLetters {
        fx,
        dlq_reader,
        running,
        requester,
    } = DeadLetters::serve().await;
    let filler: Vec<(Vec<u8>, Vec<u8>)> = (0..12u8)
        .map(|i| {
            (
                format!("x-filler-{i}").into_bytes(),
                vec![i; usize::from(i)],
            )
        })
        .collect();

    let corr = requester.new_correlation_id();
    let pending = requester.expect(corr.clone());
    let mut headers = filler.clone();
    headers.extend(address_headers(&requester, &corr));
    requester
        .send_raw_keys(
            &fx.requests,
            Some(0),
            Some(b"k-1"),
            Some(&ProbeReq::id(1).bytes()),
            &headers,
        )
        .await
        .expect("sent");
    let reply = requester.wait(pending).await.expect("answered");
    assert_eq!(reply.error_code(), None);

    // No reply address: dead-lettered with the twelve headers first, as sent.
    requester
        .send_raw_keys(
            &fx.requests,
            Some(0),
            Some(b"k-2"),
            Some(&ProbeReq::id(2).bytes()),
            &filler,
        )
        .await
        .expect("sent");
    eventually(Duration::from_secs(20), || dlq_reader.received().len() == 1).await;
    let letter = &dlq_reader.received()[0];
    let kept: Vec<(Vec<u8>, Option<Vec<u8>>)> = letter
        .header_keys
        .iter()
        .zip(&letter.headers)
        .take(filler.len())
        .map(|(k, (_, v))| (k.clone(), v.clone()))
        .collect();
    let sent: Vec<_> = filler.into_iter().map(|(k, v)| (k, Some(v))).collect();
    assert_eq!(kept, sent);
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.replied, m.dead_lettered), (1, 1));
}
