//! What the broker says about reply topics, cached: whether a topic exists, how many
//! partitions it has, and whether the responder may write to it. Asking and caching
//! live here; what each answer means for a reply is decided in `admission.rs`.

use foldhash::HashMap;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use super::acks::ReplyProducer;
use super::recent_topics::{Owner, Recent};
use crate::address::{ReplyAddress, Unanswerable};
use crate::admission::{self, TopicVerdict};
use crate::config::UnknownWriteAccess;
use crate::topic_names::TopicName;
use responder_ffi::describe_topics::describe_topics;

/// A refusal (no such topic or partition), or a lookup that got no answer, is checked
/// again after this long: topics are created and grow partitions, and a requester
/// should not wait a whole TTL for it; meanwhile repeated requests do not ask again.
const RECHECK_AFTER: Duration = Duration::from_secs(2);
/// Requests for metadata wait this long at most.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Topics remembered at most (a prefixed policy admits unboundedly many names); when
/// full, the oldest half is forgotten.
const MAX_ENTRIES: usize = 10_000;
/// A TTL beyond what an `Instant` can hold: about a century.
const FOR_GOOD: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When the broker said it, and what.
type Entry = (Instant, TopicVerdict);

/// A cached answer: when it was given, until when it is trusted (kept, not worked out
/// per request: a comparison of instants costs a fraction of a subtraction), and what
/// it was.
type Cached = (Instant, Instant, TopicVerdict);

thread_local! {
    /// Each thread's copies of the entries it read lately (see `recent_topics.rs`),
    /// with the cache's version when read: a request reads its topic's entry without
    /// the lock or a hash (~130 instructions a request under callgrind).
    static READ: RefCell<Recent<(u64, Cached)>> = const { RefCell::new(Recent::new()) };
}

/// The cache, one per responder.
pub(crate) struct ReplyTopics {
    /// How long what the broker said is trusted.
    ttl: Duration,
    /// Whether to ask for authorized operations (KIP-430), and what to do without.
    write_access: Option<UnknownWriteAccess>,
    entries: Mutex<HashMap<String, Cached>>,
    /// Bumped (under the lock) whenever `entries` changes: a thread's copy read at an
    /// older version is read again.
    version: AtomicU64,
    /// Tells this cache's copies in a thread's memo from another responder's.
    owner: Owner,
    /// Lookups under way, one per topic: a burst of requests for a new topic asks the
    /// broker once, and lookups of different topics do not wait for each other.
    lookups: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ReplyTopics {
    pub(crate) fn new(ttl: Duration, write_access: Option<UnknownWriteAccess>) -> Self {
        ReplyTopics {
            ttl,
            write_access,
            entries: Mutex::new(HashMap::default()),
            version: AtomicU64::new(0),
            owner: Owner::new(),
            lookups: Mutex::new(HashMap::default()),
        }
    }

    /// Checks `to` against what the broker says. When the broker cannot be asked, the
    /// reply is produced anyway and the producer's own errors apply.
    pub(crate) async fn check(
        &self,
        producer: &ReplyProducer,
        to: &ReplyAddress,
    ) -> Result<(), Unanswerable> {
        let entry = self.fresh_read(&to.topic);
        // A partition beyond a count learnt a while ago: the topic may have grown.
        let recheck = matches!(
            (entry, to.partition),
            (Some((at, TopicVerdict::Partitions(n))), Some(p)) if p >= n && at.elapsed() >= RECHECK_AFTER
        );
        let known = match entry {
            Some((_, known)) if !recheck => known,
            // Boxed: a lookup is rare, and its future would make every request's
            // larger.
            _ => Box::pin(self.look_up(producer, &to.topic, recheck)).await,
        };
        admission::admit_by_broker(to, known)
    }

    /// The cached entry for `topic`, if still fresh.
    fn fresh(&self, topic: &str) -> Option<Entry> {
        self.cached(topic).and_then(still_fresh)
    }

    /// The cached entry for `topic`, fresh or not.
    fn cached(&self, topic: &str) -> Option<Cached> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(topic).copied()
    }

    /// As [`fresh`](Self::fresh), from this thread's copy of the entry when the cache
    /// has not changed since it was read.
    fn fresh_read(&self, topic: &TopicName) -> Option<Entry> {
        // Read before the entry: a change after this makes the copy older than the
        // version, never the other way round.
        let version = self.version.load(Acquire);
        let copy = READ.with_borrow(|read| read.get(self.owner, topic));
        let cached = match copy {
            Some((v, cached)) if v == version => cached,
            _ => {
                let cached = self.cached(topic)?;
                READ.with_borrow_mut(|read| read.put(self.owner, topic, (version, cached)));
                cached
            }
        };
        still_fresh(cached)
    }

