//! The comparison benchmark (issue #9): the KYC responder as a hand-written rdkafka
//! loop (raw), on this framework, and in Python confluent-kafka, each a process of its
//! own against a fresh embedded broker per run, driven by one requester that checks
//! every reply (correlation id, partition, key, body). A wrong or missing reply makes
//! the run fail instead of giving a figure.
//!
//! Cells (`BENCH_CELLS`, default all: `ir,syscalls,capacity,latency,memory`):
//! - `ir`: instructions per request of the responder process, all threads, counted by
//!   callgrind: (Ir(N2) - Ir(N1)) / (N2 - N1) for backlogs queued before it starts,
//!   median of 3 pairs; allocations per request the same way.
//! - `syscalls`: system calls per request of the responder process, all threads,
//!   counted by `perf stat` (the kernel's syscall-entry tracepoints, futex apart), the
//!   same marginal way over 10 k and 50 k requests, median of 3 rounds.
//! - `capacity`: requests/s draining a queued backlog, first reply to last, median of
//!   7 rounds (`BENCH_CAPACITY_ROUNDS`) with the contestants alternating, and the
//!   range of the rounds; peak RSS of each run.
//! - `latency`: one request in flight (p50/p99/p999), then a window of 64 in flight.
//! - `memory`: the framework's peak RSS with 10 k, 50 k and 100 k requests queued and
//!   a 10 ms handler, median of 3 runs (1 with `BENCH_QUICK=1`), the backlog produced
//!   in 16 KiB batches (the Java client's default) and in 1 MB batches (librdkafka's).
//! - `peer` (not in the default set): raw, framework and Spring for Apache Kafka on
//!   Apache Kafka itself, measured from outside: CPU seconds per 10,000 requests,
//!   capacity, closed-loop latency, peak RSS (see `peer.rs`). Needs `APACHE_KAFKA_HOME`
//!   and `BENCH_SPRING_JAR` (`scripts/bench` sets both).
//!
//! `BENCH_QUICK=1` runs every cell small (a smoke run); `BENCH_CONTESTANTS=raw,framework`
//! picks contestants (`framework-bare`, the framework with its per-request metrics and
//! trace context off, and `framework-no-trace`, `framework-no-metrics` with one of them
//! off, run only when named); `BENCH_IR_PAYLOADS=small` (or `large`) runs one payload
//! of the `ir` cell; `BENCH_TRACEPARENT=1` puts a W3C
//! `traceparent` on every request; `BENCH_IR_PAIRS` sets the number of callgrind pairs,
//! `BENCH_IR_REQUESTS=N1,N2` the two 100 B backlogs, `BENCH_MEMORY_QUEUED=N,...` the
//! memory cell's backlogs. Prints a table and writes
//! `compare.json` to `BENCH_OUT` (default `$TMPDIR/responder-bench`).

mod contestant;
mod peer;
mod requester;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use kafka_responder::testkit::EmbeddedBroker;
use responder_bench::contract::{
    Payload, REPLY_PARTITIONS, REPLY_TOPIC, REQUEST_PARTITIONS, REQUEST_TOPIC,
};
use responder_bench::stats::{Percentiles, median, min_max};
use serde_json::{Value, json};

use contestant::{Contestant, Launch, Probe, Running, Syscalls};
use requester::Requester;

/// Every client (contestants and requester) fetches with this wait: neither broker
/// wakes a waiting fetch when data arrives.
const FETCH_WAIT_MS: &str = "1";
const PIPELINE_WINDOW: u64 = 64;

/// What a run measures besides its wall clock.
#[derive(Debug, Clone, Copy)]
enum Watch {
    Nothing,
    /// Instructions (callgrind).
    Instructions,
    /// System calls (`perf stat`).
    Syscalls,
}

