//! [`Operations`]: what the responder shows of itself: metrics, trace context, and the
//! HTTP endpoints.

/// Metrics, trace context and the HTTP endpoints, set with
/// [`ResponderBuilder::operations`](crate::ResponderBuilder::operations).
///
/// ```
/// use responder_core::Responder;
///
/// let builder = Responder::builder().operations(|o| o.trace_context(false));
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Operations {
    pub(crate) prometheus_metrics: bool,
    pub(crate) trace_context: bool,
    #[cfg(feature = "http")]
    pub(crate) http_addr: Option<std::net::SocketAddr>,
}

impl Default for Operations {
    fn default() -> Self {
        Operations {
            prometheus_metrics: true,
            trace_context: true,
            #[cfg(feature = "http")]
            http_addr: None,
        }
    }
}

impl Operations {
    /// Serves `/metrics` (Prometheus), `/livez` and `/readyz` on `addr` (port 0: any
    /// free port, see [`Responder::http_local_addr`](crate::Responder::http_local_addr))
    /// while the responder runs. The address is bound by
    /// [`build`](crate::ResponderBuilder::build). See the README's health rules.
    #[cfg(feature = "http")]
    pub fn http_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.http_addr = Some(addr);
        self
    }

    /// Whether each request is counted and timed in the Prometheus metrics (requests by
    /// outcome, dead letters, retries, timeouts, panics and the three histograms).
    /// Default on. Off, those series stay empty; the gauges, rebalance and commit
    /// counters and the in-process [`MetricsSnapshot`](crate::MetricsSnapshot) are
    /// still kept.
    pub fn prometheus_metrics(mut self, on: bool) -> Self {
        self.prometheus_metrics = on;
        self
    }

    /// Whether W3C trace context (`traceparent`, `tracestate`) goes from each request
    /// to its reply (see the README's trace-context rules). Default on. Off, the
    /// headers are not read and replies carry none.
    pub fn trace_context(mut self, on: bool) -> Self {
        self.trace_context = on;
        self
    }
}
