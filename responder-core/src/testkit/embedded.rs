//! The embedded broker: librdkafka's in-process mock cluster (driven through its C API
//! in `responder-ffi`) behind a type of ours.

use responder_ffi::mock_cluster::MockCluster;

use crate::error::Error;

/// A broker's answer to inject ([`EmbeddedBroker::push_request_errors`]): the Kafka
/// protocol errors the tests meet, by their protocol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// `NOT_ENOUGH_REPLICAS` (19): passing, retried.
    NotEnoughReplicas,
    /// `NOT_LEADER_OR_FOLLOWER` (6): passing, retried.
    NotLeaderOrFollower,
    /// `REQUEST_TIMED_OUT` (7): passing, retried.
    RequestTimedOut,
    /// `TOPIC_AUTHORIZATION_FAILED` (29): retried a few times, then the record's fault.
    TopicAuthorizationFailed,
    /// `MESSAGE_TOO_LARGE` (10): the record's fault.
    MessageTooLarge,
    /// `INVALID_RECORD` (87): the record's fault.
    InvalidRecord,
    /// `REBALANCE_IN_PROGRESS` (27), e.g. for an offset commit.
    RebalanceInProgress,
}

impl ResponseError {
    fn librdkafka(self) -> rdkafka::types::RDKafkaRespErr {
        use rdkafka::types::RDKafkaRespErr as E;
        match self {
            ResponseError::NotEnoughReplicas => E::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            ResponseError::NotLeaderOrFollower => E::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            ResponseError::RequestTimedOut => E::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            ResponseError::TopicAuthorizationFailed => {
                E::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
            }
            ResponseError::MessageTooLarge => E::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            ResponseError::InvalidRecord => E::RD_KAFKA_RESP_ERR_INVALID_RECORD,
            ResponseError::RebalanceInProgress => E::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        }
    }
}

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
#[derive(Debug)]
pub struct EmbeddedBroker {
    mock: MockCluster,
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers on loopback ports, with consumer groups
    /// that form at once (no initial rebalance delay).
    pub fn start(brokers: i32) -> Result<Self, Error> {
        let mock = MockCluster::start(brokers)
            .map_err(|e| Error::kafka("starting the mock cluster", e))?;
        Ok(EmbeddedBroker { mock })
    }

    /// The `bootstrap.servers` list of the cluster.
    pub fn bootstrap_servers(&self) -> &str {
        self.mock.bootstrap_servers()
    }

    /// Creates a topic with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        if topic.contains('\0') {
            return Err(Error::config("topic name has a NUL byte"));
        }
        self.mock
            .create_topic(topic, partitions)
            .map_err(|e| Error::kafka("creating a mock topic", e))
    }

    /// Makes the next `errors.len()` requests of API `api_key` (a Kafka API key, e.g.
    /// 0 for Produce) fail with the given errors, in order.
    ///
    /// Produce errors and several replies in flight: this broker checks the sequence
    /// numbers of an idempotent producer's batches only when it is transactional
    /// (`rdkafka_mock.c`, `rd_kafka_mock_validate_records`). A batch refused by an
    /// injected error, followed by a later one the broker takes, is counted as
    /// delivered by librdkafka ("implicitly acked by subsequent batch success"), and
    /// its reply is lost; Apache Kafka refuses the later batch (out of order sequence
    /// number) and librdkafka sends both again, in order. A test that refuses produce
    /// requests sets the responder's
    /// `producer_config("max.in.flight.requests.per.connection", "1")`.
    pub fn push_request_errors(&self, api_key: i16, errors: &[ResponseError]) {
        let errors: Vec<_> = errors.iter().map(|e| e.librdkafka()).collect();
        self.mock.push_request_errors(api_key, &errors);
    }

    /// Takes broker `broker_id` down (its connections are closed and new ones refused)
    /// or, with `up`, brings it back. The brokers of a cluster started with `n` are
    /// numbered 1 to `n`.
    pub fn set_broker_up(&self, broker_id: i32, up: bool) -> Result<(), Error> {
        self.mock
            .set_broker_up(broker_id, up)
            .map_err(|e| Error::kafka("setting a mock broker up or down", e))
    }

    /// Delays every answer of broker `broker_id` by `rtt`: with a long one, a broker
    /// that stopped answering without closing its connections (a network partition).
    pub fn set_round_trip_time(
        &self,
        broker_id: i32,
        rtt: std::time::Duration,
    ) -> Result<(), Error> {
        self.mock
            .set_round_trip_time(broker_id, rtt)
            .map_err(|e| Error::kafka("setting a mock broker's round-trip time", e))
    }
}
