//! Scale-out under failure, the production story: three KYC responder processes in one
//! consumer group on a 6-partition request topic; four requesters, each owning one
//! partition of a 4-partition reply topic; 10,000 requests over time. During the run
//! one responder is killed with SIGKILL and later restarted, and a fourth is added
//! (rebalances); on Tansu and Apache Kafka the broker process is also killed (SIGKILL)
//! and restarted on its storage. At the end every request has a correct reply at its
//! requester, on the partition it asked for; duplicates (allowed by at-least-once) are
//! counted and reported.
//!
//! Brokers: the embedded broker hosted in a process of its own (`examples/mock_broker`,
//! librdkafka's group coordinator), a Kafka node of the test's own with
//! `RESPONDER_TEST_BROKER=kafka`, or Tansu with `RESPONDER_TEST_BROKER=tansu`. Tansu
//! 0.6 does not hand a dead member's partitions to the survivors until some member
//! joins again (BROKERS.md), so the killed responder is restarted after its session
//! timeout (6 s) on both brokers: its rejoin is what reassigns the partitions there.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kyc_load::KycLoad;
use common::{Process, example_binary, kyc_responder};
use kafka_responder::testkit::{TestBroker, unique_name};

const REQUESTS: usize = 10_000;
const REQUESTERS: usize = 4;
const BATCH: usize = 200;
const BATCH_EVERY: Duration = Duration::from_millis(250);

/// The broker under test, with what the scenario may do to it.
enum Broker {
    /// The embedded broker in a process of its own (dropping the guard stops it).
    Hosted {
        bootstrap: String,
        _process: Process,
    },
    /// A broker process of the test's own (Tansu or Kafka), restartable.
    Process(TestBroker),
}

impl Broker {
    async fn start(requests: &str, replies: &str) -> Broker {
        if matches!(
            std::env::var("RESPONDER_TEST_BROKER").as_deref(),
            Ok("tansu" | "kafka")
        ) {
            let broker = TestBroker::start_own().expect("broker");
            broker.create_topic(requests, 6).await.expect("topic");
            broker.create_topic(replies, 4).await.expect("topic");
            if let TestBroker::Tansu(t) = &broker {
                t.index_headers().expect("index");
            }
            return Broker::Process(broker);
        }
        let mut child = Command::new(example_binary("mock_broker"))
            .args([format!("{requests}:6"), format!("{replies}:4")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("mock broker process");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("bootstrap line");
        let bootstrap = line
            .strip_prefix("BOOTSTRAP ")
            .expect("BOOTSTRAP line")
            .trim()
            .to_owned();
        Broker::Hosted {
            bootstrap,
            _process: Process(child),
        }
    }

    fn bootstrap(&self) -> String {
        match self {
            Broker::Hosted { bootstrap, .. } => bootstrap.clone(),
            Broker::Process(b) => b.bootstrap_servers().to_owned(),
        }
    }

    /// Kills and restarts the broker process, if this broker can be restarted.
    fn restart(&mut self) -> bool {
        match self {
            Broker::Process(TestBroker::Tansu(t)) => {
                t.restart().expect("tansu restart");
                true
            }
            Broker::Process(TestBroker::Kafka(k)) => {
                std::sync::Arc::get_mut(k)
                    .expect("the test's own node")
                    .restart()
                    .expect("kafka restart");
                true
            }
            _ => false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_survive_kills_joins_and_broker_restarts() {
    common::init_tracing();
    let started = Instant::now();
    let requests = unique_name("WALLET-KYC-REQUEST");
    let replies = unique_name("WALLET-KYC-RESPONSE");
    let mut broker = Broker::start(&requests, &replies).await;
    let bootstrap = broker.bootstrap();
    let group = unique_name("kyc");
    let spawn = || kyc_responder(&bootstrap, &requests, &group, "spring,smallrye,plain");
    let mut responders: Vec<Process> = (0..3).map(|_| spawn()).collect();

    let mut load = KycLoad::new(&bootstrap, &requests, &replies, REQUESTERS).await;
    let mut events = Vec::new();
    for (batch, first) in (0..REQUESTS).step_by(BATCH).enumerate() {
        match batch {
            8 => {
                responders[0].kill();
                events.push(format!(
                    "{:.1}s SIGKILL responder 0",
                    started.elapsed().as_secs_f64()
                ));
            }
            // After the killed member's session timeout (6 s): it comes back.
            36 => {
                responders[0] = spawn();
                events.push(format!(
                    "{:.1}s restart responder 0",
                    started.elapsed().as_secs_f64()
                ));
            }
            20 => {
                responders.push(spawn());
                events.push(format!(
                    "{:.1}s add responder 3",
                    started.elapsed().as_secs_f64()
                ));
            }
            28 if broker.restart() => {
                events.push(format!(
                    "{:.1}s broker killed and restarted",
                    started.elapsed().as_secs_f64()
                ));
            }
            _ => {}
        }
        load.send(first..(first + BATCH).min(REQUESTS)).await;
        tokio::time::sleep(BATCH_EVERY).await;
    }

    let tally = load.finish().await;
    let broker_name = match &broker {
        Broker::Process(TestBroker::Tansu(_)) => "tansu",
        Broker::Process(_) => "apache kafka",
        Broker::Hosted { .. } => "embedded (own process)",
    };
    println!("scale-out on {broker_name}: {}", events.join(", "));
    println!(
        "{}, run {:.1}s",
        tally.summary(),
        started.elapsed().as_secs_f64()
    );
    tally.assert_nothing_lost_or_misrouted();
    drop(responders);
}
