//! A request record as received, owned: copied out of librdkafka's buffers once, on
//! the consumer thread, so it can cross to the thread that handles it.
//!
//! Its payload, key and headers share one allocation. rust-rdkafka's owned message
//! (`BorrowedMessage::detach`) takes three (payload, key, topic) plus a copy of
//! librdkafka's header list: five more, in C, freed on another thread. The topic is
//! shared: the consumer thread keeps one `Arc<str>` per topic ([`Topics`]).

use std::sync::Arc;

use crate::record_buffers;
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use responder_ffi::wire_headers::WireHeaders;

/// A header's key length and value length, each a little-endian `u32`, lead each
/// header in the buffer; a null value has this length (and no bytes).
const NULL_VALUE: u32 = u32::MAX;
/// The bytes before each header's key: its key length and value length.
const HEADER_LEAD: usize = 8;

/// A request record: topic, partition, offset, timestamp, key, payload and headers.
/// Its buffer is recycled when it is dropped (see `record_buffers`).
#[derive(Debug, Clone)]
pub(crate) struct Received {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp_millis: Option<i64>,
    /// The payload, the key, then the headers (see [`NULL_VALUE`]).
    bytes: Vec<u8>,
    /// The payload's length (`None`: a tombstone).
    payload: Option<usize>,
    /// The key's length (`None`: no key).
    key: Option<usize>,
}

impl Received {
    /// The bytes of its record held (payload, key and headers).
    pub(crate) fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Copies `message`, whose topic `topic` is. Its headers are read from the
    /// record's header section (`responder_ffi::wire_headers`), or, when they cannot
    /// be read that way, through librdkafka's parsed list.
    pub(crate) fn copy(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        match responder_ffi::wire_headers::read(message) {
            Some(headers) => Self::copy_with(message, topic, headers),
            None => Self::copy_parsed(message, topic),
        }
    }

    /// Copies `message` with `headers`, its headers read from its header section.
    fn copy_with<'m>(
        message: &'m BorrowedMessage<'_>,
        topic: Arc<str>,
        headers: WireHeaders<'m>,
    ) -> Self {
        // Room for the headers before they are read: the section's bytes bound their
        // keys' and values'.
        let mut bytes = Self::buffer(message, headers.len() * HEADER_LEAD + headers.room());
        if headers.copy(|k, v| push_header(&mut bytes, k, v)).is_none() {
            // A section that does not add up: librdkafka's parser has the last word.
            record_buffers::give(bytes);
            return Self::copy_parsed(message, topic);
        }
        Self::of(message, topic, bytes)
    }

    /// Copies `message`, its headers read through librdkafka's parsed list.
    fn copy_parsed(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        let headers = message.headers();
        let mut size = 0;
        // The first headers are noted as they are sized, so they are read from
        // librdkafka once; more than that are read again to be copied.
        let mut first = [(&[][..], None); FIRST_HEADERS];
        let mut count = 0;
        if let Some(h) = headers {
            responder_ffi::raw_headers::for_each(h, |k, v| {
                if let Some(slot) = first.get_mut(count) {
                    *slot = (k, v);
                }
                count += 1;
                size += header_size(k, v);
            });
        }
        let mut bytes = Self::buffer(message, size);
        if count <= FIRST_HEADERS {
            for (k, v) in &first[..count] {
                push_header(&mut bytes, k, *v);
            }
        } else if let Some(h) = headers {
            responder_ffi::raw_headers::for_each(h, |k, v| push_header(&mut bytes, k, v));
        }
        Self::of(message, topic, bytes)
    }

    /// A buffer holding `message`'s payload and key, with room for `headers` bytes more.
    fn buffer(message: &BorrowedMessage<'_>, headers: usize) -> Vec<u8> {
        let payload = message.payload().unwrap_or_default();
        let key = message.key().unwrap_or_default();
        let mut bytes = record_buffers::take(payload.len() + key.len() + headers);
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(key);
        bytes
    }

    /// `message` as received, `bytes` holding its payload, key and headers.
    fn of(message: &BorrowedMessage<'_>, topic: Arc<str>, bytes: Vec<u8>) -> Self {
        Received {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp_millis: message.timestamp().to_millis(),
            bytes,
            payload: message.payload().map(<[u8]>::len),
            key: message.key().map(<[u8]>::len),
        }
    }

    /// A record made up (by the test kit, or a test).
    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn new<'h>(
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp_millis: Option<i64>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'h [u8], Option<&'h [u8]>)>,
    ) -> Self {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(payload.unwrap_or_default());
        bytes.extend_from_slice(key.unwrap_or_default());
        for (k, v) in headers {
            push_header(&mut bytes, k, v);
        }
        Received {
            topic: topic.into(),
            partition,
            offset,
            timestamp_millis,
            bytes,
            payload: payload.map(<[u8]>::len),
            key: key.map(<[u8]>::len),
        }
    }

    /// The request topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The request's partition.
    pub(crate) fn partition(&self) -> i32 {
        self.partition
    }

    /// The request's offset.
    pub(crate) fn offset(&self) -> i64 {
        self.offset
    }

    /// The record's timestamp in epoch milliseconds, when the broker gave one.
    pub(crate) fn timestamp_millis(&self) -> Option<i64> {
        self.timestamp_millis
    }

    /// The payload (`None`: a tombstone).
    pub(crate) fn payload(&self) -> Option<&[u8]> {
        self.bytes.get(..self.payload?)
    }

    /// The key.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        let at = self.payload.unwrap_or(0);
        self.bytes.get(at..at + self.key?)
    }

    /// The headers in record order: each key's bytes (any bytes: a producer in any
    /// language wrote them) and value (`None`: null).
    pub(crate) fn headers(&self) -> Headers<'_> {
        let at = self.payload.unwrap_or(0) + self.key.unwrap_or(0);
        Headers {
            rest: self.bytes.get(at..).unwrap_or_default(),
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        record_buffers::give(std::mem::take(&mut self.bytes));
    }
}

