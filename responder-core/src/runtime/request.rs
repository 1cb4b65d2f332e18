//! One request, from record to settled outcome: read the reply address, check it
//! against the policy, decode, handle, encode, produce the reply, await the broker's
//! acknowledgement.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use super::acks::Record;
use crate::received::Received;
use futures_util::FutureExt;
use rdkafka::error::KafkaError;
use tracing::Instrument;

use super::cancel::Cancel;
use super::delivery::{Kind, deliver};
use super::ticket::Ticket;
use super::time_limit::TimeLimit;
use super::{Shared, dead_letter, records};
use crate::address::{CorrelationId, ReplyAddress, RequestHeaders, Unanswerable};
use crate::admission;
use crate::codes;
use crate::context::RequestContext;
use crate::deadline;
use crate::endpoint::Endpoint;
use crate::error_reply::ErrorReply;
use crate::metrics::{Outcome, TopicMetrics};
use crate::reply_buffers;
use crate::router::Serving;
use crate::stamp::Stamp;
use crate::trace_context::TraceContext;

/// A request ready to run.
pub(crate) struct Job {
    pub(crate) message: Received,
    /// The route's handler, handler timeout (a deadline may shorten it) and metrics.
    pub(crate) serving: Arc<Serving>,
    pub(crate) ticket: Ticket,
    /// Fired when the request's partition is revoked or the responder stops.
    pub(crate) cancel: Cancel,
}

/// A request's correlation id in its log events: as [`CorrelationId`] shows it, empty
/// when it has none.
struct Correlation<'a>(Option<&'a CorrelationId>);

impl fmt::Display for Correlation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.map_or(Ok(()), |id| fmt::Display::fmt(id, f))
    }
}

/// The request's correlation id, for its log events.
fn correlation(cx: &RequestContext) -> Correlation<'_> {
    Correlation(cx.reply_to().correlation_id.as_ref())
}

