//! W3C trace context goes from request to reply: a request with a `traceparent` gets a
//! reply whose `traceparent` names the responder's span in the same trace (its
//! `tracestate` passed on); the handler sees that span too. A malformed `traceparent`
//! is ignored, never an error.

mod common;

use common::{Fixture, ProbeLog, ProbeReq};
use kafka_responder::testkit::Reply;
use kafka_responder::{HeaderConvention, TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceParent};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn request_with(fx: &Fixture, extra: &[(&str, &[u8])], req: &ProbeReq) -> Reply {
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let corr = requester.new_correlation_id();
    let pending = requester.expect(corr.clone());
    let mut headers = requester.request_headers(&corr);
    headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())));
    requester
        .send_raw(&fx.requests, Some(0), None, Some(&req.bytes()), &headers)
        .await
        .expect("sent");
    requester.wait(pending).await.expect("reply")
}

#[tokio::test]
async fn the_reply_continues_the_requests_trace() {
    let fx = Fixture::new(1, 1).await;
    let running = fx.serve(ProbeLog::new(), |b| b);
    let parent = TraceParent::parse(PARENT.as_bytes()).expect("parent");

    for req in [
        ProbeReq::id(1),
        ProbeReq {
            fail: Some("no".into()),
            ..ProbeReq::id(2)
        },
    ] {
        let reply = request_with(
            &fx,
            &[
                (TRACEPARENT_HEADER, PARENT.as_bytes()),
                (TRACESTATE_HEADER, b"vendor=abc,other=1"),
            ],
            &req,
        )
        .await;
        let tp = reply
            .header(TRACEPARENT_HEADER)
            .and_then(TraceParent::parse)
            .expect("the reply carries a valid traceparent");
        assert_eq!(tp.trace_id(), parent.trace_id(), "same trace");
        assert_ne!(tp.span_id(), parent.span_id(), "the responder's own span");
        assert_eq!(tp.flags(), parent.flags());
        assert_eq!(
            reply.header(TRACESTATE_HEADER),
            Some(&b"vendor=abc,other=1"[..])
        );
    }
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_malformed_or_missing_traceparent_changes_nothing_else() {
    let fx = Fixture::new(1, 1).await;
    let running = fx.serve(ProbeLog::new(), |b| b);
    // 55 bytes, as a valid one, but starting with a multi-byte character.
    let mut euro = "€".as_bytes().to_vec();
    euro.resize(55, b'0');
    for extra in [
        &[(TRACEPARENT_HEADER, &euro[..])][..],
        &[(TRACEPARENT_HEADER, &b"00-not-a-trace-01"[..])][..],
        &[(TRACEPARENT_HEADER, &[0xff, 0xfe][..])][..],
        &[][..],
    ] {
        let reply = request_with(&fx, extra, &ProbeReq::id(7)).await;
        assert_eq!(reply.error_code(), None, "answered normally");
        assert_eq!(reply.header(TRACEPARENT_HEADER), None);
    }
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn trace_context_can_be_switched_off() {
    let fx = Fixture::new(1, 1).await;
    let running = fx.serve(ProbeLog::new(), |b| {
        b.operations(|o| o.trace_context(false))
    });
    let reply = request_with(
        &fx,
        &[
            (TRACEPARENT_HEADER, PARENT.as_bytes()),
            (TRACESTATE_HEADER, b"vendor=abc"),
        ],
        &ProbeReq::id(1),
    )
    .await;
    assert_eq!(reply.error_code(), None);
    assert_eq!(reply.header(TRACEPARENT_HEADER), None);
    assert_eq!(reply.header(TRACESTATE_HEADER), None);
    running.shutdown().await.expect("shutdown");
}
