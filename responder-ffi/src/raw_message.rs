//! A consumed record's topic name as bytes.
//!
//! rust-rdkafka's `Message::topic` checks the name as UTF-8 on every record (and
//! panics on a name that is not); the responder compares the bytes with the names it
//! already knows instead (see `received::Topics`).

use std::ffi::CStr;

use rdkafka::bindings as sys;
use rdkafka::message::BorrowedMessage;

/// The name of the topic `message` was read from, as librdkafka holds it.
pub fn topic<'m>(message: &'m BorrowedMessage<'_>) -> &'m [u8] {
    // SAFETY: a consumed message holds a reference to its topic handle for as long as
    // it lives, and the handle's name is a NUL-terminated string it owns and never
    // changes (rust-rdkafka's `Message::topic` reads it the same way).
    unsafe { CStr::from_ptr(sys::rd_kafka_topic_name(message.topic_ptr())) }.to_bytes()
}
