//! Hostile and malformed requests, each with its expected typed outcome, against a
//! broker with the responder answering a good request after each bad one. At the end
//! every topic on the broker is read: nothing went anywhere outside the policy.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Fixture, Probe, ProbeLog, ProbeReq, epoch_ms_from_now, eventually};
use kafka_responder::testkit::{Reply, Requester, RunningResponder, unique_name};
use kafka_responder::{
    Bincode, DEADLINE_HEADER, DLQ_REASON_HEADER, ErrorReply, Handler, HeaderConvention, Json,
    RequestContext, codes,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// What one request must lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A reply (on this partition, when the request named one).
    Reply(Option<i32>),
    /// An error reply with this code, on this partition.
    Error(&'static str, i32),
    /// No reply; a dead letter with this reason.
    Dead(&'static str),
    /// No reply, no dead letter: counted as expired.
    Expired,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Json,
    Bincode,
}

struct Case {
    what: &'static str,
    route: Route,
    headers: Vec<(String, Vec<u8>)>,
    payload: Option<Vec<u8>>,
    expect: Expect,
}

struct Topics {
    json: String,
    bincode: String,
    replies: String,
    outside: String,
    denied: String,
    ghost: String,
    dead_letters: String,
}

/// Doubles a number (bincode-encoded `u64`).
struct Double;

impl Handler for Double {
    type Request = u64;
    type Reply = u64;
    type Error = ErrorReply;

    async fn handle(&self, n: u64, _cx: &RequestContext) -> Result<u64, ErrorReply> {
        Ok(n.wrapping_mul(2))
    }
}

fn h(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
        .collect()
}

const TOPIC: &str = "kafka_replyTopic";
const PARTITION: &str = "kafka_replyPartition";
const CORR: &str = "kafka_correlationId";

fn cases(t: &Topics) -> Vec<Case> {
    use Expect::*;
    let r = t.replies.as_bytes();
    let json = ProbeReq::id(1).bytes();
    let c = |what, headers, expect| Case {
        what,
        route: Route::Json,
        headers,
        payload: Some(json.clone()),
        expect,
    };
    let to = |topic: &[u8]| h(&[(TOPIC, topic), (CORR, b"c")]);
    let at = |p: &[u8]| h(&[(TOPIC, r), (PARTITION, p), (CORR, b"c")]);
    let p1 = 1i32.to_be_bytes();
    let long_name = format!("{}{}", t.replies, "x".repeat(249 - t.replies.len()));
    let with_payload = |what, payload: Option<Vec<u8>>, expect| Case {
        what,
        route: Route::Json,
        headers: at(&p1),
        payload,
        expect,
    };
    vec![
        // The reply address is missing or incomplete.
        c("no headers", vec![], Dead("no_reply_address")),
        c(
            "correlation id only",
            h(&[(CORR, b"c")]),
            Dead("missing_reply_topic"),
        ),
        c(
            "reply topic only",
            h(&[(TOPIC, r)]),
            Dead("missing_correlation_id"),
        ),
        c(
            "header names are case-sensitive",
            h(&[("kafka_replytopic", r), ("kafka_correlationid", b"c")]),
            Dead("no_reply_address"),
        ),
        // Not a topic name.
        c("empty topic", to(b""), Dead("invalid_reply_topic")),
        c(
            "250-character topic",
            to("a".repeat(250).as_bytes()),
            Dead("invalid_reply_topic"),
        ),
        c(
            "topic with /",
            to(b"replies/../x"),
            Dead("invalid_reply_topic"),
        ),
        c(
            "topic with a space",
            to(b"re plies"),
            Dead("invalid_reply_topic"),
        ),
        c(
            "topic with NUL",
            to(b"replies\0x"),
            Dead("invalid_reply_topic"),
        ),
        c(
            "topic of non-UTF-8 bytes",
            to(&[0xff, 0xfe, b'r']),
            Dead("invalid_reply_topic"),
        ),
        c("topic .", to(b"."), Dead("invalid_reply_topic")),
        c("topic ..", to(b".."), Dead("invalid_reply_topic")),
        c(
            "topic with non-ASCII letters",
            to("répliques".as_bytes()),
            Dead("invalid_reply_topic"),
        ),
        // Topics the responder must never write to.
        c(
            "__consumer_offsets",
            to(b"__consumer_offsets"),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "__transaction_state",
            to(b"__transaction_state"),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "its own request topic",
            to(t.json.as_bytes()),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "its other request topic",
            to(t.bincode.as_bytes()),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "a topic outside the policy",
            to(t.outside.as_bytes()),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "a DENY under a broader ALLOW",
            to(t.denied.as_bytes()),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "the dead-letter topic",
            to(t.dead_letters.as_bytes()),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "allowed but does not exist",
            to(t.ghost.as_bytes()),
            Dead("unknown_reply_topic"),
        ),
        c(
            "249-character allowed name that does not exist",
            to(long_name.as_bytes()),
            Dead("unknown_reply_topic"),
        ),
        // The reply partition.
        c(
            "partition -1",
            at(&(-1i32).to_be_bytes()),
            Dead("invalid_reply_partition"),
        ),
        c(
            "partition beyond the topic's count",
            at(&2i32.to_be_bytes()),
            Dead("reply_partition_out_of_range"),
        ),
        c(
            "partition 2^31-1",
            at(&i32::MAX.to_be_bytes()),
            Dead("reply_partition_out_of_range"),
        ),
        c(
            "3-byte partition",
            at(&[0, 0, 1]),
            Dead("invalid_reply_partition"),
        ),
        c(
            "5-byte partition",
            at(&[0, 0, 0, 0, 1]),
            Dead("invalid_reply_partition"),
        ),
        c(
            "decimal text where binary is expected",
            at(b"1"),
            Dead("invalid_reply_partition"),
        ),
        c(
            "4 ASCII digits read as a big-endian int",
            at(b"0001"),
            Dead("reply_partition_out_of_range"),
        ),
        c(
            "binary where decimal text is expected (plain)",
            h(&[
                ("REPLY_TOPIC", r),
                ("REPLY_PARTITION", &p1),
                ("CORRELATION_ID", b"c"),
            ]),
            Dead("invalid_reply_partition"),
        ),
        c(
            "negative decimal partition (plain)",
            h(&[
                ("REPLY_TOPIC", r),
                ("REPLY_PARTITION", b"-1"),
                ("CORRELATION_ID", b"c"),
            ]),
            Dead("invalid_reply_partition"),
        ),
        c(
            "decimal partition (plain), well-formed",
            h(&[
                ("REPLY_TOPIC", r),
                ("REPLY_PARTITION", b"1"),
                ("CORRELATION_ID", b"c"),
            ]),
            Reply(Some(1)),
        ),
        // Repeated headers.
        c(
            "two different reply topics",
            h(&[(TOPIC, r), (TOPIC, t.outside.as_bytes()), (CORR, b"c")]),
            Dead("conflicting_headers"),
        ),
        c(
            "the same reply topic twice",
            h(&[(TOPIC, r), (PARTITION, &p1), (TOPIC, r), (CORR, b"c")]),
            Reply(Some(1)),
        ),
        c(
            "two different correlation ids",
            h(&[(TOPIC, r), (CORR, b"c"), (CORR, b"d")]),
            Dead("conflicting_headers"),
        ),
        c(
            "two different partitions",
            h(&[
                (TOPIC, r),
                (PARTITION, &0i32.to_be_bytes()),
                (PARTITION, &p1),
                (CORR, b"c"),
            ]),
            Dead("conflicting_headers"),
        ),
        c(
            "Spring names an outside topic, SmallRye a good one: no shopping",
            h(&[
                (TOPIC, t.outside.as_bytes()),
                (CORR, b"c"),
                ("REPLY_TOPIC", r),
                ("REPLY_CORRELATION_ID", b"c"),
            ]),
            Dead("reply_topic_not_allowed"),
        ),
        c(
            "SmallRye, well-formed",
            h(&[
                ("REPLY_TOPIC", r),
                ("REPLY_PARTITION", &p1),
                ("REPLY_CORRELATION_ID", b"c"),
            ]),
            Reply(Some(1)),
        ),
        // The correlation id.
        c(
            "64 KiB correlation id",
            h(&[(TOPIC, r), (CORR, &vec![b'c'; 64 * 1024])]),
            Dead("invalid_correlation_id"),
        ),
        c(
            "empty correlation id",
            h(&[(TOPIC, r), (CORR, b"")]),
            Dead("invalid_correlation_id"),
        ),
        // Payloads.
        with_payload(
            "payload that is not JSON",
            Some(b"not json".to_vec()),
            Error(codes::BAD_REQUEST, 1),
        ),
        with_payload(
            "JSON of the wrong shape",
            Some(br#"{"id":"one"}"#.to_vec()),
            Error(codes::BAD_REQUEST, 1),
        ),
        with_payload("no payload (tombstone)", None, Error(codes::BAD_REQUEST, 1)),
        with_payload(
            "oversized payload",
            Some(vec![b' '; 100 * 1024]),
            Error(codes::PAYLOAD_TOO_LARGE, 1),
        ),
        Case {
            what: "payload that is not bincode",
            route: Route::Bincode,
            headers: at(&p1),
            payload: Some(vec![1, 2, 3]),
            expect: Error(codes::BAD_REQUEST, 1),
        },
        Case {
            what: "bincode, well-formed",
            route: Route::Bincode,
            headers: at(&p1),
            payload: Some(21u64.to_le_bytes().to_vec()),
            expect: Reply(Some(1)),
        },
        with_payload(
            "handler failure",
            Some(
                serde_json::to_vec(&ProbeReq {
                    fail: Some("refused".into()),
                    ..ProbeReq::id(1)
                })
                .expect("json"),
            ),
            Error("probe_failed", 1),
        ),
        with_payload(
            "handler panic",
            Some(
                serde_json::to_vec(&ProbeReq {
                    panic: true,
                    ..ProbeReq::id(1)
                })
                .expect("json"),
            ),
            Error(codes::INTERNAL_ERROR, 1),
        ),
        // Deadlines.
        c(
            "deadline passed",
            h(&[
                (TOPIC, r),
                (CORR, b"c"),
                (DEADLINE_HEADER, &epoch_ms_from_now(-1)),
            ]),
            Expired,
        ),
        c(
            "deadline that is not epoch milliseconds",
            h(&[
                (TOPIC, r),
                (PARTITION, &p1),
                (CORR, b"c"),
                (DEADLINE_HEADER, b"soon"),
            ]),
            Error(codes::BAD_REQUEST, 1),
        ),
    ]
}

/// Topic name → records on it (every partition), for every topic on the broker.
fn every_topic(bootstrap: &str) -> BTreeMap<String, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .map(|t| {
            let records = t
                .partitions()
                .iter()
                .map(|p| {
                    let (low, high) = consumer
                        .fetch_watermarks(t.name(), p.id(), Duration::from_secs(10))
                        .expect("watermarks");
                    assert_eq!(low, 0, "{} was truncated", t.name());
                    high
                })
                .sum();
            (t.name().to_owned(), records)
        })
        .collect()
}

#[tokio::test]
async fn every_hostile_request_gets_its_expected_outcome_and_nothing_leaks() {
    let fx = Fixture::new(1, 2).await;
    let base = unique_name("corpus");
    let t = Topics {
        json: fx.requests.clone(),
        bincode: format!("{base}-bincode-requests"),
        replies: fx.replies.clone(),
        outside: format!("{base}-outside"),
        denied: format!("{}-denied", fx.replies),
        ghost: format!("{}-ghost", fx.replies),
        // Allowed by the policy's prefix: only the responder's own rule keeps it out.
        dead_letters: format!("{}-dead-letters", fx.replies),
    };
    for topic in [&t.bincode, &t.outside, &t.denied, &t.dead_letters] {
        fx.broker.create_topic(topic, 1).await.expect("topic");
    }
    let builder = fx
        .builder()
        .reply_topics(
            // The request topics too: only the responder's own rule keeps them out.
            format!("{}*,!{},{},{}", t.replies, t.denied, t.json, t.bincode)
                .parse()
                .expect("policy"),
        )
        .dead_letters(|d| d.topic(&t.dead_letters))
        .bounds(|b| b.max_request_bytes(64 * 1024))
        .route(&t.json, Json, Probe(ProbeLog::new()))
        .route(&t.bincode, Bincode, Double);
    let running = RunningResponder::spawn(builder.build().expect("responder"));
    let listeners = [
        fx.requester(HeaderConvention::spring(), 0).await,
        fx.requester(HeaderConvention::spring(), 1).await,
    ];
    let letters = Requester::new(
        fx.bootstrap(),
        HeaderConvention::plain(),
        &t.dead_letters,
        0,
    )
    .await
    .expect("dead-letter reader");

    let cases = cases(&t);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let key = |i: usize| format!("case-{i:02}").into_bytes();
    for (i, case) in cases.iter().enumerate() {
        let topic = match case.route {
            Route::Json => &t.json,
            Route::Bincode => &t.bincode,
        };
        listeners[0]
            .send_raw(
                topic,
                Some(0),
                Some(&key(i)),
                case.payload.as_deref(),
                &case.headers,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: not sent: {e}", case.what));
        // A good request is answered after each bad one.
        let good = listeners[0]
            .request(
                &t.json,
                Some(b"good"),
                &ProbeReq::id(1000 + i as u64).bytes(),
            )
            .await
            .unwrap_or_else(|e| panic!("after {:?}: good request unanswered: {e}", case.what));
        assert_eq!(good.error_code(), None);
    }

    // Every outcome arrives.
    let count = |e: fn(&Expect) -> bool| cases.iter().filter(|c| e(&c.expect)).count();
    let answered = count(|e| matches!(e, Expect::Reply(_) | Expect::Error(..)));
    let dead = count(|e| matches!(e, Expect::Dead(_)));
    let expired = count(|e| matches!(e, Expect::Expired));
    let replies = || -> Vec<Reply> {
        listeners
            .iter()
            .flat_map(|l| l.received())
            .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"case-")))
            .collect()
    };
    eventually(Duration::from_secs(30), || {
        replies().len() >= answered && letters.received().len() >= dead
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // anything extra would show

    // Each request got exactly its expected outcome.
    let replies = replies();
    let letters = letters.received();
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mine: Vec<&Reply> = replies
            .iter()
            .filter(|r| r.key.as_deref() == Some(&key(i)[..]))
            .collect();
        let dead: Vec<&Reply> = letters
            .iter()
            .filter(|r| r.key.as_deref() == Some(&key(i)[..]))
            .collect();
        let got = match (mine.as_slice(), dead.as_slice()) {
            ([r], []) => match r.error_code() {
                Some(code) => format!("error {code} on {}", r.partition),
                None => format!("reply on {}", r.partition),
            },
            ([], [d]) => format!(
                "dead letter {}",
                String::from_utf8_lossy(d.header(DLQ_REASON_HEADER).unwrap_or_default())
            ),
            ([], []) => "nothing".to_owned(),
            _ => format!("{} replies and {} dead letters", mine.len(), dead.len()),
        };
        let ok = match case.expect {
            Expect::Reply(Some(p)) => got == format!("reply on {p}"),
            Expect::Reply(None) => got.starts_with("reply on "),
            Expect::Error(code, p) => got == format!("error {code} on {p}"),
            Expect::Dead(reason) => got == format!("dead letter {reason}"),
            Expect::Expired => got == "nothing",
        };
        if !ok {
            wrong.push(format!(
                "{}: expected {:?}, got {got}",
                case.what, case.expect
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong outcomes:\n{}", wrong.join("\n"));

    // Everything is committed.
    let json_sent = cases.iter().filter(|c| c.route == Route::Json).count() + cases.len();
    let bincode_sent = cases.len() - cases.iter().filter(|c| c.route == Route::Json).count();
    for (topic, sent) in [(&t.json, json_sent), (&t.bincode, bincode_sent)] {
        fx.wait_committed(topic, sent as i64).await;
    }
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!(m.unanswerable, dead as u64);
    assert_eq!(m.dead_lettered, dead as u64);
    assert_eq!(m.expired, expired as u64);
    assert_eq!(m.replied + m.error_replies, (answered + cases.len()) as u64);

    // Read every topic on the broker: records only where the requester wrote and
    // where the policy allows.
    let bootstrap = fx.bootstrap().to_owned();
    let found = tokio::task::spawn_blocking(move || every_topic(&bootstrap))
        .await
        .expect("topics");
    let mut expected = BTreeMap::new();
    expected.insert(t.json.clone(), json_sent as i64);
    expected.insert(t.bincode.clone(), bincode_sent as i64);
    expected.insert(t.replies.clone(), (answered + cases.len()) as i64);
    expected.insert(t.dead_letters.clone(), dead as i64);
    expected.insert(t.outside.clone(), 0);
    expected.insert(t.denied.clone(), 0);
    // Kafka's own topics hold what the broker writes there (group commits), nothing
    // of the responder's.
    let found: BTreeMap<String, i64> = found
        .into_iter()
        .filter(|(name, _)| !name.starts_with("__"))
        .collect();
    assert_eq!(found, expected, "records per topic on the broker");
}
