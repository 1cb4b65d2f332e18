//! Replies go to exactly the topic and partition the request names, with the
//! correlation id echoed byte for byte and the request key as reply key.

mod common;

use std::time::Duration;

use common::{Fixture, Probe, ProbeLog, ProbeReply, ProbeReq};
use kafka_responder::testkit::{Requester, RunningResponder};
use kafka_responder::{HeaderConvention, Json};

/// One request per convention: right partition, echoed correlation id and key, and
/// no header on the reply but the correlation id.
async fn round_trip(
    fx: &Fixture,
    convention: HeaderConvention,
    reply_partition: i32,
) -> kafka_responder::testkit::Reply {
    let requester = fx.requester(convention.clone(), reply_partition).await;
    let corr = requester.new_correlation_id();
    let headers = requester.request_headers(&corr);
    let pending = requester.expect(corr.clone());
    let (partition, offset) = requester
        .send_raw(
            &fx.requests,
            None,
            Some(b"wallet-42"),
            Some(&ProbeReq::id(7).bytes()),
            &headers,
        )
        .await
        .expect("sent");
    let reply = requester.wait(pending).await.expect("reply");

    assert_eq!(
        reply.partition, reply_partition,
        "{convention}: wrong partition"
    );
    assert_eq!(reply.key.as_deref(), Some(&b"wallet-42"[..]));
    assert_eq!(
        reply.header(convention.correlation_id_header()),
        Some(&corr[..]),
        "{convention}: correlation id not echoed byte for byte"
    );
    let names: Vec<&str> = reply.headers.iter().map(|(k, _)| k.as_str()).collect();
    let want: Vec<&str> = std::iter::once(convention.correlation_id_header())
        .chain(convention.reply_headers().map(|(k, _)| k))
        .collect();
    assert_eq!(names, want, "{convention}: reply headers");
    let body: ProbeReply = reply.json().expect("json reply");
    assert_eq!(
        body,
        ProbeReply {
            id: 7,
            topic: fx.requests.clone(),
            partition,
            offset
        }
    );
    reply
}

#[tokio::test]
async fn spring_smallrye_and_plain_requesters_get_replies_on_their_partition() {
    let fx = Fixture::new(3, 3).await;
    let running = fx.serve(ProbeLog::new(), |b| b);
    round_trip(&fx, HeaderConvention::spring(), 2).await;
    round_trip(&fx, HeaderConvention::smallrye(), 1).await;
    round_trip(&fx, HeaderConvention::plain(), 0).await;
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!(m.replied, 3);
}

