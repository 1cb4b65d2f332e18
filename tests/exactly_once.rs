//! Exactly-once replies (`exactly_once`): the reply and its request's offset are
//! committed in one Kafka transaction, so a `read_committed` requester (the testkit's
//! requester reads so, as librdkafka does by default) sees each reply once, even when
//! the responder is killed between a reply and its commit.
//!
//! The embedded broker (librdkafka's mock cluster) speaks the transaction protocol but
//! keeps no offsets sent to a transaction and writes no abort markers: the tests of
//! what a crash leaves run on Apache Kafka (`RESPONDER_TEST_BROKER=kafka`) and are
//! skipped on it.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Fixture, Probe, ProbeLog, ProbeReq, eventually};
use kafka_responder::testkit::{Requester, RunningResponder, unique_name};
use kafka_responder::{HeaderConvention, Json, ResponderBuilder};

/// A responder on the fixture with exactly-once replies under `transactional_id`.
fn exactly_once(fx: &Fixture, transactional_id: &str) -> ResponderBuilder {
    fx.builder()
        .exactly_once(transactional_id)
        .route(&fx.requests, Json, Probe(ProbeLog::new()))
}

/// Sends `n` requests of 20 ms each, one key per request, without waiting for replies.
async fn send_slow_requests(fx: &Fixture, requester: &Requester, n: u64) {
    for id in 0..n {
        let slow = ProbeReq {
            id,
            sleep_ms: 20,
            ..ProbeReq::default()
        };
        requester
            .send(&fx.requests, None, Some(&id.to_be_bytes()), &slow.bytes())
            .await
            .expect("sent");
    }
}

