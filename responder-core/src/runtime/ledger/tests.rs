use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::offset_metadata::decode;

type L = Ledger<Place>;

fn limits(max_in_flight: usize, per_partition: usize) -> Limits {
    Limits {
        max_in_flight,
        per_partition,
        max_bytes: usize::MAX,
    }
}

/// A record of no size at `offset`, in `lane`.
fn arrival(offset: i64, lane: Option<u64>) -> Arrival {
    Arrival {
        offset,
        lane,
        bytes: 0,
    }
}

fn topic() -> Arc<str> {
    Arc::from("requests")
}

fn receive(
    l: &mut L,
    p: i32,
    offset: i64,
    lane: Option<u64>,
    out: &mut Vec<Command<Place>>,
) -> Intake {
    l.receive(&topic(), p, arrival(offset, lane), |place, _| place, out)
}

fn started(out: &mut Vec<Command<Place>>) -> Vec<Place> {
    let mut jobs = Vec::new();
    out.retain(|c| match c {
        Command::Start(p) => {
            jobs.push(p.clone());
            false
        }
        _ => true,
    });
    jobs
}

#[test]
fn a_lane_runs_in_order_and_the_partition_pauses_for_its_fair_share_then_resumes() {
    // Two partitions share 4 slots: a fair share of 2 each.
    let mut l = L::new(limits(4, 4));
    l.assign(vec![(topic(), 0, vec![]), (topic(), 1, vec![])]);
    let mut out = Vec::new();
    assert_eq!(receive(&mut l, 0, 0, Some(7), &mut out), Intake::Accepted);
    let first = started(&mut out);
    assert_eq!(first.len(), 1);
    // Two more of the same lane: they wait, and two waiting is the fair share.
    receive(&mut l, 0, 1, Some(7), &mut out);
    assert!(out.is_empty());
    receive(&mut l, 0, 2, Some(7), &mut out);
    assert_eq!(out, vec![Command::Pause(topic(), 0)]);
    out.clear();
    // The first is handled: the next of its lane starts; one is still waiting, half
    // the fair share: the partition resumes.
    l.handled(&first[0], &mut out);
    let second = started(&mut out);
    assert_eq!(second.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1]);
    assert_eq!(out, vec![Command::Resume(topic(), 0)]);
    out.clear();
    l.handled(&second[0], &mut out);
    let third = started(&mut out);
    assert_eq!(third[0].offset, 2);
    assert!(out.is_empty(), "{out:?}");
}

