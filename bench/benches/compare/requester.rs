//! The driver's requester: sends Spring-convention requests, reads every reply
//! partition, checks each reply against its request and times it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kafka_responder::ERROR_CODE_HEADER;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use responder_bench::contract::{
    CORRELATION_HEADER, Payload, REPLY_PARTITION_HEADER, REPLY_PARTITIONS, REPLY_TOPIC,
    REPLY_TOPIC_HEADER, REQUEST_TOPIC, check_reply,
};

/// The parent span `BENCH_TRACEPARENT=1` puts on every request, as a traced requester
/// (Micrometer, OpenTelemetry) would.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn with_traceparent() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BENCH_TRACEPARENT").is_ok_and(|v| v == "1"))
}

/// What the replies so far add up to.
#[derive(Default)]
pub(crate) struct Progress {
    /// Requests sent and not answered yet: correlation id -> (request id, sent at).
    outstanding: HashMap<u128, (u64, Instant)>,
    /// Replies that matched their request.
    pub(crate) answered: u64,
    /// When the first and the last good reply arrived.
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
    /// Round-trip time of each reply since the last [`Requester::reset`].
    pub(crate) latencies: Vec<Duration>,
    /// Wrong, unexpected or duplicate replies: any makes the run invalid.
    pub(crate) errors: Vec<String>,
}

impl Progress {
    /// Replies per second since the first one after the last reset (the window starts
    /// at the first reply, so it counts the others).
    pub(crate) fn per_sec(&self) -> f64 {
        match (self.first, self.last) {
            (Some(f), Some(l)) => (self.latencies.len() as f64 - 1.0) / (l - f).as_secs_f64(),
            _ => f64::NAN,
        }
    }
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One producer for requests, one consumer on every reply partition.
pub(crate) struct Requester {
    producer: ThreadedProducer<DefaultProducerContext>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    payload: Payload,
}

impl Requester {
    /// A requester for `payload` requests; `fetch_wait_ms` as the contestants'.
    pub(crate) fn new(
        bootstrap: &str,
        payload: Payload,
        fetch_wait_ms: &str,
    ) -> anyhow::Result<Self> {
        Self::batching(bootstrap, payload, fetch_wait_ms, None)
    }

    /// A requester whose producer batches up to `batch_bytes` per partition
    /// (`batch.size`; `None`: librdkafka's default, 1 MB).
    pub(crate) fn batching(
        bootstrap: &str,
        payload: Payload,
        fetch_wait_ms: &str,
        batch_bytes: Option<u32>,
    ) -> anyhow::Result<Self> {
        let mut producer = ClientConfig::new();
        producer
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "1")
            .set("queue.buffering.max.messages", "200000");
        if let Some(bytes) = batch_bytes {
            producer.set("batch.size", bytes.to_string());
        }
        let producer: ThreadedProducer<DefaultProducerContext> = producer.create()?;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "bench-requester")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", fetch_wait_ms)
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..REPLY_PARTITIONS {
            tpl.add_partition_offset(REPLY_TOPIC, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let shared = Arc::new(Shared {
            progress: Mutex::default(),
            changed: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("bench-replies".into())
                .spawn(move || read_replies(&consumer, &shared, &stop, payload))?
        };
        Ok(Requester {
            producer,
            shared,
            stop,
            poller: Some(poller),
            payload,
        })
    }

    /// Sends request `id` (correlation id = `id`, reply partition `id % 6`).
    pub(crate) fn send(&self, id: u64) -> anyhow::Result<()> {
        let (key, query) = self.payload.request(id);
        let body = serde_json::to_vec(&query)?;
        let correlation = u128::from(id).to_be_bytes();
        let reply_partition = Payload::reply_partition(id).to_be_bytes();
        let mut headers = OwnedHeaders::new_with_capacity(4);
        if with_traceparent() {
            headers = headers.insert(Header {
                key: "traceparent",
                value: Some(TRACEPARENT),
            });
        }
        let headers = headers
            .insert(Header {
                key: REPLY_TOPIC_HEADER,
                value: Some(REPLY_TOPIC),
            })
            .insert(Header {
                key: REPLY_PARTITION_HEADER,
                value: Some(&reply_partition[..]),
            })
            .insert(Header {
                key: CORRELATION_HEADER,
                value: Some(&correlation[..]),
            });
        self.shared
            .lock()
            .outstanding
            .insert(u128::from(id), (id, Instant::now()));
        let mut record = BaseRecord::to(REQUEST_TOPIC)
            .key(&key)
            .payload(&body)
            .headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("request {id} not sent: {e}"),
            }
        }
    }