fn env_is(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// How big each cell is.
struct Sizes {
    ir: [(u64, u64); 2],
    ir_pairs: usize,
    capacity: [u64; 2],
    /// Rounds of the capacity cell: a drain lasts a second or less, and one round in
    /// three or four lands 20-30 % off the others, so the median needs more than three.
    capacity_rounds: usize,
    syscalls: [(u64, u64); 2],
    rounds: usize,
    closed: u64,
    pipelined: [u64; 2],
    memory: Vec<u64>,
    /// Runs per backlog in the memory cell (a run's peak RSS lands 1-2 MiB apart from
    /// the next one's).
    memory_runs: usize,
}

impl Sizes {
    fn from_env() -> Self {
        let mut sizes = Self::preset();
        if let Some(pairs) = std::env::var("BENCH_IR_PAIRS")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            sizes.ir_pairs = pairs;
        }
        // BENCH_IR_REQUESTS=N1,N2: the two 100 B backlogs (larger ones average the
        // batching's run-to-run variation over more requests).
        if let Some((n1, n2)) = std::env::var("BENCH_IR_REQUESTS").ok().and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        }) && n1 < n2
        {
            sizes.ir[0] = (n1, n2);
        }
        // BENCH_CAPACITY_ROUNDS=N: the capacity cell's rounds.
        if let Some(rounds) = std::env::var("BENCH_CAPACITY_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .filter(|r| *r > 0)
        {
            sizes.capacity_rounds = rounds;
        }
        // BENCH_MEMORY_QUEUED=N,...: the memory cell's backlogs (to see where the peak
        // stops growing).
        if let Some(queued) = std::env::var("BENCH_MEMORY_QUEUED").ok().and_then(|v| {
            v.split(',')
                .map(|n| n.trim().parse().ok())
                .collect::<Option<Vec<u64>>>()
        }) && !queued.is_empty()
        {
            sizes.memory = queued;
        }
        sizes
    }

    fn preset() -> Self {
        if std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1") {
            return Sizes {
                ir: [(200, 600), (50, 150)],
                ir_pairs: 1,
                capacity: [2_000, 200],
                capacity_rounds: 1,
                syscalls: [(500, 1_500), (50, 150)],
                rounds: 1,
                closed: 200,
                pipelined: [1_000, 200],
                memory: vec![1_000, 3_000, 5_000],
                memory_runs: 1,
            };
        }
        Sizes {
            // 10 KiB backlogs stay under the embedded broker's ~5 MiB per partition.
            ir: [(2_000, 8_000), (500, 2_000)],
            ir_pairs: 3,
            capacity: [50_000, 2_000],
            capacity_rounds: 7,
            syscalls: [(10_000, 50_000), (500, 2_000)],
            rounds: 3,
            closed: 2_000,
            pipelined: [20_000, 2_000],
            memory: vec![10_000, 50_000, 100_000],
            memory_runs: 3,
        }
    }
}

const PAYLOADS: [Payload; 2] = [Payload::Small, Payload::Large];

/// Whether `BENCH_IR_PAYLOADS` (`small`, `large`, comma-separated; default both) picks
/// `payload`.
fn selected(payload: Payload) -> bool {
    let name = match payload {
        Payload::Small => "small",
        Payload::Large => "large",
    };
    std::env::var("BENCH_IR_PAYLOADS")
        .map(|v| v.split(',').any(|p| p.trim() == name))
        .unwrap_or(true)
}

/// A fresh broker (both brokers slow down as data accumulates) with the two topics.
fn fresh_broker() -> anyhow::Result<EmbeddedBroker> {
    let broker = EmbeddedBroker::start(1)?;
    broker.create_topic(REQUEST_TOPIC, REQUEST_PARTITIONS)?;
    broker.create_topic(REPLY_TOPIC, REPLY_PARTITIONS)?;
    Ok(broker)
}

struct Bench {
    out: PathBuf,
    runs: usize,
}

/// Closed-loop percentiles, pipelined requests/s, pipelined percentiles.
type LatencyRun = (Percentiles, f64, Percentiles);

/// One backlog drained.
struct Drain {
    per_sec: f64,
    peak_rss_kib: Option<u64>,
    instructions: Option<u64>,
    syscalls: Option<Syscalls>,
    allocations: Option<u64>,
}

