//! Topic names validated once and shared: [`TopicName`], and each thread's cache of
//! the reply topics it read last.
//!
//! Every request names its reply topic, and a service's requests name few: one per
//! requesting service, or per instance. Each thread keeps the last [`KEPT`] names it
//! validated; a name seen again is an `Arc` clone, with neither an allocation (which,
//! held until the reply is acknowledged, outlives glibc's per-thread caches with
//! hundreds of requests in flight) nor a second validation.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::topic::{TopicNameError, validate_topic_name};

/// A topic name that follows Kafka's naming rules, shared (cloning it copies a
/// pointer). It reads as a `&str` and compares with strings.
///
/// ```
/// use responder_core::TopicName;
///
/// let name = TopicName::new("replies.kyc-1")?;
/// assert_eq!(name, "replies.kyc-1");
/// assert_eq!(name.len(), 13);
/// assert!(TopicName::new("no spaces").is_err());
/// # Ok::<_, responder_core::topic::TopicNameError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    /// `name`, once checked against Kafka's naming rules.
    pub fn new(name: &str) -> Result<Self, TopicNameError> {
        Ok(TopicName(Arc::from(validate_topic_name(name.as_bytes())?)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name the caller knows to be valid (the crate's own topics and tests).
    pub(crate) fn valid(name: &str) -> Self {
        TopicName(Arc::from(name))
    }

    /// Whether `other` is this very name (a clone of it), not one read apart.
    pub(crate) fn same(&self, other: &TopicName) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for TopicName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> Self {
        name.0.to_string()
    }
}

impl From<TopicName> for Arc<str> {
    fn from(name: TopicName) -> Self {
        name.0
    }
}

impl PartialEq<str> for TopicName {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for TopicName {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for TopicName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<TopicName> for str {
    fn eq(&self, other: &TopicName) -> bool {
        *self == *other.0
    }
}

impl PartialEq<TopicName> for &str {
    fn eq(&self, other: &TopicName) -> bool {
        **self == *other.0
    }
}

impl PartialEq<TopicName> for String {
    fn eq(&self, other: &TopicName) -> bool {
        **self == *other.0
    }
}

/// Names kept per thread.
const KEPT: usize = 16;

/// The last names a thread validated, replaced oldest first.
struct Recent {
    names: Vec<TopicName>,
    /// Where the next new name goes once `names` is full.
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent {
            names: Vec::new(),
            next: 0,
        })
    };
}

/// `name` as a valid topic name, shared with the requests that named it before. (On
/// a thread whose locals are being destroyed, validated without the cache.)
pub(crate) fn topic_name(name: &[u8]) -> Result<TopicName, TopicNameError> {
    let fresh = || validate_topic_name(name).map(TopicName::valid);
    RECENT
        .try_with(|recent| {
            let mut recent = recent.borrow_mut();
            if let Some(kept) = recent.names.iter().find(|n| n.as_bytes() == name) {
                return Ok(kept.clone());
            }
            let valid = fresh()?;
            if recent.names.len() < KEPT {
                recent.names.push(valid.clone());
            } else {
                let at = recent.next;
                recent.names[at] = valid.clone();
                recent.next = (at + 1) % KEPT;
            }
            Ok(valid)
        })
        .unwrap_or_else(|_| fresh())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name seen again is the same allocation; an invalid name is refused each time
    /// (never kept); past `KEPT` names the oldest make room, and every name still
    /// reads back as given.
    #[test]
    fn names_are_shared_validated_and_bounded() {
        let a = topic_name(b"replies-a").expect("valid");
        let again = topic_name(b"replies-a").expect("valid");
        assert!(Arc::ptr_eq(&a.0, &again.0));
        for _ in 0..2 {
            assert!(matches!(
                topic_name(b"bad name"),
                Err(TopicNameError::IllegalByte { index: 3, .. })
            ));
        }
        assert_eq!(topic_name(b"").expect_err("empty"), TopicNameError::Empty);
        let names: Vec<String> = (0..KEPT * 2).map(|i| format!("r-{i}")).collect();
        for n in &names {
            assert_eq!(&*topic_name(n.as_bytes()).expect("valid"), n.as_str());
        }
        RECENT.with(|r| assert_eq!(r.borrow().names.len(), KEPT));
        // The first name was replaced: it is validated and allocated again.
        let fresh = topic_name(b"replies-a").expect("valid");
        assert!(!Arc::ptr_eq(&a.0, &fresh.0));
        assert_eq!(fresh, "replies-a");
        assert_eq!("replies-a", fresh);
        assert_eq!(String::from(fresh.clone()), "replies-a");
        assert_eq!(format!("{fresh} {fresh:?}"), "replies-a \"replies-a\"");
    }
}
