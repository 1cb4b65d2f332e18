//! Per-partition offset tracking for commits when requests settle out of order.
//!
//! A request is *settled* once its outcome (reply, error reply, or deliberate no-reply)
//! is final: for replies, once the broker acknowledged them. The offset committed for
//! a partition is its *watermark*: the lowest offset received and not yet settled, or,
//! when everything received is settled, one past the highest offset received. Offsets
//! that never arrive (transaction markers, compacted records) are never waited for.

use std::collections::VecDeque;

/// What to do with a received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// Handle it; settle it later.
    Handle,
    /// A previous owner already settled it (commit metadata): recorded as settled,
    /// do not handle it again.
    AlreadySettled,
    /// Not above the offsets received so far: a redelivery, ignored.
    Redelivered,
}

/// Tracks the received and settled offsets of one partition.
#[derive(Debug, Default, Clone)]
pub(crate) struct WatermarkTracker {
    /// Offsets received and not yet below the watermark, in increasing order, each
    /// with whether it is settled. The front, if any, is unsettled.
    window: VecDeque<(i64, bool)>,
    /// One past the highest offset received.
    next: Option<i64>,
    /// The last offset handed out by [`take_commit`](Self::take_commit).
    committed: Option<i64>,
    /// How many entries of `window` are unsettled.
    unsettled: usize,
    /// Offsets a previous owner settled above its committed offset (inclusive,
    /// ascending ranges), from the commit metadata.
    known_settled: VecDeque<(i64, i64)>,
    /// Bumped on every settle: the settled set above the watermark may have changed.
    version: u64,
    /// `version` at the last [`take_commit`](Self::take_commit).
    committed_version: u64,
}

impl WatermarkTracker {
    /// An empty tracker.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records offsets a previous owner already settled (ascending, inclusive ranges):
    /// when they arrive, [`receive`](Self::receive) reports them as
    /// [`Received::AlreadySettled`].
    pub(crate) fn set_known_settled(&mut self, ranges: impl IntoIterator<Item = (i64, i64)>) {
        self.known_settled = ranges.into_iter().collect();
    }

    /// Records a received offset and says what to do with it.
    pub(crate) fn receive(&mut self, offset: i64) -> Received {
        if self.next.is_some_and(|next| offset < next) {
            return Received::Redelivered;
        }
        self.next = Some(offset + 1);
        while self
            .known_settled
            .front()
            .is_some_and(|(_, hi)| *hi < offset)
        {
            self.known_settled.pop_front();
        }
        if self
            .known_settled
            .front()
            .is_some_and(|(lo, _)| *lo <= offset)
        {
            // Settled before: nothing to wait for, so it never holds the watermark.
            if !self.window.is_empty() {
                self.window.push_back((offset, true));
            }
            self.version += 1;
            return Received::AlreadySettled;
        }
        self.window.push_back((offset, false));
        self.unsettled += 1;
        Received::Handle
    }

    /// Marks a received offset settled. Returns `false` when the offset is not pending
    /// (never received, or already settled).
    pub(crate) fn settle(&mut self, offset: i64) -> bool {
        let Some(i) = self.position(offset) else {
            return false;
        };
        if std::mem::replace(&mut self.window[i].1, true) {
            return false;
        }
        self.unsettled -= 1;
        self.version += 1;
        while self.window.front().is_some_and(|(_, settled)| *settled) {
            self.window.pop_front();
        }
        true
    }

    /// Where `offset` is in the window: found at once when the offsets before it are
    /// consecutive (they are, unless the partition skips offsets: transaction markers,
    /// compaction), else by bisection.
    fn position(&self, offset: i64) -> Option<usize> {
        let (first, _) = *self.window.front()?;
        let guess = usize::try_from(offset.checked_sub(first)?).ok()?;
        if self.window.get(guess).is_some_and(|(o, _)| *o == offset) {
            return Some(guess);
        }
        self.window.binary_search_by_key(&offset, |(o, _)| *o).ok()
    }

    /// The offset to commit: the lowest unsettled offset, or one past the highest
    /// received. `None` before anything was received.
    pub(crate) fn watermark(&self) -> Option<i64> {
        match self.window.front() {
            Some((offset, _)) => Some(*offset),
            None => self.next,
        }
    }

    /// How many received offsets are not settled yet.
    pub(crate) fn unsettled(&self) -> usize {
        self.unsettled
    }

