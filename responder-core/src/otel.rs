//! OpenTelemetry export of the request spans (feature `otel`).
//!
//! The responder's `request` span (a `tracing` span at DEBUG) is exported by whatever
//! [`tracing_opentelemetry`] layer the service installs. With that layer enabled for the
//! span, a request that carries a W3C `traceparent` is exported as a child of the
//! requester's span, and its reply's `traceparent` names the exported span, so a trace
//! backend shows one trace from the requester's send to the responder's work and back.
//! Without such a layer (or with the span filtered out), the trace headers are carried
//! as without the feature: the reply names a span id the responder made up.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::trace_context::{TraceContext, TraceParent};

/// Makes the OpenTelemetry span behind `span` a child of the request's remote span;
/// the exported span's place in the trace, or `None` when no layer exports `span`.
pub(crate) fn adopt(span: &tracing::Span, cx: &TraceContext) -> Option<TraceParent> {
    if span.is_disabled() {
        return None;
    }
    let state = cx
        .state
        .as_deref()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let parent = cx.parent();
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id()),
        SpanId::from_bytes(parent.span_id()),
        TraceFlags::new(parent.flags()),
        true,
        state,
    );
    let trace_id = remote.trace_id();
    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
        .ok()?;
    let context = span.context();
    let own = context.span().span_context().clone();
    // The exported span's own flags: a span the local sampler dropped is not named as
    // sampled.
    (own.is_valid() && own.trace_id() == trace_id).then(|| {
        parent
            .with_span_id(own.span_id().to_bytes())
            .with_flags(own.trace_flags().to_u8())
    })
}
