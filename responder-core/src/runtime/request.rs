//! One request, from record to settled outcome: read the reply address, check it
//! against the policy, decode, handle, encode, produce the reply, await the broker's
//! acknowledgement.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rdkafka::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use tracing::Instrument;

use super::dispatcher::Done;
use super::{Shared, dead_letter};
use crate::address::{ReplyAddress, Unanswerable};
use crate::context::RequestContext;
use crate::deadline;
use crate::error_reply::{ERROR_CODE_HEADER, ERROR_MESSAGE_HEADER, ErrorReply, codes};
use crate::handler::Endpoint;

/// A request ready to run.
pub(crate) struct Job {
    pub(crate) message: OwnedMessage,
    pub(crate) endpoint: Arc<dyn Endpoint>,
    pub(crate) done: Done,
}

/// Shows a correlation id as text when it is printable ASCII, else as hex.
struct CorrelationId<'a>(&'a [u8]);

impl fmt::Display for CorrelationId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_empty() && self.0.iter().all(|b| b.is_ascii_graphic()) {
            // Printable ASCII is valid UTF-8.
            f.write_str(std::str::from_utf8(self.0).unwrap_or_default())
        } else {
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
}

/// The request's correlation id, for its log events (empty when it has none).
fn correlation<'a>(cx: &'a RequestContext) -> CorrelationId<'a> {
    CorrelationId(cx.reply_to().correlation_id.as_deref().unwrap_or_default())
}

/// Runs one request to its settled outcome. `done` reports to the dispatcher when the
/// request is handled (its reply is with the producer) and when its offset is settled
/// (or abandoned, if this future is dropped).
///
/// The request's span is at DEBUG (as tower-http's request spans): at INFO a span per
/// request costs more than the rest of the framework's work on it (a subscriber formats
/// its fields when it opens), so the responder's own events carry the request's
/// topic, partition and offset themselves.
///
/// Not an `async fn`: the instrumented block is the task's whole future, with no outer
/// state machine holding a second copy of its arguments (every byte of it is copied
/// when the task is spawned).
pub(crate) fn process(job: Job, shared: Arc<Shared>) -> impl Future<Output = ()> + Send {
    let Job {
        message,
        endpoint,
        mut done,
    } = job;
    let span = tracing::debug_span!(
        "request",
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        correlation_id = tracing::field::Empty,
    );
    async move {
        let address = shared
            .addresses
            .read(message.headers())
            .and_then(|a| shared.check_allowed(a));
        // An expired request is not worth a broker lookup.
        let deadline = shared.deadlines.deadline(&message);
        let address = match address {
            Ok(_) if is_expired(deadline.at) => {
                shared.metrics.inc_expired();
                tracing::info!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    deadline = deadline.at,
                    "request expired before it was handled; committing it without a reply"
                );
                done.settle();
                return;
            }
            Ok(a) => shared
                .reply_topics
                .check(&shared.producer, &a)
                .await
                .map(|()| a),
            Err(e) => Err(e),
        };
        let address = match address {
            Ok(a) => a,
            Err(reason) => {
                shared.metrics.inc_unanswerable();
                tracing::warn!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    code = reason.code(),
                    %reason,
                    "request cannot be answered; committing it without a reply"
                );
                // Boxed: rare paths, kept out of the per-request future's size.
                if Box::pin(dead_lettered(
                    &shared,
                    &message,
                    reason.code(),
                    &reason.to_string(),
                ))
                .await
                {
                    done.settle();
                }
                return;
            }
        };
        if let Some(id) = &address.correlation_id {
            tracing::Span::current()
                .record("correlation_id", tracing::field::display(CorrelationId(id)));
        }
        let refusal = deadline
            .unreadable
            .map(|why| ErrorReply::bad_request(format!("invalid deadline: {why}")));
        let size = message.payload().map_or(0, <[u8]>::len);
        let refusal = refusal.or_else(|| {
            let max = shared.max_request_bytes.filter(|max| size > *max)?;
            Some(ErrorReply::new(
                codes::PAYLOAD_TOO_LARGE,
                format!("payload of {size} bytes; at most {max} accepted"),
            ))
        });
        let cx = RequestContext::new(message, address, deadline.at);
        let outcome = match refusal {
            Some(e) => Err(e),
            None => match AssertUnwindSafe(endpoint.serve(&cx)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    shared.metrics.inc_panics();
                    let msg = panic_message(&*panic);
                    tracing::error!(
                        topic = cx.topic(),
                        partition = cx.partition(),
                        offset = cx.offset(),
                        panic = msg,
                        "handler panicked"
                    );
                    Err(ErrorReply::internal(format!("handler panicked: {msg}")))
                }
            },
        };
        if let Err(e) = &outcome {
            tracing::info!(
                topic = cx.topic(),
                partition = cx.partition(),
                offset = cx.offset(),
                correlation_id = %correlation(&cx),
                code = e.code(),
                message = e.message(),
                "error reply"
            );
        }
        let is_error = outcome.is_err();
        let delivery = send_reply(&shared, &cx, outcome).await;
        done.handled();
        let result = match delivery {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e),
                Err(_canceled) => Err(KafkaError::Canceled),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(()) if is_error => shared.metrics.inc_error_replies(),
            Ok(()) => shared.metrics.inc_replied(),
            Err(e) if is_permanent(&e) => {
                failed(&shared, &cx, &e);
                let reason = e.to_string();
                if !Box::pin(dead_lettered(
                    &shared,
                    cx.message(),
                    "reply_refused",
                    &reason,
                ))
                .await
                {
                    return;
                }
            }
            Err(e) => {
                // Not this record's fault (the producer failed, or the broker stayed
                // out of reach past message.timeout.ms): leave the request uncommitted,
                // so it is answered again after a restart or rebalance, never lost.
                shared.metrics.inc_delivery_failures();
                tracing::error!(
                    topic = cx.topic(),
                    partition = cx.partition(),
                    offset = cx.offset(),
                    correlation_id = %correlation(&cx),
                    error = %e,
                    reply_topic = cx.reply_to().topic,
                    "reply was not delivered; the request stays uncommitted"
                );
                return; // `done` drops unsettled
            }
        }
        done.settle();
    }
    .instrument(span)
}

