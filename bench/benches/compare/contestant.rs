//! The responders as processes: how each starts (optionally under callgrind), what it
//! reports, and how it stops.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// A responder implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contestant {
    /// Hand-written rdkafka loop (`src/bin/raw_responder.rs`).
    Raw,
    /// The KYC service on this framework (`src/bin/framework_responder.rs`).
    Framework,
    /// confluent-kafka (`python/responder.py`).
    Python,
    /// The framework with its per-request Prometheus metrics and trace context off
    /// (`RESPONDER_PROMETHEUS_METRICS=false`, `RESPONDER_TRACE_CONTEXT=false`): what
    /// they cost. Runs only when named in `BENCH_CONTESTANTS`, as the two below.
    FrameworkBare,
    /// The framework with metrics on and trace context off.
    FrameworkNoTrace,
    /// The framework with trace context on and metrics off.
    FrameworkNoMetrics,
    /// The framework with exactly-once replies (`RESPONDER_TRANSACTIONAL_ID`): replies
    /// and offsets in one transaction per commit interval.
    FrameworkExactlyOnce,
    /// Spring for Apache Kafka, `@KafkaListener` + `@SendTo` (`bench/spring-responder`,
    /// the jar named by `BENCH_SPRING_JAR`), on a JVM. Only in the `peer` cell (Apache
    /// Kafka): callgrind does not suit a JIT.
    Spring,
}

impl Contestant {
    /// All three, in report order.
    pub(crate) const ALL: [Contestant; 3] =
        [Contestant::Raw, Contestant::Framework, Contestant::Python];

    /// The framework's variants, run only when named.
    const VARIANTS: [Contestant; 4] = [
        Contestant::FrameworkBare,
        Contestant::FrameworkNoTrace,
        Contestant::FrameworkNoMetrics,
        Contestant::FrameworkExactlyOnce,
    ];

    /// Those named in `BENCH_CONTESTANTS` (comma-separated), or all three.
    pub(crate) fn selected() -> impl Iterator<Item = Contestant> {
        let only = std::env::var("BENCH_CONTESTANTS").ok();
        let every = Contestant::ALL.into_iter().chain(Contestant::VARIANTS);
        every.filter(move |c| match only.as_deref() {
            Some(o) => o.split(',').any(|n| n.trim() == c.name()),
            None => Contestant::ALL.contains(c),
        })
    }

    /// Its name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Contestant::Raw => "raw",
            Contestant::Framework => "framework",
            Contestant::Python => "python",
            Contestant::FrameworkBare => "framework-bare",
            Contestant::FrameworkNoTrace => "framework-no-trace",
            Contestant::FrameworkNoMetrics => "framework-no-metrics",
            Contestant::FrameworkExactlyOnce => "framework-exactly-once",
            Contestant::Spring => "spring",
        }
    }

    /// The contestant of that name.
    pub(crate) fn named(name: &str) -> Option<Contestant> {
        Contestant::ALL
            .into_iter()
            .chain(Contestant::VARIANTS)
            .chain([Contestant::Spring])
            .find(|c| c.name() == name)
    }

    /// The framework's switches this contestant turns off.
    fn switches(self) -> &'static [(&'static str, &'static str)] {
        const METRICS_OFF: (&str, &str) = ("RESPONDER_PROMETHEUS_METRICS", "false");
        const TRACE_OFF: (&str, &str) = ("RESPONDER_TRACE_CONTEXT", "false");
        match self {
            Contestant::FrameworkBare => &[METRICS_OFF, TRACE_OFF],
            Contestant::FrameworkNoTrace => &[TRACE_OFF],
            Contestant::FrameworkNoMetrics => &[METRICS_OFF],
            Contestant::FrameworkExactlyOnce => &[("RESPONDER_TRANSACTIONAL_ID", "kyc-bench-0")],
            _ => &[],
        }
    }

    fn program(self) -> (String, Vec<String>) {
        match self {
            Contestant::Raw => (env!("CARGO_BIN_EXE_raw_responder").into(), vec![]),
            Contestant::Framework
            | Contestant::FrameworkBare
            | Contestant::FrameworkNoTrace
            | Contestant::FrameworkNoMetrics
            | Contestant::FrameworkExactlyOnce => {
                (env!("CARGO_BIN_EXE_framework_responder").into(), vec![])
            }
            Contestant::Python => (
                std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into()),
                vec![concat!(env!("CARGO_MANIFEST_DIR"), "/python/responder.py").into()],
            ),
            Contestant::Spring => {
                let jar = std::env::var("BENCH_SPRING_JAR").unwrap_or_else(|_| {
                    "BENCH_SPRING_JAR is not set (scripts/bench builds the jar)".into()
                });
                let mut args = jvm_flags();
                args.extend(["-jar".to_owned(), jar]);
                ("java".into(), args)
            }
        }
    }
}

