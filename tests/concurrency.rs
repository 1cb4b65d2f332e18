//! Ordering and bounds: requests of one partition in order (Partition ordering), of
//! one key in order with different keys concurrent (Key ordering, the default),
//! partitions concurrent, and in-flight bounds that apply backpressure.

mod common;

use common::{Fixture, ProbeLog, ProbeReply, ProbeReq, one_produce_request_at_a_time};
use kafka_responder::testkit::{Requester, ResponseError, api_key};
use kafka_responder::{HandlingOrder, HeaderConvention};
use std::sync::atomic::Ordering::SeqCst;

/// A request: partition (or the partitioner's choice), key, body.
type Spec<'a> = (Option<i32>, Option<&'a [u8]>, ProbeReq);

/// Sends every request at once (to the given partition, with the given key) and
/// waits for all replies, returned in send order.
async fn send_all(fx: &Fixture, requester: &Requester, requests: &[Spec<'_>]) -> Vec<ProbeReply> {
    let mut pending = Vec::new();
    for (partition, key, req) in requests {
        let corr = requester.new_correlation_id();
        pending.push(requester.expect(corr.clone()));
        requester
            .send_raw(
                &fx.requests,
                *partition,
                *key,
                Some(&req.bytes()),
                &requester.request_headers(&corr),
            )
            .await
            .expect("sent");
    }
    let mut replies = Vec::new();
    for p in pending {
        let reply = requester.wait(p).await.expect("reply");
        assert_eq!(reply.error_code(), None, "{:?}", reply.error_message());
        replies.push(reply.json().expect("json"));
    }
    replies
}

#[tokio::test]
async fn partition_ordering_handles_one_request_at_a_time_in_offset_order() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| b.ordering(HandlingOrder::Partition));
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    // Earlier requests sleep longer: any concurrency would reorder them.
    let reqs: Vec<_> = (0..12u64)
        .map(|id| {
            let key: &[u8] = if id % 2 == 0 { b"even" } else { b"odd" };
            let req = ProbeReq {
                sleep_ms: 60 - 5 * id,
                ..ProbeReq::id(id)
            };
            (Some(0), Some(key), req)
        })
        .collect();
    send_all(&fx, &requester, &reqs).await;
    assert_eq!(log.finished(), (0..12).collect::<Vec<_>>());
    assert_eq!(log.max_running.load(SeqCst), 1);
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn partitions_are_handled_concurrently() {
    let fx = Fixture::new(4, 1).await;
    // All four requests must be inside the handler at the same time to pass the barrier.
    let log = ProbeLog::with_barrier(4);
    let running = fx.serve(log.clone(), |b| b.ordering(HandlingOrder::Partition));
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    let reqs: Vec<_> = (0..4)
        .map(|p| {
            let req = ProbeReq {
                barrier: true,
                ..ProbeReq::id(p as u64)
            };
            (Some(p), None, req)
        })
        .collect();
    let replies = send_all(&fx, &requester, &reqs).await;
    let mut partitions: Vec<i32> = replies.iter().map(|r| r.partition).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, vec![0, 1, 2, 3]);
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn key_ordering_keeps_a_key_in_order_and_runs_keys_concurrently() {
    let fx = Fixture::new(1, 1).await;
    // Three keys in one partition must be in the handler together to pass the barrier.
    let log = ProbeLog::with_barrier(3);
    // Key ordering is the default
    let running = fx.serve(log.clone(), |b| b);
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    let keys: [&[u8]; 3] = [b"wallet-a", b"wallet-b", b"wallet-c"];
    let mut reqs = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        reqs.push((
            Some(0),
            Some(*key),
            ProbeReq {
                barrier: true,
                ..ProbeReq::id(k as u64 * 100)
            },
        ));
    }
    // Then five more per key, earlier ones slower: a key's requests must still finish
    // in order.
    for i in 1..=5u64 {
        for (k, key) in keys.iter().enumerate() {
            reqs.push((
                Some(0),
                Some(*key),
                ProbeReq {
                    sleep_ms: 40 - 6 * i,
                    ..ProbeReq::id(k as u64 * 100 + i)
                },
            ));
        }
    }
    send_all(&fx, &requester, &reqs).await;
    let finished = log.finished();
    for k in 0..3u64 {
        let of_key: Vec<u64> = finished
            .iter()
            .copied()
            .filter(|id| id / 100 == k)
            .collect();
        assert_eq!(of_key, (0..=5).map(|i| k * 100 + i).collect::<Vec<_>>());
    }
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn in_flight_bounds_apply_backpressure() {
    let fx = Fixture::new(2, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        b.ordering(HandlingOrder::Unordered)
            .bounds(|b| b.max_in_flight(3))
    });
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    let reqs: Vec<_> = (0..30u64)
        .map(|id| {
            let req = ProbeReq {
                sleep_ms: 30,
                ..ProbeReq::id(id)
            };
            (Some((id % 2) as i32), None, req)
        })
        .collect();
    send_all(&fx, &requester, &reqs).await;
    let max = log.max_running.load(SeqCst);
    assert!(max <= 3, "{max} requests ran at once with a bound of 3");
    assert!(max >= 2, "unordered requests never overlapped");
    running.shutdown().await.expect("shutdown");
}

