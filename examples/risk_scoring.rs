//! The whole story, end to end: a risk-scoring service receives payments, asks the KYC
//! service for the wallet's score by request-reply over Kafka, combines it with
//! country and payment-type scores, and publishes a decision. The KYC service runs as
//! two replicas in one consumer group, and every payment still gets its decision.
//!
//! Runs on the embedded broker by default, against `KAFKA_BOOTSTRAP_SERVERS` when set
//! (topics `PAYMENTS`, `PAYMENT-DECISIONS`, `WALLET-KYC-REQUEST`, `WALLET-KYC-RESPONSE`
//! must exist there). `RISK_PAYMENTS` sets how many payments (default 200).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_responder::testkit::{Requester, RunningResponder, TestBroker};
use kafka_responder::{HeaderConvention, Responder};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde::{Deserialize, Serialize};

#[path = "shared/kyc.rs"]
mod kyc;
use kyc::{Kyc, KycQuery, KycScore};

#[derive(Debug, Serialize, Deserialize)]
struct Payment {
    payment_id: u64,
    wallet_id: String,
    country: String,
    payment_type: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Decision {
    payment_id: u64,
    risk: u32,
    decision: String,
}

fn country_score(country: &str) -> u32 {
    match country {
        "NL" | "DE" | "FR" => 10,
        "US" | "GB" => 20,
        _ => 60,
    }
}

fn payment_type_score(kind: &str) -> u32 {
    match kind {
        "card" => 10,
        "transfer" => 30,
        _ => 70,
    }
}

/// Combines the three scores; a KYC score is a trust score (high is good).
fn decide(kyc: Option<u8>, country: u32, kind: u32) -> (u32, &'static str) {
    let kyc_risk = kyc.map_or(100, |s| 100 - u32::from(s));
    let risk = (kyc_risk * 2 + country + kind) / 4;
    let decision = match (kyc, risk) {
        (None, _) => "decline",
        (_, r) if r < 35 => "approve",
        (_, r) if r < 60 => "review",
        _ => "decline",
    };
    (risk, decision)
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// The risk service: payments in, KYC request-reply, decisions out.
async fn risk_service(bootstrap: String, expected: usize) -> anyhow::Result<()> {
    let payments: StreamConsumer = client(&bootstrap)
        .set("group.id", "risk")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    payments.subscribe(&["PAYMENTS"])?;
    let decisions: FutureProducer = client(&bootstrap).set("linger.ms", "1").create()?;
    // The risk service's reply partition is its own: assigned, never rebalanced away.
    let kyc = Requester::new(
        &bootstrap,
        HeaderConvention::spring(),
        "WALLET-KYC-RESPONSE",
        0,
    )
    .await?
    .with_timeout(Duration::from_secs(30));
    for _ in 0..expected {
        let m = payments.recv().await?;
        let payment: Payment = serde_json::from_slice(m.payload().unwrap_or_default())?;
        let query = serde_json::to_vec(&KycQuery {
            wallet_id: payment.wallet_id.clone(),
            documents: Vec::new(),
        })?;
        let reply = kyc
            .request(
                "WALLET-KYC-REQUEST",
                Some(payment.wallet_id.as_bytes()),
                &query,
            )
            .await?;
        let score = match reply.error_code() {
            None => Some(reply.json::<KycScore>()?.score),
            Some(_) => None, // unknown wallet: decline
        };
        let (risk, decision) = decide(
            score,
            country_score(&payment.country),
            payment_type_score(&payment.payment_type),
        );
        let body = serde_json::to_vec(&Decision {
            payment_id: payment.payment_id,
            risk,
            decision: decision.to_owned(),
        })?;
        let key = payment.payment_id.to_string();
        decisions
            .send(
                FutureRecord::to("PAYMENT-DECISIONS")
                    .key(&key)
                    .payload(&body),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

fn kyc_replica(bootstrap: &str) -> anyhow::Result<Responder> {
    Ok(Responder::builder()
        .bootstrap_servers(bootstrap)
        .group_id("kyc")
        .handler(Kyc)
        .reply_topics("WALLET-KYC-RESPONSE".parse()?)
        .consumer_config("fetch.wait.max.ms", "10")
        // Notice rebalances quickly: the replicas join at the same moment.
        .consumer_config("heartbeat.interval.ms", "500")
        .consumer_config("session.timeout.ms", "6000")
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rdkafka=error,librdkafka=error".into()),
        )
        .init();
    let n: u64 = std::env::var("RISK_PAYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let broker = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.trim().is_empty() => TestBroker::External(servers),
        _ => {
            let b = TestBroker::embedded()?;
            for (topic, partitions) in [
                ("PAYMENTS", 3),
                ("PAYMENT-DECISIONS", 3),
                ("WALLET-KYC-REQUEST", 4),
                ("WALLET-KYC-RESPONSE", 1),
            ] {
                b.create_topic(topic, partitions).await?;
            }
            b
        }
    };
    let bootstrap = broker.bootstrap_servers().to_owned();
    let started = Instant::now();

    // Two KYC replicas in one group share the request topic's partitions.
    let replicas = [
        RunningResponder::spawn(kyc_replica(&bootstrap)?),
        RunningResponder::spawn(kyc_replica(&bootstrap)?),
    ];
    let risk = tokio::spawn(risk_service(bootstrap.clone(), n as usize));

    // Payments come in.
    let producer: FutureProducer = client(&bootstrap).set("linger.ms", "1").create()?;
    let countries = ["NL", "US", "BR", "DE"];
    let kinds = ["card", "transfer", "crypto"];
    for id in 0..n {
        let wallet = if id % 17 == 0 {
            format!("unknown-{id}")
        } else {
            format!("wallet-{}", id % 41)
        };
        let payment = Payment {
            payment_id: id,
            wallet_id: wallet,
            country: countries[id as usize % countries.len()].into(),
            payment_type: kinds[id as usize % kinds.len()].into(),
        };
        let body = serde_json::to_vec(&payment)?;
        producer
            .send(
                FutureRecord::to("PAYMENTS")
                    .key(&payment.wallet_id)
                    .payload(&body),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    risk.await??;

    // Every payment has its decision.
    let reader: StreamConsumer = client(&bootstrap)
        .set("group.id", "audit")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    reader.subscribe(&["PAYMENT-DECISIONS"])?;
    let mut by_decision: HashMap<String, u64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < n as usize {
        let m = tokio::time::timeout(Duration::from_secs(30), reader.recv()).await??;
        let d: Decision = serde_json::from_slice(m.payload().unwrap_or_default())?;
        if seen.insert(d.payment_id) {
            *by_decision.entry(d.decision).or_default() += 1;
        }
    }
    let kyc_answers: Vec<u64> = replicas.iter().map(|r| r.metrics().received).collect();
    for r in replicas {
        r.shutdown().await?;
    }
    let mut counts: Vec<_> = by_decision.into_iter().collect();
    counts.sort();
    println!(
        "{n} payments, {} decisions in {:.1} s: {counts:?}; KYC requests answered per replica: {kyc_answers:?}",
        seen.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