/// The Spring contestant's JVM flags (`BENCH_SPRING_JVM_FLAGS`, whitespace-separated;
/// default none: the JVM's own defaults).
fn jvm_flags() -> Vec<String> {
    std::env::var("BENCH_SPRING_JVM_FLAGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The JVM the Spring contestant runs on, and its flags, for the report.
pub(crate) fn jvm_description() -> Value {
    let version = Command::new("java")
        .arg("-version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    let flags = jvm_flags();
    json!({
        "version": version,
        "flags": if flags.is_empty() { "none (JVM defaults: G1, max heap 1/4 of RAM)".to_owned() } else { flags.join(" ") },
    })
}

/// How to start a contestant.
pub(crate) struct Launch<'a> {
    pub(crate) bootstrap: &'a str,
    pub(crate) fetch_wait_ms: &'a str,
    /// What watches it while it runs.
    pub(crate) probe: Probe,
    /// Extra environment (e.g. the framework's handler delay).
    pub(crate) env: Vec<(&'static str, String)>,
    /// Where its standard output and error go.
    pub(crate) log: PathBuf,
}

/// What watches a contestant while it runs, and where its findings go.
#[derive(Debug, Clone)]
pub(crate) enum Probe {
    /// Nothing: the process runs as it is.
    None,
    /// Callgrind counts its instructions (all threads).
    Callgrind(PathBuf),
    /// Massif profiles its heap by call site.
    Massif(PathBuf),
    /// DHAT counts its allocations (C and Rust) by call stack.
    Dhat(PathBuf),
    /// `perf stat` counts its system calls (all threads), futex calls apart.
    Syscalls(PathBuf),
}

impl Probe {
    /// The command that runs `program` under this probe.
    fn command(&self, program: &str) -> Command {
        let valgrind = |tool: &str, out_flag: &str, out: &Path| {
            let mut c = Command::new("valgrind");
            c.arg(format!("--tool={tool}"))
                .arg(format!("--{out_flag}={}", out.display()));
            if tool == "callgrind" {
                c.arg("--dump-line=no");
            }
            c.arg("-q").arg(program);
            c
        };
        match self {
            Probe::None => Command::new(program),
            Probe::Callgrind(out) => valgrind("callgrind", "callgrind-out-file", out),
            Probe::Massif(out) => valgrind("massif", "massif-out-file", out),
            Probe::Dhat(out) => valgrind("dhat", "dhat-out-file", out),
            Probe::Syscalls(out) => {
                let mut c = Command::new("perf");
                c.args(["stat", "-x", ",", "-e", SYSCALL_EVENTS, "-o"])
                    .arg(out)
                    .arg("--")
                    .arg(program);
                c
            }
        }
    }

    /// Whether it slows the process down many times over (valgrind).
    pub(crate) fn is_slow(&self) -> bool {
        matches!(
            self,
            Probe::Callgrind(_) | Probe::Massif(_) | Probe::Dhat(_)
        )
    }
}

/// The kernel's tracepoints `perf stat` counts: every system call's entry, and futex's
/// (the figures reported), then each system call's apart: a run's `.perf` file breaks
/// its count down (how `mprotect`, glibc growing a thread's heap, was found).
const SYSCALL_EVENTS: &str = "raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_*";

/// System calls a contestant made, all threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syscalls {
    pub(crate) total: u64,
    pub(crate) futex: u64,
}

/// A contestant process.
pub(crate) struct Running {
    child: Child,
    log: PathBuf,
    probe: Probe,
}

/// What a contestant reported once stopped.
pub(crate) struct Stopped {
    /// Instructions of all its threads (callgrind runs only).
    pub(crate) instructions: Option<u64>,
    /// System calls of all its threads (`perf stat` runs only).
    pub(crate) syscalls: Option<Syscalls>,
    /// Allocations through its counting allocator (Rust contestants only).
    pub(crate) allocations: Option<u64>,
}

impl Contestant {
    /// Starts it; it serves until [`Running::stop`].
    pub(crate) fn start(self, launch: Launch<'_>) -> anyhow::Result<Running> {
        let (program, args) = self.program();
        let mut command = launch.probe.command(&program);
        let log = File::create(&launch.log)?;
        command
            .args(args)
            .env("KAFKA_BOOTSTRAP_SERVERS", launch.bootstrap)
            .env("RESPONDER_GROUP_ID", "kyc-bench")
            .env("RESPONDER_FETCH_WAIT_MS", launch.fetch_wait_ms)
            .env("PYTHONUNBUFFERED", "1")
            .envs(self.switches().iter().copied())
            .envs(launch.env)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("starting {} ({program})", self.name()))?;
        Ok(Running {
            child,
            log: launch.log,
            probe: launch.probe,
        })
    }
}

impl Running {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system time of all its threads so far, in clock ticks
    /// (`/proc/PID/stat` fields 14 and 15).
    pub(crate) fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // The command name (field 2) may hold spaces: count from the closing paren.
        let rest = stat.rsplit_once(')').context("no ) in /proc/PID/stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> anyhow::Result<u64> {
            // `rest` starts at field 3.
            fields
                .get(n - 3)
                .context("short /proc/PID/stat")?
                .parse()
                .context("a /proc/PID/stat time")
        };
        Ok(field(14)? + field(15)?)
    }

    /// Its peak resident set (VmHWM) so far, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/PID/status")
    }

    /// Closes its standard input (its stop signal), waits for it to drain and exit,
    /// and reads what it reported.
    pub(crate) fn stop(mut self, timeout: Duration) -> anyhow::Result<Stopped> {
        drop(self.child.stdin.take());
        let status = wait(&mut self.child, timeout)?;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if !status.success() {
            bail!("exited with {status}; log {}:\n{log}", self.log.display());
        }
        let allocations = log
            .lines()
            .find_map(|l| l.strip_prefix("ALLOCATIONS "))
            .and_then(|n| n.trim().parse().ok());
        let instructions = match &self.probe {
            Probe::Callgrind(out) => Some(callgrind_total(out)?),
            _ => None,
        };
        let syscalls = match &self.probe {
            Probe::Syscalls(out) => Some(perf_syscalls(out)?),
            _ => None,
        };
        Ok(Stopped {
            instructions,
            syscalls,
            allocations,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait(child: &mut Child, timeout: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("did not stop within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `totals:` line of a callgrind profile: instructions of every thread.
fn callgrind_total(path: &Path) -> anyhow::Result<u64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no totals in {}", path.display()))
}

/// The counts `perf stat -x ,` wrote: one line per event, `count,unit,event,...`.
fn perf_syscalls(path: &Path) -> anyhow::Result<Syscalls> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let count = |event: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|l| {
                let mut fields = l.split(',');
                let n = fields.next()?;
                (fields.nth(1)? == event).then(|| n.parse().ok())?
            })
            .with_context(|| format!("no {event} count in {}:\n{text}", path.display()))
    };
    Ok(Syscalls {
        total: count("raw_syscalls:sys_enter")?,
        futex: count("syscalls:sys_enter_futex")?,
    })
}
