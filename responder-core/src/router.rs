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

/// A route as the runtime serves it: the topic, its ordering, and what its requests
/// are served with.
pub(crate) struct ServedRoute {
    pub(crate) topic: Arc<str>,
    pub(crate) ordering: HandlingOrder,
    pub(crate) serving: Arc<Serving>,
}

/// What a route's requests are served with: its type-erased handler and codec, its
/// timeout and metrics. Each request holds it by one `Arc`.
pub(crate) struct Serving {
    pub(crate) endpoint: Arc<dyn Endpoint>,
    pub(crate) handler_timeout: Duration,
    pub(crate) metrics: TopicMetrics,
}

/// Up to this many routes, a topic is looked up by comparing it with each route's:
/// a length check and a short `memcmp` each, where hashing the name cost ~90
/// instructions (it is looked up twice per request: its route, and whether a reply
/// topic is a request topic).
const SCANNED: usize = 8;

/// The routing table: request topic → handler.
pub(crate) struct Router {
    routes: Vec<ServedRoute>,
    /// Each route's index in `routes`, by topic (used past [`SCANNED`] routes).
    index: HashMap<String, usize>,
}

impl Router {
    pub(crate) fn new(
        routes: Vec<Route>,
        default_ordering: HandlingOrder,
        default_handler_timeout: Duration,
        metrics: &Arc<Metrics>,
        prometheus: bool,
    ) -> Self {
        let mut index = HashMap::default();
        let mut served: Vec<ServedRoute> = Vec::new();
        for r in routes {
            let route = ServedRoute {
                topic: Arc::from(r.topic.as_str()),
                ordering: r.ordering.unwrap_or(default_ordering),
                serving: Arc::new(Serving {
                    endpoint: r.endpoint,
                    handler_timeout: r.handler_timeout.unwrap_or(default_handler_timeout),
                    metrics: TopicMetrics::new(metrics, &r.topic, prometheus),
                }),
            };
            // A topic routed twice keeps its last route, as a map insert would.
            match index.get(&r.topic) {
                Some(&i) => served[i] = route,
                None => {
                    index.insert(r.topic, served.len());
                    served.push(route);
                }
            }
        }
        Router {
            routes: served,
            index,
        }
    }

    /// The route of `topic`. A record's topic is the route's own name (see
    /// `received::Topics`): found by address before any name is compared.
    pub(crate) fn get(&self, topic: &str) -> Option<&ServedRoute> {
        if self.routes.len() <= SCANNED {
            let by_address = self.routes.iter().find(|r| std::ptr::eq(&*r.topic, topic));
            by_address.or_else(|| self.routes.iter().find(|r| *r.topic == *topic))
        } else {
            self.index.get(topic).map(|&i| &self.routes[i])
        }
    }

    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &*r.topic)
    }

    /// The routes' topics, as shared names.
    pub(crate) fn topic_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.routes.iter().map(|r| &r.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorReply, Json, RequestContext};

    struct Echo;

    impl Handler for Echo {
        type Request = String;
        type Reply = String;
        type Error = ErrorReply;

        async fn handle(&self, r: String, _: &RequestContext) -> Result<String, ErrorReply> {
            Ok(r)
        }
    }

    fn router(topics: &[String]) -> Router {
        let routes = topics.iter().map(|t| Route::new(t.as_str(), Json, Echo));
        Router::new(
            routes.collect(),
            HandlingOrder::Key,
            Duration::from_secs(1),
            &Arc::default(),
            false,
        )
    }

    /// Scanned (a few routes) or looked up in the map (many), a topic finds its own
    /// route, and only a routed topic finds one.
    #[test]
    fn every_topic_finds_its_route_however_many() {
        for n in [1, SCANNED, SCANNED + 1, 40] {
            let topics: Vec<String> = (0..n).map(|i| format!("requests-{i}")).collect();
            let router = router(&topics);
            for t in &topics {
                assert_eq!(router.get(t).map(|r| &*r.topic), Some(t.as_str()), "{n}");
            }
            for route in &router.routes {
                let found = router.get(&route.topic).expect("its own name");
                assert!(std::ptr::eq(found, route), "by its name's address");
            }
            assert!(router.get("requests").is_none());
            assert!(router.get(&format!("requests-{n}")).is_none());
            assert_eq!(router.topics().count(), n);
        }
    }
}
