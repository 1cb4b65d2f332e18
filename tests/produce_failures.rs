//! When the reply cannot be written for the record's own sake (the broker refuses the
//! topic, the record is too large, the topic or partition does not exist), the request
//! is dead-lettered, counted and committed, and the responder keeps serving.

mod common;

use std::time::Duration;

use common::{Fixture, ProbeLog, ProbeReq, eventually, one_produce_request_at_a_time};
use kafka_responder::testkit::{Requester, ResponseError, api_key, unique_name};
use kafka_responder::{
    DLQ_REASON_HEADER, ErrorReply, Handler, HeaderConvention, Raw, RequestContext,
};

/// Answers with as many bytes as the request's payload says (ASCII decimal).
struct Sized;

impl Handler for Sized {
    type Request = Vec<u8>;
    type Reply = Vec<u8>;
    type Error = ErrorReply;

    async fn handle(&self, req: Vec<u8>, _cx: &RequestContext) -> Result<Vec<u8>, ErrorReply> {
        let n: usize = std::str::from_utf8(&req)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ErrorReply::bad_request("expected a size"))?;
        Ok(vec![b'r'; n])
    }
}

type Headers = Vec<(String, Vec<u8>)>;

fn address(topic: &str, partition: Option<i32>, corr: &[u8]) -> Headers {
    let mut h = vec![
        ("kafka_replyTopic".to_owned(), topic.as_bytes().to_vec()),
        ("kafka_correlationId".to_owned(), corr.to_vec()),
    ];
    if let Some(p) = partition {
        h.push(("kafka_replyPartition".to_owned(), p.to_be_bytes().to_vec()));
    }
    h
}

/// On any broker: a reply larger than the producer accepts, a reply topic that does
/// not exist (but the policy allows), a partition the reply topic does not have.
#[tokio::test]
async fn replies_that_cannot_be_written_are_dead_lettered_and_committed() {
    let fx = Fixture::new(1, 2).await;
    let dlq = unique_name("dead-letters");
    fx.broker.create_topic(&dlq, 1).await.expect("topic");
    let ghost = unique_name("ghost-replies");
    let dlq_reader = Requester::new(fx.bootstrap(), HeaderConvention::plain(), &dlq, 0)
        .await
        .expect("dead-letter reader");
    let builder = fx
        .builder()
        .reply_topics(format!("{},{ghost}", fx.replies).parse().expect("policy"))
        .dead_letters(|d| d.topic(&dlq))
        .producer_config("message.max.bytes", "20000")
        .route(&fx.requests, Raw, Sized);
    let running = kafka_responder::testkit::RunningResponder::spawn(builder.build().expect("ok"));
    let requester = fx.requester(HeaderConvention::spring(), 0).await;

    let cases: [(&[u8], Headers, &str); 3] = [
        (
            b"50000",
            address(&fx.replies, Some(0), b"too-large"),
            "reply_refused",
        ),
        (
            b"10",
            address(&ghost, None, b"ghost"),
            "unknown_reply_topic",
        ),
        (
            b"10",
            address(&fx.replies, Some(2), b"partition-2"),
            "reply_partition_out_of_range",
        ),
    ];
    let mut last = 0;
    for (i, (payload, headers, reason)) in cases.iter().enumerate() {
        let (_, offset) = requester
            .send_raw(&fx.requests, Some(0), None, Some(payload), headers)
            .await
            .expect("sent");
        last = offset;
        eventually(Duration::from_secs(20), || {
            dlq_reader.received().len() == i + 1
        })
        .await;
        let letter = dlq_reader.received()[i].clone();
        assert_eq!(
            letter.header(DLQ_REASON_HEADER),
            Some(reason.as_bytes()),
            "case {i}"
        );
        assert_eq!(letter.payload.as_deref(), Some(*payload));
        // Still serving.
        let ok = requester
            .request(&fx.requests, None, b"3")
            .await
            .expect("a good request after a refused reply");
        assert_eq!(ok.payload.as_deref(), Some(&b"rrr"[..]));
        last += 1;
    }
    fx.wait_committed(&fx.requests, last + 1).await;
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!(m.dead_lettered, 3);
    assert_eq!(m.replied, 3);
    // The oversized reply was refused by the producer; the other two were known
    // unanswerable from the broker's metadata before anything was produced.
    assert_eq!((m.delivery_failures, m.unanswerable), (1, 2));
    assert!(
        kafka_responder::testkit::end_offset(fx.bootstrap(), &ghost, 0)
            .await
            .is_err(),
        "the ghost topic was created"
    );
}

