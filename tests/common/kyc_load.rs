//! A load of KYC requests from several requesters, each owning one reply partition,
//! and the tally of what came back: the scale-out and failover tests share it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_responder::HeaderConvention;
use kafka_responder::testkit::{Reply, Requester};
use tokio::task::JoinHandle;

use super::kyc_score;

/// How long a request may wait for its reply.
const REPLY_WITHIN: Duration = Duration::from_secs(240);

struct Outcome {
    id: usize,
    latency: Duration,
    reply: Option<Reply>,
}

/// Requests sent so far, and the tasks awaiting their replies.
pub struct KycLoad {
    requests: String,
    requesters: Arc<Vec<Requester>>,
    issued: Vec<HashSet<Vec<u8>>>,
    waits: Vec<JoinHandle<Outcome>>,
}

impl KycLoad {
    /// `requesters` Spring-convention requesters on `bootstrap`, requester `i` owning
    /// partition `i` of `replies`, sending to `requests`.
    pub async fn new(bootstrap: &str, requests: &str, replies: &str, requesters: usize) -> Self {
        let mut all = Vec::with_capacity(requesters);
        for p in 0..requesters {
            let r = Requester::new(bootstrap, HeaderConvention::spring(), replies, p as i32)
                .await
                .expect("requester")
                .with_timeout(REPLY_WITHIN);
            all.push(r);
        }
        KycLoad {
            requests: requests.to_owned(),
            requesters: Arc::new(all),
            issued: vec![HashSet::new(); requesters],
            waits: Vec::new(),
        }
    }

    /// Sends requests `ids` (request `id` from requester `id % requesters`, for wallet
    /// `wallet-<id % 997>`, keyed by it) and waits for the broker to take them.
    pub async fn send(&mut self, ids: std::ops::Range<usize>) {
        let mut sends = Vec::new();
        for id in ids {
            let who = id % self.requesters.len();
            let requester = &self.requesters[who];
            let corr = requester.new_correlation_id();
            self.issued[who].insert(corr.clone());
            let rx = requester.expect(corr.clone());
            let sent = Instant::now();
            self.waits.push(tokio::spawn(async move {
                let reply = rx.within(REPLY_WITHIN).await.ok();
                Outcome {
                    id,
                    latency: sent.elapsed(),
                    reply,
                }
            }));
            let wallet = wallet(id);
            let headers = requester.request_headers(&corr);
            let body = format!("{{\"wallet_id\":\"{wallet}\"}}").into_bytes();
            let requests = &self.requests;
            sends.push(async move {
                requester
                    .send_raw(
                        requests,
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
    }

    /// Waits for every reply, lets late duplicates arrive, and checks every reply each
    /// requester saw on its partition.
    pub async fn finish(self) -> Tally {
        let requesters = self.requesters.len();
        let mut t = Tally {
            sent: self.waits.len(),
            ..Tally::default()
        };
        for w in self.waits {
            let o = w.await.expect("waiter");
            let Some(reply) = o.reply else {
                t.lost.push(o.id);
                continue;
            };
            t.latencies.push(o.latency);
            let wallet = wallet(o.id);
            let want = format!(
                "{{\"wallet_id\":\"{wallet}\",\"score\":{}}}",
                kyc_score(&wallet)
            );
            if reply.partition != (o.id % requesters) as i32
                || reply.key.as_deref() != Some(wallet.as_bytes())
                || reply.payload.as_deref() != Some(want.as_bytes())
            {
                t.wrong.push(format!("request {}: {reply:?}", o.id));
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (who, requester) in self.requesters.iter().enumerate() {
            let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
            for r in requester.received() {
                let corr = r.header("kafka_correlationId").unwrap_or_default().to_vec();
                if !self.issued[who].contains(&corr) || r.partition != who as i32 {
                    t.misrouted += 1;
                }
                *seen.entry(corr).or_default() += 1;
            }
            t.duplicates += seen.values().map(|n| n - 1).sum::<usize>();
        }
        t.latencies.sort_unstable();
        t
    }
}

fn wallet(id: usize) -> String {
    format!("wallet-{}", id % 997)
}

/// What a load's replies add up to.
#[derive(Default)]
pub struct Tally {
    pub sent: usize,
    /// Requests with no reply.
    pub lost: Vec<usize>,
    /// Replies with the wrong partition, key or payload.
    pub wrong: Vec<String>,
    /// Replies a requester saw that it did not ask for, or on another partition.
    pub misrouted: usize,
    pub duplicates: usize,
    /// Round trips of the answered requests, sorted.
    pub latencies: Vec<Duration>,
}

impl Tally {
    fn percentile(&self, q: f64) -> Duration {
        let n = self.latencies.len();
        self.latencies
            .get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }

    /// The figures, one line.
    pub fn summary(&self) -> String {
        format!(
            "requests {}, answered {}, lost {}, wrong {}, misrouted {}, duplicates {}, latency p50 {:?} p99 {:?} max {:?}",
            self.sent,
            self.latencies.len(),
            self.lost.len(),
            self.wrong.len(),
            self.misrouted,
            self.duplicates,
            self.percentile(0.5),
            self.percentile(0.99),
            self.latencies.last().copied().unwrap_or_default(),
        )
    }

    /// Fails the test on any lost, wrong or misrouted reply.
    pub fn assert_nothing_lost_or_misrouted(&self) {
        assert!(
            self.lost.is_empty(),
            "lost requests: {:?}",
            &self.lost[..self.lost.len().min(20)]
        );
        assert!(
            self.wrong.is_empty(),
            "wrong replies: {:?}",
            &self.wrong[..self.wrong.len().min(5)]
        );
        assert_eq!(
            self.misrouted, 0,
            "replies on a partition or at a requester they were not for"
        );
    }
}
