//! Building a [`Responder`]: where to connect, what to answer, and the bounds it keeps.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::address::{AddressReader, DEFAULT_MAX_CORRELATION_ID_LEN, MissingCorrelationId};
use crate::codec::Codec;
use crate::deadline::DeadlineRules;
use crate::error::Error;
use crate::headers::HeaderConvention;
use crate::ordering::HandlingOrder;
use crate::policy::ReplyTopicPolicy;
use crate::router::Route;
use crate::runtime::{Responder, Unreported};
use crate::topic::{is_internal_topic, validate_topic_name};

/// Settings of the runtime: bounds, timings, the dead-letter topic.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) dead_letter_topic: Option<String>,
    pub(crate) deadlines: DeadlineRules,
    pub(crate) missing_correlation_id: MissingCorrelationId,
    pub(crate) max_correlation_id_len: usize,
    pub(crate) max_request_bytes: Option<usize>,
    pub(crate) reply_topic_ttl: Duration,
    pub(crate) write_access: Option<Unreported>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_partition: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) handler_timeout: Duration,
    pub(crate) commit_interval: Duration,
    /// Whether requests are counted and timed in the Prometheus metrics.
    pub(crate) prometheus_metrics: bool,
    /// Whether W3C trace context goes from request to reply.
    pub(crate) trace_context: bool,
    /// Where `/metrics`, `/livez` and `/readyz` are served (feature `http`).
    #[cfg(feature = "http")]
    pub(crate) http_addr: Option<std::net::SocketAddr>,
    /// With exactly-once replies: the reply producer's `transactional.id`.
    pub(crate) transactional_id: Option<String>,
    /// With exactly-once replies: the producer's `transaction.timeout.ms`.
    pub(crate) transaction_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dead_letter_topic: None,
            deadlines: DeadlineRules::default(),
            missing_correlation_id: MissingCorrelationId::default(),
            max_correlation_id_len: DEFAULT_MAX_CORRELATION_ID_LEN,
            max_request_bytes: None,
            reply_topic_ttl: Duration::from_secs(30),
            write_access: None,
            max_in_flight: 1024,
            max_in_flight_per_partition: 1024,
            drain_timeout: Duration::from_secs(30),
            handler_timeout: Duration::from_secs(30),
            #[cfg(feature = "http")]
            http_addr: None,
            commit_interval: Duration::from_millis(500),
            prometheus_metrics: true,
            trace_context: true,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// Client properties the responder sets itself: overriding them would break
/// at-least-once or let a requester create topics.
const GUARDED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("allow.auto.create.topics", "false"),
];

/// Builds a [`Responder`]. Start with [`Responder::builder`].
///
/// ```no_run
/// # use responder_core::{ErrorReply, Handler, RequestContext};
/// use responder_core::{Json, Responder};
/// # struct Echo;
/// # impl Handler for Echo {
/// #     type Request = String; type Reply = String; type Error = ErrorReply;
/// #     async fn handle(&self, r: String, _: &RequestContext) -> Result<String, ErrorReply> { Ok(r) }
/// # }
/// # async fn run() -> Result<(), responder_core::Error> {
/// Responder::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .group_id("echo")
///     .route("echo-requests", Json, Echo)
///     .reply_topics("echo-replies*".parse()?)
///     .build()?
///     .run_until(responder_core::shutdown_signal())
///     .await
/// # }
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct ResponderBuilder {
    bootstrap_servers: Option<String>,
    group_id: Option<String>,
    routes: Vec<Route>,
    policy: Option<ReplyTopicPolicy>,
    conventions: Option<Vec<HeaderConvention>>,
    ordering: HandlingOrder,
    settings: Settings,
    client_config: Vec<(String, String)>,
    consumer_config: Vec<(String, String)>,
    producer_config: Vec<(String, String)>,
}

