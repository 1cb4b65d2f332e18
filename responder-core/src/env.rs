//! Configuration from the environment, as a twelve-factor service on Kubernetes takes
//! it: [`ResponderBuilder::from_env`](crate::ResponderBuilder::from_env) applies the
//! variables below, and [`request_topic`] names a route's topic. Every invalid value
//! is an [`Error::Env`](crate::Error::Env) naming its variable.
//!
//! | variable | builder setting | value |
//! |---|---|---|
//! | `KAFKA_BOOTSTRAP_SERVERS` | `bootstrap_servers` | `host:port,...` |
//! | `RESPONDER_GROUP_ID` | `group_id` | the consumer group |
//! | `RESPONDER_HEADERS` | `reply_checks`: `header_conventions` | `spring`, `smallrye`, `nestjs`, `plain`, comma-separated, in order |
//! | `RESPONDER_REPLY_ALLOW` | `reply_topics` | a [`PolicySource`](crate::PolicySource): entries (`NAME`, `PREFIX*`, `!` for deny), `file:PATH`, `kafka-acls:PATH#User:NAME`, `strimzi:PATH[#USER]` |
//! | `RESPONDER_MAX_IN_FLIGHT` | `bounds`: `max_in_flight` | a count, at least 1 |
//! | `RESPONDER_MAX_IN_FLIGHT_PER_PARTITION` | `bounds`: `max_in_flight_per_partition` | a count, at least 1 |
//! | `RESPONDER_MAX_IN_FLIGHT_BYTES` | `bounds`: `max_in_flight_bytes` | bytes, at least 1 |
//! | `RESPONDER_HANDLER_TIMEOUT_MS` | `bounds`: `handler_timeout` | milliseconds |
//! | `RESPONDER_DRAIN_TIMEOUT_MS` | `bounds`: `drain_timeout` | milliseconds |
//! | `RESPONDER_COMMIT_INTERVAL_MS` | `bounds`: `commit_interval` | milliseconds |
//! | `RESPONDER_MAX_REQUEST_AGE_MS` | `dead_letters`: `max_request_age` | milliseconds |
//! | `RESPONDER_MAX_REQUEST_BYTES` | `bounds`: `max_request_bytes` | bytes |
//! | `RESPONDER_DEAD_LETTER_TOPIC` | `dead_letters`: `topic` | a topic |
//! | `RESPONDER_FETCH_WAIT_MS` | consumer `fetch.wait.max.ms` | milliseconds |
//! | `RESPONDER_SESSION_TIMEOUT_MS` | consumer `session.timeout.ms` | milliseconds (classic group protocol only: under KIP-848 the broker sets it) |
//! | `RESPONDER_HTTP_ADDR` | `operations`: `http_addr` (feature `http`) | `host:port` |
//! | `RESPONDER_TRACE_CONTEXT` | `operations`: `trace_context` | `true` or `false` |
//! | `RESPONDER_PROMETHEUS_METRICS` | `operations`: `prometheus_metrics` | `true` or `false` |
//! | `RESPONDER_TRANSACTIONAL_ID` | `exactly_once` | the reply producer's `transactional.id`: unique per replica, stable across its restarts (a StatefulSet pod's name) |
//! | `KAFKA_<PROPERTY>` | `client_config` | any librdkafka property: `KAFKA_SECURITY_PROTOCOL=SASL_SSL` sets `security.protocol` (lowercased, `_` becomes `.`), as Spring Boot maps `spring.kafka.*` |
//! | `KAFKA_CONSUMER_<PROPERTY>`, `KAFKA_PRODUCER_<PROPERTY>` | `consumer_config`, `producer_config` | the same, for one client |
//!
//! Unset or blank variables leave the builder's setting as it was. The responder's own
//! guarantees still apply: a passthrough property that would break them is refused by
//! `build()`, as it is through the builder.

use std::time::Duration;

use crate::config::ResponderBuilder;
use crate::error::Error;
use crate::headers::HeaderConvention;
use crate::policy_source::PolicySource;

/// The variable naming the request topic (see [`request_topic`]).
pub const REQUEST_TOPIC_VAR: &str = "RESPONDER_REQUEST_TOPIC";

