//! Test harness (feature `testkit`): a broker to test against, a requester that speaks
//! any header convention, and a way to run a responder in the background.
//!
//! Which broker [`TestBroker::start`] gives is chosen by the environment, so the same
//! test body runs against each:
//! - `KAFKA_BOOTSTRAP_SERVERS` set: that broker;
//! - else `RESPONDER_TEST_BROKER=kafka`: Apache Kafka ([`KafkaBroker`]), one JVM shared
//!   by the test process (a test that kills its broker asks for its own with
//!   [`TestBroker::start_own`]);
//! - else `RESPONDER_TEST_BROKER=tansu`: a Tansu process of its own ([`TansuBroker`]);
//! - else the embedded broker ([`EmbeddedBroker`], librdkafka's mock cluster).

mod embedded;
mod kafka;
mod kafka_cluster;
mod requester;
mod running;
mod synthetic;
mod tansu;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

pub use self::embedded::{EmbeddedBroker, ResponseError, api_key};
pub use self::kafka::{KAFKA_VERSION, KafkaBroker};
pub use self::kafka_cluster::KafkaCluster;
pub use self::requester::{PendingReply, Reply, RequestError, Requester};
pub use self::running::RunningResponder;
pub use self::synthetic::{TestRequest, serve};
pub use self::tansu::{TANSU_VERSION, TansuBroker};
use crate::error::Error;

/// The broker a test runs against.
#[derive(Debug)]
#[non_exhaustive]
pub enum TestBroker {
    /// The in-process mock cluster.
    Embedded(EmbeddedBroker),
    /// A Tansu process started for the test.
    Tansu(TansuBroker),
    /// Apache Kafka: the process's shared node, or one of the test's own.
    Kafka(Arc<KafkaBroker>),
    /// A broker process, from `KAFKA_BOOTSTRAP_SERVERS`.
    External(String),
}

impl TestBroker {
    /// The broker the environment asks for (see the module docs).
    pub fn start() -> Result<Self, Error> {
        match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            Ok(servers) if !servers.trim().is_empty() => return Ok(TestBroker::External(servers)),
            _ => {}
        }
        match std::env::var("RESPONDER_TEST_BROKER").as_deref() {
            Ok("tansu") => Ok(TestBroker::Tansu(TansuBroker::start()?)),
            Ok("kafka") => Ok(TestBroker::Kafka(KafkaBroker::shared()?)),
            Ok("embedded") | Ok("") | Err(_) => Self::embedded(),
            Ok(other) => Err(Error::config(format!(
                "RESPONDER_TEST_BROKER={other}: expected embedded, kafka or tansu"
            ))),
        }
    }

    /// The broker the environment asks for, never shared with other tests: for a test
    /// that kills or restarts it. (Only Apache Kafka is otherwise shared.)
    pub fn start_own() -> Result<Self, Error> {
        let external = std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok_and(|s| !s.trim().is_empty());
        match std::env::var("RESPONDER_TEST_BROKER").as_deref() {
            Ok("kafka") if !external => Ok(TestBroker::Kafka(Arc::new(KafkaBroker::start()?))),
            _ => Self::start(),
        }
    }

    /// A new embedded broker, whatever the environment says.
    pub fn embedded() -> Result<Self, Error> {
        Ok(TestBroker::Embedded(EmbeddedBroker::start(1)?))
    }

    /// The `bootstrap.servers` list.
    pub fn bootstrap_servers(&self) -> &str {
        match self {
            TestBroker::Embedded(b) => b.bootstrap_servers(),
            TestBroker::Tansu(b) => b.bootstrap_servers(),
            TestBroker::Kafka(b) => b.bootstrap_servers(),
            TestBroker::External(s) => s,
        }
    }

    /// Takes the broker away, as a crash: the embedded broker stops answering (its
    /// connections are closed and new ones refused); a Tansu or Kafka process is
    /// killed (a Kafka node only if it is the test's own: see [`start_own`](Self::start_own)).
    pub fn kill(&mut self) -> Result<(), Error> {
        match self {
            TestBroker::Embedded(b) => b.set_broker_up(1, false),
            TestBroker::Tansu(b) => {
                b.kill();
                Ok(())
            }
            TestBroker::Kafka(b) => match Arc::get_mut(b) {
                Some(b) => {
                    b.kill();
                    Ok(())
                }
                None => Err(Error::config(
                    "the shared Kafka broker cannot be killed: start the test's own with TestBroker::start_own",
                )),
            },
            TestBroker::External(s) => Err(Error::config(format!(
                "the external broker {s} cannot be killed by the test"
            ))),
        }
    }

    /// The embedded broker, for tests that inject faults.
    pub fn as_embedded(&self) -> Option<&EmbeddedBroker> {
        match self {
            TestBroker::Embedded(b) => Some(b),
            _ => None,
        }
    }

    /// Creates a topic (replication factor 1).
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        match self {
            TestBroker::Embedded(b) => b.create_topic(topic, partitions),
            TestBroker::Tansu(_) | TestBroker::Kafka(_) | TestBroker::External(_) => {
                let servers = self.bootstrap_servers();
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", servers)
                    .create()
                    .map_err(|e| Error::kafka("creating an admin client", e))?;
                let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
                let results = admin
                    .create_topics(&[new], &AdminOptions::new())
                    .await
                    .map_err(|e| Error::kafka("creating a topic", e))?;
                for r in results {
                    if let Err((name, code)) = r {
                        return Err(Error::config(format!("creating topic {name}: {code}")));
                    }
                }
                wait_for_leaders(servers, topic, partitions).await
            }
        }
    }
}

