//! What the responder did, readable while it runs: a cheap in-process snapshot of
//! counters ([`MetricsSnapshot`]) and Prometheus metrics ([`Metrics::encode_prometheus`]).
//!
//! The Prometheus metrics (through `prometheus-client`, the Prometheus project's own
//! Rust client: no global registry, typed label sets, the text format built in) are
//! named `kafka_responder_*`. Per request topic (`topic` label): requests received;
//! requests by `outcome` (`replied`, `error_reply`, `unanswerable`, `expired`,
//! `refused`) and stable `code`; dead letters by `reason`; reply retries; handler
//! timeouts and panics; histograms of the handler's duration, of the request's age when
//! its reply is acknowledged (what the requester waits: record timestamp to
//! acknowledgement) and of the reply's produce latency (first attempt to
//! acknowledgement). Gauges: requests in flight, partitions assigned and paused, and
//! consumer lag per partition.
//! Counters: rebalances by `kind`, commit failures, and the transactions of exactly-once
//! replies by `result`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::duration_histogram::DurationHistogram;

/// Live counters and Prometheus metrics, shared with the running responder.
#[derive(Debug, Default)]
pub struct Metrics {
    prometheus: Prometheus,
    received: AtomicU64,
    replied: AtomicU64,
    error_replies: AtomicU64,
    unanswerable: AtomicU64,
    delivery_failures: AtomicU64,
    panics: AtomicU64,
    redeliveries_skipped: AtomicU64,
    already_settled: AtomicU64,
    dead_lettered: AtomicU64,
    expired: AtomicU64,
    reply_retries: AtomicU64,
    handler_timeouts: AtomicU64,
    transactions_committed: AtomicU64,
    transactions_aborted: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Requests received from the broker.
    pub received: u64,
    /// Replies acknowledged by the broker.
    pub replied: u64,
    /// Error replies acknowledged by the broker (decode failures, handler errors, panics).
    pub error_replies: u64,
    /// Requests that got no reply: no usable or no allowed reply address.
    pub unanswerable: u64,
    /// Replies (or error replies) the broker refused for good (the record's own
    /// fault): dead-lettered if configured, and committed.
    pub delivery_failures: u64,
    /// Deliveries (replies and dead letters) retried after an error that may pass.
    pub reply_retries: u64,
    /// Handler panics (each also counted as an error reply or failure).
    pub panics: u64,
    /// Handlers cut off by their timeout or the request's deadline (each also
    /// answered with a `timeout` error reply).
    pub handler_timeouts: u64,
    /// Records skipped because they were delivered again within one assignment.
    pub redeliveries_skipped: u64,
    /// Records skipped because a previous owner of the partition had already settled
    /// them (from its commit metadata).
    pub already_settled: u64,
    /// Requests copied to the dead-letter topic.
    pub dead_lettered: u64,
    /// Requests not handled because their deadline had passed.
    pub expired: u64,
    /// Transactions committed (exactly-once replies only; empty ones included).
    pub transactions_committed: u64,
    /// Transactions that failed to commit or were aborted (exactly-once replies only;
    /// the responder stops after one).
    pub transactions_aborted: u64,
}