/// The request topic named by `RESPONDER_REQUEST_TOPIC`, or `default` when it is unset
/// or blank.
pub fn request_topic(default: &str) -> String {
    std::env::var(REQUEST_TOPIC_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn invalid(variable: &str, reason: impl std::fmt::Display) -> Error {
    Error::Env {
        variable: variable.to_owned(),
        reason: reason.to_string(),
    }
}

fn millis(variable: &str, value: &str) -> Result<Duration, Error> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| {
            invalid(
                variable,
                format!("{value:?} is not a number of milliseconds: {e}"),
            )
        })
}

fn flag(variable: &str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(variable, format!("{value:?} is not true or false"))),
    }
}

fn count(variable: &str, value: &str) -> Result<usize, Error> {
    value
        .trim()
        .parse::<usize>()
        .map_err(|e| invalid(variable, format!("{value:?} is not a count: {e}")))
}

/// Whether `rest` (after `KAFKA_`, `KAFKA_CONSUMER_` or `KAFKA_PRODUCER_`) is a
/// variable Kubernetes injects for a Service named `kafka`, `kafka-consumer` or
/// `kafka-producer` (`KAFKA_SERVICE_HOST`, `KAFKA_PORT`, `KAFKA_PORT_9092_TCP_ADDR`, ...),
/// not a librdkafka property.
fn is_service_link(rest: &str) -> bool {
    let rest = rest
        .strip_prefix("CONSUMER_")
        .or_else(|| rest.strip_prefix("PRODUCER_"))
        .unwrap_or(rest);
    rest == "PORT" || rest.starts_with("PORT_") || rest.starts_with("SERVICE_")
}

/// `KAFKA_SASL_MECHANISM` → `sasl.mechanism`.
fn property(suffix: &str) -> String {
    suffix.to_ascii_lowercase().replace('_', ".")
}

