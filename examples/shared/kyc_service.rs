//! The KYC responder's deployment: everything it takes from the environment (see the
//! README's "The KYC example"). Shared by the example and the benchmark, so the
//! benchmark measures the service as it ships.

use anyhow::Context as _;
use kafka_responder::{Codec, HeaderConvention, PolicySource, Responder};

/// Logs to stderr at INFO (librdkafka's own at WARN), or as `RUST_LOG` says.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn,librdkafka=warn".into()),
        )
        .init();
}

/// `name` from the environment, or `default` when unset or blank.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The responder serving `handler` (the KYC handler under its codec) on `bootstrap`,
/// configured from the `RESPONDER_*` variables. `fetch_wait_ms` overrides
/// `RESPONDER_FETCH_WAIT_MS`.
pub(crate) fn responder(
    bootstrap: &str,
    fetch_wait_ms: Option<String>,
    handler: impl Codec,
) -> anyhow::Result<Responder> {
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
            handler,
        )
        .header_conventions(conventions)
        .reply_topics(policy);
    if let Some(ms) = fetch_wait_ms.or_else(|| std::env::var("RESPONDER_FETCH_WAIT_MS").ok()) {
        builder = builder.consumer_config("fetch.wait.max.ms", ms);
    }
    if let Ok(ms) = std::env::var("RESPONDER_SESSION_TIMEOUT_MS") {
        builder = builder.consumer_config("session.timeout.ms", ms);
    }
    if let Ok(addr) = std::env::var("RESPONDER_HTTP_ADDR")
        && !addr.trim().is_empty()
    {
        builder = http(builder, &addr)?;
    }
    Ok(builder.build()?)
}

/// `/metrics`, `/livez` and `/readyz` on `addr` (feature `http`).
#[cfg(feature = "http")]
fn http(
    builder: kafka_responder::ResponderBuilder,
    addr: &str,
) -> anyhow::Result<kafka_responder::ResponderBuilder> {
    let addr = addr.parse().context("RESPONDER_HTTP_ADDR")?;
    Ok(builder.http_addr(addr))
}

#[cfg(not(feature = "http"))]
fn http(
    _builder: kafka_responder::ResponderBuilder,
    _addr: &str,
) -> anyhow::Result<kafka_responder::ResponderBuilder> {
    anyhow::bail!("RESPONDER_HTTP_ADDR needs the `http` feature (--features http)")
}
