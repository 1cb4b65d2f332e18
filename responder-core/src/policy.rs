//! The reply-topic policy: which topics the responder may write replies to.
//!
//! Patterns follow Kafka's ACL model: a LITERAL name (`*` meaning every topic) or a
//! PREFIXED name, each ALLOW or DENY, and DENY beats ALLOW. A topic no entry allows is
//! refused. On top of the policy the responder always refuses Kafka's internal topics
//! and its own request topics (no request loops).

use std::fmt;
use std::str::FromStr;

use crate::topic::{TopicNameError, validate_topic_name};

/// How an entry's name matches a topic (Kafka's `PatternType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternType {
    /// The exact name; the name `*` matches every topic.
    Literal,
    /// Every topic whose name starts with the entry's name.
    Prefixed,
}

/// Whether an entry allows or denies (Kafka's `AclPermissionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Permission {
    /// Replies may go to matching topics (unless a DENY matches too).
    Allow,
    /// Replies never go to matching topics.
    Deny,
}

/// One entry of a [`ReplyTopicPolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    name: String,
    pattern: PatternType,
    permission: Permission,
}

impl PolicyEntry {
    /// An entry; `name` must be a valid topic name (or `*` for a LITERAL entry).
    pub fn new(
        name: &str,
        pattern: PatternType,
        permission: Permission,
    ) -> Result<Self, PolicyError> {
        if !(pattern == PatternType::Literal && name == "*") {
            validate_topic_name(name.as_bytes()).map_err(|source| PolicyError {
                entry: name.to_owned(),
                source,
            })?;
        }
        Ok(PolicyEntry {
            name: name.to_owned(),
            pattern,
            permission,
        })
    }

    fn matches(&self, topic: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == "*" || self.name == topic,
            PatternType::Prefixed => topic.starts_with(&self.name),
        }
    }
}

impl fmt::Display for PolicyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.permission == Permission::Deny {
            f.write_str("!")?;
        }
        f.write_str(&self.name)?;
        if self.pattern == PatternType::Prefixed {
            f.write_str("*")?;
        }
        Ok(())
    }
}

/// An entry of the policy is not a valid pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reply-topic policy entry {entry:?} is invalid: {source}")]
#[non_exhaustive]
pub struct PolicyError {
    /// The entry as written.
    pub entry: String,
    /// Why its name is not a topic name.
    #[source]
    pub source: TopicNameError,
}

/// Which topics replies may be written to.
///
/// ```
/// use responder_core::ReplyTopicPolicy;
///
/// let policy: ReplyTopicPolicy = "WALLET-KYC-RESPONSE*,!WALLET-KYC-RESPONSE-ADMIN".parse()?;
/// assert!(policy.allows("WALLET-KYC-RESPONSE"));
/// assert!(policy.allows("WALLET-KYC-RESPONSE-7"));
/// assert!(!policy.allows("WALLET-KYC-RESPONSE-ADMIN"));
/// assert!(!policy.allows("payments"));
/// # Ok::<_, responder_core::PolicyError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyTopicPolicy {
    entries: Vec<PolicyEntry>,
    /// Policies that must allow a topic too (see [`and`](Self::and)).
    also: Vec<ReplyTopicPolicy>,
}

impl ReplyTopicPolicy {
    /// A policy that allows nothing; add entries to it.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Adds an entry.
    pub fn with(mut self, entry: PolicyEntry) -> Self {
        self.entries.push(entry);
        self
    }

    /// Allows the topic `name` exactly (`*`: every topic).
    pub fn allow_literal(self, name: &str) -> Result<Self, PolicyError> {
        Ok(self.with(PolicyEntry::new(
            name,
            PatternType::Literal,
            Permission::Allow,
        )?))
    }

    /// Allows every topic whose name starts with `prefix`.
    pub fn allow_prefix(self, prefix: &str) -> Result<Self, PolicyError> {
        Ok(self.with(PolicyEntry::new(
            prefix,
            PatternType::Prefixed,
            Permission::Allow,
        )?))
    }

    /// Denies the topic `name` exactly, whatever allows it.
    ///
    /// ```
    /// use responder_core::ReplyTopicPolicy;
    ///
    /// let policy = "replies-*".parse::<ReplyTopicPolicy>()?.deny_literal("replies-audit")?;
    /// assert!(policy.allows("replies-kyc"));
    /// assert!(!policy.allows("replies-audit"));
    /// assert!(policy.allows("replies-audit-2"), "exactly that name");
    /// # Ok::<_, responder_core::PolicyError>(())
    /// ```
    pub fn deny_literal(self, name: &str) -> Result<Self, PolicyError> {
        Ok(self.with(PolicyEntry::new(
            name,
            PatternType::Literal,
            Permission::Deny,
        )?))
    }

