//! The dispatcher: owns the per-partition state (watermark, lanes, in-flight counts),
//! starts requests, commits watermarks, and drains on revocation and shutdown.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Shared;
use super::consumer::{Assigned, ConsumerCx, Event, offsets_list};
use super::lanes::{Lanes, lane_of};
use super::permits::Permit;
use super::request::{Job, process};
use crate::config::Settings;
use crate::watermark::{Received, WatermarkTracker};

/// Every this many commit intervals, every partition's watermark is committed again.
const FULL_COMMIT_EVERY: u64 = 20;

/// What a request task reports back.
pub(crate) enum Report {
    /// The request is handled: its reply (if any) is with the producer. Its lane may
    /// run the next request, and it no longer counts against the partition's handler
    /// concurrency (it holds its `max_in_flight` slot until it is finished).
    Handled {
        topic: Arc<str>,
        partition: i32,
        epoch: u64,
        lane: Option<u64>,
    },
    /// The request is over: settled (its offset may be committed) or abandoned.
    Finished {
        topic: Arc<str>,
        partition: i32,
        epoch: u64,
        offset: i64,
        settled: bool,
    },
}

/// A request's link back to the dispatcher. Dropping it unsettled (a cancelled task)
/// still frees the lane and the in-flight slot, but the offset stays uncommitted.
pub(crate) struct Done {
    tx: mpsc::UnboundedSender<Report>,
    topic: Arc<str>,
    partition: i32,
    epoch: u64,
    offset: i64,
    lane: Option<u64>,
    /// The in-flight slot, held until the request is settled or abandoned: a reply
    /// awaiting the broker's acknowledgement still holds it, so the bound covers every
    /// request the responder holds.
    permit: Option<Permit>,
    /// Whether `Handled` was reported (once).
    handled: bool,
    /// Whether the request was started (counted as running and handling). One dropped
    /// before it started (a revocation or shutdown cleared its queue) reports nothing:
    /// its offset simply stays unsettled.
    started: bool,
    finished: bool,
}

impl Done {
    /// The request is handled (its reply is with the producer): the next request of
    /// the same lane may start. Its offset stays unsettled, and its in-flight slot
    /// taken, until [`settle`](Self::settle).
    pub(crate) fn handled(&mut self) {
        if !std::mem::replace(&mut self.handled, true) && self.started {
            let _ = self.tx.send(Report::Handled {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                epoch: self.epoch,
                lane: self.lane,
            });
        }
    }

    /// The request's outcome is final: its offset may be committed.
    pub(crate) fn settle(mut self) {
        self.finish(true);
    }