/// The fair share holds for bytes too: with a byte bound that binds before the count
/// one, a partition whose requests wait for a busy lane is paused once they hold its
/// share of the bytes (half the bound with two partitions), not only of the slots, and
/// resumed when they are down to half of it.
#[test]
fn a_partition_pauses_for_its_fair_share_of_the_bytes() {
    let mut l = L::new(Limits {
        max_bytes: 1000,
        ..limits(1024, 1024)
    });
    l.assign(vec![(topic(), 0, vec![]), (topic(), 1, vec![])]);
    let mut out = Vec::new();
    let record = |offset| Arrival {
        offset,
        lane: Some(7),
        bytes: 200,
    };
    l.receive(&topic(), 0, record(0), |p, _| p, &mut out);
    let first = started(&mut out);
    // Waiting behind the first: 200, then 400 bytes, below the share of 500.
    l.receive(&topic(), 0, record(1), |p, _| p, &mut out);
    l.receive(&topic(), 0, record(2), |p, _| p, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // 600 bytes waiting: over the share, with 3 requests of the 512 allowed.
    l.receive(&topic(), 0, record(3), |p, _| p, &mut out);
    assert_eq!(out, vec![Command::Pause(topic(), 0)]);
    out.clear();
    // One starts: 400 bytes wait, not yet half the share.
    l.handled(&first[0], &mut out);
    let second = started(&mut out);
    assert!(out.is_empty(), "{out:?}");
    // Another: 200 bytes wait, at most half: the partition resumes.
    l.handled(&second[0], &mut out);
    assert_eq!(started(&mut out).len(), 1);
    assert_eq!(out, vec![Command::Resume(topic(), 0)]);
}

/// The stall of the old dispatcher: requests whose replies failed stayed counted as
/// waiting forever, so a partition paused for its fair share never resumed. Requests
/// in the handler or retrying their reply are running, not waiting, and a paused
/// partition resumes once its queue is down.
#[test]
fn requests_retrying_their_reply_do_not_keep_a_partition_paused() {
    let mut l = L::new(limits(4, 4));
    l.assign(vec![(topic(), 0, vec![]), (topic(), 1, vec![])]);
    let mut out = Vec::new();
    for o in 0..3 {
        receive(&mut l, 0, o, Some(1), &mut out);
    }
    let running = started(&mut out);
    assert_eq!(out, vec![Command::Pause(topic(), 0)]);
    out.clear();
    // Handled: the reply is with the producer, and keeps failing (retried in its task,
    // no event here). The lane moves on all the same.
    l.handled(&running[0], &mut out);
    let next = started(&mut out);
    l.handled(&next[0], &mut out);
    let last = started(&mut out);
    assert_eq!(out, vec![Command::Resume(topic(), 0)]);
    // Nothing settled: the watermark stays, nothing is committed past offset 0.
    assert_eq!(l.commits(false)[0].offset, 0);
    // Once the broker is back every reply settles and the commit reaches the end.
    for p in [&running[0], &next[0], &last[0]] {
        assert!(l.finished(p, true, &mut out));
    }
    assert_eq!(l.commits(false)[0].offset, 3);
}

#[test]
fn a_revocation_waits_for_its_running_requests_until_its_deadline() {
    let now = Instant::now();
    let mut l = L::new(limits(8, 8));
    l.assign(vec![(topic(), 0, vec![])]);
    let mut out = Vec::new();
    let mut cancels = Vec::new();
    for o in 0..3 {
        l.receive(
            &topic(),
            0,
            arrival(o, None),
            |p, c| {
                cancels.push(c);
                p
            },
            &mut out,
        );
    }
    let jobs = started(&mut out);
    l.handled(&jobs[1], &mut out);
    l.finished(&jobs[1], true, &mut out);
    l.revoke(1, vec![(topic(), 0)], now + Duration::from_secs(5));
    assert!(l.due_revokes(now).is_empty(), "two requests still run");
    l.handled(&jobs[0], &mut out);
    l.finished(&jobs[0], true, &mut out);
    let done = l.due_revokes(now + Duration::from_secs(5));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].abandoned, vec![(topic(), 0, 1)]);
    // 0 and 1 settled, 2 abandoned: commit 2.
    assert_eq!(done[0].commits[0].offset, 2);
    assert!(
        cancels.iter().all(Cancel::fired),
        "the abandoned request is cancelled"
    );
    // Its late report finds no book and changes nothing.
    assert!(l.finished(&jobs[2], false, &mut out));
    assert!(l.commits(true).is_empty());
}

#[test]
fn nothing_is_committed_after_the_final_snapshot() {
    let now = Instant::now();
    let mut l = L::new(limits(8, 8));
    l.assign(vec![(topic(), 0, vec![])]);
    let mut out = Vec::new();
    receive(&mut l, 0, 0, None, &mut out);
    receive(&mut l, 0, 1, None, &mut out);
    let jobs = started(&mut out);
    l.finished(&jobs[0], true, &mut out);
    l.begin_shutdown(now + Duration::from_secs(1));
    assert_eq!(receive(&mut l, 0, 2, None, &mut out), Intake::Refused);
    assert!(l.final_snapshot(now).is_none(), "one request still runs");
    let last = l
        .final_snapshot(now + Duration::from_secs(1))
        .expect("deadline passed");
    assert_eq!((last.commits[0].offset, last.abandoned), (1, 1));
    // A revocation racing the shutdown, answered after the final snapshot, with the
    // abandoned request settling late: it must not commit (2 after the final 1 is
    // fine, but an older snapshot after a newer one is not, so: nothing at all).
    l.finished(&jobs[1], true, &mut out);
    l.revoke(2, vec![(topic(), 0)], now);
    let r = l.due_revokes(now);
    assert!(r[0].commits.is_empty(), "{r:?}");
    assert!(l.final_snapshot(now + Duration::from_secs(9)).is_none());
}

#[test]
fn records_of_a_revoking_partition_are_not_registered() {
    let now = Instant::now();
    let mut l = L::new(limits(8, 8));
    l.assign(vec![(topic(), 0, vec![])]);
    let mut out = Vec::new();
    receive(&mut l, 0, 0, None, &mut out);
    l.revoke(1, vec![(topic(), 0)], now + Duration::from_secs(5));
    assert_eq!(receive(&mut l, 0, 1, None, &mut out), Intake::Refused);
}

