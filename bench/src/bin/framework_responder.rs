//! The "framework" contestant: the reference KYC service (`examples/shared`: its
//! handler, its JSON codec, its allow-list, its environment configuration, tracing at
//! INFO) with a counting allocator. Serves until its standard input closes, drains,
//! then prints `ALLOCATIONS <n>`.
//!
//! `BENCH_HANDLER_DELAY_MS` makes the handler sleep that long first (the memory run's
//! slow handler).

use std::io::Read;
use std::time::Duration;

use anyhow::Context as _;
use kafka_responder::{Handler, Json, RequestContext};
use responder_bench::alloc_count::{self, Counting};

#[path = "../../../examples/shared/kyc.rs"]
mod kyc;
#[path = "../../../examples/shared/kyc_service.rs"]
mod kyc_service;

#[global_allocator]
static ALLOC: Counting = Counting;

/// A handler that sleeps before delegating.
struct Delayed<H>(H, Duration);

impl<H: Handler> Handler for Delayed<H> {
    type Request = H::Request;
    type Reply = H::Reply;
    type Error = H::Error;

    async fn handle(&self, r: H::Request, cx: &RequestContext) -> Result<H::Reply, H::Error> {
        tokio::time::sleep(self.1).await;
        self.0.handle(r, cx).await
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kyc_service::init_tracing();
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").context("KAFKA_BOOTSTRAP_SERVERS")?;
    let delay = std::env::var("BENCH_HANDLER_DELAY_MS")
        .ok()
        .map(|ms| ms.parse().map(Duration::from_millis))
        .transpose()
        .context("BENCH_HANDLER_DELAY_MS")?;
    let responder = match delay {
        Some(d) => kyc_service::responder(&bootstrap, None, Json, Delayed(kyc::Kyc, d))?,
        None => kyc_service::responder(&bootstrap, None, Json, kyc::Kyc)?,
    };
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    };
    responder.run_until(stdin_closed).await?;
    println!("{}", alloc_count::report_line());
    Ok(())
}
