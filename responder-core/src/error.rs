//! Errors of the library: building a responder and running it.
//!
//! What goes wrong with one *request* is not an error of the responder: it becomes an
//! [`ErrorReply`](crate::ErrorReply) or an [`Unanswerable`](crate::Unanswerable) outcome,
//! and the responder keeps serving.

use std::fmt;

use crate::codes;
use crate::policy::PolicyError;
use crate::policy_source::PolicyLoadError;
use crate::topic::TopicNameError;

/// An error that stops a responder from starting or from running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is incomplete or contradicts itself.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A topic name in the configuration breaks Kafka's naming rules.
    #[error("invalid topic name in the configuration: {0}")]
    TopicName(#[from] TopicNameError),
    /// The reply-topic policy is malformed.
    #[error("invalid reply-topic policy: {0}")]
    Policy(#[from] PolicyError),
    /// The reply-topic policy could not be loaded from its source.
    #[error("the reply-topic policy could not be loaded: {0}")]
    PolicySource(#[from] PolicyLoadError),
    /// The Kafka client reported an error.
    #[error("kafka client error while {context}: {source}")]
    Kafka {
        /// What the responder was doing.
        context: &'static str,
        /// The client's error.
        source: ClientError,
    },
    /// An environment variable (see [`crate::env`]) holds a value that cannot be read.
    #[error("environment variable {variable}: {reason}")]
    Env {
        /// The variable.
        variable: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The HTTP server (feature `http`) could not listen on its address.
    #[error("the HTTP server cannot listen on {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The consumer side failed (a panic in the consumer thread or its callbacks, or
    /// the reply producer's fatal error); the responder left the group.
    #[error("the consumer thread stopped unexpectedly: {0}")]
    ConsumerThread(String),
}

impl Error {
    /// A stable, machine-readable code (see [`codes`](crate::codes)).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => codes::CONFIG,
            Error::TopicName(_) => codes::TOPIC_NAME,
            Error::Policy(_) => codes::POLICY,
            Error::PolicySource(_) => codes::POLICY_SOURCE,
            Error::Kafka { .. } => codes::KAFKA,
            Error::ConsumerThread(_) => codes::CONSUMER_FAILED,
            Error::Http { .. } => codes::HTTP,
            Error::Env { .. } => codes::ENV,
        }
    }

    pub(crate) fn kafka(context: &'static str, err: rdkafka::error::KafkaError) -> Self {
        Error::Kafka {
            context,
            source: ClientError(err),
        }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
}

/// An error of the underlying Kafka client, kept opaque so client types stay out of
/// the public API.
pub struct ClientError(pub(crate) rdkafka::error::KafkaError);

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
