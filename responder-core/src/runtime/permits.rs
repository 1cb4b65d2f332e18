//! A counting limit on requests in flight, waited on by the consumer thread (a plain
//! thread, so no async runtime is needed to block on it).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug)]
struct Inner {
    free: Mutex<usize>,
    freed: Condvar,
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
            free: Mutex::new(n),
            freed: Condvar::new(),
        }))
    }

    /// Takes a slot, waiting up to `timeout` for one to be freed.
    pub(crate) fn acquire_timeout(&self, timeout: Duration) -> Option<Permit> {
        let free = self.0.free.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut free, _) = self
            .0
            .freed
            .wait_timeout_while(free, timeout, |free| *free == 0)
            .unwrap_or_else(PoisonError::into_inner);
        if *free == 0 {
            return None;
        }
        *free -= 1;
        Some(Permit(Arc::clone(&self.0)))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
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
}
