//! What every contestant speaks: the KYC request and reply, the Spring header
//! convention, the topics, and the payloads the driver sends.

use serde::{Deserialize, Serialize};

/// Where requests arrive (the KYC service's default).
pub const REQUEST_TOPIC: &str = "WALLET-KYC-REQUEST";
/// Where replies go (named in each request's headers).
pub const REPLY_TOPIC: &str = "WALLET-KYC-RESPONSE";
/// Partitions of the request topic.
pub const REQUEST_PARTITIONS: i32 = 6;
/// Partitions of the reply topic: request `id` asks for a reply on `id % 6`.
pub const REPLY_PARTITIONS: i32 = 6;
/// The allow-list every contestant applies: reply topics starting with this.
pub const ALLOWED_REPLY_PREFIX: &str = "WALLET-KYC-RESPONSE";

/// Spring's reply-topic header (the topic name in UTF-8).
pub const REPLY_TOPIC_HEADER: &str = "kafka_replyTopic";
/// Spring's reply-partition header (4-byte big-endian int).
pub const REPLY_PARTITION_HEADER: &str = "kafka_replyPartition";
/// Spring's correlation header, echoed on the reply.
pub const CORRELATION_HEADER: &str = "kafka_correlationId";

/// The request (the same fields as `examples/shared/kyc.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Which wallet to score.
    pub wallet_id: String,
    /// Documents sent with it, echoed on the reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<String>,
}

/// The reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// The wallet scored.
    pub wallet_id: String,
    /// Its score, 0..=100.
    pub score: u8,
    /// The documents the score covers, as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<String>,
}

/// The KYC score of a wallet: FNV-1a of its id, modulo 101 (as the KYC handler).
pub fn score(wallet_id: &str) -> u8 {
    let hash = wallet_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % 101) as u8
}

/// The two payload sizes measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// About 100 bytes of JSON: a wallet id and one short document.
    Small,
    /// About 10 KiB of JSON: a wallet id and ten 1000-character documents.
    Large,
}

impl Payload {
    /// Its label in reports.
    pub fn label(self) -> &'static str {
        match self {
            Payload::Small => "100 B",
            Payload::Large => "10 KiB",
        }
    }

    fn documents(self) -> (usize, usize) {
        match self {
            Payload::Small => (1, 48),
            Payload::Large => (10, 1000),
        }
    }

    /// Request `id`: its key (the wallet) and query. Deterministic, so a reply can be
    /// checked against a request rebuilt from its id.
    pub fn request(self, id: u64) -> (String, Query) {
        let wallet_id = format!("wallet-{:05}", id % 10_000);
        let (count, len) = self.documents();
        let documents = (0..count)
            .map(|d| document(id, d as u64, len))
            .collect::<Vec<_>>();
        (
            wallet_id.clone(),
            Query {
                wallet_id,
                documents,
            },
        )
    }

    /// The request body of `id`, as JSON.
    pub fn body(self, id: u64) -> Vec<u8> {
        serde_json::to_vec(&self.request(id).1).expect("a Query always serializes")
    }

    /// The reply partition request `id` names.
    pub fn reply_partition(id: u64) -> i32 {
        (id % REPLY_PARTITIONS as u64) as i32
    }
}

/// A base64-alphabet document of `len` characters, from a xorshift seeded by the
/// request and document numbers.
fn document(id: u64, doc: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = (id << 8 | doc).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

/// Why a reply is not the one request `id` should get.
pub fn check_reply(
    payload: Payload,
    id: u64,
    partition: i32,
    key: Option<&[u8]>,
    body: Option<&[u8]>,
) -> Result<(), String> {
    let (wallet, query) = payload.request(id);
    if partition != Payload::reply_partition(id) {
        return Err(format!(
            "request {id}: reply on partition {partition}, asked for {}",
            Payload::reply_partition(id)
        ));
    }
    if key != Some(wallet.as_bytes()) {
        return Err(format!(
            "request {id}: reply key {key:?}, expected {wallet}"
        ));
    }
    let got: Score = serde_json::from_slice(body.unwrap_or_default())
        .map_err(|e| format!("request {id}: reply body is not a score: {e}"))?;
    let want = Score {
        score: score(&query.wallet_id),
        wallet_id: query.wallet_id,
        documents: query.documents,
    };
    if got != want {
        return Err(format!("request {id}: wrong reply body"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes_are_what_the_report_says() {
        let small = Payload::Small.body(42).len();
        let large = Payload::Large.body(42).len();
        assert!((90..=110).contains(&small), "{small}");
        assert!((10_000..=10_400).contains(&large), "{large}");
    }

    #[test]
    fn a_reply_is_checked_field_by_field() {
        let (wallet, q) = Payload::Small.request(7);
        let good = Score {
            score: score(&q.wallet_id),
            wallet_id: q.wallet_id.clone(),
            documents: q.documents.clone(),
        };
        let body = serde_json::to_vec(&good).expect("serializes");
        let p = Payload::reply_partition(7);
        assert_eq!(
            check_reply(Payload::Small, 7, p, Some(wallet.as_bytes()), Some(&body)),
            Ok(())
        );
        assert!(
            check_reply(
                Payload::Small,
                7,
                p + 1,
                Some(wallet.as_bytes()),
                Some(&body)
            )
            .is_err()
        );
        assert!(check_reply(Payload::Small, 7, p, Some(b"other"), Some(&body)).is_err());
        assert!(check_reply(Payload::Small, 8, p, Some(wallet.as_bytes()), Some(&body)).is_err());
        let wrong = Score {
            score: good.score.wrapping_add(1),
            ..good
        };
        let body = serde_json::to_vec(&wrong).expect("serializes");
        assert!(check_reply(Payload::Small, 7, p, Some(wallet.as_bytes()), Some(&body)).is_err());
    }
}