/// The bytes a header takes in the buffer.
fn header_size(key: &[u8], value: Option<&[u8]>) -> usize {
    HEADER_LEAD + key.len() + value.map_or(0, <[u8]>::len)
}

/// Headers of a record copied from what was read to size its buffer (more are read
/// from librdkafka again).
const FIRST_HEADERS: usize = 8;

fn push_header(bytes: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    // librdkafka keeps a record's size (and so each header's) under 2 GiB.
    let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(NULL_VALUE - 1);
    let (key_len, value_len) = (len(key), value.map_or(NULL_VALUE, len));
    let mut lead = [0u8; HEADER_LEAD];
    lead[..4].copy_from_slice(&key_len.to_le_bytes());
    lead[4..].copy_from_slice(&value_len.to_le_bytes());
    bytes.extend_from_slice(&lead);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(value.unwrap_or_default());
}

/// A record's headers, read from its buffer in order.
#[derive(Debug, Clone)]
pub(crate) struct Headers<'r> {
    rest: &'r [u8],
}

impl<'r> Iterator for Headers<'r> {
    type Item = (&'r [u8], Option<&'r [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let (lead, rest) = self.rest.split_first_chunk::<HEADER_LEAD>()?;
        let key_len = u32::from_le_bytes([lead[0], lead[1], lead[2], lead[3]]) as usize;
        let value_len = u32::from_le_bytes([lead[4], lead[5], lead[6], lead[7]]);
        let (key, rest) = rest.split_at_checked(key_len)?;
        let (value, rest) = match value_len {
            NULL_VALUE => (None, rest),
            n => {
                let (v, rest) = rest.split_at_checked(n as usize)?;
                (Some(v), rest)
            }
        };
        self.rest = rest;
        Some((key, value))
    }
}

/// The topics' names the consumer thread has seen, shared by every record of each.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    names: Vec<Arc<str>>,
}

impl Topics {
    /// Knows `names` from the start: records of those topics share them. The
    /// responder passes its routes' names, so a record's topic is the very `Arc` the
    /// router and the ledger hold (the ledger finds a topic by address first).
    pub(crate) fn known(names: impl IntoIterator<Item = Arc<str>>) -> Self {
        Topics {
            names: names.into_iter().collect(),
        }
    }

