//! The consumer thread: polls the broker, hands records to the dispatcher, and runs the
//! group's rebalance callbacks (a revocation waits until the dispatcher has drained the
//! revoked partitions and then commits their watermarks).
//!
//! It never stops polling while it runs: when no in-flight slot has been free for
//! [`SLOTS_STALL`] (every one taken, or the bytes in flight at their bound), it pauses
//! fetching (see [`Pauses`]) and goes on polling, so
//! rebalances, the poll interval and shutdown are served whatever the handlers do. Its
//! end is bounded too: the final commit waits at most [`FINAL_COMMIT_TIMEOUT`] for the
//! broker, leaving the group at most [`LEAVE_TIMEOUT`].

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;

use super::mailbox;
use super::pauses::Pauses;
use super::permits::{Permit, Permits};
use super::request::panic_message;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::received::{Received, Topics};

/// How long one poll (or one wait for a free slot) lasts.
const POLL: Duration = Duration::from_millis(100);
/// How long every slot may stay taken before fetching is paused. Shorter waits are
/// the ordinary rhythm of a saturated responder, where a pause (which drops what was
/// prefetched) would cost more than it serves.
pub(crate) const SLOTS_STALL: Duration = Duration::from_millis(500);
/// How long the final commit waits for the broker's answer.
pub(crate) const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(4);
/// How long leaving the group may take.
pub(crate) const LEAVE_TIMEOUT: Duration = Duration::from_secs(4);

/// What the consumer thread tells the dispatcher.
pub(crate) enum Event {
    /// A record, with the in-flight slot it occupies.
    Message(Received, Permit),
    /// Partitions were assigned to this member.
    Assigned(Vec<Assigned>),
    /// Partitions are being revoked: drain them, then send back the offsets to commit.
    /// `true`: the partitions were lost (the group moved on without this member).
    Revoked(
        Vec<(String, i32)>,
        bool,
        oneshot::Sender<TopicPartitionList>,
    ),
    /// The consumer side failed (a panic): the responder stops with this error.
    Failed(String),
    /// The consumer thread is done: `left` when it left the group in time (otherwise
    /// it is still trying, and is not waited for).
    Closed { left: bool },
}

/// A partition newly assigned, with what its previous owner already settled.
pub(crate) struct Assigned {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Offsets at or above the committed one that the previous owner settled (from
    /// the commit metadata): inclusive, ascending ranges.
    pub(crate) known_settled: Vec<(i64, i64)>,
}

/// The consumer's context: forwards rebalances to the dispatcher.
pub(crate) struct ConsumerCx {
    events: mailbox::Sender<Event>,
    pauses: Arc<Pauses>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    closing: AtomicBool,
    /// A panic caught in a callback: the thread stops with it.
    failure: Mutex<Option<String>>,
    /// Records that arrived while no in-flight slot was free (fetched before the pause
    /// took hold): handed over first once a slot frees, dropped (unregistered, so read
    /// again by the next owner) if their partition is revoked meanwhile.
    parked: Mutex<VecDeque<Received>>,
}

impl ConsumerCx {
    pub(crate) fn new(
        events: mailbox::Sender<Event>,
        pauses: Arc<Pauses>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        ConsumerCx {
            events,
            pauses,
            metrics,
            health,
            closing: AtomicBool::new(false),
            failure: Mutex::new(None),
            parked: Mutex::new(VecDeque::new()),
        }
    }

    /// Runs a callback's body; a panic in it is kept (the thread then stops) instead
    /// of unwinding into librdkafka.
    fn guard(&self, what: &str, body: impl FnOnce()) {
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(body)) {
            let msg = format!("panic in the {what} callback: {}", panic_message(&*panic));
            tracing::error!(error = %msg, "consumer callback panicked");
            self.failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(msg);
        }
    }

    fn failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, VecDeque<Received>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the dispatcher's answer to a revocation (it drains first), still
    /// reporting the consumer thread alive. `None` when the dispatcher is gone.
    fn await_revocation(
        &self,
        mut rx: oneshot::Receiver<TopicPartitionList>,
    ) -> Option<TopicPartitionList> {
        use tokio::sync::oneshot::error::TryRecvError;
        loop {
            self.health.looped();
            match rx.try_recv() {
                Ok(offsets) => return Some(offsets),
                Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(10)),
                Err(TryRecvError::Closed) => return None,
            }
        }
    }

    fn take_failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Reads the committed offsets (and their metadata, as bytes: any client may have
/// written it) of newly assigned partitions. This runs on the consumer thread before
/// any record of them is returned, so the dispatcher knows what to skip before the
/// first record arrives. If the read fails, or the metadata is not ours, nothing is
/// skipped: duplicates, never loss.
fn assigned(consumer: &BaseConsumer<ConsumerCx>, tpl: &TopicPartitionList) -> Vec<Assigned> {
    let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not read committed offsets; settled requests may be answered again");
            return partitions(tpl)
                .into_iter()
                .map(|(topic, partition)| Assigned {
                    topic,
                    partition,
                    known_settled: Vec::new(),
                })
                .collect();
        }
    };
    let metadata = responder_ffi::raw_metadata::metadata_bytes(&committed);
    committed
        .elements()
        .iter()
        .zip(metadata)
        .map(|(e, metadata)| {
            let (topic, partition) = (e.topic().to_owned(), e.partition());
            let known_settled = match e.offset() {
                Offset::Offset(o) => crate::offset_metadata::decode(o, &metadata),
                _ => Vec::new(),
            };
            if known_settled.is_empty() && !metadata.is_empty() {
                tracing::warn!(
                    topic,
                    partition,
                    bytes = metadata.len(),
                    "commit metadata not written by this responder (or stale); ignored: \
                     requests above the committed offset may be answered again"
                );
            }
            Assigned {
                topic,
                partition,
                known_settled,
            }
        })
        .collect()
}

