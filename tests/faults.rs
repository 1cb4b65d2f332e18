//! The faults between "works" and "crashed": an outage longer than the reply
//! producer's delivery timeout, handlers that never return, a broker gone while the
//! responder drains, commit metadata another client wrote. Through each, a partition
//! this member holds keeps being served, every request is answered or handed to the
//! next owner, and a stop always stops.

mod common;

use std::time::{Duration, Instant};

use common::{
    Fixture, Probe, ProbeLog, ProbeReq, Process, epoch_ms_from_now, eventually,
    one_produce_request_at_a_time,
};
use kafka_responder::testkit::{ResponseError, RunningResponder, api_key, commit_with_metadata};
use kafka_responder::{DEADLINE_HEADER, HandlingOrder, HeaderConvention, Json, codes};

/// The broker refuses every produce (a retriable error) for several times the
/// producer's delivery timeout while the responder holds 4 requests, its whole
/// in-flight bound. Once it takes produces again, the same member answers the 4 (the
/// same replies: the handler is not called again) and everything sent after them, and
/// commits to the end. The old runtime dropped such requests unsettled: the partition
/// then stalled until a restart.
#[tokio::test]
#[cfg_attr(
    not(embedded_broker),
    ignore = "needs the embedded broker's fault injection"
)]
async fn an_outage_longer_than_the_delivery_timeout_stalls_nothing() {
    let fx = Fixture::new(1, 1).await;
    let embedded = fx.fault_injection();
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        one_produce_request_at_a_time(b)
            .bounds(|b| b.max_in_flight(4))
            .ordering(HandlingOrder::Unordered)
            .producer_config("message.timeout.ms", "600")
            .producer_config("retry.backoff.ms", "100")
            .producer_config("retry.backoff.max.ms", "100")
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    requester
        .request(&fx.requests, None, &ProbeReq::id(0).bytes())
        .await
        .expect("first reply");
    let mut pending = Vec::new();
    for id in 1..=4u64 {
        let held = ProbeReq::held(id);
        let (p, _) = requester
            .send(&fx.requests, Some(0), None, &held.bytes())
            .await
            .expect("sent");
        pending.push(p);
    }
    log.wait_started(5).await;
    // ~3 s of refusals (librdkafka retries every 100 ms): each reply times out in the
    // producer several times over.
    embedded.push_request_errors(api_key::PRODUCE, &[ResponseError::NotEnoughReplicas; 30]);
    log.open_gate(4);
    eventually(Duration::from_secs(10), || {
        running.metrics().reply_retries >= 4
    })
    .await;
    // Ten more requests behind the four, while the outage lasts.
    for id in 5..=14u64 {
        let (p, _) = requester
            .send(&fx.requests, Some(0), None, &ProbeReq::id(id).bytes())
            .await
            .expect("sent");
        pending.push(p);
    }
    for p in pending {
        let reply = requester
            .wait(p)
            .await
            .expect("every request answered by the same member");
        assert_eq!(reply.error_code(), None);
    }
    fx.wait_committed(&fx.requests, 15).await;
    let mut started = log.started();
    started.sort_unstable();
    assert_eq!(started, (0..=14).collect::<Vec<_>>(), "each handled once");
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.replied, m.delivery_failures), (15, 0));
    assert!(m.reply_retries >= 4, "{m:?}");
}

/// A handler that never returns is cut off by the handler timeout; a request's
/// deadline cuts it off sooner. Either way the requester gets a `timeout` error reply
/// instead of waiting out its own timeout, and the request is committed.
#[tokio::test]
async fn hung_handlers_get_timeout_replies() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        b.bounds(|b| b.handler_timeout(Duration::from_secs(3)))
            .ordering(HandlingOrder::Unordered)
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let hung = ProbeReq::held(1);
    let started = Instant::now();
    let reply = requester
        .request(&fx.requests, None, &hung.bytes())
        .await
        .expect("a timeout reply, not silence");
    assert_eq!(reply.error_code(), Some(codes::TIMEOUT));
    assert!(started.elapsed() >= Duration::from_secs(3));

    // A deadline 300 ms away bounds a handler whose own timeout is 3 s.
    let corr = requester.new_correlation_id();
    let pending = requester.expect(corr.clone());
    let mut headers = requester.request_headers(&corr);
    headers.push((DEADLINE_HEADER.to_owned(), epoch_ms_from_now(300)));
    let started = Instant::now();
    requester
        .send_raw(&fx.requests, Some(0), None, Some(&hung.bytes()), &headers)
        .await
        .expect("sent");
    let reply = requester.wait(pending).await.expect("a timeout reply");
    assert_eq!(reply.error_code(), Some(codes::TIMEOUT));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the deadline did not bound the handler: {:?}",
        started.elapsed()
    );
    fx.wait_committed(&fx.requests, 2).await;
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.handler_timeouts, m.error_replies), (2, 2));
}

