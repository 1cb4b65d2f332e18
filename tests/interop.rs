//! Requesters written by other people's code, in other languages, against the reference
//! KYC responder running as its real binary, configured only through its documented
//! environment variables:
//! - Python confluent-kafka speaking Spring (16-byte binary correlation id, 4-byte
//!   big-endian partition) and SmallRye (36-byte text correlation id; replies carrying
//!   `REPLY_TOPIC` are ignored, as SmallRye does);
//! - Node kafkajs (its own protocol implementation) speaking NestJS (text values);
//! - kcat, one scripted round trip in the plain style;
//! - Spring for Apache Kafka's own `ReplyingKafkaTemplate` (a Java program built with
//!   Maven, `tests/interop/spring-requester`): binary and String correlation ids, a
//!   `replyErrorChecker` reading the error headers (error replies fail the template's
//!   future with its exception), and two requester processes on different reply
//!   partitions at once, each receiving only its own replies;
//! - SmallRye Reactive Messaging's own `KafkaRequestReply` (a Quarkus command-mode
//!   program built with Maven, `tests/interop/smallrye-requester`): 36-byte UUID
//!   correlation ids, a `ReplyFailureHandler` on our error headers, two requester
//!   processes on different reply partitions at once;
//! - NestJS's own `ClientKafka.send()` (`@nestjs/microservices`), awaited with
//!   `lastValueFrom` as a NestJS application does: replies complete the observable,
//!   error replies fail it with the error object; two instances of one group each get
//!   the replies for the partition NestJS assigned it.
//!
//! Each checks every reply's correlation id, partition, key and payload byte for byte,
//! and the error headers of requests the handler rejects. The clients are installed by
//! `scripts/install-interop` (run by `scripts/test`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Process, kyc_score};
use kafka_responder::testkit::{TestBroker, unique_name};

fn interop_cache() -> PathBuf {
    let dir = std::env::var_os("INTEROP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/kafka-responder/interop")
        });
    assert!(
        dir.join("venv/bin/python").exists()
            && dir.join("node/node_modules/kafkajs").exists()
            && dir.join("spring-requester/spring-requester.jar").exists()
            && dir
                .join("smallrye-requester/smallrye-requester.jar")
                .exists()
            && dir.join("node/node_modules/@nestjs/microservices").exists(),
        "interop clients missing in {}: run scripts/install-interop",
        dir.display()
    );
    dir
}

