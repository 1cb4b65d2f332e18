//! The Prometheus metrics count what happened, by topic, outcome and stable code, and
//! time the handler, the reply's produce and the request's age at its reply.

mod common;

use std::time::Duration;

use common::{Fixture, ProbeLog, ProbeReq, eventually};
use kafka_responder::HeaderConvention;

/// The value of the sample line that starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn outcomes_durations_and_gauges_are_exported() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log, |b| b);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    for req in [
        ProbeReq::id(1),
        ProbeReq::id(2),
        ProbeReq {
            fail: Some("no".into()),
            ..ProbeReq::id(3)
        },
    ] {
        requester
            .request(&fx.requests, None, &req.bytes())
            .await
            .expect("reply");
    }
    // And one that names no reply address.
    requester
        .send_raw(&fx.requests, Some(0), None, Some(b"{}"), &[])
        .await
        .expect("sent");
    eventually(Duration::from_secs(10), || {
        running.metrics().unanswerable == 1
    })
    .await;
    // The gauges are sampled every tick (at most 100 ms), the lag every commit
    // interval.
    eventually(Duration::from_secs(5), || {
        let text = running.encode_prometheus();
        sample(&text, "kafka_responder_requests_in_flight ") == Some(0.0)
            && text.contains("kafka_responder_consumer_lag{")
    })
    .await;

    let text = running.encode_prometheus();
    eprintln!("{text}");
    let t = &fx.requests;
    let expect = [
        (
            format!("kafka_responder_requests_received_total{{topic=\"{t}\"}}"),
            4.0,
        ),
        (
            format!(
                "kafka_responder_requests_total{{topic=\"{t}\",outcome=\"replied\",code=\"\"}}"
            ),
            2.0,
        ),
        (
            format!(
                "kafka_responder_requests_total{{topic=\"{t}\",outcome=\"error_reply\",code=\"probe_failed\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "kafka_responder_requests_total{{topic=\"{t}\",outcome=\"unanswerable\",code=\"no_reply_address\"}}"
            ),
            1.0,
        ),
        (
            format!("kafka_responder_handler_duration_seconds_count{{topic=\"{t}\"}}"),
            3.0,
        ),
        (
            format!("kafka_responder_reply_produce_duration_seconds_count{{topic=\"{t}\"}}"),
            3.0,
        ),
        (
            format!("kafka_responder_request_age_at_reply_seconds_count{{topic=\"{t}\"}}"),
            3.0,
        ),
        (
            "kafka_responder_rebalances_total{kind=\"assigned\"}".to_owned(),
            1.0,
        ),
        ("kafka_responder_partitions_assigned ".to_owned(), 1.0),
        ("kafka_responder_partitions_paused ".to_owned(), 0.0),
        ("kafka_responder_requests_in_flight ".to_owned(), 0.0),
    ];
    for (prefix, want) in expect {
        assert_eq!(sample(&text, &prefix), Some(want), "{prefix}");
    }
    // Every metric the shipped Grafana dashboard queries exists (dead letters are
    // exported from the first one on: their reasons are not known before).
    let dashboard = include_str!("../examples/grafana-dashboard.json");
    let names = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            w.starts_with("kafka_responder_") && *w != "kafka_responder_dead_letters_total"
        });
    let mut checked = 0;
    for name in names {
        let base = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_total"))
            .unwrap_or(name);
        assert!(
            text.contains(&format!("# TYPE {base} ")),
            "the dashboard queries {name}, which is not exported"
        );
        checked += 1;
    }
    assert!(checked >= 10, "{checked} metric names in the dashboard");
    running.shutdown().await.expect("shutdown");
}

/// The consumer lag of a partition: the high watermark minus the committed offset, which
/// a held request holds back.
#[tokio::test]
async fn consumer_lag_follows_the_committed_watermark() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| b);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    requester
        .request(&fx.requests, None, &ProbeReq::id(0).bytes())
        .await
        .expect("reply");
    let (held, _) = requester
        .send(&fx.requests, Some(0), None, &ProbeReq::held(1).bytes())
        .await
        .expect("sent");
    for id in 2..=3 {
        requester
            .request(&fx.requests, None, &ProbeReq::id(id).bytes())
            .await
            .expect("reply");
    }
    let lag = format!(
        "kafka_responder_consumer_lag{{topic=\"{}\",partition=\"0\"}}",
        fx.requests
    );
    // Offsets 0 to 3 written, 1 held: committed 1, high watermark 4.
    eventually(Duration::from_secs(10), || {
        sample(&running.encode_prometheus(), &lag) == Some(3.0)
    })
    .await;
    log.open_gate(1);
    requester.wait(held).await.expect("reply");
    eventually(Duration::from_secs(10), || {
        sample(&running.encode_prometheus(), &lag) == Some(0.0)
    })
    .await;
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn per_request_series_can_be_switched_off() {
    let fx = Fixture::new(1, 1).await;
    let running = fx.serve(ProbeLog::new(), |b| {
        b.operations(|o| o.prometheus_metrics(false))
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    for req in [
        ProbeReq::id(1),
        ProbeReq {
            fail: Some("no".into()),
            ..ProbeReq::id(2)
        },
    ] {
        requester
            .request(&fx.requests, None, &req.bytes())
            .await
            .expect("reply");
    }
    eventually(Duration::from_secs(5), || {
        sample(
            &running.encode_prometheus(),
            "kafka_responder_partitions_assigned ",
        ) == Some(1.0)
    })
    .await;
    // The in-process counters still count (a reply is counted once its
    // acknowledgement is back, which may be after the requester saw it).
    eventually(Duration::from_secs(5), || {
        let m = running.metrics();
        (m.received, m.replied, m.error_replies) == (2, 1, 1)
    })
    .await;
    let text = running.encode_prometheus();
    for series in [
        "kafka_responder_requests_received_total{",
        "kafka_responder_requests_total{",
        "kafka_responder_handler_duration_seconds_count{",
        "kafka_responder_request_age_at_reply_seconds_count{",
    ] {
        assert!(!text.contains(series), "{series} recorded:\n{text}");
    }
    running.shutdown().await.expect("shutdown");
}
