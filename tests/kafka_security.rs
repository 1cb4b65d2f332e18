//! Security against Apache Kafka's own authorizer (`StandardAuthorizer`, SASL/PLAIN):
//! the responder logs in as `User:responder`, which may write only to
//! `WALLET-KYC-RESPONSE*`.
//!
//! - Its reply-topic policy is loaded from what Kafka's own `kafka-acls --list` printed
//!   for that cluster: replies go to the allowed prefix, other topics are refused.
//! - With a policy wider than the ACLs, the KIP-430 check against the real authorizer
//!   refuses, before producing, a topic the principal can describe but not write, and
//!   one it cannot even describe (`reply_topic_not_authorized`; nothing written).
//! - An ACL removed while the responder runs takes effect within the cache TTL.
//!
//! Runs only on Apache Kafka (`RESPONDER_TEST_BROKER=kafka`); the other brokers have no
//! authorizer (the fallbacks for brokers that report no operations are tested in
//! `tests/write_access.rs`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Probe, ProbeLog, ProbeReq, eventually, init_tracing};
use kafka_responder::testkit::{
    KafkaBroker, Requester, RunningResponder, TestBroker, end_offset, unique_name,
};
use kafka_responder::{
    HeaderConvention, Json, PolicySource, ReplyTopicPolicy, Responder, UnknownWriteAccess,
};

const TTL: Duration = Duration::from_secs(2);

struct Cluster {
    broker: TestBroker,
    sasl: String,
    requests: String,
    allowed: String,
    describe_only: String,
    hidden: String,
    group: String,
}

impl Cluster {
    async fn start() -> Cluster {
        init_tracing();
        let kafka =
            KafkaBroker::start_secured(&[("responder", "responder-secret")]).expect("secured node");
        let sasl = kafka.sasl_bootstrap_servers().expect("sasl").to_owned();
        let broker = TestBroker::Kafka(Arc::new(kafka));
        let c = Cluster {
            broker,
            sasl,
            requests: unique_name("WALLET-KYC-REQUEST"),
            allowed: unique_name("WALLET-KYC-RESPONSE"),
            describe_only: unique_name("AUDIT-REPLIES"),
            hidden: unique_name("HIDDEN-REPLIES"),
            group: unique_name("kyc-responder"),
        };
        for t in [&c.requests, &c.allowed, &c.describe_only, &c.hidden] {
            c.broker.create_topic(t, 1).await.expect("topic");
        }
        let kafka = c.kafka();
        kafka
            .acls(&[
                "--add",
                "--allow-principal",
                "User:responder",
                "--operation",
                "Read",
                "--topic",
                &c.requests,
                "--group",
                &c.group,
            ])
            .expect("read ACLs");
        kafka
            .acls(&[
                "--add",
                "--allow-principal",
                "User:responder",
                "--operation",
                "Write",
                "--topic",
                "WALLET-KYC-RESPONSE",
                "--resource-pattern-type",
                "prefixed",
            ])
            .expect("write ACL");
        kafka
            .acls(&[
                "--add",
                "--allow-principal",
                "User:responder",
                "--operation",
                "Describe",
                "--topic",
                &c.describe_only,
            ])
            .expect("describe ACL");
        c
    }

    fn kafka(&self) -> &KafkaBroker {
        match &self.broker {
            TestBroker::Kafka(k) => k,
            _ => unreachable!("a Kafka node"),
        }
    }

    fn serve(&self, policy: ReplyTopicPolicy) -> RunningResponder {
        let responder = Responder::builder()
            .bootstrap_servers(&self.sasl)
            .group_id(&self.group)
            .client_config("security.protocol", "SASL_PLAINTEXT")
            .client_config("sasl.mechanism", "PLAIN")
            .client_config("sasl.username", "responder")
            .client_config("sasl.password", "responder-secret")
            .consumer_config("fetch.wait.max.ms", "10")
            .bounds(|b| b.commit_interval(Duration::from_millis(100)))
            .reply_topics(policy)
            .reply_checks(|c| {
                c.check_write_access(UnknownWriteAccess::Refuse)
                    .cache_ttl(TTL)
            })
            .route(&self.requests, Json, Probe(ProbeLog::new()))
            .build()
            .expect("responder");
        RunningResponder::spawn(responder)
    }

    /// Sends a request naming `reply_topic` (partition 0), from the harness's super user.
    async fn send(&self, requester: &Requester, reply_topic: &str, id: u64) {
        let corr = requester.new_correlation_id();
        let headers = vec![
            (
                "kafka_replyTopic".to_owned(),
                reply_topic.as_bytes().to_vec(),
            ),
            (
                "kafka_replyPartition".to_owned(),
                0i32.to_be_bytes().to_vec(),
            ),
            ("kafka_correlationId".to_owned(), corr),
        ];
        requester
            .send_raw(
                &self.requests,
                Some(0),
                None,
                Some(&ProbeReq::id(id).bytes()),
                &headers,
            )
            .await
            .expect("sent");
    }

