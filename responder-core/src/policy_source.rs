//! Where a [`ReplyTopicPolicy`] comes from: inline text, a policy file, the output of
//! `kafka-acls --list`, or a Strimzi `KafkaUser` manifest.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::acl::{self, AclError};
use crate::policy::{PolicyError, ReplyTopicPolicy};

/// A source of the reply-topic policy, written as one string so that it fits in one
/// environment variable:
///
/// | form | meaning |
/// |---|---|
/// | `replies*,!replies-admin` | the entries themselves ([`ReplyTopicPolicy`]'s syntax) |
/// | `file:/etc/responder/policy` | the same syntax in a file, one or more entries per line, `#` comments |
/// | `kafka-acls:/etc/acls.txt#User:kyc` | `kafka-acls --list` output, for that principal |
/// | `strimzi:/etc/user.yaml` or `strimzi:/etc/users.yaml#kyc` | a `KafkaUser` manifest (feature `strimzi`) |
/// | `strimzi:/etc/user.yaml & replies-*` | both: a topic must be allowed by each ([`ReplyTopicPolicy::and`]) |
///
/// ```
/// use responder_core::PolicySource;
///
/// let source: PolicySource = "kafka-acls:/etc/acls.txt#User:CN=kyc,OU=payments".parse()?;
/// assert_eq!(
///     source,
///     PolicySource::KafkaAcls {
///         path: "/etc/acls.txt".into(),
///         principal: "User:CN=kyc,OU=payments".into(),
///     }
/// );
/// let inline: PolicySource = "replies*".parse()?;
/// assert!(inline.load()?.allows("replies-1"));
/// # Ok::<_, responder_core::PolicyLoadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicySource {
    /// The entries, inline.
    Inline(String),
    /// A file of entries.
    File(PathBuf),
    /// `kafka-acls --list` output, read for one principal.
    KafkaAcls {
        /// The file.
        path: PathBuf,
        /// The responder's principal, e.g. `User:kyc`.
        principal: String,
    },
    /// Several sources, all of which must allow a topic (written `A & B`).
    All(Vec<PolicySource>),
    /// A Strimzi `KafkaUser` manifest.
    Strimzi {
        /// The file.
        path: PathBuf,
        /// Which `KafkaUser`, when the file holds several.
        user: Option<String>,
    },
}

/// A reply-topic policy could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLoadError {
    /// The source string names no usable source.
    #[error("reply-topic policy source {0:?}: {1}")]
    Source(String, &'static str),
    /// The file could not be read.
    #[error("reading reply-topic policy {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The ACL definitions are malformed.
    #[error("reading ACLs from {path}: {source}")]
    Acl {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: AclError,
    },
    /// An entry is not a valid pattern.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl FromStr for PolicySource {
    type Err = PolicyLoadError;

    fn from_str(s: &str) -> Result<Self, PolicyLoadError> {
        if s.contains(" & ") {
            return s
                .split(" & ")
                .map(|part| part.trim().parse())
                .collect::<Result<_, _>>()
                .map(PolicySource::All);
        }
        let bad = |why| PolicyLoadError::Source(s.to_owned(), why);
        if let Some(path) = s.strip_prefix("file:") {
            return Ok(PolicySource::File(
                non_empty(path).ok_or_else(|| bad("no path"))?,
            ));
        }
        if let Some(rest) = s.strip_prefix("kafka-acls:") {
            let (path, principal) = rest
                .split_once('#')
                .ok_or_else(|| bad("name the principal: kafka-acls:<path>#User:<name>"))?;
            if !principal.contains(':') {
                return Err(bad("a principal has a type: User:<name>"));
            }
            return Ok(PolicySource::KafkaAcls {
                path: non_empty(path).ok_or_else(|| bad("no path"))?,
                principal: principal.to_owned(),
            });
        }
        if let Some(rest) = s.strip_prefix("strimzi:") {
            let (path, user) = match rest.split_once('#') {
                Some((p, u)) => (p, Some(u.to_owned())),
                None => (rest, None),
            };
            return Ok(PolicySource::Strimzi {
                path: non_empty(path).ok_or_else(|| bad("no path"))?,
                user,
            });
        }
        Ok(PolicySource::Inline(s.to_owned()))
    }
}

