//! `/metrics`, `/livez` and `/readyz` over HTTP (feature `http`): served while the
//! responder runs, gone once it stopped.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Fixture, Probe, ProbeLog, ProbeReq, eventually};
use kafka_responder::testkit::RunningResponder;
use kafka_responder::{HeaderConvention, Json};

/// A plain HTTP/1.1 GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::test]
async fn metrics_and_health_are_served_while_the_responder_runs() {
    let fx = Fixture::new(1, 1).await;
    let responder = fx
        .builder()
        .operations(|o| o.http_addr("127.0.0.1:0".parse().expect("addr")))
        .route(&fx.requests, Json, Probe(ProbeLog::new()))
        .build()
        .expect("responder");
    let addr = responder.http_local_addr().expect("bound");
    let running = RunningResponder::spawn(responder);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    requester
        .request(&fx.requests, None, &ProbeReq::id(1).bytes())
        .await
        .expect("reply");

    let probe = move |path: &'static str| {
        tokio::task::spawn_blocking(move || get(addr, path).expect("GET"))
    };
    let (status, body) = probe("/livez").await.expect("task");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // Ready: joined, with the partition assigned.
    let mut ready = (0, String::new());
    for _ in 0..50 {
        ready = probe("/readyz").await.expect("task");
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    // The reply can reach the requester a moment before the responder counts it.
    let replied = format!(
        "kafka_responder_requests_total{{topic=\"{}\",outcome=\"replied\",code=\"\"}} 1",
        fx.requests
    );
    let mut scraped = (0, String::new());
    for _ in 0..50 {
        scraped = probe("/metrics").await.expect("task");
        if scraped.1.contains(&replied) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, metrics) = scraped;
    assert_eq!(status, 200);
    assert!(metrics.contains(&replied), "{metrics}");
    assert!(
        metrics.contains("kafka_responder_partitions_assigned 1"),
        "{metrics}"
    );
    let (status, _) = probe("/nothing-here").await.expect("task");
    assert_eq!(status, 404);

    running.shutdown().await.expect("shutdown");
    // It stops with the responder.
    eventually(Duration::from_secs(5), || get(addr, "/livez").is_err()).await;
}

#[tokio::test]
async fn a_taken_address_fails_the_build() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let built = kafka_responder::Responder::builder()
        .bootstrap_servers("127.0.0.1:1")
        .group_id("g")
        .reply_topics("replies".parse().expect("policy"))
        .operations(|o| o.http_addr(taken.local_addr().expect("addr")))
        .route("requests", Json, Probe(ProbeLog::new()))
        .build();
    let err = built.expect_err("the port is taken");
    assert_eq!(err.code(), kafka_responder::codes::HTTP);
}
