//! Producing through a topic handle kept for the topic.
//!
//! rust-rdkafka's `BaseProducer::send` names the topic of every record by a new
//! `CString` (an allocation and a free per record), and librdkafka then looks the name
//! up among its topics, takes a reference and drops it again (about 250 instructions
//! under callgrind). A [`TopicHandle`] does that once: librdkafka's own handle for the
//! topic (`rd_kafka_topic_new`), given to `rd_kafka_producev` as `RD_KAFKA_VTYPE_RKT`.
//! Everything else is sent as `BaseProducer::send` sends it.

use std::ffi::{CString, c_void};
use std::ptr::NonNull;
use std::sync::Arc;

use rdkafka::bindings as sys;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::IntoOpaque;

use crate::raw_headers;

/// A record with bytes for key and payload, as `TopicHandle::send` takes it (its own
/// opaque is not read: the delivery opaque is passed beside it).
pub type Record<'a> = BaseRecord<'a, [u8], [u8]>;

/// A record librdkafka refused: the error, the record and its delivery opaque back.
pub type Refused<'a, D> = (KafkaError, Record<'a>, D);

/// librdkafka's handle for one topic of a producer. It keeps the producer alive:
/// librdkafka requires every topic handle to be destroyed before its client.
pub struct TopicHandle<C: ProducerContext + 'static> {
    rkt: NonNull<sys::rd_kafka_topic_t>,
    name: Box<str>,
    producer: Arc<ThreadedProducer<C>>,
}

// SAFETY: librdkafka's topic handles may be used from any thread (its API is thread
// safe, the handle refcounted); the producer is `Send + Sync` itself.
unsafe impl<C: ProducerContext + 'static> Send for TopicHandle<C> {}
// SAFETY: as above: `send` only passes the handle to `rd_kafka_producev`.
unsafe impl<C: ProducerContext + 'static> Sync for TopicHandle<C> {}

impl<C: ProducerContext + 'static> TopicHandle<C> {
    /// The handle for topic `name` of `producer`, with the producer's default topic
    /// configuration (as a record naming its topic gets). Fails as a record naming an
    /// invalid topic fails to send: a name holding a NUL byte, or one librdkafka
    /// refuses (longer than 512 bytes).
    pub fn new(producer: &Arc<ThreadedProducer<C>>, name: &str) -> Result<Self, KafkaError> {
        let c_name = CString::new(name).map_err(KafkaError::Nul)?;
        let rk = producer.client().native_ptr();
        // SAFETY: `rk` is the live client `producer` keeps; the name is NUL-terminated
        // and copied by librdkafka; a null configuration means the default one.
        let rkt = unsafe { sys::rd_kafka_topic_new(rk, c_name.as_ptr(), std::ptr::null_mut()) };
        let Some(rkt) = NonNull::new(rkt) else {
            // SAFETY: reads this thread's last error, which `rd_kafka_topic_new` set.
            let code = unsafe { sys::rd_kafka_last_error() };
            return Err(KafkaError::MessageProduction(code.into()));
        };
        Ok(TopicHandle {
            rkt,
            name: name.into(),
            producer: Arc::clone(producer),
        })
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `record` to this topic (`record.topic` is not read again: it must name
    /// this topic) with `opaque` for the delivery callback, as `BaseProducer::send`
    /// would: the payload, key and headers are copied or taken by librdkafka, and the
    /// record and the opaque come back when librdkafka refuses them.
    #[allow(clippy::result_large_err)] // as rust-rdkafka's `send`: the record comes back
    pub fn send<'a>(
        &self,
        record: Record<'a>,
        opaque: C::DeliveryOpaque,
    ) -> Result<(), Refused<'a, C::DeliveryOpaque>> {
        debug_assert_eq!(record.topic, &*self.name, "a record for another topic");
        let bytes = |b: Option<&[u8]>| {
            b.map_or((std::ptr::null_mut(), 0), |b| {
                (b.as_ptr().cast_mut().cast::<c_void>(), b.len())
            })
        };
        let (payload_ptr, payload_len) = bytes(record.payload);
        let (key_ptr, key_len) = bytes(record.key);
        let headers_ptr = record.headers.as_ref().map_or(std::ptr::null_mut(), |h| {
            raw_headers::native(h.as_borrowed()).cast_mut()
        });
        let opaque = opaque.into_ptr();
        // SAFETY: the client and the topic handle are alive (`self` keeps both); the
        // arguments are those `BaseProducer::send` passes, in pairs of type tag and
        // value, ended by `RD_KAFKA_VTYPE_END`; payload and key are copied
        // (`RD_KAFKA_MSG_F_COPY`); on success librdkafka owns the headers and the
        // opaque (given back to the delivery callback), on failure neither.
        let err = unsafe {
            sys::rd_kafka_producev(
                self.producer.client().native_ptr(),
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_RKT,
                self.rkt.as_ptr(),
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_PARTITION,
                record.partition.unwrap_or(-1),
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
                sys::RD_KAFKA_MSG_F_COPY,
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
                payload_ptr,
                payload_len,
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_KEY,
                key_ptr,
                key_len,
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_OPAQUE,
                opaque,
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TIMESTAMP,
                record.timestamp.unwrap_or(0),
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADERS,
                headers_ptr,
                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_END,
            )
        };
        if err == sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // librdkafka owns the headers now.
            std::mem::forget(record.headers);
            return Ok(());
        }
        // SAFETY: refused, librdkafka did not keep the opaque: it is ours again, once.
        let opaque = unsafe { C::DeliveryOpaque::from_ptr(opaque) };
        Err((KafkaError::MessageProduction(err.into()), record, opaque))
    }
}

