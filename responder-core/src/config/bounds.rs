//! [`Bounds`]: how much the responder holds at once, and how long it waits.

use std::time::Duration;

/// Bounds and timeouts, set with
/// [`ResponderBuilder::bounds`](crate::ResponderBuilder::bounds).
///
/// ```
/// use std::time::Duration;
/// use responder_core::Responder;
///
/// let builder = Responder::builder().bounds(|b| {
///     b.max_in_flight(256)
///         .handler_timeout(Duration::from_secs(5))
///         .drain_timeout(Duration::from_secs(20))
/// });
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Bounds {
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_partition: usize,
    pub(crate) max_in_flight_bytes: usize,
    pub(crate) max_request_bytes: Option<usize>,
    pub(crate) handler_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) commit_interval: Duration,
}

/// [`Bounds::max_in_flight_bytes`]'s default: 4 MiB.
const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_in_flight: 1024,
            max_in_flight_per_partition: 1024,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            max_request_bytes: None,
            handler_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            commit_interval: Duration::from_millis(500),
        }
    }
}

impl Bounds {
    /// Requests in flight (received and not yet settled: waiting for their lane, in
    /// the handler, or with their reply awaiting the broker's acknowledgement) across
    /// all partitions; when reached, the responder stops fetching. Default 1024.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Requests of one partition in the handler at once. When this is below
    /// [`max_in_flight`](Self::max_in_flight), the partition is also paused while this
    /// many of its requests are unsettled (pausing drops librdkafka's prefetched
    /// records, which are fetched again on resume). Default 1024, as `max_in_flight`:
    /// one partition may use the whole bound, and is never paused for it.
    pub fn max_in_flight_per_partition(mut self, n: usize) -> Self {
        self.max_in_flight_per_partition = n;
        self
    }

    /// Bytes of the requests in flight (the lengths of their records as received:
    /// payload, key and headers), across all partitions: while the requests held hold
    /// this many, the responder takes no more, as at
    /// [`max_in_flight`](Self::max_in_flight). A record's size is known only once it
    /// is polled, so a record is taken while they hold less: they hold at most this
    /// plus one record, and a record larger than the bound is never refused (nothing
    /// more is taken until the bytes held are below the bound again). Each partition's
    /// fair share (this bound divided by the partitions assigned) applies as for
    /// `max_in_flight`. Their replies, and librdkafka's copies of them, come on top.
    /// Default 4 MiB: with small records `max_in_flight` binds first (1024 records of
    /// 4 KiB); with larger ones this bound keeps the memory held flat (10 KiB
    /// requests: about 400 in flight).
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        self.max_in_flight_bytes = bytes;
        self
    }

    /// The largest request payload handed to a codec, in bytes; a larger one gets a
    /// `payload_too_large` error reply without being decoded. Default: no bound beyond
    /// the broker's own `message.max.bytes`.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = Some(bytes);
        self
    }

    /// The longest a handler may take (per route with
    /// [`Route::handler_timeout`](crate::Route::handler_timeout)); a request's deadline,
    /// when it has one, bounds it too. A handler past it is dropped (its future is no
    /// longer polled) and the requester gets a `timeout` error reply, instead of
    /// waiting out its own timeout. A handler that blocks its thread instead of
    /// awaiting cannot be cut off this way. Default 30 s.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How long revocation and shutdown wait for in-flight requests (in the handler,
    /// or with a reply awaiting the broker or a retry). Those still running then are
    /// abandoned uncommitted: the next owner answers them. Default 30 s. At shutdown,
    /// the final commit and leaving the group add at most about 10 s. It must stay
    /// below the consumer's `max.poll.interval.ms` (default 300 s): a revocation
    /// drains inside the rebalance callback, where the consumer does not poll.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How often settled offsets are committed. Default 500 ms. With
    /// [exactly-once replies](crate::ResponderBuilder::exactly_once), one transaction
    /// per interval, at most a quarter of `transaction.timeout.ms`.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }
}
