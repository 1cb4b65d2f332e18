//! The KYC responder's deployment: everything it takes from the environment (see the
//! README's "The KYC example"). Shared by the example and the benchmark, so the
//! benchmark measures the service as it ships.

use kafka_responder::{Codec, Handler, Responder, env};

/// Logs to stderr at INFO (librdkafka's own at WARN), or as `RUST_LOG` says.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn,librdkafka=warn".into()),
        )
        .init();
}

/// The responder serving `handler` (the KYC handler) under `codec` on `bootstrap`,
/// configured from the environment (the library's `RESPONDER_*` and `KAFKA_*`
/// variables, see `kafka_responder::env`, plus `RESPONDER_REQUEST_TOPIC`).
/// `fetch_wait_ms` overrides `RESPONDER_FETCH_WAIT_MS`.
pub(crate) fn responder<C, H>(
    bootstrap: &str,
    fetch_wait_ms: Option<String>,
    codec: C,
    handler: H,
) -> anyhow::Result<Responder>
where
    H: Handler,
    C: Codec<H::Request, H::Reply>,
{
    let mut builder = Responder::builder()
        .bootstrap_servers(bootstrap)
        .group_id("kyc")
        .reply_topics("WALLET-KYC-RESPONSE*".parse()?)
        .from_env()?
        .route(env::request_topic("WALLET-KYC-REQUEST"), codec, handler);
    if let Some(ms) = fetch_wait_ms {
        builder = builder.consumer_config("fetch.wait.max.ms", ms);
    }
    Ok(builder.build()?)
}
