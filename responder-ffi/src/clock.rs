//! The monotonic clock as nanoseconds.
//!
//! `std::time::Instant` keeps seconds and nanoseconds apart: a duration between two
//! instants is a checked subtraction with a borrow and a normalised `Duration` (about
//! 70 instructions under callgrind), and turning one into an integer is more. The
//! request path times every request three times; as plain nanoseconds a duration is one
//! subtraction. The clock read is the same (`CLOCK_MONOTONIC`, as `Instant` reads it
//! on Linux).

/// Nanoseconds on the monotonic clock, from an arbitrary start (the system's boot on
/// Linux): they never go back, and differences between two readings are durations.
pub fn monotonic_nanos() -> u64 {
    imp::monotonic_nanos()
}

#[cfg(unix)]
mod imp {
    pub(super) fn monotonic_nanos() -> u64 {
        // SAFETY: `timespec` is plain integers (and, on some targets, padding), for
        // which all zeroes is a valid value; built so, it needs no field names.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: `ts` is a valid `timespec` for the call to write; `CLOCK_MONOTONIC`
        // is a clock every supported Unix has, so the call cannot fail.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        secs.wrapping_mul(1_000_000_000).wrapping_add(nanos)
    }
}

#[cfg(not(unix))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    pub(super) fn monotonic_nanos() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::monotonic_nanos;

    #[test]
    fn counts_nanoseconds_as_instant_does() {
        let (a, i) = (monotonic_nanos(), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let (b, elapsed) = (monotonic_nanos(), i.elapsed());
        let nanos = u64::try_from(elapsed.as_nanos()).expect("short");
        // The two clocks' readings are moments apart (on a loaded machine, maybe
        // many): within 50 ms of each other.
        assert!(b >= a + 30_000_000, "{a} {b}");
        assert!((b - a).abs_diff(nanos) < 50_000_000, "{} {nanos}", b - a);
    }
}
