//! Routes: which handler answers which request topic.

use foldhash::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::Codec;
use crate::endpoint::{Endpoint, Served};
use crate::handler::Handler;
use crate::metrics::{Metrics, TopicMetrics};
use crate::ordering::HandlingOrder;

/// A request topic bound to a handler and the codec of its payloads, and optionally its
/// own ordering and handler timeout.
///
/// ```
/// # use responder_core::{ErrorReply, Handler, RequestContext};
/// use responder_core::{Json, HandlingOrder, Route};
/// # struct Echo;
/// # impl Handler for Echo {
/// #     type Request = String; type Reply = String; type Error = ErrorReply;
/// #     async fn handle(&self, r: String, _: &RequestContext) -> Result<String, ErrorReply> { Ok(r) }
/// # }
/// let route = Route::new("echo-requests", Json, Echo).ordering(HandlingOrder::Partition);
/// assert_eq!(route.topic(), "echo-requests");
/// ```
#[derive(Clone)]
pub struct Route {
    topic: String,
    endpoint: Arc<dyn Endpoint>,
    ordering: Option<HandlingOrder>,
    handler_timeout: Option<Duration>,
}

impl Route {
    /// Routes requests of `topic` to `handler`, their payloads read and the replies
    /// written by `codec` ([`Json`](crate::Json), [`Raw`](crate::Raw), `Bincode`, or
    /// your own [`Codec`]).
    pub fn new<C, H>(topic: impl Into<String>, codec: C, handler: H) -> Self
    where
        H: Handler,
        C: Codec<H::Request, H::Reply>,
    {
        Route {
            topic: topic.into(),
            endpoint: Arc::new(Served { codec, handler }),
            ordering: None,
            handler_timeout: None,
        }
    }

    /// Sets this route's ordering (otherwise the responder's default applies).
    pub fn ordering(mut self, ordering: HandlingOrder) -> Self {
        self.ordering = Some(ordering);
        self
    }

    /// Sets this route's handler timeout (otherwise the responder's
    /// [`handler_timeout`](crate::Bounds::handler_timeout) applies).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = Some(timeout);
        self
    }

    /// The request topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// This route's own handler timeout, if it sets one.
    pub(crate) fn own_handler_timeout(&self) -> Option<Duration> {
        self.handler_timeout
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("topic", &self.topic)
            .field("ordering", &self.ordering)
            .field("handler_timeout", &self.handler_timeout)
            .finish_non_exhaustive()
    }
}

/// A type that knows its own request topics and codec: what `#[derive(Handler)]`
/// generates. Register it with [`ResponderBuilder::handler`](crate::ResponderBuilder::handler).
pub trait IntoRoutes {
    /// The request topics, as the derive's attribute names them.
    const TOPICS: &'static [&'static str];

    /// One route per topic, all served by this handler.
    fn into_routes(self) -> Vec<Route>;
}

/// A route as the runtime serves it: the topic, its type-erased handler and codec, its
/// ordering, timeout and metrics.
pub(crate) struct ServedRoute {
    pub(crate) topic: Arc<str>,
    pub(crate) endpoint: Arc<dyn Endpoint>,
    pub(crate) ordering: HandlingOrder,
    pub(crate) handler_timeout: Duration,
    pub(crate) metrics: Arc<TopicMetrics>,
}

/// The routing table: request topic → handler.
pub(crate) struct Router {
    routes: HashMap<String, ServedRoute>,
}

impl Router {
    pub(crate) fn new(
        routes: Vec<Route>,
        default_ordering: HandlingOrder,
        default_handler_timeout: Duration,
        metrics: &Arc<Metrics>,
        prometheus: bool,
    ) -> Self {
        Router {
            routes: routes
                .into_iter()
                .map(|r| {
                    (
                        r.topic.clone(),
                        ServedRoute {
                            topic: Arc::from(r.topic.as_str()),
                            endpoint: r.endpoint,
                            ordering: r.ordering.unwrap_or(default_ordering),
                            handler_timeout: r.handler_timeout.unwrap_or(default_handler_timeout),
                            metrics: Arc::new(TopicMetrics::new(metrics, &r.topic, prometheus)),
                        },
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn get(&self, topic: &str) -> Option<&ServedRoute> {
        self.routes.get(topic)
    }

    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }
}
