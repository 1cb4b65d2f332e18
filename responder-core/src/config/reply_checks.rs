//! [`ReplyChecks`]: how a reply address is read from a request, and what the broker
//! is asked about it. The rules that admit a reply topic are in `admission.rs`.

use std::time::Duration;

use crate::address::{DEFAULT_MAX_CORRELATION_ID_LEN, MissingCorrelationId};
use crate::headers::HeaderConvention;

/// Reading and checking reply addresses, set with
/// [`ResponderBuilder::reply_checks`](crate::ResponderBuilder::reply_checks). The
/// reply-topic policy itself is
/// [`ResponderBuilder::reply_topics`](crate::ResponderBuilder::reply_topics).
///
/// ```
/// use responder_core::{HeaderConvention, MissingCorrelationId, Responder, UnknownWriteAccess};
///
/// let builder = Responder::builder().reply_checks(|c| {
///     c.header_conventions([HeaderConvention::spring()])
///         .missing_correlation_id(MissingCorrelationId::Refuse)
///         .check_write_access(UnknownWriteAccess::Refuse)
/// });
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ReplyChecks {
    pub(crate) conventions: Option<Vec<HeaderConvention>>,
    pub(crate) missing_correlation_id: MissingCorrelationId,
    pub(crate) max_correlation_id_len: usize,
    pub(crate) write_access: Option<UnknownWriteAccess>,
    pub(crate) cache_ttl: Duration,
}

impl Default for ReplyChecks {
    fn default() -> Self {
        ReplyChecks {
            conventions: None,
            missing_correlation_id: MissingCorrelationId::default(),
            max_correlation_id_len: DEFAULT_MAX_CORRELATION_ID_LEN,
            write_access: None,
            cache_ttl: Duration::from_secs(30),
        }
    }
}

impl ReplyChecks {
    /// The header conventions accepted, tried in order; the first whose reply-topic
    /// and correlation headers are both present wins. Default: Spring, SmallRye, plain.
    pub fn header_conventions(
        mut self,
        conventions: impl IntoIterator<Item = HeaderConvention>,
    ) -> Self {
        self.conventions = Some(conventions.into_iter().collect());
        self
    }

    /// What to do with a request that names a reply topic but no correlation id.
    /// Default: [`MissingCorrelationId::Refuse`].
    pub fn missing_correlation_id(mut self, rule: MissingCorrelationId) -> Self {
        self.missing_correlation_id = rule;
        self
    }

    /// The longest correlation id accepted, in bytes; a longer one makes the request
    /// unanswerable (`invalid_correlation_id`). Default
    /// [`DEFAULT_MAX_CORRELATION_ID_LEN`].
    pub fn max_correlation_id_len(mut self, len: usize) -> Self {
        self.max_correlation_id_len = len;
        self
    }

    /// Asks the broker, before the first reply to each reply topic (and again after
    /// the [cache TTL](Self::cache_ttl)), which operations the responder's principal
    /// may perform on it (KIP-430 DescribeTopics with authorized operations). A topic
    /// the principal may not WRITE is refused (`reply_topic_not_authorized`) before
    /// anything is produced. When the broker answers without operations (a broker
    /// before Kafka 2.3, or one without KIP-430), `unreported` decides; when it cannot
    /// be asked, the reply is produced and the producer's errors decide.
    ///
    /// Off by default: the reply-topic policy, the existence and partition checks
    /// (from metadata, always on) and the producer's own
    /// `TOPIC_AUTHORIZATION_FAILED` handling apply either way.
    pub fn check_write_access(mut self, unreported: UnknownWriteAccess) -> Self {
        self.write_access = Some(unreported);
        self
    }

    /// How long what the broker said about a reply topic (existence, partition count,
    /// write access) is trusted. A refusal is re-checked after 2 s at most, so a topic
    /// created or grown meanwhile is picked up quickly. Default 30 s.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }
}

/// What to do when the write-access check (KIP-430) is on and the broker answers
/// without authorized operations for a reply topic (a broker before Kafka 2.3, or one
/// that does not implement KIP-430). When the broker cannot be asked at all, neither
/// applies: the reply is produced and the producer's own errors decide (a reply that
/// does not get through leaves its request uncommitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownWriteAccess {
    /// Trust the reply-topic policy alone.
    Allow,
    /// Refuse the reply topic (`reply_topic_not_authorized`): fail closed.
    Refuse,
}