#[tokio::test]
async fn nestjs_requester_gets_text_encoded_replies() {
    let fx = Fixture::new(1, 3).await;
    let running = fx.serve(ProbeLog::new(), |b| {
        b.reply_checks(|c| {
            c.header_conventions([HeaderConvention::nestjs(), HeaderConvention::plain()])
        })
    });
    let reply = round_trip(&fx, HeaderConvention::nestjs(), 2).await;
    assert_eq!(
        reply.header("kafka_nest-is-disposed"),
        Some(&[0u8][..]),
        "NestJS completes the request's observable only on a reply marked disposed"
    );
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn custom_convention() {
    let fx = Fixture::new(1, 2).await;
    let acme = HeaderConvention::new("acme", "x-reply-to", "x-request-id").with_reply_partition(
        "x-reply-partition",
        kafka_responder::PartitionEncoding::AsciiDecimal,
    );
    let running = fx.serve(ProbeLog::new(), |b| {
        b.reply_checks(|c| c.header_conventions([acme.clone()]))
    });
    round_trip(&fx, acme, 1).await;
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn without_a_partition_header_the_reply_still_reaches_the_topic() {
    let fx = Fixture::new(1, 1).await;
    let running = fx.serve(ProbeLog::new(), |b| b);
    let requester = fx
        .requester(HeaderConvention::spring(), 0)
        .await
        .without_partition_header();
    let reply = requester
        .request(&fx.requests, None, &ProbeReq::id(1).bytes())
        .await
        .expect("reply");
    assert_eq!(reply.partition, 0);
    assert_eq!(reply.key, None);
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn several_request_topics_each_reach_their_own_handler() {
    let fx = Fixture::new(2, 1).await;
    let second = kafka_responder::testkit::unique_name("requests-b");
    fx.broker.create_topic(&second, 2).await.expect("topic");
    let (log_a, log_b) = (ProbeLog::new(), ProbeLog::new());
    let responder = fx
        .builder()
        .route(&fx.requests, Json, Probe(log_a.clone()))
        .route(&second, Json, Probe(log_b.clone()))
        .build()
        .expect("responder");
    let running = RunningResponder::spawn(responder);
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let a = requester
        .request(&fx.requests, None, &ProbeReq::id(1).bytes())
        .await
        .expect("reply a");
    let b = requester
        .request(&second, None, &ProbeReq::id(2).bytes())
        .await
        .expect("reply b");
    assert_eq!(a.json::<ProbeReply>().expect("json").topic, fx.requests);
    assert_eq!(b.json::<ProbeReply>().expect("json").topic, second);
    assert_eq!((log_a.started(), log_b.started()), (vec![1], vec![2]));
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_new_group_answers_requests_sent_before_it_started() {
    let fx = Fixture::new(3, 1).await;
    let requester: Requester = fx.requester(HeaderConvention::plain(), 0).await;
    let mut pending = Vec::new();
    for id in 0..10u64 {
        let corr = requester.new_correlation_id();
        pending.push(requester.expect(corr.clone()));
        requester
            .send_raw(
                &fx.requests,
                None,
                Some(format!("k{id}").as_bytes()),
                Some(&ProbeReq::id(id).bytes()),
                &requester.request_headers(&corr),
            )
            .await
            .expect("sent");
    }
    let running = fx.serve(ProbeLog::new(), |b| b);
    let requester = requester.with_timeout(Duration::from_secs(30));
    for p in pending {
        requester
            .wait(p)
            .await
            .expect("reply to an earlier request");
    }
    running.shutdown().await.expect("shutdown");
}

/// Requests without a correlation id are unanswerable by default; configured to, the
/// responder answers them without one (for requesters that match replies by key).
#[tokio::test]
async fn a_missing_correlation_id_is_refused_or_answered_as_configured() {
    use kafka_responder::MissingCorrelationId;

    let fx = Fixture::new(1, 1).await;
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let headers = vec![
        (
            "kafka_replyTopic".to_owned(),
            fx.replies.clone().into_bytes(),
        ),
        (
            "kafka_replyPartition".to_owned(),
            0i32.to_be_bytes().to_vec(),
        ),
    ];
    let body = ProbeReq::id(1).bytes();
    for (rule, answered) in [
        (MissingCorrelationId::Refuse, false),
        (MissingCorrelationId::ReplyWithout, true),
    ] {
        let running = fx.serve(ProbeLog::new(), |b| {
            b.reply_checks(|c| c.missing_correlation_id(rule))
        });
        let key = format!("{rule:?}").into_bytes();
        requester
            .send_raw(&fx.requests, None, Some(&key), Some(&body), &headers)
            .await
            .expect("sent");
        // A good request after it: once answered, the one before was settled.
        requester
            .request(&fx.requests, None, &ProbeReq::id(2).bytes())
            .await
            .expect("reply");
        let m = running.shutdown().await.expect("shutdown");
        let replies: Vec<_> = requester
            .received()
            .into_iter()
            .filter(|r| r.key.as_deref() == Some(&key[..]))
            .collect();
        assert_eq!(replies.len(), usize::from(answered), "{rule:?}");
        assert_eq!(m.unanswerable, u64::from(!answered), "{rule:?}");
        if let Some(r) = replies.first() {
            assert_eq!(r.header("kafka_correlationId"), None);
            assert_eq!(r.partition, 0);
        }
    }
}