impl ClientContext for ConsumerCx {}

impl ConsumerContext for ConsumerCx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        if self.closing.load(SeqCst) {
            return;
        }
        self.guard("revocation", || {
            let revoked = partitions(tpl);
            self.parked().retain(|m| {
                !revoked
                    .iter()
                    .any(|(t, p)| t == m.topic() && *p == m.partition())
            });
            let lost = consumer.assignment_lost();
            tracing::info!(partitions = ?revoked, lost, "partitions revoked: draining in-flight requests");
            let (tx, rx) = oneshot::channel();
            if self.events.send(Event::Revoked(revoked, lost, tx)).is_err() {
                return;
            }
            // The dispatcher answers once the revoked partitions are drained (or the
            // drain deadline passed). If it is gone (the responder was dropped), commit
            // nothing; nor when the partitions were lost (the group moved on: a commit
            // would be refused).
            if let Some(offsets) = self.await_revocation(rx)
                && offsets.count() > 0
                && !lost
            {
                if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                    self.metrics.commit_failed();
                    tracing::warn!(error = %e, "commit on revocation failed; the next owner answers those requests again");
                } else {
                    tracing::debug!(offsets = ?offsets, "committed on revocation");
                }
            }
        });
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.guard("assignment", || {
                tracing::info!(partitions = ?partitions(tpl), "partitions assigned");
                self.pauses.assigned(consumer, tpl);
                let _ = self.events.send(Event::Assigned(assigned(consumer, tpl)));
            }),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(offsets = ?offsets, "offsets committed"),
            Err(e) => tracing::warn!(error = %e, offsets = ?offsets, "offset commit failed"),
        }
    }
}

/// Everything the consumer thread owns.
pub(crate) struct ConsumerThread {
    pub(crate) consumer: Arc<BaseConsumer<ConsumerCx>>,
    pub(crate) events: mailbox::Sender<Event>,
    pub(crate) permits: Permits,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) final_offsets: std::sync::mpsc::Receiver<TopicPartitionList>,
    pub(crate) closed: tokio::sync::watch::Sender<bool>,
    /// The routes' topics: records of each share its name (see `received::Topics`).
    pub(crate) topics: Vec<Arc<str>>,
}