/// Copies the request to the dead-letter topic, if one is configured. Returns whether
/// the request may be settled: `false` only when the dead letter itself could not be
/// written for a reason that is not permanent (then the request stays uncommitted).
async fn dead_lettered(shared: &Shared, message: &OwnedMessage, code: &str, reason: &str) -> bool {
    match dead_letter::dead_letter(shared, message, code, reason).await {
        Ok(true) => {
            shared.metrics.inc_dead_lettered();
            true
        }
        Ok(false) => true,
        Err(e) if is_permanent(&e) => {
            tracing::error!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                error = %e,
                "dead letter refused by the broker; committing anyway"
            );
            true
        }
        Err(e) => {
            tracing::error!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                error = %e,
                "dead letter not written; the request stays uncommitted"
            );
            false
        }
    }
}

fn is_expired(deadline: Option<i64>) -> bool {
    deadline.is_some_and(|d| deadline::now_millis() >= d)
}

/// Errors that retrying the same reply cannot cure: the record itself is refused.
fn is_permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e,
        KafkaError::MessageProduction(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::TopicAuthorizationFailed
                | C::UnknownTopicOrPartition
                | C::UnknownTopic
                | C::UnknownPartition
                | C::InvalidTopic
        )
    )
}

fn failed(shared: &Shared, cx: &RequestContext, e: &KafkaError) {
    shared.metrics.inc_delivery_failures();
    tracing::error!(
        topic = cx.topic(),
        partition = cx.partition(),
        offset = cx.offset(),
        correlation_id = %correlation(cx),
        error = %e,
        reply_topic = cx.reply_to().topic,
        reply_partition = cx.reply_to().partition,
        "reply was not accepted by the broker; committing the request without a reply"
    );
}

/// Enqueues the reply with the producer, waiting while its queue is full.
async fn send_reply(
    shared: &Shared,
    cx: &RequestContext,
    outcome: Result<Vec<u8>, ErrorReply>,
) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
    let to: &ReplyAddress = cx.reply_to();
    let convention = &to.convention;
    let mut headers = OwnedHeaders::new_with_capacity(4);
    if let Some(id) = &to.correlation_id {
        headers = headers.insert(Header {
            key: convention.correlation_id_header(),
            value: Some(id),
        });
    }
    let payload = match &outcome {
        Ok(bytes) => Some(bytes),
        Err(e) => {
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
                headers = headers.insert(Header {
                    key: own,
                    value: Some(e.message()),
                });
            }
            None
        }
    };
    let mut record: FutureRecord<'_, [u8], Vec<u8>> = FutureRecord::to(&to.topic).headers(headers);
    if let Some(p) = to.partition {
        record = record.partition(p);
    }
    if let Some(k) = cx.key() {
        record = record.key(k);
    }
    if let Some(p) = payload {
        record = record.payload(p);
    }
    loop {
        match shared.producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

impl Shared {
    /// Applies the reply-topic policy plus the rules no policy can lift: never an
    /// internal topic, never one of our own request topics (no request loops), never
    /// the dead-letter topic (no forged dead letters).
    pub(crate) fn check_allowed(&self, a: ReplyAddress) -> Result<ReplyAddress, Unanswerable> {
        let topic = a.topic.as_str();
        if crate::topic::is_internal_topic(topic)
            || self.router.get(topic).is_some()
            || self.dead_letter_topic.as_deref() == Some(topic)
            || !self.policy.allows(topic)
        {
            return Err(Unanswerable::TopicNotAllowed(a.topic));
        }
        Ok(a)
    }
}
