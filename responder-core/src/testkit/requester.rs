//! A requester for tests: sends requests with any header convention and awaits each
//! reply by correlation id.
//!
//! It avoids the classic lost-reply bug of request-reply over Kafka: instead of
//! subscribing to the reply topic in a shared group (where a rebalance can hand its
//! reply partition to another instance), it *assigns* its reply partition explicitly,
//! starting at the partition's end as it was before the first request was sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;

use crate::error::Error;
use crate::error_reply::{ERROR_CODE_HEADER, ERROR_MESSAGE_HEADER};
use crate::headers::HeaderConvention;

/// A reply as the requester received it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The partition it arrived on.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its payload.
    pub payload: Option<Vec<u8>>,
    /// Every header, in order (a key that is not UTF-8 read lossily; see
    /// `header_keys` for the bytes).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Every header's key as bytes, in order.
    pub header_keys: Vec<Vec<u8>>,
}

impl Reply {
    /// The first header named `name` (a null value reads as empty).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref().unwrap_or_default())
    }

    /// The error code, if this is an error reply.
    pub fn error_code(&self) -> Option<&str> {
        self.header(ERROR_CODE_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The error message, if this is an error reply.
    pub fn error_message(&self) -> Option<&str> {
        self.header(ERROR_MESSAGE_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Decodes the payload as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.payload.as_deref().unwrap_or_default())
    }
}

/// A request got no reply in time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request could not be produced.
    #[error("request not sent: {0}")]
    Send(String),
    /// No reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

type Waiters = Arc<Mutex<HashMap<Vec<u8>, oneshot::Sender<Reply>>>>;

/// A reply not received yet: await it with [`Requester::wait`].
#[derive(Debug)]
#[non_exhaustive]
pub struct PendingReply {
    /// The request's correlation id.
    pub correlation_id: Vec<u8>,
    reply: oneshot::Receiver<Reply>,
}

impl PendingReply {
    /// The reply, waiting at most `timeout` (usable where the requester is not at hand).
    pub async fn within(self, timeout: Duration) -> Result<Reply, RequestError> {
        match tokio::time::timeout(timeout, self.reply).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(RequestError::Timeout(timeout)),
        }
    }
}

/// A requester bound to one reply topic and partition.
pub struct Requester {
    producer: FutureProducer,
    convention: HeaderConvention,
    reply_topic: String,
    reply_partition: i32,
    send_partition: bool,
    waiters: Waiters,
    all: Arc<Mutex<Vec<Reply>>>,
    stop: Arc<AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
    timeout: Duration,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester")
            .field("convention", &self.convention.name())
            .field("reply_topic", &self.reply_topic)
            .field("reply_partition", &self.reply_partition)
            .finish()
    }
}