impl MetricsSnapshot {
    /// Requests whose outcome is final and committed: answered, error-answered,
    /// unanswerable, expired, or refused by the broker for good.
    pub fn settled(&self) -> u64 {
        self.replied
            + self.error_replies
            + self.unanswerable
            + self.expired
            + self.delivery_failures
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    topic: String,
    outcome: &'static str,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    topic: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type Histograms = Family<TopicLabels, DurationHistogram>;

/// The Prometheus registry and the responder's metric families.
#[derive(Debug)]
struct Prometheus {
    registry: Registry,
    received: Family<TopicLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    dead_letters: Family<ReasonLabels, Counter>,
    retries: Family<TopicLabels, Counter>,
    timeouts: Family<TopicLabels, Counter>,
    panics: Family<TopicLabels, Counter>,
    handler_duration: Histograms,
    request_age: Histograms,
    produce_duration: Histograms,
    in_flight: Gauge,
    partitions_assigned: Gauge,
    partitions_paused: Gauge,
    consumer_lag: Family<PartitionLabels, Gauge>,
    /// The partitions `consumer_lag` has a series for.
    lagging: std::sync::Mutex<Vec<PartitionLabels>>,
    rebalances: Family<KindLabels, Counter>,
    commit_failures: Counter,
    transactions: Family<ResultLabels, Counter>,
}

impl Default for Prometheus {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kafka_responder");
        let histograms = Histograms::default;
        let p = Prometheus {
            registry: Registry::default(),
            received: Family::default(),
            outcomes: Family::default(),
            dead_letters: Family::default(),
            retries: Family::default(),
            timeouts: Family::default(),
            panics: Family::default(),
            handler_duration: histograms(),
            request_age: histograms(),
            produce_duration: histograms(),
            in_flight: Gauge::default(),
            partitions_assigned: Gauge::default(),
            partitions_paused: Gauge::default(),
            consumer_lag: Family::default(),
            lagging: std::sync::Mutex::default(),
            rebalances: Family::default(),
            commit_failures: Counter::default(),
            transactions: Family::default(),
        };
        let r = &mut registry;
        r.register(
            "requests_received",
            "Requests received from the broker",
            p.received.clone(),
        );
        r.register(
            "requests",
            "Requests by outcome (replied, error_reply, unanswerable, expired, refused) and stable code",
            p.outcomes.clone(),
        );
        r.register(
            "dead_letters",
            "Requests copied to the dead-letter topic, by reason",
            p.dead_letters.clone(),
        );
        r.register(
            "reply_retries",
            "Replies and dead letters produced again after an error that may pass",
            p.retries.clone(),
        );
        r.register(
            "handler_timeouts",
            "Handlers cut off by their timeout or the request's deadline",
            p.timeouts.clone(),
        );
        r.register("handler_panics", "Handler panics", p.panics.clone());
        r.register_with_unit(
            "handler_duration",
            "Time in the handler",
            Unit::Seconds,
            p.handler_duration.clone(),
        );
        r.register_with_unit(
            "request_age_at_reply",
            "From the request's record timestamp to its reply's acknowledgement: what the requester waited",
            Unit::Seconds,
            p.request_age.clone(),
        );
        r.register_with_unit(
            "reply_produce_duration",
            "From the reply's first produce attempt to the broker's acknowledgement",
            Unit::Seconds,
            p.produce_duration.clone(),
        );
        r.register("requests_in_flight", "Requests received and not settled (queued, handled, or with their reply awaiting the broker)", p.in_flight.clone());
        r.register(
            "partitions_assigned",
            "Request partitions assigned to this member",
            p.partitions_assigned.clone(),
        );
        r.register(
            "partitions_paused",
            "Assigned partitions whose fetching is paused",
            p.partitions_paused.clone(),
        );
        r.register(
            "consumer_lag",
            "Records between the committed watermark and the high watermark (as last fetched), per assigned partition",
            p.consumer_lag.clone(),
        );
        r.register(
            "rebalances",
            "Partitions assigned to or revoked from this member, by kind",
            p.rebalances.clone(),
        );
        r.register(
            "commit_failures",
            "Offset commits that failed (on revocation or at shutdown)",
            p.commit_failures.clone(),
        );
        r.register(
            "transactions",
            "Transactions of exactly-once replies, by result (committed, aborted)",
            p.transactions.clone(),
        );
        Prometheus { registry, ..p }
    }
}

/// How a request ended, for the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Replied,
    ErrorReply,
    Unanswerable,
    Expired,
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Replied => "replied",
            Outcome::ErrorReply => "error_reply",
            Outcome::Unanswerable => "unanswerable",
            Outcome::Expired => "expired",
            Outcome::Refused => "refused",
        }
    }
}

/// The metric handles of one request topic, looked up once: recording on the hot path
/// touches no map and allocates nothing. Without per-request Prometheus metrics (see
/// `Operations::prometheus_metrics`) only the snapshot's counters are kept.
#[derive(Debug)]
pub(crate) struct TopicMetrics {
    topic: String,
    metrics: Arc<Metrics>,
    handles: Option<Handles>,
}

/// One topic's Prometheus counters and histograms.
#[derive(Debug)]
struct Handles {
    received: Counter,
    replied: Counter,
    retries: Counter,
    timeouts: Counter,
    panics: Counter,
    handler_duration: DurationHistogram,
    request_age: DurationHistogram,
    produce_duration: DurationHistogram,
}

impl TopicMetrics {
    /// `prometheus`: whether requests are counted and timed in the Prometheus metrics.
    pub(crate) fn new(metrics: &Arc<Metrics>, topic: &str, prometheus: bool) -> Self {
        TopicMetrics {
            topic: topic.to_owned(),
            metrics: Arc::clone(metrics),
            handles: prometheus.then(|| Handles::new(&metrics.prometheus, topic)),
        }
    }

    /// Whether the Prometheus histograms are recorded (so durations are worth timing).
    pub(crate) fn timed(&self) -> bool {
        self.handles.is_some()
    }

    pub(crate) fn received(&self) {
        self.metrics.inc_received();
        if let Some(h) = &self.handles {
            h.received.inc();
        }
    }

    /// A request's outcome, with its stable code (none for a reply or an expiry).
    pub(crate) fn outcome(&self, outcome: Outcome, code: &str) {
        let m = &self.metrics;
        match outcome {
            Outcome::Replied => {
                m.inc_replied();
                if let Some(h) = &self.handles {
                    h.replied.inc();
                }
                return;
            }
            Outcome::ErrorReply => m.inc_error_replies(),
            Outcome::Unanswerable => m.inc_unanswerable(),
            Outcome::Expired => m.inc_expired(),
            Outcome::Refused => m.inc_delivery_failures(),
        }
        if self.handles.is_none() {
            return;
        }
        m.prometheus
            .outcomes
            .get_or_create(&OutcomeLabels {
                topic: self.topic.clone(),
                outcome: outcome.as_str(),
                code: code.to_owned(),
            })
            .inc();
    }