/// Replies received, per correlation id.
fn replies_per_request(requester: &Requester) -> HashMap<Vec<u8>, usize> {
    let mut seen = HashMap::new();
    for reply in requester.received() {
        let corr = reply
            .header(HeaderConvention::spring().correlation_id_header())
            .expect("correlation id")
            .to_vec();
        *seen.entry(corr).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn replies_and_error_replies_are_produced_in_committed_transactions() {
    let fx = Fixture::new(1, 1).await;
    let running = RunningResponder::spawn(
        exactly_once(&fx, &unique_name("txn"))
            .build()
            .expect("responder"),
    );
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    for id in 0..20 {
        let reply = requester
            .request(&fx.requests, None, &ProbeReq::id(id).bytes())
            .await
            .expect("reply");
        assert_eq!(reply.error_code(), None);
    }
    let failing = ProbeReq {
        id: 20,
        fail: Some("no".into()),
        ..ProbeReq::default()
    };
    let reply = requester
        .request(&fx.requests, None, &failing.bytes())
        .await
        .expect("error reply");
    assert!(reply.error_code().is_some(), "an error reply");
    let metrics = running.shutdown().await.expect("shutdown");
    assert_eq!(metrics.replied, 20);
    assert_eq!(metrics.error_replies, 1);
    assert!(
        metrics.transactions_committed >= 1,
        "no transaction committed: {metrics:?}"
    );
    assert_eq!(metrics.transactions_aborted, 0);
    let seen = replies_per_request(&requester);
    assert_eq!(seen.len(), 21);
    assert!(
        seen.values().all(|n| *n == 1),
        "a reply seen twice: {seen:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    embedded_broker,
    ignore = "the embedded broker keeps no offsets sent to a transaction and writes no abort markers"
)]
async fn a_crash_between_reply_and_commit_leaves_the_reply_unseen_and_answers_it_once() {
    let fx = Fixture::new(1, 1).await;
    let id = unique_name("txn");
    // The first instance commits no transaction during the test (the interval may be
    // at most a quarter of the 60 s transaction timeout): its reply stays in an open
    // one.
    let first = RunningResponder::spawn(
        exactly_once(&fx, &id)
            .bounds(|b| b.commit_interval(Duration::from_secs(15)))
            .build()
            .expect("responder"),
    );
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let (pending, _) = requester
        .send(&fx.requests, None, None, &ProbeReq::id(1).bytes())
        .await
        .expect("sent");
    eventually(Duration::from_secs(20), || first.metrics().replied == 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        requester.received().is_empty(),
        "a reply of an uncommitted transaction was visible"
    );
    first.kill().await;
    assert_eq!(
        fx.committed(&fx.requests).await,
        None,
        "a killed responder committed"
    );

    // The same transactional id: its start aborts what the first left open.
    let second = RunningResponder::spawn(exactly_once(&fx, &id).build().expect("responder"));
    requester
        .wait(pending)
        .await
        .expect("the request is answered after the crash");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(requester.received().len(), 1, "the reply seen once");
    fx.wait_committed(&fx.requests, 1).await;
    let metrics = second.shutdown().await.expect("shutdown");
    assert_eq!(metrics.replied, 1);
}

#[tokio::test]
#[cfg_attr(
    embedded_broker,
    ignore = "the embedded broker keeps no offsets sent to a transaction and writes no abort markers"
)]
async fn a_responder_killed_mid_batch_leaves_every_reply_seen_exactly_once() {
    const REQUESTS: u64 = 600;
    let fx = Fixture::new(1, 1).await;
    let id = unique_name("txn");
    // 8 at a time, 20 ms each: about 40 replies are produced per 100 ms commit
    // interval, so a kill always leaves some in the open transaction.
    let builder = || exactly_once(&fx, &id).bounds(|b| b.max_in_flight(8));
    let first = RunningResponder::spawn(builder().build().expect("responder"));
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    send_slow_requests(&fx, &requester, REQUESTS).await;
    // Killed with part of the batch answered and committed, part answered in the open
    // transaction, part not answered yet.
    eventually(Duration::from_secs(60), || {
        requester.received().len() >= 150
    })
    .await;
    first.kill().await;
    let before = requester.received().len();

    let second = RunningResponder::spawn(builder().build().expect("responder"));
    eventually(Duration::from_secs(90), || {
        replies_per_request(&requester).len() as u64 == REQUESTS
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    second.shutdown().await.expect("shutdown");
    let seen = replies_per_request(&requester);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "{REQUESTS} requests; {before} replies seen before the kill; \
         {} after; {duplicates} duplicates",
        requester.received().len() - before
    );
    assert_eq!(seen.len() as u64, REQUESTS, "a request never answered");
    assert_eq!(duplicates, 0, "replies seen twice: {seen:?}");
    assert_eq!(fx.committed(&fx.requests).await, Some(REQUESTS as i64));
}

#[tokio::test]
#[cfg_attr(
    embedded_broker,
    ignore = "the embedded broker keeps no offsets sent to a transaction: the new owner would start over"
)]
async fn a_rebalance_commits_the_revoked_partitions_in_a_transaction() {
    const REQUESTS: u64 = 800;
    let fx = Fixture::new(4, 1).await;
    // 4 at a time, 20 ms each: about 4 s of work, so the second member joins
    // (a rebalance takes a few seconds) while most of it is left.
    let builder = |id: &str| exactly_once(&fx, id).bounds(|b| b.max_in_flight(4));
    let first = RunningResponder::spawn(builder(&unique_name("txn-a")).build().expect("a"));
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    send_slow_requests(&fx, &requester, REQUESTS).await;
    eventually(Duration::from_secs(60), || {
        requester.received().len() >= 100
    })
    .await;
    // A second member joins: the first drains the partitions it gives up and commits
    // their offsets in a transaction before they go.
    let second = RunningResponder::spawn(builder(&unique_name("txn-b")).build().expect("b"));
    eventually(Duration::from_secs(90), || {
        replies_per_request(&requester).len() as u64 == REQUESTS
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (a, b) = (
        first.shutdown().await.expect("first shutdown"),
        second.shutdown().await.expect("second shutdown"),
    );
    let seen = replies_per_request(&requester);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "{REQUESTS} requests over a rebalance: first replied {}, second {}; {duplicates} duplicates",
        a.replied, b.replied
    );
    assert_eq!(duplicates, 0, "replies seen twice: {seen:?}");
    assert!(b.replied > 0, "the second member answered nothing");
    assert_eq!(a.transactions_aborted + b.transactions_aborted, 0);
}