impl ResponderBuilder {
    /// Applies the `RESPONDER_*` and `KAFKA_*` environment variables (see
    /// [`crate::env`] for each one). Fails, naming the variable, on a value it cannot
    /// read.
    ///
    /// ```no_run
    /// # async fn run(handler: impl responder_core::Handler<Request = String, Reply = String>) -> Result<(), responder_core::Error> {
    /// use responder_core::{Json, Responder, env};
    ///
    /// Responder::builder()
    ///     .from_env()?
    ///     .route(env::request_topic("WALLET-KYC-REQUEST"), Json, handler)
    ///     .build()?
    ///     .run()
    ///     .await
    /// # }
    /// ```
    pub fn from_env(self) -> Result<Self, Error> {
        // Variables that are not Unicode are not ours to read (and would panic
        // `std::env::vars`); one of ours that is not gets an error naming it.
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => vars.push((name, value)),
                Err(_) if name.starts_with("RESPONDER_") || name.starts_with("KAFKA_") => {
                    return Err(invalid(&name, "the value is not valid Unicode"));
                }
                Err(_) => {}
            }
        }
        self.from_vars(vars)
    }

    /// As [`from_env`](Self::from_env), from the given variables instead of the
    /// process environment.
    pub fn from_vars(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Error> {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        // Deterministic order: client-wide passthrough before per-client properties.
        vars.sort();
        for (name, value) in vars {
            let v = value.as_str();
            self = match name.as_str() {
                "KAFKA_BOOTSTRAP_SERVERS" => self.bootstrap_servers(v.trim()),
                "RESPONDER_GROUP_ID" => self.group_id(v.trim()),
                "RESPONDER_HEADERS" => {
                    let conventions = v
                        .split(',')
                        .map(|c| c.trim().parse::<HeaderConvention>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| invalid(&name, e))?;
                    self.reply_checks(|c| c.header_conventions(conventions))
                }
                "RESPONDER_REPLY_ALLOW" => {
                    let policy = v
                        .parse::<PolicySource>()
                        .and_then(|s| s.load())
                        .map_err(|e| invalid(&name, e))?;
                    self.reply_topics(policy)
                }
                "RESPONDER_MAX_IN_FLIGHT" => {
                    let n = count(&name, v)?;
                    self.bounds(|b| b.max_in_flight(n))
                }
                "RESPONDER_MAX_IN_FLIGHT_PER_PARTITION" => {
                    let n = count(&name, v)?;
                    self.bounds(|b| b.max_in_flight_per_partition(n))
                }
                "RESPONDER_MAX_IN_FLIGHT_BYTES" => {
                    let n = count(&name, v)?;
                    self.bounds(|b| b.max_in_flight_bytes(n))
                }
                "RESPONDER_HANDLER_TIMEOUT_MS" => {
                    let t = millis(&name, v)?;
                    self.bounds(|b| b.handler_timeout(t))
                }
                "RESPONDER_DRAIN_TIMEOUT_MS" => {
                    let t = millis(&name, v)?;
                    self.bounds(|b| b.drain_timeout(t))
                }
                "RESPONDER_COMMIT_INTERVAL_MS" => {
                    let t = millis(&name, v)?;
                    self.bounds(|b| b.commit_interval(t))
                }
                "RESPONDER_MAX_REQUEST_AGE_MS" => {
                    let t = millis(&name, v)?;
                    self.dead_letters(|d| d.max_request_age(t))
                }
                "RESPONDER_MAX_REQUEST_BYTES" => {
                    let n = count(&name, v)?;
                    self.bounds(|b| b.max_request_bytes(n))
                }
                "RESPONDER_DEAD_LETTER_TOPIC" => self.dead_letters(|d| d.topic(v.trim())),
                "RESPONDER_FETCH_WAIT_MS" => {
                    let ms = millis(&name, v)?;
                    self.consumer_config("fetch.wait.max.ms", ms.as_millis().to_string())
                }
                "RESPONDER_SESSION_TIMEOUT_MS" => {
                    let ms = millis(&name, v)?;
                    self.consumer_config("session.timeout.ms", ms.as_millis().to_string())
                }
                "RESPONDER_HTTP_ADDR" => http_addr(self, &name, v)?,
                "RESPONDER_TRACE_CONTEXT" => {
                    let on = flag(&name, v)?;
                    self.operations(|o| o.trace_context(on))
                }
                "RESPONDER_PROMETHEUS_METRICS" => {
                    let on = flag(&name, v)?;
                    self.operations(|o| o.prometheus_metrics(on))
                }
                "RESPONDER_TRANSACTIONAL_ID" => self.exactly_once(v.trim()),
                _ => match name.strip_prefix("KAFKA_") {
                    Some("") => self,
                    Some(rest) if is_service_link(rest) => {
                        tracing::debug!(
                            variable = name,
                            "Kubernetes service-link variable, not a client property: ignored"
                        );
                        self
                    }
                    Some(rest) => match (
                        rest.strip_prefix("CONSUMER_"),
                        rest.strip_prefix("PRODUCER_"),
                    ) {
                        (Some(p), _) => self.consumer_config(property(p), v),
                        (_, Some(p)) => self.producer_config(property(p), v),
                        _ => self.client_config(property(rest), v),
                    },
                    None => self,
                },
            };
        }
        Ok(self)
    }
}

#[cfg(feature = "http")]
fn http_addr(b: ResponderBuilder, name: &str, v: &str) -> Result<ResponderBuilder, Error> {
    use std::net::ToSocketAddrs;
    let addr = v
        .trim()
        .to_socket_addrs()
        .map_err(|e| invalid(name, format!("{v:?} is not a host:port address: {e}")))?
        .next()
        .ok_or_else(|| invalid(name, format!("{v:?} names no address")))?;
    Ok(b.operations(|o| o.http_addr(addr)))
}

#[cfg(not(feature = "http"))]
fn http_addr(_: ResponderBuilder, name: &str, _: &str) -> Result<ResponderBuilder, Error> {
    Err(invalid(name, "serving HTTP needs the `http` feature"))
}

