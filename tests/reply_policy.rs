//! Nothing is produced to a topic the reply-topic policy does not admit, nor to the
//! responder's own request topics or internal topics. Requests with no usable reply
//! address are counted and committed, and the responder keeps answering.

mod common;

use std::time::Duration;

use common::{Fixture, Probe, ProbeLog, ProbeReq, eventually};
use kafka_responder::testkit::{end_offset, unique_name};
use kafka_responder::{Error, HeaderConvention, Json, Responder};

#[tokio::test]
async fn unanswerable_requests_are_counted_committed_and_never_answered_elsewhere() {
    let fx = Fixture::new(1, 1).await;
    let outside = unique_name("outside");
    fx.broker.create_topic(&outside, 1).await.expect("topic");
    let running = fx.serve(ProbeLog::new(), |b| b);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let body = ProbeReq::id(1).bytes();
    let h = |pairs: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect()
    };
    let bad: Vec<Vec<(String, Vec<u8>)>> = vec![
        // A topic outside the policy.
        h(&[
            ("kafka_replyTopic", outside.as_bytes()),
            ("kafka_correlationId", b"c1"),
        ]),
        // The responder's own request topic: a request loop.
        h(&[
            ("kafka_replyTopic", fx.requests.as_bytes()),
            ("kafka_correlationId", b"c2"),
        ]),
        // An internal topic.
        h(&[
            ("kafka_replyTopic", b"__consumer_offsets"),
            ("kafka_correlationId", b"c3"),
        ]),
        // No reply address at all.
        h(&[]),
        // A reply topic without a correlation id.
        h(&[("kafka_replyTopic", fx.replies.as_bytes())]),
        // A malformed partition (3 bytes where Spring sends 4).
        h(&[
            ("kafka_replyTopic", fx.replies.as_bytes()),
            ("kafka_correlationId", b"c4"),
            ("kafka_replyPartition", &[0, 0, 0]),
        ]),
        // Two different reply topics.
        h(&[
            ("kafka_replyTopic", fx.replies.as_bytes()),
            ("kafka_replyTopic", outside.as_bytes()),
            ("kafka_correlationId", b"c5"),
        ]),
        // Not a topic name.
        h(&[
            ("kafka_replyTopic", b"../etc"),
            ("kafka_correlationId", b"c6"),
        ]),
    ];
    let mut last_offset = -1;
    for headers in &bad {
        let (_, offset) = requester
            .send_raw(&fx.requests, Some(0), None, Some(&body), headers)
            .await
            .expect("sent");
        last_offset = offset;
        // The responder answers a good request after each bad one.
        requester
            .request(&fx.requests, None, &ProbeReq::id(2).bytes())
            .await
            .expect("good request answered after a bad one");
    }
    // Nothing went anywhere else: the outside topic and the request topic hold only
    // what the requester wrote.
    assert_eq!(
        end_offset(fx.bootstrap(), &outside, 0).await.expect("end"),
        0
    );
    assert_eq!(
        end_offset(fx.bootstrap(), &fx.requests, 0)
            .await
            .expect("end"),
        2 * bad.len() as i64
    );
    // And every request, the unanswerable ones included, is committed.
    fx.wait_committed(&fx.requests, last_offset + 2).await;
    // Counters are final once the responder has drained.
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!(m.unanswerable, bad.len() as u64);
    assert_eq!(m.replied, bad.len() as u64);
}

