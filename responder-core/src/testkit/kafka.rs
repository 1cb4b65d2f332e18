//! Apache Kafka itself for tests: a single KRaft node (broker and controller in one
//! JVM) on free loopback ports, in a fresh directory, from the jars
//! `scripts/install-kafka` fetched from Maven Central.
//!
//! A JVM takes seconds to start, so the integration tests share one broker per test
//! process ([`KafkaBroker::shared`]) and make their own topics and groups; a test that
//! kills its broker starts one of its own ([`KafkaBroker::start`]). The JVM runs under a
//! small shell watchdog that kills it (SIGKILL) once the test process's end of a pipe
//! closes, so no broker outlives its test process, however that process ends.
//!
//! The installation comes from `APACHE_KAFKA_HOME`, else from where `scripts/install-kafka`
//! puts it (`~/.cache/kafka-responder/kafka-<version>`: the jars in `lib/`, a log4j2
//! configuration, and a class-data-sharing archive that halves the JVM's start-up);
//! `java` from `JAVA_HOME`, else the `PATH`. A node starts in 1.5 to 3 s here and takes
//! about 160 MiB.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::error::Error;

/// The Apache Kafka version the project pins (see `scripts/install-kafka`).
pub const KAFKA_VERSION: &str = "4.4.0";

/// A fixed cluster id: every test broker is a cluster of its own anyway.
const CLUSTER_ID: &str = "a1Xr6ZWXRqO0dbV2Qkc9Pw";

/// An Apache Kafka node (broker and controller) in a JVM of its own.
#[derive(Debug)]
pub struct KafkaBroker {
    /// The installation: `lib/`, `log4j2.properties`, `kafka.jsa`.
    home: PathBuf,
    dir: PathBuf,
    bootstrap: String,
    /// The SASL/PLAIN listener of a secured node.
    sasl_bootstrap: Option<String>,
    /// The watchdog shell: the JVM dies when its standard input closes.
    watchdog: Option<Child>,
    /// Whether the watchdog removes the directory once the JVM is dead.
    remove_on_exit: bool,
    /// `--standalone`, or a cluster's `--initial-controllers` (for formatting).
    controllers: Option<String>,
    /// How many brokers a ready node's metadata lists.
    cluster_size: usize,
}

fn install_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("APACHE_KAFKA_HOME") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home)
        .join(".cache/kafka-responder")
        .join(format!("kafka-{KAFKA_VERSION}"))
}

fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin/java").exists() => {
            Path::new(&home).join("bin/java")
        }
        _ => PathBuf::from("java"),
    }
}

/// JVM settings for a small, quick-starting test broker.
/// (Measured here: with the class-data-sharing archive, start to ready in 1.3 to 2.6 s
/// and 160 MiB, against 3 to 9 s and 210 to 240 MiB with the heap bound alone.)
const JVM_FLAGS: &[&str] = &[
    "-Xmx512m",
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
];

