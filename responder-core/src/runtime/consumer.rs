//! The consumer thread: polls the broker, hands records to the dispatcher, and runs the
//! group's rebalance callbacks (a revocation waits until the dispatcher has drained the
//! revoked partitions and then commits their watermarks).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::OwnedMessage;
use tokio::sync::{mpsc, oneshot};

use super::permits::{Permit, Permits};

/// What the consumer thread tells the dispatcher.
pub(crate) enum Event {
    /// A record, with the in-flight slot it occupies.
    Message(OwnedMessage, Permit),
    /// Partitions were assigned to this member.
    Assigned(Vec<Assigned>),
    /// Partitions are being revoked: drain them, then send back the offsets to commit.
    Revoked(Vec<(String, i32)>, oneshot::Sender<TopicPartitionList>),
    /// The consumer thread has committed its final offsets and left the group.
    Closed,
}

/// A partition newly assigned, with what its previous owner already settled.
pub(crate) struct Assigned {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Offsets above the committed one that the previous owner settled (from the
    /// commit metadata): inclusive, ascending ranges.
    pub(crate) known_settled: Vec<(i64, i64)>,
}

/// The consumer's context: forwards rebalances to the dispatcher.
pub(crate) struct ConsumerCx {
    events: mpsc::UnboundedSender<Event>,
    closing: AtomicBool,
}

impl ConsumerCx {
    pub(crate) fn new(events: mpsc::UnboundedSender<Event>) -> Self {
        ConsumerCx {
            events,
            closing: AtomicBool::new(false),
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Reads the committed offsets (and their metadata) of newly assigned partitions. This
/// runs on the consumer thread before any record of them is returned, so the dispatcher
/// knows what to skip before the first record arrives. If the read fails, nothing is
/// skipped: duplicates, never loss.
fn assigned(consumer: &BaseConsumer<ConsumerCx>, tpl: &TopicPartitionList) -> Vec<Assigned> {
    let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "could not read committed offsets; settled requests may be answered again");
            None
        }
    };
    tpl.elements()
        .iter()
        .map(|e| {
            let (topic, partition) = (e.topic().to_owned(), e.partition());
            let known_settled = committed
                .as_ref()
                .and_then(|c| c.find_partition(&topic, partition))
                .and_then(|c| match c.offset() {
                    rdkafka::Offset::Offset(o) => {
                        Some(crate::offset_metadata::decode(o, c.metadata()))
                    }
                    _ => None,
                })
                .unwrap_or_default();
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
        let revoked = partitions(tpl);
        tracing::info!(partitions = ?revoked, "partitions revoked: draining in-flight requests");
        let (tx, rx) = oneshot::channel();
        if self.events.send(Event::Revoked(revoked, tx)).is_err() {
            return;
        }
        // The dispatcher answers once the revoked partitions are drained (or the drain
        // deadline passed). If it is gone (the responder was dropped), commit nothing.
        if let Ok(offsets) = rx.blocking_recv()
            && offsets.count() > 0
        {
            if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                tracing::warn!(error = %e, "commit on revocation failed");
            } else {
                tracing::debug!(offsets = ?offsets, "committed on revocation");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = ?partitions(tpl), "partitions assigned");
                // A partition this member paused (backpressure) and that comes back to
                // it after a revocation keeps librdkafka's application pause flag:
                // start every assigned partition unpaused, as the dispatcher assumes.
                if let Err(e) = consumer.resume(tpl) {
                    tracing::warn!(error = %e, "resuming newly assigned partitions failed");
                }
                let _ = self.events.send(Event::Assigned(assigned(consumer, tpl)));
            }
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
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) permits: Permits,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) final_offsets: std::sync::mpsc::Receiver<TopicPartitionList>,
    pub(crate) closed: tokio::sync::watch::Sender<bool>,
}

const POLL: Duration = Duration::from_millis(100);

impl ConsumerThread {
    /// Polls until told to stop (or until the dispatcher is gone), then commits the
    /// final offsets the dispatcher sends and leaves the group.
    pub(crate) fn run(self) {
        let mut permit: Option<Permit> = None;
        while !self.stop.load(SeqCst) && !self.events.is_closed() {
            if permit.is_none() {
                permit = self.permits.acquire_timeout(POLL);
                if permit.is_none() {
                    continue;
                }
            }
            match self.consumer.poll(POLL) {
                None => {}
                Some(Ok(message)) => {
                    let Some(p) = permit.take() else { continue };
                    if self
                        .events
                        .send(Event::Message(message.detach(), p))
                        .is_err()
                    {
                        break;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            }
        }
        drop(permit);
        // A dispatcher that stops cleanly sends the final offsets; one that was dropped
        // (a crash, as far as the group is concerned) sends nothing and nothing more
        // is committed.
        if let Ok(offsets) = self.final_offsets.recv()
            && offsets.count() > 0
        {
            match self.consumer.commit(&offsets, CommitMode::Sync) {
                Ok(()) => tracing::info!(offsets = ?offsets, "final offsets committed"),
                Err(e) => tracing::warn!(error = %e, "final commit failed"),
            }
        }
        self.consumer.context().closing.store(true, SeqCst);
        let (events, closed) = (self.events.clone(), self.closed.clone());
        drop(self); // the last reference to the consumer: it leaves the group here
        let _ = closed.send(true);
        let _ = events.send(Event::Closed);
    }
}

/// Builds a partition list with offsets and metadata to commit.
pub(crate) fn offsets_list<'a>(
    offsets: impl IntoIterator<Item = (&'a str, i32, (i64, String))>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, (offset, metadata)) in offsets {
        let mut elem = tpl.add_partition(topic, partition);
        // Setting a plain offset on a fresh element cannot fail.
        let _ = elem.set_offset(rdkafka::Offset::Offset(offset));
        if !metadata.is_empty() {
            elem.set_metadata(metadata);
        }
    }
    tpl
}