impl<C: ProducerContext + 'static> Drop for TopicHandle<C> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_topic_new` and is destroyed once,
        // before the client (`self.producer` is dropped after this).
        unsafe { sys::rd_kafka_topic_destroy(self.rkt.as_ptr()) }
    }
}

impl<C: ProducerContext + 'static> std::fmt::Debug for TopicHandle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicHandle")
            .field("name", &self.name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use rdkafka::error::RDKafkaErrorCode;
    use rdkafka::message::{Headers, Message, OwnedHeaders};
    use rdkafka::producer::{DeliveryResult, Producer};
    use rdkafka::{ClientConfig, ClientContext};

    use super::*;
    use crate::mock_cluster::MockCluster;

    /// Delivery reports by opaque: (tag, partition, error).
    #[derive(Default)]
    struct Reports(Mutex<Vec<(usize, i32, Option<RDKafkaErrorCode>)>>);

    impl ClientContext for Reports {}

    impl ProducerContext for Reports {
        type DeliveryOpaque = Box<usize>;

        fn delivery(&self, result: &DeliveryResult<'_>, tag: Box<usize>) {
            let report = match result {
                Ok(m) => (*tag, m.partition(), None),
                Err((e, m)) => (*tag, m.partition(), e.rdkafka_error_code()),
            };
            self.0.lock().expect("reports").push(report);
        }
    }

    fn producer(bootstrap: &str) -> Arc<ThreadedProducer<Reports>> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("message.max.bytes", "10000")
            .create_with_context(Reports::default())
            .expect("producer");
        Arc::new(producer)
    }

    #[test]
    fn sends_the_record_as_given_to_the_handles_topic() {
        let broker = MockCluster::start(1).expect("broker");
        broker.create_topic("replies", 3).expect("topic");
        let producer = producer(broker.bootstrap_servers());
        let handle = TopicHandle::new(&producer, "replies").expect("handle");
        assert_eq!(handle.name(), "replies");
        let headers = raw_headers::add(OwnedHeaders::new(), b"\xffid", Some(b"c-1"));
        let record = BaseRecord::to("replies")
            .partition(2)
            .key(&b"k"[..])
            .payload(&b"answer"[..])
            .headers(headers);
        handle
            .send(record, Box::new(7))
            .map_err(|(e, ..)| e)
            .expect("queued");
        producer.flush(Duration::from_secs(10)).expect("flushed");
        assert_eq!(
            *producer.context().0.lock().expect("reports"),
            [(7, 2, None)]
        );
        // The handle goes before the producer, which it kept alive until then.
        drop(handle);
        assert_eq!(Arc::strong_count(&producer), 1);

        let consumer = broker.reader("replies", 2).expect("reader");
        let m = consumer
            .poll(Duration::from_secs(10))
            .expect("a record")
            .expect("no error");
        assert_eq!((m.topic(), m.partition()), ("replies", 2));
        assert_eq!(
            (m.key(), m.payload()),
            (Some(&b"k"[..]), Some(&b"answer"[..]))
        );
        let mut read = Vec::new();
        raw_headers::for_each(m.headers().expect("headers"), |k, v| {
            read.push((k.to_vec(), v.map(<[u8]>::to_vec)));
        });
        assert_eq!(read, [(b"\xffid".to_vec(), Some(b"c-1".to_vec()))]);
        assert_eq!(m.headers().map(|h| h.count()), Some(1));
    }

    #[test]
    fn a_refused_record_comes_back_with_its_opaque_and_headers() {
        let broker = MockCluster::start(1).expect("broker");
        broker.create_topic("replies", 1).expect("topic");
        let producer = producer(broker.bootstrap_servers());
        let handle = TopicHandle::new(&producer, "replies").expect("handle");
        let big = vec![0u8; 20_000];
        let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "h",
            value: Some("v"),
        });
        let record = BaseRecord::to("replies").payload(&big[..]).headers(headers);
        let (e, back, opaque) = handle
            .send(record, Box::new(9))
            .expect_err("larger than message.max.bytes");
        assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageSizeTooLarge)
        );
        assert_eq!(*opaque, 9);
        assert_eq!(back.headers.map(|h| h.count()), Some(1));
        assert!(producer.context().0.lock().expect("reports").is_empty());
    }

    #[test]
    fn names_librdkafka_refuses_are_errors() {
        let producer = producer("127.0.0.1:1");
        assert!(matches!(
            TopicHandle::new(&producer, "a\0b"),
            Err(KafkaError::Nul(_))
        ));
        let long = "t".repeat(600);
        assert!(TopicHandle::new(&producer, &long).is_err());
    }
}