    /// Sends requests `ids` and waits until the broker has them all.
    pub(crate) fn queue(&self, ids: std::ops::Range<u64>) -> anyhow::Result<()> {
        for id in ids {
            self.send(id)?;
        }
        self.producer
            .flush(Duration::from_secs(60))
            .context("queueing the backlog")
    }

    /// Waits until `count` replies have been answered; fails on a wrong reply or after
    /// `timeout`.
    pub(crate) fn wait_answered(&self, count: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut p = self.shared.lock();
        loop {
            if let Some(e) = p.errors.first() {
                bail!("invalid run: {e} ({} wrong replies)", p.errors.len());
            }
            if p.answered >= count {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "invalid run: {} of {count} replies after {timeout:?} ({} outstanding)",
                    p.answered,
                    p.outstanding.len()
                );
            }
            p = self
                .shared
                .changed
                .wait_timeout(p, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The replies so far.
    pub(crate) fn progress(&self) -> MutexGuard<'_, Progress> {
        self.shared.lock()
    }

    /// Forgets the latencies and first-reply time recorded so far.
    pub(crate) fn reset(&self) {
        let mut p = self.shared.lock();
        p.latencies.clear();
        p.first = None;
    }

    /// Every request answered, each exactly once and correctly.
    pub(crate) fn check_complete(&self) -> anyhow::Result<()> {
        let p = self.shared.lock();
        if let Some(e) = p.errors.first() {
            bail!("invalid run: {e} ({} wrong replies)", p.errors.len());
        }
        if !p.outstanding.is_empty() {
            bail!("invalid run: {} requests unanswered", p.outstanding.len());
        }
        Ok(())
    }
}

impl Drop for Requester {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}

fn read_replies(consumer: &BaseConsumer, shared: &Shared, stop: &AtomicBool, payload: Payload) {
    while !stop.load(Relaxed) {
        let Some(message) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let now = Instant::now();
        let mut p = shared.lock();
        let m = match message {
            Ok(m) => m,
            Err(e) => {
                p.errors.push(format!("reading replies: {e}"));
                shared.changed.notify_all();
                continue;
            }
        };
        let header = |name: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
        };
        let correlation = header(CORRELATION_HEADER)
            .and_then(|c| <[u8; 16]>::try_from(c).ok())
            .map(u128::from_be_bytes);
        let verdict = match correlation.and_then(|c| p.outstanding.remove(&c)) {
            None => Err(format!(
                "reply at {}/{} matches no outstanding request (correlation {correlation:?})",
                m.partition(),
                m.offset()
            )),
            Some((id, sent)) => match header(ERROR_CODE_HEADER) {
                Some(code) => Err(format!(
                    "request {id}: error reply {}",
                    String::from_utf8_lossy(code)
                )),
                None => check_reply(payload, id, m.partition(), m.key(), m.payload())
                    .map(|()| now - sent),
            },
        };
        match verdict {
            Ok(latency) => {
                p.answered += 1;
                p.first.get_or_insert(now);
                p.last = Some(now);
                p.latencies.push(latency);
            }
            Err(e) => p.errors.push(e),
        }
        shared.changed.notify_all();
    }
}
