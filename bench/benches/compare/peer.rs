//! The `peer` cell: the contestants on Apache Kafka itself, with the responder users
//! would pick instead, Spring for Apache Kafka (`@KafkaListener` + `@SendTo`,
//! `bench/spring-responder`). Callgrind does not suit a JIT, so every contestant is
//! measured the same way, from outside, after a warm-up that lets the JIT settle:
//!
//! - CPU seconds per 10,000 requests: the process's user + system time
//!   (`/proc/PID/stat`, all threads) over the drain of a backlog;
//! - capacity: that backlog's drain rate (first reply to last). The backlog is queued
//!   while the warmed-up contestant is stopped (`SIGSTOP`), then it is continued;
//! - closed-loop latency: one request in flight at a time;
//! - peak RSS (`VmHWM`) at the end.
//!
//! A fresh Apache Kafka node (one KRaft process, `APACHE_KAFKA_HOME`) per run. Apache
//! Kafka wakes a waiting fetch when data arrives, so every client fetches with a
//! normal wait here, not the 1 ms the embedded broker needs.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kafka_responder::testkit::{KafkaBroker, TestBroker};
use responder_bench::contract::{
    Payload, REPLY_PARTITIONS, REPLY_TOPIC, REQUEST_PARTITIONS, REQUEST_TOPIC,
};
use responder_bench::stats::{Percentiles, median};
use serde_json::{Value, json};

use crate::contestant::{Contestant, Running};
use crate::requester::Requester;
use crate::{Bench, PIPELINE_WINDOW, alternating};

/// `fetch.wait.max.ms` of every client on Apache Kafka.
const FETCH_WAIT_MS: &str = "100";

/// How big the cell is.
pub(crate) struct PeerSizes {
    /// Requests answered before anything is measured (JIT warm-up).
    pub(crate) warm_up: u64,
    /// Closed-loop round trips measured.
    pub(crate) closed: u64,
    /// The backlog drained for capacity and CPU, per payload.
    pub(crate) backlog: [u64; 2],
    pub(crate) rounds: usize,
}

impl PeerSizes {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            PeerSizes {
                warm_up: 2_000,
                closed: 200,
                backlog: [5_000, 500],
                rounds: 1,
            }
        } else {
            PeerSizes {
                warm_up: 30_000,
                closed: 2_000,
                backlog: [50_000, 5_000],
                rounds: 3,
            }
        }
    }
}

/// One contestant's run.
struct PeerRun {
    cpu_s_per_10k: f64,
    per_sec: f64,
    closed: Percentiles,
    peak_rss_kib: u64,
}

/// The contestants of this cell: `BENCH_PEER_CONTESTANTS` (comma-separated), or raw,
/// framework and spring.
fn contestants() -> Vec<Contestant> {
    let names =
        std::env::var("BENCH_PEER_CONTESTANTS").unwrap_or_else(|_| "raw,framework,spring".into());
    names
        .split(',')
        .filter_map(|n| Contestant::named(n.trim()))
        .collect()
}

impl Bench {
    pub(crate) fn peer(&mut self, sizes: &PeerSizes) -> anyhow::Result<Value> {
        let who = contestants();
        if who.is_empty() {
            bail!("BENCH_PEER_CONTESTANTS names no contestant");
        }
        let mut cells = Vec::new();
        for (payload, backlog) in [Payload::Small, Payload::Large]
            .into_iter()
            .zip(sizes.backlog)
            .filter(|(p, _)| crate::selected(*p))
        {
            let mut per: Vec<(Contestant, Vec<PeerRun>)> =
                who.iter().map(|c| (*c, Vec::new())).collect();
            for round in 0..sizes.rounds {
                for i in alternating(per.len(), round) {
                    let c = per[i].0;
                    let r = self.peer_run(c, payload, sizes, backlog)?;
                    eprintln!(
                        "peer {} {} round {round}: {:.3} CPU s/10k, {:.0} requests/s, closed p50 {:.2} p99 {:.2} ms, peak RSS {} KiB",
                        payload.label(),
                        c.name(),
                        r.cpu_s_per_10k,
                        r.per_sec,
                        r.closed.p50_ms,
                        r.closed.p99_ms,
                        r.peak_rss_kib
                    );
                    per[i].1.push(r);
                }
            }
            let contestants: Vec<Value> = per
                .into_iter()
                .map(|(c, runs)| {
                    let pick = |f: fn(&PeerRun) -> f64| runs.iter().map(f).collect::<Vec<_>>();
                    let closed: Vec<Percentiles> = runs.iter().map(|r| r.closed).collect();
                    json!({
                        "contestant": c.name(),
                        "cpu_s_per_10k": median(&pick(|r| r.cpu_s_per_10k)),
                        "cpu_s_per_10k_runs": pick(|r| r.cpu_s_per_10k),
                        "per_sec": median(&pick(|r| r.per_sec)),
                        "per_sec_runs": pick(|r| r.per_sec),
                        "closed_loop": Percentiles::median_of(&closed),
                        "peak_rss_mib": runs.iter().map(|r| r.peak_rss_kib).max().map(|k| k as f64 / 1024.0),
                    })
                })
                .collect();
            cells.push(json!({
                "payload": payload.label(), "backlog": backlog, "warm_up": sizes.warm_up,
                "closed_requests": sizes.closed, "contestants": contestants,
            }));
        }
        Ok(json!({
            "broker": "Apache Kafka (one KRaft node, APACHE_KAFKA_HOME)",
            "fetch_wait_max_ms": FETCH_WAIT_MS,
            "jvm": crate::contestant::jvm_description(),
            "cells": cells,
        }))
    }

