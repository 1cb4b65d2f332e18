//! A cluster of Apache Kafka nodes on loopback, for failover tests: each node a broker
//! and a controller (a three-voter KRaft quorum for three nodes), internal topics with
//! three replicas and `min.insync.replicas=2`. Nodes are killed (SIGKILL) and restarted
//! one at a time; a restarted node rejoins with its storage.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::kafka::{KafkaBroker, Node, fresh_dir, installation, server_properties};
use crate::error::Error;

/// Apache Kafka nodes forming one cluster.
#[derive(Debug)]
pub struct KafkaCluster {
    nodes: Vec<KafkaBroker>,
    bootstrap: String,
}

impl KafkaCluster {
    /// Starts `size` nodes (node ids 1 to `size`) and waits until each serves clients
    /// and sees all the others. Three nodes start in about 6 s here and take about
    /// 500 MiB together.
    pub fn start(size: usize) -> Result<Self, Error> {
        if size == 0 {
            return Err(Error::config("a cluster needs at least one node"));
        }
        let home = installation()?;
        let ports: Vec<(u16, u16)> = super::free_ports(2 * size)?
            .chunks(2)
            .map(|pair| (pair[0], pair[1]))
            .collect();
        let quorum = ports
            .iter()
            .map(|(_, c)| format!("127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",");
        let controllers = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}:{}", i + 1, directory_id()))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::with_capacity(size);
        for (i, (port, controller)) in ports.iter().enumerate() {
            let node = Node {
                id: i32::try_from(i + 1).unwrap_or(i32::MAX),
                port: *port,
                controller: *controller,
                sasl: None,
                quorum: quorum.clone(),
                replicas: size.min(3),
            };
            let dir = fresh_dir()?;
            let properties = server_properties(&dir, &node);
            let broker = KafkaBroker::prepare(
                home.clone(),
                dir,
                &node,
                &properties,
                Some(controllers.clone()),
                size,
            )?;
            broker.format()?;
            nodes.push(broker);
        }
        // All JVMs first: a node is ready only once the quorum has formed.
        for node in &mut nodes {
            node.spawn()?;
        }
        for node in &mut nodes {
            node.wait_ready(Duration::from_secs(120))?;
        }
        nodes[0].warm_up();
        let bootstrap = nodes
            .iter()
            .map(|n| n.bootstrap_servers().to_owned())
            .collect::<Vec<_>>()
            .join(",");
        Ok(KafkaCluster { nodes, bootstrap })
    }

    /// Every node's listener, as a `bootstrap.servers` list.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn node(&mut self, id: i32) -> Result<&mut KafkaBroker, Error> {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.nodes.get_mut(i))
            .ok_or_else(|| Error::config(format!("no node {id} in the cluster")))
    }

    /// Kills node `id` (SIGKILL), as a crash.
    pub fn kill(&mut self, id: i32) -> Result<(), Error> {
        self.node(id)?.kill();
        Ok(())
    }

    /// Starts node `id` again on its storage and waits until it is back in the
    /// cluster (after a SIGKILL the controller accepts its registration once the old
    /// one's session has expired: about 10 s here).
    pub fn restart(&mut self, id: i32) -> Result<(), Error> {
        self.node(id)?.restart()
    }

    /// Creates a topic with a replica on every node (at most 3).
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .map_err(|e| Error::kafka("creating an admin client", e))?;
        let replicas = i32::try_from(self.nodes.len().min(3)).unwrap_or(3);
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
        for r in admin
            .create_topics(&[new], &AdminOptions::new())
            .await
            .map_err(|e| Error::kafka("creating a topic", e))?
        {
            if let Err((name, code)) = r {
                return Err(Error::config(format!("creating topic {name}: {code}")));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    }

    /// The node leading `topic`/`partition` now, from the cluster's metadata.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32, Error> {
        let bootstrap = self.bootstrap.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let probe: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("log_level", "0")
                .create()
                .map_err(|e| Error::kafka("creating a metadata probe", e))?;
            let md = probe
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map_err(|e| Error::kafka("reading metadata", e))?;
            md.topics()
                .iter()
                .flat_map(|t| t.partitions())
                .find(|p| p.id() == partition)
                .map(|p| p.leader())
                .filter(|l| *l >= 0)
                .ok_or_else(|| Error::config(format!("{topic}/{partition} has no leader")))
        })
        .await
        .map_err(|e| Error::config(format!("metadata probe panicked: {e}")))?
    }
}

/// A new Kafka directory id: 16 random bytes as Kafka prints a `Uuid` (URL-safe base64,
/// no padding).
fn directory_id() -> String {
    let state = std::hash::RandomState::new();
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    let mut bits = 0u32;
    let mut held = 0u32;
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        held += 8;
        while held >= 6 {
            held -= 6;
            out.push(char::from(ALPHABET[((bits >> held) & 63) as usize]));
        }
    }
    if held > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - held)) & 63) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn directory_ids_are_22_url_safe_characters() {
        let a = super::directory_id();
        assert_eq!(a.len(), 22, "{a}");
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, super::directory_id());
    }
}
