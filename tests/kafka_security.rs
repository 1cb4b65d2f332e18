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
//! - Replies the authorizer refuses while they are outstanding (the cached verdict
//!   still allowing the topic) are retried, then dead-lettered, and committed.
//!
//! Runs only on Apache Kafka (`RESPONDER_TEST_BROKER=kafka`); the other brokers have no
//! authorizer (the fallbacks for brokers that report no operations are tested in
//! `tests/write_access.rs`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Probe, ProbeLog, ProbeReq, eventually, init_tracing};
use kafka_responder::testkit::{
    KafkaBroker, Requester, RunningResponder, TestBroker, committed_offset, end_offset, unique_name,
};
use kafka_responder::{
    DLQ_REASON_HEADER, HeaderConvention, Json, PolicySource, ReplyTopicPolicy, Responder,
    ResponderBuilder, UnknownWriteAccess,
};

const TTL: Duration = Duration::from_secs(2);

/// The reply topics the responder may write: a PREFIXED ACL on this.
const REPLY_PREFIX: &str = "WALLET-KYC-RESPONSE";
const PREFIXED: &[&str] = &["--resource-pattern-type", "prefixed"];

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
        c.responder_acl("--add", "Read", &c.requests, &["--group", &c.group]);
        c.responder_acl("--add", "Write", REPLY_PREFIX, PREFIXED);
        c.responder_acl("--add", "Describe", &c.describe_only, &[]);
        c
    }

    fn kafka(&self) -> &KafkaBroker {
        match &self.broker {
            TestBroker::Kafka(k) => k,
            _ => unreachable!("a Kafka node"),
        }
    }

    fn serve(&self, policy: ReplyTopicPolicy) -> RunningResponder {
        self.serve_with(policy, ProbeLog::new(), TTL, |b| b)
    }

    /// Serves with the probe's `log`, the write checks' cache `ttl`, and whatever
    /// `more` adds to the builder.
    fn serve_with(
        &self,
        policy: ReplyTopicPolicy,
        log: Arc<ProbeLog>,
        ttl: Duration,
        more: impl FnOnce(ResponderBuilder) -> ResponderBuilder,
    ) -> RunningResponder {
        let builder = Responder::builder()
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
                    .cache_ttl(ttl)
            })
            .route(&self.requests, Json, Probe(log));
        RunningResponder::spawn(more(builder).build().expect("responder"))
    }

    /// Sends a request naming `reply_topic` (partition 0), from the harness's super user.
    async fn send(&self, requester: &Requester, reply_topic: &str, id: u64) {
        self.send_bytes(requester, reply_topic, &ProbeReq::id(id).bytes())
            .await;
    }

    /// Sends `payload` naming `reply_topic` (partition 0), from the harness's super user.
    async fn send_bytes(&self, requester: &Requester, reply_topic: &str, payload: &[u8]) {
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
            .send_raw(&self.requests, Some(0), None, Some(payload), &headers)
            .await
            .expect("sent");
    }

    /// Runs `kafka-acls <action> --allow-principal User:responder --operation
    /// <operation> --topic <topic> <more>`.
    fn responder_acl(&self, action: &str, operation: &str, topic: &str, more: &[&str]) {
        let mut args = vec![
            action,
            "--allow-principal",
            "User:responder",
            "--operation",
            operation,
            "--topic",
            topic,
        ];
        if action == "--remove" {
            args.push("--force");
        }
        args.extend(more);
        if let Err(e) = self.kafka().acls(&args) {
            panic!("kafka-acls {args:?}: {e}");
        }
    }

    /// Removes the responder's WRITE ACL on the reply topics (`WALLET-KYC-RESPONSE*`).
    fn remove_reply_write_acl(&self) {
        self.responder_acl("--remove", "Write", REPLY_PREFIX, PREFIXED);
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
    c.remove_reply_write_acl();
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

/// Replies the authorizer refuses while they are outstanding: the cached verdict still
/// says the reply topic may be written (its TTL has not passed) when its Write ACL is
/// removed, so four held requests' replies go to the broker and are refused
/// (`TOPIC_AUTHORIZATION_FAILED`). Each is retried a few times (an ACL may come back),
/// then dead-lettered with `reply_refused`, and every request's offset is committed:
/// nothing is lost, nothing stalls, the producer stays usable (the dead letters go
/// through it), and the shutdown ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs Apache Kafka's authorizer (RESPONDER_TEST_BROKER=kafka)"
)]
async fn replies_refused_by_the_authorizer_while_outstanding_are_dead_lettered() {
    const HELD: u64 = 4;
    let c = Cluster::start().await;
    let dlq = unique_name("KYC-DEAD-LETTERS");
    c.broker.create_topic(&dlq, 1).await.expect("topic");
    c.responder_acl("--add", "Write", &dlq, &[]);
    let bootstrap = c.broker.bootstrap_servers();
    let requester = Requester::new(bootstrap, HeaderConvention::spring(), &c.allowed, 0)
        .await
        .expect("requester");
    let dead_letters = Requester::new(bootstrap, HeaderConvention::plain(), &dlq, 0)
        .await
        .expect("dead-letter reader");
    let log = ProbeLog::new();
    let policy: ReplyTopicPolicy = "WALLET-KYC-RESPONSE*".parse().expect("policy");
    // A TTL far beyond the test: the verdict taken for the first reply stands.
    let running = c.serve_with(policy, log.clone(), Duration::from_secs(600), |b| {
        b.dead_letters(|d| d.topic(&dlq))
    });
    let reply = requester
        .request(&c.requests, None, &ProbeReq::id(1).bytes())
        .await
        .expect("answered while the ACL is there");
    assert_eq!(reply.error_code(), None);

    for id in 2..2 + HELD {
        c.send_bytes(&requester, &c.allowed, &ProbeReq::held(id).bytes())
            .await;
    }
    log.wait_started(1 + HELD as usize).await;
    c.remove_reply_write_acl();
    // The broker applies the removal from its metadata log, moments after the tool
    // returns.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = c.written(&c.allowed).await;
    log.open_gate(HELD as usize);

    eventually(Duration::from_secs(60), || {
        dead_letters.received().len() == HELD as usize
    })
    .await;
    for letter in dead_letters.received() {
        assert_eq!(
            letter.header(DLQ_REASON_HEADER),
            Some(&b"reply_refused"[..]),
            "{letter:?}"
        );
    }
    let committed = || async {
        committed_offset(bootstrap, &c.group, &c.requests, 0)
            .await
            .expect("committed offset")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed().await != Some(1 + HELD as i64) {
        assert!(
            Instant::now() < deadline,
            "not committed: {:?}",
            committed().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.written(&c.allowed).await, before, "no reply written");
    let m = tokio::time::timeout(Duration::from_secs(30), running.shutdown())
        .await
        .expect("the shutdown ends")
        .expect("shutdown");
    assert_eq!(
        (m.replied, m.delivery_failures, m.dead_lettered),
        (1, HELD, HELD),
        "{m:?}"
    );
    assert!(m.reply_retries >= HELD, "each refusal retried first: {m:?}");
}
