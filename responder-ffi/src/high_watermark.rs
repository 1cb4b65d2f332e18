//! A partition's high watermark as the consumer last saw it in a fetch response
//! (`rd_kafka_get_watermark_offsets`: cached, no broker round trip), for the
//! consumer-lag gauge. rust-rdkafka wraps only the querying variant, which asks the
//! broker each time.

use std::ffi::CString;

use rdkafka::bindings as sys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// The cached high watermark of `topic`/`partition`, if the consumer has fetched it.
pub fn cached<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is live for the borrow of `consumer`; the topic is a
    // NUL-terminated string valid for the call; `low` and `high` are valid for writes.
    let err = unsafe {
        sys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}