impl KafkaBroker {
    /// The broker this test process shares: started by the first caller, killed when
    /// the process ends.
    pub fn shared() -> Result<Arc<KafkaBroker>, Error> {
        static SHARED: OnceLock<Result<Arc<KafkaBroker>, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                KafkaBroker::start_inner(true, &[])
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| Error::config(format!("the shared Kafka broker did not start: {e}")))
    }

    /// Starts a node of its own on free loopback ports, with fresh storage.
    pub fn start() -> Result<Self, Error> {
        Self::start_inner(false, &[])
    }

    /// Starts a node of its own with Kafka's standard authorizer
    /// (`StandardAuthorizer`, no access without an ACL) and a SASL/PLAIN listener
    /// ([`sasl_bootstrap_servers`](Self::sasl_bootstrap_servers)) where each of `users`
    /// (name, password) logs in as `User:<name>`. The plain listener
    /// ([`bootstrap_servers`](Self::bootstrap_servers)) is the harness's own: its
    /// clients are `User:ANONYMOUS`, a super user (as the controller's listener needs),
    /// so tests create topics, read offsets and manage ACLs ([`acls`](Self::acls))
    /// there, while the client under test logs in on the SASL listener.
    pub fn start_secured(users: &[(&str, &str)]) -> Result<Self, Error> {
        Self::start_inner(false, users)
    }

    /// `remove_on_exit`: the watchdog removes the node's directory when the test
    /// process ends (the shared node is never dropped). `users`: with any, the node is
    /// secured (see [`start_secured`](Self::start_secured)).
    fn start_inner(remove_on_exit: bool, users: &[(&str, &str)]) -> Result<Self, Error> {
        let home = installation()?;
        let dir = fresh_dir()?;
        let ports = super::free_ports(3)?;
        let (port, controller) = (ports[0], ports[1]);
        let sasl = (!users.is_empty()).then_some(ports[2]);
        let node = Node {
            id: 1,
            port,
            controller,
            sasl,
            quorum: format!("127.0.0.1:{controller}"),
            replicas: 1,
        };
        let mut properties = server_properties(&dir, &node);
        if sasl.is_some() {
            properties.push_str(&security_properties(users));
        }
        let mut broker = Self::prepare(home, dir, &node, &properties, None, 1)?;
        broker.remove_on_exit = remove_on_exit;
        broker.format()?;
        broker.launch()?;
        broker.warm_up();
        Ok(broker)
    }

    /// A node with its configuration written, not yet formatted or started.
    pub(super) fn prepare(
        home: PathBuf,
        dir: PathBuf,
        node: &Node,
        properties: &str,
        controllers: Option<String>,
        cluster_size: usize,
    ) -> Result<Self, Error> {
        let config = dir.join("server.properties");
        std::fs::write(&config, properties)
            .map_err(|e| Error::config(format!("writing {}: {e}", config.display())))?;
        Ok(KafkaBroker {
            home,
            dir,
            bootstrap: format!("127.0.0.1:{}", node.port),
            sasl_bootstrap: node.sasl.map(|p| format!("127.0.0.1:{p}")),
            watchdog: None,
            remove_on_exit: false,
            controllers,
            cluster_size,
        })
    }

    /// The `bootstrap.servers` list.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The SASL/PLAIN listener of a node started with
    /// [`start_secured`](Self::start_secured).
    pub fn sasl_bootstrap_servers(&self) -> Option<&str> {
        self.sasl_bootstrap.as_deref()
    }

    /// Runs Kafka's own ACL tool (`kafka-acls`, `org.apache.kafka.tools.AclCommand`)
    /// against this node with `args` (`--add ...`, `--remove --force ...`, `--list ...`)
    /// and returns what it printed.
    pub fn acls(&self, args: &[&str]) -> Result<String, Error> {
        let out = Command::new(java())
            .args(self.jvm())
            .arg("org.apache.kafka.tools.AclCommand")
            .args(["--bootstrap-server", &self.bootstrap])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::config(format!("running kafka-acls: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(Error::config(format!(
                "kafka-acls {args:?} failed ({}): {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Kills the JVM (SIGKILL), as a crash; [`restart`](Self::restart) brings it back.
    pub fn kill(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // Closing its standard input makes the watchdog kill the JVM and wait for it.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }

    /// Kills the node and starts it again on the same ports and storage: topics,
    /// records and committed offsets survive.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        self.launch()
    }

    /// The JVM's settings and class path, for the broker and its tools.
    fn jvm(&self) -> Vec<String> {
        let mut args: Vec<String> = JVM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        let archive = self.home.join("kafka.jsa");
        if archive.exists() {
            args.push(format!("-XX:SharedArchiveFile={}", archive.display()));
        }
        args.push(format!(
            "-Dlog4j2.configurationFile={}",
            self.home.join("log4j2.properties").display()
        ));
        // Exactly `<home>/lib/*`: the archive loads only with the class path it was made with.
        args.push("-cp".into());
        args.push(format!("{}/*", self.home.join("lib").display()));
        args
    }

    /// The first group a fresh broker meets waits for `__consumer_offsets` to be
    /// created (its clients back off for up to 3 s on `NOT_COORDINATOR`): make it exist
    /// now, with a committed-offset lookup for a throwaway group.
    pub(super) fn warm_up(&self) {
        let probe: Result<BaseConsumer, _> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "kafka-responder-warm-up")
            .set("log_level", "0")
            .create();
        if let Ok(probe) = probe {
            let mut tpl = rdkafka::TopicPartitionList::new();
            let _ = tpl.add_partition("kafka-responder-warm-up", 0);
            let _ = probe.committed_offsets(tpl, Duration::from_secs(15));
        }
    }

    pub(super) fn format(&self) -> Result<(), Error> {
        let out = Command::new(java())
            .args(self.jvm())
            .args(["kafka.tools.StorageTool", "format", "-t", CLUSTER_ID])
            .args(match &self.controllers {
                Some(c) => ["--initial-controllers", c.as_str()].to_vec(),
                None => ["--standalone"].to_vec(),
            })
            .arg("-c")
            .arg(self.dir.join("server.properties"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::config(format!("running java ({}): {e}", java().display())))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::config(format!(
                "formatting Kafka's storage failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    fn launch(&mut self) -> Result<(), Error> {
        self.spawn()?;
        self.wait_ready(Duration::from_secs(90))
    }

    /// Starts the JVM under its watchdog, without waiting for it.
    pub(super) fn spawn(&mut self) -> Result<(), Error> {
        let log = self.dir.join("kafka.log");
        // The JVM in the background; the shell waits for its standard input to close
        // (the test process ended, or `kill`), then kills it. The shell ignores the
        // signals a ctrl-c or a stop sends the process group, so only that pipe ends it
        // (a non-interactive shell starts the JVM with SIGINT ignored: the shell dying
        // of one would leave the JVM behind).
        let script = r#"trap '' INT QUIT TERM HUP
java="$1"; shift; "$java" "$@" >>"$KAFKA_TEST_LOG" 2>&1 </dev/null & jvm=$!
cat >/dev/null
kill -9 "$jvm" 2>/dev/null
wait "$jvm" 2>/dev/null
[ -n "$KAFKA_TEST_REMOVE" ] && rm -rf "$KAFKA_TEST_REMOVE"
exit 0"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("kafka-test-broker")
            .arg(java())
            .args(self.jvm())
            .arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"))
            .env("KAFKA_TEST_LOG", &log)
            .env(
                "KAFKA_TEST_REMOVE",
                if self.remove_on_exit {
                    self.dir.as_os_str()
                } else {
                    std::ffi::OsStr::new("")
                },
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::config(format!("starting the Kafka watchdog shell: {e}")))?;
        self.watchdog = Some(child);
        Ok(())
    }

    /// Ready once a metadata request names this broker: it then serves clients.
    pub(super) fn wait_ready(&mut self, within: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("log_level", "0")
            .create()
            .map_err(|e| Error::kafka("creating a metadata probe", e))?;
        loop {
            if let Ok(md) = probe.fetch_metadata(None, Duration::from_millis(500))
                && md.brokers().len() >= self.cluster_size
            {
                return Ok(());
            }
            let exited = self
                .watchdog
                .as_mut()
                .map(|w| w.try_wait().ok().flatten().is_some())
                .unwrap_or(true);
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("kafka.log")).unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                self.kill();
                return Err(Error::config(format!(
                    "Kafka did not become ready within {within:?}; its log ends:\n{tail}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A combined broker and controller on loopback, sized for tests: internal topics with
/// one replica and one partition, a small log-cleaner buffer (the default takes 128 MiB
/// of heap), no delay before a group's first rebalance, no
/// automatic topic creation (tests create theirs; a requester naming a missing reply
/// topic must meet a missing topic), and short group sessions allowed; under the
/// KIP-848 protocol, where the broker sets them, the tests' classic settings (6 s
/// session, 500 ms heartbeat).
/// One node's identity and ports.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) id: i32,
    pub(super) port: u16,
    pub(super) controller: u16,
    pub(super) sasl: Option<u16>,
    /// `controller.quorum.bootstrap.servers`: every controller of the cluster.
    pub(super) quorum: String,
    /// Replicas of the internal topics (the cluster's size, at most 3).
    pub(super) replicas: usize,
}

/// The installation `scripts/install-kafka` made, or an error that says how to make it.
pub(super) fn installation() -> Result<PathBuf, Error> {
    let home = install_dir();
    if home.join(".complete").exists() {
        Ok(home)
    } else {
        Err(Error::config(format!(
            "Apache Kafka {KAFKA_VERSION} is not installed in {} (run scripts/install-kafka, \
             or set APACHE_KAFKA_HOME)",
            home.display()
        )))
    }
}

/// A fresh directory for a node.
pub(super) fn fresh_dir() -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(super::unique_name("kafka"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::config(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

pub(super) fn server_properties(dir: &Path, node: &Node) -> String {
    let Node {
        id,
        port,
        controller,
        sasl,
        quorum,
        replicas,
    } = node;
    let min_isr = (*replicas).min(2);
    let sasl_listener = sasl
        .map(|p| format!(",SASL_PLAINTEXT://127.0.0.1:{p}"))
        .unwrap_or_default();
    format!(
        "process.roles=broker,controller
node.id={id}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}{sasl_listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{sasl_listener}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
controller.quorum.bootstrap.servers={quorum}
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.min.session.timeout.ms=1000
group.consumer.heartbeat.interval.ms=500
group.consumer.min.heartbeat.interval.ms=500
log.cleaner.dedupe.buffer.size=4194304
num.network.threads=2
num.io.threads=2
background.threads=2
",
        data = dir.join("data").display()
    )
}

/// The standard authorizer, deny by default; SASL/PLAIN logins for `users`; the plain
/// listener's `User:ANONYMOUS` (the harness and the controller's own calls) a super user.
fn security_properties(users: &[(&str, &str)]) -> String {
    let logins: String = users
        .iter()
        .map(|(name, password)| format!(" user_{name}=\"{password}\""))
        .collect();
    format!(
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required{logins};
"
    )
}
