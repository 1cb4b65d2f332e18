//! A thread's memo of what a part of a responder last worked out for a few reply
//! topics: the policy's verdict (`admitted_topics.rs`), the broker's answer
//! (`reply_topics.rs`).
//!
//! A service's requests name few reply topics (one per requesting service, or per
//! instance), and each thread reads a name it saw lately as the same shared
//! [`TopicName`] (see `topic_names.rs`). So a memo of the last [`KEPT`] topics, each
//! compared by identity, answers nearly every request without a lock or a hash: the
//! memo keeps its own clone of each name, so the names it compares with stay alive.
//! Each entry says whose it is (an [`Owner`]): the responders of a process, and the
//! parts of one, share a thread's memo of a kind but not its answers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::topic_names::TopicName;

/// Topics kept per thread.
pub(crate) const KEPT: usize = 8;

/// Whose an entry is: unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner(u64);

impl Owner {
    pub(crate) fn new() -> Self {
        static OWNERS: AtomicU64 = AtomicU64::new(0);
        Owner(OWNERS.fetch_add(1, Relaxed))
    }
}

/// The last [`KEPT`] values worked out, each with its owner and topic; a new one
/// goes over the oldest.
pub(crate) struct Recent<V> {
    entries: [Option<(Owner, TopicName, V)>; KEPT],
    next: usize,
}

impl<V: Copy> Recent<V> {
    pub(crate) const fn new() -> Self {
        Recent {
            entries: [const { None }; KEPT],
            next: 0,
        }
    }

    /// What `owner` worked out for this very `topic` lately, if kept.
    pub(crate) fn get(&self, owner: Owner, topic: &TopicName) -> Option<V> {
        self.entries
            .iter()
            .flatten()
            .find_map(|(o, t, v)| (*o == owner && t.same(topic)).then_some(*v))
    }

    /// Keeps `value` for `owner` and `topic`: over the entry it had, else over the
    /// oldest.
    pub(crate) fn put(&mut self, owner: Owner, topic: &TopicName, value: V) {
        let had = self
            .entries
            .iter_mut()
            .flatten()
            .find(|(o, t, _)| *o == owner && t.same(topic));
        match had {
            Some((_, _, v)) => *v = value,
            None => {
                self.entries[self.next] = Some((owner, topic.clone(), value));
                self.next = (self.next + 1) % KEPT;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_values_by_owner_and_topic() {
        let (a, b) = (Owner::new(), Owner::new());
        let mut recent = Recent::new();
        let replies = TopicName::valid("replies");
        assert_eq!(recent.get(a, &replies), None);
        recent.put(a, &replies, 1);
        assert_eq!(recent.get(a, &replies.clone()), Some(1));
        // Another owner's, or the same name read apart, is not this one.
        assert_eq!(recent.get(b, &replies), None);
        assert_eq!(recent.get(a, &TopicName::valid("replies")), None);
        // Put again, it changes in place (it does not take a second entry).
        recent.put(a, &replies, 1);
        // The oldest goes once KEPT others came after it.
        for i in 0..KEPT - 1 {
            recent.put(b, &TopicName::valid(&format!("t{i}")), 2);
        }
        assert_eq!(recent.get(a, &replies), Some(1));
        recent.put(b, &TopicName::valid("last"), 3);
        assert_eq!(recent.get(a, &replies), None);
    }
}
