//! The running responder: a consumer thread that polls the broker, and a dispatcher
//! task that runs requests, commits watermarks and drains on revocation and shutdown.

mod acks;
mod admitted_topics;
mod cancel;
mod consumer;
mod dead_letter;
mod delivery;
mod dispatcher;
mod lanes;
mod ledger;
mod mailbox;
mod pauses;
mod permits;
mod recent_topics;
mod records;
mod reply_topics;
mod request;
mod ticket;
mod time_limit;
mod topic_handles;
mod transaction;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::watch;

use self::acks::{Acks, ReplyProducer};
use self::consumer::{ConsumerCx, ConsumerThread, Event};
use self::dispatcher::{Dispatcher, Ended};
use self::pauses::Pauses;
use self::permits::Permits;
use self::reply_topics::ReplyTopics;
use self::topic_handles::TopicHandles;
use crate::address::AddressReader;
use crate::config::{ResponderBuilder, Settings};
use crate::deadline::DeadlineRules;
use crate::error::Error;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::ordering::HandlingOrder;
use crate::policy::ReplyTopicPolicy;
use crate::router::{Route, Router};

pub use self::dead_letter::{
    DLQ_HEADER_PREFIX, DLQ_MESSAGE_HEADER, DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER,
    DLQ_REASON_HEADER, DLQ_TIME_HEADER, DLQ_TOPIC_HEADER,
};

/// What every request task shares.
pub(crate) struct Shared {
    pub(crate) router: Router,
    pub(crate) addresses: AddressReader,
    pub(crate) deadlines: DeadlineRules,
    pub(crate) max_request_bytes: Option<usize>,
    pub(crate) policy: ReplyTopicPolicy,
    /// Each thread's last verdict of `policy` and the built-in rules.
    pub(crate) admitted: admitted_topics::AdmittedTopics,
    pub(crate) reply_topics: ReplyTopics,
    pub(crate) producer: ReplyProducer,
    /// The producer's handles for the topics it produces to.
    pub(crate) topics: TopicHandles,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    /// Whether trace context goes from request to reply.
    pub(crate) trace_context: bool,
    /// Where unanswerable requests are copied, if anywhere.
    pub(crate) dead_letter_topic: Option<String>,
    /// With exactly-once replies: the gate between replies and the transaction's
    /// commit (see `transaction`).
    pub(crate) transaction: Option<Arc<transaction::TransactionGate>>,
    /// Set when the reply producer failed for good (a fatal error): the responder
    /// stops with it.
    pub(crate) producer_failed: watch::Sender<Option<String>>,
}

/// A responder, built and ready to run. See [`Responder::builder`].
pub struct Responder {
    shared: Arc<Shared>,
    consumer: Arc<BaseConsumer<ConsumerCx>>,
    pauses: Arc<Pauses>,
    events_tx: mailbox::Sender<Event>,
    events: mailbox::Receiver<Event>,
    settings: Settings,
    /// Turns true once the consumer has left the group (however the run ended).
    closed: (watch::Sender<bool>, watch::Receiver<bool>),
    #[cfg(feature = "http")]
    http: Option<crate::http::HttpServer>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("topics", &self.shared.router.topics().collect::<Vec<_>>())
            .field("policy", &self.shared.policy.to_string())
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Starts building a responder.
    pub fn builder() -> ResponderBuilder {
        ResponderBuilder::default()
    }

    pub(crate) fn new(
        consumer_config: ClientConfig,
        producer_config: ClientConfig,
        routes: Vec<Route>,
        ordering: HandlingOrder,
        policy: ReplyTopicPolicy,
        addresses: AddressReader,
        settings: Settings,
    ) -> Result<Self, Error> {
        let (events_tx, events) = mailbox::mailbox();
        let pauses = Arc::new(Pauses::default());
        let metrics = Arc::new(Metrics::default());
        let health = Arc::new(Health::default());
        #[cfg(feature = "http")]
        let http = settings
            .operations
            .http_addr
            .map(crate::http::HttpServer::bind)
            .transpose()?;
        let cx = ConsumerCx::new(
            events_tx.clone(),
            Arc::clone(&pauses),
            Arc::clone(&metrics),
            Arc::clone(&health),
        );
        let consumer: BaseConsumer<ConsumerCx> = consumer_config
            .create_with_context(cx)
            .map_err(|e| Error::kafka("creating the consumer", e))?;
        let producer: ReplyProducer = Arc::new(
            producer_config
                .create_with_context(Acks)
                .map_err(|e| Error::kafka("creating the producer", e))?,
        );
        Ok(Responder {
            shared: Arc::new(Shared {
                router: Router::new(
                    routes,
                    ordering,
                    settings.bounds.handler_timeout,
                    &metrics,
                    settings.operations.prometheus_metrics,
                ),
                addresses,
                deadlines: settings.dead_letters.deadlines.clone(),
                max_request_bytes: settings.bounds.max_request_bytes,
                policy,
                admitted: admitted_topics::AdmittedTopics::new(),
                reply_topics: ReplyTopics::new(
                    settings.checks.cache_ttl,
                    settings.checks.write_access,
                ),
                topics: TopicHandles::new(Arc::clone(&producer)),
                producer,
                metrics,
                health,
                trace_context: settings.operations.trace_context,
                dead_letter_topic: settings.dead_letters.topic.clone(),
                transaction: settings.transactional_id.is_some().then(Arc::default),
                producer_failed: watch::channel(None).0,
            }),
            consumer: Arc::new(consumer),
            pauses,
            events_tx,
            events,
            settings,
            closed: watch::channel(false),
            #[cfg(feature = "http")]
            http,
        })
    }