#[cfg(test)]
mod tests {
    use crate::Responder;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_invalid_value_names_its_variable() {
        for (name, value) in [
            ("RESPONDER_MAX_IN_FLIGHT", "many"),
            ("RESPONDER_HANDLER_TIMEOUT_MS", "30s"),
            ("RESPONDER_DRAIN_TIMEOUT_MS", "-1"),
            ("RESPONDER_COMMIT_INTERVAL_MS", "1.5"),
            ("RESPONDER_MAX_REQUEST_AGE_MS", "soon"),
            ("RESPONDER_MAX_REQUEST_BYTES", "1MB"),
            ("RESPONDER_MAX_IN_FLIGHT_PER_PARTITION", "x"),
            ("RESPONDER_FETCH_WAIT_MS", "x"),
            ("RESPONDER_SESSION_TIMEOUT_MS", "x"),
            ("RESPONDER_HEADERS", "spring,soap"),
            ("RESPONDER_REPLY_ALLOW", "a*b"),
            ("RESPONDER_HTTP_ADDR", "localhost"),
            ("RESPONDER_TRACE_CONTEXT", "yes"),
            ("RESPONDER_PROMETHEUS_METRICS", "0"),
        ] {
            let err = Responder::builder()
                .from_vars(vars(&[(name, value)]))
                .expect_err(name);
            assert_eq!(err.code(), crate::codes::ENV, "{name}");
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn values_reach_the_builder_and_kafka_properties_pass_through() {
        let b = Responder::builder()
            .from_vars(vars(&[
                ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                ("RESPONDER_GROUP_ID", "kyc"),
                ("RESPONDER_REPLY_ALLOW", "WALLET-KYC-RESPONSE*"),
                ("RESPONDER_MAX_IN_FLIGHT", "64"),
                ("RESPONDER_HANDLER_TIMEOUT_MS", "2500"),
                ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("KAFKA_CONSUMER_FETCH_MIN_BYTES", "10"),
                ("KAFKA_PRODUCER_LINGER_MS", "5"),
                ("RESPONDER_DEAD_LETTER_TOPIC", " "), // blank: unset
                ("PATH", "/usr/bin"),
                // What Kubernetes injects for Services named kafka and kafka-consumer.
                ("KAFKA_SERVICE_HOST", "10.0.0.1"),
                ("KAFKA_SERVICE_PORT", "9092"),
                ("KAFKA_PORT", "tcp://10.0.0.1:9092"),
                ("KAFKA_PORT_9092_TCP_ADDR", "10.0.0.1"),
                ("KAFKA_CONSUMER_SERVICE_HOST", "10.0.0.2"),
            ]))
            .expect("valid");
        let s = format!("{b:?}");
        for want in [
            "127.0.0.1:9092",
            "\"kyc\"",
            "max_in_flight: 64",
            "handler_timeout: 2.5s",
            "(\"security.protocol\", \"SASL_SSL\")",
            "(\"fetch.min.bytes\", \"10\")",
            "(\"linger.ms\", \"5\")",
            "DeadLetters { topic: None",
        ] {
            assert!(s.contains(want), "{want} not in {s}");
        }
        for unwanted in ["service.host", "\"port\"", "port.9092"] {
            assert!(!s.contains(unwanted), "{unwanted} in {s}");
        }
    }

    #[test]
    fn a_passthrough_that_breaks_a_guarantee_is_refused_at_build() {
        let built = Responder::builder()
            .from_vars(vars(&[
                ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                ("RESPONDER_GROUP_ID", "kyc"),
                ("RESPONDER_REPLY_ALLOW", "replies"),
                ("KAFKA_ENABLE_AUTO_COMMIT", "true"),
            ]))
            .expect("read")
            .route("requests", crate::Raw, Echo)
            .build();
        let err = built.expect_err("auto commit refused");
        assert!(err.to_string().contains("enable.auto.commit"), "{err}");
    }

    struct Echo;

    impl crate::Handler for Echo {
        type Request = Vec<u8>;
        type Reply = Vec<u8>;
        type Error = crate::ErrorReply;

        async fn handle(
            &self,
            request: Vec<u8>,
            _cx: &crate::RequestContext,
        ) -> Result<Vec<u8>, crate::ErrorReply> {
            Ok(request)
        }
    }
}
