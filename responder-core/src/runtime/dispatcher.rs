//! The dispatcher: feeds the [`Ledger`] what happens (records, reports, rebalances,
//! shutdown, the clock) and executes what it answers: starts requests, pauses and
//! resumes partitions, commits offsets, answers revocations and hands the final
//! offsets to the consumer thread.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Shared;
use super::consumer::{
    Assigned, ConsumerCx, Event, FINAL_COMMIT_TIMEOUT, LEAVE_TIMEOUT, offsets_list,
};
use super::lanes::lane_of;
use super::ledger::{Arrival, Command, Intake, Ledger, Limits};
use super::mailbox::{self, Receiver, Sender};
use super::pauses::Pauses;
use super::permits::Permit;
use super::request::{Job, process};
use super::ticket::{Report, Ticket};
use super::transaction::{Snapshot, Transactions, TxnEvent, Waiter};
use super::workers::{SlotFor, Workers};
use crate::config::Settings;
use crate::received::Received;

/// Every this many commit intervals, every partition's watermark is committed again.
const FULL_COMMIT_EVERY: u64 = 20;
/// How many waiting reports and events one turn of the loop handles at most.
const READY_AT_ONCE: usize = 64;

/// How the dispatcher's run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The consumer thread closed (after a shutdown, or by itself).
    Closed {
        /// Whether it left the group in time (else it is not waited for).
        left: bool,
    },
    /// The consumer thread did not report closing in time after the final offsets.
    CloseTimedOut,
    /// A second stop signal: the responder exits at once.
    Forced,
}

pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    consumer: Option<Arc<BaseConsumer<ConsumerCx>>>,
    pauses: Arc<Pauses>,
    settings: Settings,
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    final_offsets: Option<std::sync::mpsc::Sender<TopicPartitionList>>,
    reports_tx: Sender<Report>,
    reports: Receiver<Report>,
    ledger: Ledger<Job>,
    /// Revocations waiting for their answer, by the id given to the ledger.
    revocations: HashMap<u64, oneshot::Sender<TopicPartitionList>>,
    next_revocation: u64,
    /// The ledger's commands, executed after each event.
    commands: Vec<Command<Job>>,
    /// Once the final offsets are sent: how long to wait for the consumer to close.
    close_deadline: Option<Instant>,
    /// Why the consumer side failed, if it did.
    pub(crate) failure: Option<String>,
    /// With exactly-once replies: commits go through transactions.
    txn: Option<Transactions>,
    /// Where requests run.
    workers: Workers<Job>,
}

