//! The buffers replies are encoded into, recycled on each thread.
//!
//! A reply's buffer lives from its encoding to its acknowledgement, while the same
//! worker thread starts and ends hundreds of other requests. glibc's per-thread cache
//! keeps seven free chunks of a size: a window of replies outgrows it, so nearly every
//! reply buffer was allocated and freed on the arena's slow path, under its lock. Each
//! thread keeps the buffers given back on it instead, and gives them out again.
//!
//! Bounded per thread: at most [`MAX_KEPT`] buffers and [`MAX_KEPT_BYTES`] in all,
//! each kept by the record buffers' rule (`record_buffers::worth_keeping`: at most
//! 16 KiB, and filled at least half by its reply, or 1 KiB at most; else one large
//! reply would make every later buffer large).
//! On a thread whose locals are being destroyed, buffers are allocated and freed.

use std::cell::RefCell;

use crate::record_buffers::{Kept, reuse, worth_keeping};

/// Buffers kept at most per thread.
const MAX_KEPT: usize = 256;
/// Bytes kept at most per thread (the buffers' capacities).
const MAX_KEPT_BYTES: usize = 1024 * 1024;

thread_local! {
    static KEPT: RefCell<Kept> = const { RefCell::new(Kept::new(MAX_KEPT, MAX_KEPT_BYTES)) };
}

/// An empty buffer that holds at least `capacity` bytes: one given back on this
/// thread when there is one.
pub(crate) fn take(capacity: usize) -> Vec<u8> {
    let kept = KEPT.try_with(|kept| kept.borrow_mut().pop()).ok().flatten();
    reuse(kept, capacity)
}

/// Gives a reply's buffer back once the reply is acknowledged, for the next reply
/// encoded on this thread (or frees it: see the module docs). Any codec's buffer may
/// come back.
pub(crate) fn give(buffer: Vec<u8>) {
    if worth_keeping(&buffer) {
        let _ = KEPT.try_with(|kept| kept.borrow_mut().push(buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_buffers::MAX_CAPACITY;

    fn kept() -> (usize, usize) {
        KEPT.with(|k| k.borrow().counts())
    }

    /// A buffer given back is taken again, empty and large enough; large buffers are
    /// not kept; no more than `MAX_KEPT` buffers and `MAX_KEPT_BYTES` bytes are.
    #[test]
    fn buffers_come_back_empty_within_bounds() {
        let mut b = take(100);
        assert!(b.is_empty() && b.capacity() >= 100);
        b.extend_from_slice(b"a reply");
        let ptr = b.as_ptr();
        give(b);
        assert_eq!(kept().0, 1);
        let again = take(50);
        assert_eq!(again.as_ptr(), ptr, "the same buffer");
        assert!(again.is_empty());
        let grown = {
            give(again);
            take(5000)
        };
        assert!(grown.capacity() >= 5000);
        assert_eq!(kept(), (0, 0));
        give(grown);
        assert_eq!(kept(), (0, 0), "a 5000-byte buffer its reply left empty");
        give(vec![1; MAX_CAPACITY + 1]);
        assert_eq!(kept(), (0, 0), "a buffer larger than kept ones");
        for _ in 0..MAX_KEPT + 10 {
            give(Vec::with_capacity(64));
        }
        assert_eq!(kept().0, MAX_KEPT);
        while kept().0 > 0 {
            drop(take(0));
        }
        for _ in 0..MAX_KEPT {
            give(vec![1; MAX_CAPACITY]);
        }
        let (count, bytes) = kept();
        assert!(bytes <= MAX_KEPT_BYTES && count == MAX_KEPT_BYTES / MAX_CAPACITY);
        while kept().0 > 0 {
            drop(take(0));
        }
    }

    /// The codecs encode into the buffers given back on their thread.
    #[test]
    fn codecs_encode_into_recycled_buffers() {
        use crate::codec::{Codec, Json};
        let reply = vec!["a reply"; 20];
        let first = Codec::<(), Vec<&str>>::encode(&Json, reply.clone()).expect("encodes");
        let (ptr, bytes) = (first.as_ptr(), first.clone());
        give(first);
        let second = Codec::<(), Vec<&str>>::encode(&Json, reply).expect("encodes");
        assert_eq!(second.as_ptr(), ptr, "the buffer given back");
        assert_eq!(second, bytes);
    }
}
