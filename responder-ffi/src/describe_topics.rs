//! KIP-430 DescribeTopics with authorized operations: what the broker says the
//! responder's principal may do on a topic.
//!
//! librdkafka has it (`rd_kafka_DescribeTopics` with
//! `rd_kafka_AdminOptions_set_include_authorized_operations`); rust-rdkafka's safe
//! `AdminClient` does not, so this module calls the C API through `rdkafka::bindings`.
//! Every pointer it
//! receives is owned by a guard that frees it, and everything read from the result is
//! copied out before the result event is destroyed.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as sys;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;

// The same C functions as in `rdkafka::bindings`, declared to return plain integers:
// the bindings return `#[repr(i32)]` enums, and a code or operation this librdkafka
// does not know (a newer broker's) would be an invalid enum value.
unsafe extern "C" {
    #[link_name = "rd_kafka_error_code"]
    fn error_code(error: *const sys::rd_kafka_error_t) -> c_int;
    #[link_name = "rd_kafka_event_error"]
    fn event_error(event: *mut sys::rd_kafka_event_t) -> c_int;
    #[link_name = "rd_kafka_TopicDescription_authorized_operations"]
    fn authorized_operations(
        description: *const sys::rd_kafka_TopicDescription_t,
        count: *mut usize,
    ) -> *const c_int;
}

/// Kafka's error codes the responder acts on.
pub const UNKNOWN_TOPIC_OR_PARTITION: i32 = 3;
/// Kafka's error codes the responder acts on.
pub const TOPIC_AUTHORIZATION_FAILED: i32 = 29;

/// `AclOperation` values (librdkafka's `rd_kafka_AclOperation_t`).
const OP_ALL: c_int = 2;
const OP_WRITE: c_int = 4;

/// What the broker said about one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAccess {
    /// The topic's name.
    pub name: String,
    /// The topic's own Kafka error code (unknown topic, not authorized to describe it).
    pub error: Option<i32>,
    /// How many partitions it has (0 when it is unknown).
    pub partitions: usize,
    /// The principal's authorized operations (`rd_kafka_AclOperation_t` values), or
    /// `None` when the broker reported none (it predates KIP-430).
    pub authorized: Option<Vec<c_int>>,
}

impl TopicAccess {
    /// Whether the reported operations include producing (WRITE, or ALL).
    pub fn may_write(&self) -> Option<bool> {
        let ops = self.authorized.as_ref()?;
        Some(ops.iter().any(|op| matches!(*op, OP_WRITE | OP_ALL)))
    }
}

/// The request as a whole failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeError {
    /// librdkafka's error code.
    pub code: RDKafkaErrorCode,
    /// Its message.
    pub message: String,
}

/// Frees a librdkafka object when dropped.
struct Owned<T> {
    ptr: NonNull<T>,
    free: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(ptr: *mut T, free: unsafe extern "C" fn(*mut T)) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Owned { ptr, free })
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from the librdkafka constructor paired with `free`, and
        // is freed once, here.
        unsafe { (self.free)(self.ptr.as_ptr()) }
    }
}

fn failed(code: RDKafkaErrorCode, message: impl Into<String>) -> DescribeError {
    DescribeError {
        code,
        message: message.into(),
    }
}

/// Takes a `rd_kafka_error_t` returned by an options setter: `Ok` for NULL.
///
/// SAFETY: `error` is NULL or an error object the caller owns.
unsafe fn check_error(error: *mut sys::rd_kafka_error_t) -> Result<(), DescribeError> {
    let Some(error) = Owned::new(error, sys::rd_kafka_error_destroy) else {
        return Ok(());
    };
    // SAFETY: a live error object; the string lives as long as it does and is copied.
    let (code, message) = unsafe {
        (
            error_code(error.as_ptr()),
            CStr::from_ptr(sys::rd_kafka_error_string(error.as_ptr()))
                .to_string_lossy()
                .into_owned(),
        )
    };
    Err(failed(code_of(code), message))
}

fn code_of(code: c_int) -> RDKafkaErrorCode {
    match code {
        UNKNOWN_TOPIC_OR_PARTITION => RDKafkaErrorCode::UnknownTopicOrPartition,
        TOPIC_AUTHORIZATION_FAILED => RDKafkaErrorCode::TopicAuthorizationFailed,
        -185 => RDKafkaErrorCode::OperationTimedOut,
        -186 => RDKafkaErrorCode::InvalidArgument,
        _ => RDKafkaErrorCode::Fail,
    }
}

