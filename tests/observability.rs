//! The responder's events about a request carry its topic, partition, offset and
//! correlation id at INFO, so whatever is logged about it can be traced back to the
//! record. (The per-request `request` span with the same fields is at DEBUG: at INFO
//! it would cost more than the rest of the framework's work per request.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Fixture, ProbeLog, ProbeReq};
use kafka_responder::HeaderConvention;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_events_carry_the_record_coordinates_and_correlation_id() {
    let fx = Fixture::new(1, 1).await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("responder_core=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded: request tasks run on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let running = fx.serve(ProbeLog::new(), |b| b);
    let requester = fx.requester(HeaderConvention::plain(), 0).await;
    let failing = ProbeReq {
        fail: Some("nope".into()),
        ..ProbeReq::id(1)
    };
    let corr = b"corr-abc-123".to_vec();
    let headers = requester.request_headers(&corr);
    let pending = requester.expect(corr);
    let (_, offset) = requester
        .send_raw(&fx.requests, None, None, Some(&failing.bytes()), &headers)
        .await
        .expect("sent");
    requester.wait(pending).await.expect("error reply");
    // A request with no reply address: logged with its coordinates.
    let (_, bad_offset) = requester
        .send_raw(&fx.requests, None, None, Some(b"{}"), &[])
        .await
        .expect("sent");
    common::eventually(std::time::Duration::from_secs(10), || {
        running.metrics().unanswerable == 1
    })
    .await;
    running.shutdown().await.expect("shutdown");

    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    let error_line = text
        .lines()
        .find(|l| l.contains("error reply"))
        .unwrap_or_else(|| panic!("no error-reply event in:\n{text}"));
    for field in [
        format!("topic=\"{}\"", fx.requests),
        "partition=0".to_owned(),
        format!("offset={offset}"),
        "correlation_id=corr-abc-123".to_owned(),
        "code=\"probe_failed\"".to_owned(),
    ] {
        assert!(
            error_line.contains(&field),
            "{field} missing from: {error_line}"
        );
    }
    let unanswerable = text
        .lines()
        .find(|l| l.contains("cannot be answered"))
        .unwrap_or_else(|| panic!("no unanswerable event in:\n{text}"));
    assert!(
        unanswerable.contains(&format!("offset={bad_offset}")),
        "{unanswerable}"
    );
    assert!(
        unanswerable.contains("code=\"no_reply_address\""),
        "{unanswerable}"
    );
}