#[tokio::test]
async fn a_reply_topic_that_does_not_exist_is_not_created() {
    let fx = Fixture::new(1, 1).await;
    let ghost = unique_name("ghost");
    let running = fx.serve(ProbeLog::new(), |b| {
        b.reply_topics(format!("{},{ghost}", fx.replies).parse().expect("policy"))
            .producer_config("message.timeout.ms", "1500")
    });
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let headers = vec![
        ("kafka_replyTopic".to_owned(), ghost.clone().into_bytes()),
        ("kafka_correlationId".to_owned(), b"g".to_vec()),
    ];
    requester
        .send_raw(
            &fx.requests,
            None,
            None,
            Some(&ProbeReq::id(1).bytes()),
            &headers,
        )
        .await
        .expect("sent");
    // Known unanswerable from the broker's metadata, before anything is produced.
    eventually(Duration::from_secs(20), || {
        running.metrics().unanswerable == 1
    })
    .await;
    // Still serving.
    requester
        .request(&fx.requests, None, &ProbeReq::id(2).bytes())
        .await
        .expect("reply");
    assert!(
        end_offset(fx.bootstrap(), &ghost, 0).await.is_err(),
        "the reply topic was created"
    );
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.unanswerable, m.delivery_failures, m.replied), (1, 0, 1));
}

fn base() -> kafka_responder::ResponderBuilder {
    Responder::builder()
        .bootstrap_servers("127.0.0.1:1")
        .group_id("g")
        .route("requests", Json, Probe(ProbeLog::new()))
        .reply_topics("replies".parse().expect("policy"))
}

#[test]
fn configuration_that_fights_the_guarantees_is_refused() {
    let cases: Vec<(&str, kafka_responder::ResponderBuilder)> = vec![
        (
            "auto commit",
            base().consumer_config("enable.auto.commit", "true"),
        ),
        (
            "auto store",
            base().consumer_config("enable.auto.offset.store", "true"),
        ),
        ("acks=1", base().producer_config("acks", "1")),
        (
            "no idempotence",
            base().producer_config("enable.idempotence", "false"),
        ),
        (
            "auto create",
            base().client_config("allow.auto.create.topics", "true"),
        ),
        (
            "empty policy",
            base().reply_topics("".parse().expect("policy")),
        ),
        (
            "deny-only policy",
            base().reply_topics("!x".parse().expect("policy")),
        ),
        (
            "spring and nestjs",
            base().reply_checks(|c| {
                c.header_conventions([HeaderConvention::spring(), HeaderConvention::nestjs()])
            }),
        ),
        (
            "no conventions",
            base().reply_checks(|c| c.header_conventions([])),
        ),
        (
            "bad topic",
            base().route("a b", Json, Probe(ProbeLog::new())),
        ),
        (
            "internal topic",
            base().route("__consumer_offsets", Json, Probe(ProbeLog::new())),
        ),
        (
            "same topic twice",
            base().route("requests", Json, Probe(ProbeLog::new())),
        ),
        ("no group", base().group_id("")),
        ("zero bound", base().bounds(|b| b.max_in_flight(0))),
        (
            "zero byte bound",
            base().bounds(|b| b.max_in_flight_bytes(0)),
        ),
        (
            "drain outlasting max.poll.interval.ms",
            base()
                .bounds(|b| b.drain_timeout(std::time::Duration::from_secs(60)))
                .consumer_config("max.poll.interval.ms", "60000"),
        ),
        (
            "drain outlasting the default max.poll.interval.ms",
            base().bounds(|b| b.drain_timeout(std::time::Duration::from_secs(301))),
        ),
        (
            "max.poll.interval.ms not a number",
            base().consumer_config("max.poll.interval.ms", "soon"),
        ),
    ];
    for (what, builder) in cases {
        match builder.build() {
            Err(Error::Config(_) | Error::TopicName(_)) => {}
            other => panic!("{what}: expected a configuration error, got {other:?}"),
        }
    }
    assert!(base().producer_config("acks", "-1").build().is_ok());
    // A drain that ends before the consumer would be removed from its group is fine.
    assert!(
        base()
            .bounds(|b| b.drain_timeout(std::time::Duration::from_secs(59)))
            .consumer_config("max.poll.interval.ms", "60000")
            .build()
            .is_ok()
    );
    assert!("a/b*".parse::<kafka_responder::ReplyTopicPolicy>().is_err());
}
