//! The reference KYC scoring responder.
//!
//! A risk service asks the KYC service for a wallet's score over
//! `WALLET-KYC-REQUEST` / `WALLET-KYC-RESPONSE`.
//!
//! - Without `KAFKA_BOOTSTRAP_SERVERS`: starts the embedded broker, the responder and a
//!   requester, sends a few requests and prints the round trips.
//! - With it: serves that broker until SIGTERM or ctrl-c, configured only from the
//!   environment (see the README's "The KYC example").

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kafka_responder::testkit::{Requester, RunningResponder, TestBroker};
use kafka_responder::{HeaderConvention, Json, PolicySource, Responder};

#[path = "shared/kyc.rs"]
mod kyc;
use kyc::Kyc;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn responder(bootstrap: &str, fetch_wait_ms: Option<String>) -> anyhow::Result<Responder> {
    let conventions = env_or("RESPONDER_HEADERS", "spring,smallrye,plain")
        .split(',')
        .map(str::parse::<HeaderConvention>)
        .collect::<Result<Vec<_>, _>>()
        .context("RESPONDER_HEADERS")?;
    // Inline entries, a policy file, `kafka-acls --list` output or a Strimzi KafkaUser.
    let policy = env_or("RESPONDER_REPLY_ALLOW", "WALLET-KYC-RESPONSE*")
        .parse::<PolicySource>()
        .and_then(|source| source.load())
        .context("RESPONDER_REPLY_ALLOW")?;
    let mut builder = Responder::builder()
        .bootstrap_servers(bootstrap)
        .group_id(env_or("RESPONDER_GROUP_ID", "kyc"))
        .route(
            env_or("RESPONDER_REQUEST_TOPIC", "WALLET-KYC-REQUEST"),
            Json(Kyc),
        )
        .header_conventions(conventions)
        .reply_topics(policy);
    if let Some(ms) = fetch_wait_ms.or_else(|| std::env::var("RESPONDER_FETCH_WAIT_MS").ok()) {
        builder = builder.consumer_config("fetch.wait.max.ms", ms);
    }
    if let Ok(ms) = std::env::var("RESPONDER_SESSION_TIMEOUT_MS") {
        builder = builder.consumer_config("session.timeout.ms", ms);
    }
    Ok(builder.build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn,librdkafka=warn".into()),
        )
        .init();

    if let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        && !bootstrap.trim().is_empty()
    {
        return Ok(responder(&bootstrap, None)?.run().await?);
    }
    demo().await
}

/// The embedded demo: broker, responder and a Spring-style requester in one process.
async fn demo() -> anyhow::Result<()> {
    let broker = TestBroker::embedded()?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    broker.create_topic("WALLET-KYC-REQUEST", 3).await?;
    broker.create_topic("WALLET-KYC-RESPONSE", 2).await?;
    println!("embedded broker at {bootstrap}");

    // The embedded broker does not wake a waiting fetch when data arrives: keep the
    // fetch wait short so round trips show the responder, not the broker's timer.
    let running = RunningResponder::spawn(responder(&bootstrap, Some("10".into()))?);
    let requester = Requester::new(
        &bootstrap,
        HeaderConvention::spring(),
        "WALLET-KYC-RESPONSE",
        1,
    )
    .await?
    .with_timeout(Duration::from_secs(20));

    let requests: [(&str, &[u8]); 5] = [
        ("wallet-1", br#"{"wallet_id":"wallet-1"}"#),
        ("wallet-2", br#"{"wallet_id":"wallet-2"}"#),
        ("wallet-1", br#"{"wallet_id":"wallet-1"}"#),
        ("unknown-9", br#"{"wallet_id":"unknown-9"}"#),
        ("broken", b"{not json"),
    ];
    for (key, payload) in requests {
        let started = Instant::now();
        let reply = requester
            .request("WALLET-KYC-REQUEST", Some(key.as_bytes()), payload)
            .await?;
        let took = started.elapsed();
        let body = match reply.error_code() {
            Some(code) => format!(
                "error {code}: {}",
                reply.error_message().unwrap_or_default()
            ),
            None => {
                String::from_utf8_lossy(reply.payload.as_deref().unwrap_or_default()).into_owned()
            }
        };
        println!(
            "{:<28} -> partition {} {:<45} ({:.1} ms)",
            String::from_utf8_lossy(payload),
            reply.partition,
            body,
            took.as_secs_f64() * 1e3
        );
    }
    // Counted once the broker acknowledged each reply: read them after the drain.
    let metrics = running.shutdown().await?;
    drop(requester);
    println!(
        "responder: {} received, {} replied, {} error replies",
        metrics.received, metrics.replied, metrics.error_replies
    );
    Ok(())
}