impl Bench {
    fn launch<'a>(
        &mut self,
        who: Contestant,
        bootstrap: &'a str,
        watch: Watch,
        env: Vec<(&'static str, String)>,
    ) -> Launch<'a> {
        self.runs += 1;
        let stem = self
            .out
            .join(format!("run-{:03}-{}", self.runs, who.name()));
        Launch {
            bootstrap,
            fetch_wait_ms: FETCH_WAIT_MS,
            probe: match watch {
                Watch::Instructions => Probe::Callgrind(stem.with_extension("callgrind")),
                Watch::Syscalls => Probe::Syscalls(stem.with_extension("perf")),
                // BENCH_MASSIF=1 / BENCH_DHAT=1 (meant with BENCH_CELLS=memory): heap
                // profiles, or allocations, by call site.
                Watch::Nothing if env_is("BENCH_MASSIF") => {
                    Probe::Massif(stem.with_extension("massif"))
                }
                Watch::Nothing if env_is("BENCH_DHAT") => Probe::Dhat(stem.with_extension("dhat")),
                Watch::Nothing => Probe::None,
            },
            env,
            log: stem.with_extension("log"),
        }
    }

    /// Queues `n` requests, produced in batches of up to `batch_bytes` per partition
    /// (`None`: librdkafka's default, 1 MB), starts `who`, waits for every reply, stops
    /// it.
    fn drain(
        &mut self,
        who: Contestant,
        payload: Payload,
        n: u64,
        watch: Watch,
        env: Vec<(&'static str, String)>,
        batch_bytes: Option<u32>,
    ) -> anyhow::Result<Drain> {
        let broker = fresh_broker()?;
        let requester = Requester::batching(
            broker.bootstrap_servers(),
            payload,
            FETCH_WAIT_MS,
            batch_bytes,
        )?;
        requester.queue(0..n)?;
        let launch = self.launch(who, broker.bootstrap_servers(), watch, env);
        let slow = launch.probe.is_slow();
        // Only a process run as it is: under valgrind its RSS is valgrind's, and under
        // perf the process is perf's child.
        let plain = matches!(launch.probe, Probe::None);
        let running = who.start(launch)?;
        let timeout = Duration::from_secs(if slow { 900 } else { 300 });
        requester.wait_answered(n, timeout)?;
        let peak_rss_kib = if plain {
            Some(running.peak_rss_kib()?)
        } else {
            None
        };
        let stopped = running.stop(Duration::from_secs(if slow { 300 } else { 60 }))?;
        requester.check_complete()?;
        Ok(Drain {
            per_sec: requester.progress().per_sec(),
            peak_rss_kib,
            instructions: stopped.instructions,
            syscalls: stopped.syscalls,
            allocations: stopped.allocations,
        })
    }

    /// Marginal instructions and allocations per request, median over pairs.
    fn ir(&mut self, sizes: &Sizes) -> anyhow::Result<Value> {
        let mut cells = Vec::new();
        for (payload, (n1, n2)) in PAYLOADS
            .into_iter()
            .zip(sizes.ir)
            .filter(|(p, _)| selected(*p))
        {
            let mut per: Vec<(Contestant, Vec<Value>)> =
                Contestant::selected().map(|c| (c, Vec::new())).collect();
            for pair in 0..sizes.ir_pairs {
                for (who, runs) in &mut per {
                    let a = self.drain(*who, payload, n1, Watch::Instructions, vec![], None)?;
                    let b = self.drain(*who, payload, n2, Watch::Instructions, vec![], None)?;
                    let ir = |d: &Drain| d.instructions.unwrap_or_default() as f64;
                    let marginal = (ir(&b) - ir(&a)) / (n2 - n1) as f64;
                    let allocs = match (a.allocations, b.allocations) {
                        (Some(x), Some(y)) => json!((y as f64 - x as f64) / (n2 - n1) as f64),
                        _ => Value::Null,
                    };
                    eprintln!(
                        "ir {} {} pair {pair}: Ir({n1}) {} Ir({n2}) {} -> {marginal:.0}/request, allocations {allocs}",
                        payload.label(),
                        who.name(),
                        ir(&a),
                        ir(&b)
                    );
                    runs.push(json!({
                        "n1": n1, "n2": n2, "ir_n1": a.instructions, "ir_n2": b.instructions,
                        "per_request": marginal, "allocations_per_request": allocs,
                    }));
                }
            }
            let contestants: Vec<Value> = per
                .into_iter()
                .map(|(who, runs)| {
                    let pick = |k: &str| {
                        runs.iter()
                            .filter_map(|r| r[k].as_f64())
                            .collect::<Vec<_>>()
                    };
                    let totals = pick("ir_n2");
                    json!({
                        "contestant": who.name(),
                        "instructions_per_request": median(&pick("per_request")),
                        "allocations_per_request": non_empty_median(&pick("allocations_per_request")),
                        "ir_n2_spread": spread(&totals),
                        "runs": runs,
                    })
                })
                .collect();
            cells.push(json!({"payload": payload.label(), "contestants": contestants}));
        }
        Ok(Value::Array(cells))
    }

    /// Marginal system calls per request (futex apart), median over rounds with the
    /// contestants alternating: `perf stat` counts the kernel's syscall-entry
    /// tracepoints in every thread of the process.
    fn syscalls(&mut self, sizes: &Sizes) -> anyhow::Result<Value> {
        let mut cells = Vec::new();
        for (payload, (n1, n2)) in PAYLOADS
            .into_iter()
            .zip(sizes.syscalls)
            .filter(|(p, _)| selected(*p))
        {
            let mut per: Vec<(Contestant, Vec<f64>, Vec<f64>)> = Contestant::selected()
                .map(|c| (c, vec![], vec![]))
                .collect();
            for round in 0..sizes.rounds {
                for i in alternating(per.len(), round) {
                    let who = per[i].0;
                    let a = self.drain(who, payload, n1, Watch::Syscalls, vec![], None)?;
                    let b = self.drain(who, payload, n2, Watch::Syscalls, vec![], None)?;
                    let (Some(sa), Some(sb)) = (a.syscalls, b.syscalls) else {
                        anyhow::bail!("perf stat reported no counts for {}", who.name());
                    };
                    let per_request = |x: u64, y: u64| (y as f64 - x as f64) / (n2 - n1) as f64;
                    let (total, futex) = (
                        per_request(sa.total, sb.total),
                        per_request(sa.futex, sb.futex),
                    );
                    eprintln!(
                        "syscalls {} {} round {round}: {} / {} -> {total:.3}/request, futex {futex:.3}",
                        payload.label(),
                        who.name(),
                        sa.total,
                        sb.total,
                    );
                    per[i].1.push(total);
                    per[i].2.push(futex);
                }
            }
            let contestants: Vec<Value> = per
                .into_iter()
                .map(|(who, total, futex)| {
                    json!({
                        "contestant": who.name(), "n1": n1, "n2": n2,
                        "syscalls_per_request": median(&total),
                        "futex_per_request": median(&futex),
                        "runs": total, "futex_runs": futex,
                    })
                })
                .collect();
            cells.push(json!({"payload": payload.label(), "contestants": contestants}));
        }
        Ok(Value::Array(cells))
    }

    /// Backlog drain rate, rounds alternating the contestants' order.
    fn capacity(&mut self, sizes: &Sizes) -> anyhow::Result<Value> {
        let mut cells = Vec::new();
        for (payload, n) in PAYLOADS.into_iter().zip(sizes.capacity) {
            let mut rates: Vec<(Contestant, Vec<f64>, Vec<u64>)> = Contestant::selected()
                .map(|c| (c, vec![], vec![]))
                .collect();
            for round in 0..sizes.capacity_rounds {
                for i in alternating(rates.len(), round) {
                    let who = rates[i].0;
                    let d = self.drain(who, payload, n, Watch::Nothing, vec![], None)?;
                    eprintln!(
                        "capacity {} {} round {round}: {:.0} requests/s, peak RSS {} KiB",
                        payload.label(),
                        who.name(),
                        d.per_sec,
                        d.peak_rss_kib.unwrap_or_default()
                    );
                    rates[i].1.push(d.per_sec);
                    rates[i].2.extend(d.peak_rss_kib);
                }
            }
            let contestants: Vec<Value> = rates
                .into_iter()
                .map(|(who, r, rss)| {
                    json!({
                        "contestant": who.name(), "requests": n,
                        "per_sec": median(&r), "runs": r,
                        "peak_rss_mib": rss.iter().max().map(|k| *k as f64 / 1024.0),
                    })
                })
                .collect();
            cells.push(json!({"payload": payload.label(), "contestants": contestants}));
        }
        Ok(Value::Array(cells))
    }

    /// Closed loop, then pipelined, on one running contestant.
    fn latency_run(
        &mut self,
        who: Contestant,
        payload: Payload,
        closed: u64,
        pipelined: u64,
    ) -> anyhow::Result<LatencyRun> {
        let broker = fresh_broker()?;
        let requester = Requester::new(broker.bootstrap_servers(), payload, FETCH_WAIT_MS)?;
        let launch = self.launch(who, broker.bootstrap_servers(), Watch::Nothing, vec![]);
        let running: Running = who.start(launch)?;
        // Warm up: the first reply waits for the group to form.
        let mut id = 0;
        let round_trip = |requester: &Requester, id: &mut u64| -> anyhow::Result<()> {
            requester.send(*id)?;
            *id += 1;
            requester.wait_answered(*id, Duration::from_secs(60))
        };
        for _ in 0..200 {
            round_trip(&requester, &mut id)?;
        }
        requester.reset();
        for _ in 0..closed {
            round_trip(&requester, &mut id)?;
        }
        let closed_p = Percentiles::of(&requester.progress().latencies);

        requester.reset();
        for _ in 0..pipelined {
            let in_flight_ok = (id + 1).saturating_sub(PIPELINE_WINDOW);
            requester.wait_answered(in_flight_ok, Duration::from_secs(60))?;
            requester.send(id)?;
            id += 1;
        }
        requester.wait_answered(id, Duration::from_secs(120))?;
        let (pipe_p, per_sec) = {
            let p = requester.progress();
            (Percentiles::of(&p.latencies), p.per_sec())
        };
        running.stop(Duration::from_secs(60))?;
        requester.check_complete()?;
        Ok((closed_p, per_sec, pipe_p))
    }

    fn latency(&mut self, sizes: &Sizes) -> anyhow::Result<Value> {
        let mut cells = Vec::new();
        for (payload, pipelined) in PAYLOADS.into_iter().zip(sizes.pipelined) {
            let mut per: Vec<(Contestant, Vec<LatencyRun>)> =
                Contestant::selected().map(|c| (c, vec![])).collect();
            for round in 0..sizes.rounds {
                for i in alternating(per.len(), round) {
                    let who = per[i].0;
                    let r = self.latency_run(who, payload, sizes.closed, pipelined)?;
                    eprintln!(
                        "latency {} {} round {round}: closed p50 {:.2} p99 {:.2} p999 {:.2} ms; \
                         pipelined {:.0}/s p50 {:.2} p99 {:.2} ms",
                        payload.label(),
                        who.name(),
                        r.0.p50_ms,
                        r.0.p99_ms,
                        r.0.p999_ms,
                        r.1,
                        r.2.p50_ms,
                        r.2.p99_ms
                    );
                    per[i].1.push(r);
                }
            }
            let contestants: Vec<Value> = per
                .into_iter()
                .map(|(who, runs)| {
                    let closed: Vec<Percentiles> = runs.iter().map(|r| r.0).collect();
                    let rates: Vec<f64> = runs.iter().map(|r| r.1).collect();
                    let piped: Vec<Percentiles> = runs.iter().map(|r| r.2).collect();
                    json!({
                        "contestant": who.name(),
                        "closed_loop": Percentiles::median_of(&closed),
                        "pipelined_window": PIPELINE_WINDOW,
                        "pipelined_per_sec": median(&rates),
                        "pipelined_per_sec_runs": rates,
                        "pipelined": Percentiles::median_of(&piped),
                    })
                })
                .collect();
            cells.push(json!({"payload": payload.label(), "contestants": contestants}));
        }
        Ok(Value::Array(cells))
    }

    /// The framework's peak RSS with a slow handler, as the backlog grows: the median
    /// of `memory_runs` runs per backlog, for each of [`REQUESTER_BATCHES`]. A fetch
    /// returns whole producer batches, so the consumer's prefetch cannot be smaller
    /// than one batch per partition: with librdkafka's 1 MB batches, the first fetches
    /// of a large backlog bring thousands of records per partition whatever the
    /// prefetch bounds. With `BENCH_MASSIF=1`, each run is also profiled by massif (heap over
    /// time, by call site; the RSS figures are then valgrind's, not comparable).
    fn memory(&mut self, sizes: &Sizes) -> anyhow::Result<Value> {
        let mut rows = Vec::new();
        for (batch_bytes, batch_label) in REQUESTER_BATCHES {
            for &n in &sizes.memory {
                let mut runs = Vec::new();
                for _ in 0..sizes.memory_runs {
                    let env = vec![("BENCH_HANDLER_DELAY_MS", "10".to_owned())];
                    let d = self.drain(
                        Contestant::Framework,
                        Payload::Small,
                        n,
                        Watch::Nothing,
                        env,
                        Some(batch_bytes),
                    )?;
                    runs.push(d.peak_rss_kib.unwrap_or_default() as f64 / 1024.0);
                }
                let mib = median(&runs);
                eprintln!(
                    "memory: {n} queued in {batch_label} batches, 10 ms handler: peak RSS {mib:.1} MiB (runs {runs:.1?})"
                );
                rows.push(json!({
                    "queued": n,
                    "handler_ms": 10,
                    "requester_batch_bytes": batch_bytes,
                    "peak_rss_mib": mib,
                    "peak_rss_mib_runs": runs,
                }));
            }
        }
        Ok(Value::Array(rows))
    }
}

