//! Partition leaders failing over under load, on a three-node Apache Kafka cluster
//! (replication factor 3, `min.insync.replicas=2`): two KYC responder processes, four
//! requesters each owning a reply partition, 5,000 requests sent over time. During the
//! run the node leading a reply partition is killed (SIGKILL) and later restarted,
//! then the node leading a request partition. At the end every request has its
//! correct reply on the partition it named; duplicates (allowed by at-least-once) are
//! counted and reported.
//!
//! Runs only on Apache Kafka (`RESPONDER_TEST_BROKER=kafka`).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::{Process, kyc_responder, kyc_score};
use kafka_responder::HeaderConvention;
use kafka_responder::testkit::{KafkaCluster, Requester, unique_name};
use tokio::task::JoinHandle;

const REQUESTS: usize = 5_000;
const REQUESTERS: usize = 4;
const BATCH: usize = 125;
const BATCH_EVERY: Duration = Duration::from_millis(300);

struct Outcome {
    id: usize,
    latency: Duration,
    reply: Option<kafka_responder::testkit::Reply>,
}

type Shared = Arc<Mutex<KafkaCluster>>;

/// Kills (SIGKILL) the node leading `topic`/`partition` now; returns its id.
async fn kill_leader(cluster: &Shared, topic: &str, partition: i32) -> i32 {
    let bootstrap = cluster
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .bootstrap_servers()
        .to_owned();
    let id = leader_of(&bootstrap, topic, partition).await;
    cluster
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .kill(id)
        .expect("kill");
    id
}

async fn leader_of(bootstrap: &str, topic: &str, partition: i32) -> i32 {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("probe");
        let md = probe
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        md.topics()[0]
            .partitions()
            .iter()
            .find(|p| p.id() == partition)
            .map(|p| p.leader())
            .expect("partition")
    })
    .await
    .expect("probe task")
}

