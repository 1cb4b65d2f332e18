//! Slow-handler benchmark: throughput per ordering mode with a 10 ms handler, 6
//! partitions and 256 requests in flight, draining a queued backlog on the embedded
//! broker. Every reply is checked against its request.
//!
//! Run: `cargo bench -p responder-bench --bench slow_handler` (env `BENCH_REQUESTS`, default 20000).
//! Prints a table and a JSON line.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use kafka_responder::testkit::{Requester, RunningResponder, TestBroker, unique_name};
use kafka_responder::{
    ErrorReply, Handler, HandlingOrder, HeaderConvention, Json, RequestContext, Responder,
};
use serde::{Deserialize, Serialize};

const PARTITIONS: i32 = 6;
const IN_FLIGHT: usize = 256;
const HANDLER: Duration = Duration::from_millis(10);

#[derive(Serialize, Deserialize)]
struct Req {
    id: u64,
}

#[derive(Serialize, Deserialize)]
struct Resp {
    id: u64,
}

/// Sleeps for its duration; adds the time it really took to the totals, so the
/// report can compare with the handler's actual latency (a 10 ms timer sleeps a
/// little longer).
struct Slow(Duration);

static HANDLED: AtomicU64 = AtomicU64::new(0);
static HANDLER_NANOS: AtomicU64 = AtomicU64::new(0);

impl Handler for Slow {
    type Request = Req;
    type Reply = Resp;
    type Error = ErrorReply;

    async fn handle(&self, r: Req, _cx: &RequestContext) -> Result<Resp, ErrorReply> {
        if !self.0.is_zero() {
            let started = Instant::now();
            tokio::time::sleep(self.0).await;
            HANDLER_NANOS.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
            HANDLED.fetch_add(1, Relaxed);
        }
        Ok(Resp { id: r.id })
    }
}

/// The in-flight bound: 256, or `BENCH_IN_FLIGHT`.
fn in_flight() -> usize {
    std::env::var("BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(IN_FLIGHT)
}

/// Which cells to run: all, or those whose ordering names `BENCH_ONLY` (e.g. `Key`).
fn selected(ordering: HandlingOrder) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| format!("{ordering:?}") == only)
}

struct Cell {
    ordering: HandlingOrder,
    handler: Duration,
    /// Mean time the handler really took.
    actual: Duration,
    requests: u64,
    secs: f64,
}

