//! A cancellation signal shared by the requests of one partition assignment: fired
//! when the partition is revoked or the responder stops, it abandons what those
//! requests still do (handling, awaiting a reply's acknowledgement, retrying it).
//!
//! How a fire reaches the requests waiting: a request polled by a worker (see
//! `workers.rs`) registers nothing. Every fire is counted and wakes every worker
//! ([`Poller`]), and a worker that sees a new fire polls all its requests, whose
//! guards then see their signal. Registering each request with the signal instead
//! (a `Notify` waiter, linked and unlinked under the signal's lock) cost some 250
//! instructions per request, for an event that happens at a revocation or shutdown.
//! A request polled anywhere else (a task of its own, if its worker is gone) waits on
//! the signal's `Notify`.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

#[derive(Debug, Default)]
struct Inner {
    fired: AtomicBool,
    notify: Notify,
}

/// A one-shot, cloneable cancellation signal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<Inner>);

/// What polls requests and must poll them all again when a signal fires: a worker.
pub(crate) trait Poller: Send + Sync {
    /// Makes the poller poll all its requests soon.
    fn wake(&self);
}

/// Fires so far, in the whole process.
static FIRES: AtomicU64 = AtomicU64::new(0);

/// Every live poller in the process (dead ones are pruned as new ones come).
static POLLERS: Mutex<Vec<Weak<dyn Poller>>> = Mutex::new(Vec::new());

thread_local! {
    /// Whether a poller is polling a request on this thread now (see [`polled_by_poller`]).
    static IN_POLLER: Cell<bool> = const { Cell::new(false) };
}

/// Adds `poller` to those woken by every fire.
pub(crate) fn add_poller(poller: Weak<dyn Poller>) {
    let mut pollers = POLLERS.lock().unwrap_or_else(PoisonError::into_inner);
    pollers.retain(|p| p.strong_count() > 0);
    pollers.push(poller);
}

/// Fires so far: a poller that sees this change polls all its requests.
pub(crate) fn fires() -> u64 {
    FIRES.load(SeqCst)
}

/// Polls a request (runs `poll`) as a poller: its guard registers nothing and relies on
/// the poller to poll it again after any fire.
pub(crate) fn polled_by_poller<R>(poll: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_POLLER.set(self.0);
        }
    }
    let _reset = Reset(IN_POLLER.replace(true));
    poll()
}

impl Cancel {
    /// Fires the signal (once; later calls do nothing).
    pub(crate) fn fire(&self) {
        if !self.0.fired.swap(true, SeqCst) {
            FIRES.fetch_add(1, SeqCst);
            self.0.notify.notify_waiters();
            let pollers: Vec<_> = POLLERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            for poller in pollers {
                poller.wake();
            }
        }
    }

    /// Whether the signal has fired.
    pub(crate) fn fired(&self) -> bool {
        self.0.fired.load(SeqCst)
    }

    /// Runs `work` unless the signal fires first; `None` when it did. `work` is pinned
    /// by the caller, where it lives: taken by value, it would be stored twice (as the
    /// argument, and in the guard), which for a request's future is kilobytes copied
    /// and kept per request.
    pub(crate) fn guard<'a, F: Future>(&'a self, work: Pin<&'a mut F>) -> Guard<'a, F> {
        Guard {
            cancel: self,
            work,
            notified: None,
        }
    }
}

/// [`Cancel::guard`]'s future.
pub(crate) struct Guard<'a, F> {
    cancel: &'a Cancel,
    work: Pin<&'a mut F>,
    /// The signal's waiter, when polled outside a poller.
    notified: Option<Pin<Box<Notified<'a>>>>,
}

impl<F: Future> Future for Guard<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin` (the work is pinned by the caller).
        let this = self.get_mut();
        if this.cancel.fired() {
            return Poll::Ready(None);
        }
        if this.notified.is_none() && !IN_POLLER.get() {
            let mut notified = Box::pin(this.cancel.0.notify.notified());
            // Registered before the flag is read again: a fire in between still wakes.
            notified.as_mut().enable();
            this.notified = Some(notified);
            if this.cancel.fired() {
                return Poll::Ready(None);
            }
        }
        if let Some(notified) = &mut this.notified
            && notified.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        this.work.as_mut().poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
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

    /// Polled by a poller, a guard registers no waiter; the fire wakes the poller,
    /// and its next poll ends the guard. The count of fires moves on each first fire.
    #[test]
    fn a_poller_is_woken_by_a_fire_and_its_guards_end() {
        struct Woken(AtomicU64);
        impl Poller for Woken {
            fn wake(&self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        let poller = Arc::new(Woken(AtomicU64::new(0)));
        let as_poller: Arc<dyn Poller> = poller.clone();
        add_poller(Arc::downgrade(&as_poller));
        let cancel = Cancel::default();
        let mut work = pin!(std::future::pending::<()>());
        let mut guard = pin!(cancel.guard(work.as_mut()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(polled_by_poller(|| guard.as_mut().poll(&mut cx)).is_pending());
        assert!(guard.notified.is_none(), "no waiter registered");
        let before = fires();
        cancel.fire();
        cancel.fire();
        assert!(fires() > before);
        assert!(poller.0.load(SeqCst) >= 1);
        assert_eq!(
            polled_by_poller(|| guard.as_mut().poll(&mut cx)),
            Poll::Ready(None)
        );
        drop(as_poller);
    }
}