fn non_empty(path: &str) -> Option<PathBuf> {
    (!path.trim().is_empty()).then(|| PathBuf::from(path))
}

impl PolicySource {
    /// Reads the policy.
    pub fn load(&self) -> Result<ReplyTopicPolicy, PolicyLoadError> {
        match self {
            PolicySource::Inline(text) => Ok(text.parse()?),
            PolicySource::File(path) => {
                let text = read(path)?;
                let entries: Vec<&str> = text
                    .lines()
                    .map(|l| l.split_once('#').map_or(l, |(before, _)| before))
                    .collect();
                Ok(entries.join(",").parse()?)
            }
            PolicySource::KafkaAcls { path, principal } => {
                let acl_err = |source| PolicyLoadError::Acl {
                    path: path.clone(),
                    source,
                };
                let acls = acl::parse_kafka_acls_list(&read(path)?).map_err(acl_err)?;
                Ok(acl::policy_for_principal(&acls, principal)?)
            }
            PolicySource::Strimzi { path, user } => load_strimzi(path, user.as_deref()),
            PolicySource::All(sources) => {
                let mut loaded = sources.iter().map(PolicySource::load);
                let first = loaded
                    .next()
                    .unwrap_or_else(|| Ok(ReplyTopicPolicy::deny_all()))?;
                loaded.try_fold(first, |policy, next| Ok(policy.and(next?)))
            }
        }
    }
}

#[cfg(feature = "strimzi")]
fn load_strimzi(path: &Path, user: Option<&str>) -> Result<ReplyTopicPolicy, PolicyLoadError> {
    let user = acl::parse_strimzi_kafka_user(&read(path)?, user).map_err(|source| {
        PolicyLoadError::Acl {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(acl::policy_for_principal(&user.acls, &user.principal)?)
}

#[cfg(not(feature = "strimzi"))]
fn load_strimzi(path: &Path, _user: Option<&str>) -> Result<ReplyTopicPolicy, PolicyLoadError> {
    Err(PolicyLoadError::Source(
        format!("strimzi:{}", path.display()),
        "this build lacks the `strimzi` feature",
    ))
}

fn read(path: &Path) -> Result<String, PolicyLoadError> {
    std::fs::read_to_string(path).map_err(|source| PolicyLoadError::Io {
        path: path.to_owned(),
        source,
    })
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Inline(text) => f.write_str(text),
            PolicySource::All(sources) => {
                for (i, source) in sources.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" & ")?;
                    }
                    write!(f, "{source}")?;
                }
                Ok(())
            }
            PolicySource::File(p) => write!(f, "file:{}", p.display()),
            PolicySource::KafkaAcls { path, principal } => {
                write!(f, "kafka-acls:{}#{principal}", path.display())
            }
            PolicySource::Strimzi { path, user: None } => write!(f, "strimzi:{}", path.display()),
            PolicySource::Strimzi {
                path,
                user: Some(u),
            } => write!(f, "strimzi:{}#{u}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for s in [
            "a*,!b",
            "file:/etc/p",
            "kafka-acls:/x/acls.txt#User:CN=a,OU=b",
            "strimzi:/u.yaml",
            "strimzi:/u.yaml#kyc",
            "strimzi:/u.yaml#kyc & replies-*",
        ] {
            assert_eq!(s.parse::<PolicySource>().expect(s).to_string(), s);
        }
    }

    #[test]
    fn incomplete_sources_are_refused() {
        for s in [
            "file:",
            "kafka-acls:/x",
            "kafka-acls:/x#kyc",
            "kafka-acls:#User:a",
            "strimzi:",
        ] {
            assert!(
                matches!(s.parse::<PolicySource>(), Err(PolicyLoadError::Source(..))),
                "{s}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let source: PolicySource = "file:/nonexistent/policy".parse().expect("source");
        assert!(matches!(source.load(), Err(PolicyLoadError::Io { .. })));
    }
}
