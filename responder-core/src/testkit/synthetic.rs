//! Testing a handler with no broker at all: a synthetic request, and the handler run
//! under its codec exactly as the responder runs it (decode, handle, encode; a payload
//! that does not decode and an encoding failure become the same error replies).
//!
//! ```
//! use responder_core::testkit::{TestRequest, serve};
//! use responder_core::{ErrorReply, Handler, Json, RequestContext};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Request = String;
//!     type Reply = String;
//!     type Error = ErrorReply;
//!
//!     async fn handle(&self, req: String, cx: &RequestContext) -> Result<String, ErrorReply> {
//!         Ok(format!("{req} from {}", cx.topic()))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let cx = TestRequest::new(br#""hello""#.to_vec()).topic("echo").context();
//! let reply = serve(&Json, &Echo, &cx).await.expect("a reply");
//! assert_eq!(reply, br#""hello from echo""#);
//! let bad = serve(&Json, &Echo, &TestRequest::new(b"{".to_vec()).context()).await;
//! assert_eq!(bad.unwrap_err().code(), "bad_request");
//! # });
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::ReplyAddress;
use crate::codec::Codec;
use crate::context::RequestContext;
use crate::error_reply::ErrorReply;
use crate::handler::Handler;
use crate::headers::HeaderConvention;
use crate::received::Received;
use crate::trace_context::TraceContext;

/// A request as a handler would receive it, built without Kafka. Defaults: topic
/// `requests`, partition 0, offset 0, no key, timestamp now, no headers, the reply
/// address `replies` with correlation id `test-correlation` (Spring convention), no
/// deadline.
#[derive(Debug, Clone)]
pub struct TestRequest {
    payload: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    topic: String,
    partition: i32,
    offset: i64,
    headers: Vec<(String, Vec<u8>)>,
    reply_topic: String,
    reply_partition: Option<i32>,
    correlation_id: Vec<u8>,
    deadline: Option<SystemTime>,
}

impl TestRequest {
    /// A request with this payload.
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        TestRequest {
            payload: Some(payload.into()),
            key: None,
            topic: "requests".into(),
            partition: 0,
            offset: 0,
            headers: Vec::new(),
            reply_topic: "replies".into(),
            reply_partition: None,
            correlation_id: b"test-correlation".to_vec(),
            deadline: None,
        }
    }

    /// A tombstone (no payload).
    pub fn tombstone() -> Self {
        TestRequest {
            payload: None,
            ..Self::new(Vec::new())
        }
    }

    /// The request topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// The partition and offset.
    pub fn at(mut self, partition: i32, offset: i64) -> Self {
        self.partition = partition;
        self.offset = offset;
        self
    }

    /// The record key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header (they keep their order; repeats allowed).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Where the reply goes: topic, partition and correlation id.
    pub fn reply_to(
        mut self,
        topic: impl Into<String>,
        partition: Option<i32>,
        correlation_id: impl Into<Vec<u8>>,
    ) -> Self {
        self.reply_topic = topic.into();
        self.reply_partition = partition;
        self.correlation_id = correlation_id.into();
        self
    }

    /// The request's deadline.
    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The context a handler receives for this request.
    pub fn context(&self) -> RequestContext {
        let trace = TraceContext::read(
            &self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), Some(&v[..])))
                .collect(),
        );
        let now = millis(SystemTime::now());
        let message = Received::new(
            &self.topic,
            self.partition,
            self.offset,
            now,
            self.key.as_deref(),
            self.payload.as_deref(),
            self.headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), Some(&v[..]))),
        );
        let address = ReplyAddress {
            topic: crate::address::TopicName::valid(&self.reply_topic),
            partition: self.reply_partition,
            correlation_id: Some(self.correlation_id.clone().into()),
            convention: Arc::new(HeaderConvention::spring()),
        };
        let mut cx = RequestContext::received(message);
        cx.set_reply_to(address);
        cx.set_deadline(self.deadline.and_then(millis));
        cx.set_trace(trace);
        cx
    }
}

fn millis(t: SystemTime) -> Option<i64> {
    i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

/// Runs `handler` on the request under `codec`, as the responder does: decodes the
/// payload, calls the handler, encodes the reply. The reply's bytes, or the error reply the
/// requester would receive (`bad_request` for a payload that does not decode,
/// `internal_error` for a reply that does not encode, the handler's own otherwise).
/// Panics and timeouts are the runtime's business and are not caught here.
pub async fn serve<C, H>(
    codec: &C,
    handler: &H,
    request: &RequestContext,
) -> Result<Vec<u8>, ErrorReply>
where
    H: Handler,
    C: Codec<H::Request, H::Reply>,
{
    crate::endpoint::run(codec, handler, request).await
}
