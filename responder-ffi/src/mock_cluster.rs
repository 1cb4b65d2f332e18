//! librdkafka's in-process mock cluster, driven through its C API.
//!
//! rust-rdkafka's own `MockCluster` is experimental and does not expose the group
//! settings a test needs (the mock's 3 s initial rebalance delay would slow every
//! group join), nor request-error injection by API key and broker round-trip times.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as sys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// An in-process Kafka-protocol broker cluster, reachable over loopback TCP by any
/// client, in this process or another.
pub struct MockCluster {
    cluster: *mut sys::rd_kafka_mock_cluster_t,
    bootstrap: String,
    // The cluster runs on this client's handle; it must outlive the cluster.
    _client: BaseProducer,
}

// SAFETY: the mock cluster's API is thread-safe (each call posts an operation to the
// cluster's own thread); the pointer is only freed in `Drop`.
unsafe impl Send for MockCluster {}
// SAFETY: as above; `&self` methods only post operations.
unsafe impl Sync for MockCluster {}

impl std::fmt::Debug for MockCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCluster")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

fn check(err: RDKafkaRespErr) -> Result<(), KafkaError> {
    if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(KafkaError::MockCluster(err.into()))
    }
}

impl MockCluster {
    /// Starts a cluster of `brokers` brokers on loopback ports, with consumer groups
    /// that form at once (no initial rebalance delay).
    pub fn start(brokers: i32) -> Result<Self, KafkaError> {
        let client: BaseProducer = ClientConfig::new().set("log_level", "3").create()?;
        // SAFETY: the client handle is valid for the duration of the call and outlives
        // the cluster (see Drop).
        let cluster =
            unsafe { sys::rd_kafka_mock_cluster_new(client.client().native_ptr(), brokers) };
        if cluster.is_null() {
            return Err(KafkaError::ClientCreation(
                "the mock cluster could not be created".into(),
            ));
        }
        // SAFETY: `cluster` is a live mock cluster; the returned string is owned by it.
        let bootstrap = unsafe { CStr::from_ptr(sys::rd_kafka_mock_cluster_bootstraps(cluster)) }
            .to_string_lossy()
            .into_owned();
        let mock = MockCluster {
            cluster,
            bootstrap,
            _client: client,
        };
        // SAFETY: live cluster.
        unsafe { sys::rd_kafka_mock_group_initial_rebalance_delay_ms(mock.cluster, 0) };
        Ok(mock)
    }

    /// The `bootstrap.servers` list of the cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// A producer to this cluster with librdkafka's defaults: for tests that produce
    /// records to read back (see [`reader`](Self::reader)).
    pub fn writer(&self) -> Result<ThreadedProducer<DefaultProducerContext>, KafkaError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
    }

    /// A consumer reading `topic`'s `partition` from its first record (assigned, not in
    /// a group): for tests that read back what they produced.
    pub fn reader(&self, topic: &str, partition: i32) -> Result<BaseConsumer, KafkaError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "reader")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        Ok(consumer)
    }

    /// Creates a topic with `partitions` partitions (replication factor 1). A name
    /// with a NUL byte is an invalid argument.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        let name = CString::new(topic)
            .map_err(|_| KafkaError::MockCluster(RDKafkaErrorCode::InvalidArgument))?;
        // SAFETY: live cluster, NUL-terminated name valid for the call.
        check(unsafe {
            sys::rd_kafka_mock_topic_create(self.cluster, name.as_ptr(), partitions, 1)
        })
    }

    /// Makes the next `errors.len()` requests of API `api_key` (a Kafka API key, e.g.
    /// 0 for Produce) fail with the given errors, in order.
    pub fn push_request_errors(&self, api_key: i16, errors: &[RDKafkaRespErr]) {
        let mut errs = errors.to_vec();
        // SAFETY: live cluster; the array is valid for the call and copied by it.
        unsafe {
            sys::rd_kafka_mock_push_request_errors_array(
                self.cluster,
                api_key,
                errs.len(),
                errs.as_mut_ptr(),
            )
        }
    }

    /// Takes broker `broker_id` down (its connections are closed and new ones refused)
    /// or, with `up`, brings it back. Brokers are numbered 1 to `n`.
    pub fn set_broker_up(&self, broker_id: i32, up: bool) -> Result<(), KafkaError> {
        // SAFETY: live cluster.
        check(unsafe {
            if up {
                sys::rd_kafka_mock_broker_set_up(self.cluster, broker_id)
            } else {
                sys::rd_kafka_mock_broker_set_down(self.cluster, broker_id)
            }
        })
    }

    /// Delays every answer of broker `broker_id` by `rtt`.
    pub fn set_round_trip_time(&self, broker_id: i32, rtt: Duration) -> Result<(), KafkaError> {
        let ms = i32::try_from(rtt.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: live cluster.
        check(unsafe { sys::rd_kafka_mock_broker_set_rtt(self.cluster, broker_id, ms) })
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        // SAFETY: the cluster is live and destroyed exactly once, before its client.
        unsafe { sys::rd_kafka_mock_cluster_destroy(self.cluster) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_creates_topics_and_refuses_bad_names() {
        let mock = MockCluster::start(2).expect("cluster");
        assert!(mock.bootstrap_servers().contains("127.0.0.1"), "{mock:?}");
        mock.create_topic("t", 3).expect("topic");
        assert!(mock.create_topic("a\0b", 1).is_err());
        mock.set_broker_up(2, false).expect("down");
        mock.set_broker_up(2, true).expect("up");
        assert!(mock.set_broker_up(7, false).is_err(), "no broker 7");
        mock.set_round_trip_time(1, Duration::from_millis(5))
            .expect("rtt");
    }
}
