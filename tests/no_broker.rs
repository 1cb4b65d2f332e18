//! The level with no Kafka at all: a handler tested with a synthetic request, under
//! its codec, as the responder would run it.

use std::time::{Duration, SystemTime};

use kafka_responder::testkit::{TestRequest, serve};
use kafka_responder::{ErrorReply, Handler, Json, RequestContext};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Query {
    wallet_id: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Seen {
    wallet_id: String,
    key: Option<String>,
    tenant: Option<String>,
    has_deadline: bool,
    reply_topic: String,
    partition: i32,
}

/// Reports what it saw of the request.
struct Inspect;

impl Handler for Inspect {
    type Request = Query;
    type Reply = Seen;
    type Error = ErrorReply;

    async fn handle(&self, q: Query, cx: &RequestContext) -> Result<Seen, ErrorReply> {
        if q.wallet_id.starts_with("unknown-") {
            return Err(ErrorReply::new("not_found", "no such wallet"));
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(Seen {
            wallet_id: q.wallet_id,
            key: cx.key().map(text),
            tenant: cx.header("tenant").flatten().map(text),
            has_deadline: cx.deadline().is_some(),
            reply_topic: cx.reply_to().topic.clone().into(),
            partition: cx.partition(),
        })
    }
}

#[tokio::test]
async fn a_handler_is_tested_without_a_broker() {
    let cx = TestRequest::new(br#"{"wallet_id":"w-1"}"#.to_vec())
        .topic("WALLET-KYC-REQUEST")
        .at(3, 42)
        .key(b"w-1".to_vec())
        .header("tenant", b"acme".to_vec())
        .deadline(SystemTime::now() + Duration::from_secs(5))
        .reply_to("WALLET-KYC-RESPONSE", Some(1), b"c-1".to_vec())
        .context();
    let reply = serve(&Json, &Inspect, &cx).await.expect("reply");
    let seen: Seen = serde_json::from_slice(&reply).expect("json");
    assert_eq!(
        seen,
        Seen {
            wallet_id: "w-1".into(),
            key: Some("w-1".into()),
            tenant: Some("acme".into()),
            has_deadline: true,
            reply_topic: "WALLET-KYC-RESPONSE".into(),
            partition: 3,
        }
    );
    assert_eq!(cx.correlation_id(), Some(&b"c-1"[..]));

    // The error replies the requester would get.
    let err = |payload: &[u8]| {
        let cx = TestRequest::new(payload.to_vec()).context();
        async move {
            serve(&Json, &Inspect, &cx)
                .await
                .expect_err("an error reply")
        }
    };
    assert_eq!(
        err(br#"{"wallet_id":"unknown-9"}"#).await.code(),
        "not_found"
    );
    assert_eq!(err(b"not json").await.code(), "bad_request");
    let tombstone = serve(&Json, &Inspect, &TestRequest::tombstone().context()).await;
    assert_eq!(tombstone.expect_err("no payload").code(), "bad_request");
}
