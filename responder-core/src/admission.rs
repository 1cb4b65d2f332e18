//! Where a reply may go: every rule that admits or refuses a reply topic, in the order
//! they apply. A refused request is unanswerable (`reply_topic_not_allowed`, or a
//! broker code below): dead-lettered if a dead-letter topic is set, then committed.
//!
//! 1. **Built in, no policy can lift them** ([`allows`]): never one of Kafka's internal
//!    topics (`__consumer_offsets`, `__transaction_state`, ...), never one of the
//!    responder's own request topics (no request loops), never its dead-letter topic
//!    (no forged dead letters).
//! 2. **The reply-topic policy** ([`ReplyTopicPolicy`], in `policy.rs`, loaded by
//!    `policy_source.rs` and `acl/`): allow and deny entries in Kafka's ACL model.
//! 3. **The broker's answer** ([`admit_by_broker`], from the [`TopicVerdict`] that
//!    [`verdict_of_error`] and [`write_verdict`] make of it): the topic exists
//!    (`unknown_reply_topic`), has the named partition (`reply_partition_out_of_range`),
//!    and the responder's principal may write to it (KIP-430 authorized operations,
//!    `reply_topic_not_authorized`; [`UnknownWriteAccess`] decides when the broker does
//!    not say). Asking the broker and caching its answers is `runtime/reply_topics.rs`;
//!    the describe call itself is in `responder-ffi`.

use crate::address::{ReplyAddress, Unanswerable};
use crate::config::UnknownWriteAccess;
use crate::policy::ReplyTopicPolicy;
use responder_ffi::describe_topics::{TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PARTITION};

/// Rules 1 and 2: whether replies may go to `topic` (a request whose reply topic they
/// refuse is unanswerable: [`refused`] says why).
pub(crate) fn allows(
    topic: &str,
    policy: &ReplyTopicPolicy,
    is_request_topic: impl Fn(&str) -> bool,
    dead_letter_topic: Option<&str>,
) -> bool {
    !(crate::topic::is_internal_topic(topic)
        || is_request_topic(topic)
        || dead_letter_topic == Some(topic)
        || !policy.allows(topic))
}

/// Why an address rules 1 and 2 refuse is unanswerable.
pub(crate) fn refused(a: &ReplyAddress) -> Unanswerable {
    Unanswerable::TopicNotAllowed(a.topic.to_string())
}

/// What the broker said about a reply topic (cached by `runtime/reply_topics.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicVerdict {
    /// It exists with this many partitions, and may be written to (as far as checked).
    Partitions(i32),
    Missing,
    NotAuthorized,
    /// The broker could not be asked, or gave no usable answer: produce, and let the
    /// producer's own errors decide.
    Unverified,
}

/// Rule 3: the address, judged by what the broker said of its topic.
pub(crate) fn admit_by_broker(
    to: &ReplyAddress,
    verdict: TopicVerdict,
) -> Result<(), Unanswerable> {
    match (verdict, to.partition) {
        (TopicVerdict::Missing, _) => Err(Unanswerable::UnknownReplyTopic(to.topic.to_string())),
        (TopicVerdict::NotAuthorized, _) => {
            Err(Unanswerable::ReplyTopicNotAuthorized(to.topic.to_string()))
        }
        (TopicVerdict::Partitions(n), Some(p)) if p >= n => {
            Err(Unanswerable::ReplyPartitionOutOfRange {
                topic: to.topic.to_string(),
                partition: p,
                partitions: n,
            })
        }
        _ => Ok(()),
    }
}

/// A topic-level Kafka error code in the broker's answer; `None` when it says nothing
/// about the reply (the check then has no usable answer).
pub(crate) fn verdict_of_error(topic: &str, code: i32) -> Option<TopicVerdict> {
    match code {
        UNKNOWN_TOPIC_OR_PARTITION => Some(TopicVerdict::Missing),
        TOPIC_AUTHORIZATION_FAILED => Some(TopicVerdict::NotAuthorized),
        other => {
            tracing::debug!(topic, code = other, "reply topic metadata has an error");
            None
        }
    }
}

