//! The ledger: the book of every assigned partition, as a pure state machine.
//!
//! It holds no Kafka client and runs nothing. The dispatcher feeds it events (a record
//! received, a request started, handled or finished, partitions assigned or revoked,
//! shutdown, the clock) and executes what it answers: [`Command`]s (start this job,
//! pause or resume this partition) and the offsets to commit. That keeps the liveness
//! rules testable without a broker:
//!
//! - a partition is paused only for a reason that ends (requests it holds settle, or
//!   queued ones start), and resumed as soon as it is well below its limits;
//! - the committed offset never passes an unsettled request (see [`WatermarkTracker`]);
//! - a revocation answers once its partitions are drained or its deadline passed, and
//!   the requests it abandons are cancelled (uncommitted: the next owner answers them);
//! - after the final snapshot at shutdown nothing else is committed, so no older offset
//!   can follow a newer one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use books::Books;

use super::cancel::Cancel;
use super::lanes::Lanes;
use crate::watermark::{Received, WatermarkTracker};

/// A request's place in the ledger: what its reports name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// The slot of its partition's book (see `books.rs`).
    pub(crate) book: usize,
    /// The partition's assignment the request was received in.
    pub(crate) epoch: u64,
    pub(crate) offset: i64,
    /// The request's ordering lane, if it has one.
    pub(crate) lane: Option<u64>,
}

/// A record that arrived, as the ledger sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    pub(crate) offset: i64,
    /// Its ordering lane, if it has one.
    pub(crate) lane: Option<u64>,
    /// The bytes its record holds (for the partition's fair share of the byte bound).
    pub(crate) bytes: usize,
}

/// What the dispatcher is told to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command<J> {
    /// Start this request now.
    Start(J),
    /// Stop fetching this partition.
    Pause(Arc<str>, i32),
    /// Fetch this partition again.
    Resume(Arc<str>, i32),
}

/// An offset to commit, with its metadata (see [`crate::offset_metadata`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) metadata: String,
}

/// Offsets a previous owner settled: inclusive, ascending ranges.
pub(crate) type SettledRanges = Vec<(i64, i64)>;

/// What happened to a received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intake {
    /// Registered: it runs now or once its lane and a handling slot are free.
    Accepted,
    /// A previous owner settled it (commit metadata): skipped.
    AlreadySettled,
    /// Delivered twice within one assignment: skipped.
    Redelivered,
    /// The responder is stopping or the partition is being revoked: not registered,
    /// so never committed (the next owner reads it).
    Refused,
}

/// A revocation whose partitions are drained (or whose deadline passed).
#[derive(Debug)]
pub(crate) struct Revoked {
    /// The id given to [`Ledger::revoke`].
    pub(crate) id: u64,
    /// Offsets to commit before the partitions go (none after the final snapshot).
    pub(crate) commits: Vec<Commit>,
    /// Requests still running when the deadline passed: cancelled, uncommitted.
    pub(crate) abandoned: Vec<(Arc<str>, i32, usize)>,
}

/// The last offsets of a stopping responder.
#[derive(Debug)]
pub(crate) struct Final {
    pub(crate) commits: Vec<Commit>,
    /// Requests still running when the drain deadline passed: cancelled, uncommitted.
    pub(crate) abandoned: usize,
}

/// The bounds the ledger keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Requests in flight across all partitions (enforced by the consumer's slots; the
    /// ledger uses it for each partition's fair share).
    pub(crate) max_in_flight: usize,
    /// Requests of one partition in the handler at once.
    pub(crate) per_partition: usize,
    /// Bytes of the records in flight across all partitions (enforced by the
    /// consumer's slots; the ledger uses it for each partition's fair share).
    pub(crate) max_bytes: usize,
}

/// A partition's fair share of the in-flight bounds (each divided by the partitions
/// assigned): its requests that cannot start yet may hold that many, and that many
/// bytes, before it is paused.
#[derive(Debug, Clone, Copy)]
struct Share {
    requests: usize,
    bytes: usize,
}

/// A request received and not started, and the bytes its record holds.
#[derive(Debug)]
struct Queued<J> {
    job: J,
    bytes: usize,
}

impl Limits {
    /// How many unsettled requests pause a partition: its bound, unless that is no
    /// smaller than `max_in_flight`, whose slots already stop the fetching first. A
    /// pause drops librdkafka's prefetched records (fetched again on resume), so it is
    /// kept for where it adds something.
    fn pause_bound(self) -> usize {
        if self.per_partition >= self.max_in_flight {
            usize::MAX
        } else {
            self.per_partition
        }
    }
}

