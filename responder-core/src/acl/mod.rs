//! Kafka ACL bindings, read from the definitions operators already keep, and the
//! reply-topic policy they imply for one principal.
//!
//! A responder should write replies exactly where the broker lets its principal write,
//! and nowhere a requester merely names. Rather than restating the ACLs in the
//! responder's config (where the two drift apart), load them:
//!
//! - the text printed by `kafka-acls --list` ([`parse_kafka_acls_list`]);
//! - a Strimzi `KafkaUser` manifest (`parse_strimzi_kafka_user`, feature `strimzi`);
//!
//! then turn them into a [`ReplyTopicPolicy`] with [`policy_for_principal`].
//!
//! ```
//! use responder_core::acl::{parse_kafka_acls_list, policy_for_principal};
//!
//! let listed = "\
//! Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=kyc-replies-, patternType=PREFIXED)`:
//!  \t(principal=User:kyc, host=*, operation=WRITE, permissionType=ALLOW)
//!  \t(principal=User:kyc, host=*, operation=DESCRIBE, permissionType=ALLOW)
//! ";
//! let acls = parse_kafka_acls_list(listed)?;
//! let policy = policy_for_principal(&acls, "User:kyc")?;
//! assert!(policy.allows("kyc-replies-7"));
//! assert!(!policy.allows("payments"));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

mod kafka_acls;
#[cfg(feature = "strimzi")]
mod strimzi;

use std::fmt;
use std::str::FromStr;

pub use kafka_acls::parse_kafka_acls_list;
#[cfg(feature = "strimzi")]
pub use strimzi::{KafkaUser, parse_strimzi_kafka_user};

use crate::policy::{PatternType, Permission, PolicyEntry, PolicyError, ReplyTopicPolicy};

/// The kind of resource an ACL binding protects (Kafka's `ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster.
    Cluster,
    /// A transactional id.
    TransactionalId,
    /// A delegation token.
    DelegationToken,
    /// A user (for quota and token operations).
    User,
}

/// An operation an ACL binding allows or denies (Kafka's `AclOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

/// One ACL binding: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AclBinding {
    /// What kind of resource it protects.
    pub resource_type: ResourceType,
    /// The resource name (a topic name, or `*` with a LITERAL pattern).
    pub name: String,
    /// How the name matches.
    pub pattern: PatternType,
    /// Whose access it governs (`User:alice`, or `User:*` for everyone).
    pub principal: String,
    /// From which host (`*` for any).
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: Permission,
}

/// ACL definitions could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AclError {
    /// A line of `kafka-acls --list` output is not in the format Kafka prints.
    #[error("line {line}: {message}")]
    Syntax {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A manifest is not a valid `KafkaUser` with simple authorization.
    #[error("KafkaUser manifest: {0}")]
    Manifest(String),
    /// A resource name is not a valid topic name.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Normalises an enum token: `IDEMPOTENT_WRITE`, `IdempotentWrite` and
/// `idempotent-write` all become `idempotentwrite`.
fn token(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

impl FromStr for AclOperation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use AclOperation as O;
        Ok(match token(s).as_str() {
            "all" => O::All,
            "read" => O::Read,
            "write" => O::Write,
            "create" => O::Create,
            "delete" => O::Delete,
            "alter" => O::Alter,
            "describe" => O::Describe,
            "clusteraction" => O::ClusterAction,
            "describeconfigs" => O::DescribeConfigs,
            "alterconfigs" => O::AlterConfigs,
            "idempotentwrite" => O::IdempotentWrite,
            "createtokens" => O::CreateTokens,
            "describetokens" => O::DescribeTokens,
            _ => return Err(format!("unknown ACL operation {s:?}")),
        })
    }
}

impl FromStr for ResourceType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match token(s).as_str() {
            "topic" => ResourceType::Topic,
            "group" => ResourceType::Group,
            "cluster" => ResourceType::Cluster,
            "transactionalid" => ResourceType::TransactionalId,
            "delegationtoken" => ResourceType::DelegationToken,
            "user" => ResourceType::User,
            _ => return Err(format!("unknown ACL resource type {s:?}")),
        })
    }
}

fn parse_pattern(s: &str) -> Result<PatternType, String> {
    match token(s).as_str() {
        "literal" => Ok(PatternType::Literal),
        // Kafka prints PREFIXED; Strimzi writes `prefix`.
        "prefixed" | "prefix" => Ok(PatternType::Prefixed),
        _ => Err(format!(
            "unsupported ACL pattern type {s:?} (LITERAL or PREFIXED)"
        )),
    }
}