impl ResponderBuilder {
    /// The broker list (`bootstrap.servers`).
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// The consumer group all replicas of the service share.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// Answers requests of `topic` with `handler`, its payloads in `codec` (e.g.
    /// `.route("requests", Json, MyHandler)`; see [`Route::new`]).
    pub fn route<C, H>(self, topic: impl Into<String>, codec: C, handler: H) -> Self
    where
        H: crate::Handler,
        C: Codec<H::Request, H::Reply>,
    {
        self.add_route(Route::new(topic, codec, handler))
    }

    /// Answers the request topics of a handler that names its own topics and codec
    /// (`#[derive(Handler)]`), one route per topic.
    pub fn handler(mut self, handler: impl crate::router::IntoRoutes) -> Self {
        self.routes.extend(handler.into_routes());
        self
    }

    /// Adds a [`Route`] (for per-route settings such as its ordering).
    pub fn add_route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The reply-topic policy: replies go only to topics it allows. Required.
    pub fn reply_topics(mut self, policy: ReplyTopicPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The header conventions accepted, tried in order; the first whose reply-topic
    /// and correlation headers are both present wins. Default: Spring, SmallRye, plain.
    pub fn header_conventions(
        mut self,
        conventions: impl IntoIterator<Item = HeaderConvention>,
    ) -> Self {
        self.conventions = Some(conventions.into_iter().collect());
        self
    }

    /// Default ordering of routes that set none. Default: [`HandlingOrder::Key`].
    pub fn ordering(mut self, ordering: HandlingOrder) -> Self {
        self.ordering = ordering;
        self
    }

    /// Requests in flight (received and not yet settled: waiting for their lane, in
    /// the handler, or with their reply awaiting the broker's acknowledgement) across
    /// all partitions; when reached, the responder stops fetching. Default 1024.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.settings.max_in_flight = n;
        self
    }

    /// Requests of one partition in the handler at once. When this is below
    /// [`max_in_flight`](Self::max_in_flight), the partition is also paused while this
    /// many of its requests are unsettled (pausing drops librdkafka's prefetched
    /// records, which are fetched again on resume). Default 1024, as `max_in_flight`:
    /// one partition may use the whole bound, and is never paused for it.
    pub fn max_in_flight_per_partition(mut self, n: usize) -> Self {
        self.settings.max_in_flight_per_partition = n;
        self
    }