/// The book of one assigned partition.
#[derive(Debug)]
struct Book<J> {
    epoch: u64,
    tracker: WatermarkTracker,
    lanes: Lanes<Queued<J>>,
    /// Requests free to run (their lane is theirs), waiting for a handling slot.
    ready: VecDeque<Queued<J>>,
    /// Requests received and not started (in a lane's queue or in `ready`), and the
    /// bytes of their records.
    queued: usize,
    queued_bytes: usize,
    /// Requests started and not finished: what a drain waits for.
    running: usize,
    /// Requests started and not handled: what the per-partition bound caps.
    handling: usize,
    paused: bool,
    /// A revocation is draining this partition.
    revoking: bool,
    /// Fired when the partition goes: cancels its requests.
    cancel: Cancel,
}

impl<J> Book<J> {
    fn new(epoch: u64) -> Self {
        Book {
            epoch,
            tracker: WatermarkTracker::new(),
            lanes: Lanes::default(),
            ready: VecDeque::new(),
            queued: 0,
            queued_bytes: 0,
            running: 0,
            handling: 0,
            paused: false,
            revoking: false,
            cancel: Cancel::default(),
        }
    }

    /// Starts `job` if the partition has a free handling slot, else queues it.
    fn offer(&mut self, queued: Queued<J>, limit: usize, out: &mut Vec<Command<J>>) {
        if self.handling < limit {
            self.queued -= 1;
            self.queued_bytes -= queued.bytes;
            self.running += 1;
            self.handling += 1;
            out.push(Command::Start(queued.job));
        } else {
            self.ready.push_back(queued);
        }
    }

    fn start_ready(&mut self, limit: usize, out: &mut Vec<Command<J>>) {
        while self.handling < limit {
            let Some(job) = self.ready.pop_front() else {
                return;
            };
            self.offer(job, limit, out);
        }
    }

    /// Whether to pause: at the unsettled bound, or with requests that cannot start
    /// yet (their lane is busy) holding the partition's fair share of the in-flight
    /// slots or bytes: more would only keep other partitions' requests out.
    fn over(&self, bound: usize, share: Share) -> bool {
        self.tracker.unsettled() >= bound
            || self.queued >= share.requests.max(1)
            || self.queued_bytes >= share.bytes.max(1)
    }

    /// Whether a paused partition may resume: well below every limit, so that the
    /// resume (which refetches) is worth it. The counts fall as requests start and
    /// settle, so a pause always ends once the requests it waits for are done.
    fn under(&self, bound: usize, share: Share) -> bool {
        self.tracker.unsettled() <= bound / 2
            && self.queued <= share.requests / 2
            && self.queued_bytes <= share.bytes / 2
    }

    /// Resumes the partition (of `place`) if it is paused and now well below its limits.
    fn maybe_resume(
        &mut self,
        place: &Place,
        bound: usize,
        share: Share,
        out: &mut Vec<Command<J>>,
    ) {
        if self.paused && !self.revoking && self.under(bound, share) {
            self.paused = false;
            out.push(Command::Resume(Arc::clone(&place.topic), place.partition));
        }
    }

    /// Drops the requests not started: their offsets stay unsettled, uncommitted.
    fn drop_queued(&mut self) {
        self.lanes.clear();
        self.ready.clear();
        self.queued = 0;
        self.queued_bytes = 0;
    }
}

#[derive(Debug)]
struct PendingRevoke {
    id: u64,
    partitions: Vec<(Arc<str>, i32)>,
    deadline: Instant,
}

/// The books of every assigned partition. `J` is the job the dispatcher runs.
#[derive(Debug)]
pub(crate) struct Ledger<J> {
    limits: Limits,
    books: Books<Book<J>>,
    next_epoch: u64,
    /// A partition's fair share of the in-flight bounds.
    share: Share,
    revokes: Vec<PendingRevoke>,
    /// Set when shutdown began: the drain deadline.
    stopping: Option<Instant>,
    /// The final snapshot was taken: nothing more is committed.
    closed: bool,
}

impl<J> Ledger<J> {
    pub(crate) fn new(limits: Limits) -> Self {
        Ledger {
            limits,
            books: Books::default(),
            next_epoch: 0,
            share: Share {
                requests: limits.max_in_flight,
                bytes: limits.max_bytes,
            },
            revokes: Vec::new(),
            stopping: None,
            closed: false,
        }
    }

    /// The book of a partition, opened (with a new epoch) if it has none, and its slot.
    fn open(&mut self, topic: &Arc<str>, partition: i32) -> (usize, &mut Book<J>) {
        let next_epoch = &mut self.next_epoch;
        self.books.open(topic, partition, || {
            *next_epoch += 1;
            Book::new(*next_epoch)
        })
    }

    /// The book `place` names, if it is still the one the request was received in.
    fn current(&mut self, place: &Place) -> Option<&mut Book<J>> {
        let book = self.books.get_mut(place.book)?;
        (book.epoch == place.epoch).then_some(book)
    }

