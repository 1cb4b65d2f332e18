//! The "raw" contestant: the KYC responder written against rdkafka alone, as a
//! competent engineer would write it to be fast. One thread consumes, decodes, scores,
//! encodes and produces the reply to the topic and partition the Spring headers name
//! (checked against the same allow-list prefix) without awaiting the send; the
//! producer's own thread reports each ack over a channel; offsets are stored in order
//! per partition once every earlier reply is acknowledged, and auto-commit commits
//! them; at most 1024 replies are in flight.
//!
//! Configured like the KYC service (`KAFKA_BOOTSTRAP_SERVERS`, `RESPONDER_GROUP_ID`,
//! `RESPONDER_FETCH_WAIT_MS`); serves until its standard input closes, then prints
//! `ALLOCATIONS <n>`.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Message};
use responder_bench::alloc_count::{self, Counting};
use responder_bench::contract::{
    ALLOWED_REPLY_PREFIX, CORRELATION_HEADER, Query, REPLY_PARTITION_HEADER, REPLY_TOPIC_HEADER,
    REQUEST_TOPIC, Score, score,
};

#[global_allocator]
static ALLOC: Counting = Counting;

const MAX_IN_FLIGHT: usize = 1024;

/// A request's partition and offset in one word: the delivery opaque of its reply.
fn tag(partition: i32, offset: i64) -> usize {
    ((partition as usize) << 48) | offset as usize
}

fn untag(tag: usize) -> (i32, i64) {
    ((tag >> 48) as i32, (tag & ((1 << 48) - 1)) as i64)
}

/// Sends each reply's tag to the main loop when the broker acknowledges it.
struct Acks(Sender<usize>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        if let Err((e, _)) = result {
            eprintln!("reply not delivered: {e}");
        }
        let _ = self.0.send(tag);
    }
}

/// Requests in flight per partition, in offset order, with whether each is settled.
#[derive(Default)]
struct Watermarks(HashMap<i32, VecDeque<(i64, bool)>>);

impl Watermarks {
    fn start(&mut self, partition: i32, offset: i64) {
        self.0
            .entry(partition)
            .or_default()
            .push_back((offset, false));
    }

    /// Settles one request; returns the offset to store when the partition's settled
    /// prefix grew.
    fn settle(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let queue = self.0.get_mut(&partition)?;
        let i = queue.binary_search_by_key(&offset, |e| e.0).ok()?;
        queue[i].1 = true;
        let mut last = None;
        while let Some(&(o, true)) = queue.front() {
            last = Some(o);
            queue.pop_front();
        }
        last
    }
}

struct Raw {
    producer: ThreadedProducer<Acks>,
    acks: Receiver<usize>,
    watermarks: Watermarks,
    in_flight: usize,
}

impl Raw {
    fn settle(&mut self, consumer: &BaseConsumer, tag: usize) {
        let (partition, offset) = untag(tag);
        self.in_flight -= 1;
        if let Some(done) = self.watermarks.settle(partition, offset) {
            // `rd_kafka_offset_store` stores `done + 1`: the next offset to read.
            if let Err(e) = consumer.store_offset(REQUEST_TOPIC, partition, done) {
                eprintln!("storing offset {done} of partition {partition}: {e}");
            }
        }
    }

    /// Settles the acks that arrived, waiting up to `wait` for the first.
    fn drain_acks(&mut self, consumer: &BaseConsumer, wait: Duration) {
        match self.acks.recv_timeout(wait) {
            Ok(tag) => self.settle(consumer, tag),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(tag) = self.acks.try_recv() {
            self.settle(consumer, tag);
        }
    }

    fn respond(&mut self, consumer: &BaseConsumer, m: &BorrowedMessage<'_>) {
        let (partition, offset) = (m.partition(), m.offset());
        self.watermarks.start(partition, offset);
        self.in_flight += 1;
        let tag = tag(partition, offset);
        let Some((topic, reply_partition, correlation)) = reply_address(m) else {
            eprintln!("request {partition}/{offset}: no usable reply address");
            return self.settle(consumer, tag);
        };
        let query: Query = match serde_json::from_slice(m.payload().unwrap_or_default()) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("request {partition}/{offset}: {e}");
                return self.settle(consumer, tag);
            }
        };
        let reply = Score {
            score: score(&query.wallet_id),
            wallet_id: query.wallet_id,
            documents: query.documents,
        };
        let body = serde_json::to_vec(&reply).expect("a Score always serializes");
        let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
            key: CORRELATION_HEADER,
            value: Some(correlation),
        });
        let mut record = BaseRecord::with_opaque_to(topic, tag)
            .partition(reply_partition)
            .payload(&body)
            .headers(headers);
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.drain_acks(consumer, Duration::from_millis(1));
                }
                Err((e, _)) => {
                    eprintln!("request {partition}/{offset}: reply not sent: {e}");
                    return self.settle(consumer, tag);
                }
            }
        }
    }
}

/// The Spring reply address: topic (allowed prefix only), partition, correlation id.
fn reply_address<'m>(m: &'m BorrowedMessage<'_>) -> Option<(&'m str, i32, &'m [u8])> {
    let (mut topic, mut partition, mut correlation) = (None, None, None);
    for h in m.headers()?.iter() {
        match h.key {
            REPLY_TOPIC_HEADER if topic.is_none() => topic = h.value,
            REPLY_PARTITION_HEADER if partition.is_none() => partition = h.value,
            CORRELATION_HEADER if correlation.is_none() => correlation = h.value,
            _ => {}
        }
    }
    let topic = std::str::from_utf8(topic?).ok()?;
    if !topic.starts_with(ALLOWED_REPLY_PREFIX) {
        return None;
    }
    let partition = i32::from_be_bytes(partition?.try_into().ok()?);
    (partition >= 0).then_some((topic, partition, correlation?))
}

fn main() -> anyhow::Result<()> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").context("KAFKA_BOOTSTRAP_SERVERS")?;
    let group = std::env::var("RESPONDER_GROUP_ID").unwrap_or_else(|_| "kyc".into());
    let mut consumer_config = ClientConfig::new();
    consumer_config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        // The framework's bounded prefetch, so both run with the same client settings.
        .set("queued.min.messages", "2000")
        .set("queued.max.messages.kbytes", "16384")
        .set("max.partition.fetch.bytes", "262144")
        .set("fetch.queue.backoff.ms", "10");
    if let Ok(ms) = std::env::var("RESPONDER_FETCH_WAIT_MS") {
        consumer_config.set("fetch.wait.max.ms", ms);
    }
    let consumer: BaseConsumer = consumer_config.create()?;
    consumer.subscribe(&[REQUEST_TOPIC])?;
    let (ack_tx, acks) = channel();
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "120000")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create_with_context(Acks(ack_tx))?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            stop.store(true, Relaxed);
        });
    }

    let mut raw = Raw {
        producer,
        acks,
        watermarks: Watermarks::default(),
        in_flight: 0,
    };
    while !stop.load(Relaxed) {
        let wait = if raw.in_flight >= MAX_IN_FLIGHT {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        raw.drain_acks(&consumer, wait);
        if raw.in_flight >= MAX_IN_FLIGHT {
            continue;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => raw.respond(&consumer, &m),
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    // Drain: wait for the replies in flight, then commit what they settled.
    while raw.in_flight > 0 {
        raw.drain_acks(&consumer, Duration::from_secs(10));
    }
    if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        eprintln!("final commit: {e}");
    }
    println!("{}", alloc_count::report_line());
    Ok(())
}
