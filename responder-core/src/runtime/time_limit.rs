//! The handler's time limit: its future bounded by a timer that is armed only when the
//! handler does not answer on its first poll.
//!
//! Most handlers answer at once (they compute, they do not wait). `tokio::time::timeout`
//! reads the clock and builds its timer entry before the first poll, and unlinks it
//! when dropped: some 300 instructions per request under callgrind, for a timer that
//! never fires. Here the limit counts from a reading the request takes anyway (the
//! handler's start, timed for the metrics), and the timer is built, for what is left of
//! the limit, only after a first poll that leaves the handler pending.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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
        timer.as_mut().poll(cx).map(|()| Err(Elapsed))
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

    #[tokio::test]
    async fn work_that_waits_past_its_limit_is_refused() {
        let work = boxed(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            1
        });
        let at = std::time::Instant::now();
        let limited = TimeLimit::new(work, Stamp::now(), Duration::from_millis(50)).await;
        assert_eq!(limited, Err(Elapsed));
        assert!(at.elapsed() < Duration::from_secs(20), "{:?}", at.elapsed());
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

    /// The limit counts from `started`, not from the first poll: time spent before it
    /// (a first poll that blocked its thread) is taken off.
    #[tokio::test]
    async fn the_limit_counts_from_the_start() {
        let started = Stamp::now();
        std::thread::sleep(Duration::from_millis(300));
        let work = boxed(std::future::pending::<()>());
        let at = std::time::Instant::now();
        let limited = TimeLimit::new(work, started, Duration::from_millis(400)).await;
        assert_eq!(limited, Err(Elapsed));
        let waited = at.elapsed();
        assert!(
            waited < Duration::from_millis(390),
            "waited {waited:?} after 300 ms already spent of a 400 ms limit"
        );
    }
}
