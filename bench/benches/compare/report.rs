//! The printed table and the machine description.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// CPU model, cores, memory and kernel of this machine.
pub(crate) fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned());
    let mem_kib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory_gib": mem_kib.map(|k| (k as f64 / 1048576.0).round()),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
    })
}

fn find<'a>(cell: &'a Value, who: &str) -> &'a Value {
    cell["contestants"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["contestant"] == who))
        .unwrap_or(&Value::Null)
}

fn num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "-".into(),
    }
}

/// The slowest and fastest of a contestant's rounds, as `min-max`.
fn range(runs: &Value) -> String {
    let runs: Vec<f64> = runs
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    responder_bench::stats::min_max(&runs)
        .map_or_else(|| "-".into(), |(min, max)| format!("{min:.0}-{max:.0}"))
}

fn ratio(a: &Value, b: &Value) -> String {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// The results as Markdown tables.
pub(crate) fn table(r: &Value) -> String {
    let mut t = String::new();
    let m = &r["machine"];
    let _ = writeln!(
        t,
        "\nmachine: {} ({} cores, {} GiB), kernel {}; fetch.wait.max.ms={}",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or("?"),
        r["fetch_wait_max_ms"].as_str().unwrap_or("?")
    );
    if let Some(cells) = r["ir"].as_array() {
        let _ = writeln!(
            t,
            "\n### Instructions per request (callgrind, all threads, marginal, median of pairs)\n\n\
             | payload | raw | framework | python | framework/raw | python/raw | allocations raw | allocations framework | Ir(N2) spread raw / framework / python |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for cell in cells {
            let ir = |who| &find(cell, who)["instructions_per_request"];
            let al = |who| &find(cell, who)["allocations_per_request"];
            let sp = |who| match find(cell, who)["ir_n2_spread"].as_f64() {
                Some(s) => format!("{:.2} %", s * 100.0),
                None => "-".into(),
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
                cell["payload"].as_str().unwrap_or("?"),
                num(ir("raw"), 0),
                num(ir("framework"), 0),
                num(ir("python"), 0),
                ratio(ir("framework"), ir("raw")),
                ratio(ir("python"), ir("raw")),
                num(al("raw"), 1),
                num(al("framework"), 1),
                sp("raw"),
                sp("framework"),
                sp("python"),
            );
        }
    }
    // Exactly-once replies against the default at-least-once, per cell that has both.
    for (kind, field, unit) in [
        ("ir", "instructions_per_request", "Ir/request"),
        ("capacity", "per_sec", "requests/s"),
    ] {
        for cell in r[kind].as_array().into_iter().flatten() {
            let get = |who| find(cell, who)[field].as_f64();
            if let (Some(once), Some(least)) = (get("framework-exactly-once"), get("framework")) {
                let _ = writeln!(
                    t,
                    "\n{} {kind}: exactly-once {once:.0} {unit}; at-least-once {least:.0}; {:+.1} %",
                    cell["payload"].as_str().unwrap_or("?"),
                    (once / least - 1.0) * 100.0
                );
            }
        }
    }
    if let Some(cells) = r["ir"].as_array() {
        for cell in cells {
            let ir = |who| find(cell, who)["instructions_per_request"].as_f64();
            let Some(off) = ir("framework-bare") else {
                continue;
            };
            for (who, what) in [
                ("framework", "metrics and trace context on"),
                ("framework-no-trace", "metrics on, trace context off"),
                ("framework-no-metrics", "trace context on, metrics off"),
            ] {
                if let Some(on) = ir(who) {
                    let _ = writeln!(
                        t,
                        "\n{}: {what}: {on:.0} Ir/request; both off: {off:.0}; {:+.1} %",
                        cell["payload"].as_str().unwrap_or("?"),
                        (on / off - 1.0) * 100.0
                    );
                }
            }
        }
    }
    if let Some(cells) = r["syscalls"].as_array() {
        let _ = writeln!(
            t,
            "\n### System calls per request (perf stat, all threads, marginal, median)\n\n\
             | payload | raw | framework | python | framework/raw | futex raw / framework / python |\n\
             |---|---|---|---|---|---|"
        );
        for cell in cells {
            let sc = |who| &find(cell, who)["syscalls_per_request"];
            let fx = |who| num(&find(cell, who)["futex_per_request"], 3);
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} / {} / {} |",
                cell["payload"].as_str().unwrap_or("?"),
                num(sc("raw"), 3),
                num(sc("framework"), 3),
                num(sc("python"), 3),
                ratio(sc("framework"), sc("raw")),
                fx("raw"),
                fx("framework"),
                fx("python"),
            );
        }
    }
    if let Some(cells) = r["capacity"].as_array() {
        let _ = writeln!(
            t,
            "\n### Capacity: draining a queued backlog (requests/s, median)\n\n\
             | payload | requests | raw | framework | python | framework/raw | framework/python | rounds: raw range / framework range | peak RSS MiB raw / framework / python |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for cell in cells {
            let ps = |who| &find(cell, who)["per_sec"];
            let rss = |who| num(&find(cell, who)["peak_rss_mib"], 1);
            let rounds = find(cell, "raw")["runs"].as_array().map_or(0, Vec::len);
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {rounds}: {} / {} | {} / {} / {} |",
                cell["payload"].as_str().unwrap_or("?"),
                find(cell, "raw")["requests"],
                num(ps("raw"), 0),
                num(ps("framework"), 0),
                num(ps("python"), 0),
                ratio(ps("framework"), ps("raw")),
                ratio(ps("framework"), ps("python")),
                range(&find(cell, "raw")["runs"]),
                range(&find(cell, "framework")["runs"]),
                rss("raw"),
                rss("framework"),
                rss("python"),
            );
        }
    }
    if let Some(cells) = r["latency"].as_array() {
        let _ = writeln!(
            t,
            "\n### Latency (ms, median of rounds): one request in flight, then a window of {}\n\n\
             | payload | contestant | closed p50 | closed p99 | closed p999 | pipelined requests/s | pipelined p50 | pipelined p99 | pipelined p999 |\n\
             |---|---|---|---|---|---|---|---|---|",
            super::PIPELINE_WINDOW
        );
        for cell in cells {
            for who in ["raw", "framework", "python"] {
                let c = find(cell, who);
                let (cl, pi) = (&c["closed_loop"], &c["pipelined"]);
                let _ = writeln!(
                    t,
                    "| {} | {who} | {} | {} | {} | {} | {} | {} | {} |",
                    cell["payload"].as_str().unwrap_or("?"),
                    num(&cl["p50_ms"], 2),
                    num(&cl["p99_ms"], 2),
                    num(&cl["p999_ms"], 2),
                    num(&c["pipelined_per_sec"], 0),
                    num(&pi["p50_ms"], 2),
                    num(&pi["p99_ms"], 2),
                    num(&pi["p999_ms"], 2),
                );
            }
        }
    }
    if let Some(cells) = r["peer"]["cells"].as_array() {
        let jvm = &r["peer"]["jvm"];
        let _ = writeln!(
            t,
            "\n### On Apache Kafka, with Spring for Apache Kafka (fetch.wait.max.ms={}, after a warm-up of {} requests; JVM: {}, flags: {})\n\n\
             | payload | contestant | CPU s per 10k | backlog requests/s | closed p50 ms | closed p99 ms | peak RSS MiB | CPU vs framework | RSS vs framework |\n\
             |---|---|---|---|---|---|---|---|---|",
            r["peer"]["fetch_wait_max_ms"].as_str().unwrap_or("?"),
            cells.first().map_or(Value::Null, |c| c["warm_up"].clone()),
            jvm["version"].as_str().unwrap_or("?"),
            jvm["flags"].as_str().unwrap_or("?"),
        );
        for cell in cells {
            let ours = find(cell, "framework");
            for c in cell["contestants"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    cell["payload"].as_str().unwrap_or("?"),
                    c["contestant"].as_str().unwrap_or("?"),
                    num(&c["cpu_s_per_10k"], 3),
                    num(&c["per_sec"], 0),
                    num(&c["closed_loop"]["p50_ms"], 2),
                    num(&c["closed_loop"]["p99_ms"], 2),
                    num(&c["peak_rss_mib"], 1),
                    ratio(&c["cpu_s_per_10k"], &ours["cpu_s_per_10k"]),
                    ratio(&c["peak_rss_mib"], &ours["peak_rss_mib"]),
                );
            }
        }
    }
    if let Some(rows) = r["memory"].as_array() {
        memory_table(&mut t, rows);
    }
    t
}

