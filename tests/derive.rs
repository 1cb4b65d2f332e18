//! Handlers written with `#[derive(Handler)]`, served by one responder against a
//! broker: each derived handler brings its own topics and codec.

mod common;

use common::Fixture;
use kafka_responder::testkit::{RunningResponder, unique_name};
use kafka_responder::{ErrorReply, Handler, HeaderConvention, IntoRoutes, RequestContext};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Sum {
    sum: i64,
    topic: String,
}

#[derive(Handler)]
#[handler(topics = ["derive-sum-a", "derive-sum-b"], codec = json, request = Add, reply = Sum, method = add)]
struct Adder;

impl Adder {
    async fn add(&self, req: Add, cx: &RequestContext) -> Result<Sum, ErrorReply> {
        let sum = req
            .a
            .checked_add(req.b)
            .ok_or_else(|| ErrorReply::new("overflow", "the sum does not fit"))?;
        Ok(Sum {
            sum,
            topic: cx.topic().to_owned(),
        })
    }
}

#[derive(Handler)]
#[handler(topic = "derive-upper", codec = raw, request = Vec<u8>, reply = Vec<u8>, method = upper)]
struct Upper;

impl Upper {
    async fn upper(&self, req: Vec<u8>, _cx: &RequestContext) -> Result<Vec<u8>, ErrorReply> {
        Ok(req.to_ascii_uppercase())
    }
}

#[tokio::test]
async fn several_derived_handlers_answer_their_own_topics() {
    let fx = Fixture::new(1, 1).await;
    for topic in Adder::TOPICS.iter().chain(Upper::TOPICS) {
        fx.broker.create_topic(topic, 2).await.expect("topic");
    }
    // A group of its own: the topic names are fixed by the derives.
    let responder = fx
        .builder()
        .group_id(unique_name("derive"))
        .handler(Adder)
        .handler(Upper)
        .build()
        .expect("responder");
    let running = RunningResponder::spawn(responder);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    for topic in Adder::TOPICS {
        let reply = requester
            .request(topic, None, br#"{"a": 40, "b": 2}"#)
            .await
            .expect("reply");
        let sum: Sum = reply.json().expect("json");
        assert_eq!(
            sum,
            Sum {
                sum: 42,
                topic: (*topic).to_owned()
            }
        );
    }
    let reply = requester
        .request(
            "derive-sum-a",
            None,
            br#"{"a": 9223372036854775807, "b": 1}"#,
        )
        .await
        .expect("reply");
    assert_eq!(reply.error_code(), Some("overflow"));
    let reply = requester
        .request("derive-upper", None, b"kafka")
        .await
        .expect("reply");
    assert_eq!(reply.payload.as_deref(), Some(&b"KAFKA"[..]));
    running.shutdown().await.expect("shutdown");
}
