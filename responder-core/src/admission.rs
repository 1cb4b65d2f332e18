//! Where a reply may go: every rule that admits or refuses a reply topic, in the order
//! they apply. A refused request is unanswerable (`reply_topic_not_allowed`, or a
//! broker code below): dead-lettered if a dead-letter topic is set, then committed.
//!
//! 1. **Built in, no policy can lift them** ([`admit`]): never one of Kafka's internal
//!    topics (`__consumer_offsets`, `__transaction_state`, ...), never one of the
//!    responder's own request topics (no request loops), never its dead-letter topic
//!    (no forged dead letters).
//! 2. **The reply-topic policy** ([`ReplyTopicPolicy`], in `policy.rs`, loaded by
//!    `policy_source.rs` and `acl/`): allow and deny entries in Kafka's ACL model.
//! 3. **The broker's answer** (`runtime/reply_topics.rs`, cached): the topic exists
//!    (`unknown_reply_topic`), has the named partition (`unknown_reply_partition`), and
//!    the responder's principal may write to it (KIP-430 authorized operations,
//!    `reply_topic_not_authorized`; `UnknownWriteAccess` decides when the broker does not say).
//!    The describe call itself is in `responder-ffi`.

use crate::address::{ReplyAddress, Unanswerable};
use crate::policy::ReplyTopicPolicy;

/// Rules 1 and 2: the address, if its topic is admitted.
pub(crate) fn admit(
    a: ReplyAddress,
    policy: &ReplyTopicPolicy,
    is_request_topic: impl Fn(&str) -> bool,
    dead_letter_topic: Option<&str>,
) -> Result<ReplyAddress, Unanswerable> {
    let topic = a.topic.as_str();
    if crate::topic::is_internal_topic(topic)
        || is_request_topic(topic)
        || dead_letter_topic == Some(topic)
        || !policy.allows(topic)
    {
        return Err(Unanswerable::TopicNotAllowed(a.topic));
    }
    Ok(a)
}