/// Calls an options setter that reports failure through an error-string buffer.
///
/// SAFETY: `set` passes the buffer and its length to a librdkafka setter on a live
/// options object; the buffer outlives the call and is NUL-terminated by librdkafka.
unsafe fn set_option(
    set: impl FnOnce(*mut c_char, usize) -> RDKafkaRespErr,
) -> Result<(), DescribeError> {
    let mut errstr = [0 as c_char; 256];
    let err = set(errstr.as_mut_ptr(), errstr.len());
    if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    // SAFETY: librdkafka wrote a NUL-terminated message into the buffer.
    let message = unsafe { CStr::from_ptr(errstr.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Err(failed(err.into(), message))
}

/// Describes `topics` with the principal's authorized operations. Blocks up to
/// `timeout` (call it from a blocking thread).
///
/// librdkafka sends the request to the controller unless `broker` names another
/// broker; any broker can answer it, and some clusters (librdkafka's mock among them)
/// report no usable controller, so callers that know a broker should name it.
pub fn describe_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
    broker: Option<i32>,
    timeout: Duration,
) -> Result<Vec<TopicAccess>, DescribeError> {
    let rk = client.native_ptr();
    let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    let names = topics
        .iter()
        .map(|t| CString::new(*t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            failed(
                RDKafkaErrorCode::InvalidArgument,
                "topic name has a NUL byte",
            )
        })?;
    let mut name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();

    // SAFETY: `rk` is the live client handle, borrowed for this call; every object
    // created below is owned by a guard and outlives its uses. The topic collection
    // copies the names. The result event owns the descriptions we read, and we copy
    // everything out before it is destroyed.
    unsafe {
        let queue = Owned::new(sys::rd_kafka_queue_new(rk), sys::rd_kafka_queue_destroy)
            .ok_or_else(|| failed(RDKafkaErrorCode::Fail, "no queue"))?;
        let options = Owned::new(
            sys::rd_kafka_AdminOptions_new(
                rk,
                sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
            ),
            sys::rd_kafka_AdminOptions_destroy,
        )
        .ok_or_else(|| failed(RDKafkaErrorCode::Fail, "no admin options"))?;
        set_option(|errstr, len| {
            sys::rd_kafka_AdminOptions_set_request_timeout(
                options.as_ptr(),
                timeout_ms,
                errstr,
                len,
            )
        })?;
        if let Some(id) = broker {
            set_option(|errstr, len| {
                sys::rd_kafka_AdminOptions_set_broker(options.as_ptr(), id, errstr, len)
            })?;
        }
        check_error(
            sys::rd_kafka_AdminOptions_set_include_authorized_operations(options.as_ptr(), 1),
        )?;
        let collection = Owned::new(
            sys::rd_kafka_TopicCollection_of_topic_names(name_ptrs.as_mut_ptr(), name_ptrs.len()),
            sys::rd_kafka_TopicCollection_destroy,
        )
        .ok_or_else(|| failed(RDKafkaErrorCode::Fail, "no topic collection"))?;

        sys::rd_kafka_DescribeTopics(rk, collection.as_ptr(), options.as_ptr(), queue.as_ptr());
        // The request times out on its own after `timeout`; the extra second lets its
        // timeout event arrive rather than racing it.
        let event = Owned::new(
            sys::rd_kafka_queue_poll(queue.as_ptr(), timeout_ms.saturating_add(1000)),
            sys::rd_kafka_event_destroy,
        )
        .ok_or_else(|| {
            failed(
                RDKafkaErrorCode::RequestTimedOut,
                "no DescribeTopics result",
            )
        })?;
        let err = event_error(event.as_ptr());
        if err != 0 {
            let message = CStr::from_ptr(sys::rd_kafka_event_error_string(event.as_ptr()))
                .to_string_lossy()
                .into_owned();
            return Err(failed(code_of(err), message));
        }
        let result = sys::rd_kafka_event_DescribeTopics_result(event.as_ptr());
        if result.is_null() {
            return Err(failed(
                RDKafkaErrorCode::Fail,
                "not a DescribeTopics result",
            ));
        }
        let mut count = 0usize;
        let descriptions = sys::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        let descriptions = slice(descriptions, count);
        Ok(descriptions.iter().map(|d| read_description(*d)).collect())
    }
}

/// A C array as a slice; empty for NULL.
///
/// SAFETY: `ptr` is NULL or points to `len` initialised elements that outlive `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// Copies one description out of the result.
///
/// SAFETY: `d` is a description owned by a live DescribeTopics result.
unsafe fn read_description(d: *const sys::rd_kafka_TopicDescription_t) -> TopicAccess {
    // SAFETY: all accessors take the live description and return pointers into it,
    // read (copied) before it goes away.
    unsafe {
        let name_ptr = sys::rd_kafka_TopicDescription_name(d);
        let name = if name_ptr.is_null() {
            String::new()
        } else {
            CStr::from_ptr(name_ptr).to_string_lossy().into_owned()
        };
        let error = sys::rd_kafka_TopicDescription_error(d);
        let error = (!error.is_null())
            .then(|| error_code(error))
            .filter(|c| *c != 0);
        let mut partitions = 0usize;
        let _ = sys::rd_kafka_TopicDescription_partitions(d, &mut partitions);
        let mut n = 0usize;
        let ops = authorized_operations(d, &mut n);
        let authorized = (!ops.is_null()).then(|| slice(ops, n).to_vec());
        TopicAccess {
            name,
            error,
            partitions,
            authorized,
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, Producer};

    use super::*;
    use crate::mock_cluster::MockCluster as EmbeddedBroker;

    fn producer(bootstrap: &str) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("producer")
    }

    #[test]
    fn describes_existing_and_missing_topics_in_one_request() {
        let broker = EmbeddedBroker::start(1).expect("broker");
        broker.create_topic("four", 4).expect("topic");
        broker.create_topic("one", 1).expect("topic");
        let p = producer(broker.bootstrap_servers());
        // The mock cluster reports controller 0, which does not exist: name a broker.
        let brokers = p
            .client()
            .fetch_metadata(None, Duration::from_secs(5))
            .expect("metadata");
        let id = brokers.brokers()[0].id();
        let mut found = describe_topics(
            p.client(),
            &["four", "one", "missing"],
            Some(id),
            Duration::from_secs(5),
        )
        .expect("described");
        found.sort_by(|a, b| a.name.cmp(&b.name));
        let summary: Vec<_> = found
            .iter()
            .map(|t| (t.name.as_str(), t.error, t.partitions))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("four", None, 4),
                ("missing", Some(UNKNOWN_TOPIC_OR_PARTITION), 0),
                ("one", None, 1),
            ]
        );
        // The mock cluster has no authorizer and reports no operations.
        assert!(found.iter().all(|t| t.authorized.is_none()));
    }

    #[test]
    fn an_unreachable_broker_is_a_timeout_not_a_hang() {
        let p = producer("127.0.0.1:1");
        let started = std::time::Instant::now();
        let err = describe_topics(p.client(), &["t"], None, Duration::from_millis(500))
            .expect_err("nobody answers");
        assert!(started.elapsed() < Duration::from_secs(5), "{err:?}");
    }

    #[test]
    fn write_access_is_write_or_all() {
        use sys::rd_kafka_AclOperation_t as Op;
        let access = |ops: Option<Vec<Op>>| TopicAccess {
            name: "t".into(),
            error: None,
            partitions: 1,
            authorized: ops.map(|ops| ops.into_iter().map(|op| op as c_int).collect()),
        };
        assert_eq!(access(None).may_write(), None);
        assert_eq!(access(Some(vec![])).may_write(), Some(false));
        assert_eq!(
            access(Some(vec![
                Op::RD_KAFKA_ACL_OPERATION_READ,
                Op::RD_KAFKA_ACL_OPERATION_DESCRIBE
            ]))
            .may_write(),
            Some(false)
        );
        assert_eq!(
            access(Some(vec![
                Op::RD_KAFKA_ACL_OPERATION_DESCRIBE,
                Op::RD_KAFKA_ACL_OPERATION_WRITE
            ]))
            .may_write(),
            Some(true)
        );
        assert_eq!(
            access(Some(vec![Op::RD_KAFKA_ACL_OPERATION_ALL])).may_write(),
            Some(true)
        );
        // An operation this librdkafka does not know is carried, not misread.
        let newer = TopicAccess {
            authorized: Some(vec![14]),
            ..access(None)
        };
        assert_eq!(newer.may_write(), Some(false));
    }
}
