//! Reply-topic names, validated once and shared.
//!
//! Every request names its reply topic, and a service's requests name few: one per
//! requesting service, or per instance. Each thread keeps the last [`KEPT`] names it
//! validated; a name seen again is an `Arc` clone, with neither an allocation (which,
//! held until the reply is acknowledged, outlives glibc's per-thread caches with
//! hundreds of requests in flight) nor a second validation.

use std::cell::RefCell;
use std::sync::Arc;

use crate::topic::{TopicNameError, validate_topic_name};

/// Names kept per thread.
const KEPT: usize = 16;

/// The last names a thread validated, replaced oldest first.
struct Recent {
    names: Vec<Arc<str>>,
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

/// `name` as a valid topic name, shared with the requests that named it before.
pub(crate) fn topic_name(name: &[u8]) -> Result<Arc<str>, TopicNameError> {
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        if let Some(kept) = recent.names.iter().find(|n| n.as_bytes() == name) {
            return Ok(Arc::clone(kept));
        }
        let valid: Arc<str> = Arc::from(validate_topic_name(name)?);
        if recent.names.len() < KEPT {
            recent.names.push(Arc::clone(&valid));
        } else {
            let at = recent.next;
            recent.names[at] = Arc::clone(&valid);
            recent.next = (at + 1) % KEPT;
        }
        Ok(valid)
    })
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
        assert!(Arc::ptr_eq(&a, &again));
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
        assert!(!Arc::ptr_eq(&a, &fresh));
        assert_eq!(&*fresh, "replies-a");
    }
}
