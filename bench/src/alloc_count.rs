//! A counting global allocator: the Rust contestants install it and print the count
//! when they exit, so the driver can report allocations per request.

#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting every allocation and reallocation.
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: responder_bench::alloc_count::Counting = responder_bench::alloc_count::Counting;
/// ```
#[derive(Debug)]
pub struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations and reallocations made through [`Counting`] so far (Rust code only:
/// librdkafka's C allocations do not pass through it).
pub fn calls() -> u64 {
    CALLS.load(Relaxed)
}

/// The line a contestant prints at exit, which the driver reads back.
pub fn report_line() -> String {
    format!("ALLOCATIONS {}", calls())
}
