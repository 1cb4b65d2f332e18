//! Each thread's memo of the last reply topics it judged by the responder's own rules
//! (rules 1 and 2 of `admission.rs`: internal topics, request topics, the dead-letter
//! topic, the reply-topic policy).
//!
//! Those rules depend on nothing but the topic for a responder's whole life, and a
//! service's requests name few reply topics (one per requesting service, or per
//! instance): a request that names one of the [`KEPT`] topics its thread judged last
//! reuses that verdict instead of matching the policy and the routes again (~150
//! instructions a request under callgrind). The topic is compared
//! by identity: a thread reads a name it saw recently as the same shared
//! [`TopicName`] (see `topic_names.rs`), and the memo keeps its own clone, so the
//! name it compares with stays alive.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::topic_names::TopicName;

/// One responder's handle on the memo (the memo itself is per thread, shared by the
/// responders of the process).
#[derive(Debug)]
pub(crate) struct AdmittedTopics {
    /// Tells this responder's verdicts from another's.
    owner: u64,
}

/// Verdicts kept per thread.
const KEPT: usize = 8;

/// A verdict: whose, on which topic, and what.
type Verdict = (u64, TopicName, bool);

/// This thread's last verdicts, and where the next one goes (over the oldest).
struct Last {
    verdicts: [Option<Verdict>; KEPT],
    next: usize,
}

thread_local! {
    static LAST: RefCell<Last> = const {
        RefCell::new(Last {
            verdicts: [const { None }; KEPT],
            next: 0,
        })
    };
}

impl AdmittedTopics {
    pub(crate) fn new() -> Self {
        static OWNERS: AtomicU64 = AtomicU64::new(0);
        AdmittedTopics {
            owner: OWNERS.fetch_add(1, Relaxed),
        }
    }

    /// Whether `topic` is admitted: `judge`'s verdict, or the one this thread got for
    /// the same topic and responder lately.
    pub(crate) fn admitted(&self, topic: &TopicName, judge: impl FnOnce() -> bool) -> bool {
        let known = LAST.with_borrow(|last| {
            last.verdicts
                .iter()
                .flatten()
                .find_map(|(owner, t, verdict)| {
                    (*owner == self.owner && t.same(topic)).then_some(*verdict)
                })
        });
        known.unwrap_or_else(|| {
            let verdict = judge();
            LAST.with_borrow_mut(|last| {
                let at = last.next;
                last.verdicts[at] = Some((self.owner, topic.clone(), verdict));
                last.next = (at + 1) % KEPT;
            });
            verdict
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Counts the verdicts `judge` gives.
    fn judged(memo: &AdmittedTopics, topic: &TopicName, verdict: bool, count: &Cell<u32>) -> bool {
        memo.admitted(topic, || {
            count.set(count.get() + 1);
            verdict
        })
    }

    #[test]
    fn a_verdict_is_reused_for_the_same_topic_and_responder_only() {
        let (a, b) = (AdmittedTopics::new(), AdmittedTopics::new());
        let replies = TopicName::valid("replies");
        let count = Cell::new(0);
        assert!(judged(&a, &replies, true, &count));
        assert!(judged(&a, &replies.clone(), false, &count), "reused");
        assert_eq!(count.get(), 1);
        // Another responder judges for itself (its policy may differ).
        assert!(!judged(&b, &replies, false, &count));
        assert_eq!(count.get(), 2);
        // Another topic, even one with the same name read apart, is judged.
        let other = TopicName::valid("other");
        assert!(!judged(&b, &other, false, &count));
        assert!(judged(&b, &TopicName::valid("other"), true, &count));
        assert_eq!(count.get(), 4);
        // The last KEPT verdicts are kept: `replies` by `a` is still known...
        assert!(judged(&a, &replies, false, &count));
        assert_eq!(count.get(), 4);
        // ...until KEPT others were judged since.
        for i in 0..KEPT {
            judged(&a, &TopicName::valid(&format!("t{i}")), true, &count);
        }
        assert!(judged(&a, &replies, true, &count));
        assert_eq!(count.get(), 5 + KEPT as u32);
    }

    /// Each thread has its own memo.
    #[test]
    fn threads_judge_apart() {
        let memo = AdmittedTopics::new();
        let replies = TopicName::valid("replies");
        let count = Cell::new(0);
        assert!(judged(&memo, &replies, true, &count));
        std::thread::scope(|s| {
            s.spawn(|| {
                let count = Cell::new(0);
                assert!(!judged(&memo, &replies, false, &count));
                assert_eq!(count.get(), 1);
            });
        });
        assert!(judged(&memo, &replies, false, &count));
        assert_eq!(count.get(), 1);
    }
}