/// Runs one request to its settled outcome. Its ticket reports to the dispatcher when
/// the request is handled (its reply is with the producer) and when its offset is
/// settled, or abandoned: the whole request is cancelled when its partition is
/// revoked or the responder stops (then its offset stays uncommitted).
///
/// The request's span is at DEBUG (as tower-http's request spans): at INFO a span per
/// request costs more than the rest of the framework's work on it (a subscriber formats
/// its fields when it opens), so the responder's own events carry the request's
/// topic, partition and offset themselves.
///
/// The span is a root (`parent: None`): a request starts its own trace, or continues
/// its requester's, never the trace of whatever span the responder runs in.
///
/// Not an `async fn`: the request's context is built here, before its future, so the
/// future owns it once and everything after borrows it. (A future that moves what it
/// owns into new locals, or into an inner future, keeps both copies for its whole
/// life: the request's state machine was 2.3 KB that way.)
///
/// Always inlined, as [`request`] is: built in the worker's builder, the future is
/// written straight into its slot rather than copied there (see `Workers::start`).
#[inline(always)]
pub(crate) fn process(job: Job, shared: Arc<Shared>) -> impl Future<Output = ()> + Send {
    let Job {
        message,
        serving,
        ticket,
        cancel,
    } = job;
    let span = tracing::debug_span!(
        parent: None,
        "request",
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        correlation_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let cx = RequestContext::received(message);
    // Not boxed: a worker's slot holds it (see `workers.rs`).
    request(cx, serving, ticket, shared, span, cancel)
}

/// The request's whole life: its headers read, then [`answer`] in its span, unless
/// `cancel` fires first: revocation or shutdown abandons the request wherever it is
/// (its ticket, dropped unsettled, leaves it uncommitted for the next owner).
///
/// An `async` block, not an `async fn`: an `async fn` keeps each argument twice in its
/// state machine (as received, and as the local it is bound to), the block uses what
/// it captured in place.
#[allow(clippy::manual_async_fn)]
#[inline(always)]
fn request(
    mut cx: RequestContext,
    serving: Arc<Serving>,
    mut done: Ticket,
    shared: Arc<Shared>,
    span: tracing::Span,
    cancel: Cancel,
) -> impl Future<Output = ()> + Send {
    async move {
        // The span `answer` records the correlation id on: a clone (of a disabled
        // span, nothing but a copy), made here so that `answer`'s future is built in
        // place in `.instrument`'s (a call between the two made it a temporary, and
        // 2.4 KB of copies per request).
        let recorder = span.clone();
        // Not `move`: it borrows what the outer block owns. Pinned here, so it is
        // stored once (see `Cancel::guard`).
        let work = std::pin::pin!(async {
            let (address, unreadable_deadline) = read_headers(&mut cx, &shared, &span);
            answer(
                &mut cx,
                address,
                unreadable_deadline,
                &*serving.endpoint,
                serving.handler_timeout,
                &serving.metrics,
                &mut done,
                &shared,
                &recorder,
            )
            .instrument(span)
            .await;
        });
        cancel.guard(work).await;
    }
}

/// Reads the request's headers once, for its trace context, reply address and
/// deadline. The trace context is read before the span is first entered: an
/// OpenTelemetry layer starts its span then, and its parent, the requester's span,
/// must be set before. Returns the reply address (admitted by the policy, or why not)
/// and, when the deadline header cannot be read, why.
fn read_headers(
    cx: &mut RequestContext,
    shared: &Shared,
    span: &tracing::Span,
) -> (Result<ReplyAddress, Unanswerable>, Option<String>) {
    let (address, deadline, trace) = {
        // Read into place (see `RequestHeaders::read`).
        let mut headers = RequestHeaders::default();
        headers.read(cx.message().headers());
        let mut trace = shared
            .trace_context
            .then(|| TraceContext::read(&headers))
            .flatten();
        if let Some(t) = &mut trace {
            t.adopt(span);
        }
        let address = shared.addresses.read(&headers).and_then(|a| {
            let admitted = shared.admitted.admitted(&a.topic, || {
                admission::allows(
                    &a.topic,
                    &shared.policy,
                    |t| shared.router.get(t).is_some(),
                    shared.dead_letter_topic.as_deref(),
                )
            });
            if admitted {
                Ok(a)
            } else {
                Err(admission::refused(&a))
            }
        });
        (
            address,
            shared.deadlines.deadline(&headers, cx.timestamp_millis()),
            trace,
        )
    };
    cx.set_trace(trace);
    cx.set_deadline(deadline.at);
    (address, deadline.unreadable)
}

/// Checks the reply address with the broker, handles the request and delivers its
/// reply (or error reply, or dead letter), then settles the ticket. (An `async` block
/// for the reason [`request`] is one.)
#[allow(clippy::too_many_arguments, clippy::manual_async_fn)] // parts borrowed from `request`
fn answer<'a>(
    cx: &'a mut RequestContext,
    address: Result<ReplyAddress, Unanswerable>,
    unreadable_deadline: Option<String>,
    endpoint: &'a dyn Endpoint,
    handler_timeout: Duration,
    metrics: &'a TopicMetrics,
    done: &'a mut Ticket,
    shared: &'a Shared,
    span: &'a tracing::Span,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        // An expired request is not worth a broker lookup.
        let address = match address {
            Ok(_) if is_expired(cx.deadline_millis()) => {
                metrics.outcome(Outcome::Expired, "");
                tracing::info!(
                    topic = cx.topic(),
                    partition = cx.partition(),
                    offset = cx.offset(),
                    deadline = cx.deadline_millis(),
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
                tracing::warn!(
                    topic = cx.topic(),
                    partition = cx.partition(),
                    offset = cx.offset(),
                    code = reason.code(),
                    %reason,
                    "request cannot be answered; committing it without a reply"
                );
                // Boxed: rare paths, kept out of the per-request future's size.
                Box::pin(dead_letter::dead_letter(
                    shared,
                    metrics,
                    done,
                    cx.message(),
                    reason.code(),
                    &reason.to_string(),
                ))
                .await;
                // Counted once its outcome is final (a revocation during the dead
                // letter's retries abandons it: the next owner counts it).
                metrics.outcome(Outcome::Unanswerable, reason.code());
                done.settle();
                return;
            }
        };
        // The request's own span, not `Span::current()`: the same span, without a
        // look-up of the current one (~80 instructions) for a span usually disabled.
        if let Some(id) = &address.correlation_id {
            span.record("correlation_id", tracing::field::display(id));
        }
        cx.set_reply_to(address);
        let refusal = unreadable_deadline
            .map(|why| ErrorReply::bad_request(format!("invalid deadline: {why}")));
        let size = cx.payload().map_or(0, <[u8]>::len);
        let refusal = refusal.or_else(|| {
            let max = shared.max_request_bytes.filter(|max| size > *max)?;
            Some(ErrorReply::new(
                codes::PAYLOAD_TOO_LARGE,
                format!("payload of {size} bytes; at most {max} accepted"),
            ))
        });
        let cx = &*cx;
        // When timed, the handler's end is also the reply's first produce attempt
        // (encoding is part of the handler's time): one clock read for both.
        let (outcome, produced) = match refusal {
            Some(e) => (Err(e), metrics.timed().then(Stamp::now)),
            None => handle(metrics, cx, endpoint, handler_timeout).await,
        };
        if let Err(e) = &outcome {
            tracing::info!(
                topic = cx.topic(),
                partition = cx.partition(),
                offset = cx.offset(),
                correlation_id = %correlation(cx),
                code = e.code(),
                message = e.message(),
                "error reply"
            );
        }
        let to = cx.reply_to();
        let payload = outcome.as_ref().ok().map(Vec::as_slice);
        let delivered = deliver(shared, metrics, done, cx.message(), Kind::Reply, || {
            let headers = records::reply_headers(to, &outcome, cx.trace());
            let mut record = Record::to(&to.topic).headers(headers);
            if let Some(p) = to.partition {
                record = record.partition(p);
            }
            if let Some(k) = cx.key() {
                record = record.key(k);
            }
            if let Some(p) = payload {
                record = record.payload(p);
            }
            record
        })
        .await;
        if let (Ok(()), Some(produced)) = (&delivered, produced) {
            // One clock read for both: the acknowledgement's time, and (through the
            // wall clock's offset) the request's age.
            let acked = Stamp::now();
            metrics.produce_duration(acked.nanos_since(produced));
            if let Some(ts) = cx.timestamp_millis() {
                metrics.request_age(acked.epoch_millis().saturating_sub(ts));
            }
        }
        match delivered {
            Ok(()) => match &outcome {
                Ok(_) => metrics.outcome(Outcome::Replied, ""),
                Err(e) => metrics.outcome(Outcome::ErrorReply, e.code()),
            },
            Err(e) => {
                refused(cx, &e);
                let reason = e.to_string();
                Box::pin(dead_letter::dead_letter(
                    shared,
                    metrics,
                    done,
                    cx.message(),
                    codes::REPLY_REFUSED,
                    &reason,
                ))
                .await;
                metrics.outcome(Outcome::Refused, codes::REPLY_REFUSED);
            }
        }
        if let Ok(reply) = outcome {
            reply_buffers::give(reply);
        }
        done.settle();
    }
}

