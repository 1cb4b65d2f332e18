//! A request's offset is committed only after its reply is acknowledged by the
//! broker. A crash between the two means the request is handled again, never lost.

mod common;

use std::time::Duration;

use common::{Fixture, Probe, ProbeLog, ProbeReq, eventually, one_produce_request_at_a_time};
use kafka_responder::testkit::{
    EmbeddedBroker, PendingReply, Requester, ResponseError, RunningResponder, api_key,
};
use kafka_responder::{HeaderConvention, Json};

#[tokio::test]
async fn offset_is_not_committed_while_the_reply_is_pending() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| b);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;

    // A first request settles (offset 1 committed); the second one is held inside the
    // handler; a third one behind it (another key) completes. The watermark must stay
    // at the held request: offset 1.
    let pending = settle_one_then_hold(&fx, &requester, &log, Some(b"a")).await;
    let reply = requester
        .request(&fx.requests, Some(b"b"), &ProbeReq::id(2).bytes())
        .await
        .expect("the request behind the held one is answered");
    assert_eq!(reply.error_code(), None);
    tokio::time::sleep(Duration::from_millis(600)).await; // several commit intervals
    assert_eq!(
        fx.committed(&fx.requests).await,
        Some(1),
        "committed past an unanswered request"
    );

    log.open_gate(1);
    requester
        .wait(pending)
        .await
        .expect("reply to the held request");
    fx.wait_committed(&fx.requests, 3).await;
    running.shutdown().await.expect("shutdown");
}

/// Answers a first request (offset 0) and waits for its commit, then sends a second
/// one (with `key`) and waits until the handler holds it at the probe's gate. Returns
/// the held request's pending reply.
async fn settle_one_then_hold(
    fx: &Fixture,
    requester: &Requester,
    log: &ProbeLog,
    key: Option<&[u8]>,
) -> PendingReply {
    requester
        .request(&fx.requests, None, &ProbeReq::id(0).bytes())
        .await
        .expect("reply");
    fx.wait_committed(&fx.requests, 1).await;
    let held = ProbeReq::held(1);
    let (pending, _) = requester
        .send(&fx.requests, None, key, &held.bytes())
        .await
        .expect("sent");
    log.wait_started(2).await;
    pending
}

/// [`settle_one_then_hold`], then sets the broker to refuse the next `refusals` produce
/// requests with a retriable error and releases the held request. Returns the
/// requester and the held request's pending reply.
async fn hold_then_refuse(
    fx: &Fixture,
    embedded: &EmbeddedBroker,
    log: &ProbeLog,
    refusals: usize,
) -> (Requester, PendingReply) {
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let pending = settle_one_then_hold(fx, &requester, log, None).await;
    embedded.push_request_errors(
        api_key::PRODUCE,
        &vec![ResponseError::NotEnoughReplicas; refusals],
    );
    log.open_gate(1);
    (requester, pending)
}

#[tokio::test]
#[cfg_attr(
    not(embedded_broker),
    ignore = "needs the embedded broker's fault injection"
)]
async fn offset_waits_for_the_broker_acknowledgement_of_the_reply() {
    let fx = Fixture::new(1, 1).await;
    let embedded = fx.fault_injection();
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        one_produce_request_at_a_time(b)
            .producer_config("retry.backoff.ms", "200")
            .producer_config("retry.backoff.max.ms", "200")
    });
    // The broker refuses the next produce requests with a retriable error: the reply
    // is written only after the producer's retries, about a second later.
    let (requester, pending) = hold_then_refuse(&fx, embedded, &log, 5).await;
    eventually(Duration::from_secs(10), || log.finished().len() == 2).await;
    // While the reply is refused, the request stays uncommitted.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        running.metrics().replied,
        1,
        "the reply was acknowledged too early"
    );
    assert_eq!(
        fx.committed(&fx.requests).await,
        Some(1),
        "committed before the reply was acknowledged"
    );
    requester.wait(pending).await.expect("reply after retries");
    fx.wait_committed(&fx.requests, 2).await;
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_crash_after_the_reply_and_before_the_commit_answers_the_request_again() {
    let fx = Fixture::new(1, 1).await;
    let builder = || {
        fx.builder()
            // Nothing is committed by the timer during the test.
            .bounds(|b| b.commit_interval(Duration::from_secs(3600)))
            .route(&fx.requests, Json, Probe(ProbeLog::new()))
    };
    let first = RunningResponder::spawn(builder().build().expect("responder"));
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let (pending, _) = requester
        .send(&fx.requests, None, None, &ProbeReq::id(1).bytes())
        .await
        .expect("sent");
    let pending_corr = pending.correlation_id.clone();
    requester.wait(pending).await.expect("first reply");
    first.kill().await;
    assert_eq!(
        fx.committed(&fx.requests).await,
        None,
        "a killed responder committed"
    );

    let second = RunningResponder::spawn(builder().build().expect("responder"));
    let again = requester.expect(pending_corr);
    requester
        .wait(again)
        .await
        .expect("the request is answered again after the crash");
    let replies = requester.received();
    assert_eq!(replies.len(), 2, "one reply before the crash, one after");
    // A clean shutdown commits: a third instance answers nothing again.
    second.shutdown().await.expect("shutdown");
    assert_eq!(fx.committed(&fx.requests).await, Some(1));
}

#[tokio::test]
#[cfg_attr(
    not(embedded_broker),
    ignore = "needs the embedded broker's fault injection"
)]
async fn a_reply_that_times_out_is_retried_by_the_same_member() {
    let fx = Fixture::new(1, 1).await;
    let embedded = fx.fault_injection();
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        one_produce_request_at_a_time(b)
            .producer_config("message.timeout.ms", "800")
            .producer_config("retry.backoff.ms", "100")
            .producer_config("retry.backoff.max.ms", "100")
    });
    // The broker refuses every produce for ~2 s: the reply times out in the producer
    // (a failure that is not the record's fault).
    let (requester, pending) = hold_then_refuse(&fx, embedded, &log, 20).await;
    eventually(Duration::from_secs(10), || {
        running.metrics().reply_retries >= 1
    })
    .await;
    assert_eq!(
        fx.committed(&fx.requests).await,
        Some(1),
        "an undelivered reply was committed"
    );
    // Once the broker takes produces again, the same member delivers the same reply:
    // no restart, no second call of the handler, and the offset is committed.
    let reply = requester
        .wait(pending)
        .await
        .expect("answered by the same member after the outage");
    assert_eq!(reply.error_code(), None);
    fx.wait_committed(&fx.requests, 2).await;
    assert_eq!(log.started(), vec![0, 1], "the handler ran again");
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.replied, m.delivery_failures), (2, 0));
}
