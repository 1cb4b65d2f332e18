//! A counting limit on requests in flight, waited on by the consumer thread (a plain
//! thread, so no async runtime is needed to block on it).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// Threads waiting for a slot: a returned slot wakes one only if there is one (a
    /// condition variable's notify is a system call even when nobody waits, and a
    /// slot is returned once per request).
    waiting: usize,
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
                waiting: 0,
            }),
            freed: Condvar::new(),
        }))
    }

    /// Takes a slot, waiting up to `timeout` for one to be freed.
    pub(crate) fn acquire_timeout(&self, timeout: Duration) -> Option<Permit> {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.free == 0 {
            // Counted under the lock: a slot returned after this sees the waiter.
            state.waiting += 1;
            state = self
                .0
                .freed
                .wait_timeout_while(state, timeout, |s| s.free == 0)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
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
        let waiting = {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.free += 1;
            state.waiting > 0
        };
        if waiting {
            self.0.freed.notify_one();
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

    /// Each returned slot wakes a waiter, however many wait, and a waiter that timed
    /// out is no longer counted.
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
        assert_eq!((state.free, state.waiting), (1, 0));
    }
}
