//! The C boundary of `kafka-responder`: the few librdkafka calls rust-rdkafka does not
//! wrap, each behind a safe function, so that the runtime crate and the facade can
//! `forbid(unsafe_code)`. As rust-rdkafka keeps its own in `rdkafka-sys`, every
//! `unsafe` block of the project is here, each with its `SAFETY` comment.
//!
//! - [`clock`]: the monotonic clock as nanoseconds, for timings that are a
//!   subtraction, not `Instant`'s checked arithmetic (not C either, but `unsafe`);
//! - [`describe_topics`]: one DescribeTopics admin request with the topics'
//!   authorized operations (KIP-430), bounded by a timeout;
//! - [`raw_headers`]: a record's headers with keys as bytes (rust-rdkafka's reader
//!   panics on a key that is not UTF-8), and adding one with such a key;
//! - [`raw_metadata`]: commit metadata as bytes (rust-rdkafka's accessor panics on
//!   metadata that is not UTF-8);
//! - [`high_watermark`]: a partition's high watermark as the consumer last fetched
//!   it, without a broker round trip;
//! - [`mock_cluster`]: librdkafka's in-process mock cluster, for tests and benchmarks;
//! - [`raw_message`]: a consumed record's topic name as bytes, not checked again;
//! - [`topic_handle`]: producing through librdkafka's handle for the topic, not a
//!   new C string and a topic lookup per record;
//! - [`utf8`]: text from bytes with a fast path for ASCII (not C, but `unsafe` too);
//! - [`wire_headers`]: a consumed record's headers read from its header section, not
//!   parsed into librdkafka's list (allocated per header) first.
#![allow(unsafe_code)]

pub mod clock;
pub mod describe_topics;
pub mod high_watermark;
pub mod mock_cluster;
pub mod raw_headers;
pub mod raw_message;
pub mod raw_metadata;
pub mod topic_handle;
pub mod utf8;
pub mod wire_headers;