    async fn written(&self, topic: &str) -> i64 {
        end_offset(self.broker.bootstrap_servers(), topic, 0)
            .await
            .expect("end offset")
    }
}

/// The count of `requests_total` for `outcome` and `code` on `topic`.
fn outcomes(running: &RunningResponder, topic: &str, outcome: &str, code: &str) -> u64 {
    let prefix = format!(
        "kafka_responder_requests_total{{topic=\"{topic}\",outcome=\"{outcome}\",code=\"{code}\"}} "
    );
    running
        .encode_prometheus()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs Apache Kafka's authorizer (RESPONDER_TEST_BROKER=kafka)"
)]
async fn reply_topics_are_checked_against_the_real_authorizer() {
    let c = Cluster::start().await;
    let requester = Requester::new(
        c.broker.bootstrap_servers(),
        HeaderConvention::spring(),
        &c.allowed,
        0,
    )
    .await
    .expect("requester");

    // 1. The policy, from what kafka-acls printed for this cluster.
    let listing = c
        .kafka()
        .acls(&["--list", "--principal", "User:responder"])
        .expect("kafka-acls --list");
    println!("kafka-acls --list --principal User:responder:\n{listing}");
    let file = std::env::temp_dir()
        .join(unique_name("acls"))
        .with_extension("txt");
    std::fs::write(&file, &listing).expect("listing written");
    let policy = format!("kafka-acls:{}#User:responder", file.display())
        .parse::<PolicySource>()
        .expect("source")
        .load()
        .expect("policy from the listing");
    let _ = std::fs::remove_file(&file);
    assert!(policy.allows(&c.allowed), "{policy:?}");
    assert!(!policy.allows(&c.describe_only), "{policy:?}");

    let running = c.serve(policy);
    let reply = requester
        .request(&c.requests, None, &ProbeReq::id(1).bytes())
        .await
        .expect("a reply on the allowed topic");
    assert_eq!(reply.error_code(), None);
    c.send(&requester, &c.describe_only, 2).await;
    eventually(Duration::from_secs(20), || {
        outcomes(
            &running,
            &c.requests,
            "unanswerable",
            "reply_topic_not_allowed",
        ) == 1
    })
    .await;
    running.shutdown().await.expect("shutdown");
    assert_eq!(c.written(&c.describe_only).await, 0);

    // 2. A policy wider than the ACLs: the broker's KIP-430 answer decides.
    let wide: ReplyTopicPolicy = "WALLET-KYC-RESPONSE*, AUDIT-REPLIES*, HIDDEN-REPLIES*"
        .parse()
        .expect("policy");
    let running = c.serve(wide);
    c.send(&requester, &c.describe_only, 3).await;
    c.send(&requester, &c.hidden, 4).await;
    eventually(Duration::from_secs(20), || {
        outcomes(
            &running,
            &c.requests,
            "unanswerable",
            "reply_topic_not_authorized",
        ) == 2
    })
    .await;
    assert_eq!(c.written(&c.describe_only).await, 0, "nothing written");
    assert_eq!(c.written(&c.hidden).await, 0, "nothing written");
    let reply = requester
        .request(&c.requests, None, &ProbeReq::id(5).bytes())
        .await
        .expect("still answered on the allowed topic");
    assert_eq!(reply.error_code(), None);
    let before = c.written(&c.allowed).await;

    // 3. The write ACL removed while it runs: refused once the cache TTL has passed.
    c.kafka()
        .acls(&[
            "--remove",
            "--force",
            "--allow-principal",
            "User:responder",
            "--operation",
            "Write",
            "--topic",
            "WALLET-KYC-RESPONSE",
            "--resource-pattern-type",
            "prefixed",
        ])
        .expect("write ACL removed");
    let removed = Instant::now();
    tokio::time::sleep(TTL + Duration::from_millis(500)).await;
    c.send(&requester, &c.allowed, 6).await;
    eventually(Duration::from_secs(20), || {
        outcomes(
            &running,
            &c.requests,
            "unanswerable",
            "reply_topic_not_authorized",
        ) == 3
    })
    .await;
    println!(
        "refused {:.1} s after the ACL's removal (cache TTL {TTL:?})",
        removed.elapsed().as_secs_f64()
    );
    assert_eq!(
        c.written(&c.allowed).await,
        before,
        "nothing written after the removal"
    );
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.replied, m.unanswerable), (1, 3));
    println!(
        "records written: {} {}, {} (describe only) {}, {} (not even describe) {}",
        c.allowed,
        c.written(&c.allowed).await,
        c.describe_only,
        c.written(&c.describe_only).await,
        c.hidden,
        c.written(&c.hidden).await,
    );
}