    fn peer_run(
        &mut self,
        who: Contestant,
        payload: Payload,
        sizes: &PeerSizes,
        backlog: u64,
    ) -> anyhow::Result<PeerRun> {
        let broker = fresh_kafka()?;
        let bootstrap = broker.bootstrap_servers().to_owned();
        let requester = Requester::new(&bootstrap, payload, FETCH_WAIT_MS)?;
        let mut launch = self.launch(who, &bootstrap, crate::Watch::Nothing, vec![]);
        launch.fetch_wait_ms = FETCH_WAIT_MS;
        let running: Running = who.start(launch)?;
        let mut id: u64 = 0;
        // Warm-up, pipelined: the group forms, the JIT compiles the hot path.
        for _ in 0..sizes.warm_up {
            let in_flight_ok = (id + 1).saturating_sub(PIPELINE_WINDOW);
            requester.wait_answered(in_flight_ok, Duration::from_secs(120))?;
            requester.send(id)?;
            id += 1;
        }
        requester.wait_answered(id, Duration::from_secs(120))?;

        requester.reset();
        for _ in 0..sizes.closed {
            requester.send(id)?;
            id += 1;
            requester.wait_answered(id, Duration::from_secs(60))?;
        }
        let closed = Percentiles::of(&requester.progress().latencies);

        // The backlog, queued while the contestant is stopped.
        signal(&running, "STOP")?;
        requester.reset();
        let queued = requester.queue(id..id + backlog);
        let before = running.cpu_ticks();
        signal(&running, "CONT")?;
        queued?;
        let before = before?;
        id += backlog;
        requester.wait_answered(id, Duration::from_secs(300))?;
        let after = running.cpu_ticks()?;
        let per_sec = requester.progress().per_sec();
        let peak_rss_kib = running.peak_rss_kib()?;
        running.stop(Duration::from_secs(60))?;
        requester.check_complete()?;
        let seconds = after.saturating_sub(before) as f64 / clock_ticks_per_sec()?;
        Ok(PeerRun {
            cpu_s_per_10k: seconds / backlog as f64 * 10_000.0,
            per_sec,
            closed,
            peak_rss_kib,
        })
    }
}

/// A fresh Apache Kafka node with the two topics.
fn fresh_kafka() -> anyhow::Result<TestBroker> {
    let broker = TestBroker::Kafka(Arc::new(
        KafkaBroker::start().context("starting Apache Kafka (is APACHE_KAFKA_HOME set?)")?,
    ));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            broker
                .create_topic(REQUEST_TOPIC, REQUEST_PARTITIONS)
                .await?;
            broker.create_topic(REPLY_TOPIC, REPLY_PARTITIONS).await
        })?;
    Ok(broker)
}

/// Sends `SIGSTOP` or `SIGCONT` to the contestant.
fn signal(running: &Running, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(running.pid().to_string())
        .status()?;
    if !status.success() {
        bail!("kill -{name} {} failed", running.pid());
    }
    Ok(())
}

/// `CLK_TCK`: the unit of `/proc/PID/stat`'s times.
fn clock_ticks_per_sec() -> anyhow::Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("getconf CLK_TCK")
}