    fn update_fair_share(&mut self) {
        let assigned = self.books.len();
        self.share = Share {
            requests: (self.limits.max_in_flight / assigned.max(1)).max(1),
            bytes: (self.limits.max_bytes / assigned.max(1)).max(1),
        };
    }

    /// Partitions assigned, with the offsets their previous owner settled above the
    /// committed one (from the commit metadata).
    pub(crate) fn assign(&mut self, partitions: Vec<(Arc<str>, i32, SettledRanges)>) {
        for (topic, partition, known_settled) in partitions {
            self.open(&topic, partition)
                .1
                .tracker
                .set_known_settled(known_settled);
        }
        self.update_fair_share();
    }

    /// A record arrived. `job` makes its job from its place and its partition's
    /// cancellation signal; the job is started (a [`Command::Start`] in `out`) at once
    /// or later, when its lane and a handling slot are free.
    pub(crate) fn receive(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        arrival: Arrival,
        job: impl FnOnce(Place, Cancel) -> J,
        out: &mut Vec<Command<J>>,
    ) -> Intake {
        if self.stopping.is_some() {
            return Intake::Refused;
        }
        let (limits, share) = (self.limits, self.share);
        let Arrival {
            offset,
            lane,
            bytes,
        } = arrival;
        let (slot, book) = self.open(topic, partition);
        if book.revoking {
            return Intake::Refused;
        }
        match book.tracker.receive(offset) {
            Received::Handle => {}
            Received::AlreadySettled => return Intake::AlreadySettled,
            Received::Redelivered => return Intake::Redelivered,
        }
        let place = Place {
            topic: Arc::clone(topic),
            partition,
            book: slot,
            epoch: book.epoch,
            offset,
            lane,
        };
        let job = Queued {
            job: job(place, book.cancel.clone()),
            bytes,
        };
        book.queued += 1;
        book.queued_bytes += bytes;
        match lane {
            Some(lane) if !book.lanes.try_take(lane) => book.lanes.wait(lane, job),
            _ => book.offer(job, limits.per_partition, out),
        }
        if !book.paused && book.over(limits.pause_bound(), share) {
            book.paused = true;
            out.push(Command::Pause(Arc::clone(topic), partition));
        }
        Intake::Accepted
    }

    /// A request is handled (its reply is with the producer): its lane may run the
    /// next request, and it no longer counts against the partition's handling bound.
    pub(crate) fn handled(&mut self, place: &Place, out: &mut Vec<Command<J>>) {
        let (limit, bound, share) = (
            self.limits.per_partition,
            self.limits.pause_bound(),
            self.share,
        );
        let Some(book) = self.current(place) else {
            return;
        };
        book.handling -= 1;
        if let Some(job) = place.lane.and_then(|lane| book.lanes.release(lane)) {
            book.ready.push_back(job);
        }
        book.start_ready(limit, out);
        book.maybe_resume(place, bound, share, out);
    }

    /// A request is over: settled (its offset may be committed) or abandoned. Returns
    /// `false` when an abandoned request leaves a partition that is still assigned and
    /// serving with an offset that can never settle (a bug: it should not happen).
    pub(crate) fn finished(
        &mut self,
        place: &Place,
        settled: bool,
        out: &mut Vec<Command<J>>,
    ) -> bool {
        let stopping = self.stopping.is_some();
        let (bound, share) = (self.limits.pause_bound(), self.share);
        let Some(book) = self.current(place) else {
            // A reply from an earlier assignment of this partition that was
            // acknowledged all the same: settling its offset is safe.
            if settled && let Some(book) = self.books.by_name(&place.topic, place.partition) {
                book.tracker.settle(place.offset);
            }
            return true;
        };
        if settled {
            book.tracker.settle(place.offset);
        }
        book.running -= 1;
        book.maybe_resume(place, bound, share, out);
        settled || book.revoking || stopping
    }

    /// Partitions are being revoked: their queued requests are dropped at once, the
    /// running ones get until `deadline`. [`Ledger::due_revokes`] answers it.
    pub(crate) fn revoke(&mut self, id: u64, partitions: Vec<(Arc<str>, i32)>, deadline: Instant) {
        for (topic, partition) in &partitions {
            if let Some(book) = self.books.by_name(topic, *partition) {
                book.drop_queued();
                book.revoking = true;
            }
        }
        self.revokes.push(PendingRevoke {
            id,
            partitions,
            deadline,
        });
    }

