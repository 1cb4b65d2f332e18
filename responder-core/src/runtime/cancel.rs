//! A cancellation signal shared by the requests of one partition assignment: fired
//! when the partition is revoked or the responder stops, it abandons what those
//! requests still do (handling, awaiting a reply's acknowledgement, retrying it).

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    fired: AtomicBool,
    notify: Notify,
}

/// A one-shot, cloneable cancellation signal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<Inner>);

impl Cancel {
    /// Fires the signal (once; later calls do nothing).
    pub(crate) fn fire(&self) {
        if !self.0.fired.swap(true, SeqCst) {
            self.0.notify.notify_waiters();
        }
    }

    /// Whether the signal has fired.
    pub(crate) fn fired(&self) -> bool {
        self.0.fired.load(SeqCst)
    }

    /// Resolves once the signal has fired.
    pub(crate) async fn fired_wait(&self) {
        let mut notified = pin!(self.0.notify.notified());
        // Registered before the flag is read: a fire in between still wakes us.
        notified.as_mut().enable();
        if self.fired() {
            return;
        }
        notified.await;
    }

    /// Runs `work` unless the signal fires first; `None` when it did. `work` is pinned
    /// by the caller, where it lives: taken by value, it would be stored twice here
    /// (as the argument, and moved into the race), which for a request's future is
    /// kilobytes copied and kept per request.
    pub(crate) async fn guard<F: Future>(&self, work: Pin<&mut F>) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.fired_wait() => None,
            out = work => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_once_for_every_waiter() {
        let cancel = Cancel::default();
        let waiter = {
            let c = cancel.clone();
            tokio::spawn(async move { c.guard(pin!(std::future::pending::<()>())).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancel.fire();
        cancel.fire();
        assert_eq!(waiter.await.expect("task"), None);
        // Fired before the wait began: resolves at once.
        assert_eq!(cancel.guard(pin!(async { 1 })).await, None);
        assert_eq!(Cancel::default().guard(pin!(async { 1 })).await, Some(1));
    }
}
