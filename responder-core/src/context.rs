//! What a handler can see of the request it answers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::HeaderConvention;
use crate::address::ReplyAddress;
use crate::received::Received;
use crate::trace_context::{TraceContext, TraceParent};

/// The reply address of a request whose headers are not read yet: an empty topic.
static UNREAD: std::sync::LazyLock<ReplyAddress> = std::sync::LazyLock::new(|| ReplyAddress {
    topic: crate::address::TopicName::valid(""),
    partition: None,
    correlation_id: None,
    convention: Arc::new(HeaderConvention::spring()),
});

/// The request's coordinates, key, headers and reply address.
#[derive(Debug)]
pub struct RequestContext {
    message: Received,
    /// `None` until read (see [`UNREAD`]).
    reply_to: Option<ReplyAddress>,
    deadline_millis: Option<i64>,
    trace: Option<TraceContext>,
}

impl RequestContext {
    /// A request as received, before its headers are read: no reply address yet
    /// (until [`set_reply_to`](Self::set_reply_to), which comes before any handler
    /// sees it), no deadline, no trace context.
    pub(crate) fn received(message: Received) -> Self {
        RequestContext {
            message,
            reply_to: None,
            deadline_millis: None,
            trace: None,
        }
    }

    /// Where the reply goes, once read and admitted.
    pub(crate) fn set_reply_to(&mut self, reply_to: ReplyAddress) {
        self.reply_to = Some(reply_to);
    }

    /// When the requester gives up, in epoch milliseconds.
    pub(crate) fn set_deadline(&mut self, deadline_millis: Option<i64>) {
        self.deadline_millis = deadline_millis;
    }

    /// The request's trace context, read from its headers.
    pub(crate) fn set_trace(&mut self, trace: Option<TraceContext>) {
        self.trace = trace;
    }

    /// The responder's span for this request, when the request carried a valid W3C
    /// `traceparent`: a child of the requester's span, in its trace. The reply carries
    /// it; a handler passes it on (as `traceparent`) to the calls it makes, so they
    /// join the same trace.
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.trace.as_ref().map(|t| *t.span())
    }

    /// The request's trace context, if any.
    pub(crate) fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// When the requester gives up (from the deadline header or the maximum request
    /// age), if known. A handler doing slow work can stop early once it has passed:
    /// the reply would not be read.
    pub fn deadline(&self) -> Option<SystemTime> {
        let ms = u64::try_from(self.deadline_millis?).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }

    /// The deadline in epoch milliseconds, if known.
    pub(crate) fn deadline_millis(&self) -> Option<i64> {
        self.deadline_millis
    }

    /// The record as received.
    pub(crate) fn message(&self) -> &Received {
        &self.message
    }

    /// The request topic.
    pub fn topic(&self) -> &str {
        self.message.topic()
    }

    /// The request's partition.
    pub fn partition(&self) -> i32 {
        self.message.partition()
    }

    /// The request's offset.
    pub fn offset(&self) -> i64 {
        self.message.offset()
    }

    /// The record key; the reply carries the same key.
    pub fn key(&self) -> Option<&[u8]> {
        self.message.key()
    }

    /// The record timestamp in epoch milliseconds, when the broker reported one.
    pub fn timestamp_millis(&self) -> Option<i64> {
        self.message.timestamp_millis()
    }

    /// The raw payload (`None` for a tombstone).
    pub fn payload(&self) -> Option<&[u8]> {
        self.message.payload()
    }

    /// The first header named `name`: `Some(None)` when present with a null value.
    pub fn header(&self, name: &str) -> Option<Option<&[u8]>> {
        self.headers().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Every header in order, repeats included (a header whose key is not UTF-8 is
    /// left out).
    pub fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        crate::request_headers::RequestHeaders::of(self.message.headers()).into_iter()
    }

    /// The correlation id, as received (`None` only when the responder answers
    /// requests without one).
    pub fn correlation_id(&self) -> Option<&[u8]> {
        self.reply_to().correlation_id.as_deref()
    }

    /// Where the reply goes.
    pub fn reply_to(&self) -> &ReplyAddress {
        self.reply_to.as_ref().unwrap_or(&UNREAD)
    }
}