/// Runs the handler, bounded by its timeout and the request's deadline; a panic or a
/// timeout becomes an error reply. Also returns when it ended, if the topic's metrics
/// are timed.
async fn handle(
    metrics: &TopicMetrics,
    cx: &RequestContext,
    endpoint: &dyn Endpoint,
    timeout: Duration,
) -> (Result<Vec<u8>, ErrorReply>, Option<Stamp>) {
    let limit = handler_limit(timeout, cx.deadline_millis());
    // One reading for both: the limit counts from it, and the handler's time.
    let started = Stamp::now();
    // The handler's future is dropped inside the guarded block too (a timed-out one
    // is dropped as the `.await` completes), so a panic in its drop is caught as well.
    let run = async { TimeLimit::new(endpoint.serve(cx), started, limit).await };
    let result = AssertUnwindSafe(run).catch_unwind().await;
    let ended = metrics.timed().then(|| {
        let now = Stamp::now();
        metrics.handler_duration(now.nanos_since(started));
        now
    });
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Err(panic) => {
            metrics.panicked();
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
        Ok(Err(_elapsed)) => {
            metrics.timed_out();
            tracing::warn!(
                topic = cx.topic(),
                partition = cx.partition(),
                offset = cx.offset(),
                correlation_id = %correlation(cx),
                limit_ms = limit.as_millis() as u64,
                "handler timed out; its work is dropped and a timeout error reply sent"
            );
            Err(ErrorReply::new(
                codes::TIMEOUT,
                format!("the handler did not answer within {} ms", limit.as_millis()),
            ))
        }
    };
    (outcome, ended)
}

/// The handler's time limit: its timeout, or less when the request's deadline comes
/// first.
fn handler_limit(timeout: Duration, deadline_millis: Option<i64>) -> Duration {
    match deadline_millis {
        Some(d) => {
            let left = u64::try_from(d.saturating_sub(deadline::now_millis())).unwrap_or(0);
            timeout.min(Duration::from_millis(left))
        }
        None => timeout,
    }
}

fn is_expired(deadline: Option<i64>) -> bool {
    deadline.is_some_and(|d| deadline::now_millis() >= d)
}

fn refused(cx: &RequestContext, e: &KafkaError) {
    tracing::error!(
        topic = cx.topic(),
        partition = cx.partition(),
        offset = cx.offset(),
        correlation_id = %correlation(cx),
        error = %e,
        reply_topic = &*cx.reply_to().topic,
        reply_partition = cx.reply_to().partition,
        "reply refused by the broker; committing the request without a reply"
    );
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}