/// On the embedded broker, which can refuse a produce with any error: the errors a
/// broker returns for the record's own sake are final; authorization and unknown
/// topic or partition get a few attempts first (ACLs change, metadata propagates).
#[tokio::test]
#[cfg_attr(
    not(embedded_broker),
    ignore = "needs the embedded broker's fault injection"
)]
async fn replies_the_broker_refuses_for_good_are_dead_lettered_and_committed() {
    let fx = Fixture::new(1, 1).await;
    let embedded = fx.fault_injection();
    let dlq = unique_name("dead-letters");
    fx.broker.create_topic(&dlq, 1).await.expect("topic");
    let dlq_reader = Requester::new(fx.bootstrap(), HeaderConvention::plain(), &dlq, 0)
        .await
        .expect("dead-letter reader");
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        one_produce_request_at_a_time(b).dead_letters(|d| d.topic(&dlq))
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    // (error, how many produce attempts it refuses)
    let refusals = [
        (ResponseError::TopicAuthorizationFailed, UNSURE_ATTEMPTS),
        (ResponseError::MessageTooLarge, 1),
        (ResponseError::InvalidRecord, 1),
    ];
    let mut last = 0;
    for (i, (refusal, attempts)) in refusals.into_iter().enumerate() {
        let id = i as u64 * 2 + 1;
        let held = ProbeReq::held(id);
        let (pending, (_, offset)) = requester
            .send(&fx.requests, Some(0), None, &held.bytes())
            .await
            .expect("sent");
        log.wait_started(i * 2 + 1).await;
        // The handler is holding the request: the next produce is its reply.
        embedded.push_request_errors(api_key::PRODUCE, &vec![refusal; attempts]);
        log.open_gate(1);
        eventually(Duration::from_secs(20), || {
            dlq_reader.received().len() == i + 1
        })
        .await;
        assert_eq!(
            dlq_reader.received()[i].header(DLQ_REASON_HEADER),
            Some(&b"reply_refused"[..]),
            "{refusal:?}"
        );
        drop(pending);
        requester
            .request(&fx.requests, None, &ProbeReq::id(id + 1).bytes())
            .await
            .expect("still serving");
        last = offset + 1;
    }
    // An authorization failure that passes (an ACL added meanwhile): answered.
    let held = ProbeReq::held(7);
    let (pending, (_, offset)) = requester
        .send(&fx.requests, Some(0), None, &held.bytes())
        .await
        .expect("sent");
    log.wait_started(7).await;
    embedded.push_request_errors(
        api_key::PRODUCE,
        &[ResponseError::TopicAuthorizationFailed; 1],
    );
    log.open_gate(1);
    let reply = requester
        .wait(pending)
        .await
        .expect("answered after retries");
    assert_eq!(reply.error_code(), None);
    fx.wait_committed(&fx.requests, offset + 1).await;
    assert!(last < offset);
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.delivery_failures, m.dead_lettered, m.replied), (3, 3, 4));
    assert_eq!(dlq_reader.received().len(), 3);
    // (The embedded broker's injected errors may meet other produce requests too, so
    // only a lower bound: the first case's retries and at least one of the last.)
    assert!(m.reply_retries > UNSURE_ATTEMPTS as u64 - 1, "{m:?}");
}

/// Attempts an authorization or unknown-topic error gets (`runtime::delivery`).
const UNSURE_ATTEMPTS: usize = 5;
