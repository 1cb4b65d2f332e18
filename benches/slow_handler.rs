//! Slow-handler benchmark: throughput per ordering mode with a 10 ms handler, 6
//! partitions and 256 requests in flight, draining a queued backlog on the embedded
//! broker. Every reply is checked against its request.
//!
//! Run: `cargo bench --bench slow_handler` (env `BENCH_REQUESTS`, default 20000).
//! Prints a table and a JSON line.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kafka_responder::testkit::{Requester, RunningResponder, TestBroker, unique_name};
use kafka_responder::{
    ErrorReply, Handler, HeaderConvention, Json, Ordering, RequestContext, Responder, async_trait,
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

struct Slow;

#[async_trait]
impl Handler for Slow {
    type Request = Req;
    type Reply = Resp;
    type Error = ErrorReply;

    async fn handle(&self, r: Req, _cx: &RequestContext) -> Result<Resp, ErrorReply> {
        tokio::time::sleep(HANDLER).await;
        Ok(Resp { id: r.id })
    }
}

struct Cell {
    ordering: Ordering,
    requests: u64,
    secs: f64,
}

async fn run(ordering: Ordering, n: u64) -> anyhow::Result<Cell> {
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
        .route(&requests, Json(Slow))
        .reply_topics(replies.parse()?)
        .ordering(ordering)
        .max_in_flight(IN_FLIGHT)
        .max_in_flight_per_partition(IN_FLIGHT)
        .consumer_config("fetch.wait.max.ms", "1")
        .build()?;
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
    Ok(Cell {
        ordering,
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
    let ceiling = IN_FLIGHT as f64 / HANDLER.as_secs_f64();
    println!(
        "slow handler: {} ms handler, {PARTITIONS} partitions, {IN_FLIGHT} in flight, {n} queued requests (embedded broker)",
        HANDLER.as_millis()
    );
    println!(
        "{:<10} {:>12} {:>14}",
        "ordering", "requests/s", "x bound/latency"
    );
    let mut json = Vec::new();
    for ordering in [Ordering::Partition, Ordering::Key, Ordering::Unordered] {
        let cell = run(ordering, n).await?;
        let rate = cell.requests as f64 / cell.secs;
        println!(
            "{:<10} {:>12.0} {:>14.2}",
            format!("{:?}", cell.ordering),
            rate,
            rate / ceiling
        );
        json.push(format!(
            "{{\"ordering\":\"{:?}\",\"requests\":{},\"seconds\":{:.3},\"per_second\":{:.0},\"of_ceiling\":{:.3}}}",
            cell.ordering, cell.requests, cell.secs, rate, rate / ceiling
        ));
    }
    println!(
        "JSON {{\"bench\":\"slow_handler\",\"ceiling_per_second\":{ceiling:.0},\"cells\":[{}]}}",
        json.join(",")
    );
    Ok(())
}