    /// Offsets above the watermark that are already settled, in increasing order.
    ///
    /// This includes offsets a previous owner settled that have not arrived yet, so
    /// the next owner inherits them too.
    pub(crate) fn settled_above_watermark(&self) -> impl Iterator<Item = i64> + '_ {
        let next = self.next.unwrap_or(i64::MIN);
        let received = self.window.iter().filter(|(_, s)| *s).map(|(o, _)| *o);
        let inherited = self
            .known_settled
            .iter()
            .flat_map(move |&(lo, hi)| lo.max(next)..=hi);
        received.chain(inherited)
    }

    /// The watermark and its commit metadata (see [`crate::offset_metadata`]), if
    /// either changed since the last call; remembers them as committed.
    pub(crate) fn take_commit(&mut self) -> Option<(i64, String)> {
        let watermark = self.watermark()?;
        if self.committed == Some(watermark) && self.committed_version == self.version {
            return None;
        }
        self.committed = Some(watermark);
        self.committed_version = self.version;
        self.commit()
    }

    /// The watermark and its commit metadata, whether or not they changed. `None`
    /// before anything was received: there is nothing to commit.
    pub(crate) fn commit(&self) -> Option<(i64, String)> {
        let watermark = self.watermark()?;
        let metadata = crate::offset_metadata::encode(watermark, self.settled_above_watermark());
        Some((watermark, metadata))
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
            assert_eq!(t.receive(o), Received::Handle);
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
        assert_eq!(t.take_commit(), Some((15, String::new())));
        assert_eq!(t.take_commit(), None);
        assert_eq!(t.receive(14), Received::Redelivered);
    }

    #[test]
    fn metadata_tracks_settled_offsets_above_the_watermark() {
        let mut t = WatermarkTracker::new();
        for o in 0..6 {
            t.receive(o);
        }
        assert_eq!(t.take_commit(), Some((0, String::new())));
        t.settle(2);
        t.settle(3);
        t.settle(5);
        // The watermark did not move, but the metadata did: commit again.
        assert_eq!(t.take_commit(), Some((0, "kr1@0:2-3,5".to_owned())));
        assert_eq!(t.take_commit(), None);
    }

    #[test]
    fn inherited_settled_offsets_are_passed_on() {
        let mut t = WatermarkTracker::new();
        t.set_known_settled(crate::offset_metadata::decode(10, b"kr1@10:2-3,5"));
        assert_eq!(t.receive(10), Received::Handle);
        // Nothing of the inheritance has arrived yet: it is passed on unchanged.
        assert_eq!(t.commit(), Some((10, "kr1@10:2-3,5".to_owned())));
        assert_eq!(t.receive(11), Received::Handle);
        assert_eq!(t.receive(12), Received::AlreadySettled);
        assert_eq!(t.commit(), Some((10, "kr1@10:2-3,5".to_owned())));
    }

    #[test]
    fn known_settled_offsets_are_skipped_by_the_next_owner() {
        let mut t = WatermarkTracker::new();
        t.set_known_settled(crate::offset_metadata::decode(10, b"kr1@10:2-3,5"));
        let got: Vec<_> = (10..17).map(|o| t.receive(o)).collect();
        use Received::{AlreadySettled as S, Handle as H};
        assert_eq!(got, vec![H, H, S, S, H, S, H]);
        assert_eq!(t.unsettled(), 4);
        for o in [10, 11, 14, 16] {
            assert!(t.settle(o));
        }
        assert_eq!(t.watermark(), Some(17));
    }

    /// Inherited settled offsets that start where the watermark now stands are
    /// committed as a range at delta 0, which the next owner must read back.
    #[test]
    fn inherited_offsets_at_the_watermark_survive_the_commit() {
        let mut t = WatermarkTracker::new();
        t.set_known_settled(vec![(11, 12)]);
        assert_eq!(t.receive(10), Received::Handle);
        assert!(t.settle(10));
        let (c, md) = t.commit().expect("commit");
        assert_eq!(c, 11);
        assert_eq!(
            crate::offset_metadata::decode(c, md.as_bytes()),
            vec![(11, 12)]
        );
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
        /// The committed offset never passes an unsettled request; a new owner that
        /// resumes from the commit skips exactly the offsets the metadata lists; and once
        /// everything is settled the commit covers every offset received.
        #[test]
        fn watermark_is_safe_and_live(steps in proptest::collection::vec(step(), 1..300)) {
            let mut t = WatermarkTracker::new();
            let mut log: Vec<i64> = Vec::new(); // offsets present in the partition
            let mut unsettled: Vec<i64> = Vec::new();
            let mut committed: (i64, String) = (0, String::new());
            for s in steps {
                match s {
                    Step::Receive(gap) => {
                        let o = log.last().map_or(0, |l| l + 1) + i64::from(gap);
                        log.push(o);
                        prop_assert_eq!(t.receive(o), Received::Handle);
                        unsettled.push(o);
                    }
                    Step::Settle(n) if !unsettled.is_empty() => {
                        let o = unsettled.remove(n % unsettled.len());
                        prop_assert!(t.settle(o));
                    }
                    Step::Settle(_) => {}
                    Step::Reassign => {
                        // The new owner reads from the committed offset, with the
                        // committed metadata; in-flight work of the old owner is lost.
                        let (c, md) = committed.clone();
                        let skip = crate::offset_metadata::decode(c, md.as_bytes());
                        t = WatermarkTracker::new();
                        t.set_known_settled(skip.iter().copied());
                        unsettled.clear();
                        for &o in log.iter().filter(|o| **o >= c) {
                            let listed = skip.iter().any(|(a, b)| (*a..=*b).contains(&o));
                            let want = if listed { Received::AlreadySettled } else { Received::Handle };
                            prop_assert_eq!(t.receive(o), want);
                            if !listed {
                                unsettled.push(o);
                            }
                        }
                    }
                }
                if let Some((c, md)) = t.take_commit() {
                    prop_assert!(unsettled.iter().all(|o| *o >= c), "committed {c} past {unsettled:?}");
                    for (a, b) in crate::offset_metadata::decode(c, md.as_bytes()) {
                        prop_assert!(unsettled.iter().all(|o| !(a..=b).contains(o)), "metadata lists an unsettled offset");
                    }
                    committed = (c, md);
                }
                prop_assert_eq!(t.unsettled(), unsettled.len());
            }
            for o in std::mem::take(&mut unsettled) {
                prop_assert!(t.settle(o));
            }
            if let Some(c) = t.take_commit() {
                committed = c;
            }
            if let Some(last) = log.last() {
                prop_assert_eq!(committed.0, last + 1);
            }
        }
    }
}
