//! Lanes: requests that must run one after another (same partition, or same key) wait
//! in a lane; requests in different lanes run concurrently.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use foldhash::HashMap;

use crate::ordering::HandlingOrder;

/// Which lane a request belongs to; `None` means it may run at once.
pub(crate) fn lane_of(ordering: HandlingOrder, key: Option<&[u8]>) -> Option<u64> {
    match (ordering, key) {
        (HandlingOrder::Partition, _) => Some(0),
        (HandlingOrder::Key, Some(key)) => {
            // One seed for the process: equal keys must share a lane.
            static LANES: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);
            Some(LANES.hash_one(key))
        }
        (HandlingOrder::Key, None) | (HandlingOrder::Unordered, _) => None,
    }
}

/// The lanes of one partition. A lane is busy while it is present in the map; its
/// queue holds the requests waiting behind the running one.
#[derive(Debug)]
pub(crate) struct Lanes<J> {
    busy: HashMap<u64, VecDeque<J>>,
}

impl<J> Default for Lanes<J> {
    fn default() -> Self {
        Lanes {
            busy: HashMap::default(),
        }
    }
}

impl<J> Lanes<J> {
    /// Takes `lane` for a job if it is idle (`true`: run the job now, the lane is now
    /// busy); `false` when a job runs in it: [`wait`](Self::wait) queues the job then.
    /// (The job is not passed in and back: a request's job is a few hundred bytes,
    /// copied at each move.)
    pub(crate) fn try_take(&mut self, lane: u64) -> bool {
        match self.busy.entry(lane) {
            Entry::Vacant(v) => {
                v.insert(VecDeque::new());
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    /// Queues `job` behind the one running in its busy lane.
    pub(crate) fn wait(&mut self, lane: u64, job: J) {
        self.busy.entry(lane).or_default().push_back(job);
    }

    /// The running job of `lane` finished: returns the next job to run in it, if any.
    pub(crate) fn release(&mut self, lane: u64) -> Option<J> {
        let Entry::Occupied(mut o) = self.busy.entry(lane) else {
            return None;
        };
        match o.get_mut().pop_front() {
            Some(job) => Some(job),
            None => {
                o.remove();
                None
            }
        }
    }

    /// Drops every waiting job (their offsets stay unsettled, so they are not
    /// committed) and forgets the lanes.
    pub(crate) fn clear(&mut self) {
        self.busy.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_runs_one_at_a_time_in_order() {
        let mut lanes = Lanes::default();
        // As the ledger offers a job: run now if its lane is taken, else wait.
        let mut submit = |lane, job| {
            if lanes.try_take(lane) {
                Some(job)
            } else {
                lanes.wait(lane, job);
                None
            }
        };
        assert_eq!(submit(1, "a"), Some("a"));
        assert_eq!(submit(1, "b"), None);
        assert_eq!(submit(2, "x"), Some("x"));
        assert_eq!(submit(1, "c"), None);
        assert_eq!(lanes.release(1), Some("b"));
        assert_eq!(lanes.release(1), Some("c"));
        assert_eq!(lanes.release(1), None);
        assert!(lanes.try_take(1), "an idle lane is taken again");
    }

    #[test]
    fn lane_choice() {
        assert_eq!(lane_of(HandlingOrder::Partition, Some(b"k")), Some(0));
        assert_eq!(lane_of(HandlingOrder::Unordered, Some(b"k")), None);
        assert_eq!(lane_of(HandlingOrder::Key, None), None);
        assert_eq!(
            lane_of(HandlingOrder::Key, Some(b"k")),
            lane_of(HandlingOrder::Key, Some(b"k"))
        );
        assert_ne!(
            lane_of(HandlingOrder::Key, Some(b"k1")),
            lane_of(HandlingOrder::Key, Some(b"k2"))
        );
    }
}
