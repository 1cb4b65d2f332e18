//! The benchmark of issue #9: the KYC responder built three ways (hand-written
//! rdkafka, this framework, Python confluent-kafka), driven by one requester over the
//! same broker with the same client settings (prefetch bounds, linger, idempotence,
//! acks, delivery timeout, fetch wait).
//!
//! - [`contract`]: the request and reply every contestant speaks, and how a reply is
//!   checked.
//! - [`alloc_count`]: the counting global allocator the Rust contestants install.
//! - [`stats`]: medians and percentiles.
//!
//! The driver is `benches/compare`; run everything with `scripts/bench`.

pub mod alloc_count;
pub mod contract;
pub mod stats;
