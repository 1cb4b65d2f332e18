//! Building a [`Responder`]: where to connect, what to answer, and the bounds it keeps.
//!
//! The builder's own setters name the connection (bootstrap servers, group, client
//! properties, exactly-once) and what is answered (routes, the default ordering, the
//! reply-topic policy). The rest comes in groups, each a type of its own:
//! [`Bounds`] (in flight, sizes, timeouts), [`ReplyChecks`] (reading and checking
//! reply addresses), [`DeadLetters`] (dead letters and deadlines) and [`Operations`]
//! (metrics, trace context, HTTP). `build()` refuses every combination that would break
//! a guarantee, saying why.

mod bounds;
mod clients;
mod dead_letters;
mod operations;
mod reply_checks;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;

pub use bounds::Bounds;
pub use dead_letters::DeadLetters;
pub use operations::Operations;
pub use reply_checks::{ReplyChecks, UnknownWriteAccess};

use crate::address::AddressReader;
use crate::codec::Codec;
use crate::error::Error;
use crate::headers::HeaderConvention;
use crate::ordering::HandlingOrder;
use crate::policy::ReplyTopicPolicy;
use crate::router::Route;
use crate::runtime::Responder;
use crate::topic::{is_internal_topic, validate_topic_name};

use clients::{apply, consumer_config, producer_config, transactional};

/// The settings the runtime reads: the groups, and exactly-once's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) bounds: Bounds,
    pub(crate) checks: ReplyChecks,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) operations: Operations,
    /// With exactly-once replies: the reply producer's `transactional.id`.
    pub(crate) transactional_id: Option<String>,
    /// With exactly-once replies: the producer's `transaction.timeout.ms` (set by
    /// `build()`).
    pub(crate) transaction_timeout: Duration,
}

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

    /// Default ordering of routes that set none. Default: [`HandlingOrder::Key`].
    pub fn ordering(mut self, ordering: HandlingOrder) -> Self {
        self.ordering = ordering;
        self
    }

    /// Bounds and timeouts: requests in flight, request size, handler, drain and
    /// commit timings. See [`Bounds`].
    pub fn bounds(mut self, set: impl FnOnce(Bounds) -> Bounds) -> Self {
        self.settings.bounds = set(self.settings.bounds);
        self
    }

    /// How reply addresses are read and what the broker is asked about them. See
    /// [`ReplyChecks`].
    pub fn reply_checks(mut self, set: impl FnOnce(ReplyChecks) -> ReplyChecks) -> Self {
        self.settings.checks = set(self.settings.checks);
        self
    }

    /// Dead letters and deadlines. See [`DeadLetters`].
    pub fn dead_letters(mut self, set: impl FnOnce(DeadLetters) -> DeadLetters) -> Self {
        self.settings.dead_letters = set(self.settings.dead_letters);
        self
    }

    /// Metrics, trace context and the HTTP endpoints. See [`Operations`].
    pub fn operations(mut self, set: impl FnOnce(Operations) -> Operations) -> Self {
        self.settings.operations = set(self.settings.operations);
        self
    }

    /// Exactly-once replies: each reply is produced inside a Kafka transaction that
    /// also commits its request's offset (one transaction per
    /// [commit interval](Bounds::commit_interval)), so a requester reading with
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

    /// Sets a librdkafka property on both the consumer and the producer. It wins over
    /// the responder's defaults (the bounded prefetch, the reply producer's delivery
    /// timeout), and a property of one client wins over it.
    pub fn client_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client_config.push((key.into(), value.into()));
        self
    }

    /// Sets a librdkafka property on the consumer only.
    pub fn consumer_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.consumer_config.push((key.into(), value.into()));
        self
    }

    /// Sets a librdkafka property on the producer only. The reply producer sends each
    /// reply at once (`linger.ms=0`: a requester is waiting for it);
    /// `producer_config("linger.ms", "5")` trades that for larger batches.
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
        if let Some(dlq) = &self.settings.dead_letters.topic {
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
        let conventions = self.settings.checks.conventions.clone().unwrap_or_else(|| {
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
        let (b, c, d) = (
            &self.settings.bounds,
            &self.settings.checks,
            &self.settings.dead_letters,
        );
        if b.max_in_flight == 0 || b.max_in_flight_per_partition == 0 || b.max_in_flight_bytes == 0
        {
            return Err(Error::config("in-flight bounds must be at least 1"));
        }
        if b.handler_timeout.is_zero()
            || self
                .routes
                .iter()
                .any(|r| r.own_handler_timeout().is_some_and(|t| t.is_zero()))
        {
            return Err(Error::config("the handler timeout must be positive"));
        }
        if b.commit_interval.is_zero() {
            return Err(Error::config("commit interval must be positive"));
        }
        if c.cache_ttl.is_zero() {
            return Err(Error::config("the reply-topic cache TTL must be positive"));
        }
        if c.max_correlation_id_len == 0 {
            return Err(Error::config("the correlation id bound must be at least 1"));
        }
        if d.deadlines.max_age.is_some_and(|a| a.is_zero()) {
            return Err(Error::config("the maximum request age must be positive"));
        }
        if d.deadlines
            .header
            .as_deref()
            .is_some_and(|h| h.trim().is_empty())
        {
            return Err(Error::config("the deadline header name is empty"));
        }
        let addresses = AddressReader::from_shared(conventions.into_iter().map(Arc::new).collect())
            .missing_correlation_id(c.missing_correlation_id)
            .max_correlation_id_len(c.max_correlation_id_len);

        let mut common = ClientConfig::new();
        common.set("bootstrap.servers", &bootstrap);
        apply(&mut common, &self.client_config)?;

        let consumer = consumer_config(&common, &group, &self.consumer_config)?;
        let max_poll_interval = clients::max_poll_interval(&consumer)?;
        if self.settings.bounds.drain_timeout >= max_poll_interval {
            return Err(Error::config(format!(
                "the drain timeout ({} ms) must be below max.poll.interval.ms ({} ms): a \
                 revocation drains inside the rebalance callback, where the consumer does \
                 not poll, and a member that has not polled for max.poll.interval.ms is \
                 removed from the group mid-drain (its requests answered twice)",
                self.settings.bounds.drain_timeout.as_millis(),
                max_poll_interval.as_millis()
            )));
        }

        let producer = producer_config(common, &self.producer_config)?;
        let mut settings = self.settings;
        let producer = match &settings.transactional_id {
            Some(id) => {
                let (producer, timeout) =
                    transactional(producer, id, settings.bounds.commit_interval)?;
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