/// A member whose every in-flight slot is held by a handler that never returns still
/// takes part in a rebalance: it keeps polling (fetching paused), so a second member
/// joins in seconds instead of waiting for the first one's eviction after
/// `max.poll.interval.ms`. The hung request is abandoned at the drain deadline,
/// uncommitted, and its new owner answers it.
#[tokio::test]
async fn a_member_with_every_slot_hung_still_rebalances() {
    let fx = Fixture::new(2, 1).await;
    let hung_log = ProbeLog::new(); // its gate never opens
    let first = fx.serve(hung_log.clone(), |b| {
        b.bounds(|b| {
            b.max_in_flight(1)
                .handler_timeout(Duration::from_secs(120))
                .drain_timeout(Duration::from_secs(1))
        })
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let hung = ProbeReq::held(1);
    let (hung_reply, _) = requester
        .send(&fx.requests, Some(0), None, &hung.bytes())
        .await
        .expect("sent");
    let (other_reply, _) = requester
        .send(&fx.requests, Some(1), None, &ProbeReq::id(2).bytes())
        .await
        .expect("sent");
    hung_log.wait_started(1).await;
    // Past the point where the first member pauses fetching for want of slots.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let second_log = ProbeLog::new();
    second_log.open_gate(100);
    let joined = Instant::now();
    let second = RunningResponder::spawn(
        fx.builder()
            .route(&fx.requests, Json, Probe(second_log.clone()))
            .build()
            .expect("responder"),
    );
    // A new request on each partition: the second member gets at least one partition
    // and answers from it within seconds, because the group rebalanced without
    // waiting for the hung handler.
    for (id, partition) in [(10u64, 0), (11, 1)] {
        requester
            .send(
                &fx.requests,
                Some(partition),
                None,
                &ProbeReq::id(id).bytes(),
            )
            .await
            .expect("sent");
    }
    // (The embedded broker's coordinator may need a few rounds of about the session
    // timeout each: the rejoining hung member drains for a second every round.)
    eventually(Duration::from_secs(45), || {
        second_log.started().iter().any(|id| *id >= 10)
    })
    .await;
    eprintln!(
        "second member answering {:?} after joining",
        joined.elapsed()
    );
    // And the first member took part in the rebalance: it was assigned a partition
    // again and fetched from it (the hung request again, or the new one), instead of
    // being dropped from the group for not answering the rebalance. (A coordinator
    // gives up on a member that does not rejoin; Apache Kafka after
    // max.poll.interval.ms, the embedded broker after about the session timeout.)
    eventually(Duration::from_secs(45), || hung_log.started().len() >= 2).await;
    // Whatever partition 0's new owner is, the request on partition 1 is answered
    // (by the first member only if it was answered before the hung one blocked it).
    let other = requester.wait(other_reply).await.expect("answered");
    assert_eq!(other.error_code(), None);
    // The hung request, abandoned by the first member at the drain deadline, is
    // answered by the second one if it now owns partition 0.
    if second_log.started().contains(&10) {
        eventually(Duration::from_secs(10), || {
            second_log.started().contains(&1)
        })
        .await;
        requester
            .wait(hung_reply)
            .await
            .expect("answered by the new owner");
    }
    drop(first); // its hung handler would hold a graceful drain for its timeout
    second.shutdown().await.expect("shutdown");
}

/// The broker goes away while the responder drains a request: shutdown still ends
/// within the drain timeout plus the bounded final commit and group leave. On the
/// embedded broker it stops answering without closing its connections (a network
/// partition: librdkafka's requests then wait for their socket timeout, a minute); a
/// Tansu or Kafka process is killed.
#[tokio::test]
async fn shutdown_ends_when_the_broker_is_gone() {
    let mut fx = Fixture::with_own_broker(1, 1).await;
    let log = ProbeLog::new(); // its gate never opens
    // librdkafka's default session timeout: a synchronous commit with the coordinator
    // gone waits about that long, or more (the test fixture's 6 s would hide it).
    let running = fx.serve(log.clone(), |b| {
        b.bounds(|b| {
            b.drain_timeout(Duration::from_secs(2))
                .handler_timeout(Duration::from_secs(120))
        })
        .consumer_config("session.timeout.ms", "45000")
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    requester
        .request(&fx.requests, None, &ProbeReq::id(0).bytes())
        .await
        .expect("first reply");
    let hung = ProbeReq::held(1);
    requester
        .send(&fx.requests, Some(0), None, &hung.bytes())
        .await
        .expect("sent");
    log.wait_started(2).await;
    drop(requester);
    match fx.broker.as_embedded() {
        Some(embedded) => embedded
            .set_round_trip_time(1, Duration::from_secs(600))
            .expect("broker silenced"),
        None => fx.broker.kill().expect("broker killed"),
    }
    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(30), running.shutdown()).await;
    let took = started.elapsed();
    assert!(stopped.is_ok(), "shutdown still running after {took:?}");
    eprintln!("shutdown with the broker gone took {took:?}");
    // The drain (2 s), the final commit (at most 4 s), leaving the group (at most 4 s),
    // and slack.
    assert!(took < Duration::from_secs(13), "shutdown took {took:?}");
}

/// Commit metadata another client wrote, not even UTF-8, is logged and ignored: the
/// responder serves the partition from the committed offset. (A broker that refuses
/// such bytes, as Tansu does by closing the connection, gets foreign text instead;
/// Apache Kafka reads the field as a string too.)
#[tokio::test]
async fn foreign_binary_commit_metadata_is_ignored() {
    let fx = Fixture::new(1, 1).await;
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    // Two requests before any responder; the group has committed offset 1 with
    // metadata no responder wrote.
    let (first, _) = requester
        .send(&fx.requests, Some(0), None, &ProbeReq::id(0).bytes())
        .await
        .expect("sent");
    let (second, _) = requester
        .send(&fx.requests, Some(0), None, &ProbeReq::id(1).bytes())
        .await
        .expect("sent");
    let binary = [0xff, 0xfe, b'k', b'r', 0x00, 0x80];
    let (bootstrap, group, topic) = (fx.bootstrap(), &fx.group, &fx.requests);
    if let Err(e) = commit_with_metadata(bootstrap, group, topic, 0, 1, &binary).await {
        eprintln!("the broker refused binary commit metadata ({e}); committing foreign text");
        let text = "kr1@1:\u{1F980}; committed by another client";
        commit_with_metadata(bootstrap, group, topic, 0, 1, text.as_bytes())
            .await
            .expect("commit");
    }
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| b);
    let reply = requester.wait(second).await.expect("served");
    assert_eq!(reply.error_code(), None);
    fx.wait_committed(&fx.requests, 2).await;
    drop(first); // committed before the responder came: not answered
    assert_eq!(log.started(), vec![1]);
    running.shutdown().await.expect("shutdown");
}

/// The environment variable that makes `a_second_signal_exits_at_once` run the
/// responder side (in a child process of the test binary).
const SIGNAL_CHILD: &str = "RESPONDER_TEST_SIGNAL_CHILD";
/// What the child prints once its handler holds the request.
const HANDLER_STARTED: &str = "handler-started";

/// SIGTERM starts a drain that a hung handler would hold for its whole timeout; a
/// second SIGTERM exits at once. The responder runs `Responder::run()` in a child
/// process (this test binary again), so real signals reach it.
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    if let Ok(spec) = std::env::var(SIGNAL_CHILD) {
        return signal_child(&spec).await;
    }
    let fx = Fixture::new(1, 1).await;
    let exe = std::env::current_exe().expect("test binary");
    // Killed on drop, should the test fail with it still running.
    let mut child = Process(
        std::process::Command::new(exe)
            .args(["--exact", "a_second_signal_exits_at_once", "--nocapture"])
            .env(
                SIGNAL_CHILD,
                format!(
                    "{}|{}|{}|{}",
                    fx.bootstrap(),
                    fx.requests,
                    fx.replies,
                    fx.group
                ),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("child"),
    );
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let stdout = child.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line == HANDLER_STARTED {
                let _ = started_tx.send(());
            }
        }
    });
    let pid = child.0.id().to_string();
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let hung = ProbeReq::held(1);
    requester
        .send(&fx.requests, Some(0), None, &hung.bytes())
        .await
        .expect("sent");
    // The child's handler holds the request.
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("reader")
        .expect("the child's handler never started");
    let signal = |pid: &str| {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "signalling the child failed");
    };
    signal(&pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        child.0.try_wait().expect("child").is_none(),
        "the first signal should start a drain held by the hung handler"
    );
    let second = Instant::now();
    signal(&pid);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("child") {
            break status;
        }
        assert!(
            second.elapsed() < Duration::from_secs(5),
            "still running after the second signal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("exited {:?} after the second signal", second.elapsed());
    assert!(status.success(), "{status}");
}

/// The child side: a responder whose handler never answers, drained for up to a
/// minute, run until signalled.
async fn signal_child(spec: &str) {
    let [bootstrap, requests, replies, group]: [&str; 4] = spec
        .split('|')
        .collect::<Vec<_>>()
        .try_into()
        .expect("bootstrap|requests|replies|group");
    let log = ProbeLog::new(); // its gate never opens
    let watch = log.clone();
    tokio::spawn(async move {
        watch.wait_started(1).await;
        println!("{HANDLER_STARTED}");
    });
    kafka_responder::Responder::builder()
        .bootstrap_servers(bootstrap)
        .group_id(group)
        .reply_topics(replies.parse().expect("policy"))
        .consumer_config("fetch.wait.max.ms", "10")
        .bounds(|b| {
            b.drain_timeout(Duration::from_secs(60))
                .handler_timeout(Duration::from_secs(120))
        })
        .route(requests, Json, Probe(log))
        .build()
        .expect("responder")
        .run()
        .await
        .expect("run");
}
