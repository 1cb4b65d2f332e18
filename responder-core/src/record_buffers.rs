//! The buffers received records are copied into, recycled.
//!
//! A record's buffer is allocated on the consumer thread and freed on the worker
//! thread that handled it. With glibc's allocator that is the costly way round: the
//! free goes to the consumer thread's arena (under its lock, which the consumer's next
//! allocation may be waiting for: futex calls), and the consumer's per-thread cache,
//! never refilled by its own frees, misses on every allocation. Recycled, a buffer is
//! allocated once and passed back and forth under one short lock each way.
//!
//! The pool is bounded: at most [`MAX_KEPT`] buffers of at most [`MAX_CAPACITY`] bytes
//! each (a larger one is freed, not kept), so it holds at most a few MiB whatever the
//! records' sizes; the buffers in flight are bounded by the in-flight limit.

use std::sync::{Mutex, PoisonError};

/// Buffers kept at most.
const MAX_KEPT: usize = 256;
/// The largest buffer kept, in bytes: larger records' buffers are freed.
const MAX_CAPACITY: usize = 16 * 1024;

/// Buffers given back, for the next records (shared by every responder in the
/// process: they are only memory).
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer that holds at least `capacity` bytes: a recycled one when there is
/// one.
pub(crate) fn take(capacity: usize) -> Vec<u8> {
    let kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner).pop();
    match kept {
        Some(mut buffer) => {
            buffer.reserve(capacity);
            buffer
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Gives `buffer` back, for a later record (or frees it, when the pool is full or
/// the buffer too large).
pub(crate) fn give(mut buffer: Vec<u8>) {
    if buffer.capacity() == 0 || buffer.capacity() > MAX_CAPACITY {
        return;
    }
    buffer.clear();
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if kept.len() < MAX_KEPT {
        kept.push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer given back is taken again, empty, grown when too small; a large one is
    /// not kept. (The pool is shared by the tests running at once: only what this test
    /// alone can see is asserted.)
    #[test]
    fn buffers_come_back_empty_and_large_ones_are_not_kept() {
        let mut b = take(100);
        assert!(b.is_empty() && b.capacity() >= 100);
        b.extend_from_slice(b"some record");
        give(b);
        let b = take(5000);
        assert!(b.is_empty() && b.capacity() >= 5000);
        let large = take(MAX_CAPACITY + 1);
        let at = large.as_ptr();
        give(large);
        let kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(kept.iter().all(|b| b.as_ptr() != at), "large buffer kept");
        assert!(kept.len() <= MAX_KEPT);
    }
}