/// The write-access check's verdict on a topic of `partitions` partitions: `reported`
/// is whether the broker says the principal may WRITE (`None`: it reports no
/// authorized operations, and `unknown` decides).
pub(crate) fn write_verdict(
    topic: &str,
    reported: Option<bool>,
    unknown: UnknownWriteAccess,
    partitions: i32,
) -> TopicVerdict {
    let may_write = match (reported, unknown) {
        (Some(w), _) => w,
        (None, UnknownWriteAccess::Allow) => true,
        (None, UnknownWriteAccess::Refuse) => {
            tracing::warn!(
                topic,
                "the broker reports no authorized operations; refusing (fail closed)"
            );
            false
        }
    };
    if may_write {
        TopicVerdict::Partitions(partitions)
    } else {
        TopicVerdict::NotAuthorized
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::headers::HeaderConvention;

    fn to(topic: &str, partition: Option<i32>) -> ReplyAddress {
        ReplyAddress {
            topic: crate::address::TopicName::valid(topic),
            partition,
            correlation_id: Some(b"c"[..].into()),
            convention: Arc::new(HeaderConvention::spring()),
        }
    }

    #[test]
    fn built_in_denies_hold_whatever_the_policy_allows() {
        let everything: ReplyTopicPolicy = "*".parse().expect("policy");
        let requests = |t: &str| t == "requests";
        for refused in [
            "__consumer_offsets",
            "__transaction_state",
            "requests",
            "dlq",
        ] {
            assert!(
                !allows(refused, &everything, requests, Some("dlq")),
                "{refused}"
            );
            assert!(
                matches!(super::refused(&to(refused, None)), Unanswerable::TopicNotAllowed(ref t) if t == refused)
            );
        }
        assert!(allows("replies", &everything, requests, Some("dlq")));
        let only_replies: ReplyTopicPolicy = "replies".parse().expect("policy");
        assert!(!allows("other", &only_replies, requests, None));
        assert!(allows("replies", &only_replies, requests, None));
    }

    #[test]
    fn the_brokers_answer_decides_existence_partition_and_write_access() {
        use TopicVerdict::*;
        let code = |v: Result<(), Unanswerable>| v.err().map(|u| u.code());
        assert_eq!(
            code(admit_by_broker(&to("r", Some(2)), Partitions(3))),
            None
        );
        assert_eq!(
            code(admit_by_broker(&to("r", Some(3)), Partitions(3))),
            Some("reply_partition_out_of_range")
        );
        assert_eq!(
            code(admit_by_broker(&to("r", None), Missing)),
            Some("unknown_reply_topic")
        );
        assert_eq!(
            code(admit_by_broker(&to("r", None), NotAuthorized)),
            Some("reply_topic_not_authorized")
        );
        assert_eq!(code(admit_by_broker(&to("r", Some(99)), Unverified)), None);
        assert_eq!(
            verdict_of_error("r", UNKNOWN_TOPIC_OR_PARTITION),
            Some(Missing)
        );
        assert_eq!(
            verdict_of_error("r", TOPIC_AUTHORIZATION_FAILED),
            Some(NotAuthorized)
        );
        assert_eq!(verdict_of_error("r", 7), None);
        let allow = UnknownWriteAccess::Allow;
        let refuse = UnknownWriteAccess::Refuse;
        assert_eq!(write_verdict("r", Some(true), refuse, 3), Partitions(3));
        assert_eq!(write_verdict("r", Some(false), allow, 3), NotAuthorized);
        assert_eq!(write_verdict("r", None, allow, 3), Partitions(3));
        assert_eq!(write_verdict("r", None, refuse, 3), NotAuthorized);
    }
}
