//! Requesters written by other people's code, in other languages, against the reference
//! KYC responder running as its real binary, configured only through its documented
//! environment variables:
//! - Python confluent-kafka speaking Spring (16-byte binary correlation id, 4-byte
//!   big-endian partition) and SmallRye (36-byte text correlation id; replies carrying
//!   `REPLY_TOPIC` are ignored, as SmallRye does);
//! - Node kafkajs (its own protocol implementation) speaking NestJS (text values);
//! - kcat, one scripted round trip in the plain style.
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
        dir.join("venv/bin/python").exists() && dir.join("node/node_modules/kafkajs").exists(),
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