impl Dispatcher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        consumer: Arc<BaseConsumer<ConsumerCx>>,
        pauses: Arc<Pauses>,
        settings: Settings,
        events: Receiver<Event>,
        stop: Arc<AtomicBool>,
        final_offsets: std::sync::mpsc::Sender<TopicPartitionList>,
    ) -> Self {
        let (reports_tx, reports) = mailbox::mailbox();
        let txn = shared.transaction.as_ref().map(|gate| {
            Transactions::new(
                Arc::clone(gate),
                shared.producer.clone(),
                // A quarter of the transaction timeout for closing the gate and as
                // much per broker call: with the interval (at most another quarter,
                // see the builder) a transaction ends before the broker aborts it.
                settings.transaction_timeout / 4,
            )
        });
        let ledger = Ledger::new(Limits {
            max_in_flight: settings.bounds.max_in_flight,
            per_partition: settings.bounds.max_in_flight_per_partition,
            max_bytes: settings.bounds.max_in_flight_bytes,
        });
        let workers = {
            let shared = Arc::clone(&shared);
            Workers::start(move |job, mut slot: SlotFor<'_, _>| {
                // Built in this frame and stored at once, so the compiler writes the
                // request's future into its slot (see `Workers::start`).
                slot.set(Some(process(job, Arc::clone(&shared))));
            })
        };
        Dispatcher {
            shared,
            consumer: Some(consumer),
            pauses,
            settings,
            events,
            stop,
            final_offsets: Some(final_offsets),
            reports_tx,
            reports,
            ledger,
            revocations: HashMap::new(),
            next_revocation: 0,
            commands: Vec::new(),
            close_deadline: None,
            failure: None,
            txn,
            workers,
        }
    }

    /// Runs until the consumer thread has closed, after `shutdown` resolved (or the
    /// consumer thread ended by itself); or at once when `force` resolves after
    /// `shutdown` did.
    pub(crate) async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
        force: impl Future<Output = ()>,
    ) -> Ended {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut force = std::pin::pin!(force);
        let tick_every = self
            .settings
            .bounds
            .commit_interval
            .min(Duration::from_millis(100));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_commit = Instant::now() + self.settings.bounds.commit_interval;
        let mut commits: u64 = 0;
        let mut producer_failed = self.shared.producer_failed.subscribe();
        loop {
            let close_deadline = self.close_deadline;
            tokio::select! {
                biased;
                Some(report) = self.reports.recv() => {
                    self.on_report(report);
                    if let Some(ended) = self.take_ready() {
                        return ended;
                    }
                }
                event = self.events.recv() => {
                    if let Some(ended) = self.on_event(event).or_else(|| self.take_ready()) {
                        return ended;
                    }
                }
                () = &mut shutdown, if !self.ledger.stopping() => self.begin_shutdown(),
                Ok(()) = producer_failed.changed(), if self.failure.is_none() => {
                    let why = producer_failed.borrow_and_update().clone();
                    if let Some(why) = why {
                        tracing::error!(error = %why, "the reply producer failed for good: stopping");
                        self.failure = Some(why);
                        self.begin_shutdown();
                    }
                }
                () = &mut force, if self.ledger.stopping() => {
                    tracing::warn!(
                        "stop asked again: exiting at once; requests not committed are \
                         answered again by the next owner of their partitions"
                    );
                    return Ended::Forced;
                }
                Some(event) = txn_event(&mut self.txn) => self.on_txn(event),
                () = sleep_until(close_deadline) => {
                    tracing::warn!("the consumer did not close in time; not waiting for it");
                    return Ended::CloseTimedOut;
                }
                _ = tick.tick() => {
                    let (held, assigned, paused) = self.ledger.counts();
                    self.shared.metrics.set_gauges(held, assigned, paused);
                    self.shared.health.partitions(assigned);
                    if Instant::now() >= next_commit {
                        commits += 1;
                        match &mut self.txn {
                            Some(txn) => txn.want(),
                            None => self.commit(commits.is_multiple_of(FULL_COMMIT_EVERY)),
                        }
                        self.measure_lag();
                        next_commit = Instant::now() + self.settings.bounds.commit_interval;
                    }
                }
            }
            self.finish_revocations();
            self.finish_shutdown();
        }
    }

    /// Handles what the consumer thread said (`None`: it is gone). `Some` when the
    /// dispatcher is done.
    fn on_event(&mut self, event: Option<Event>) -> Option<Ended> {
        match event {
            Some(Event::Message(m, permit)) => self.on_message(m, permit),
            Some(Event::Assigned(tps)) => self.on_assigned(tps),
            Some(Event::Revoked(tps, lost, reply)) => self.on_revoked(tps, lost, reply),
            Some(Event::Failed(why)) => {
                self.failure = Some(why);
                self.begin_shutdown();
                // The thread leaves without the final offsets: it must hold the last
                // reference to the consumer.
                drop(self.release_consumer());
            }
            Some(Event::Closed { left }) => return Some(Ended::Closed { left }),
            None => return Some(Ended::Closed { left: false }),
        }
        None
    }

    /// Handles the reports and events already waiting, reports first (as the loop
    /// does), up to [`READY_AT_ONCE`] of them: one wake-up of the dispatcher serves a
    /// batch, not one trip through its loop each. `Some` when the dispatcher is done.
    fn take_ready(&mut self) -> Option<Ended> {
        for _ in 0..READY_AT_ONCE {
            if let Some(report) = self.reports.try_recv() {
                self.on_report(report);
                continue;
            }
            match self.events.try_recv() {
                Some(event) => {
                    if let Some(ended) = self.on_event(Some(event)) {
                        return Some(ended);
                    }
                }
                // A closed mailbox is the loop's to see.
                None => return None,
            }
        }
        None
    }

    /// A handle that closes the consumer thread's mailbox: the thread then stops
    /// polling, and gives up waiting for a revocation's answer.
    pub(crate) fn events_closer(&self) -> mailbox::Closer<Event> {
        self.events.closer()
    }

    /// Gives up the dispatcher's reference to the consumer (the consumer thread must
    /// hold the last one when it closes).
    pub(crate) fn release_consumer(&mut self) -> Option<Arc<BaseConsumer<ConsumerCx>>> {
        self.consumer.take()
    }

    /// Executes the ledger's commands.
    fn execute(&mut self) {
        for command in self.commands.drain(..) {
            match command {
                Command::Start(mut job) => {
                    job.ticket.start();
                    self.workers.submit(job);
                }
                Command::Pause(topic, partition) => {
                    if let Some(consumer) = &self.consumer {
                        self.pauses.partition(consumer, &topic, partition, true);
                    }
                }
                Command::Resume(topic, partition) => {
                    if let Some(consumer) = &self.consumer {
                        self.pauses.partition(consumer, &topic, partition, false);
                    }
                }
            }
        }
    }

    fn on_message(&mut self, message: Received, permit: Permit) {
        let Some(route) = self.shared.router.get(message.topic()) else {
            tracing::warn!(topic = message.topic(), "record from a topic with no route");
            return;
        };
        // The route stays borrowed (from `shared`, beside the ledger): its topic and
        // metrics are not cloned for this request's bookkeeping, only for its job.
        let topic = &route.topic;
        let serving = Arc::clone(&route.serving);
        let lane = lane_of(route.ordering, message.key());
        let route_metrics = &route.serving.metrics;
        let (partition, offset) = (message.partition(), message.offset());
        let reports = &self.reports_tx;
        let arrival = Arrival {
            offset,
            lane,
            bytes: message.size(),
        };
        let intake = self.ledger.receive(
            topic,
            partition,
            arrival,
            |place, cancel| Job {
                message,
                serving,
                ticket: Ticket::new(reports.clone(), place, permit),
                cancel,
            },
            &mut self.commands,
        );
        match intake {
            Intake::Accepted => route_metrics.received(),
            Intake::AlreadySettled => {
                self.shared.metrics.inc_already_settled();
                tracing::debug!(%topic, partition, offset, "settled by the previous owner; skipped");
            }
            Intake::Redelivered => {
                self.shared.metrics.inc_redeliveries_skipped();
                tracing::debug!(%topic, partition, offset, "record delivered twice; skipped");
            }
            // Not registered: stays uncommitted, read again by the next owner.
            Intake::Refused => {}
        }
        self.execute();
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Handled(place) => self.ledger.handled(&place, &mut self.commands),
            Report::Finished(place, settled, in_transaction) => {
                if in_transaction
                    && settled
                    && !self.ledger.counts_for(&place)
                    && let Some(gate) = &self.shared.transaction
                {
                    // Settled as its partition went (past a drain deadline): its reply
                    // is in the open transaction, its offset in no commit.
                    gate.taint("a reply settled after its partition's offsets were taken");
                }
                if !self.ledger.finished(&place, settled, &mut self.commands) {
                    tracing::error!(
                        topic = %place.topic,
                        partition = place.partition,
                        offset = place.offset,
                        "request abandoned while its partition is served: its partition's \
                         commits stop below it until the partition is reassigned"
                    );
                }
            }
        }
        self.execute();
    }

    fn on_assigned(&mut self, tps: Vec<Assigned>) {
        self.shared.metrics.rebalance("assigned");
        self.shared.health.joined();
        let mut assigned = Vec::with_capacity(tps.len());
        for a in tps {
            let Some(route) = self.shared.router.get(&a.topic) else {
                continue;
            };
            if !a.known_settled.is_empty() {
                tracing::debug!(topic = a.topic, partition = a.partition, ranges = ?a.known_settled, "requests settled by the previous owner will be skipped");
            }
            assigned.push((Arc::clone(&route.topic), a.partition, a.known_settled));
        }
        self.ledger.assign(assigned);
    }

    fn on_revoked(
        &mut self,
        tps: Vec<(String, i32)>,
        lost: bool,
        reply: oneshot::Sender<TopicPartitionList>,
    ) {
        if lost && let Some(gate) = &self.shared.transaction {
            // The group moved on: these partitions' offsets cannot be committed, and
            // their replies may be in the open transaction.
            gate.taint("partitions lost while their replies may be in the open transaction");
        }
        self.shared.metrics.rebalance("revoked");
        self.next_revocation += 1;
        let id = self.next_revocation;
        self.revocations.insert(id, reply);
        let partitions = tps
            .into_iter()
            .filter_map(|(topic, partition)| {
                let route = self.shared.router.get(&topic)?;
                Some((Arc::clone(&route.topic), partition))
            })
            .collect();
        let deadline = Instant::now() + self.settings.bounds.drain_timeout;
        self.ledger.revoke(id, partitions, deadline.into_std());
    }

    fn finish_revocations(&mut self) {
        for done in self.ledger.due_revokes(std::time::Instant::now()) {
            for (topic, partition, abandoned) in &done.abandoned {
                tracing::warn!(
                    %topic,
                    partition,
                    abandoned,
                    "drain deadline passed: in-flight requests abandoned (they will be handled again by the next owner)"
                );
            }
            if let Some(reply) = self.revocations.remove(&done.id) {
                match &mut self.txn {
                    // The revoked partitions' offsets go in a transaction of their own
                    // before the partitions go; the consumer commits nothing itself.
                    Some(txn) => txn.commit_with(done.commits, Waiter::Revocation(reply)),
                    None => drop(reply.send(offsets_list(&done.commits))),
                }
            }
        }
    }

    /// The consumer lag of each partition: its high watermark (as the consumer last
    /// fetched it) minus its committed watermark.
    fn measure_lag(&self) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let lags = self
            .ledger
            .watermarks()
            .filter_map(|(topic, partition, watermark)| {
                let high = responder_ffi::high_watermark::cached(consumer, topic, partition)?;
                Some((topic.to_string(), partition, (high - watermark?).max(0)))
            });
        self.shared.metrics.set_lags(lags);
    }

    /// Commits the offsets that moved (with `all`, every partition's) asynchronously.
    fn commit(&mut self, all: bool) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let commits = self.ledger.commits(all);
        if commits.is_empty() {
            return;
        }
        if let Err(e) = consumer.commit(&offsets_list(&commits), CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit could not be sent");
        }
    }

    /// A transaction's commit asks for its offsets, or ended.
    fn on_txn(&mut self, event: TxnEvent) {
        match event {
            TxnEvent::Snapshot(reply) => {
                // Every reply in the transaction is settled and its report queued (the
                // gate is closed): read them, so the watermarks include them.
                while let Some(report) = self.reports.try_recv() {
                    self.on_report(report);
                }
                let mut commits = self.ledger.transaction_commits();
                let Some(txn) = &mut self.txn else {
                    return;
                };
                commits.extend(txn.take_pending());
                let group = match &self.consumer {
                    Some(c) => c.group_metadata(),
                    None => txn.final_group.take(),
                };
                let _ = reply.send(Snapshot {
                    offsets: offsets_list(&latest_per_partition(commits)),
                    group,
                });
            }
            TxnEvent::Ended(result) => {
                let Some(txn) = &mut self.txn else {
                    return;
                };
                match txn.on_ended(result) {
                    Ok(()) => self.shared.metrics.transaction(true),
                    Err(why) => {
                        self.shared.metrics.transaction(false);
                        tracing::error!(error = %why, "transaction failed: stopping (its requests are answered again by the next owner)");
                        if self.failure.is_none() {
                            self.failure = Some(why);
                        }
                        self.begin_shutdown();
                    }
                }
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.ledger.stopping() {
            return;
        }
        tracing::info!("shutting down: no new requests; draining in-flight ones");
        let deadline = Instant::now() + self.settings.bounds.drain_timeout;
        self.ledger.begin_shutdown(deadline.into_std());
        self.stop.store(true, SeqCst);
    }

    fn finish_shutdown(&mut self) {
        let Some(last) = self.ledger.final_snapshot(std::time::Instant::now()) else {
            return;
        };
        if last.abandoned > 0 {
            tracing::warn!(
                abandoned = last.abandoned,
                "drain deadline passed at shutdown: in-flight requests abandoned (the next owner answers them)"
            );
        }
        let mut close_in = FINAL_COMMIT_TIMEOUT + LEAVE_TIMEOUT + Duration::from_secs(2);
        if let Some(txn) = &mut self.txn {
            // Kept for the final transaction: the consumer goes to its thread now.
            txn.final_group = self.consumer.as_ref().and_then(|c| c.group_metadata());
        }
        // The consumer thread must hold the last reference when it closes.
        drop(self.release_consumer());
        if let Some(tx) = self.final_offsets.take() {
            match &mut self.txn {
                Some(txn) => {
                    txn.commit_with(last.commits, Waiter::Final(tx));
                    // It may queue behind a running commit: two of them, each
                    // closing the gate and calling the broker.
                    close_in += txn.timeout() * 4;
                }
                None => drop(tx.send(offsets_list(&last.commits))),
            }
        }
        // The thread commits (bounded), then leaves the group (bounded).
        self.close_deadline = Some(Instant::now() + close_in);
    }
}

/// The last commit of each partition (revocations and the shutdown may add one the
/// ledger also gave).
fn latest_per_partition(commits: Vec<super::ledger::Commit>) -> Vec<super::ledger::Commit> {
    let mut latest: Vec<super::ledger::Commit> = Vec::with_capacity(commits.len());
    for c in commits {
        match latest
            .iter_mut()
            .find(|l| l.topic == c.topic && l.partition == c.partition)
        {
            Some(l) => *l = c,
            None => latest.push(c),
        }
    }
    latest
}

/// The next event of the transactions, or never without them.
async fn txn_event(txn: &mut Option<Transactions>) -> Option<TxnEvent> {
    match txn {
        Some(t) => t.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