    pub(crate) fn dead_lettered(&self, reason: &str) {
        self.metrics.inc_dead_lettered();
        if self.handles.is_none() {
            return;
        }
        self.metrics
            .prometheus
            .dead_letters
            .get_or_create(&ReasonLabels {
                topic: self.topic.clone(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn retried(&self) {
        self.metrics.inc_reply_retries();
        if let Some(h) = &self.handles {
            h.retries.inc();
        }
    }

    pub(crate) fn timed_out(&self) {
        self.metrics.inc_handler_timeouts();
        if let Some(h) = &self.handles {
            h.timeouts.inc();
        }
    }

    pub(crate) fn panicked(&self) {
        self.metrics.inc_panics();
        if let Some(h) = &self.handles {
            h.panics.inc();
        }
    }

    /// How long the handler took, in nanoseconds.
    pub(crate) fn handler_duration(&self, nanos: u64) {
        if let Some(h) = &self.handles {
            h.handler_duration.observe_nanos(nanos);
        }
    }

    /// How long the reply took from its first produce attempt to its acknowledgement,
    /// in nanoseconds.
    pub(crate) fn produce_duration(&self, nanos: u64) {
        if let Some(h) = &self.handles {
            h.produce_duration.observe_nanos(nanos);
        }
    }

    /// The request's age in milliseconds when its reply was acknowledged.
    pub(crate) fn request_age(&self, millis: i64) {
        if let Some(h) = &self.handles {
            let millis = u64::try_from(millis).unwrap_or(0);
            h.request_age
                .observe_nanos(millis.saturating_mul(1_000_000));
        }
    }
}

impl Handles {
    fn new(p: &Prometheus, topic: &str) -> Self {
        let labels = TopicLabels {
            topic: topic.to_owned(),
        };
        Handles {
            received: p.received.get_or_create_owned(&labels),
            replied: p.outcomes.get_or_create_owned(&OutcomeLabels {
                topic: topic.to_owned(),
                outcome: Outcome::Replied.as_str(),
                code: String::new(),
            }),
            retries: p.retries.get_or_create_owned(&labels),
            timeouts: p.timeouts.get_or_create_owned(&labels),
            panics: p.panics.get_or_create_owned(&labels),
            handler_duration: p.handler_duration.get_or_create_owned(&labels),
            request_age: p.request_age.get_or_create_owned(&labels),
            produce_duration: p.produce_duration.get_or_create_owned(&labels),
        }
    }
}

impl Metrics {
    /// The Prometheus metrics in the text exposition format (what `/metrics` serves).
    pub fn encode_prometheus(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.prometheus.registry);
        out
    }

    /// The gauges the dispatcher keeps up to date.
    pub(crate) fn set_gauges(&self, in_flight: usize, assigned: usize, paused: usize) {
        let p = &self.prometheus;
        p.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        p.partitions_assigned
            .set(i64::try_from(assigned).unwrap_or(i64::MAX));
        p.partitions_paused
            .set(i64::try_from(paused).unwrap_or(i64::MAX));
    }

    /// The lag of every assigned partition, replacing what was there (partitions no
    /// longer assigned disappear).
    pub(crate) fn set_lags(&self, lags: impl IntoIterator<Item = (String, i32, i64)>) {
        let family = &self.prometheus.consumer_lag;
        let mut now = Vec::new();
        for (topic, partition, lag) in lags {
            let labels = PartitionLabels { topic, partition };
            family.get_or_create(&labels).set(lag);
            now.push(labels);
        }
        // Series of partitions no longer assigned go; the others are never missing
        // from a scrape in between.
        let mut lagging = self
            .prometheus
            .lagging
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in lagging.iter().filter(|l| !now.contains(l)) {
            family.remove(gone);
        }
        *lagging = now;
    }

    pub(crate) fn rebalance(&self, kind: &'static str) {
        self.prometheus
            .rebalances
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    pub(crate) fn commit_failed(&self) {
        self.prometheus.commit_failures.inc();
    }

    /// A transaction of exactly-once replies ended: committed, or aborted (or failed).
    pub(crate) fn transaction(&self, committed: bool) {
        let result = if committed {
            self.inc_transactions_committed();
            "committed"
        } else {
            self.inc_transactions_aborted();
            "aborted"
        };
        self.prometheus
            .transactions
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

macro_rules! counters {
    ($($inc:ident => $field:ident),* $(,)?) => {
        impl Metrics {
            $(pub(crate) fn $inc(&self) { self.$field.fetch_add(1, Relaxed); })*

            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($field: self.$field.load(Relaxed),)* }
            }
        }
    };
}

counters! {
    inc_received => received,
    inc_replied => replied,
    inc_error_replies => error_replies,
    inc_unanswerable => unanswerable,
    inc_delivery_failures => delivery_failures,
    inc_panics => panics,
    inc_redeliveries_skipped => redeliveries_skipped,
    inc_already_settled => already_settled,
    inc_dead_lettered => dead_lettered,
    inc_expired => expired,
    inc_reply_retries => reply_retries,
    inc_handler_timeouts => handler_timeouts,
    inc_transactions_committed => transactions_committed,
    inc_transactions_aborted => transactions_aborted,
}
