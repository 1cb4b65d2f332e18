//! Ordering of requests inside a partition.

/// Which requests of one partition must be answered one after another.
///
/// - [`HandlingOrder::Key`] (the default): requests that share a record key are handled in
///   order; requests with different keys (or no key) run concurrently, also inside one
///   partition. The same wallet's requests stay in order, the rest run in parallel.
/// - [`HandlingOrder::Partition`]: one request of a partition at a time, in offset order.
///   Throughput per partition is capped at 1 / handler latency.
/// - [`HandlingOrder::Unordered`]: any order, up to the in-flight bounds.
///
/// Whatever the ordering, offsets are committed by watermark: only up to the lowest
/// request whose reply is not yet acknowledged by the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandlingOrder {
    /// One request of a partition at a time, in offset order.
    Partition,
    /// Requests with the same key in order; different keys concurrently.
    #[default]
    Key,
    /// No ordering.
    Unordered,
}

impl std::str::FromStr for HandlingOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "partition" => Ok(HandlingOrder::Partition),
            "key" => Ok(HandlingOrder::Key),
            "unordered" => Ok(HandlingOrder::Unordered),
            other => Err(format!(
                "unknown ordering {other:?}; expected partition, key or unordered"
            )),
        }
    }
}
