//! A request past its deadline is not handled (its requester has given up): counted,
//! logged, committed. Deadlines come from a header or from a maximum request age.

mod common;

use std::time::Duration;

use common::{Fixture, ProbeLog, ProbeReq, epoch_ms_from_now};
use kafka_responder::{DEADLINE_HEADER, HeaderConvention, codes};

#[tokio::test]
async fn requests_past_their_deadline_header_are_not_handled() {
    let fx = Fixture::new(1, 1).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| b);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;

    let send = |id: u64, deadline: Option<Vec<u8>>| {
        let corr = requester.new_correlation_id();
        let mut headers = requester.request_headers(&corr);
        if let Some(d) = deadline {
            headers.push((DEADLINE_HEADER.to_owned(), d));
        }
        (corr, headers, ProbeReq::id(id).bytes())
    };
    // Expired a second ago: never reaches the handler, gets no reply.
    let (expired_corr, h, body) = send(1, Some(epoch_ms_from_now(-1000)));
    let expired = requester.expect(expired_corr);
    requester
        .send_raw(&fx.requests, Some(0), None, Some(&body), &h)
        .await
        .expect("sent");
    // A minute left: answered.
    let (corr, h, body) = send(2, Some(epoch_ms_from_now(60_000)));
    let pending = requester.expect(corr);
    requester
        .send_raw(&fx.requests, Some(0), None, Some(&body), &h)
        .await
        .expect("sent");
    let reply = requester.wait(pending).await.expect("reply");
    assert_eq!(reply.error_code(), None);
    // A deadline that is not epoch milliseconds: a clear error reply.
    for bad in [
        b"tomorrow".to_vec(),
        1_900_000_000_000i64.to_be_bytes().to_vec(),
    ] {
        let (corr, h, body) = send(3, Some(bad));
        let pending = requester.expect(corr);
        requester
            .send_raw(&fx.requests, Some(0), None, Some(&body), &h)
            .await
            .expect("sent");
        let reply = requester.wait(pending).await.expect("error reply");
        assert_eq!(reply.error_code(), Some(codes::BAD_REQUEST));
        assert!(
            reply
                .error_message()
                .is_some_and(|m| m.contains("deadline")),
            "{:?}",
            reply.error_message()
        );
    }
    assert_eq!(log.started(), vec![2], "only the live request was handled");
    assert!(
        expired.within(Duration::from_millis(300)).await.is_err(),
        "an expired request was answered"
    );
    // All four are committed.
    fx.wait_committed(&fx.requests, 4).await;
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.expired, m.replied, m.error_replies), (1, 1, 2));
}

#[tokio::test]
async fn requests_older_than_the_maximum_age_are_not_handled() {
    let fx = Fixture::new(1, 1).await;
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    // Two requests wait on the topic longer than the maximum age...
    for id in [1, 2] {
        requester
            .send(&fx.requests, Some(0), None, &ProbeReq::id(id).bytes())
            .await
            .expect("sent");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = ProbeLog::new();
    let running = fx.serve(log.clone(), |b| {
        b.dead_letters(|d| d.max_request_age(Duration::from_secs(2)))
    });
    // ...a fresh one is answered.
    requester
        .request(&fx.requests, None, &ProbeReq::id(3).bytes())
        .await
        .expect("reply");
    assert_eq!(log.started(), vec![3]);
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.expired, m.replied), (2, 1));
    assert_eq!(fx.committed(&fx.requests).await, Some(3));
}

#[test]
fn a_zero_maximum_age_is_refused() {
    let built = kafka_responder::Responder::builder()
        .bootstrap_servers("127.0.0.1:1")
        .group_id("g")
        .route(
            "requests",
            kafka_responder::Json,
            common::Probe(ProbeLog::new()),
        )
        .reply_topics("replies".parse().expect("policy"))
        .dead_letters(|d| d.max_request_age(Duration::ZERO))
        .build();
    assert!(matches!(built, Err(kafka_responder::Error::Config(_))));
}
