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

use kafka_responder::testkit::{Requester, RunningResponder, TestBroker};
use kafka_responder::{HeaderConvention, Json};

#[path = "shared/kyc.rs"]
mod kyc;
#[path = "shared/kyc_service.rs"]
mod kyc_service;
use kyc::Kyc;
use kyc_service::responder;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kyc_service::init_tracing();

    if let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        && !bootstrap.trim().is_empty()
    {
        return Ok(responder(&bootstrap, None, Json, Kyc)?.run().await?);
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
    let running = RunningResponder::spawn(responder(&bootstrap, Some("10".into()), Json, Kyc)?);
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
