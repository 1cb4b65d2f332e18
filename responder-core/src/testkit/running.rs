//! A responder running in the background of a test.

use std::sync::Arc;

use tokio::sync::oneshot;
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
}

impl RunningResponder {
    /// Spawns `responder`; it serves until [`shutdown`](Self::shutdown) or
    /// [`kill`](Self::kill).
    pub fn spawn(responder: Responder) -> Self {
        let metrics = responder.metrics();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(responder.run_until(async move {
            let _ = rx.await;
        }));
        RunningResponder {
            metrics,
            stop: Some(tx),
            task,
        }
    }

    /// The responder's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Graceful shutdown: drain, commit, leave the group.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(Error::ConsumerThread(format!("responder task failed: {e}"))),
        }
    }

    /// A crash: the responder stops at once, commits nothing more, and its
    /// consumer leaves the group.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
