//! A counting limit on requests in flight, and on the bytes their records hold, waited
//! on by the consumer thread (a plain thread, so no async runtime is needed to block
//! on it).
//!
//! A slot is taken before a record is polled, so its size is not known yet: a slot is
//! free while the records held hold fewer than the byte bound, and the record it is
//! then used for is charged to it ([`Permit::charge`]). The records held therefore hold
//! at most the bound plus one record; a record larger than the bound is taken like any
//! other (never refused, never waiting for ever), and nothing more is taken until the
//! bytes held are below the bound again.
//!
//! A saturated responder returns a slot per request, and the consumer thread waits for
//! each: woken for every one, it would make two system calls per request (the wake and
//! its wait). So a waiter first waits, briefly, for a batch of slots ([`BATCH_WAIT`]):
//! a sixteenth of the slots free, and a sixteenth of the byte bound below it; only
//! then for any one: under load a wake-up hands it a batch of records' worth of slots;
//! when slots come back slowly, it takes the first one once [`BATCH_WAIT`] is over (or
//! as it comes back, after that).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
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
    /// The byte bound: no slot is free while the records held hold this many bytes.
    max_bytes: usize,
    /// The bytes below the bound that a batch needs (a sixteenth of it).
    batch_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
struct State {
    free: usize,
    /// Bytes of the records held (charged to their slots).
    bytes: usize,
    /// Threads waiting for a batch of slots, and for any one: a returned slot wakes
    /// them only when it makes what they wait for (a condition variable's notify is a
    /// system call even when nobody waits, and a slot is returned once per request).
    waiting_for_batch: usize,
    waiting_for_one: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a slot is free.
    fn one(&self, s: &State) -> bool {
        s.free > 0 && s.bytes < self.max_bytes
    }

    /// Whether a batch of slots is free.
    fn batch(&self, s: &State) -> bool {
        s.free >= self.batch && s.bytes.saturating_add(self.batch_bytes) <= self.max_bytes
    }

    /// Whether a slot returned, `before` to `after`, makes what a waiter waits for: it
    /// is woken once, as its condition turns true (returning a slot only frees).
    fn wakes(&self, before: &State, after: &State) -> bool {
        (after.waiting_for_one > 0 && !self.one(before) && self.one(after))
            || (after.waiting_for_batch > 0 && !self.batch(before) && self.batch(after))
    }
}

/// The pool of in-flight slots.
#[derive(Debug, Clone)]
pub(crate) struct Permits(Arc<Inner>);

/// One in-flight slot and the bytes charged to it, returned to the pool on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    inner: Arc<Inner>,
    bytes: usize,
}

impl Permits {
    /// `n` slots, free while their records hold fewer than `max_bytes`.
    pub(crate) fn new(n: usize, max_bytes: usize) -> Self {
        Permits(Arc::new(Inner {
            state: Mutex::new(State {
                free: n,
                bytes: 0,
                waiting_for_batch: 0,
                waiting_for_one: 0,
            }),
            freed: Condvar::new(),
            batch: (n / 16).clamp(1, MAX_BATCH),
            max_bytes,
            batch_bytes: max_bytes / 16,
        }))
    }

    /// Takes a slot, waiting up to `timeout` for one to be freed (for a batch of them
    /// first, up to [`BATCH_WAIT`] of it).
    pub(crate) fn acquire_timeout(&self, timeout: Duration) -> Option<Permit> {
        let inner = &*self.0;
        let mut state = inner.lock();
        if !inner.one(&state) {
            let until = Instant::now() + timeout;
            // Counted under the lock: a slot returned after this sees the waiter.
            state.waiting_for_batch += 1;
            state = inner
                .freed
                .wait_timeout_while(state, timeout.min(BATCH_WAIT), |s| !inner.batch(s))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting_for_batch -= 1;
            let left = until.saturating_duration_since(Instant::now());
            if !inner.one(&state) && !left.is_zero() {
                state.waiting_for_one += 1;
                state = inner
                    .freed
                    .wait_timeout_while(state, left, |s| !inner.one(s))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                state.waiting_for_one -= 1;
            }
        }
        if !inner.one(&state) {
            return None;
        }
        state.free -= 1;
        Some(Permit {
            inner: Arc::clone(&self.0),
            bytes: 0,
        })
    }
}