/// The byte bound holds back requests as the count bound does: with records of about
/// 4.1 KB and a bound of 10,000 bytes, a request is taken while fewer than 10,000 bytes
/// are held, so exactly three are in flight (never the 1024 `max_in_flight` allows)
/// while the handlers are held, and at most three once they run.
#[tokio::test]
async fn in_flight_byte_bound_applies_backpressure() {
    let fx = Fixture::new(2, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        b.ordering(HandlingOrder::Unordered)
            .bounds(|b| b.max_in_flight_bytes(10_000))
    });
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    let mut pending = Vec::new();
    for id in 0..12u64 {
        // The probe ignores fields it does not know: the padding only makes it large.
        let mut body = serde_json::to_value(ProbeReq::held(id)).expect("json");
        body["padding"] = "x".repeat(4000).into();
        let corr = requester.new_correlation_id();
        pending.push(requester.expect(corr.clone()));
        let payload = serde_json::to_vec(&body).expect("json");
        requester
            .send_raw(
                &fx.requests,
                Some((id % 2) as i32),
                None,
                Some(&payload),
                &requester.request_headers(&corr),
            )
            .await
            .expect("sent");
    }
    log.wait_started(3).await;
    // Nothing more is taken while the three hold their bytes.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        log.started().len(),
        3,
        "12,300 bytes held with 10,000 allowed"
    );
    log.open_gate(12);
    for p in pending {
        let reply = requester.wait(p).await.expect("reply");
        assert_eq!(reply.error_code(), None, "{:?}", reply.error_message());
    }
    let max = log.max_running.load(SeqCst);
    assert!(
        max <= 3,
        "{max} requests of 4 KB ran at once with 10,000 bytes allowed"
    );
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn per_partition_bound_caps_a_partitions_concurrency() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        b.ordering(HandlingOrder::Unordered)
            .bounds(|b| b.max_in_flight_per_partition(4))
    });
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    let reqs: Vec<_> = (0..40u64)
        .map(|id| {
            let req = ProbeReq {
                sleep_ms: 20,
                ..ProbeReq::id(id)
            };
            (Some(0), None, req)
        })
        .collect();
    send_all(&fx, &requester, &reqs).await;
    // At most 4 run at once; the partition's fetching is paused meanwhile (records
    // fetched before the pause took effect wait in the responder, not in the handler).
    let max = log.max_running.load(SeqCst);
    assert!(
        (2..=4).contains(&max),
        "{max} requests of one partition ran at once"
    );
    running.shutdown().await.expect("shutdown");
}

/// A reply the broker has not acknowledged yet still holds its in-flight slot, so
/// `max_in_flight` bounds everything the responder holds: with a bound of 2 and the
/// broker refusing the replies' produce with a retriable error for a while, no third
/// request is handled until the first two replies are acknowledged.
#[tokio::test]
#[cfg_attr(
    not(embedded_broker),
    ignore = "needs the embedded broker's fault injection"
)]
async fn unacknowledged_replies_hold_their_in_flight_slots() {
    let fx = Fixture::new(1, 1).await;
    let embedded = fx.fault_injection();
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        one_produce_request_at_a_time(b)
            .ordering(HandlingOrder::Unordered)
            .bounds(|b| b.max_in_flight(2))
    });
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    // One reply through first: the producer has its id and the topic's metadata.
    requester
        .request(&fx.requests, None, &ProbeReq::id(0).bytes())
        .await
        .expect("first reply");
    // Five held requests; with a bound of 2, two are in the handler.
    let mut pending = Vec::new();
    for id in 1..=5u64 {
        let held = ProbeReq::held(id);
        let corr = requester.new_correlation_id();
        pending.push(requester.expect(corr.clone()));
        let headers = requester.request_headers(&corr);
        requester
            .send_raw(&fx.requests, Some(0), None, Some(&held.bytes()), &headers)
            .await
            .expect("sent");
    }
    log.wait_started(3).await;
    // From now on the broker refuses produces (the replies) with a retriable error for
    // a while; the handler answers the two at once.
    embedded.push_request_errors(api_key::PRODUCE, &[ResponseError::NotEnoughReplicas; 6]);
    log.open_gate(5);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = log.started.lock().expect("lock").len();
    assert_eq!(
        started, 3,
        "requests handled (1 before the refusals): unacknowledged replies must hold their slots"
    );
    for p in pending {
        requester
            .wait(p)
            .await
            .expect("every reply, once the broker accepts them");
    }
    assert_eq!(log.started.lock().expect("lock").len(), 6);
    running.shutdown().await.expect("shutdown");
}
