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

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::kyc_load::KycLoad;
use common::{Process, kyc_responder};
use kafka_responder::testkit::{KafkaCluster, unique_name};
use tokio::task::JoinHandle;

const REQUESTS: usize = 5_000;
const REQUESTERS: usize = 4;
const BATCH: usize = 125;
const BATCH_EVERY: Duration = Duration::from_millis(300);

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

    let mut load = KycLoad::new(&bootstrap, &requests, &replies, REQUESTERS).await;
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
        load.send(first..(first + BATCH).min(REQUESTS)).await;
        tokio::time::sleep(BATCH_EVERY).await;
    }
    if let Some(r) = restarting.take() {
        r.await.expect("restart");
        events.push(format!(
            "{:.1}s node {killed} back",
            started.elapsed().as_secs_f64()
        ));
    }

    let tally = load.finish().await;
    println!("failover on 3 Kafka nodes: {}", events.join(", "));
    println!(
        "{}, run {:.1}s",
        tally.summary(),
        started.elapsed().as_secs_f64()
    );
    tally.assert_nothing_lost_or_misrouted();
}