    /// How long revocation and shutdown wait for in-flight requests (in the handler,
    /// or with a reply awaiting the broker or a retry). Those still running then are
    /// abandoned uncommitted: the next owner answers them. Default 30 s. At shutdown,
    /// the final commit and leaving the group add at most about 10 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.settings.drain_timeout = timeout;
        self
    }

    /// The longest a handler may take (per route with
    /// [`Route::handler_timeout`](crate::Route::handler_timeout)); a request's deadline,
    /// when it has one, bounds it too. A handler past it is dropped (its future is no
    /// longer polled) and the requester gets a `timeout` error reply, instead of
    /// waiting out its own timeout. A handler that blocks its thread instead of
    /// awaiting cannot be cut off this way. Default 30 s.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.settings.handler_timeout = timeout;
        self
    }

    /// How often settled offsets are committed. Default 500 ms.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.settings.commit_interval = interval;
        self
    }

    /// A topic that receives a copy of every request that cannot be answered (no usable
    /// or allowed reply address, or a reply the broker refuses), with headers saying
    /// why (`responder-dlq-*`). Without one, such requests are logged and counted.
    /// Either way they are committed.
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.settings.dead_letter_topic = Some(topic.into());
        self
    }

    /// The header carrying a request's deadline (absolute epoch milliseconds, ASCII
    /// decimal); `None` reads no deadline header. Default
    /// [`DEADLINE_HEADER`](crate::DEADLINE_HEADER). A request past its deadline is not
    /// handled: its requester has given up. It is counted (`expired`), logged and
    /// committed. A deadline header that cannot be read gets a `bad_request` error reply.
    pub fn deadline_header(mut self, header: Option<&str>) -> Self {
        self.settings.deadlines.header = header.map(str::to_owned);
        self
    }

    /// Requests older than this (by their record timestamp) have expired, like requests
    /// past a deadline header. With both, the earlier deadline applies. Default: none.
    pub fn max_request_age(mut self, age: Duration) -> Self {
        self.settings.deadlines.max_age = Some(age);
        self
    }

    /// What to do with a request that names a reply topic but no correlation id.
    /// Default: [`MissingCorrelationId::Refuse`].
    pub fn missing_correlation_id(mut self, rule: MissingCorrelationId) -> Self {
        self.settings.missing_correlation_id = rule;
        self
    }

    /// The longest correlation id accepted, in bytes; a longer one makes the request
    /// unanswerable (`invalid_correlation_id`). Default
    /// [`DEFAULT_MAX_CORRELATION_ID_LEN`].
    pub fn max_correlation_id_len(mut self, len: usize) -> Self {
        self.settings.max_correlation_id_len = len;
        self
    }

    /// The largest request payload handed to a codec, in bytes; a larger one gets a
    /// `payload_too_large` error reply without being decoded. Default: no bound beyond
    /// the broker's own `message.max.bytes`.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_request_bytes = Some(bytes);
        self
    }

    /// Asks the broker, before the first reply to each reply topic (and again after
    /// the [cache TTL](Self::reply_topic_cache_ttl)), which operations the responder's
    /// principal may perform on it (KIP-430 DescribeTopics with authorized operations).
    /// A topic the principal may not WRITE is refused (`reply_topic_not_authorized`)
    /// before anything is produced. When the broker answers without operations (a
    /// broker before Kafka 2.3, or one without KIP-430), `unreported` decides; when it
    /// cannot be asked, the reply is produced and the producer's errors decide.
    ///
    /// Off by default: the reply-topic policy, the existence and partition checks
    /// (from metadata, always on) and the producer's own
    /// `TOPIC_AUTHORIZATION_FAILED` handling apply either way.
    pub fn check_write_access(mut self, unreported: Unreported) -> Self {
        self.settings.write_access = Some(unreported);
        self
    }

    /// How long what the broker said about a reply topic (existence, partition count,
    /// write access) is trusted. A refusal is re-checked after 2 s at most, so a topic
    /// created or grown meanwhile is picked up quickly. Default 30 s.
    pub fn reply_topic_cache_ttl(mut self, ttl: Duration) -> Self {
        self.settings.reply_topic_ttl = ttl;
        self
    }

    /// Serves `/metrics` (Prometheus), `/livez` and `/readyz` on `addr` (port 0: any
    /// free port, see [`Responder::http_local_addr`]) while the responder runs. The
    /// address is bound by [`build`](Self::build). See the README's health rules.
    #[cfg(feature = "http")]
    pub fn http_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.settings.http_addr = Some(addr);
        self
    }

    /// Whether each request is counted and timed in the Prometheus metrics (requests by
    /// outcome, dead letters, retries, timeouts, panics and the three histograms).
    /// Default on. Off, those series stay empty; the gauges, rebalance and commit
    /// counters and the in-process [`MetricsSnapshot`](crate::MetricsSnapshot) are
    /// still kept.
    pub fn prometheus_metrics(mut self, on: bool) -> Self {
        self.settings.prometheus_metrics = on;
        self
    }

    /// Whether W3C trace context (`traceparent`, `tracestate`) goes from each request
    /// to its reply (see the README's trace-context rules). Default on. Off, the
    /// headers are not read and replies carry none.
    pub fn trace_context(mut self, on: bool) -> Self {
        self.settings.trace_context = on;
        self
    }

    /// Exactly-once replies: each reply is produced inside a Kafka transaction that
    /// also commits its request's offset (one transaction per
    /// [commit interval](Self::commit_interval)), so a requester reading with
    /// `isolation.level=read_committed` sees each reply once, even when the responder
    /// is killed between a reply and its commit. Off by default (at-least-once).
    ///
    /// `transactional_id` becomes the reply producer's `transactional.id`: unique per
    /// replica (two live replicas with one id fence each other), and best stable
    /// across a replica's restarts (a StatefulSet's pod name), so that a restart
    /// aborts at once what the crashed instance left open instead of after
    /// `transaction.timeout.ms`. The principal needs WRITE and DESCRIBE on that
    /// transactional id (see the README's ACLs).
    ///
    /// A reply the broker refuses, or a request abandoned after its reply was
    /// produced, aborts the transaction and stops the responder with an error: its
    /// requests are answered again after the restart. The producer's
    /// `message.timeout.ms` defaults to `transaction.timeout.ms` (60 s) here, and
    /// `build()` refuses a commit interval over a quarter of `transaction.timeout.ms`
    /// (a commit may then wait another quarter for replies in flight and as long for
    /// the broker, and the transaction must end before the broker aborts it).
    pub fn exactly_once(mut self, transactional_id: impl Into<String>) -> Self {
        self.settings.transactional_id = Some(transactional_id.into());
        self
    }

    /// Sets a librdkafka property on both the consumer and the producer.
    pub fn client_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client_config.push((key.into(), value.into()));
        self
    }

    /// Sets a librdkafka property on the consumer only.
    pub fn consumer_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.consumer_config.push((key.into(), value.into()));
        self
    }

    /// Sets a librdkafka property on the producer only.
    pub fn producer_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.producer_config.push((key.into(), value.into()));
        self
    }

    /// Checks the configuration and creates the clients.
    pub fn build(self) -> Result<Responder, Error> {
        let bootstrap = self
            .bootstrap_servers
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::config("bootstrap servers are not set"))?;
        let group = self
            .group_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::config("group id is not set"))?;
        if self.routes.is_empty() {
            return Err(Error::config("no route: add at least one request topic"));
        }
        let mut topics = HashSet::new();
        for route in &self.routes {
            validate_topic_name(route.topic().as_bytes())?;
            if is_internal_topic(route.topic()) {
                return Err(Error::config(format!(
                    "{} is an internal topic",
                    route.topic()
                )));
            }
            if !topics.insert(route.topic().to_owned()) {
                return Err(Error::config(format!(
                    "topic {} is routed twice",
                    route.topic()
                )));
            }
        }
        if let Some(dlq) = &self.settings.dead_letter_topic {
            validate_topic_name(dlq.as_bytes())?;
            if is_internal_topic(dlq) || topics.contains(dlq) {
                return Err(Error::config(format!(
                    "dead-letter topic {dlq} is an internal or a request topic"
                )));
            }
        }
        let policy = self
            .policy
            .ok_or_else(|| Error::config("no reply-topic policy: set reply_topics(..)"))?;
        if !policy.allows_anything() {
            return Err(Error::config(
                "the reply-topic policy allows no topic: every request would go unanswered",
            ));
        }
        let conventions = self.conventions.unwrap_or_else(|| {
            vec![
                HeaderConvention::spring(),
                HeaderConvention::smallrye(),
                HeaderConvention::plain(),
            ]
        });
        if conventions.is_empty() {
            return Err(Error::config("no header convention accepted"));
        }
        for (i, a) in conventions.iter().enumerate() {
            if let Some(b) = conventions[i + 1..].iter().find(|b| a.clashes_with(b)) {
                return Err(Error::config(format!(
                    "header conventions {a} and {b} read the same headers; accept at most one"
                )));
            }
        }
        let s = &self.settings;
        if s.max_in_flight == 0 || s.max_in_flight_per_partition == 0 {
            return Err(Error::config("in-flight bounds must be at least 1"));
        }
        if s.handler_timeout.is_zero()
            || self
                .routes
                .iter()
                .any(|r| r.own_handler_timeout().is_some_and(|t| t.is_zero()))
        {
            return Err(Error::config("the handler timeout must be positive"));
        }
        if s.commit_interval.is_zero() {
            return Err(Error::config("commit interval must be positive"));
        }
        if s.reply_topic_ttl.is_zero() {
            return Err(Error::config("the reply-topic cache TTL must be positive"));
        }
        if s.max_correlation_id_len == 0 {
            return Err(Error::config("the correlation id bound must be at least 1"));
        }
        if s.deadlines.max_age.is_some_and(|a| a.is_zero()) {
            return Err(Error::config("the maximum request age must be positive"));
        }
        if s.deadlines
            .header
            .as_deref()
            .is_some_and(|h| h.trim().is_empty())
        {
            return Err(Error::config("the deadline header name is empty"));
        }
        let addresses = AddressReader::from_shared(conventions.into_iter().map(Arc::new).collect())
            .missing_correlation_id(s.missing_correlation_id)
            .max_correlation_id_len(s.max_correlation_id_len);

        let mut common = ClientConfig::new();
        common.set("bootstrap.servers", &bootstrap);
        apply(&mut common, &self.client_config)?;

        let consumer = consumer_config(&common, &group, &self.consumer_config)?;

        let producer = producer_config(common, &self.producer_config)?;
        let mut settings = self.settings;
        let producer = match &settings.transactional_id {
            Some(id) => {
                let (producer, timeout) = transactional(producer, id, settings.commit_interval)?;
                settings.transaction_timeout = timeout;
                producer
            }
            None => producer,
        };

        Responder::new(
            consumer,
            producer,
            self.routes,
            self.ordering,
            policy,
            addresses,
            settings,
        )
    }
}