/// A request's reports find its book by the slot its place names, checked by epoch: a
/// request abandoned with its partition, reporting late, changes nothing in the book
/// of the partition assigned since in the same slot.
#[test]
fn a_late_report_leaves_the_next_book_in_its_slot_alone() {
    let now = Instant::now();
    let mut l = L::new(limits(8, 8));
    l.assign(vec![(topic(), 0, vec![])]);
    let mut out = Vec::new();
    receive(&mut l, 0, 0, None, &mut out);
    let old = started(&mut out).remove(0);
    l.revoke(1, vec![(topic(), 0)], now);
    assert_eq!(l.due_revokes(now)[0].abandoned, vec![(topic(), 0, 1)]);

    l.assign(vec![(topic(), 1, vec![])]);
    receive(&mut l, 1, 0, None, &mut out);
    let new = started(&mut out).remove(0);
    assert_eq!(new.book, old.book, "the free slot is reused");
    l.handled(&old, &mut out);
    assert!(l.finished(&old, true, &mut out));
    assert_eq!(l.running(), 1, "partition 1's request still runs");
    let commits = l.commits(true);
    assert_eq!(
        (commits[0].partition, commits[0].offset),
        (1, 0),
        "offset 0 of partition 1 is not settled"
    );
    l.handled(&new, &mut out);
    l.finished(&new, true, &mut out);
    let commits = l.commits(false);
    assert_eq!((commits[0].partition, commits[0].offset), (1, 1));
}

/// A request of an earlier assignment acknowledged late, after its partition came back
/// in another slot: its offset is settled in the partition's new book, found by name
/// (its reply is out: answering it again is not needed), and the book now in its old
/// slot is left alone.
#[test]
fn a_late_acknowledgement_settles_in_the_partitions_new_book() {
    let now = Instant::now();
    let mut l = L::new(limits(8, 8));
    // One name for every call: the books find it by address.
    let t = topic();
    let mut out = Vec::new();
    let receive = |l: &mut L, p: i32, offset: i64, out: &mut Vec<Command<Place>>| {
        l.receive(&t, p, arrival(offset, None), |place, _| place, out);
        started(out).remove(0)
    };
    l.assign(vec![(Arc::clone(&t), 0, vec![])]);
    let old = receive(&mut l, 0, 0, &mut out);
    l.handled(&old, &mut out);
    l.revoke(1, vec![(topic(), 0)], now);
    assert_eq!(l.due_revokes(now)[0].abandoned, vec![(topic(), 0, 1)]);

    l.assign(vec![(Arc::clone(&t), 1, vec![])]);
    l.assign(vec![(Arc::clone(&t), 0, vec![])]);
    let other = receive(&mut l, 1, 7, &mut out);
    let again = receive(&mut l, 0, 0, &mut out);
    assert_eq!(other.book, old.book, "partition 1 took the old slot");
    assert_ne!(again.book, old.book);
    assert!(l.finished(&old, true, &mut out));
    assert_eq!(l.running(), 2, "both requests of the new books still run");
    let mut commits = l.commits(true);
    commits.sort_by_key(|c| c.partition);
    let at: Vec<_> = commits.iter().map(|c| (c.partition, c.offset)).collect();
    assert_eq!(
        at,
        [(0, 1), (1, 7)],
        "offset 0 settled, in partition 0's book only"
    );
}

/// One step of the property test's script.
#[derive(Debug, Clone)]
enum Step {
    /// Fetch the next record of partition `p % 2` (a new one after a gap of `gap`
    /// if none is left), in lane `lane` (none when 3).
    Receive { p: u8, gap: u8, lane: u8 },
    /// The n-th started request is handled: its reply goes to the producer.
    Handle(usize),
    /// The n-th request awaiting its acknowledgement settles.
    Settle(usize),
    /// Commit what moved (or everything).
    Tick(bool),
    /// Revoke partition `p % 2`, waiting `wait` ticks at most, then assign it again.
    Reassign { p: u8, wait: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (any::<u8>(), 0u8..3, 0u8..4).prop_map(|(p, gap, lane)| Step::Receive { p, gap, lane }),
        3 => any::<usize>().prop_map(Step::Handle),
        3 => any::<usize>().prop_map(Step::Settle),
        1 => any::<bool>().prop_map(Step::Tick),
        1 => (any::<u8>(), 0u8..2).prop_map(|(p, wait)| Step::Reassign { p, wait }),
    ]
}

