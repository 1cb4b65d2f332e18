//! Counters of what the responder did, readable while it runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, shared with the running responder.
#[derive(Debug, Default)]
pub struct Metrics {
    received: AtomicU64,
    replied: AtomicU64,
    error_replies: AtomicU64,
    unanswerable: AtomicU64,
    delivery_failures: AtomicU64,
    panics: AtomicU64,
    redeliveries_skipped: AtomicU64,
    already_settled: AtomicU64,
    dead_lettered: AtomicU64,
    expired: AtomicU64,
    reply_retries: AtomicU64,
    handler_timeouts: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Requests received from the broker.
    pub received: u64,
    /// Replies acknowledged by the broker.
    pub replied: u64,
    /// Error replies acknowledged by the broker (decode failures, handler errors, panics).
    pub error_replies: u64,
    /// Requests that got no reply: no usable or no allowed reply address.
    pub unanswerable: u64,
    /// Replies (or error replies) the broker refused for good (the record's own
    /// fault): dead-lettered if configured, and committed.
    pub delivery_failures: u64,
    /// Deliveries (replies and dead letters) retried after an error that may pass.
    pub reply_retries: u64,
    /// Handler panics (each also counted as an error reply or failure).
    pub panics: u64,
    /// Handlers cut off by their timeout or the request's deadline (each also
    /// answered with a `timeout` error reply).
    pub handler_timeouts: u64,
    /// Records skipped because they were delivered again within one assignment.
    pub redeliveries_skipped: u64,
    /// Records skipped because a previous owner of the partition had already settled
    /// them (from its commit metadata).
    pub already_settled: u64,
    /// Requests copied to the dead-letter topic.
    pub dead_lettered: u64,
    /// Requests not handled because their deadline had passed.
    pub expired: u64,
}

impl MetricsSnapshot {
    /// Requests whose outcome is final and committed: answered, error-answered,
    /// unanswerable, expired, or refused by the broker for good.
    pub fn settled(&self) -> u64 {
        self.replied
            + self.error_replies
            + self.unanswerable
            + self.expired
            + self.delivery_failures
    }
}

macro_rules! counters {
    ($($inc:ident => $field:ident),* $(,)?) => {
        impl Metrics {
            $(pub(crate) fn $inc(&self) { self.$field.fetch_add(1, Relaxed); })*

            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($field: self.$field.load(Relaxed),)* }
            }
        }
    };
}

counters! {
    inc_received => received,
    inc_replied => replied,
    inc_error_replies => error_replies,
    inc_unanswerable => unanswerable,
    inc_delivery_failures => delivery_failures,
    inc_panics => panics,
    inc_redeliveries_skipped => redeliveries_skipped,
    inc_already_settled => already_settled,
    inc_dead_lettered => dead_lettered,
    inc_expired => expired,
    inc_reply_retries => reply_retries,
    inc_handler_timeouts => handler_timeouts,
}