/// The memory cell: peak RSS by backlog, one column per requester batch size (rows
/// from before the cell had batch sizes were librdkafka's default, 1 MB), and each
/// column's largest backlog against its smallest.
fn memory_table(t: &mut String, rows: &[Value]) {
    let batch = |row: &Value| row["requester_batch_bytes"].as_u64().unwrap_or(1_000_000);
    let mut batches: Vec<u64> = rows.iter().map(batch).collect();
    batches.sort_unstable();
    batches.dedup();
    let mut queued: Vec<u64> = rows.iter().filter_map(|r| r["queued"].as_u64()).collect();
    queued.sort_unstable();
    queued.dedup();
    let label = |b: u64| {
        if b.is_multiple_of(1024) {
            format!("{} KiB", b / 1024)
        } else {
            format!("{} MB", b as f64 / 1e6)
        }
    };
    let _ = write!(
        t,
        "\n### Framework peak RSS, 10 ms handler, 100 B requests queued (median of runs), by the requester's batch size\n\n| queued |"
    );
    for &b in &batches {
        let _ = write!(t, " {} batches, MiB |", label(b));
    }
    let _ = write!(t, "\n|---|");
    for _ in &batches {
        let _ = write!(t, "---|");
    }
    let _ = writeln!(t);
    // `Null` (printed "-") where a backlog was not run with a batch size.
    let rss = |n: u64, b: u64| {
        rows.iter()
            .find(|r| r["queued"].as_u64() == Some(n) && batch(r) == b)
            .map_or(&Value::Null, |r| &r["peak_rss_mib"])
    };
    for &n in &queued {
        let _ = write!(t, "| {n} |");
        for &b in &batches {
            let _ = write!(t, " {} |", num(rss(n, b), 1));
        }
        let _ = writeln!(t);
    }
    if let (Some(&least), Some(&most)) = (queued.first(), queued.last()) {
        let _ = write!(t, "| {most} / {least} |");
        for &b in &batches {
            let _ = write!(t, " {} |", ratio(rss(most, b), rss(least, b)));
        }
        let _ = writeln!(t);
    }
}
