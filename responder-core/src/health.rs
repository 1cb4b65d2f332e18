//! Liveness and readiness, as `/livez` and `/readyz` report them (feature `http`), and
//! as [`Responder::health`](crate::Responder::health) gives them to a service that
//! serves its own probes.
//!
//! - **Live**: the consumer thread is running and went round its loop within the last
//!   [`LIVE_WITHIN`] (it does every 100 ms to 1 s whatever the handlers do: it never
//!   blocks on them).
//! - **Ready**: live, joined the group (an assignment arrived, empty or not), and either
//!   holds partitions, or (a member with none: more replicas than partitions) has had
//!   no broker-connection error for [`BROKER_QUIET`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
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
    /// Milliseconds after `start` of the consumer thread's last loop.
    last_loop: AtomicU64,
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
            last_loop: AtomicU64::new(0),
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
        self.last_loop.store(self.now(), Relaxed);
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
        if !self.running.load(Relaxed) {
            return Err("the consumer thread is not running".into());
        }
        let idle = self.now().saturating_sub(self.last_loop.load(Relaxed));
        if idle > LIVE_WITHIN.as_millis() as u64 {
            return Err(format!("the consumer thread has not polled for {idle} ms"));
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
}
