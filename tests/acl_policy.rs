//! The reply-topic policy loaded from the ACL definitions operators keep: a Strimzi
//! `KafkaUser` manifest and `kafka-acls --list` output (real-format files in
//! `tests/acl/`). The responder then writes exactly where the ACLs let it.

mod common;

use common::{Fixture, ProbeLog, ProbeReq};
use kafka_responder::testkit::{Requester, end_offset};
use kafka_responder::{HeaderConvention, PolicyLoadError, PolicySource, ReplyTopicPolicy};

const STRIMZI: &str = "strimzi:tests/acl/kafka-user.yaml#kyc-responder";
const KAFKA_ACLS: &str = "kafka-acls:tests/acl/kafka-acls-list.txt#User:CN=kyc-responder";

fn load(source: &str) -> ReplyTopicPolicy {
    source
        .parse::<PolicySource>()
        .and_then(|s| s.load())
        .unwrap_or_else(|e| panic!("{source}: {e}"))
}

/// What both files grant the KYC responder's principal.
const ALLOWED: &[&str] = &[
    "WALLET-KYC-RESPONSE",
    "WALLET-KYC-RESPONSE-1",
    "WALLET-KYC-RESPONSE-eu.7",
    "kyc-dead-letters",
];
const REFUSED: &[&str] = &[
    // A DENY under the prefixed ALLOW.
    "WALLET-KYC-RESPONSE-AUDIT",
    // READ and DESCRIBE only.
    "payments",
    "WALLET-KYC-REQUEST",
    // WRITE pinned to one host.
    "ops-replies",
    // Another user's grant on `*`.
    "fraud-alerts",
    // A literal is exact.
    "kyc-dead-letters-2",
    "WALLET-KYC-RESPONS",
];

#[test]
fn a_strimzi_kafka_user_becomes_the_policy() {
    let policy = load(STRIMZI);
    for topic in ALLOWED {
        assert!(policy.allows(topic), "{topic} should be allowed");
    }
    for topic in REFUSED {
        assert!(!policy.allows(topic), "{topic} should be refused");
    }
    // Narrowed to the reply topics proper: the dead-letter grant no longer counts.
    let narrowed = load(&format!("{STRIMZI} & WALLET-KYC-RESPONSE*"));
    assert!(narrowed.allows("WALLET-KYC-RESPONSE-1"));
    assert!(!narrowed.allows("kyc-dead-letters"));
    assert!(!narrowed.allows("WALLET-KYC-RESPONSE-AUDIT"));
    // The other user in the file writes everywhere.
    let fraud = load("strimzi:tests/acl/kafka-user.yaml#fraud-responder");
    assert!(fraud.allows("fraud-alerts") && fraud.allows("payments"));
    assert!(
        fraud.allows_every_topic(),
        "the responder warns about this at start-up"
    );
    // With two users in the file, the source must say which.
    assert!(matches!(
        "strimzi:tests/acl/kafka-user.yaml"
            .parse::<PolicySource>()
            .and_then(|s| s.load()),
        Err(PolicyLoadError::Acl { .. })
    ));
}

#[test]
fn a_kafka_acls_listing_becomes_the_policy_of_one_principal() {
    let policy = load(KAFKA_ACLS);
    for topic in ALLOWED {
        assert!(policy.allows(topic), "{topic} should be allowed");
    }
    for topic in REFUSED {
        assert!(!policy.allows(topic), "{topic} should be refused");
    }
    // `User:*` entries apply to every principal: an ALLOW and an ALL DENY.
    assert!(policy.allows("public-replies"));
    assert!(!policy.allows("WALLET-KYC-RESPONSE-LEGAL"));
    // Other principals get their own grants, not ours.
    let payments = load("kafka-acls:tests/acl/kafka-acls-list.txt#User:payments-api");
    assert!(payments.allows("payments"));
    assert!(!payments.allows("WALLET-KYC-RESPONSE-1"));
    // A principal with no grant of its own gets only what `User:*` grants.
    let nobody = load("kafka-acls:tests/acl/kafka-acls-list.txt#User:nobody");
    assert!(nobody.allows("public-replies"));
    assert!(!nobody.allows("WALLET-KYC-RESPONSE-1"));
}

#[test]
fn a_strimzi_file_is_not_read_as_a_kafka_acls_listing() {
    let source: PolicySource = "kafka-acls:tests/acl/kafka-user.yaml#User:CN=kyc-responder"
        .parse()
        .expect("source");
    match source.load() {
        Err(e @ PolicyLoadError::Acl { .. }) => {
            let text = e.to_string();
            assert!(text.contains("line 1"), "{text}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

/// Against a broker: the responder, with its policy loaded from each file, answers on
/// the allowed topic and writes nothing to the topics the ACLs do not grant.
#[tokio::test]
async fn a_responder_writes_only_where_its_acls_let_it() {
    let fx = Fixture::new(1, 1).await;
    let allowed = "WALLET-KYC-RESPONSE-1";
    let refused = ["WALLET-KYC-RESPONSE-AUDIT", "payments", "ops-replies"];
    for topic in std::iter::once(&allowed).chain(&refused) {
        fx.broker.create_topic(topic, 1).await.expect("topic");
    }
    let requester = Requester::new(fx.bootstrap(), HeaderConvention::spring(), allowed, 0)
        .await
        .expect("requester");
    let body = ProbeReq::id(1).bytes();
    for (round, source) in [STRIMZI, KAFKA_ACLS].into_iter().enumerate() {
        let policy = load(source);
        let running = fx.serve(ProbeLog::new(), |b| b.reply_topics(policy));
        for topic in refused {
            let headers = vec![
                ("kafka_replyTopic".to_owned(), topic.as_bytes().to_vec()),
                ("kafka_correlationId".to_owned(), b"c".to_vec()),
            ];
            requester
                .send_raw(&fx.requests, None, None, Some(&body), &headers)
                .await
                .expect("sent");
        }
        let reply = requester
            .request(&fx.requests, None, &body)
            .await
            .expect("answered on the allowed topic");
        assert_eq!(reply.partition, 0);
        let m = running.shutdown().await.expect("shutdown");
        assert_eq!((m.unanswerable, m.replied), (refused.len() as u64, 1));
        for topic in refused {
            assert_eq!(
                end_offset(fx.bootstrap(), topic, 0).await.expect("end"),
                0,
                "{topic} was written to"
            );
        }
        assert_eq!(
            end_offset(fx.bootstrap(), allowed, 0).await.expect("end"),
            round as i64 + 1
        );
    }
}