    /// The shared name of `topic` (its bytes, as librdkafka holds them: compared with
    /// the names known, not checked as text again).
    pub(crate) fn get(&mut self, topic: &[u8]) -> Arc<str> {
        match self.names.iter().find(|t| t.as_bytes() == topic) {
            Some(t) => Arc::clone(t),
            None => {
                // A topic the consumer subscribed to: Kafka's names are ASCII.
                let t: Arc<str> = String::from_utf8_lossy(topic).into();
                self.names.push(Arc::clone(&t));
                t
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_key_and_headers_come_back_as_given() {
        let headers: [(&[u8], Option<&[u8]>); 4] = [
            (b"kafka_replyTopic", Some(b"replies")),
            (b"\xff not utf-8", None),
            (b"", Some(b"")),
            (b"kafka_replyTopic", Some(b"again")),
        ];
        let r = Received::new("t", 3, 7, Some(11), Some(b"k"), Some(b"{}"), headers);
        assert_eq!((r.topic(), r.partition(), r.offset()), ("t", 3, 7));
        assert_eq!(r.timestamp_millis(), Some(11));
        assert_eq!((r.key(), r.payload()), (Some(&b"k"[..]), Some(&b"{}"[..])));
        assert_eq!(r.headers().collect::<Vec<_>>(), headers);
    }

    #[test]
    fn absent_and_empty_are_told_apart() {
        let none = Received::new("t", 0, 0, None, None, None, []);
        assert_eq!(
            (none.key(), none.payload(), none.headers().count()),
            (None, None, 0)
        );
        let empty = Received::new("t", 0, 0, None, Some(b""), Some(b""), []);
        assert_eq!(
            (empty.key(), empty.payload()),
            (Some(&b""[..]), Some(&b""[..]))
        );
        let key_only = Received::new("t", 0, 0, None, Some(b"key"), None, []);
        assert_eq!(
            (key_only.key(), key_only.payload()),
            (Some(&b"key"[..]), None)
        );
    }

    /// A consumed record copied with its headers read from its header section, and
    /// through librdkafka's list (the way taken when the section cannot be read): the
    /// same record, nine headers (more than the first ones noted) included.
    #[test]
    fn both_ways_of_reading_headers_copy_the_same_record() {
        use std::time::Duration;

        use rdkafka::message::OwnedHeaders;
        use rdkafka::producer::{BaseRecord, Producer};
        use responder_ffi::mock_cluster::MockCluster;

        let broker = MockCluster::start(1).expect("broker");
        broker.create_topic("requests", 1).expect("topic");
        let producer = broker.writer().expect("producer");
        let keys: Vec<Vec<u8>> = (0..FIRST_HEADERS + 1)
            .map(|i| format!("h{i}").into_bytes())
            .collect();
        let mut headers = OwnedHeaders::new();
        for (i, key) in keys.iter().enumerate() {
            let value = (i != 2).then_some(&key[..]);
            headers = responder_ffi::raw_headers::add(headers, key, value);
        }
        for with_headers in [true, false] {
            let mut record = BaseRecord::<[u8], [u8]>::to("requests")
                .key(&b"k"[..])
                .payload(&b"{}"[..]);
            if with_headers {
                record = record.headers(headers.clone());
            }
            producer.send(record).map_err(|(e, _)| e).expect("queued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
        let consumer = broker.reader("requests", 0).expect("reader");
        for count in [keys.len(), 0] {
            let m = consumer
                .poll(Duration::from_secs(10))
                .expect("a record")
                .expect("no error");
            let topic: Arc<str> = Arc::from("requests");
            let wire = responder_ffi::wire_headers::read(&m).expect("the header section");
            let read = Received::copy_with(&m, Arc::clone(&topic), wire);
            let parsed = Received::copy_parsed(&m, topic);
            assert_eq!(read.headers().count(), count);
            assert_eq!(read.bytes, parsed.bytes);
            assert_eq!(
                (read.key(), read.payload(), read.offset()),
                (parsed.key(), parsed.payload(), parsed.offset())
            );
            if count > 0 {
                let (key, value) = read.headers().nth(2).expect("a third header");
                assert_eq!((key, value), (&b"h2"[..], None));
            }
        }
    }

    #[test]
    fn a_topic_is_shared_by_its_records() {
        let mut topics = Topics::default();
        let a = topics.get(b"requests");
        let b = topics.get(b"requests");
        let c = topics.get(b"other");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((&*a, &*c), ("requests", "other"));
        let route: Arc<str> = Arc::from("routed");
        let mut topics = Topics::known([Arc::clone(&route)]);
        assert!(Arc::ptr_eq(&topics.get(b"routed"), &route), "a known name");
    }
}
