//! With the `otel` feature and a `tracing-opentelemetry` layer installed, a request's
//! span is exported as a child of the requester's span (from its `traceparent`), the
//! handler's own spans nest under it, and the reply's `traceparent` names the exported
//! span: one trace from request to reply. Spans go to OpenTelemetry's in-memory
//! exporter.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{Fixture, eventually};
use kafka_responder::testkit::{Reply, RunningResponder};
use kafka_responder::{
    ErrorReply, Handler, HeaderConvention, Json, RequestContext, TRACEPARENT_HEADER,
    TRACESTATE_HEADER, TraceParent,
};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;

const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The process's exporter: the subscriber is global, as the responder's tasks run on
/// the runtime's worker threads.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("otel-test"));
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("responder_core", tracing::Level::DEBUG)
            .with_target("otel", tracing::Level::DEBUG);
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        exporter
    })
}

/// Scores in a span of its own, which must nest under the request's span.
struct Scorer;

impl Handler for Scorer {
    type Request = String;
    type Reply = String;
    type Error = ErrorReply;

    async fn handle(&self, wallet: String, _: &RequestContext) -> Result<String, ErrorReply> {
        let _score = tracing::info_span!("score", wallet = %wallet).entered();
        if wallet == "bad" {
            return Err(ErrorReply::bad_request("unknown wallet"));
        }
        Ok(format!("{wallet}:ok"))
    }
}

async fn request(fx: &Fixture, wallet: &str, extra: &[(&str, &[u8])]) -> Reply {
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let corr = requester.new_correlation_id();
    let pending = requester.expect(corr.clone());
    let mut headers = requester.request_headers(&corr);
    headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())));
    let payload = serde_json::to_vec(wallet).expect("json");
    requester
        .send_raw(&fx.requests, Some(0), None, Some(&payload), &headers)
        .await
        .expect("sent");
    requester.wait(pending).await.expect("reply")
}

fn finished(name: &str) -> Vec<SpanData> {
    exporter()
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .filter(|s| s.name == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_request_to_reply() {
    exporter();
    let fx = Fixture::new(1, 1).await;
    let running = RunningResponder::spawn(
        fx.builder()
            .route(&fx.requests, Json, Scorer)
            .build()
            .expect("responder"),
    );
    let parent = TraceParent::parse(PARENT.as_bytes()).expect("parent");

    for wallet in ["w-1", "bad"] {
        exporter().reset();
        let reply = request(
            &fx,
            wallet,
            &[
                (TRACEPARENT_HEADER, PARENT.as_bytes()),
                (TRACESTATE_HEADER, b"vendor=abc"),
            ],
        )
        .await;
        let tp = reply
            .header(TRACEPARENT_HEADER)
            .and_then(TraceParent::parse)
            .expect("the reply carries a traceparent");
        // The request's span ends once its reply is acknowledged and its offset settled.
        eventually(Duration::from_secs(10), || !finished("request").is_empty()).await;
        let spans = exporter().get_finished_spans().expect("spans");
        for s in &spans {
            println!(
                "exported span {:<8} trace {} span {} parent {} remote parent {}",
                s.name,
                s.span_context.trace_id(),
                s.span_context.span_id(),
                s.parent_span_id,
                s.parent_span_is_remote,
            );
        }
        let request_span = &finished("request")[0];
        assert_eq!(
            request_span.span_context.trace_id().to_bytes(),
            parent.trace_id(),
            "the requester's trace"
        );
        assert_eq!(
            request_span.parent_span_id,
            SpanId::from_bytes(parent.span_id()),
            "a child of the requester's span"
        );
        assert!(request_span.parent_span_is_remote);
        assert_eq!(
            tp.span_id(),
            request_span.span_context.span_id().to_bytes(),
            "the reply names the exported span"
        );
        assert_eq!(tp.trace_id(), parent.trace_id());
        assert_eq!(reply.header(TRACESTATE_HEADER), Some(&b"vendor=abc"[..]));
        let score = &finished("score")[0];
        assert_eq!(score.parent_span_id, request_span.span_context.span_id());
        assert_eq!(
            score.span_context.trace_id(),
            request_span.span_context.trace_id()
        );
        if wallet == "bad" {
            assert_eq!(reply.error_code(), Some("bad_request"));
        }
    }

    running.shutdown().await.expect("shutdown");

    // A request without trace context, to a responder that runs inside a span of the
    // service's own: its span is the root of a new trace (not a child of the service's
    // span), and the reply carries no traceparent (none was asked for).
    let responder = fx
        .builder()
        .route(&fx.requests, Json, Scorer)
        .build()
        .expect("responder");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tracing::info_span!(target: "otel", "service");
    let run = tokio::spawn(
        responder
            .run_until(async {
                let _ = stopped.await;
            })
            .instrument(service),
    );
    exporter().reset();
    let reply = request(&fx, "w-2", &[]).await;
    assert_eq!(reply.header(TRACEPARENT_HEADER), None);
    eventually(Duration::from_secs(10), || !finished("request").is_empty()).await;
    let root = &finished("request")[0];
    assert_eq!(
        root.parent_span_id,
        SpanId::INVALID,
        "a request's span is a root, whatever span the responder runs in"
    );
    let _ = stop.send(());
    run.await.expect("run task").expect("run");
}