/// Restarts node `id` in the background (it takes seconds after a SIGKILL).
fn restart(cluster: &Shared, id: i32) -> JoinHandle<()> {
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || {
        cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .restart(id)
            .expect("node restarted");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs an Apache Kafka cluster (RESPONDER_TEST_BROKER=kafka)"
)]
async fn leaders_fail_over_under_load_and_nothing_is_lost() {
    common::init_tracing();
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::start(3))
        .await
        .expect("start task")
        .expect("three-node cluster");
    let bootstrap = cluster.bootstrap_servers().to_owned();
    println!(
        "cluster of 3 ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let requests = unique_name("WALLET-KYC-REQUEST");
    let replies = unique_name("WALLET-KYC-RESPONSE");
    cluster.create_topic(&requests, 6).await.expect("topic");
    cluster.create_topic(&replies, 4).await.expect("topic");
    let cluster: Shared = Arc::new(Mutex::new(cluster));
    let group = unique_name("kyc");
    let _responders: Vec<Process> = (0..2)
        .map(|_| kyc_responder(&bootstrap, &requests, &group, "spring,smallrye,plain"))
        .collect();

    let mut requesters = Vec::new();
    for p in 0..REQUESTERS {
        let r = Requester::new(&bootstrap, HeaderConvention::spring(), &replies, p as i32)
            .await
            .expect("requester")
            .with_timeout(Duration::from_secs(240));
        requesters.push(r);
    }
    let requesters = Arc::new(requesters);

    let mut issued: Vec<HashSet<Vec<u8>>> = vec![HashSet::new(); REQUESTERS];
    let mut waits = Vec::with_capacity(REQUESTS);
    let mut events = Vec::new();
    let mut restarting: Option<JoinHandle<()>> = None;
    let mut killed = 0;
    for (batch, first) in (0..REQUESTS).step_by(BATCH).enumerate() {
        let at = started.elapsed().as_secs_f64();
        match batch {
            4 => {
                killed = kill_leader(&cluster, &replies, 0).await;
                events.push(format!(
                    "{at:.1}s killed node {killed}, leader of reply partition 0"
                ));
            }
            8 => {
                restarting = Some(restart(&cluster, killed));
                events.push(format!("{at:.1}s restarting node {killed}"));
            }
            20 => {
                if let Some(r) = restarting.take() {
                    r.await.expect("restart");
                }
                killed = kill_leader(&cluster, &requests, 0).await;
                events.push(format!(
                    "{:.1}s killed node {killed}, leader of request partition 0",
                    started.elapsed().as_secs_f64()
                ));
            }
            28 => {
                restarting = Some(restart(&cluster, killed));
                events.push(format!("{at:.1}s restarting node {killed}"));
            }
            _ => {}
        }
        let mut sends = Vec::new();
        for id in first..(first + BATCH).min(REQUESTS) {
            let who = id % REQUESTERS;
            let requester = &requesters[who];
            let corr = requester.new_correlation_id();
            issued[who].insert(corr.clone());
            let rx = requester.expect(corr.clone());
            let wallet = format!("wallet-{}", id % 997);
            let sent = Instant::now();
            waits.push(tokio::spawn(async move {
                let reply = rx.within(Duration::from_secs(240)).await.ok();
                Outcome {
                    id,
                    latency: sent.elapsed(),
                    reply,
                }
            }));
            let headers = requester.request_headers(&corr);
            let body = format!("{{\"wallet_id\":\"{wallet}\"}}").into_bytes();
            let requests = requests.clone();
            sends.push(async move {
                requester
                    .send_raw(
                        &requests,
                        None,
                        Some(wallet.as_bytes()),
                        Some(&body),
                        &headers,
                    )
                    .await
                    .expect("request sent")
            });
        }
        futures_util::future::join_all(sends).await;
        tokio::time::sleep(BATCH_EVERY).await;
    }
    if let Some(r) = restarting.take() {
        r.await.expect("restart");
        events.push(format!(
            "{:.1}s node {killed} back",
            started.elapsed().as_secs_f64()
        ));
    }

    let mut lost = Vec::new();
    let mut wrong = Vec::new();
    let mut latencies = Vec::with_capacity(REQUESTS);
    for w in waits {
        let o = w.await.expect("waiter");
        let Some(reply) = o.reply else {
            lost.push(o.id);
            continue;
        };
        latencies.push(o.latency);
        let who = o.id % REQUESTERS;
        let wallet = format!("wallet-{}", o.id % 997);
        let want = format!(
            "{{\"wallet_id\":\"{wallet}\",\"score\":{}}}",
            kyc_score(&wallet)
        );
        if reply.partition != who as i32
            || reply.key.as_deref() != Some(wallet.as_bytes())
            || reply.payload.as_deref() != Some(want.as_bytes())
        {
            wrong.push(format!("request {}: {reply:?}", o.id));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut duplicates, mut misrouted) = (0, 0);
    for (who, requester) in requesters.iter().enumerate() {
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        for r in requester.received() {
            let corr = r.header("kafka_correlationId").unwrap_or_default().to_vec();
            if !issued[who].contains(&corr) || r.partition != who as i32 {
                misrouted += 1;
            }
            *seen.entry(corr).or_default() += 1;
        }
        duplicates += seen.values().map(|n| n - 1).sum::<usize>();
    }
    latencies.sort_unstable();
    let p = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!("failover on 3 Kafka nodes: {}", events.join(", "));
    println!(
        "requests {REQUESTS}, answered {}, lost {}, wrong {}, misrouted {misrouted}, duplicates {duplicates}, latency p50 {:?} p99 {:?} max {:?}, run {:.1}s",
        latencies.len(),
        lost.len(),
        wrong.len(),
        p(0.5),
        p(0.99),
        latencies.last().copied().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    assert!(lost.is_empty(), "lost: {:?}", &lost[..lost.len().min(20)]);
    assert!(
        wrong.is_empty(),
        "wrong: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(
        misrouted, 0,
        "replies on a partition or requester they were not for"
    );
}
