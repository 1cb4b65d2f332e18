//! [`DeadLetters`]: where requests that get no reply are kept, and when a request is
//! too late to answer.

use std::time::Duration;

use crate::deadline::DeadlineRules;

/// Dead letters and deadlines, set with
/// [`ResponderBuilder::dead_letters`](crate::ResponderBuilder::dead_letters).
///
/// ```
/// use std::time::Duration;
/// use responder_core::Responder;
///
/// let builder = Responder::builder().dead_letters(|d| {
///     d.topic("kyc-dead-letters").max_request_age(Duration::from_secs(30))
/// });
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct DeadLetters {
    pub(crate) topic: Option<String>,
    pub(crate) deadlines: DeadlineRules,
}

impl DeadLetters {
    /// A topic that receives a copy of every request that cannot be answered (no usable
    /// or allowed reply address, or a reply the broker refuses), with headers saying
    /// why (`responder-dlq-*`). Without one, such requests are logged and counted.
    /// Either way they are committed.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// The header carrying a request's deadline (absolute epoch milliseconds, ASCII
    /// decimal); `None` reads no deadline header. Default
    /// [`DEADLINE_HEADER`](crate::DEADLINE_HEADER). A request past its deadline is not
    /// handled: its requester has given up. It is counted (`expired`), logged and
    /// committed. A deadline header that cannot be read gets a `bad_request` error reply.
    pub fn deadline_header(mut self, header: Option<&str>) -> Self {
        self.deadlines.header = header.map(str::to_owned);
        self
    }

    /// Requests older than this (by their record timestamp) have expired, like requests
    /// past a deadline header. With both, the earlier deadline applies. Default: none.
    pub fn max_request_age(mut self, age: Duration) -> Self {
        self.deadlines.max_age = Some(age);
        self
    }
}
