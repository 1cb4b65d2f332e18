//! Liveness and readiness, as `/livez` and `/readyz` report them (feature `http`), and
//! as [`Responder::health`](crate::Responder::health) gives them to a service that
//! serves its own probes.
//!
//! - **Live**: the consumer thread is running and went round its loop within the last
//!   [`LIVE_WITHIN`] (it does every 100 ms to 1 s whatever the handlers do: it never
//!   blocks on them). The thread counts its rounds (reading the clock each round would
//!   cost more than the rest of the round's own work on a record); a check notes when
//!   it saw the count change, so a stall is reported by the first check at least
//!   [`LIVE_WITHIN`] after the last check that saw the thread move.
//! - **Ready**: live, joined the group (an assignment arrived, empty or not), and either
//!   holds partitions, or (a member with none: more replicas than partitions) has had
//!   no broker-connection error for [`BROKER_QUIET`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How recently the consumer thread must have gone round its loop to be live.
pub const LIVE_WITHIN: Duration = Duration::from_secs(10);
/// How long a member without partitions must have had no broker error to be ready.
pub const BROKER_QUIET: Duration = Duration::from_secs(10);

/// The health of a running responder (see the module docs for the rules), updated by
/// the consumer thread and the dispatcher.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    running: AtomicBool,
    /// Rounds of the consumer thread's loop so far.
    loops: AtomicU64,
    /// The last count of rounds a check saw, and when it first saw it (milliseconds
    /// after `start`).
    seen: Mutex<(u64, u64)>,
    joined: AtomicBool,
    assigned: AtomicUsize,
    /// Milliseconds after `start` (plus one; 0: never) of the last broker error.
    last_broker_error: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            start: Instant::now(),
            running: AtomicBool::new(false),
            loops: AtomicU64::new(0),
            seen: Mutex::new((0, 0)),
            joined: AtomicBool::new(false),
            assigned: AtomicUsize::new(0),
            last_broker_error: AtomicU64::new(0),
        }
    }
}

impl Health {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The consumer thread started (`true`) or ended.
    pub(crate) fn running(&self, running: bool) {
        self.running.store(running, Relaxed);
    }

    /// The consumer thread went round its loop.
    pub(crate) fn looped(&self) {
        self.loops.fetch_add(1, Relaxed);
    }

    /// The client reported that brokers cannot be reached.
    pub(crate) fn broker_error(&self) {
        self.last_broker_error.store(self.now() + 1, Relaxed);
    }

    /// An assignment arrived (empty or not): the member has joined the group.
    pub(crate) fn joined(&self) {
        self.joined.store(true, Relaxed);
    }

    /// `assigned` partitions are held now.
    pub(crate) fn partitions(&self, assigned: usize) {
        self.assigned.store(assigned, Relaxed);
    }

    /// `Ok` when live, else why not.
    pub fn live(&self) -> Result<(), String> {
        self.live_at(self.now())
    }

    /// [`live`](Self::live), `now` milliseconds after `start`.
    fn live_at(&self, now: u64) -> Result<(), String> {
        if !self.running.load(Relaxed) {
            return Err("the consumer thread is not running".into());
        }
        let loops = self.loops.load(Relaxed);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.0 != loops {
            *seen = (loops, now);
            return Ok(());
        }
        let idle = now.saturating_sub(seen.1);
        if idle > LIVE_WITHIN.as_millis() as u64 {
            return Err(format!(
                "the consumer thread has not polled for at least {idle} ms"
            ));
        }
        Ok(())
    }

    /// `Ok` when ready, else why not.
    pub fn ready(&self) -> Result<(), String> {
        self.live()?;
        if !self.joined.load(Relaxed) {
            return Err("not joined the consumer group yet".into());
        }
        if self.assigned.load(Relaxed) > 0 {
            return Ok(());
        }
        let last_error = self.last_broker_error.load(Relaxed);
        let quiet = self.now().saturating_sub(last_error.saturating_sub(1));
        if last_error != 0 && quiet < BROKER_QUIET.as_millis() as u64 {
            return Err(format!(
                "no partitions, and the brokers were unreachable {quiet} ms ago"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_then_ready() {
        let h = Health::default();
        assert!(h.live().is_err(), "not running");
        h.running(true);
        h.looped();
        assert!(h.live().is_ok());
        assert!(h.ready().is_err(), "not joined");
        h.joined();
        assert!(h.ready().is_ok(), "joined without partitions, brokers fine");
        h.broker_error();
        assert!(
            h.ready().is_err(),
            "no partitions and a recent broker error"
        );
        h.partitions(2);
        assert!(h.ready().is_ok(), "holds partitions");
        h.running(false);
        assert!(h.live().is_err() && h.ready().is_err());
    }

    /// A thread that stops going round its loop is not live once [`LIVE_WITHIN`] has
    /// passed since a check last saw it move; one more round makes it live again.
    #[test]
    fn a_stalled_loop_is_not_live() {
        let h = Health::default();
        h.running(true);
        h.looped();
        let within = LIVE_WITHIN.as_millis() as u64;
        assert!(h.live_at(1_000).is_ok(), "moved since the last check");
        assert!(
            h.live_at(1_000 + within).is_ok(),
            "stalled, not for long enough"
        );
        let stalled = h.live_at(1_001 + within).expect_err("stalled too long");
        assert!(stalled.contains("has not polled"), "{stalled}");
        h.looped();
        assert!(h.live_at(2_000 + within).is_ok(), "moved again");
    }
}