    fn finish(&mut self, settled: bool) {
        self.handled();
        if !std::mem::replace(&mut self.finished, true) && self.started {
            let _ = self.tx.send(Report::Finished {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                epoch: self.epoch,
                offset: self.offset,
                settled,
            });
        }
        // After the report: the dispatcher never sees more requests than slots.
        drop(self.permit.take());
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// How many unsettled requests pause a partition's fetching: its bound, unless that is
/// no smaller than `max_in_flight`, whose slots (held until a request settles) already
/// stop the polling first. A pause drops librdkafka's prefetched records, fetched again
/// on resume, so it is kept for where it adds something.
fn pause_bound(settings: &Settings) -> usize {
    if settings.max_in_flight_per_partition >= settings.max_in_flight {
        usize::MAX
    } else {
        settings.max_in_flight_per_partition
    }
}

/// The state of one assigned partition.
struct PartitionState {
    epoch: u64,
    tracker: WatermarkTracker,
    lanes: Lanes<Job>,
    /// Requests started and not finished (settled or abandoned): what a drain waits for.
    running: usize,
    /// Requests started and not yet handled: what the per-partition bound caps.
    handling: usize,
    /// Requests free to run (their lane is theirs) waiting for a handling slot of the
    /// partition.
    ready: VecDeque<Job>,
    paused: bool,
}

impl PartitionState {
    /// Runs `job` now if the partition has fewer than `limit` requests being handled,
    /// else queues it until one is handled.
    fn start(&mut self, mut job: Job, limit: usize, shared: &Arc<Shared>) {
        if self.handling < limit {
            self.running += 1;
            self.handling += 1;
            job.done.started = true;
            tokio::spawn(process(job, Arc::clone(shared)));
        } else {
            self.ready.push_back(job);
        }
    }

    /// Requests received and not started: waiting for their lane or a slot.
    fn waiting(&self) -> usize {
        self.tracker.unsettled().saturating_sub(self.running)
    }

    /// Starts queued requests while the partition has free handling slots.
    fn start_ready(&mut self, limit: usize, shared: &Arc<Shared>) {
        while self.handling < limit {
            let Some(job) = self.ready.pop_front() else {
                return;
            };
            self.start(job, limit, shared);
        }
    }

    /// Whether the partition should be paused: at its bound, or with requests that
    /// cannot start yet (their lane is busy) holding its fair share of the in-flight
    /// slots: more would only keep other partitions' requests out.
    fn over(&self, bound: usize, fair_share: usize) -> bool {
        self.tracker.unsettled() >= bound || self.waiting() >= fair_share.max(1)
    }

    /// Whether a paused partition may resume: well below both limits, so that a
    /// resume (which refetches: pausing drops what was prefetched) is worth it.
    fn under(&self, bound: usize, fair_share: usize) -> bool {
        self.tracker.unsettled() <= bound / 2 && self.waiting() <= fair_share / 2
    }

    /// Drops every request that has not started (their offsets stay unsettled, so
    /// they are not committed: the next owner handles them).
    fn drop_waiting(&mut self) {
        self.lanes.clear();
        self.ready.clear();
    }
}

struct PendingRevoke {
    partitions: Vec<(String, i32)>,
    reply: oneshot::Sender<TopicPartitionList>,
    deadline: Instant,
}

pub(crate) struct Dispatcher {
    pub(crate) shared: Arc<Shared>,
    pub(crate) consumer: Option<Arc<BaseConsumer<ConsumerCx>>>,
    pub(crate) settings: Settings,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) final_offsets: Option<std::sync::mpsc::Sender<TopicPartitionList>>,
    pub(crate) reports_tx: mpsc::UnboundedSender<Report>,
    pub(crate) reports: mpsc::UnboundedReceiver<Report>,
    partitions: HashMap<Arc<str>, HashMap<i32, PartitionState>>,
    revokes: Vec<PendingRevoke>,
    next_epoch: u64,
    /// A partition's fair share of the global in-flight bound (the bound divided by the
    /// partitions assigned). A partition with that many requests *waiting* (received
    /// but unable to run: their lane is busy) is paused, so requests that cannot run
    /// do not take the in-flight slots other partitions' requests could use.
    fair_share: usize,
    /// Set once shutdown began: the drain deadline.
    stopping: Option<Instant>,
}

impl Dispatcher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        consumer: Arc<BaseConsumer<ConsumerCx>>,
        settings: Settings,
        events: mpsc::UnboundedReceiver<Event>,
        stop: Arc<AtomicBool>,
        final_offsets: std::sync::mpsc::Sender<TopicPartitionList>,
    ) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Dispatcher {
            shared,
            consumer: Some(consumer),
            fair_share: settings.max_in_flight,
            settings,
            events,
            stop,
            final_offsets: Some(final_offsets),
            reports_tx,
            reports,
            partitions: HashMap::new(),
            revokes: Vec::new(),
            next_epoch: 0,
            stopping: None,
        }
    }

    /// Runs until the consumer thread has closed, after `shutdown` resolved (or the
    /// consumer thread ended by itself).
    pub(crate) async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let tick_every = self
            .settings
            .commit_interval
            .min(Duration::from_millis(100));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_commit = Instant::now() + self.settings.commit_interval;
        let mut commits: u64 = 0;
        loop {
            tokio::select! {
                biased;
                Some(report) = self.reports.recv() => self.on_report(report),
                event = self.events.recv() => match event {
                    Some(Event::Message(m, permit)) => self.on_message(m, permit),
                    Some(Event::Assigned(tps)) => self.on_assigned(tps),
                    Some(Event::Revoked(tps, reply)) => self.on_revoked(tps, reply),
                    Some(Event::Closed) | None => break,
                },
                () = &mut shutdown, if self.stopping.is_none() => self.begin_shutdown(),
                _ = tick.tick() => {
                    if Instant::now() >= next_commit {
                        commits += 1;
                        self.commit_watermarks(commits.is_multiple_of(FULL_COMMIT_EVERY));
                        next_commit = Instant::now() + self.settings.commit_interval;
                    }
                }
            }
            self.finish_revokes();
            self.finish_shutdown();
        }
        // The consumer thread is gone; if it ended by itself, tell it nothing more.
        self.final_offsets = None;
    }

    fn on_message(&mut self, message: OwnedMessage, permit: Permit) {
        if self.stopping.is_some() {
            return; // not registered: stays uncommitted, read again by the next owner
        }
        let Some(route) = self.shared.router.get(message.topic()) else {
            tracing::warn!(topic = message.topic(), "record from a topic with no route");
            return;
        };
        let (topic, ordering, endpoint) = (
            Arc::clone(&route.topic),
            route.ordering,
            Arc::clone(&route.endpoint),
        );
        let partition = message.partition();
        let offset = message.offset();
        let state = state_of(
            &mut self.partitions,
            &mut self.next_epoch,
            &topic,
            partition,
        );
        match state.tracker.receive(offset) {
            Received::Handle => {}
            Received::AlreadySettled => {
                self.shared.metrics.inc_already_settled();
                tracing::debug!(%topic, partition, offset, "settled by the previous owner; skipped");
                return;
            }
            Received::Redelivered => {
                self.shared.metrics.inc_redeliveries_skipped();
                tracing::debug!(%topic, partition, offset, "record delivered twice; skipped");
                return;
            }
        }
        self.shared.metrics.inc_received();
        let lane = lane_of(ordering, message.key());
        let done = Done {
            tx: self.reports_tx.clone(),
            topic: Arc::clone(&topic),
            partition,
            epoch: state.epoch,
            offset,
            lane,
            permit: Some(permit),
            handled: false,
            started: false,
            finished: false,
        };
        let job = Job {
            message,
            endpoint,
            done,
        };
        let runnable = match lane {
            Some(lane) => state.lanes.submit(lane, job),
            None => Some(job),
        };
        if let Some(job) = runnable {
            state.start(job, self.settings.max_in_flight_per_partition, &self.shared);
        }
        let over = state.over(pause_bound(&self.settings), self.fair_share);
        if over && !state.paused {
            state.paused = true;
            self.pause(&topic, partition, true);
        }
    }

    fn state(&mut self, topic: &Arc<str>, partition: i32) -> &mut PartitionState {
        state_of(&mut self.partitions, &mut self.next_epoch, topic, partition)
    }

    fn get(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        self.partitions.get_mut(topic)?.get_mut(&partition)
    }

    fn on_report(&mut self, report: Report) {
        let limit = self.settings.max_in_flight_per_partition;
        let (topic, partition) = match report {
            Report::Handled {
                topic,
                partition,
                epoch,
                lane,
            } => {
                let shared = Arc::clone(&self.shared);
                let Some(state) = self.get(&topic, partition).filter(|s| s.epoch == epoch) else {
                    return;
                };
                state.handling -= 1;
                if let Some(job) = lane.and_then(|lane| state.lanes.release(lane)) {
                    state.ready.push_back(job);
                }
                state.start_ready(limit, &shared);
                (topic, partition)
            }
            Report::Finished {
                topic,
                partition,
                epoch,
                offset,
                settled,
            } => {
                let Some(state) = self.get(&topic, partition) else {
                    return;
                };
                // A settled reply from an earlier assignment of this partition is still
                // acknowledged by the broker: settling its offset is safe.
                if settled {
                    state.tracker.settle(offset);
                }
                if state.epoch == epoch {
                    state.running -= 1;
                }
                (topic, partition)
            }
        };
        let (fair_share, bound) = (self.fair_share, pause_bound(&self.settings));
        if let Some(state) = self.get(&topic, partition)
            && state.paused
            && state.under(bound, fair_share)
        {
            state.paused = false;
            self.pause(&topic, partition, false);
        }
    }

    fn pause(&self, topic: &str, partition: i32, pause: bool) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let result = if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        match result {
            Ok(()) => tracing::debug!(topic, partition, pause, "partition fetch paused/resumed"),
            Err(e) => tracing::warn!(topic, partition, error = %e, "pause/resume failed"),
        }
    }

    fn on_assigned(&mut self, tps: Vec<Assigned>) {
        for a in tps {
            let Some(route) = self.shared.router.get(&a.topic) else {
                continue;
            };
            let topic = Arc::clone(&route.topic);
            if !a.known_settled.is_empty() {
                tracing::debug!(%topic, partition = a.partition, ranges = ?a.known_settled, "requests settled by the previous owner will be skipped");
            }
            self.state(&topic, a.partition)
                .tracker
                .set_known_settled(a.known_settled);
        }
        self.update_fair_share();
    }

    fn update_fair_share(&mut self) {
        let assigned: usize = self.partitions.values().map(HashMap::len).sum();
        self.fair_share = (self.settings.max_in_flight / assigned.max(1)).max(1);
    }

    fn on_revoked(&mut self, tps: Vec<(String, i32)>, reply: oneshot::Sender<TopicPartitionList>) {
        for (topic, partition) in &tps {
            if let Some(state) = self.get(topic, *partition) {
                // Waiting requests never start; their offsets stay uncommitted.
                state.drop_waiting();
            }
        }
        self.revokes.push(PendingRevoke {
            partitions: tps,
            reply,
            deadline: Instant::now() + self.settings.drain_timeout,
        });
    }

    fn drained(&mut self, topic: &str, partition: i32) -> bool {
        self.get(topic, partition).is_none_or(|s| s.running == 0)
    }

    fn finish_revokes(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.revokes.len() {
            let r = &self.revokes[i];
            let parts = r.partitions.clone();
            let expired = now >= r.deadline;
            if !expired && !parts.iter().all(|(t, p)| self.drained(t, *p)) {
                i += 1;
                continue;
            }
            let revoke = self.revokes.swap_remove(i);
            let mut offsets = Vec::new();
            for (topic, partition) in &parts {
                if let Some(map) = self.partitions.get_mut(topic.as_str())
                    && let Some(state) = map.remove(partition)
                {
                    if expired && state.running > 0 {
                        tracing::warn!(
                            topic,
                            partition,
                            abandoned = state.running,
                            "drain deadline passed: in-flight requests abandoned (they will be handled again by the next owner)"
                        );
                    }
                    if let Some(commit) = state.tracker.commit() {
                        offsets.push((topic.as_str(), *partition, commit));
                    }
                }
            }
            let _ = revoke.reply.send(offsets_list(offsets));
            self.update_fair_share();
        }
    }

    /// Commits the watermarks that moved. With `all`, every partition's, moved or not:
    /// an asynchronous commit that failed is not reported back here, so a periodic
    /// full commit makes up for it.
    fn commit_watermarks(&mut self, all: bool) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let mut offsets = Vec::new();
        for (topic, map) in &mut self.partitions {
            for (partition, state) in map.iter_mut() {
                let commit = match state.tracker.take_commit() {
                    None if all => state.tracker.commit(),
                    moved => moved,
                };
                if let Some(c) = commit {
                    offsets.push((topic.as_ref(), *partition, c));
                }
            }
        }
        if offsets.is_empty() {
            return;
        }
        let tpl = offsets_list(offsets);
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit could not be sent");
        }
    }

    fn begin_shutdown(&mut self) {
        tracing::info!("shutting down: no new requests; draining in-flight ones");
        self.stopping = Some(Instant::now() + self.settings.drain_timeout);
        self.stop.store(true, SeqCst);
        for map in self.partitions.values_mut() {
            for state in map.values_mut() {
                state.drop_waiting();
            }
        }
    }

    fn finish_shutdown(&mut self) {
        let Some(deadline) = self.stopping else {
            return;
        };
        if self.final_offsets.is_none() {
            return; // already sent
        }
        let running: usize = self
            .partitions
            .values()
            .flat_map(|m| m.values())
            .map(|s| s.running)
            .sum();
        if running > 0 && Instant::now() < deadline {
            return;
        }
        if running > 0 {
            tracing::warn!(
                abandoned = running,
                "drain deadline passed at shutdown: in-flight requests abandoned"
            );
        }
        let offsets = offsets_list(self.partitions.iter().flat_map(|(topic, map)| {
            map.iter().filter_map(|(partition, state)| {
                Some((topic.as_ref(), *partition, state.tracker.commit()?))
            })
        }));
        // The consumer thread must hold the last reference when it closes.
        self.consumer = None;
        if let Some(tx) = self.final_offsets.take() {
            let _ = tx.send(offsets);
        }
    }
}

/// The state of a partition, created (with a new epoch) if it has none yet.
fn state_of<'a>(
    partitions: &'a mut HashMap<Arc<str>, HashMap<i32, PartitionState>>,
    next_epoch: &mut u64,
    topic: &Arc<str>,
    partition: i32,
) -> &'a mut PartitionState {
    partitions
        .entry(Arc::clone(topic))
        .or_default()
        .entry(partition)
        .or_insert_with(|| {
            *next_epoch += 1;
            PartitionState {
                epoch: *next_epoch,
                tracker: WatermarkTracker::new(),
                lanes: Lanes::default(),
                running: 0,
                handling: 0,
                ready: VecDeque::new(),
                paused: false,
            }
        })
}
