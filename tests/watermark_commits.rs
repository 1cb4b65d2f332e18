//! Concurrency inside a partition with watermark commits: `Key` ordering lifts the
//! one-request-at-a-time cap of `Partition` ordering, and after a crash the next owner
//! answers only what was not settled (the commit metadata lists the rest).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{Fixture, Probe, ProbeLog, ProbeReq, eventually};
use kafka_responder::testkit::{Requester, RunningResponder, committed};
use kafka_responder::{HandlingOrder, HeaderConvention, Json};

/// Sends `n` requests over `keys` keys, all at once, and returns the seconds from the
/// first send to the last reply, checking that each key's replies come back in order.
async fn timed_run(fx: &Fixture, requester: &Requester, n: u64, keys: u64, sleep_ms: u64) -> f64 {
    let requests: Vec<_> = (0..n)
        .map(|id| {
            let corr = requester.new_correlation_id();
            let key = format!("wallet-{}", id % keys);
            let body = ProbeReq {
                sleep_ms,
                ..ProbeReq::id(id)
            }
            .bytes();
            (id, corr, key, body)
        })
        .collect();
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut sends = Vec::new();
    for (id, corr, key, body) in &requests {
        pending.push((*id, requester.expect(corr.clone())));
        let headers = requester.request_headers(corr);
        sends.push(async move {
            requester
                .send_raw(
                    &fx.requests,
                    Some(0),
                    Some(key.as_bytes()),
                    Some(body),
                    &headers,
                )
                .await
                .expect("sent")
        });
    }
    // All requests are produced at once, not one round trip after another.
    futures_util::future::join_all(sends).await;
    let mut last_offset_of_key: HashMap<u64, i64> = HashMap::new();
    let mut replies = Vec::new();
    for (id, p) in pending {
        let reply = requester.wait(p).await.expect("reply");
        replies.push((id, reply));
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Replies of one key arrive in the order of their requests.
    replies.sort_by_key(|(_, r)| r.offset);
    for (id, _) in replies {
        let key = id % keys;
        let prev = last_offset_of_key.insert(key, id as i64);
        assert!(
            prev.is_none_or(|p| p < id as i64),
            "key {key} answered out of order"
        );
    }
    elapsed
}

#[tokio::test]
async fn key_ordering_answers_ten_times_faster_than_partition_ordering_with_a_slow_handler() {
    const N: u64 = 200;
    const KEYS: u64 = 100;
    let mut rates = Vec::new();
    for ordering in [HandlingOrder::Partition, HandlingOrder::Key] {
        let fx = Fixture::new(1, 1).await;
        let running = fx.serve(ProbeLog::new(), |b| b.ordering(ordering));
        let requester = fx.requester(HeaderConvention::spring(), 0).await;
        // Warm up: the group has formed and the partition is assigned.
        requester
            .request(&fx.requests, None, &ProbeReq::id(999).bytes())
            .await
            .expect("warm-up");
        let secs = timed_run(&fx, &requester, N, KEYS, 10).await;
        rates.push(N as f64 / secs);
        eprintln!(
            "{ordering:?}: {N} requests in {secs:.3} s = {:.0} requests/s",
            N as f64 / secs
        );
        running.shutdown().await.expect("shutdown");
    }
    assert!(
        rates[1] >= 10.0 * rates[0],
        "Key ordering {:.0}/s is not 10x Partition ordering {:.0}/s",
        rates[1],
        rates[0]
    );
}

#[tokio::test]
async fn after_a_crash_only_unsettled_requests_are_answered_again() {
    let fx = Fixture::new(1, 1).await;
    let first_log = ProbeLog::new();
    let first = RunningResponder::spawn(
        fx.builder()
            .route(&fx.requests, Json, Probe(first_log.clone()))
            .build()
            .expect("responder"),
    );
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    // 20 requests on 20 keys in one partition; every fourth is held in the handler.
    const N: u64 = 20;
    let held: BTreeSet<u64> = (0..N).filter(|id| id % 4 == 1).collect();
    for id in 0..N {
        let req = ProbeReq {
            gated: held.contains(&id),
            ..ProbeReq::id(id)
        };
        let corr = requester.new_correlation_id();
        requester
            .send_raw(
                &fx.requests,
                Some(0),
                Some(format!("k{id}").as_bytes()),
                Some(&req.bytes()),
                &requester.request_headers(&corr),
            )
            .await
            .expect("sent");
    }
    eventually(Duration::from_secs(20), || {
        first.metrics().replied == N - held.len() as u64
    })
    .await;
    // The watermark is held at the first held request (offset 1); the commit metadata
    // lists the 15 settled above it. Let the commit that lists them all go out (one
    // from a tick before the last replies settled lists fewer), then crash.
    let watermark = 1;
    // The last range ends at the last request, relative to the watermark.
    let lists_all = format!("-{}", N - 1 - watermark as u64);
    let mut last = None;
    for _ in 0..100 {
        last = committed(fx.bootstrap(), &fx.group, &fx.requests, 0)
            .await
            .expect("committed");
        if last
            .as_ref()
            .is_some_and(|(o, md)| *o == watermark && md.ends_with(&lists_all))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (offset, metadata) = last.expect("a commit");
    assert_eq!(offset, watermark, "committed past a request in flight");
    // Tansu 0.6 does not keep commit metadata: there the next owner falls back to
    // answering everything from the watermark on (duplicates, never loss).
    let broker_keeps_metadata = !metadata.is_empty();
    eprintln!("committed {offset} with metadata {metadata:?}");
    first.kill().await;

    let second_log = ProbeLog::new();
    second_log.open_gate(1000);
    let second = RunningResponder::spawn(
        fx.builder()
            .route(&fx.requests, Json, Probe(second_log.clone()))
            .build()
            .expect("responder"),
    );
    // Every record from the watermark on is either answered again or skipped.
    let from_watermark = N - watermark as u64;
    eventually(Duration::from_secs(20), || {
        let m = second.metrics();
        m.replied + m.already_settled >= from_watermark
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again: BTreeSet<u64> = second_log.started().into_iter().collect();
    let m = second.metrics();
    eprintln!(
        "answered {N}, answered again {} ({:?}), skipped as settled {}, lost 0",
        again.len(),
        again,
        m.already_settled
    );
    if broker_keeps_metadata {
        assert_eq!(
            again, held,
            "only the requests in flight at the crash are answered again"
        );
    } else {
        assert_eq!(
            again,
            (watermark as u64..N).collect(),
            "fallback: all from the watermark"
        );
    }
    // Settled above the watermark: every offset after it but the other held ones.
    let settled_above = N - (watermark as u64 + 1) - (held.len() as u64 - 1);
    let skipped = if broker_keeps_metadata {
        settled_above
    } else {
        0
    };
    assert_eq!(m.already_settled, skipped);
    // Every request got at least one reply.
    let mut answered: BTreeSet<u64> = BTreeSet::new();
    for r in requester.received() {
        answered.insert(r.json::<common::ProbeReply>().expect("json").id);
    }
    assert_eq!(answered, (0..N).collect());
    second.shutdown().await.expect("shutdown");
}