fn fixture(name: &str) -> String {
    format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Starts the KYC responder binary against `bootstrap`, configured by environment only.
fn kyc_responder(bootstrap: &str, request_topic: &str, headers: &str) -> Process {
    common::kyc_responder(bootstrap, request_topic, &unique_name("kyc"), headers)
}

struct Topics {
    broker: TestBroker,
    requests: String,
    replies: String,
}

async fn topics() -> Topics {
    common::init_tracing();
    let broker = TestBroker::start().expect("broker");
    // The reply topic matches the KYC responder's default policy, WALLET-KYC-RESPONSE*.
    let requests = unique_name("WALLET-KYC-REQUEST");
    let replies = unique_name("WALLET-KYC-RESPONSE");
    broker.create_topic(&requests, 3).await.expect("topic");
    broker.create_topic(&replies, 4).await.expect("topic");
    Topics {
        broker,
        requests,
        replies,
    }
}

fn run(mut command: Command) -> Output {
    let output = command.output().expect("run requester");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[tokio::test]
async fn python_spring_and_smallrye_requesters() {
    let cache = interop_cache();
    let t = topics().await;
    let bootstrap = t.broker.bootstrap_servers().to_owned();
    let _kyc = kyc_responder(&bootstrap, &t.requests, "spring,smallrye,plain");
    for (style, partition) in [("spring", "2"), ("smallrye", "1")] {
        let mut cmd = Command::new(cache.join("venv/bin/python"));
        cmd.arg(fixture("requester.py")).args([
            style,
            &bootstrap,
            &t.requests,
            &t.replies,
            partition,
            "20",
        ]);
        let out = run(cmd);
        assert!(out.status.success(), "{style} requester failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("22 replies verified, 0 problems"),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn node_kafkajs_nestjs_requester() {
    let cache = interop_cache();
    let t = topics().await;
    let bootstrap = t.broker.bootstrap_servers().to_owned();
    let _kyc = kyc_responder(&bootstrap, &t.requests, "nestjs,smallrye,plain");
    let mut cmd = Command::new("node");
    cmd.arg(fixture("nestjs_requester.js"))
        .args([&bootstrap, &t.requests, &t.replies, "3", "20"])
        .env("NODE_PATH", cache.join("node/node_modules"));
    let out = run(cmd);
    assert!(out.status.success(), "nestjs requester failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("22 replies verified, 0 problems"),
        "{stdout}"
    );
}

#[tokio::test]
async fn kcat_plain_round_trip() {
    let t = topics().await;
    let bootstrap = t.broker.bootstrap_servers().to_owned();
    let _kyc = kyc_responder(&bootstrap, &t.requests, "spring,smallrye,plain");
    let corr = unique_name("kcat");
    let mut produce = Command::new("kcat")
        .args(["-P", "-b", &bootstrap, "-t", &t.requests, "-k", "wallet-kc"])
        .args(["-H", &format!("REPLY_TOPIC={}", t.replies)])
        .args(["-H", "REPLY_PARTITION=3"])
        .args(["-H", &format!("CORRELATION_ID={corr}")])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat (install it with scripts/install-interop)");
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().expect("stdin");
        stdin
            .write_all(b"{\"wallet_id\":\"wallet-kc\"}\n")
            .expect("write");
    }
    assert!(produce.wait().expect("kcat").success());

    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        let out = Command::new("kcat")
            .args([
                "-C",
                "-b",
                &bootstrap,
                "-t",
                &t.replies,
                "-p",
                "3",
                "-o",
                "beginning",
                "-e",
                "-q",
            ])
            .args(["-f", "%k\t%h\t%s\n"])
            .output()
            .expect("kcat");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(&corr)) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no reply for {corr}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields[0], "wallet-kc", "{line}");
    assert_eq!(fields[1], format!("CORRELATION_ID={corr}"), "{line}");
    let want = format!(
        "{{\"wallet_id\":\"wallet-kc\",\"score\":{}}}",
        kyc_score("wallet-kc")
    );
    assert_eq!(fields[2], want, "{line}");
}

/// A requester program packaged as a jar in the interop cache (`name/name.jar`), run
/// with the bootstrap, the request and the reply topic, then `args`.
fn jvm_requester(cache: &std::path::Path, name: &str, t: &Topics, args: &[&str]) -> Command {
    let mut cmd = Command::new("java");
    cmd.args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar"])
        .arg(cache.join(name).join(format!("{name}.jar")))
        .args([t.broker.bootstrap_servers(), &t.requests, &t.replies])
        .args(args);
    cmd
}

/// Runs `commands` at once and checks each printed `expect`.
fn run_together(commands: Vec<Command>, expect: &str) {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut c| {
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("requester")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("requester");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        println!("{stdout}");
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains(expect), "{stdout}");
    }
}

#[tokio::test]
#[cfg_attr(
    embedded_broker,
    ignore = "Spring's Java client cannot produce to librdkafka's mock cluster (Send failed): runs on Apache Kafka"
)]
async fn spring_replying_kafka_template_requesters() {
    let cache = interop_cache();
    let t = topics().await;
    let bootstrap = t.broker.bootstrap_servers().to_owned();
    let _kyc = kyc_responder(&bootstrap, &t.requests, "spring,smallrye,plain");
    for correlation in ["binary", "string"] {
        let out = run(jvm_requester(
            &cache,
            "spring-requester",
            &t,
            &["2", "20", correlation],
        ));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "spring ({correlation}): {stdout}");
        assert!(
            stdout.contains("22 replies verified, 0 problems"),
            "{stdout}"
        );
    }
    // Two requester instances at once, each listening on its own reply partition:
    // each gets exactly its own replies (a record meant for another is a problem).
    run_together(
        [("1", "binary"), ("3", "string")]
            .iter()
            .map(|(p, c)| jvm_requester(&cache, "spring-requester", &t, &[p, "50", c]))
            .collect(),
        "52 replies verified, 0 problems",
    );
}

