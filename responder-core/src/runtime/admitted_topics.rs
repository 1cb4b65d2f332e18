//! Each thread's memo of the reply topics it judged lately by the responder's own rules
//! (rules 1 and 2 of `admission.rs`: internal topics, request topics, the dead-letter
//! topic, the reply-topic policy).
//!
//! Those rules depend on nothing but the topic for a responder's whole life: a request
//! naming a topic its thread judged lately (see `recent_topics.rs`) reuses that verdict
//! instead of matching the policy and the routes again (~150 instructions a request
//! under callgrind).

use std::cell::RefCell;

use super::recent_topics::{Owner, Recent};
use crate::topic_names::TopicName;

/// One responder's handle on the memo (the memo itself is per thread, shared by the
/// responders of the process).
#[derive(Debug)]
pub(crate) struct AdmittedTopics {
    owner: Owner,
}

thread_local! {
    static VERDICTS: RefCell<Recent<bool>> = const { RefCell::new(Recent::new()) };
}

impl AdmittedTopics {
    pub(crate) fn new() -> Self {
        AdmittedTopics {
            owner: Owner::new(),
        }
    }

    /// Whether `topic` is admitted: `judge`'s verdict, or the one this thread got for
    /// the same topic and responder lately.
    pub(crate) fn admitted(&self, topic: &TopicName, judge: impl FnOnce() -> bool) -> bool {
        let known = VERDICTS.with_borrow(|v| v.get(self.owner, topic));
        known.unwrap_or_else(|| {
            let verdict = judge();
            VERDICTS.with_borrow_mut(|v| v.put(self.owner, topic, verdict));
            verdict
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::super::recent_topics::KEPT;
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
