//! Every record the responder writes, built here: a reply or error reply (its headers:
//! the echoed correlation id, the trace context, the error code and message, the
//! convention's own headers) and a dead letter (the request's own headers byte for
//! byte, plus the reason headers). Producing them, with retries, is `delivery.rs`.

use rdkafka::message::{Header, OwnedHeaders};

use crate::received::Received;

use super::dead_letter::{
    DLQ_HEADER_PREFIX, DLQ_MESSAGE_HEADER, DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER,
    DLQ_REASON_HEADER, DLQ_TIME_HEADER, DLQ_TOPIC_HEADER,
};
use crate::address::ReplyAddress;
use crate::error_reply::{ERROR_CODE_HEADER, ERROR_MESSAGE_HEADER, ErrorReply};
use crate::headers::ErrorValue;
use crate::trace_context::{TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceContext};

/// The reply's headers: the echoed correlation id; the trace context (the
/// responder's span as `traceparent`, the request's `tracestate` unchanged) when the
/// request carried one; and for an error reply its code and message (also under the
/// convention's own error header, if it has one).
pub(crate) fn reply_headers(
    to: &ReplyAddress,
    outcome: &Result<Vec<u8>, ErrorReply>,
    trace: Option<&TraceContext>,
) -> OwnedHeaders {
    let convention = &to.convention;
    let mut headers = OwnedHeaders::new_with_capacity(4);
    if let Some(id) = &to.correlation_id {
        headers = headers.insert(Header {
            key: convention.correlation_id_header(),
            value: Some(&id[..]),
        });
    }
    if let Some(t) = trace {
        headers = headers.insert(Header {
            key: TRACEPARENT_HEADER,
            value: Some(&t.span().as_bytes()[..]),
        });
        if let Some(state) = &t.state {
            headers = headers.insert(Header {
                key: TRACESTATE_HEADER,
                value: Some(state),
            });
        }
    }
    if let Err(e) = outcome {
        headers = headers
            .insert(Header {
                key: ERROR_CODE_HEADER,
                value: Some(e.code()),
            })
            .insert(Header {
                key: ERROR_MESSAGE_HEADER,
                value: Some(e.message()),
            });
        if let Some(own) = convention.error_header() {
            let value = match convention.error_value() {
                ErrorValue::Json => std::borrow::Cow::Owned(
                    serde_json::json!({
                        "status": "error",
                        "code": e.code(),
                        "message": e.message(),
                    })
                    .to_string(),
                ),
                _ => std::borrow::Cow::Borrowed(e.message()),
            };
            headers = headers.insert(Header {
                key: own,
                value: Some(value.as_ref()),
            });
        }
    }
    for (key, value) in convention.reply_headers() {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

/// A dead letter's headers: the request's own (byte for byte, keys that are not UTF-8
/// included; less any `responder-dlq-*` header it carried, so a requester cannot forge
/// the reasons), then the reason headers.
pub(crate) fn dead_letter_headers(
    message: &Received,
    code: &str,
    reason: &str,
    partition: &str,
    offset: &str,
    time: &str,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(8);
    for (key, value) in message.headers() {
        if !key.starts_with(DLQ_HEADER_PREFIX.as_bytes()) {
            headers = responder_ffi::raw_headers::add(headers, key, value);
        }
    }
    for (key, value) in [
        (DLQ_REASON_HEADER, code),
        (DLQ_MESSAGE_HEADER, reason),
        (DLQ_TOPIC_HEADER, message.topic()),
        (DLQ_PARTITION_HEADER, partition),
        (DLQ_OFFSET_HEADER, offset),
        (DLQ_TIME_HEADER, time),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}