/// The topics, and the KYC responder, a NestJS `ClientKafka` needs: NestJS always
/// asks for replies on `<pattern>.reply`.
struct Nest {
    bootstrap: String,
    requests: String,
    _broker: TestBroker,
    _kyc: Process,
}

async fn nest_setup() -> Nest {
    common::init_tracing();
    let broker = TestBroker::start().expect("broker");
    let requests = unique_name("WALLET-KYC-REQUEST");
    let replies = format!("{requests}.reply");
    broker.create_topic(&requests, 3).await.expect("topic");
    broker.create_topic(&replies, 2).await.expect("topic");
    let bootstrap = broker.bootstrap_servers().to_owned();
    let kyc = common::kyc_responder_with(
        &bootstrap,
        &requests,
        &unique_name("kyc"),
        "nestjs,smallrye,plain",
        &[("RESPONDER_REPLY_ALLOW", &replies)],
    );
    Nest {
        bootstrap,
        requests,
        _broker: broker,
        _kyc: kyc,
    }
}

/// `nestjs_client_requester.js` with wallet tag `tag` in consumer group `group`,
/// sending at `send_at` (epoch ms; 0: at once).
fn nest_requester(
    cache: &std::path::Path,
    n: &Nest,
    tag: &str,
    group: &str,
    send_at: u128,
) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(fixture("nestjs_client_requester.js"))
        .args([&n.bootstrap, &n.requests, "20", tag, group])
        .env("NODE_PATH", cache.join("node/node_modules"))
        .env("NESTJS_SEND_AT_MS", send_at.to_string());
    cmd
}

#[tokio::test]
async fn nestjs_client_kafka_requester() {
    let cache = interop_cache();
    let n = nest_setup().await;
    let out = run(nest_requester(&cache, &n, "j", &unique_name("nest"), 0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("22 replies verified, 0 problems"),
        "{stdout}"
    );
}

/// Two instances of one group: NestJS gives each its own reply partition; both start
/// sending at the same moment, once both listen.
#[tokio::test]
#[cfg_attr(
    embedded_broker,
    ignore = "on librdkafka's mock cluster a rebalancing kafkajs group leaves one NestJS instance without replies: runs on Apache Kafka"
)]
async fn nestjs_client_kafka_instances_of_one_group_get_their_own_replies() {
    let cache = interop_cache();
    let n = nest_setup().await;
    let group = unique_name("nest-shared");
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 8_000;
    run_together(
        ["a", "b"]
            .iter()
            .map(|tag| nest_requester(&cache, &n, tag, &group, at))
            .collect(),
        "22 replies verified, 0 problems",
    );
}

#[tokio::test]
#[cfg_attr(
    embedded_broker,
    ignore = "SmallRye's Java client cannot produce to librdkafka's mock cluster: runs on Apache Kafka"
)]
async fn smallrye_kafka_request_reply_requesters() {
    let cache = interop_cache();
    let t = topics().await;
    let bootstrap = t.broker.bootstrap_servers().to_owned();
    let _kyc = kyc_responder(&bootstrap, &t.requests, "spring,smallrye,plain");
    let out = run(jvm_requester(
        &cache,
        "smallrye-requester",
        &t,
        &["2", "20"],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "smallrye: {stdout}");
    assert!(
        stdout.contains("22 replies verified, 0 problems"),
        "{stdout}"
    );
    // Two requester instances at once, each on its own reply partition.
    run_together(
        ["1", "3"]
            .iter()
            .map(|p| jvm_requester(&cache, "smallrye-requester", &t, &[p, "50"]))
            .collect(),
        "52 replies verified, 0 problems",
    );
}
