//! Every stable code the responder emits, in one place: error-reply codes (the
//! `responder-error-code` header), the reasons a request cannot be answered (logs,
//! metrics and the dead letter's `responder-dlq-reason` header), and the codes of the
//! library's own [`Error`](crate::Error)s. A code never changes meaning once
//! released; handlers add codes of their own to error replies.

// Error replies: what a requester receives in `responder-error-code`.

/// The payload could not be decoded into the handler's request type, or a header the
/// responder reads (such as the deadline) is malformed.
pub const BAD_REQUEST: &str = "bad_request";
/// The payload is larger than the responder accepts
/// ([`max_request_bytes`](crate::Bounds::max_request_bytes)).
pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
/// The handler failed and its error chose no code of its own.
pub const HANDLER_ERROR: &str = "handler_error";
/// The handler panicked, or its reply could not be encoded.
pub const INTERNAL_ERROR: &str = "internal_error";
/// The handler did not answer within its timeout
/// ([`handler_timeout`](crate::Bounds::handler_timeout)) or the request's
/// deadline; its work was dropped.
pub const TIMEOUT: &str = "timeout";

// Requests that cannot be answered ([`Unanswerable`](crate::Unanswerable)), and dead
// letters.

/// No accepted convention's reply-topic or correlation header is present.
pub const NO_REPLY_ADDRESS: &str = "no_reply_address";
/// The correlation header is present but the reply-topic header is not.
pub const MISSING_REPLY_TOPIC: &str = "missing_reply_topic";
/// The reply-topic header is present but the correlation header is not.
pub const MISSING_CORRELATION_ID: &str = "missing_correlation_id";
/// The reply-topic header does not hold a valid topic name.
pub const INVALID_REPLY_TOPIC: &str = "invalid_reply_topic";
/// The reply-partition header cannot be read, or is negative.
pub const INVALID_REPLY_PARTITION: &str = "invalid_reply_partition";
/// A reply header appears more than once with different values.
pub const CONFLICTING_HEADERS: &str = "conflicting_headers";
/// The reply topic is refused: by the reply-topic policy, or by a rule no policy
/// lifts (an internal topic, a request topic, the dead-letter topic).
pub const REPLY_TOPIC_NOT_ALLOWED: &str = "reply_topic_not_allowed";
/// The correlation id is empty or too long.
pub const INVALID_CORRELATION_ID: &str = "invalid_correlation_id";
/// The reply topic does not exist.
pub const UNKNOWN_REPLY_TOPIC: &str = "unknown_reply_topic";
/// The reply partition is beyond the reply topic's partitions.
pub const REPLY_PARTITION_OUT_OF_RANGE: &str = "reply_partition_out_of_range";
/// The broker does not let the responder write to the reply topic.
pub const REPLY_TOPIC_NOT_AUTHORIZED: &str = "reply_topic_not_authorized";
/// Dead-letter reason: the broker refused the reply itself for good (too large,
/// invalid, or still not authorized or unknown after a few attempts).
pub const REPLY_REFUSED: &str = "reply_refused";

// The library's own errors ([`Error::code`](crate::Error::code)).

/// The configuration is incomplete or contradicts itself.
pub const CONFIG: &str = "config";
/// A topic name in the configuration breaks Kafka's naming rules.
pub const TOPIC_NAME: &str = "topic_name";
/// The reply-topic policy is malformed.
pub const POLICY: &str = "policy";
/// The reply-topic policy could not be loaded from its source.
pub const POLICY_SOURCE: &str = "policy_source";
/// The Kafka client reported an error.
pub const KAFKA: &str = "kafka";
/// The consumer side failed (a panic, or the reply producer's fatal error).
pub const CONSUMER_FAILED: &str = "consumer_failed";
/// The HTTP server's address could not be bound.
pub const HTTP: &str = "http";
/// An environment variable holds a value that cannot be read.
pub const ENV: &str = "env";

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &[
        BAD_REQUEST,
        PAYLOAD_TOO_LARGE,
        HANDLER_ERROR,
        INTERNAL_ERROR,
        TIMEOUT,
        NO_REPLY_ADDRESS,
        MISSING_REPLY_TOPIC,
        MISSING_CORRELATION_ID,
        INVALID_REPLY_TOPIC,
        INVALID_REPLY_PARTITION,
        CONFLICTING_HEADERS,
        REPLY_TOPIC_NOT_ALLOWED,
        INVALID_CORRELATION_ID,
        UNKNOWN_REPLY_TOPIC,
        REPLY_PARTITION_OUT_OF_RANGE,
        REPLY_TOPIC_NOT_AUTHORIZED,
        REPLY_REFUSED,
        CONFIG,
        TOPIC_NAME,
        POLICY,
        POLICY_SOURCE,
        KAFKA,
        CONSUMER_FAILED,
        HTTP,
        ENV,
    ];

    #[test]
    fn codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ALL {
            assert!(seen.insert(code), "{code} twice");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
    }

    #[test]
    fn errors_and_outcomes_use_the_registry() {
        let e = crate::Error::from("a*b".parse::<crate::ReplyTopicPolicy>().expect_err("bad"));
        assert_eq!(e.code(), POLICY);
        assert!(
            std::error::Error::source(&e).is_some(),
            "the policy error is kept"
        );
        assert_eq!(crate::Unanswerable::NoReplyAddress.code(), NO_REPLY_ADDRESS);
        assert!(ALL.contains(&crate::Unanswerable::TopicNotAllowed(String::new()).code()));
    }
}
