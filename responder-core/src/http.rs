//! `/metrics`, `/livez` and `/readyz` over HTTP (feature `http`), on one small hyper
//! server that runs and stops with the responder.
//!
//! - `GET /metrics`: the Prometheus metrics, in the OpenMetrics text format.
//! - `GET /livez`: 200 `ok` when live, else 503 with the reason (see [`crate::health`]).
//! - `GET /readyz`: 200 `ok` when ready, else 503 with the reason.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::error::Error;
use crate::health::Health;
use crate::metrics::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound listener, served once the responder runs.
#[derive(Debug)]
pub(crate) struct HttpServer {
    listener: std::net::TcpListener,
}

impl HttpServer {
    /// Binds `addr` now, so that a taken port fails `build()`.
    pub(crate) fn bind(addr: SocketAddr) -> Result<Self, Error> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|e| Error::Http { addr, source: e })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Http { addr, source: e })?;
        Ok(HttpServer { listener })
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until the returned guard is dropped (with the run, however it ends): the
    /// listener closes and every open connection is dropped.
    pub(crate) fn spawn(
        self,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Result<Serving, Error> {
        let addr = self.local_addr();
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(|e| Error::Http {
                addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                source: e,
            })?;
        tracing::info!(?addr, "serving /metrics, /livez and /readyz");
        Ok(Serving(tokio::spawn(async move {
            // Dropped with this task: aborts every connection's task.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an HTTP connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (metrics, health) = (Arc::clone(&metrics), Arc::clone(&health));
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let response = respond(&req, &metrics, &health);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                });
            }
        })))
    }
}

/// The running server; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn respond(req: &Request<Incoming>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(metrics.encode_prometheus())));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            r
        }
        "/livez" => check(health.live()),
        "/readyz" => check(health.ready()),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn check(result: Result<(), String>) -> Response<Full<Bytes>> {
    match result {
        Ok(()) => text(StatusCode::OK, "ok\n".into()),
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
