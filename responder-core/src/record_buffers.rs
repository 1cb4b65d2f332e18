//! The buffers received records are copied into, recycled.
//!
//! A record's buffer is allocated on the consumer thread and freed on the worker
//! thread that handled it. With glibc's allocator that is the costly way round: the
//! free goes to the consumer thread's arena (under its lock, which the consumer's next
//! allocation may be waiting for: futex calls), and the consumer's per-thread cache,
//! never refilled by its own frees, misses on every allocation. Recycled, a buffer is
//! allocated once and passed back and forth under one short lock each way.
//!
//! The pool is bounded: at most [`MAX_KEPT`] buffers (as many as requests in flight by
//! default, so a full window's buffers come back), of at most [`MAX_CAPACITY`] bytes
//! each (a larger one is freed, not kept), and at most [`MAX_KEPT_BYTES`] in all,
//! whatever the records' sizes. A buffer comes back only if its last record filled at least half of
//! it (or it holds 1 KiB at most): recycled buffers would otherwise only grow, and with
//! mostly small records and an occasional large one every buffer in flight would end
//! up large.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Buffers kept at most.
const MAX_KEPT: usize = 1024;
/// Bytes kept at most (the buffers' capacities).
const MAX_KEPT_BYTES: usize = 4 * 1024 * 1024;
/// The largest buffer kept, in bytes: larger records' buffers are freed.
pub(crate) const MAX_CAPACITY: usize = 16 * 1024;
/// A buffer this small is kept whatever its last record's size.
const SMALL: usize = 1024;

/// Buffers given back, for the next records (shared by every responder in the
/// process: they are only memory).
static KEPT: Pool = Pool::new();

/// An empty buffer that holds at least `capacity` bytes: a recycled one when there is
/// one.
pub(crate) fn take(capacity: usize) -> Vec<u8> {
    KEPT.take(capacity)
}

/// Gives `buffer` back, for a later record (or frees it: see the module docs).
pub(crate) fn give(buffer: Vec<u8>) {
    KEPT.give(buffer);
}

struct Pool {
    kept: Mutex<Kept>,
}

impl Pool {
    const fn new() -> Self {
        Pool {
            kept: Mutex::new(Kept::new(MAX_KEPT, MAX_KEPT_BYTES)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, capacity: usize) -> Vec<u8> {
        let kept = self.lock().pop();
        reuse(kept, capacity)
    }

    fn give(&self, buffer: Vec<u8>) {
        if worth_keeping(&buffer) {
            // A buffer not kept is freed once the lock is let go.
            let _not_kept = self.lock().push(buffer);
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().counts().0
    }
}

/// Whether a buffer given back is kept at all: not empty, at most [`MAX_CAPACITY`]
/// bytes, and filled at least half by its last use (or [`SMALL`] at most). The rule
/// of the record buffers and of the reply buffers (`reply_buffers.rs`).
pub(crate) fn worth_keeping(buffer: &Vec<u8>) -> bool {
    let capacity = buffer.capacity();
    capacity != 0 && capacity <= MAX_CAPACITY && capacity <= (2 * buffer.len()).max(SMALL)
}

/// `kept`, with room for at least `capacity` bytes, or a new buffer.
pub(crate) fn reuse(kept: Option<Vec<u8>>, capacity: usize) -> Vec<u8> {
    match kept {
        Some(mut buffer) => {
            buffer.reserve(capacity);
            buffer
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Buffers kept for reuse, empty, and their capacities' sum, within bounds: at most
/// `max_buffers` buffers and `max_bytes` bytes. Behind a lock for the record buffers;
/// one per thread for the reply buffers.
pub(crate) struct Kept {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
    max_buffers: usize,
    max_bytes: usize,
}

impl Kept {
    pub(crate) const fn new(max_buffers: usize, max_bytes: usize) -> Self {
        Kept {
            buffers: Vec::new(),
            bytes: 0,
            max_buffers,
            max_bytes,
        }
    }

    /// The buffer given back last, if any.
    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        let buffer = self.buffers.pop()?;
        self.bytes -= buffer.capacity();
        Some(buffer)
    }

    /// Keeps `buffer` (one [`worth_keeping`]), emptied, if the bounds leave room;
    /// else gives it back, to be freed.
    pub(crate) fn push(&mut self, mut buffer: Vec<u8>) -> Option<Vec<u8>> {
        let capacity = buffer.capacity();
        if self.buffers.len() >= self.max_buffers || self.bytes + capacity > self.max_bytes {
            return Some(buffer);
        }
        buffer.clear();
        self.bytes += capacity;
        self.buffers.push(buffer);
        None
    }

    /// How many buffers, and how many bytes, are kept.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.buffers.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer given back is taken again, empty, grown when too small; a large one,
    /// or one its record left mostly empty, is not kept; no more than `MAX_KEPT` are.
    #[test]
    fn buffers_come_back_empty_within_bounds() {
        let pool = Pool::new();
        let mut b = pool.take(100);
        assert!(b.is_empty() && b.capacity() >= 100);
        b.extend_from_slice(b"some record");
        pool.give(b);
        assert_eq!(pool.kept(), 1);
        let b = pool.take(5000);
        assert!(b.is_empty() && b.capacity() >= 5000);
        assert_eq!(pool.kept(), 0);
        pool.give(b);
        assert_eq!(pool.kept(), 0, "a 5000-byte buffer its record left empty");
        let mut large = pool.take(MAX_CAPACITY + 1);
        large.resize(MAX_CAPACITY + 1, 0);
        pool.give(large);
        assert_eq!(pool.kept(), 0, "a buffer larger than kept ones");
        let mut full = pool.take(4 * SMALL);
        full.resize(3 * SMALL, 1);
        pool.give(full);
        assert_eq!(pool.kept(), 1, "a buffer its record filled");
        for _ in 0..MAX_KEPT + 10 {
            pool.give(Vec::with_capacity(64));
        }
        assert_eq!(pool.kept(), MAX_KEPT);
    }

    /// However many buffers, no more than `MAX_KEPT_BYTES` of them are kept; taking
    /// one makes room again.
    #[test]
    fn the_bytes_kept_are_bounded() {
        let pool = Pool::new();
        let full = || vec![0u8; MAX_CAPACITY];
        for _ in 0..MAX_KEPT {
            pool.give(full());
        }
        let most = MAX_KEPT_BYTES / MAX_CAPACITY;
        assert_eq!(pool.kept(), most);
        drop(pool.take(1));
        pool.give(full());
        assert_eq!(pool.kept(), most);
        assert_eq!(pool.lock().counts().1, most * MAX_CAPACITY);
    }
}