/// The consumer's configuration: `common` plus the group, bounded prefetch defaults,
/// the user's properties (which may override the defaults), and the offset handling
/// the responder's at-least-once guarantee needs (which they may not).
fn consumer_config(
    common: &ClientConfig,
    group: &str,
    user: &[(String, String)],
) -> Result<ClientConfig, Error> {
    if common.get("group.id").is_some() || user.iter().any(|(k, _)| k == "group.id") {
        // The group is the responder's identity (its commits, its metadata, its
        // replicas): one setting names it.
        return Err(Error::config(
            "group.id is set with group_id(..) (RESPONDER_GROUP_ID), not as a client property",
        ));
    }
    let mut consumer = common.clone();
    consumer
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // librdkafka prefetches up to 100,000 records per partition (64 MiB), and up to
        // 1 MiB per partition per fetch: memory would grow with the backlog. These keep
        // the prefetch small and flat.
        .set("queued.min.messages", PREFETCH_RECORDS)
        .set("queued.max.messages.kbytes", PREFETCH_KIB)
        .set("max.partition.fetch.bytes", PARTITION_FETCH_BYTES)
        // ...and a full prefetch queue is checked again after 10 ms, not 1 s
        // (librdkafka's default, which with a small queue caps a partition at ~2000
        // records a second).
        .set("fetch.queue.backoff.ms", PREFETCH_BACKOFF_MS);
    apply(&mut consumer, user)?;
    if consumer
        .get("group.protocol")
        .is_some_and(|p| p.eq_ignore_ascii_case("consumer"))
    {
        // Under KIP-848 the broker owns these; librdkafka refuses them.
        if let Some(key) = CLASSIC_ONLY.iter().find(|k| consumer.get(k).is_some()) {
            return Err(Error::config(format!(
                "{key} cannot be set with group.protocol=consumer (KIP-848): the broker \
                 owns it there (group.consumer.* settings)"
            )));
        }
    }
    consumer
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    Ok(consumer)
}

