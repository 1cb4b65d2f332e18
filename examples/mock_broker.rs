//! Hosts the embedded broker (librdkafka's mock cluster) in a process of its own, so
//! several processes (responders, requesters in other languages) can share it over
//! loopback TCP.
//!
//! usage: `mock_broker [TOPIC:PARTITIONS ...]`. Prints `BOOTSTRAP <servers>` once the
//! topics exist, then serves until its standard input closes or it is killed.

use std::io::{BufRead, Write};

use kafka_responder::testkit::EmbeddedBroker;

fn main() -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    for spec in std::env::args().skip(1) {
        let (topic, partitions) = spec
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("expected TOPIC:PARTITIONS, got {spec}"))?;
        broker.create_topic(topic, partitions.parse()?)?;
    }
    println!("BOOTSTRAP {}", broker.bootstrap_servers());
    std::io::stdout().flush()?;
    // Serve until the parent closes our stdin (or kills us).
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    Ok(())
}
