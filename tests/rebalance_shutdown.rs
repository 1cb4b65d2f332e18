//! Rebalances and shutdown lose nothing: a graceful shutdown drains the requests in
//! flight and commits them; members joining and leaving a group mid-stream leave no
//! request unanswered.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Fixture, Probe, ProbeLog, ProbeReq};
use kafka_responder::testkit::RunningResponder;
use kafka_responder::{HeaderConvention, Json};

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_commits_them() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        b.bounds(|b| b.commit_interval(Duration::from_secs(3600)))
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let slow = ProbeReq {
        sleep_ms: 700,
        ..ProbeReq::id(1)
    };
    let (pending, _) = requester
        .send(&fx.requests, None, None, &slow.bytes())
        .await
        .expect("sent");
    log.wait_started(1).await;
    running.shutdown().await.expect("shutdown");
    requester
        .wait(pending)
        .await
        .expect("the in-flight request was answered");
    assert_eq!(fx.committed(&fx.requests).await, Some(1));
}

#[tokio::test]
async fn no_request_is_lost_when_members_join_and_leave() {
    let fx = Fixture::new(6, 1).await;
    let builder = || {
        fx.builder()
            .route(&fx.requests, Json, Probe(ProbeLog::new()))
            .build()
            .expect("responder")
    };
    let requester = fx
        .requester(HeaderConvention::spring(), 0)
        .await
        .with_timeout(Duration::from_secs(60));
    let mut first = Some(RunningResponder::spawn(builder()));
    let mut first_handle = None;

    const N: u64 = 300;
    let mut pending = Vec::new();
    let mut second = None;
    let mut third = None;
    for id in 0..N {
        let corr = requester.new_correlation_id();
        pending.push((id, requester.expect(corr.clone())));
        let key = format!("wallet-{}", id % 37);
        let req = ProbeReq {
            sleep_ms: 3,
            ..ProbeReq::id(id)
        };
        requester
            .send_raw(
                &fx.requests,
                None,
                Some(key.as_bytes()),
                Some(&req.bytes()),
                &requester.request_headers(&corr),
            )
            .await
            .expect("sent");
        match id {
            60 => second = Some(RunningResponder::spawn(builder())), // join: rebalance
            140 => third = Some(RunningResponder::spawn(builder())), // another join
            _ => {}
        }
        if id == 200 {
            // The first member leaves cleanly mid-stream while requests keep coming.
            first_handle = Some(tokio::spawn(first.take().expect("first").shutdown()));
        }
        if id % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    let mut answered = 0;
    for (id, p) in pending {
        let reply = requester
            .wait(p)
            .await
            .unwrap_or_else(|e| panic!("request {id} unanswered: {e}"));
        assert_eq!(reply.error_code(), None);
        answered += 1;
    }
    assert_eq!(answered, N);
    first_handle
        .expect("first left")
        .await
        .expect("join")
        .expect("first shutdown");
    // Replies per correlation id: at least one each; more are at-least-once duplicates.
    let mut per_corr: HashMap<Vec<u8>, usize> = HashMap::new();
    for r in requester.received() {
        *per_corr
            .entry(r.header("kafka_correlationId").expect("corr").to_vec())
            .or_default() += 1;
    }
    let duplicates: usize = per_corr.values().map(|n| n - 1).sum();
    eprintln!("requests {N}, answered {answered}, duplicates {duplicates}");
    for r in [second, third].into_iter().flatten() {
        r.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn shutdown_with_queued_requests_leaves_them_to_the_next_owner() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| b);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    // Five requests of one key: the first runs (slowly), four wait in its lane.
    let mut pending = Vec::new();
    for id in 0..5 {
        let req = ProbeReq {
            sleep_ms: if id == 0 { 600 } else { 0 },
            ..ProbeReq::id(id)
        };
        let (p, _) = requester
            .send(&fx.requests, Some(0), Some(b"same-wallet"), &req.bytes())
            .await
            .expect("sent");
        pending.push(p);
    }
    log.wait_started(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the other four are queued
    running.shutdown().await.expect("a clean shutdown");
    assert_eq!(
        log.started(),
        vec![0],
        "queued requests must not start during shutdown"
    );
    assert_eq!(
        fx.committed(&fx.requests).await,
        Some(1),
        "only the finished request is committed"
    );
    // The next owner answers the four that were waiting.
    let next = RunningResponder::spawn(
        fx.builder()
            .route(&fx.requests, Json, Probe(ProbeLog::new()))
            .build()
            .expect("responder"),
    );
    for p in pending {
        requester.wait(p).await.expect("every request answered");
    }
    next.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_paused_partition_that_comes_back_is_fetched_again() {
    let fx = Fixture::new(1, 1).await;
    let configure = |b: kafka_responder::ResponderBuilder| {
        b.ordering(kafka_responder::HandlingOrder::Partition)
            .bounds(|b| {
                b.max_in_flight_per_partition(2)
                    .drain_timeout(Duration::from_millis(500))
            })
    };
    let log_a = ProbeLog::new();
    let a = fx.serve(log_a.clone(), configure);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    // Six held requests: one runs, five wait, and A pauses the partition.
    let mut pending = Vec::new();
    for id in 0..6 {
        let req = ProbeReq::held(id);
        let (p, _) = requester
            .send(&fx.requests, Some(0), None, &req.bytes())
            .await
            .expect("sent");
        pending.push(p);
    }
    log_a.wait_started(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // B joins (the partition is revoked from A, drained, assigned to one of them),
    // then leaves: the partition comes back to A, which paused it before.
    let log_b = ProbeLog::new();
    let b = fx.serve(log_b.clone(), configure);
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.shutdown().await.expect("b leaves");
    log_a.open_gate(100);
    log_b.open_gate(100);
    for p in pending {
        requester
            .wait(p)
            .await
            .expect("answered after the partition came back");
    }
    a.shutdown().await.expect("shutdown");
}