async fn run(ordering: HandlingOrder, handler: Duration, n: u64) -> anyhow::Result<Cell> {
    // A fresh broker per cell: the embedded broker slows down as data accumulates.
    let broker = TestBroker::embedded()?;
    let (requests, replies) = (unique_name("bench-req"), unique_name("bench-rep"));
    broker.create_topic(&requests, PARTITIONS).await?;
    broker.create_topic(&replies, 1).await?;
    let requester = Requester::new(
        broker.bootstrap_servers(),
        HeaderConvention::spring(),
        &replies,
        0,
    )
    .await?
    .with_timeout(Duration::from_secs(300));

    // Queue the backlog before the responder starts.
    let mut pending = Vec::with_capacity(n as usize);
    let mut sends = Vec::new();
    for id in 0..n {
        let corr = requester.new_correlation_id();
        pending.push((id, corr.clone(), requester.expect(corr.clone())));
        let headers = requester.request_headers(&corr);
        let body = serde_json::to_vec(&Req { id })?;
        let (requester, requests) = (&requester, &requests);
        sends.push(async move {
            let key = format!("wallet-{}", id % 10_000);
            requester
                .send_raw(requests, None, Some(key.as_bytes()), Some(&body), &headers)
                .await
        });
        if sends.len() == 2000 {
            for r in futures_util::future::join_all(sends.drain(..)).await {
                r?;
            }
        }
    }
    for r in futures_util::future::join_all(sends).await {
        r?;
    }

    let responder = Responder::builder()
        .bootstrap_servers(broker.bootstrap_servers())
        .group_id(unique_name("bench"))
        .route(&requests, Json, Slow(handler))
        .reply_topics(replies.parse()?)
        .ordering(ordering)
        .bounds(|b| {
            b.max_in_flight(in_flight())
                .max_in_flight_per_partition(in_flight())
        })
        .consumer_config("fetch.wait.max.ms", "1")
        .build()?;
    HANDLED.store(0, Relaxed);
    HANDLER_NANOS.store(0, Relaxed);
    let running = RunningResponder::spawn(responder);
    let mut first: Option<Instant> = None;
    let mut seen = HashSet::new();
    for (id, corr, p) in pending {
        let reply = requester.wait(p).await?;
        first.get_or_insert_with(Instant::now);
        let body: Resp = reply.json()?;
        anyhow::ensure!(body.id == id, "reply {} for request {id}", body.id);
        anyhow::ensure!(
            reply.header("kafka_correlationId") == Some(&corr[..]),
            "correlation"
        );
        anyhow::ensure!(reply.partition == 0, "reply partition");
        seen.insert(id);
    }
    // Measured from the first reply (group join excluded) to the last.
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    anyhow::ensure!(seen.len() as u64 == n, "missing replies");
    running.shutdown().await?;
    drop(requester);
    let actual = Duration::from_nanos(HANDLER_NANOS.load(Relaxed) / HANDLED.load(Relaxed).max(1));
    Ok(Cell {
        ordering,
        handler,
        actual,
        requests: n,
        secs,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        println!("slow_handler: bench");
        return Ok(());
    }
    let n: u64 = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let ceiling = in_flight() as f64 / HANDLER.as_secs_f64();
    println!(
        "slow handler: {} ms handler, {PARTITIONS} partitions, {} in flight, {n} queued requests (embedded broker)",
        HANDLER.as_millis(),
        in_flight()
    );
    println!(
        "{:<10} {:>8} {:>10} {:>12} {:>16} {:>18}",
        "ordering", "handler", "measured", "requests/s", "x bound/latency", "x bound/measured"
    );
    let mut json = Vec::new();
    // The last cell, with no handler latency, is the broker's (and framework's) own
    // limit on this machine: what the slow-handler cells can reach at best.
    let cells = [
        (HandlingOrder::Partition, HANDLER),
        (HandlingOrder::Key, HANDLER),
        (HandlingOrder::Unordered, HANDLER),
        (HandlingOrder::Unordered, Duration::ZERO),
    ];
    for (ordering, handler) in cells {
        if !selected(ordering) {
            continue;
        }
        let cell = run(ordering, handler, n).await?;
        let rate = cell.requests as f64 / cell.secs;
        let (of_ceiling, of_measured) = if cell.handler.is_zero() {
            ("-".to_owned(), "-".to_owned())
        } else {
            let measured = in_flight() as f64 / cell.actual.as_secs_f64();
            (
                format!("{:.2}", rate / ceiling),
                format!("{:.2}", rate / measured),
            )
        };
        println!(
            "{:<10} {:>6}ms {:>8.2}ms {:>12.0} {:>16} {:>18}",
            format!("{:?}", cell.ordering),
            cell.handler.as_millis(),
            cell.actual.as_secs_f64() * 1e3,
            rate,
            of_ceiling,
            of_measured
        );
        json.push(format!(
            "{{\"ordering\":\"{:?}\",\"handler_ms\":{},\"measured_handler_ms\":{:.3},\"requests\":{},\"seconds\":{:.3},\"per_second\":{:.0}}}",
            cell.ordering,
            cell.handler.as_millis(),
            cell.actual.as_secs_f64() * 1e3,
            cell.requests,
            cell.secs,
            rate
        ));
    }
    println!(
        "JSON {{\"bench\":\"slow_handler\",\"ceiling_per_second\":{ceiling:.0},\"cells\":[{}]}}",
        json.join(",")
    );
    Ok(())
}