/// A broker, a consumer with `max_in_flight` slots, and tasks, around the ledger.
struct World {
    l: L,
    max: usize,
    now: Instant,
    /// Records in each partition.
    log: [Vec<i64>; 2],
    /// The next index of `log` the consumer fetches.
    fetch: [usize; 2],
    committed: [(i64, String); 2],
    paused: HashSet<i32>,
    /// Requests received and not finished: the slots taken.
    in_flight: usize,
    started: Vec<(Place, Cancel)>,
    delivering: Vec<(Place, Cancel)>,
    /// Accepted in the current assignment and not settled.
    unsettled: [BTreeSet<i64>; 2],
    settled_ever: HashSet<(i32, i64)>,
    cancels: HashMap<(i32, i64), Cancel>,
    next_id: u64,
}

impl World {
    fn new(max: usize, per_partition: usize) -> Self {
        let mut l = L::new(limits(max, per_partition));
        l.assign(vec![(topic(), 0, vec![]), (topic(), 1, vec![])]);
        World {
            l,
            max,
            now: Instant::now(),
            log: [Vec::new(), Vec::new()],
            fetch: [0, 0],
            committed: [(0, String::new()), (0, String::new())],
            paused: HashSet::new(),
            in_flight: 0,
            started: Vec::new(),
            delivering: Vec::new(),
            unsettled: [BTreeSet::new(), BTreeSet::new()],
            settled_ever: HashSet::new(),
            cancels: HashMap::new(),
            next_id: 0,
        }
    }

    fn apply(&mut self, out: Vec<Command<Place>>) -> Result<(), TestCaseError> {
        for c in out {
            match c {
                Command::Start(place) => {
                    let cancel = self.cancels[&(place.partition, place.offset)].clone();
                    self.started.push((place, cancel));
                }
                Command::Pause(_, p) => prop_assert!(self.paused.insert(p), "paused twice"),
                Command::Resume(_, p) => prop_assert!(self.paused.remove(&p), "resumed unpaused"),
            }
        }
        // Cancelled tasks end, abandoned: they report finished, unsettled.
        let mut abandoned = Vec::new();
        for list in [&mut self.started, &mut self.delivering] {
            list.retain(|(place, cancel)| {
                if cancel.fired() {
                    abandoned.push(place.clone());
                }
                !cancel.fired()
            });
        }
        for place in abandoned {
            self.in_flight -= 1;
            let mut out = Vec::new();
            self.l.handled(&place, &mut out);
            self.l.finished(&place, false, &mut out);
            self.apply(out)?;
        }
        Ok(())
    }

    /// Fetches the next record of `p`, as the consumer would. Returns whether it did.
    fn receive(&mut self, p: i32, gap: u8, lane: u8) -> Result<bool, TestCaseError> {
        if self.in_flight >= self.max || self.paused.contains(&p) {
            return Ok(false);
        }
        let i = p as usize;
        if self.fetch[i] == self.log[i].len() {
            let next = self.log[i].last().map_or(0, |o| o + 1) + i64::from(gap);
            self.log[i].push(next);
        }
        let offset = self.log[i][self.fetch[i]];
        self.fetch[i] += 1;
        let lane = (lane < 3).then_some(u64::from(lane));
        let mut out = Vec::new();
        let mut cancel = None;
        let intake = self.l.receive(
            &topic(),
            p,
            arrival(offset, lane),
            |place, c| {
                cancel = Some(c);
                place
            },
            &mut out,
        );
        match intake {
            Intake::Accepted => {
                self.in_flight += 1;
                self.unsettled[i].insert(offset);
                self.cancels.insert((p, offset), cancel.expect("job made"));
            }
            Intake::AlreadySettled => {
                prop_assert!(
                    self.settled_ever.contains(&(p, offset)),
                    "skipped unsettled {offset}"
                );
            }
            other => prop_assert!(false, "unexpected {other:?}"),
        }
        self.apply(out)?;
        Ok(true)
    }

    fn handle(&mut self, n: usize) -> Result<(), TestCaseError> {
        if self.started.is_empty() {
            return Ok(());
        }
        let job = self.started.remove(n % self.started.len());
        let mut out = Vec::new();
        self.l.handled(&job.0, &mut out);
        self.delivering.push(job);
        self.apply(out)
    }

