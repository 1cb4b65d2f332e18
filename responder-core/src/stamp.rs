//! Readings of the monotonic clock, for the request path's timings: a duration between
//! two is a subtraction (see `responder_ffi::clock`), and one reading also gives the
//! wall-clock time, without reading that clock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::deadline::now_millis;

/// A moment on the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

/// How often [`Stamp::epoch_millis`] takes the wall clock's offset from the monotonic
/// clock again, in nanoseconds.
const RETAKE_OFFSET_NANOS: u64 = 1_000_000_000;

impl Stamp {
    /// Now.
    pub(crate) fn now() -> Self {
        Stamp(responder_ffi::clock::monotonic_nanos())
    }

    /// Nanoseconds from `earlier` to this moment (0 if `earlier` is later).
    pub(crate) fn nanos_since(self, earlier: Stamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This moment (read moments ago) in epoch milliseconds, without reading the wall
    /// clock: the monotonic time plus the wall clock's offset from it, taken again
    /// every second by whichever call comes after that (so a step of the wall clock
    /// shows within a second). A reply's acknowledgement is timed on the monotonic
    /// clock, and its request's age from the record's wall-clock timestamp: one clock
    /// read serves both.
    pub(crate) fn epoch_millis(self) -> i64 {
        /// The wall clock minus the monotonic one, in milliseconds.
        static OFFSET: AtomicI64 = AtomicI64::new(0);
        /// The monotonic nanoseconds when `OFFSET` was taken (0: never).
        static TAKEN: AtomicU64 = AtomicU64::new(0);
        let millis = |nanos: u64| i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX);
        let taken = TAKEN.load(Relaxed);
        if taken == 0 || self.0.saturating_sub(taken) >= RETAKE_OFFSET_NANOS {
            // Two stores, not one: a reader between them mixes an offset with the time
            // of the other, off by what the clocks drifted in a second.
            let now = Stamp::now().0;
            OFFSET.store(now_millis().saturating_sub(millis(now)), Relaxed);
            TAKEN.store(now.max(1), Relaxed);
        }
        millis(self.0).saturating_add(OFFSET.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The monotonic clock plus its offset reads as the wall clock does.
    #[test]
    fn stamps_read_as_epoch_milliseconds() {
        for _ in 0..3 {
            let before = now_millis();
            let at = Stamp::now().epoch_millis();
            let after = now_millis();
            assert!(
                (before - 1..=after + 1).contains(&at),
                "{before} {at} {after}"
            );
        }
        let earlier = Stamp::now();
        std::thread::sleep(Duration::from_millis(30));
        let gap = now_millis() - earlier.epoch_millis();
        assert!((29..200).contains(&gap), "{gap}");
    }

    #[test]
    fn durations_are_nanoseconds_and_never_negative() {
        let a = Stamp::now();
        std::thread::sleep(Duration::from_millis(20));
        let b = Stamp::now();
        assert!((20_000_000..2_000_000_000).contains(&b.nanos_since(a)));
        assert_eq!(a.nanos_since(b), 0);
    }
}
