//! Shared pieces of the integration tests: a broker with fresh topics, a responder
//! builder with test-friendly settings, and a probe handler that records what it saw.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod kyc_load;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kafka_responder::testkit::{
    EmbeddedBroker, Requester, RunningResponder, TestBroker, committed_offset, unique_name,
};
use kafka_responder::{
    ErrorReply, Handler, HeaderConvention, Json, RequestContext, ResponderBuilder,
};
use serde::{Deserialize, Serialize};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,librdkafka=error,rdkafka=error".into()),
        )
        .with_test_writer()
        .try_init();
}

/// For a test that refuses produce requests with the embedded broker's injected
/// errors: replies go one produce request at a time, or a refused reply can be lost
/// to the broker (see `EmbeddedBroker::push_request_errors`).
pub fn one_produce_request_at_a_time(builder: ResponderBuilder) -> ResponderBuilder {
    builder.producer_config("max.in.flight.requests.per.connection", "1")
}

/// A broker with a request topic and a reply topic of their own.
pub struct Fixture {
    pub broker: TestBroker,
    pub requests: String,
    pub replies: String,
    pub group: String,
}

impl Fixture {
    /// The embedded broker, for a test that needs its fault injection. Such a test is
    /// marked `#[cfg_attr(not(embedded_broker), ignore = "...")]`, so on any other
    /// broker the runner skips it (see build.rs); run anyway, it fails here.
    pub fn fault_injection(&self) -> &EmbeddedBroker {
        self.broker
            .as_embedded()
            .expect("this test needs the embedded broker's fault injection")
    }

    pub async fn new(request_partitions: i32, reply_partitions: i32) -> Fixture {
        init_tracing();
        Self::on(
            TestBroker::start().expect("broker"),
            request_partitions,
            reply_partitions,
        )
        .await
    }

    /// As [`new`](Self::new), on a broker no other test shares: for a test that kills it.
    pub async fn with_own_broker(request_partitions: i32, reply_partitions: i32) -> Fixture {
        init_tracing();
        Self::on(
            TestBroker::start_own().expect("broker"),
            request_partitions,
            reply_partitions,
        )
        .await
    }

    async fn on(broker: TestBroker, request_partitions: i32, reply_partitions: i32) -> Fixture {
        let requests = unique_name("requests");
        let replies = unique_name("replies");
        broker
            .create_topic(&requests, request_partitions)
            .await
            .expect("request topic");
        broker
            .create_topic(&replies, reply_partitions)
            .await
            .expect("reply topic");
        Fixture {
            broker,
            requests,
            replies,
            group: unique_name("group"),
        }
    }

    pub fn bootstrap(&self) -> &str {
        self.broker.bootstrap_servers()
    }

    /// A builder with this fixture's broker, group and reply topic allowed, and
    /// settings that keep tests quick (short fetch wait, frequent commits).
    pub fn builder(&self) -> ResponderBuilder {
        let builder = match std::env::var("RESPONDER_TEST_DEBUG") {
            Ok(contexts) => {
                kafka_responder::Responder::builder().consumer_config("debug", contexts)
            }
            Err(_) => kafka_responder::Responder::builder(),
        };
        let builder = builder
            .bootstrap_servers(self.bootstrap())
            .group_id(&self.group)
            .reply_topics(self.replies.parse().expect("policy"))
            .consumer_config("fetch.wait.max.ms", "10")
            .bounds(|b| b.commit_interval(Duration::from_millis(100)));
        // RESPONDER_TEST_GROUP_PROTOCOL=consumer: the KIP-848 group protocol (Apache
        // Kafka 4), where sessions and heartbeats are the broker's settings.
        match std::env::var("RESPONDER_TEST_GROUP_PROTOCOL").as_deref() {
            Ok("consumer") => builder.consumer_config("group.protocol", "consumer"),
            _ => builder
                .consumer_config("session.timeout.ms", "6000")
                .consumer_config("heartbeat.interval.ms", "500"),
        }
    }

    /// Runs a responder that answers the request topic with the probe handler (logging
    /// into `log`), with the test settings plus whatever `configure` adds.
    pub fn serve(
        &self,
        log: Arc<ProbeLog>,
        configure: impl FnOnce(ResponderBuilder) -> ResponderBuilder,
    ) -> RunningResponder {
        let builder = configure(self.builder()).route(&self.requests, Json, Probe(log));
        RunningResponder::spawn(builder.build().expect("responder"))
    }

    /// The group's committed offset on partition 0 of `topic`.
    pub async fn committed(&self, topic: &str) -> Option<i64> {
        committed_offset(self.bootstrap(), &self.group, topic, 0)
            .await
            .expect("committed offset")
    }

    /// Waits (up to 10 s) until the group has committed `want` on partition 0 of
    /// `topic`; fails the test otherwise.
    pub async fn wait_committed(&self, topic: &str, want: i64) {
        for _ in 0..200 {
            if self.committed(topic).await == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "offset {want} of {topic} never committed (now {:?})",
            self.committed(topic).await
        );
    }

    pub async fn requester(&self, convention: HeaderConvention, partition: i32) -> Requester {
        Requester::new(self.bootstrap(), convention, &self.replies, partition)
            .await
            .expect("requester")
    }
}

/// What the probe handler is asked to do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReq {
    pub id: u64,
    #[serde(default)]
    pub sleep_ms: u64,
    #[serde(default)]
    pub fail: Option<String>,
    #[serde(default)]
    pub panic: bool,
    /// Wait at the probe's barrier (all requests that do must run at the same time).
    #[serde(default)]
    pub barrier: bool,
    /// Wait until the probe's gate opens.
    #[serde(default)]
    pub gated: bool,
}

