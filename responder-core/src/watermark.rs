//! Per-partition offset tracking for commits when requests settle out of order.
//!
//! A request is *settled* once its outcome (reply, error reply, or deliberate no-reply)
//! is final: for replies, once the broker acknowledged them. The offset committed for
//! a partition is its *watermark*: the lowest offset received and not yet settled, or,
//! when everything received is settled, one past the highest offset received. Offsets
//! that never arrive (transaction markers, compacted records) are never waited for.

use std::collections::VecDeque;

/// Tracks the received and settled offsets of one partition.
#[derive(Debug, Default, Clone)]
pub struct WatermarkTracker {
    /// Offsets received and not yet below the watermark, in increasing order, each
    /// with whether it is settled. The front, if any, is unsettled.
    window: VecDeque<(i64, bool)>,
    /// One past the highest offset received.
    next: Option<i64>,
    /// The last offset handed out by [`take_commit`](Self::take_commit).
    committed: Option<i64>,
    /// How many entries of `window` are unsettled.
    unsettled: usize,
}

impl WatermarkTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a received offset. Returns `false` (and records nothing) when the offset
    /// is not above every offset received so far: a redelivery, handled elsewhere.
    pub fn receive(&mut self, offset: i64) -> bool {
        if self.next.is_some_and(|next| offset < next) {
            return false;
        }
        self.window.push_back((offset, false));
        self.unsettled += 1;
        self.next = Some(offset + 1);
        true
    }

    /// Marks a received offset settled. Returns `false` when the offset is not pending
    /// (never received, or already settled).
    pub fn settle(&mut self, offset: i64) -> bool {
        let Ok(i) = self.window.binary_search_by_key(&offset, |(o, _)| *o) else {
            return false;
        };
        if std::mem::replace(&mut self.window[i].1, true) {
            return false;
        }
        self.unsettled -= 1;
        while self.window.front().is_some_and(|(_, settled)| *settled) {
            self.window.pop_front();
        }
        true
    }

    /// The offset to commit: the lowest unsettled offset, or one past the highest
    /// received. `None` before anything was received.
    pub fn watermark(&self) -> Option<i64> {
        match self.window.front() {
            Some((offset, _)) => Some(*offset),
            None => self.next,
        }
    }

    /// How many received offsets are not settled yet.
    pub fn unsettled(&self) -> usize {
        self.unsettled
    }

    /// Offsets above the watermark that are already settled, in increasing order.
    pub fn settled_above_watermark(&self) -> impl Iterator<Item = i64> + '_ {
        self.window.iter().filter(|(_, s)| *s).map(|(o, _)| *o)
    }

    /// The watermark, if it moved since the last call; remembers it as committed.
    pub fn take_commit(&mut self) -> Option<i64> {
        let watermark = self.watermark()?;
        if self.committed == Some(watermark) {
            return None;
        }
        self.committed = Some(watermark);
        Some(watermark)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn out_of_order_settles() {
        let mut t = WatermarkTracker::new();
        assert_eq!(t.watermark(), None);
        for o in [10, 11, 13, 14] {
            assert!(t.receive(o));
        }
        assert_eq!(t.watermark(), Some(10));
        assert!(t.settle(11));
        assert_eq!(t.watermark(), Some(10));
        assert_eq!(t.settled_above_watermark().collect::<Vec<_>>(), vec![11]);
        assert!(t.settle(10));
        assert_eq!(t.watermark(), Some(13));
        assert!(t.settle(14));
        assert!(!t.settle(14));
        assert!(!t.settle(12));
        assert!(t.settle(13));
        assert_eq!(t.watermark(), Some(15));
        assert_eq!(t.take_commit(), Some(15));
        assert_eq!(t.take_commit(), None);
        assert!(!t.receive(14));
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Receive the next offset after a gap of this many.
        Receive(u8),
        /// Settle the n-th (mod count) unsettled offset.
        Settle(usize),
        /// Revoke and re-assign: a fresh tracker resumes from the committed offset.
        Reassign,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..4).prop_map(Step::Receive),
            4 => any::<usize>().prop_map(Step::Settle),
            1 => Just(Step::Reassign),
        ]
    }

    proptest! {
        /// The committed offset never passes an unsettled request, and once everything
        /// is settled it covers every settled offset.
        #[test]
        fn watermark_is_safe_and_live(steps in proptest::collection::vec(step(), 1..300)) {
            let mut t = WatermarkTracker::new();
            let mut log_end: i64 = 0; // next offset the partition will hold
            let mut unsettled: Vec<i64> = Vec::new();
            let mut committed: i64 = 0;
            for s in steps {
                match s {
                    Step::Receive(gap) => {
                        let o = log_end + i64::from(gap);
                        log_end = o + 1;
                        prop_assert!(t.receive(o));
                        unsettled.push(o);
                    }
                    Step::Settle(n) if !unsettled.is_empty() => {
                        let o = unsettled.remove(n % unsettled.len());
                        prop_assert!(t.settle(o));
                    }
                    Step::Settle(_) => {}
                    Step::Reassign => {
                        // The new owner re-reads everything from the committed offset:
                        // whatever was unsettled comes back.
                        t = WatermarkTracker::new();
                        let redo = std::mem::take(&mut unsettled);
                        log_end = committed;
                        for o in redo.into_iter().filter(|o| *o >= committed) {
                            prop_assert!(t.receive(o));
                            unsettled.push(o);
                            log_end = o + 1;
                        }
                    }
                }
                if let Some(c) = t.take_commit() {
                    prop_assert!(unsettled.iter().all(|o| *o >= c), "committed {c} past {unsettled:?}");
                    committed = c;
                }
                let pending = unsettled.len();
                prop_assert_eq!(t.unsettled(), pending);
            }
            for o in std::mem::take(&mut unsettled) {
                prop_assert!(t.settle(o));
            }
            if let Some(c) = t.take_commit() {
                committed = c;
            }
            prop_assert_eq!(t.watermark().unwrap_or(committed), committed);
            if t.watermark().is_some() {
                prop_assert_eq!(committed, log_end);
            }
        }
    }
}