    /// Caches what the broker said of `topic`, from now on.
    fn remember(&self, topic: &str, known: TopicVerdict) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            let mut ages: Vec<Instant> = entries.values().map(|(at, ..)| *at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            entries.retain(|_, (at, ..)| *at > cutoff);
        }
        let at = Instant::now();
        // A TTL too long to add means: trusted for good.
        let until = (at.checked_add(self.fresh_for(known)))
            .or_else(|| at.checked_add(FOR_GOOD))
            .unwrap_or(at);
        entries.insert(topic.to_owned(), (at, until, known));
        self.version.fetch_add(1, Release);
    }

    /// How long `known` is trusted.
    fn fresh_for(&self, known: TopicVerdict) -> Duration {
        match known {
            TopicVerdict::Partitions(_) => self.ttl,
            TopicVerdict::Missing | TopicVerdict::NotAuthorized | TopicVerdict::Unverified => {
                RECHECK_AFTER.min(self.ttl)
            }
        }
    }

    /// Asks the broker, once per topic at a time. With `recheck`, an entry is taken
    /// from the cache only if another request refreshed it moments ago.
    async fn look_up(&self, producer: &ReplyProducer, topic: &str, recheck: bool) -> TopicVerdict {
        let lock = {
            let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(lookups.entry(topic.to_owned()).or_default())
        };
        let guard = lock.lock().await;
        // Another request may have asked while this one waited.
        let known = match self.fresh(topic) {
            Some((at, known)) if !recheck || at.elapsed() < RECHECK_AFTER => known,
            _ => {
                let known = self.fetch(producer, topic).await;
                self.remember(topic, known);
                known
            }
        };
        drop(guard);
        let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        if Arc::strong_count(&lock) <= 2 {
            lookups.remove(topic);
        }
        known
    }

    async fn fetch(&self, producer: &ReplyProducer, topic: &str) -> TopicVerdict {
        let producer = producer.clone();
        let name = topic.to_owned();
        let write_access = self.write_access;
        let known =
            tokio::task::spawn_blocking(move || ask_broker(&producer, &name, write_access)).await;
        match known {
            Ok(Some(TopicVerdict::Partitions(0)) | None) | Err(_) => TopicVerdict::Unverified,
            Ok(Some(known)) => known,
        }
    }
}

/// A cached answer, if still trusted now.
fn still_fresh((at, until, known): Cached) -> Option<Entry> {
    (Instant::now() < until).then_some((at, known))
}

/// What the broker says about `topic`: existence and partitions from its metadata,
/// then, with the write-access check on, the principal's operations (KIP-430), asked
/// of the broker leading the topic's first partition. `None`: no usable answer.
fn ask_broker(
    producer: &ReplyProducer,
    topic: &str,
    write_access: Option<UnknownWriteAccess>,
) -> Option<TopicVerdict> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| tracing::debug!(topic, error = %e, "reply topic metadata unavailable"))
        .ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    if let Some(code) = t.error() {
        return admission::verdict_of_error(topic, code as i32);
    }
    let partitions = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
    let Some(unreported) = write_access else {
        return Some(TopicVerdict::Partitions(partitions));
    };
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
        return admission::verdict_of_error(topic, code);
    }
    Some(admission::write_verdict(
        topic,
        t.may_write(),
        unreported,
        partitions,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(cache: &ReplyTopics, topic: &TopicName) -> Option<TopicVerdict> {
        cache.fresh_read(topic).map(|(_, known)| known)
    }

    /// A thread's copy of an entry is read again once the cache changed: what the
    /// broker says later is what the next request sees.
    #[test]
    fn a_threads_copy_follows_the_cache() {
        let minute = Duration::from_secs(60);
        let cache = ReplyTopics::new(minute, None);
        let replies = TopicName::valid("replies");
        assert_eq!(verdict(&cache, &replies), None);
        cache.remember("replies", TopicVerdict::Partitions(3));
        assert_eq!(verdict(&cache, &replies), Some(TopicVerdict::Partitions(3)));
        assert_eq!(verdict(&cache, &replies), Some(TopicVerdict::Partitions(3)));
        cache.remember("replies", TopicVerdict::Missing);
        assert_eq!(verdict(&cache, &replies), Some(TopicVerdict::Missing));
        // Another responder's cache is its own.
        let other = ReplyTopics::new(minute, None);
        assert_eq!(verdict(&other, &replies), None);
        other.remember("replies", TopicVerdict::Partitions(1));
        assert_eq!(verdict(&other, &replies), Some(TopicVerdict::Partitions(1)));
        assert_eq!(verdict(&cache, &replies), Some(TopicVerdict::Missing));
        // An entry past its time is not fresh, copied or not.
        let brief = ReplyTopics::new(Duration::ZERO, None);
        brief.remember("replies", TopicVerdict::Partitions(3));
        assert_eq!(verdict(&brief, &replies), None);
        assert_eq!(verdict(&brief, &replies), None);
    }
}