    /// The revocations that may be answered: drained, or past their deadline (their
    /// running requests are then cancelled). Their partitions' books are closed.
    pub(crate) fn due_revokes(&mut self, now: Instant) -> Vec<Revoked> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.revokes.len() {
            let r = &self.revokes[i];
            let drained = r.partitions.iter().all(|(t, p)| {
                let book = self.books.find(t, *p).and_then(|slot| self.books.get(slot));
                book.is_none_or(|b| b.running == 0)
            });
            if !drained && now < r.deadline {
                i += 1;
                continue;
            }
            let r = self.revokes.swap_remove(i);
            let mut revoked = Revoked {
                id: r.id,
                commits: Vec::new(),
                abandoned: Vec::new(),
            };
            for (topic, partition) in r.partitions {
                let Some(book) = self.books.remove(&topic, partition) else {
                    continue;
                };
                book.cancel.fire();
                if book.running > 0 {
                    revoked
                        .abandoned
                        .push((Arc::clone(&topic), partition, book.running));
                }
                if !self.closed
                    && let Some((offset, metadata)) = book.tracker.commit()
                {
                    revoked.commits.push(Commit {
                        topic,
                        partition,
                        offset,
                        metadata,
                    });
                }
            }
            due.push(revoked);
        }
        if !due.is_empty() {
            self.update_fair_share();
        }
        due
    }

    /// The offsets to commit now: those whose watermark or metadata moved, or, with
    /// `all`, every partition's (an asynchronous commit that failed is not reported
    /// back, so a periodic full commit makes up for it). None once stopping: the final
    /// snapshot covers them.
    pub(crate) fn commits(&mut self, all: bool) -> Vec<Commit> {
        if self.stopping.is_some() {
            return Vec::new();
        }
        self.moved(all)
    }

    /// The offsets that moved, for a transaction: also while draining at shutdown
    /// (the replies settled meanwhile are in the transaction and need their offsets),
    /// none once the final snapshot was taken (it covers them).
    pub(crate) fn transaction_commits(&mut self) -> Vec<Commit> {
        if self.closed {
            return Vec::new();
        }
        self.moved(false)
    }

    /// Whether a request finishing at `place` still counts: its partition's book is
    /// there, of the same assignment, and the final snapshot is not taken. A settled
    /// request that does not count has its offset committed by no one.
    pub(crate) fn counts_for(&self, place: &Place) -> bool {
        !self.closed
            && self
                .books
                .get(place.book)
                .is_some_and(|book| book.epoch == place.epoch)
    }

    fn moved(&mut self, all: bool) -> Vec<Commit> {
        let mut commits = Vec::new();
        for (topic, partition, book) in self.books.iter_mut() {
            let commit = match book.tracker.take_commit() {
                None if all => book.tracker.commit(),
                moved => moved,
            };
            if let Some((offset, metadata)) = commit {
                commits.push(Commit {
                    topic: Arc::clone(topic),
                    partition,
                    offset,
                    metadata,
                });
            }
        }
        commits
    }

    /// Shutdown began: no new requests; queued ones are dropped; running ones get
    /// until `deadline`.
    pub(crate) fn begin_shutdown(&mut self, deadline: Instant) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(deadline);
        for (_, _, book) in self.books.iter_mut() {
            book.drop_queued();
        }
    }

    /// Whether shutdown began.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// Once stopping and drained (or past the drain deadline): the last offsets to
    /// commit, once. Every request still running is cancelled, and nothing is
    /// committed after this.
    pub(crate) fn final_snapshot(&mut self, now: Instant) -> Option<Final> {
        let deadline = self.stopping?;
        if self.closed {
            return None;
        }
        let running = self.running();
        if running > 0 && now < deadline {
            return None;
        }
        self.closed = true;
        let mut commits = Vec::new();
        for (topic, partition, book) in self.books.iter() {
            book.cancel.fire();
            if let Some((offset, metadata)) = book.tracker.commit() {
                commits.push(Commit {
                    topic: Arc::clone(topic),
                    partition,
                    offset,
                    metadata,
                });
            }
        }
        Some(Final {
            commits,
            abandoned: running,
        })
    }

    /// Requests held (received and not finished: queued, or started), partitions
    /// assigned (with a book), and how many of those are paused.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let books = self.books.iter().map(|(_, _, book)| book);
        books.fold((0, 0, 0), |(held, all, paused), b| {
            (
                held + b.queued + b.running,
                all + 1,
                paused + usize::from(b.paused),
            )
        })
    }

    /// Each partition's watermark: what is committed, or about to be (`None` before
    /// anything was received).
    pub(crate) fn watermarks(&self) -> impl Iterator<Item = (&Arc<str>, i32, Option<i64>)> {
        let books = self.books.iter();
        books.map(|(topic, partition, b)| (topic, partition, b.tracker.watermark()))
    }

    /// Requests started and not finished, across partitions.
    pub(crate) fn running(&self) -> usize {
        self.books.iter().map(|(_, _, b)| b.running).sum()
    }
}

mod books;
#[cfg(test)]
mod tests;