fn parse_permission(s: &str) -> Result<Permission, String> {
    match token(s).as_str() {
        "allow" => Ok(Permission::Allow),
        "deny" => Ok(Permission::Deny),
        _ => Err(format!("unknown ACL permission type {s:?}")),
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:?}:{} {} {:?} {:?} from {}",
            self.permission,
            self.resource_type,
            self.name,
            if self.pattern == PatternType::Prefixed {
                "(prefixed)"
            } else {
                "(literal)"
            },
            self.principal,
            self.operation,
            self.host
        )
    }
}

/// The reply-topic policy that lets `principal` write replies exactly where these ACLs
/// let it produce.
///
/// Rules, following Kafka's authorizer:
/// - only TOPIC bindings count, for `principal` itself or the wildcard `User:*`;
/// - ALLOW entries count for WRITE and ALL, and only from any host (`*`): the
///   responder cannot know which host the broker will see, so a host-restricted ALLOW
///   is not relied on;
/// - DENY entries count for WRITE, ALL and DESCRIBE (a producer needs DESCRIBE too),
///   from any host: a DENY is applied whenever it might apply;
/// - DENY beats ALLOW, as on the broker.
pub fn policy_for_principal(
    bindings: &[AclBinding],
    principal: &str,
) -> Result<ReplyTopicPolicy, PolicyError> {
    let wildcard = principal
        .split_once(':')
        .map(|(kind, _)| format!("{kind}:*"));
    let mut policy = ReplyTopicPolicy::deny_all();
    for b in bindings {
        let ours = b.principal == principal || Some(&b.principal) == wildcard.as_ref();
        if b.resource_type != ResourceType::Topic || !ours {
            continue;
        }
        let counts = match b.permission {
            Permission::Allow => {
                b.host == "*" && matches!(b.operation, AclOperation::Write | AclOperation::All)
            }
            Permission::Deny => matches!(
                b.operation,
                AclOperation::Write | AclOperation::All | AclOperation::Describe
            ),
        };
        if counts {
            let entry = PolicyEntry::new(&b.name, b.pattern, b.permission)?;
            if !policy.entries().contains(&entry) {
                policy = policy.with(entry);
            }
        }
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    #[test]
    fn only_write_for_this_principal_from_any_host_allows() {
        use AclOperation::*;
        use PatternType::*;
        use Permission::*;
        let acls = vec![
            b("replies-", Prefixed, "User:svc", "*", Write, Allow),
            b("audit", Literal, "User:svc", "*", All, Allow),
            b("reads", Literal, "User:svc", "*", Read, Allow),
            b("other", Literal, "User:someone", "*", Write, Allow),
            b("pinned", Literal, "User:svc", "10.0.0.1", Write, Allow),
            b("shared", Literal, "User:*", "*", Write, Allow),
            b(
                "replies-admin",
                Literal,
                "User:*",
                "10.0.0.9",
                Describe,
                Deny,
            ),
        ];
        let p = policy_for_principal(&acls, "User:svc").expect("policy");
        assert!(p.allows("replies-1"));
        assert!(p.allows("audit"));
        assert!(p.allows("shared"));
        for refused in ["reads", "other", "pinned", "replies-admin", "x"] {
            assert!(!p.allows(refused), "{refused}");
        }
    }

    #[test]
    fn a_wildcard_topic_and_a_prefixed_deny() {
        use PatternType::*;
        use Permission::*;
        let acls = vec![
            b("*", Literal, "User:svc", "*", AclOperation::Write, Allow),
            b("secret", Prefixed, "User:svc", "*", AclOperation::All, Deny),
        ];
        let p = policy_for_principal(&acls, "User:svc").expect("policy");
        assert!(p.allows("anything"));
        assert!(!p.allows("secret-keys"));
    }

    #[test]
    fn tokens_in_either_spelling() {
        assert_eq!(
            "IDEMPOTENT_WRITE".parse::<AclOperation>(),
            Ok(AclOperation::IdempotentWrite)
        );
        assert_eq!(
            "IdempotentWrite".parse::<AclOperation>(),
            Ok(AclOperation::IdempotentWrite)
        );
        assert_eq!(
            "transactionalId".parse::<ResourceType>(),
            Ok(ResourceType::TransactionalId)
        );
        assert!("Frobnicate".parse::<AclOperation>().is_err());
        assert!(parse_pattern("MATCH").is_err());
    }
}
