//! A counting limit on requests in flight, waited on by the consumer thread (a plain
//! thread, so no async runtime is needed to block on it).
//!
//! A saturated responder returns a slot per request, and the consumer thread waits for
//! each: woken for every one, it would make two system calls per request (the wake and
//! its wait). So a waiter first waits, briefly, for a batch of slots ([`BATCH_WAIT`]),
//! and only then for any one: under load a wake-up hands it a batch of records' worth
//! of slots; when slots come back slowly, it takes the first one once [`BATCH_WAIT`]
//! is over (or as it comes back, after that).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest a waiter waits for a whole batch of slots before it takes any one.
pub(crate) const BATCH_WAIT: Duration = Duration::from_millis(1);
/// The largest batch waited for (a sixteenth of the slots, at least one).
const MAX_BATCH: usize = 64;

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    freed: Condvar,
    /// How many free slots wake a waiter that waits for a batch.
    batch: usize,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// Threads waiting for a batch of slots, and for any one: a returned slot wakes
    /// them only when it makes what they wait for (a condition variable's notify is a
    /// system call even when nobody waits, and a slot is returned once per request).
    waiting_for_batch: usize,
    waiting_for_one: usize,
}

impl State {
    /// Whether the slot just returned makes what a waiter waits for (it is woken once,
    /// as the free count reaches it).
    fn wakes(&self, batch: usize) -> bool {
        (self.waiting_for_one > 0 && self.free == 1)
            || (self.waiting_for_batch > 0 && self.free == batch)
    }
}

/// The pool of in-flight slots.
#[derive(Debug, Clone)]
pub(crate) struct Permits(Arc<Inner>);

/// One in-flight slot, returned to the pool on drop.
#[derive(Debug)]
pub(crate) struct Permit(Arc<Inner>);

impl Permits {
    pub(crate) fn new(n: usize) -> Self {
        Permits(Arc::new(Inner {
            state: Mutex::new(State {
                free: n,
                waiting_for_batch: 0,
                waiting_for_one: 0,
            }),
            freed: Condvar::new(),
            batch: (n / 16).clamp(1, MAX_BATCH),
        }))
    }

    /// Takes a slot, waiting up to `timeout` for one to be freed (for a batch of them
    /// first, up to [`BATCH_WAIT`] of it).
    pub(crate) fn acquire_timeout(&self, timeout: Duration) -> Option<Permit> {
        let inner = &*self.0;
        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.free == 0 {
            let until = Instant::now() + timeout;
            // Counted under the lock: a slot returned after this sees the waiter.
            state.waiting_for_batch += 1;
            state = inner
                .freed
                .wait_timeout_while(state, timeout.min(BATCH_WAIT), |s| s.free < inner.batch)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting_for_batch -= 1;
            let left = until.saturating_duration_since(Instant::now());
            if state.free == 0 && !left.is_zero() {
                state.waiting_for_one += 1;
                state = inner
                    .freed
                    .wait_timeout_while(state, left, |s| s.free == 0)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                state.waiting_for_one -= 1;
            }
        }
        if state.free == 0 {
            return None;
        }
        state.free -= 1;
        Some(Permit(Arc::clone(&self.0)))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let inner = &*self.0;
        let wake = {
            let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.free += 1;
            state.wakes(inner.batch)
        };
        if wake {
            inner.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_returned_on_drop() {
        let permits = Permits::new(2);
        let a = permits.acquire_timeout(Duration::ZERO).expect("first");
        let _b = permits.acquire_timeout(Duration::ZERO).expect("second");
        assert!(permits.acquire_timeout(Duration::from_millis(10)).is_none());
        let p2 = permits.clone();
        let waiter =
            std::thread::spawn(move || p2.acquire_timeout(Duration::from_secs(5)).is_some());
        drop(a);
        assert!(waiter.join().expect("thread"));
    }

    #[test]
    fn a_waiter_for_a_batch_is_woken_by_the_batch_and_not_before() {
        let state = |free, waiting_for_batch, waiting_for_one| State {
            free,
            waiting_for_batch,
            waiting_for_one,
        };
        assert!(!state(1, 1, 0).wakes(4));
        assert!(!state(3, 1, 0).wakes(4));
        assert!(state(4, 1, 0).wakes(4));
        assert!(!state(5, 1, 0).wakes(4));
        assert!(state(1, 0, 1).wakes(4));
        assert!(!state(2, 0, 1).wakes(4));
        assert!(!state(4, 0, 0).wakes(4));
        assert_eq!(Permits::new(1024).0.batch, MAX_BATCH);
        assert_eq!(Permits::new(64).0.batch, 4);
        assert_eq!(Permits::new(3).0.batch, 1);
    }

    /// Slots coming back one at a time, never a batch, still reach the waiter: a
    /// single slot does once the batch wait is over.
    #[test]
    fn a_single_slot_reaches_a_waiter_after_the_batch_wait() {
        let permits = Permits::new(64);
        let mut held: Vec<_> = (0..64)
            .map(|_| permits.acquire_timeout(Duration::ZERO).expect("slot"))
            .collect();
        let p = permits.clone();
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            p.acquire_timeout(Duration::from_secs(30))
                .map(|_| started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(held.pop());
        let waited = waiter.join().expect("thread").expect("a slot");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        assert_eq!(held.len(), 63);
    }

    /// With a single slot (a batch of one), each returned slot wakes a waiter, however
    /// many wait, and a waiter that timed out is no longer counted.
    #[test]
    fn every_waiter_is_woken_in_turn() {
        let permits = Permits::new(1);
        assert!(permits.acquire_timeout(Duration::ZERO).is_some());
        let held = permits.acquire_timeout(Duration::ZERO).expect("slot");
        assert!(permits.acquire_timeout(Duration::from_millis(5)).is_none());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let p = permits.clone();
                // Each holds its slot briefly, then returns it (on drop) to the next.
                std::thread::spawn(move || {
                    let got = p.acquire_timeout(Duration::from_secs(10));
                    std::thread::sleep(Duration::from_millis(5));
                    got.is_some()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        for w in waiters {
            assert!(w.join().expect("thread"));
        }
        let state = permits.0.state.lock().expect("lock");
        assert_eq!(
            (state.free, state.waiting_for_batch, state.waiting_for_one),
            (1, 0, 0)
        );
    }
}