    /// Turns true once the responder's consumer has left the group, whether the run
    /// ended by shutdown or by the run future being dropped.
    #[cfg(feature = "testkit")]
    pub(crate) fn closed(&self) -> watch::Receiver<bool> {
        self.closed.1.clone()
    }

    /// Where `/metrics`, `/livez` and `/readyz` are served, when
    /// [`http_addr`](crate::Operations::http_addr) was set.
    #[cfg(feature = "http")]
    pub fn http_local_addr(&self) -> Option<std::net::SocketAddr> {
        self.http
            .as_ref()
            .and_then(crate::http::HttpServer::local_addr)
    }

    /// Liveness and readiness, for a service that serves its own probes (the `http`
    /// feature serves them as `/livez` and `/readyz`).
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.shared.health)
    }

    /// The responder's counters, readable while it runs.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Serves until `shutdown` resolves, then drains: stops fetching, finishes the
    /// requests in flight (up to the drain timeout), commits, and leaves the group.
    /// The drain, the final commit and the group leave each have a bound, so this
    /// returns within the drain timeout plus about 10 s whatever the broker does.
    ///
    /// Dropping the returned future instead is a crash as far as the group is
    /// concerned: nothing more is committed, and unsettled requests are handled again
    /// by the next owner of their partitions.
    ///
    /// Fails when the consumer side fails (a panic in the consumer thread or one of
    /// its callbacks), after leaving the group.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        self.serve(shutdown, std::future::pending()).await
    }

    /// Serves until SIGTERM or ctrl-c (see [`shutdown_signal`]), then drains as
    /// [`run_until`](Self::run_until) does. A second SIGTERM or ctrl-c during the
    /// drain exits at once (what was not committed is answered again by the next
    /// owner).
    pub async fn run(self) -> Result<(), Error> {
        let signals = stop_signals();
        let mut first = signals.clone();
        let mut second = signals;
        self.serve(
            async move {
                let _ = first.wait_for(|n| *n >= 1).await;
            },
            async move {
                let _ = second.wait_for(|n| *n >= 2).await;
            },
        )
        .await
    }

    async fn serve(
        self,
        shutdown: impl Future<Output = ()>,
        force: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        if self.shared.transaction.is_some() {
            transaction::init(self.shared.producer.clone())
                .await
                .map_err(|e| Error::kafka("starting the reply producer's transactions", e))?;
        }
        let topics: Vec<&str> = self.shared.router.topics().collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|e| Error::kafka("subscribing to the request topics", e))?;
        tracing::info!(?topics, policy = %self.shared.policy, "responder started");
        if self.shared.policy.allows_every_topic() {
            tracing::warn!(
                policy = %self.shared.policy,
                "the reply-topic policy allows every topic: any requester can make this \
                 service write wherever its account may; narrow it with `&` / `and`"
            );
        }

        #[cfg(feature = "http")]
        let http = match self.http {
            Some(server) => Some(server.spawn(
                Arc::clone(&self.shared.metrics),
                Arc::clone(&self.shared.health),
            )?),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (final_tx, final_rx) = std::sync::mpsc::channel();
        let thread = ConsumerThread {
            consumer: Arc::clone(&self.consumer),
            events: self.events_tx,
            permits: Permits::new(
                self.settings.bounds.max_in_flight,
                self.settings.bounds.max_in_flight_bytes,
            ),
            stop: Arc::clone(&stop),
            final_offsets: final_rx,
            closed: self.closed.0,
            topics: self.shared.router.topic_names().cloned().collect(),
        };
        let handle = std::thread::Builder::new()
            .name("responder-consumer".into())
            .spawn(move || thread.run())
            .map_err(|e| Error::ConsumerThread(e.to_string()))?;
        let dispatcher = Dispatcher::new(
            Arc::clone(&self.shared),
            self.consumer,
            self.pauses,
            self.settings,
            self.events,
            stop,
            final_tx,
        );
        let (ended, mut dispatcher) = dispatch(dispatcher, shutdown, force).await;
        let failure = dispatcher.failure.take();
        // rust-rdkafka's consumer drop waits for the group leave without a bound: if
        // the dispatcher still holds a reference (a failure, or a forced exit), it is
        // released off the async runtime, in case it is the last one.
        if let Some(consumer) = dispatcher.release_consumer() {
            let _ = std::thread::Builder::new()
                .name("responder-consumer-drop".into())
                .spawn(move || drop(consumer));
        }
        drop(dispatcher);
        match ended {
            // The thread sent `Closed` as its last act but one (dropping a consumer
            // that has left is quick): this join does not block for long.
            Ended::Closed { left: true } => {
                if handle.join().is_err() {
                    return Err(Error::ConsumerThread("the consumer thread panicked".into()));
                }
            }
            // Still trying to leave (or forced): not waited for; it ends with the
            // process.
            Ended::Closed { left: false } | Ended::CloseTimedOut | Ended::Forced => {}
        }
        #[cfg(feature = "http")]
        drop(http);
        tracing::info!(metrics = ?self.shared.metrics.snapshot(), "responder stopped");
        match failure {
            Some(why) => Err(Error::ConsumerThread(why)),
            None => Ok(()),
        }
    }
}

