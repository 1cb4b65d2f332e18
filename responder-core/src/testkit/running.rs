//! A responder running in the background of a test.

use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::runtime::Responder;

/// A responder spawned on the test's runtime.
#[derive(Debug)]
pub struct RunningResponder {
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
    closed: watch::Receiver<bool>,
}

impl RunningResponder {
    /// Spawns `responder`; it serves until [`shutdown`](Self::shutdown) or
    /// [`kill`](Self::kill).
    pub fn spawn(responder: Responder) -> Self {
        let metrics = responder.metrics();
        let closed = responder.closed();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(responder.run_until(async move {
            let _ = rx.await;
        }));
        RunningResponder {
            metrics,
            stop: Some(tx),
            task,
            closed,
        }
    }

    /// The responder's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The responder's Prometheus metrics, in the text exposition format.
    pub fn encode_prometheus(&self) -> String {
        self.metrics.encode_prometheus()
    }

    /// Graceful shutdown: drain, commit, leave the group. Returns the final counters.
    pub async fn shutdown(mut self) -> Result<MetricsSnapshot, Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r.map(|()| self.metrics.snapshot()),
            Err(e) => Err(Error::ConsumerThread(format!("responder task failed: {e}"))),
        }
    }

    /// A crash: the responder stops at once and commits nothing more. Returns once
    /// its consumer has left the group (its requests in flight may still finish and
    /// reply: at-least-once allows that duplicate).
    pub async fn kill(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.closed.wait_for(|closed| *closed),
        )
        .await;
    }
}
