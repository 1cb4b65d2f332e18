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

/// How long what the broker said is trusted.
const TTL: Duration = Duration::from_secs(30);
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
    entries: Mutex<HashMap<String, (Instant, Known)>>,
    /// One metadata request at a time: a burst of requests for a new topic asks once.
    fetching: tokio::sync::Mutex<()>,
}

impl ReplyTopics {
    pub(crate) fn new() -> Self {
        ReplyTopics {
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
            Known::Partitions(_) => TTL,
            Known::Missing | Known::NotAuthorized => RECHECK_REFUSAL_AFTER,
        };
        (at.elapsed() < fresh_for).then_some(*known)
    }

    async fn fetch(&self, producer: &FutureProducer, topic: &str) -> Option<Known> {
        let producer = producer.clone();
        let name = topic.to_owned();
        let answer = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&name), METADATA_TIMEOUT)
        })
        .await
        .ok()?;
        let metadata = match answer {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(topic, error = %e, "reply topic metadata unavailable");
                return None;
            }
        };
        let t = metadata.topics().iter().find(|t| t.name() == topic)?;
        let known = match t.error().map(RDKafkaErrorCode::from) {
            None => Known::Partitions(i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Known::Missing,
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => Known::NotAuthorized,
            Some(other) => {
                tracing::debug!(topic, error = %other, "reply topic metadata has an error");
                return None;
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
