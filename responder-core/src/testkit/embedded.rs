//! The embedded broker: librdkafka's in-process mock cluster behind a type of ours.
//!
//! rust-rdkafka's own `MockCluster` is experimental and does not expose the group
//! settings a test needs (the mock's 3 s initial rebalance delay would slow every
//! group join), so this module drives the C API directly. It is the only unsafe code
//! in the crate.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};

use rdkafka::ClientConfig;
use rdkafka::bindings as sys;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaRespErr;

use crate::error::Error;

/// Kafka protocol error codes, for fault injection.
pub use rdkafka::types::RDKafkaRespErr as ResponseError;

/// Kafka API keys, for fault injection.
pub mod api_key {
    /// Produce.
    pub const PRODUCE: i16 = 0;
    /// Fetch.
    pub const FETCH: i16 = 1;
    /// OffsetCommit.
    pub const OFFSET_COMMIT: i16 = 8;
}

/// An in-process Kafka-protocol broker cluster (librdkafka's mock cluster), reachable
/// over loopback TCP by any client, in this process or another.
pub struct EmbeddedBroker {
    cluster: *mut sys::rd_kafka_mock_cluster_t,
    bootstrap: String,
    // The cluster runs on this client's handle; it must outlive the cluster.
    _client: BaseProducer,
}

// SAFETY: the mock cluster's API is thread-safe (each call posts an operation to the
// cluster's own thread); the pointer is only freed in `Drop`.
unsafe impl Send for EmbeddedBroker {}
// SAFETY: as above; `&self` methods only post operations.
unsafe impl Sync for EmbeddedBroker {}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

fn check(err: RDKafkaRespErr, what: &'static str) -> Result<(), Error> {
    if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(Error::kafka(
            what,
            rdkafka::error::KafkaError::MockCluster(err.into()),
        ))
    }
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers on loopback ports, with consumer groups
    /// that form at once (no initial rebalance delay).
    pub fn start(brokers: i32) -> Result<Self, Error> {
        let client: BaseProducer = ClientConfig::new()
            .set("log_level", "3")
            .create()
            .map_err(|e| Error::kafka("creating the mock cluster's client", e))?;
        // SAFETY: the client handle is valid for the duration of the call and outlives
        // the cluster (see Drop).
        let cluster =
            unsafe { sys::rd_kafka_mock_cluster_new(client.client().native_ptr(), brokers) };
        if cluster.is_null() {
            return Err(Error::config("the mock cluster could not be created"));
        }
        // SAFETY: `cluster` is a live mock cluster; the returned string is owned by it.
        let bootstrap = unsafe { CStr::from_ptr(sys::rd_kafka_mock_cluster_bootstraps(cluster)) }
            .to_string_lossy()
            .into_owned();
        let broker = EmbeddedBroker {
            cluster,
            bootstrap,
            _client: client,
        };
        // SAFETY: live cluster.
        unsafe { sys::rd_kafka_mock_group_initial_rebalance_delay_ms(broker.cluster, 0) };
        Ok(broker)
    }

    /// The `bootstrap.servers` list of the cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        let name = CString::new(topic).map_err(|_| Error::config("topic name has a NUL byte"))?;
        // SAFETY: live cluster, NUL-terminated name valid for the call.
        check(
            unsafe { sys::rd_kafka_mock_topic_create(self.cluster, name.as_ptr(), partitions, 1) },
            "creating a mock topic",
        )
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
}

impl EmbeddedBroker {
    /// Takes broker `broker_id` down (its connections are closed and new ones refused)
    /// or, with `up`, brings it back. The brokers of a cluster started with `n` are
    /// numbered 1 to `n`.
    pub fn set_broker_up(&self, broker_id: i32, up: bool) -> Result<(), Error> {
        // SAFETY: live cluster.
        let err = unsafe {
            if up {
                sys::rd_kafka_mock_broker_set_up(self.cluster, broker_id)
            } else {
                sys::rd_kafka_mock_broker_set_down(self.cluster, broker_id)
            }
        };
        check(err, "setting a mock broker up or down")
    }

    /// Delays every answer of broker `broker_id` by `rtt`: with a long one, a broker
    /// that stopped answering without closing its connections (a network partition).
    pub fn set_round_trip_time(
        &self,
        broker_id: i32,
        rtt: std::time::Duration,
    ) -> Result<(), Error> {
        let ms = i32::try_from(rtt.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: live cluster.
        let err = unsafe { sys::rd_kafka_mock_broker_set_rtt(self.cluster, broker_id, ms) };
        check(err, "setting a mock broker's round-trip time")
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // SAFETY: the cluster is live and destroyed exactly once, before its client.
        unsafe { sys::rd_kafka_mock_cluster_destroy(self.cluster) }
    }
}