impl ConsumerThread {
    /// Polls until told to stop (or until the dispatcher is gone, or a callback
    /// failed), then commits the final offsets the dispatcher sends and leaves the
    /// group, each within its bound.
    pub(crate) fn run(self) {
        let cx = self.consumer.context();
        cx.health.running(true);
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| self.poll_loop()))
            .err()
            .map(|p| format!("the consumer thread panicked: {}", panic_message(&*p)));
        cx.closing.store(true, SeqCst);
        if let Some(failure) = panicked.or_else(|| cx.take_failure()) {
            tracing::error!(error = %failure, "the consumer failed: leaving the group");
            let _ = self.events.send(Event::Failed(failure));
        } else if let Some(offsets) = self.await_final_offsets()
            && offsets.count() > 0
        {
            // A dispatcher that stops cleanly sends the final offsets; one that was
            // dropped (a crash, as far as the group is concerned) sends nothing and
            // nothing more is committed.
            self.commit_final(offsets);
        }
        let left = self.leave();
        cx.health.running(false);
        let (events, closed) = (self.events.clone(), self.closed.clone());
        if left {
            drop(self); // the last reference to the consumer: it is closed already
            let _ = closed.send(true);
            let _ = events.send(Event::Closed { left });
        } else {
            let _ = closed.send(true);
            let _ = events.send(Event::Closed { left });
            // rust-rdkafka's drop waits for the close without a bound, so it happens
            // after the responder was told not to wait for this thread.
            drop(self);
        }
    }

    /// Waits for the dispatcher's final offsets (it drains first), still reporting
    /// itself alive. `None` when the dispatcher is gone without sending any.
    fn await_final_offsets(&self) -> Option<TopicPartitionList> {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            self.consumer.context().health.looped();
            match self.final_offsets.recv_timeout(POLL) {
                Ok(offsets) => return Some(offsets),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn poll_loop(&self) {
        let cx = self.consumer.context();
        let mut permit: Option<Permit> = None;
        let mut waiting_since: Option<Instant> = None;
        let mut slots_paused = false;
        let mut topics = Topics::known(self.topics.iter().cloned());
        while !self.stop.load(SeqCst) && !self.events.is_closed() && !cx.failed() {
            cx.health.looped();
            if permit.is_none() {
                permit = self.permits.acquire_timeout(POLL);
                if permit.is_some() {
                    waiting_since = None;
                    if slots_paused {
                        slots_paused = cx.pauses.slots(&self.consumer, false);
                    }
                } else {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < SLOTS_STALL {
                        continue;
                    }
                    if !slots_paused {
                        slots_paused = cx.pauses.slots(&self.consumer, true);
                    }
                }
            }
            let parked = if permit.is_some() {
                cx.parked().pop_front()
            } else {
                None
            };
            let message = match parked {
                Some(m) => m,
                None => match self.consumer.poll(POLL) {
                    None => continue,
                    Some(Err(e)) => {
                        if matches!(
                            e.rdkafka_error_code(),
                            Some(
                                RDKafkaErrorCode::AllBrokersDown
                                    | RDKafkaErrorCode::BrokerTransportFailure
                            )
                        ) {
                            cx.health.broker_error();
                        }
                        tracing::warn!(error = %e, "consumer error");
                        continue;
                    }
                    Some(Ok(m)) => {
                        let topic = topics.get(responder_ffi::raw_message::topic(&m));
                        Received::copy(&m, topic)
                    }
                },
            };
            match permit.take() {
                Some(mut p) => {
                    p.charge(message.size());
                    if self.events.send(Event::Message(message, p)).is_err() {
                        break;
                    }
                }
                None => {
                    // Fetched before the pause took hold: kept until a slot frees.
                    tracing::debug!(
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        "record without a slot: kept until one frees"
                    );
                    cx.pauses
                        .pause_for_slots(&self.consumer, message.topic(), message.partition());
                    cx.parked().push_back(message);
                }
            }
        }
    }

    /// Commits the final offsets, waiting at most [`FINAL_COMMIT_TIMEOUT`] for the
    /// broker's answer. A synchronous commit waits without a bound of its own while the
    /// group coordinator is unreachable (up to the session timeout, or longer), and an
    /// asynchronous one reports no result here (librdkafka queues it only for an
    /// `offset_commit_cb`, which rust-rdkafka's event-based consumer does not set), so
    /// the synchronous commit runs on a helper thread that is not waited for past the
    /// bound.
    fn commit_final(&self, offsets: TopicPartitionList) {
        // Only partitions still assigned: one revoked meanwhile may be another
        // member's now, with newer commits of its own.
        let offsets = match self.consumer.assignment() {
            Ok(assigned) => {
                let mut kept = TopicPartitionList::new();
                for e in offsets.elements() {
                    if assigned.find_partition(e.topic(), e.partition()).is_some() {
                        let mut k = kept.add_partition(e.topic(), e.partition());
                        let _ = k.set_offset(e.offset());
                        k.set_metadata(e.metadata());
                    }
                }
                kept
            }
            Err(_) => offsets,
        };
        if offsets.count() == 0 {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = Arc::clone(&self.consumer);
        let spawned = std::thread::Builder::new()
            .name("responder-final-commit".into())
            .spawn(move || {
                let _ = tx.send(consumer.commit(&offsets, CommitMode::Sync));
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "final commit not made (no thread for it); the next owner answers the uncommitted requests again");
            return;
        }
        match rx.recv_timeout(FINAL_COMMIT_TIMEOUT) {
            Ok(Ok(())) => tracing::info!("final offsets committed"),
            Ok(Err(e)) => {
                self.consumer.context().metrics.commit_failed();
                tracing::warn!(
                    error = %e,
                    "final commit failed; the next owner answers the requests after the last committed offsets again"
                );
            }
            Err(_) => tracing::warn!(
                timeout_ms = FINAL_COMMIT_TIMEOUT.as_millis() as u64,
                "the final commit was not confirmed in time (is the broker reachable?); \
                 the next owner answers the requests after the last committed offsets again"
            ),
        }
    }

    /// Leaves the group, polling at most [`LEAVE_TIMEOUT`]. Returns whether it did.
    fn leave(&self) -> bool {
        if let Err(e) = self.consumer.close_queue() {
            tracing::warn!(error = %e, "closing the consumer failed");
            return false;
        }
        let deadline = Instant::now() + LEAVE_TIMEOUT;
        while !self.consumer.closed() {
            if Instant::now() >= deadline {
                tracing::warn!(
                    timeout_ms = LEAVE_TIMEOUT.as_millis() as u64,
                    "leaving the group did not finish in time; not waiting for it"
                );
                return false;
            }
            let _ = self.consumer.poll(POLL);
        }
        true
    }
}

/// Builds a partition list with offsets and metadata to commit.
pub(crate) fn offsets_list<'a>(
    offsets: impl IntoIterator<Item = &'a super::ledger::Commit>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for c in offsets {
        let mut elem = tpl.add_partition(&c.topic, c.partition);
        // Setting a plain offset on a fresh element cannot fail.
        let _ = elem.set_offset(Offset::Offset(c.offset));
        if !c.metadata.is_empty() {
            elem.set_metadata(&c.metadata);
        }
    }
    tpl
}