/// Consumer properties of the classic group protocol only.
const CLASSIC_ONLY: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "group.protocol.type",
];

/// The producer's configuration: `common`, a 1 ms linger, a 2-minute delivery timeout
/// per attempt (a reply that times out is retried, see `runtime::delivery`), the
/// user's properties, and what the guarantees need.
fn producer_config(common: ClientConfig, user: &[(String, String)]) -> Result<ClientConfig, Error> {
    let mut producer = common;
    producer
        .set("linger.ms", "1")
        .set("message.timeout.ms", DELIVERY_TIMEOUT_MS);
    apply(&mut producer, user)?;
    if producer.get("transactional.id").is_some() {
        // A transactional producer the runtime does not drive would refuse every reply.
        return Err(Error::config(
            "transactional.id is set through exactly_once(..) \
             (RESPONDER_TRANSACTIONAL_ID), not as a client property",
        ));
    }
    producer
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("allow.auto.create.topics", "false");
    Ok(producer)
}

/// The reply producer of exactly-once replies: `producer` with `transactional_id`, a
/// transaction timeout, and a delivery timeout no longer than it (librdkafka's rule).
/// Refuses timeouts that would let a transaction time out between two commits. Also
/// returns the transaction timeout.
fn transactional(
    mut producer: ClientConfig,
    transactional_id: &str,
    commit_interval: Duration,
) -> Result<(ClientConfig, Duration), Error> {
    if transactional_id.trim().is_empty() {
        return Err(Error::config("the transactional id is empty"));
    }
    let millis = |key: &str, default: &str| -> Result<u64, Error> {
        let v = producer.get(key).unwrap_or(default);
        v.parse()
            .map_err(|_| Error::config(format!("{key}={v} is not a number of milliseconds")))
    };
    let txn_timeout = millis("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)?;
    // The default 2-minute delivery timeout exceeds a transaction's: lowered to it
    // unless the user chose one.
    let user_delivery = producer.get("message.timeout.ms") != Some(DELIVERY_TIMEOUT_MS);
    let delivery = if user_delivery {
        millis("message.timeout.ms", DELIVERY_TIMEOUT_MS)?
    } else {
        txn_timeout
    };
    if delivery > txn_timeout {
        return Err(Error::config(format!(
            "message.timeout.ms={delivery} exceeds transaction.timeout.ms={txn_timeout}: \
             a reply could outlive its transaction (librdkafka refuses it)"
        )));
    }
    // A transaction stays open for an interval, then its commit may wait a quarter
    // of the timeout for replies in flight and as long for the broker.
    if commit_interval.as_millis() * 4 > u128::from(txn_timeout) {
        return Err(Error::config(format!(
            "the commit interval ({} ms) must be at most a quarter of \
             transaction.timeout.ms ({txn_timeout} ms): a transaction stays open for an \
             interval plus its commit",
            commit_interval.as_millis()
        )));
    }
    producer
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", txn_timeout.to_string())
        .set("message.timeout.ms", delivery.to_string());
    Ok((producer, Duration::from_millis(txn_timeout)))
}

/// `transaction.timeout.ms` of exactly-once replies unless set: Kafka's default.
const TRANSACTION_TIMEOUT_MS: &str = "60000";

/// `message.timeout.ms` of the reply producer: 2 minutes per attempt (librdkafka's
/// default is 5). A timed-out reply is retried, so this only sets how often a reply
/// stuck in an outage is looked at again.
const DELIVERY_TIMEOUT_MS: &str = "120000";

/// Records per partition librdkafka keeps prefetched (`queued.min.messages`).
const PREFETCH_RECORDS: &str = "2000";
/// Bound on all prefetched records, in KiB (`queued.max.messages.kbytes`).
const PREFETCH_KIB: &str = "16384";
/// How long a partition's fetching waits when its prefetch is full
/// (`fetch.queue.backoff.ms`).
const PREFETCH_BACKOFF_MS: &str = "10";
/// Most bytes one fetch returns per partition (`max.partition.fetch.bytes`).
const PARTITION_FETCH_BYTES: &str = "262144";

/// Applies user properties, refusing those that fight the responder's guarantees.
fn apply(config: &mut ClientConfig, props: &[(String, String)]) -> Result<(), Error> {
    for (key, value) in props {
        if let Some((_, required)) = GUARDED.iter().find(|(k, _)| k == key) {
            let same = match *required {
                "all" => value == "all" || value == "-1",
                r => value.eq_ignore_ascii_case(r),
            };
            if !same {
                return Err(Error::config(format!(
                    "{key}={value} is not allowed: the responder needs {key}={required}"
                )));
            }
        }
        config.set(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn exactly_once_sets_the_transaction_and_refuses_what_would_break_it() {
        let base = || producer_config(ClientConfig::new(), &[]).expect("valid");
        let second = Duration::from_secs(1);
        let (p, timeout) = transactional(base(), "kyc-0", second).expect("valid");
        assert_eq!(timeout, Duration::from_secs(60));
        assert_eq!(p.get("transactional.id"), Some("kyc-0"));
        assert_eq!(
            p.get("transaction.timeout.ms"),
            Some(TRANSACTION_TIMEOUT_MS)
        );
        assert_eq!(p.get("message.timeout.ms"), Some(TRANSACTION_TIMEOUT_MS));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        let with = |pairs: &[(&str, &str)]| {
            producer_config(ClientConfig::new(), &props(pairs)).expect("valid")
        };
        let own = producer_config(ClientConfig::new(), &props(&[("transactional.id", "t")]));
        assert!(own.is_err_and(|e| e.to_string().contains("exactly_once")));
        let (p, _) = transactional(with(&[("message.timeout.ms", "20000")]), "t", second)
            .expect("a shorter delivery timeout is kept");
        assert_eq!(p.get("message.timeout.ms"), Some("20000"));
        for (producer, interval, why) in [
            (base(), second, "empty id"),
            (with(&[("message.timeout.ms", "90000")]), second, "exceeds"),
            (
                with(&[("transaction.timeout.ms", "soon")]),
                second,
                "not a number",
            ),
            (base(), Duration::from_secs(16), "commit interval"),
        ] {
            let id = if why == "empty id" { " " } else { "t" };
            let err = transactional(producer, id, interval)
                .expect_err(why)
                .to_string();
            let needle = if why == "empty id" { "empty" } else { why };
            assert!(err.contains(needle), "{why}: {err}");
        }
    }

    #[test]
    fn the_consumer_prefetch_is_bounded_unless_the_user_says_otherwise() {
        let common = ClientConfig::new();
        let c = consumer_config(&common, "g", &[]).expect("valid");
        assert_eq!(c.get("queued.min.messages"), Some(PREFETCH_RECORDS));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some(PREFETCH_KIB));
        assert_eq!(
            c.get("max.partition.fetch.bytes"),
            Some(PARTITION_FETCH_BYTES)
        );
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some(PREFETCH_BACKOFF_MS));
        let user = props(&[("queued.min.messages", "50000")]);
        let c = consumer_config(&common, "g", &user).expect("valid");
        assert_eq!(c.get("queued.min.messages"), Some("50000"));
        assert_eq!(c.get("group.id"), Some("g"));
        // The group is named once, by group_id(..): not overridden by a property.
        let err = consumer_config(&common, "g", &props(&[("group.id", "mine")]))
            .expect_err("group.id as a consumer property");
        assert!(err.to_string().contains("group_id"), "{err}");
        let mut with_group = ClientConfig::new();
        with_group.set("group.id", "mine");
        assert!(consumer_config(&with_group, "g", &[]).is_err());
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn classic_group_settings_are_refused_under_kip_848() {
        let common = ClientConfig::new();
        let kip848 = ("group.protocol", "consumer");
        for key in CLASSIC_ONLY {
            let err = consumer_config(&common, "g", &props(&[kip848, (key, "1")]))
                .expect_err(key)
                .to_string();
            assert!(err.contains(key) && err.contains("KIP-848"), "{err}");
            // The classic protocol takes them.
            consumer_config(&common, "g", &props(&[(key, "1")])).expect(key);
        }
        let c = consumer_config(&common, "g", &props(&[kip848])).expect("valid");
        assert_eq!(c.get("group.protocol"), Some("consumer"));
    }

    #[test]
    fn the_reply_producer_has_a_delivery_timeout_per_attempt_the_user_may_change() {
        let p = producer_config(ClientConfig::new(), &[]).expect("valid");
        let timeout: u64 = p
            .get("message.timeout.ms")
            .and_then(|v| v.parse().ok())
            .expect("set");
        assert!(
            timeout < 300_000,
            "{timeout} ms is not below max.poll.interval.ms"
        );
        let user = props(&[("message.timeout.ms", "30000"), ("acks", "all")]);
        let p = producer_config(ClientConfig::new(), &user).expect("valid");
        assert_eq!(p.get("message.timeout.ms"), Some("30000"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
    }
}