impl ProbeReq {
    pub fn id(id: u64) -> Self {
        ProbeReq {
            id,
            ..Default::default()
        }
    }

    /// A request the probe holds at its gate until the test opens it.
    pub fn held(id: u64) -> Self {
        ProbeReq {
            gated: true,
            ..ProbeReq::id(id)
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("json")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    pub id: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Shared record of what the probe handler did.
pub struct ProbeLog {
    /// Request ids in the order their handling started.
    pub started: Mutex<Vec<u64>>,
    /// Request ids in the order their handling finished.
    pub finished: Mutex<Vec<u64>>,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub gate: tokio::sync::Semaphore,
    pub barrier: Mutex<Option<Arc<tokio::sync::Barrier>>>,
}

impl ProbeLog {
    pub fn new() -> Arc<Self> {
        Arc::new(ProbeLog {
            started: Mutex::default(),
            finished: Mutex::default(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            gate: tokio::sync::Semaphore::new(0),
            barrier: Mutex::default(),
        })
    }

    pub fn with_barrier(n: usize) -> Arc<Self> {
        let log = Self::new();
        *log.barrier.lock().expect("lock") = Some(Arc::new(tokio::sync::Barrier::new(n)));
        log
    }

    pub fn started(&self) -> Vec<u64> {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn finished(&self) -> Vec<u64> {
        self.finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn open_gate(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Waits until `n` requests have started handling.
    pub async fn wait_started(&self, n: usize) {
        eventually(Duration::from_secs(20), || self.started().len() >= n).await;
    }
}

/// Answers with the request's coordinates, after doing what the request asks.
pub struct Probe(pub Arc<ProbeLog>);

impl Handler for Probe {
    type Request = ProbeReq;
    type Reply = ProbeReply;
    type Error = ErrorReply;

    async fn handle(&self, req: ProbeReq, cx: &RequestContext) -> Result<ProbeReply, ErrorReply> {
        let log = &self.0;
        log.started.lock().expect("lock").push(req.id);
        let now = log.running.fetch_add(1, SeqCst) + 1;
        log.max_running.fetch_max(now, SeqCst);
        if req.barrier {
            let barrier = log.barrier.lock().expect("lock").clone();
            if let Some(b) = barrier {
                let waited = tokio::time::timeout(Duration::from_secs(10), b.wait()).await;
                assert!(
                    waited.is_ok(),
                    "barrier never filled: requests did not run concurrently"
                );
            }
        }
        if req.gated {
            log.gate.acquire().await.expect("gate").forget();
        }
        if req.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(req.sleep_ms)).await;
        }
        log.running.fetch_sub(1, SeqCst);
        log.finished.lock().expect("lock").push(req.id);
        if req.panic {
            panic!("probe asked to panic");
        }
        if let Some(msg) = req.fail {
            return Err(ErrorReply::new("probe_failed", msg));
        }
        Ok(ProbeReply {
            id: req.id,
            topic: cx.topic().to_owned(),
            partition: cx.partition(),
            offset: cx.offset(),
        })
    }
}

/// Epoch milliseconds `offset_ms` from now, as ASCII decimal (a deadline header value).
pub fn epoch_ms_from_now(offset_ms: i64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    (now + offset_ms).to_string().into_bytes()
}

/// Polls `cond` until it holds, failing the test after `timeout`.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process, killed (SIGKILL) on drop.
pub struct Process(pub Child);

impl Process {
    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An example's binary, built (with the features the tests use) if needed.
pub fn example_binary(name: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--example", name, "--all-features"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the {name} example failed");
    // .../target/debug/deps/<test>-<hash> -> .../target/debug/examples/<name>
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples")
        .join(name)
}

/// Starts the KYC responder binary, configured only through its documented
/// environment variables.
pub fn kyc_responder(bootstrap: &str, request_topic: &str, group: &str, headers: &str) -> Process {
    kyc_responder_with(bootstrap, request_topic, group, headers, &[])
}

/// As [`kyc_responder`], with more environment variables.
pub fn kyc_responder_with(
    bootstrap: &str,
    request_topic: &str,
    group: &str,
    headers: &str,
    env: &[(&str, &str)],
) -> Process {
    let mut command = Command::new(example_binary("kyc_responder"));
    // RESPONDER_TEST_GROUP_PROTOCOL=consumer: KIP-848, where the session timeout is the
    // broker's (the example refuses one).
    match std::env::var("RESPONDER_TEST_GROUP_PROTOCOL").as_deref() {
        Ok("consumer") => command.env("KAFKA_CONSUMER_GROUP_PROTOCOL", "consumer"),
        _ => command.env("RESPONDER_SESSION_TIMEOUT_MS", "6000"),
    };
    let child = command
        .envs(env.iter().copied())
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("RESPONDER_REQUEST_TOPIC", request_topic)
        .env("RESPONDER_GROUP_ID", group)
        .env("RESPONDER_HEADERS", headers)
        .env("RESPONDER_FETCH_WAIT_MS", "10")
        .env(
            "RUST_LOG",
            std::env::var("KYC_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("start the KYC responder");
    Process(child)
}

/// The KYC example's documented score: FNV-1a 64 of the wallet id, mod 101.
pub fn kyc_score(wallet: &str) -> u64 {
    wallet.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) % 101
}
