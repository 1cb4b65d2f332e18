//! Fetch pauses: the one owner of librdkafka's pause flags, which two reasons set.
//!
//! - The dispatcher pauses a partition that holds too much (its ledger says so).
//! - The consumer thread pauses the whole assignment while no in-flight slot has been
//!   free for a while (every one taken, or the bytes in flight at their bound), so that it can keep polling (rebalances, the poll
//!   interval and shutdown are served) without receiving records it has no slot for.
//!
//! A partition is fetched when neither reason holds. Both go through here, so that
//! lifting one reason never lifts the other.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

#[derive(Debug, Default)]
struct State {
    /// Partitions the dispatcher wants paused.
    wanted: HashSet<(String, i32)>,
    /// Every in-flight slot is taken: the whole assignment is paused.
    slots_full: bool,
}

/// The pause flags of one consumer.
#[derive(Debug, Default)]
pub(crate) struct Pauses(Mutex<State>);

fn apply<C: ConsumerContext>(consumer: &BaseConsumer<C>, tpl: &TopicPartitionList, pause: bool) {
    if tpl.count() == 0 {
        return;
    }
    let result = if pause {
        consumer.pause(tpl)
    } else {
        consumer.resume(tpl)
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, pause, "pausing or resuming fetching failed");
    }
}

impl Pauses {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The dispatcher's wish for one partition.
    pub(crate) fn partition<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
        pause: bool,
    ) {
        let mut s = self.state();
        let key = (topic.to_owned(), partition);
        let changed = if pause {
            s.wanted.insert(key)
        } else {
            s.wanted.remove(&key)
        };
        if changed && !s.slots_full {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            apply(consumer, &tpl, pause);
            tracing::debug!(topic, partition, pause, "partition fetch paused/resumed");
        }
    }

    /// Every in-flight slot taken (`full`), or one free again. Returns whether the
    /// assignment is now paused for the slots.
    pub(crate) fn slots<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, full: bool) -> bool {
        let mut s = self.state();
        if s.slots_full == full {
            return full;
        }
        // Set only once the assignment is read: a failed read is tried again on the
        // consumer thread's next call.
        let assignment = match consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "reading the assignment failed");
                return s.slots_full;
            }
        };
        s.slots_full = full;
        if full {
            apply(consumer, &assignment, true);
            tracing::info!(
                "no in-flight slot is free (all taken, or the bytes in flight at their bound): \
                 fetching paused while the handlers catch up \
                 (the consumer keeps polling)"
            );
        } else {
            let mut resume = TopicPartitionList::new();
            for e in assignment.elements() {
                if !s.wanted.contains(&(e.topic().to_owned(), e.partition())) {
                    resume.add_partition(e.topic(), e.partition());
                }
            }
            apply(consumer, &resume, false);
            tracing::info!("in-flight slots free again: fetching resumed");
        }
        full
    }

    /// Pauses one partition for the slots (a record of it arrived with none free).
    pub(crate) fn pause_for_slots<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) {
        let _s = self.state();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        apply(consumer, &tpl, true);
    }

    /// Partitions newly assigned: they start with no wish of the dispatcher's (a new
    /// book), paused only if the slots are full. A partition that comes back keeps
    /// librdkafka's pause flag otherwise, so each is set explicitly.
    pub(crate) fn assigned<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) {
        let mut s = self.state();
        for e in tpl.elements() {
            s.wanted.remove(&(e.topic().to_owned(), e.partition()));
        }
        apply(consumer, tpl, s.slots_full);
    }
}