impl Requester {
    /// A requester that sends with `convention` and listens on `reply_topic`'s
    /// partition `reply_partition` (named in each request's headers when the
    /// convention has a partition header).
    pub async fn new(
        bootstrap_servers: &str,
        convention: HeaderConvention,
        reply_topic: &str,
        reply_partition: i32,
    ) -> Result<Self, Error> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap_servers)
            .set("linger.ms", "1")
            .create()
            .map_err(|e| Error::kafka("creating the requester's producer", e))?;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap_servers)
            .set("group.id", super::unique_name("requester"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(|e| Error::kafka("creating the requester's consumer", e))?;
        let topic = reply_topic.to_owned();
        let (consumer, high) = tokio::task::spawn_blocking(move || {
            let (_, high) = consumer
                .fetch_watermarks(&topic, reply_partition, Duration::from_secs(10))
                .map_err(|e| Error::kafka("reading the reply partition's end", e))?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, reply_partition, Offset::Offset(high))
                .map_err(|e| Error::kafka("assigning the reply partition", e))?;
            consumer
                .assign(&tpl)
                .map_err(|e| Error::kafka("assigning the reply partition", e))?;
            Ok::<_, Error>((consumer, high))
        })
        .await
        .map_err(|e| Error::config(format!("requester setup panicked: {e}")))??;
        tracing::debug!(reply_topic, reply_partition, high, "requester listening");

        let waiters: Waiters = Arc::default();
        let all = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let correlation_header = convention.correlation_id_header().to_owned();
        let poller = {
            let (waiters, all, stop) = (waiters.clone(), all.clone(), stop.clone());
            std::thread::Builder::new()
                .name("test-requester".into())
                .spawn(move || {
                    while !stop.load(Relaxed) {
                        let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
                            continue;
                        };
                        let (mut headers, mut header_keys) = (Vec::new(), Vec::new());
                        if let Some(h) = m.headers() {
                            // Keys as bytes: rust-rdkafka's reader panics on one that
                            // is not UTF-8.
                            responder_ffi::raw_headers::for_each(h, |key, value| {
                                headers.push((
                                    String::from_utf8_lossy(key).into_owned(),
                                    value.map(<[u8]>::to_vec),
                                ));
                                header_keys.push(key.to_vec());
                            });
                        }
                        let reply = Reply {
                            partition: m.partition(),
                            offset: m.offset(),
                            key: m.key().map(<[u8]>::to_vec),
                            payload: m.payload().map(<[u8]>::to_vec),
                            headers,
                            header_keys,
                        };
                        let corr = reply.header(&correlation_header).map(<[u8]>::to_vec);
                        all.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(reply.clone());
                        if let Some(corr) = corr {
                            let waiter = waiters
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .remove(&corr);
                            if let Some(w) = waiter {
                                let _ = w.send(reply);
                            }
                        }
                    }
                })
                .map_err(|e| Error::config(format!("spawning the requester thread: {e}")))?
        };
        Ok(Requester {
            producer,
            send_partition: convention.reply_partition_header().is_some(),
            convention,
            reply_topic: reply_topic.to_owned(),
            reply_partition,
            waiters,
            all,
            stop,
            poller: Some(poller),
            timeout: Duration::from_secs(30),
        })
    }

    /// Sets how long [`request`](Self::request) waits for a reply (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Leaves the partition header out of requests (the reply then goes wherever the
    /// producer's partitioner puts it).
    pub fn without_partition_header(mut self) -> Self {
        self.send_partition = false;
        self
    }

    /// A fresh correlation id in the convention's usual form: 16 raw bytes for
    /// Spring, the 36-character dashed UUID text for the others.
    pub fn new_correlation_id(&self) -> Vec<u8> {
        static N: AtomicU64 = AtomicU64::new(1);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let n = N.fetch_add(1, Relaxed) ^ (u64::from(std::process::id()) << 40);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&t.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        if self.convention.name() == "spring" {
            return bytes.to_vec();
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
        .into_bytes()
    }

    /// The reply headers this requester puts on a request with `correlation_id`.
    pub fn request_headers(&self, correlation_id: &[u8]) -> Vec<(String, Vec<u8>)> {
        let c = &self.convention;
        let mut headers = vec![
            (
                c.reply_topic_header().to_owned(),
                self.reply_topic.clone().into_bytes(),
            ),
            (
                c.correlation_id_header().to_owned(),
                correlation_id.to_vec(),
            ),
        ];
        if self.send_partition
            && let (Some((name, _)), Some(value)) = (
                c.reply_partition_header(),
                c.encode_partition(self.reply_partition),
            )
        {
            headers.push((name.to_owned(), value));
        }
        headers
    }

    /// Sends a request and waits for its reply.
    pub async fn request(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<Reply, RequestError> {
        let (pending, _) = self.send(topic, None, key, payload).await?;
        self.wait(pending).await
    }

    /// Sends a request (to `partition`, or where the partitioner puts it) without
    /// waiting for the reply. Returns the pending reply and where the request landed
    /// (partition, offset).
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(PendingReply, (i32, i64)), RequestError> {
        let corr = self.new_correlation_id();
        let headers = self.request_headers(&corr);
        let pending = self.expect(corr);
        let at = self
            .send_raw(topic, partition, key, Some(payload), &headers)
            .await?;
        Ok((pending, at))
    }

    /// Registers interest in the reply with correlation id `corr` (for requests sent
    /// with [`send_raw`](Self::send_raw), or to catch a second reply).
    pub fn expect(&self, corr: Vec<u8>) -> PendingReply {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(corr.clone(), tx);
        PendingReply {
            correlation_id: corr,
            reply: rx,
        }
    }

    /// Waits for a pending reply, up to the requester's timeout.
    pub async fn wait(&self, pending: PendingReply) -> Result<Reply, RequestError> {
        pending.within(self.timeout).await
    }

    /// Produces a record with exactly these headers (any bytes: hostile ones too) and
    /// waits for the broker's acknowledgement. Returns (partition, offset).
    pub async fn send_raw(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(i32, i64), RequestError> {
        let owned = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        self.send_record(topic, partition, key, payload, owned)
            .await
    }

    /// Produces a record whose header keys are any bytes (rust-rdkafka's own API takes
    /// only UTF-8 keys), as a client in another language could write them, and waits
    /// for the broker's acknowledgement. Returns (partition, offset).
    pub async fn send_raw_keys(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(i32, i64), RequestError> {
        let owned = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            responder_ffi::raw_headers::add(h, k, Some(v))
        });
        self.send_record(topic, partition, key, payload, owned)
            .await
    }

    /// Produces one record and waits for the broker's acknowledgement.
    async fn send_record(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        owned: OwnedHeaders,
    ) -> Result<(i32, i64), RequestError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(owned);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| RequestError::Send(e.to_string()))
    }

    /// Every reply received so far (duplicates and unmatched ones included).
    pub fn received(&self) -> Vec<Reply> {
        self.all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Requester {
    /// Stops the reply consumer and waits for it to close (within one poll, 50 ms), so
    /// it does not outlive a broker the test is about to stop.
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}