    fn settle(&mut self, n: usize) -> Result<(), TestCaseError> {
        if self.delivering.is_empty() {
            return Ok(());
        }
        let (place, _) = self.delivering.remove(n % self.delivering.len());
        self.in_flight -= 1;
        self.settled_ever.insert((place.partition, place.offset));
        self.unsettled[place.partition as usize].remove(&place.offset);
        let mut out = Vec::new();
        prop_assert!(self.l.finished(&place, true, &mut out));
        self.apply(out)
    }

    fn check(&mut self, commits: Vec<Commit>) -> Result<(), TestCaseError> {
        for c in commits {
            let i = c.partition as usize;
            for o in self.log[i].iter().filter(|o| **o < c.offset) {
                prop_assert!(
                    self.settled_ever.contains(&(c.partition, *o)),
                    "committed {} past unsettled {o}",
                    c.offset
                );
            }
            let ranges = decode(c.offset, c.metadata.as_bytes());
            prop_assert!(
                c.metadata.is_empty() || !ranges.is_empty(),
                "undecodable {:?}",
                c.metadata
            );
            for (a, b) in ranges {
                for o in self.log[i].iter().filter(|o| (a..=b).contains(*o)) {
                    prop_assert!(
                        self.settled_ever.contains(&(c.partition, *o)),
                        "metadata lists unsettled {o}"
                    );
                }
            }
            self.committed[i] = (c.offset, c.metadata);
        }
        Ok(())
    }

    fn reassign(&mut self, p: i32, wait: u8) -> Result<(), TestCaseError> {
        self.next_id += 1;
        let deadline = self.now + Duration::from_secs(u64::from(wait));
        self.l.revoke(self.next_id, vec![(topic(), p)], deadline);
        let mut due = self.l.due_revokes(self.now);
        if due.is_empty() {
            self.now = deadline;
            due = self.l.due_revokes(self.now);
        }
        prop_assert_eq!(due.len(), 1);
        let r = due.remove(0);
        self.apply(Vec::new())?; // the cancelled tasks end
        self.check(r.commits)?;
        // The requests of the old assignment are gone; the new one resumes from the
        // committed offset with its metadata.
        let i = p as usize;
        self.unsettled[i].clear();
        self.paused.remove(&p);
        let (c, md) = self.committed[i].clone();
        self.fetch[i] = self.log[i]
            .iter()
            .position(|o| *o >= c)
            .unwrap_or(self.log[i].len());
        self.l.assign(vec![(topic(), p, decode(c, md.as_bytes()))]);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Safety: never a commit past an unsettled request, metadata that always decodes
    /// to settled offsets only, no more held than `max_in_flight`. Liveness: once
    /// failures stop, every record is settled or handed over, no partition stays
    /// paused, and the commits reach the end of each partition.
    #[test]
    fn the_ledger_is_safe_and_live(
        max in 1usize..6,
        per_partition in 1usize..6,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let mut w = World::new(max, per_partition);
        for s in steps {
            match s {
                Step::Receive { p, gap, lane } => { w.receive(i32::from(p % 2), gap, lane)?; }
                Step::Handle(n) => w.handle(n)?,
                Step::Settle(n) => w.settle(n)?,
                Step::Tick(all) => {
                    let c = w.l.commits(all);
                    w.check(c)?;
                }
                Step::Reassign { p, wait } => w.reassign(i32::from(p % 2), wait)?,
            }
            prop_assert!(w.l.running() <= max);
            prop_assert!(w.in_flight <= max);
        }
        // Failures stop: every request runs to its end, and the consumer fetches
        // whatever is left. Nothing may stay stuck.
        for _ in 0..10_000 {
            let mut progressed = false;
            while !w.started.is_empty() { w.handle(0)?; progressed = true; }
            while !w.delivering.is_empty() { w.settle(0)?; progressed = true; }
            for p in 0..2 {
                if w.fetch[p as usize] < w.log[p as usize].len() {
                    progressed |= w.receive(p, 0, 0)?;
                }
            }
            if !progressed { break; }
        }
        for p in 0..2 {
            prop_assert_eq!(w.fetch[p], w.log[p].len(), "partition {} stalled (paused: {:?})", p, w.paused);
        }
        prop_assert!(w.paused.is_empty(), "still paused: {:?}", w.paused);
        let c = w.l.commits(true);
        w.check(c)?;
        for p in 0..2 {
            if let Some(last) = w.log[p].last() {
                prop_assert_eq!(w.committed[p].0, last + 1);
            }
        }
    }
}