/// The requester's batch sizes in the memory cell (`batch.size`): the Java client's
/// default, which Spring's and SmallRye's requesters send with, and librdkafka's.
const REQUESTER_BATCHES: [(u32, &str); 2] = [(16_384, "16 KiB"), (1_000_000, "1 MB")];

/// The contestants' order in round `round`: each starts one place later than in the
/// round before, so none always runs first (or last) on a machine warming up.
fn alternating(len: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..len).map(move |k| (k + round) % len)
}

fn non_empty_median(v: &[f64]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(median(v))
    }
}

/// (max - min) / median of repeated totals: how well the same run repeats.
fn spread(v: &[f64]) -> Value {
    if v.len() < 2 {
        return Value::Null;
    }
    match min_max(v) {
        Some((lo, hi)) => json!((hi - lo) / median(v)),
        None => Value::Null,
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench` (and any filter): configuration is by environment.
    let out = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("responder-bench"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let cells = std::env::var("BENCH_CELLS")
        .unwrap_or_else(|_| "ir,syscalls,capacity,latency,memory".into());
    let sizes = Sizes::from_env();
    let mut bench = Bench {
        out: out.clone(),
        runs: 0,
    };
    let mut results = serde_json::Map::new();
    results.insert("machine".into(), report::machine());
    results.insert("fetch_wait_max_ms".into(), json!(FETCH_WAIT_MS));
    for cell in cells.split(',').map(str::trim) {
        let value = match cell {
            "ir" => bench.ir(&sizes)?,
            "capacity" => bench.capacity(&sizes)?,
            "latency" => bench.latency(&sizes)?,
            "memory" => bench.memory(&sizes)?,
            "syscalls" => bench.syscalls(&sizes)?,
            "peer" => bench.peer(&peer::PeerSizes::new(
                std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1"),
            ))?,
            other => anyhow::bail!(
                "unknown cell {other} (ir, syscalls, capacity, latency, memory, peer)"
            ),
        };
        results.insert(cell.to_owned(), value);
    }
    let results = Value::Object(results);
    print!("{}", report::table(&results));
    let path = out.join("compare.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    println!("JSON: {}", path.display());
    Ok(())
}

mod report;
