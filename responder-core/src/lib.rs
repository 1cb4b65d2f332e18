//! The runtime of `kafka-responder`: the reply side of request-reply over Apache Kafka.
//!
//! A service implements [`Handler`], routes a request topic to it with the codec of its
//! payloads ([`Json`], [`Raw`], `Bincode`, or its own [`Codec`]), and runs a
//! [`Responder`]. The responder
//! reads the reply address from the request's headers (through a [`HeaderConvention`]),
//! refuses reply topics its [`ReplyTopicPolicy`] does not allow, answers failures with
//! [error replies](ErrorReply), and commits a request's offset only once its reply is
//! acknowledged by the broker.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod acl;
pub mod address;
mod admission;
pub mod codec;
pub mod codes;
mod config;
mod context;
mod correlation_id;
mod deadline;
mod duration_histogram;
mod endpoint;
pub mod env;
mod error;
mod error_reply;
mod handler;
pub mod headers;
pub mod health;
#[cfg(feature = "http")]
mod http;
mod metrics;
mod offset_metadata;
mod ordering;
#[cfg(feature = "otel")]
mod otel;
pub mod policy;
mod policy_source;
mod received;
mod record_buffers;
mod reply_buffers;
mod request_headers;
mod router;
mod runtime;
mod stamp;
pub mod topic;
mod topic_names;
mod trace_context;
mod watermark;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use address::{
    CorrelationId, MissingCorrelationId, ReplyAddress, RequestHeaders, TopicName, Unanswerable,
};
#[cfg(feature = "bincode")]
pub use codec::Bincode;
pub use codec::{Codec, CodecError, Json, Raw};
pub use config::{
    Bounds, DeadLetters, Operations, ReplyChecks, ResponderBuilder, UnknownWriteAccess,
};
/// The former name of [`UnknownWriteAccess`].
#[deprecated(since = "0.1.0", note = "renamed `UnknownWriteAccess`")]
pub type Unreported = UnknownWriteAccess;
pub use context::RequestContext;
pub use deadline::DEADLINE_HEADER;
pub use error::{ClientError, Error};
pub use error_reply::{ERROR_CODE_HEADER, ERROR_MESSAGE_HEADER, ErrorReply};
pub use handler::Handler;
pub use headers::{ErrorValue, HeaderConvention, PartitionEncoding};
pub use health::Health;
pub use metrics::{Metrics, MetricsSnapshot};
pub use ordering::HandlingOrder;
/// The former name of [`HandlingOrder`] (it collided with `std`'s `Ordering`s).
#[deprecated(since = "0.1.0", note = "renamed `HandlingOrder`")]
pub type Ordering = HandlingOrder;
pub use policy::{PolicyError, ReplyTopicPolicy};
pub use policy_source::{PolicyLoadError, PolicySource};
pub use router::{IntoRoutes, Route};
pub use runtime::{
    DLQ_HEADER_PREFIX, DLQ_MESSAGE_HEADER, DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER,
    DLQ_REASON_HEADER, DLQ_TIME_HEADER, DLQ_TOPIC_HEADER, Responder, shutdown_signal,
};
pub use trace_context::{TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceParent};