/// Runs the dispatcher as a task of the runtime, beside the requests' workers: their
/// reports then wake it on the thread they run on (run in the caller's task, it was
/// woken across threads, a futex call each time, for about a third of the responder's
/// system calls). The caller's `shutdown` and `force` (which need not be `Send`) are
/// awaited here and passed on.
///
/// Dropping the returned future aborts the task: a crash, as the docs of
/// [`Responder::run_until`] say. The abort takes effect when the runtime next polls
/// the task, so the consumer thread's mailbox is closed at once: the thread stops
/// polling (and answering revocations) then, as it did when the dispatcher was dropped
/// in place. A panic in the dispatcher resumes here.
async fn dispatch(
    mut dispatcher: Dispatcher,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> (Ended, Dispatcher) {
    // 1: shut down; 2: exit at once.
    let (stop_tx, stop_rx) = watch::channel(0u8);
    let at_least = |mut rx: watch::Receiver<u8>, stage: u8| async move {
        if rx.wait_for(|s| *s >= stage).await.is_err() {
            // The caller is gone: the task is being aborted.
            std::future::pending::<()>().await;
        }
    };
    let (shutdown_rx, force_rx) = (at_least(stop_rx.clone(), 1), at_least(stop_rx, 2));
    let mut close_events = CloseOnDrop(Some(dispatcher.events_closer()));
    let mut task = AbortOnDrop(tokio::spawn(async move {
        let ended = dispatcher.run(shutdown_rx, force_rx).await;
        (ended, dispatcher)
    }));
    let (mut shutdown, mut force) = (std::pin::pin!(shutdown), std::pin::pin!(force));
    let (mut shutdown_seen, mut force_seen) = (false, false);
    loop {
        tokio::select! {
            joined = &mut task.0 => match joined {
                Ok(done) => {
                    close_events.0 = None;
                    return done;
                }
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // Cancelled: only the runtime shutting down cancels it (this
                    // future still holds the handle), and nothing runs after that.
                    Err(e) => panic!("the responder's dispatcher was cancelled: {e}"),
                },
            },
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                stop_tx.send_modify(|s| *s = (*s).max(1));
            }
            () = &mut force, if !force_seen => {
                force_seen = true;
                stop_tx.send_modify(|s| *s = 2);
            }
        }
    }
}

/// Closes the consumer thread's mailbox when dropped, unless disarmed.
struct CloseOnDrop(Option<mailbox::Closer<Event>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(closer) = self.0.take() {
            closer.close();
        }
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts SIGTERM and ctrl-c (SIGINT) from now on.
fn stop_signals() -> watch::Receiver<u32> {
    let (tx, rx) = watch::channel(0u32);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                while !tx.is_closed() {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    tx.send_modify(|n| *n += 1);
                }
                return;
            }
        }
        while !tx.is_closed() && tokio::signal::ctrl_c().await.is_ok() {
            tx.send_modify(|n| *n += 1);
        }
    });
    rx
}

/// Resolves on SIGTERM or ctrl-c (SIGINT).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