impl Permit {
    /// Charges the bytes of the record this slot is used for: until the slot is
    /// returned, they count against the byte bound.
    pub(crate) fn charge(&mut self, bytes: usize) {
        self.inner.lock().bytes += bytes;
        self.bytes += bytes;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let inner = &*self.inner;
        let wake = {
            let mut state = inner.lock();
            let before = *state;
            state.free += 1;
            state.bytes -= self.bytes;
            inner.wakes(&before, &state)
        };
        if wake {
            inner.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool's state with `free` slots free and `bytes` held.
    fn state(free: usize, bytes: usize, waiting_for_batch: usize, waiting_for_one: usize) -> State {
        State {
            free,
            bytes,
            waiting_for_batch,
            waiting_for_one,
        }
    }

    /// The slots free and the bytes held.
    fn free_and_held(permits: &Permits) -> (usize, usize) {
        let state = permits.0.lock();
        (state.free, state.bytes)
    }

    #[test]
    fn bounded_and_returned_on_drop() {
        let permits = Permits::new(2, usize::MAX);
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
        let permits = Permits::new(64, usize::MAX);
        let inner = &*permits.0;
        // The state a slot returned makes, with `free` slots free now.
        let wakes = |free, waiting_for_batch, waiting_for_one| {
            let after = state(free, 0, waiting_for_batch, waiting_for_one);
            inner.wakes(
                &State {
                    free: free - 1,
                    ..after
                },
                &after,
            )
        };
        assert!(!wakes(1, 1, 0));
        assert!(!wakes(3, 1, 0));
        assert!(wakes(4, 1, 0));
        assert!(!wakes(5, 1, 0));
        assert!(wakes(1, 0, 1));
        assert!(!wakes(2, 0, 1));
        assert!(!wakes(4, 0, 0));
        assert_eq!(Permits::new(1024, usize::MAX).0.batch, MAX_BATCH);
        assert_eq!(Permits::new(64, usize::MAX).0.batch, 4);
        assert_eq!(Permits::new(3, usize::MAX).0.batch, 1);
    }

    /// Slots coming back one at a time, never a batch, still reach the waiter: a
    /// single slot does once the batch wait is over.
    #[test]
    fn a_single_slot_reaches_a_waiter_after_the_batch_wait() {
        let permits = Permits::new(64, usize::MAX);
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
        let permits = Permits::new(1, usize::MAX);
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

    /// No slot is free while the records held hold the byte bound, however many slots
    /// are; the one that goes below it frees a slot, and wakes a waiter.
    #[test]
    fn slots_are_free_only_below_the_byte_bound() {
        let permits = Permits::new(8, 1000);
        let mut a = permits.acquire_timeout(Duration::ZERO).expect("first");
        a.charge(600);
        let mut b = permits
            .acquire_timeout(Duration::ZERO)
            .expect("599 bytes left");
        b.charge(600);
        // 1200 bytes held: over the bound by less than a record.
        assert!(permits.acquire_timeout(Duration::from_millis(10)).is_none());
        let p = permits.clone();
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            p.acquire_timeout(Duration::from_secs(30))
                .map(|_| started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(a);
        // Woken by the slot's bytes, not found at the end of its wait.
        let waited = waiter
            .join()
            .expect("thread")
            .expect("600 bytes held free a slot");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        // The waiter's slot is back too (dropped with its thread).
        assert_eq!(free_and_held(&permits), (7, 600));
        drop(b);
        assert_eq!(free_and_held(&permits), (8, 0));
    }

    /// A record larger than the whole bound is taken once nothing else is held, never
    /// refused for good.
    #[test]
    fn a_record_larger_than_the_bound_is_taken_alone() {
        let permits = Permits::new(8, 1000);
        let mut big = permits
            .acquire_timeout(Duration::ZERO)
            .expect("nothing held");
        big.charge(5000);
        assert!(permits.acquire_timeout(Duration::from_millis(10)).is_none());
        drop(big);
        let mut next = permits
            .acquire_timeout(Duration::ZERO)
            .expect("nothing held again");
        next.charge(5000);
        drop(next);
        assert_eq!(free_and_held(&permits), (8, 0));
    }

    /// Bytes going below the bound wake a waiter for one slot (free slots alone do not
    /// while the bytes are at the bound).
    #[test]
    fn bytes_going_below_the_bound_wake_a_waiter() {
        let permits = Permits::new(8, 1000);
        let inner = &*permits.0;
        let one_waits = |free, bytes| state(free, bytes, 0, 1);
        assert!(inner.wakes(&one_waits(6, 1200), &one_waits(7, 600)));
        assert!(!inner.wakes(&one_waits(6, 1800), &one_waits(7, 1200)));
        assert!(
            !inner.wakes(&one_waits(6, 600), &one_waits(7, 0)),
            "free already"
        );
    }

    /// A waiter for a batch needs a batch of bytes too: a sixteenth of the bound.
    #[test]
    fn a_batch_needs_a_sixteenth_of_the_byte_bound() {
        let permits = Permits::new(64, 1600);
        let inner = &*permits.0;
        let batch_waits = |free, bytes| state(free, bytes, 1, 0);
        assert!(inner.batch(&batch_waits(4, 1500)));
        assert!(!inner.batch(&batch_waits(4, 1501)));
        assert!(!inner.batch(&batch_waits(3, 0)));
        // Bytes going below the batch's need wake it; going below the bound but not
        // that far does not.
        assert!(inner.wakes(&batch_waits(4, 1550), &batch_waits(5, 1450)));
        assert!(!inner.wakes(&batch_waits(4, 1650), &batch_waits(5, 1550)));
    }
}