/// A consumer that only asks the broker things (metadata, offsets), in `group` if
/// given (never committing on its own); `what` names it in the error.
fn probe(servers: &str, group: Option<&str>, what: &'static str) -> Result<BaseConsumer, Error> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers);
    if let Some(group) = group {
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false");
    }
    config.create().map_err(|e| Error::kafka(what, e))
}

/// Waits until a new client's metadata shows every partition of `topic` with a leader:
/// a topic just created is not at once in every broker's metadata, and a client that
/// looks it up before then is told the partition is unknown.
async fn wait_for_leaders(servers: &str, topic: &str, partitions: i32) -> Result<(), Error> {
    const WITHIN: Duration = Duration::from_secs(30);
    let client = probe(servers, None, "creating a metadata client")?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + WITHIN;
        loop {
            let led = client
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    let t = m.topics().iter().find(|t| t.name() == topic)?;
                    let ps = t.partitions();
                    (t.error().is_none()
                        && ps.len() == usize::try_from(partitions).unwrap_or(0)
                        && ps.iter().all(|p| p.error().is_none() && p.leader() >= 0))
                    .then_some(())
                });
            if led.is_some() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::config(format!(
                    "topic {topic}: its {partitions} partitions have no leader after {WITHIN:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .map_err(|e| Error::config(format!("waiting for the topic's leaders: {e}")))?
}

/// `n` distinct free loopback ports, bound all at once so that none is handed out twice
/// (they are released on return, for a broker process to bind).
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let no_port = |e: std::io::Error| Error::config(format!("no free loopback port: {e}"));
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(no_port)?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(no_port))
        .collect()
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Relaxed)
    )
}

/// The offset the group `group` has committed for `topic`/`partition`, if any.
pub async fn committed_offset(
    bootstrap_servers: &str,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, Error> {
    Ok(committed(bootstrap_servers, group, topic, partition)
        .await?
        .map(|(offset, _)| offset))
}

/// Commits `offset` with `metadata` (any bytes, as a client in another language could
/// write) for the group `group` on `topic`/`partition`.
pub async fn commit_with_metadata(
    bootstrap_servers: &str,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    metadata: &[u8],
) -> Result<(), Error> {
    use rdkafka::consumer::CommitMode;
    let consumer = probe(bootstrap_servers, Some(group), "creating an offset writer")?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
        .map_err(|e| Error::kafka("setting the offset", e))?;
    responder_ffi::raw_metadata::set_metadata_bytes(&mut tpl, 0, metadata);
    tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
        .await
        .map_err(|e| Error::config(format!("offset writer panicked: {e}")))?
        .map_err(|e| Error::kafka("committing", e))
}

/// The offset and commit metadata the group `group` has committed for
/// `topic`/`partition`, if any. (Some brokers do not keep the metadata: it reads empty.)
/// Metadata that is not UTF-8 reads as its lossy conversion.
pub async fn committed(
    bootstrap_servers: &str,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<(i64, String)>, Error> {
    let consumer = probe(bootstrap_servers, Some(group), "creating an offset reader")?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(tpl, Duration::from_secs(10))
    })
    .await
    .map_err(|e| Error::config(format!("offset reader panicked: {e}")))?
    .map_err(|e| Error::kafka("reading committed offsets", e))?;
    let metadata = responder_ffi::raw_metadata::metadata_bytes(&committed);
    Ok(committed
        .elements()
        .iter()
        .zip(metadata)
        .find(|(e, _)| e.topic() == topic && e.partition() == partition)
        .and_then(|(e, metadata)| {
            let offset = e.offset().to_raw().filter(|o| *o >= 0)?;
            Some((offset, String::from_utf8_lossy(&metadata).into_owned()))
        }))
}

/// The end offset (high watermark) of a partition: how many records it holds, for a
/// topic that never deleted any.
pub async fn end_offset(
    bootstrap_servers: &str,
    topic: &str,
    partition: i32,
) -> Result<i64, Error> {
    let consumer = probe(bootstrap_servers, None, "creating a watermark reader")?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))
    })
    .await
    .map_err(|e| Error::config(format!("watermark reader panicked: {e}")))?
    .map(|(_, high)| high)
    .map_err(|e| Error::kafka("reading watermarks", e))
}