    /// Narrows this policy: a topic must be allowed by both. Use it to restrict a
    /// policy loaded from ACLs (everywhere the service account may write) to the reply
    /// topics the service means to answer on.
    ///
    /// ```
    /// use responder_core::ReplyTopicPolicy;
    ///
    /// let acls: ReplyTopicPolicy = "*,!payments".parse()?;
    /// let policy = acls.and("replies-*".parse()?);
    /// assert!(policy.allows("replies-1"));
    /// assert!(!policy.allows("audit"));
    /// # Ok::<_, responder_core::PolicyError>(())
    /// ```
    pub fn and(mut self, other: ReplyTopicPolicy) -> Self {
        self.also.push(other);
        self
    }

    /// Whether the policy lets replies go to any topic a requester names (a LITERAL
    /// `*` ALLOW, DENY entries aside): then only the broker's ACLs stand between a
    /// requester and every topic the service account can write.
    pub fn allows_every_topic(&self) -> bool {
        self.entries.iter().any(|e| {
            e.permission == Permission::Allow && e.pattern == PatternType::Literal && e.name == "*"
        }) && self.also.iter().all(ReplyTopicPolicy::allows_every_topic)
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[PolicyEntry] {
        &self.entries
    }

    /// Whether any entry allows something.
    pub fn allows_anything(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.permission == Permission::Allow)
            && self.also.iter().all(ReplyTopicPolicy::allows_anything)
    }

    /// Whether a reply may be written to `topic`: some ALLOW entry matches and no DENY
    /// entry does.
    pub fn allows(&self, topic: &str) -> bool {
        let mut allowed = false;
        for entry in &self.entries {
            if entry.matches(topic) {
                match entry.permission {
                    Permission::Deny => return false,
                    Permission::Allow => allowed = true,
                }
            }
        }
        allowed && self.also.iter().all(|p| p.allows(topic))
    }
}

/// Parses the comma-separated form used by `RESPONDER_REPLY_ALLOW`: `NAME` is a literal
/// topic, `PREFIX*` a prefixed pattern, `*` every topic, and a leading `!` makes an
/// entry a DENY. Blank entries are ignored.
impl FromStr for ReplyTopicPolicy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = ReplyTopicPolicy::deny_all();
        for raw in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (permission, rest) = match raw.strip_prefix('!') {
                Some(rest) => (Permission::Deny, rest),
                None => (Permission::Allow, raw),
            };
            let entry = match rest {
                "*" => PolicyEntry::new("*", PatternType::Literal, permission),
                _ => match rest.strip_suffix('*') {
                    Some(prefix) => PolicyEntry::new(prefix, PatternType::Prefixed, permission),
                    None => PolicyEntry::new(rest, PatternType::Literal, permission),
                },
            }
            .map_err(|e| PolicyError {
                entry: raw.to_owned(),
                source: e.source,
            })?;
            policy.entries.push(entry);
        }
        Ok(policy)
    }
}

impl fmt::Display for ReplyTopicPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{e}")?;
        }
        for p in &self.also {
            write!(f, " & {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_beats_allow_in_any_order() {
        let p: ReplyTopicPolicy = "!replies-admin,replies*".parse().expect("policy");
        assert!(p.allows("replies-1"));
        assert!(!p.allows("replies-admin"));
        let p: ReplyTopicPolicy = "*,!secret*".parse().expect("policy");
        assert!(p.allows("anything"));
        assert!(!p.allows("secret-keys"));
    }

    #[test]
    fn literal_is_exact() {
        let p: ReplyTopicPolicy = "replies".parse().expect("policy");
        assert!(p.allows("replies"));
        assert!(!p.allows("replies2"));
        assert!(!p.allows("replie"));
    }

    #[test]
    fn empty_allows_nothing() {
        let p: ReplyTopicPolicy = " , ".parse().expect("policy");
        assert!(!p.allows_anything());
        assert!(!p.allows("x"));
    }

    #[test]
    fn invalid_entries_are_rejected() {
        for bad in ["a/b*", "!", "sp ace", "x**", "..", "*x"] {
            assert!(bad.parse::<ReplyTopicPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_through_display() {
        let text = "a*,!a-b,*,exact";
        let p: ReplyTopicPolicy = text.parse().expect("policy");
        assert_eq!(p.to_string(), text);
    }
}
