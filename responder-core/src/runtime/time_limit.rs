//! The handler's time limit: its future bounded by a timer that is armed only when the
//! handler does not answer on its first poll.
//!
//! Most handlers answer at once (they compute, they do not wait). `tokio::time::timeout`
//! reads the clock, finds the runtime's timer and builds its entry before the first
//! poll, and takes the entry apart when dropped, for a timer that never fires: under
//! callgrind about 150 instructions per request more than this. Here the limit counts
//! from a clock reading taken before the handler starts (the same one times the handler
//! for the metrics), and the timer is built, for what is left of the limit, only after
//! a first poll that leaves the handler pending.
//!
//! As tokio's timeout does, a handler whose poll spent the task's cooperative budget
//! (it keeps finding its channels or sockets ready) does not keep its timer from being
//! checked: the timer is then polled outside the budget.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::coop;

use crate::endpoint::BoxFuture;
use crate::stamp::Stamp;

/// The handler did not finish within its limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// `work`, bounded by `limit` from `started`.
pub(crate) struct TimeLimit<'a, T> {
    work: BoxFuture<'a, T>,
    started: Stamp,
    limit: Duration,
    /// Armed when `work` is first pending. Boxed: a `Sleep` is not `Unpin`, and only
    /// handlers that wait need one.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<'a, T> TimeLimit<'a, T> {
    pub(crate) fn new(work: BoxFuture<'a, T>, started: Stamp, limit: Duration) -> Self {
        TimeLimit {
            work,
            started,
            limit,
            timer: None,
        }
    }
}

impl<T> Future for TimeLimit<'_, T> {
    type Output = Result<T, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin` (the work and the timer are boxed).
        let this = self.get_mut();
        let had_budget = coop::has_budget_remaining();
        // The work first, as `tokio::time::timeout` polls it: work that is done is not
        // refused because its time ran out meanwhile.
        if let Poll::Ready(done) = this.work.as_mut().poll(cx) {
            return Poll::Ready(Ok(done));
        }
        let timer = match &mut this.timer {
            Some(timer) => timer,
            None => {
                let spent = Duration::from_nanos(Stamp::now().nanos_since(this.started));
                let left = this.limit.saturating_sub(spent);
                this.timer.insert(Box::pin(tokio::time::sleep(left)))
            }
        };
        let expired = if had_budget && !coop::has_budget_remaining() {
            // The work spent the budget: a `Sleep` polled now would only ask to be
            // polled again, and work that always spends it would never be timed out.
            Pin::new(&mut coop::unconstrained(timer.as_mut())).poll(cx)
        } else {
            timer.as_mut().poll(cx)
        };
        expired.map(|()| Err(Elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed<'a, T>(f: impl Future<Output = T> + Send + 'a) -> BoxFuture<'a, T> {
        Box::pin(f)
    }

    #[tokio::test]
    async fn work_done_at_once_arms_no_timer() {
        let mut limited = TimeLimit::new(boxed(async { 7 }), Stamp::now(), Duration::ZERO);
        let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut limited).poll(cx))).await;
        assert_eq!(polled, Poll::Ready(Ok(7)));
        assert!(limited.timer.is_none());
    }

    /// Fails, rather than hangs, when `f` does not end within 10 s.
    async fn within_10_s<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("the time limit never fired")
    }

    #[tokio::test]
    async fn work_that_waits_past_its_limit_is_refused() {
        let work = boxed(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            1
        });
        let limited = TimeLimit::new(work, Stamp::now(), Duration::from_millis(50));
        assert_eq!(within_10_s(limited).await, Err(Elapsed));
    }

    #[tokio::test]
    async fn work_that_waits_within_its_limit_is_done() {
        let work = boxed(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            5
        });
        let limited = TimeLimit::new(work, Stamp::now(), Duration::from_secs(30)).await;
        assert_eq!(limited, Ok(5));
    }

    /// Work done on the poll that comes after its limit passed is done, not refused:
    /// here the timer's firing is what polls it again.
    #[tokio::test]
    async fn work_done_late_is_still_done() {
        let mut polled = false;
        // Pending once (without asking to be woken), ready after.
        let work = boxed(std::future::poll_fn(move |_| {
            if std::mem::replace(&mut polled, true) {
                Poll::Ready(9)
            } else {
                Poll::Pending
            }
        }));
        let limited = TimeLimit::new(work, Stamp::now(), Duration::from_millis(10));
        assert_eq!(within_10_s(limited).await, Ok(9));
    }

    /// Work that spends the task's whole budget on every poll (its resources are always
    /// ready) is timed out all the same.
    #[tokio::test]
    async fn work_that_spends_the_budget_is_timed_out() {
        let work = boxed(async {
            loop {
                coop::consume_budget().await;
            }
        });
        let limited = TimeLimit::<()>::new(work, Stamp::now(), Duration::from_millis(50));
        assert_eq!(within_10_s(limited).await, Err(Elapsed));
    }

    /// The limit counts from `started`, not from the first poll: time spent before it
    /// (a first poll that blocked its thread) is taken off.
    #[tokio::test]
    async fn the_limit_counts_from_the_start() {
        let started = Stamp::now();
        std::thread::sleep(Duration::from_millis(600));
        let work = boxed(std::future::pending::<()>());
        let at = std::time::Instant::now();
        let limited = TimeLimit::new(work, started, Duration::from_millis(700));
        assert_eq!(within_10_s(limited).await, Err(Elapsed));
        let waited = at.elapsed();
        // About 100 ms; the whole 700 if the time already spent were not taken off.
        assert!(
            waited < Duration::from_millis(500),
            "waited {waited:?} after 600 ms already spent of a 700 ms limit"
        );
    }
}
