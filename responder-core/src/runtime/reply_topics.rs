//! What the broker says about reply topics, cached: whether a topic exists, how many
//! partitions it has, and whether the responder may write to it. A reply to a topic
//! that does not exist, to a partition it does not have, or that the broker refuses
//! is known unanswerable before anything is produced.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};

use crate::address::{ReplyAddress, Unanswerable};
use crate::describe_topics::describe_topics;

/// What to do when the write-access check (KIP-430) is on and the broker reports no
/// authorized operations for a reply topic (it predates KIP-430, or has no authorizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unreported {
    /// Trust the reply-topic policy alone.
    Allow,
    /// Refuse the reply topic (`reply_topic_not_authorized`): fail closed.
    Refuse,
}

/// A refusal (no such topic or partition) is checked again after this long: topics
/// are created and grow partitions, and a requester should not wait `TTL` for it.
const RECHECK_REFUSAL_AFTER: Duration = Duration::from_secs(2);
/// Requests for metadata wait this long at most.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Topics remembered at most (a prefixed policy admits unboundedly many names).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Partitions(i32),
    Missing,
    NotAuthorized,
}

/// The cache, one per responder.
pub(crate) struct ReplyTopics {
    /// How long what the broker said is trusted.
    ttl: Duration,
    /// Whether to ask for authorized operations (KIP-430), and what to do without.
    write_access: Option<Unreported>,
    entries: Mutex<HashMap<String, (Instant, Known)>>,
    /// One metadata request at a time: a burst of requests for a new topic asks once.
    fetching: tokio::sync::Mutex<()>,
}

impl ReplyTopics {
    pub(crate) fn new(ttl: Duration, write_access: Option<Unreported>) -> Self {
        ReplyTopics {
            ttl,
            write_access,
            entries: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Checks `to` against what the broker says. When the broker cannot be asked, the
    /// reply is produced anyway and the producer's own errors apply.
    pub(crate) async fn check(
        &self,
        producer: &FutureProducer,
        to: &ReplyAddress,
    ) -> Result<(), Unanswerable> {
        let known = match self.cached(&to.topic) {
            Some(k) => Some(k),
            None => {
                let _one = self.fetching.lock().await;
                match self.cached(&to.topic) {
                    Some(k) => Some(k),
                    None => self.fetch(producer, &to.topic).await,
                }
            }
        };
        match (known, to.partition) {
            (Some(Known::Missing), _) => Err(Unanswerable::UnknownReplyTopic(to.topic.clone())),
            (Some(Known::NotAuthorized), _) => {
                Err(Unanswerable::ReplyTopicNotAuthorized(to.topic.clone()))
            }
            (Some(Known::Partitions(n)), Some(p)) if p >= n => {
                Err(Unanswerable::ReplyPartitionOutOfRange {
                    topic: to.topic.clone(),
                    partition: p,
                    partitions: n,
                })
            }
            _ => Ok(()),
        }
    }

    fn cached(&self, topic: &str) -> Option<Known> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, known) = entries.get(topic)?;
        let fresh_for = match known {
            Known::Partitions(_) => self.ttl,
            Known::Missing | Known::NotAuthorized => RECHECK_REFUSAL_AFTER.min(self.ttl),
        };
        (at.elapsed() < fresh_for).then_some(*known)
    }

    async fn fetch(&self, producer: &FutureProducer, topic: &str) -> Option<Known> {
        let producer = producer.clone();
        let name = topic.to_owned();
        let known = match self.write_access {
            None => tokio::task::spawn_blocking(move || from_metadata(&producer, &name))
                .await
                .ok()??,
            Some(unreported) => {
                tokio::task::spawn_blocking(move || from_description(&producer, &name, unreported))
                    .await
                    .ok()??
            }
        };
        if known == Known::Partitions(0) {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(topic.to_owned(), (Instant::now(), known));
        Some(known)
    }
}

/// Existence and partitions from a metadata request.
fn from_metadata(producer: &FutureProducer, topic: &str) -> Option<Known> {
    let metadata = match producer
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
    {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(topic, error = %e, "reply topic metadata unavailable");
            return None;
        }
    };
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    match t.error().map(RDKafkaErrorCode::from) {
        None => Some(Known::Partitions(
            i32::try_from(t.partitions().len()).unwrap_or(i32::MAX),
        )),
        Some(code) => from_error(topic, code),
    }
}

/// Existence and partitions from metadata, then write access from DescribeTopics
/// (KIP-430), asked of the broker leading the topic's first partition.
fn from_description(
    producer: &FutureProducer,
    topic: &str,
    unreported: Unreported,
) -> Option<Known> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| tracing::debug!(topic, error = %e, "reply topic metadata unavailable"))
        .ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    if let Some(code) = t.error() {
        return from_error(topic, code.into());
    }
    let partitions = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
    let broker = t
        .partitions()
        .iter()
        .map(|p| p.leader())
        .find(|l| *l >= 0)
        .or_else(|| metadata.brokers().first().map(|b| b.id()));
    let described = match describe_topics(producer.client(), &[topic], broker, METADATA_TIMEOUT) {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(topic, error = %e.code, message = e.message, "DescribeTopics failed");
            return None;
        }
    };
    let t = described.into_iter().find(|t| t.name == topic)?;
    if let Some(code) = t.error {
        return from_error(topic, code);
    }
    let may_write = match (t.may_write(), unreported) {
        (Some(w), _) => w,
        (None, Unreported::Allow) => true,
        (None, Unreported::Refuse) => {
            tracing::warn!(
                topic,
                "the broker reports no authorized operations; refusing (fail closed)"
            );
            false
        }
    };
    Some(if may_write {
        Known::Partitions(partitions)
    } else {
        Known::NotAuthorized
    })
}

fn from_error(topic: &str, code: RDKafkaErrorCode) -> Option<Known> {
    match code {
        RDKafkaErrorCode::UnknownTopicOrPartition => Some(Known::Missing),
        RDKafkaErrorCode::TopicAuthorizationFailed => Some(Known::NotAuthorized),
        other => {
            tracing::debug!(topic, error = %other, "reply topic metadata has an error");
            None
        }
    }
}
