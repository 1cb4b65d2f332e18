//! The librdkafka configuration of the two clients: the user's properties on top of
//! bounded defaults, under the properties the guarantees need.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::error::Error;

/// Client properties the responder sets itself: overriding them would break
/// at-least-once or let a requester create topics.
const GUARDED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // librdkafka's name for `acks`.
    ("request.required.acks", "all"),
    ("allow.auto.create.topics", "false"),
];

/// The consumer's configuration: `common` plus the group, bounded prefetch defaults
/// (where `common` does not set them), the user's properties (which may override the
/// defaults), and the offset handling the responder's at-least-once guarantee needs
/// (which they may not).
pub(super) fn consumer_config(
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
    consumer.set("group.id", group);
    set_defaults(
        &mut consumer,
        user,
        &[
            (&["auto.offset.reset"], "earliest"),
            (&["enable.partition.eof"], "false"),
            // librdkafka prefetches up to 100,000 records per partition (64 MiB), and
            // up to 1 MiB per partition per fetch: memory would grow with the backlog.
            // These keep the prefetch small and flat.
            (&["queued.min.messages"], PREFETCH_RECORDS),
            (&["queued.max.messages.kbytes"], PREFETCH_KIB),
            (&PARTITION_FETCH_KEYS, PARTITION_FETCH_BYTES),
            // ...and a full prefetch queue is checked again after 10 ms, not 1 s
            // (librdkafka's default, which with a small queue caps a partition at
            // ~2000 records a second).
            (&["fetch.queue.backoff.ms"], PREFETCH_BACKOFF_MS),
        ],
    );
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

/// The consumer's `max.poll.interval.ms`: the longest it may go without polling
/// before it is removed from its group.
pub(super) fn max_poll_interval(consumer: &ClientConfig) -> Result<Duration, Error> {
    let v = consumer.get("max.poll.interval.ms").unwrap_or("300000");
    v.trim().parse().map(Duration::from_millis).map_err(|_| {
        Error::config(format!(
            "max.poll.interval.ms={v} is not a number of milliseconds"
        ))
    })
}

/// Consumer properties of the classic group protocol only.
const CLASSIC_ONLY: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "group.protocol.type",
];

/// The producer's configuration: `common`, no linger, a 2-minute delivery timeout per
/// attempt (a reply that times out is retried, see `runtime::delivery`), the user's
/// properties, and what the guarantees need.
pub(super) fn producer_config(
    common: ClientConfig,
    user: &[(String, String)],
) -> Result<ClientConfig, Error> {
    let mut producer = common;
    set_defaults(
        &mut producer,
        user,
        &[
            (&DELIVERY_KEYS, DELIVERY_TIMEOUT_MS),
            (&LINGER_KEYS, LINGER_MS),
        ],
    );
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
pub(super) fn transactional(
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
    // unless the user chose one (under either of librdkafka's names; with the same
    // value under both, set below, their order does not matter).
    let delivery = match DELIVERY_KEYS.iter().find(|k| producer.get(k).is_some()) {
        Some(&key) if key != DELIVERY_KEYS[0] || producer.get(key) != Some(DELIVERY_TIMEOUT_MS) => {
            millis(key, DELIVERY_TIMEOUT_MS)?
        }
        _ => txn_timeout,
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

/// `linger.ms` of the reply producer: none. Every reply has a requester waiting for
/// it, and a reply that waits for others to fill its batch makes each of them wait
/// (librdkafka's default is 5 ms; with 1 ms, the closed-loop median was 1.1 ms longer
/// on the embedded broker and 1.5 ms on Apache Kafka, for the same instructions per
/// request; the bench's capacity runs were too noisy to show a cost either way, see
/// the README). Under load replies still go in batches: those produced while the
/// producer's thread is busy, or its requests in flight are at their limit, go
/// together in the next produce request.
const LINGER_MS: &str = "0";
/// The delivery timeout's names in librdkafka: `delivery.timeout.ms` is an alias.
const DELIVERY_KEYS: [&str; 2] = ["message.timeout.ms", "delivery.timeout.ms"];

/// The linger's names in librdkafka: `queue.buffering.max.ms` is an alias.
const LINGER_KEYS: [&str; 2] = ["linger.ms", "queue.buffering.max.ms"];

/// `message.timeout.ms` of the reply producer: 2 minutes per attempt (librdkafka's
/// default is 5). A timed-out reply is retried, so this only sets how often a reply
/// stuck in an outage is looked at again.
const DELIVERY_TIMEOUT_MS: &str = "120000";

/// Records per partition librdkafka keeps prefetched (`queued.min.messages`). At 2000
/// (with 16 MiB below), a massif profile of a 100 k backlog showed about 28 k records
/// and 10 MiB of fetch buffers held at the peak: peak RSS grew from 17 MiB (10 k queued)
/// to 31 MiB (100 k). At 500 and 2 MiB: 16 and 21 MiB, at the same capacity.
const PREFETCH_RECORDS: &str = "500";
/// Bound on all prefetched records, in KiB (`queued.max.messages.kbytes`; one fetch
/// response may overshoot it).
const PREFETCH_KIB: &str = "2048";
/// How long a partition's fetching waits when its prefetch is full
/// (`fetch.queue.backoff.ms`).
const PREFETCH_BACKOFF_MS: &str = "10";
/// Most bytes one fetch returns per partition (`max.partition.fetch.bytes`).
const PARTITION_FETCH_BYTES: &str = "262144";
/// Its names in librdkafka: `fetch.message.max.bytes` is an alias.
const PARTITION_FETCH_KEYS: [&str; 2] = ["max.partition.fetch.bytes", "fetch.message.max.bytes"];

/// Sets each default that neither the configuration (a property of both clients:
/// `client_config`, `KAFKA_<PROPERTY>`) nor `user` (one client's) sets, under any of
/// its names (librdkafka's aliases): the user's wins, and no default reaches
/// librdkafka beside the user's value under another name (which of the two applies
/// would then depend on their order). A default is set under its first name.
fn set_defaults(
    config: &mut ClientConfig,
    user: &[(String, String)],
    defaults: &[(&[&str], &str)],
) {
    for (names, value) in defaults {
        let set = names
            .iter()
            .any(|n| config.get(n).is_some() || user.iter().any(|(k, _)| k == n));
        if let (false, Some(name)) = (set, names.first()) {
            config.set(*name, *value);
        }
    }
}

/// Applies user properties, refusing those that fight the responder's guarantees.
pub(super) fn apply(config: &mut ClientConfig, props: &[(String, String)]) -> Result<(), Error> {
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
    fn replies_are_sent_at_once_unless_the_user_says_otherwise() {
        let p = producer_config(ClientConfig::new(), &[]).expect("valid");
        assert_eq!(p.get("linger.ms"), Some("0"));
        let user = props(&[("linger.ms", "5")]);
        let p = producer_config(ClientConfig::new(), &user).expect("valid");
        assert_eq!(p.get("linger.ms"), Some("5"));
        // Under its alias, no default beside it.
        let user = props(&[("queue.buffering.max.ms", "5")]);
        let p = producer_config(ClientConfig::new(), &user).expect("valid");
        assert_eq!(p.get("linger.ms"), None);
        assert_eq!(p.get("queue.buffering.max.ms"), Some("5"));
        // As a property of both clients (`client_config`, `KAFKA_LINGER_MS`).
        let mut common = ClientConfig::new();
        common.set("linger.ms", "5");
        let p = producer_config(common, &[]).expect("valid");
        assert_eq!(p.get("linger.ms"), Some("5"));
    }

    /// A property set on both clients (`client_config`, `KAFKA_<PROPERTY>`) is the
    /// user's: the responder's defaults do not overwrite it, and a property of one
    /// client still wins over it.
    #[test]
    fn properties_of_both_clients_win_over_the_defaults() {
        let mut common = ClientConfig::new();
        for (key, value) in [
            ("queued.min.messages", "20000"),
            ("max.partition.fetch.bytes", "1048576"),
            ("fetch.queue.backoff.ms", "100"),
            ("auto.offset.reset", "latest"),
            ("message.timeout.ms", "30000"),
        ] {
            common.set(key, value);
        }
        let c = consumer_config(&common, "g", &[]).expect("valid");
        assert_eq!(c.get("queued.min.messages"), Some("20000"));
        assert_eq!(c.get("max.partition.fetch.bytes"), Some("1048576"));
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("100"));
        assert_eq!(c.get("auto.offset.reset"), Some("latest"));
        // The defaults it does not set are still there.
        assert_eq!(c.get("queued.max.messages.kbytes"), Some(PREFETCH_KIB));
        let user = props(&[("queued.min.messages", "700")]);
        let c = consumer_config(&common, "g", &user).expect("valid");
        assert_eq!(c.get("queued.min.messages"), Some("700"));
        // What the guarantees need is not the user's to change, from either place.
        common.set("enable.auto.commit", "true");
        let c = consumer_config(&common, "g", &[]).expect("valid");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));

        let p = producer_config(common.clone(), &[]).expect("valid");
        assert_eq!(p.get("message.timeout.ms"), Some("30000"));
        let user = props(&[("message.timeout.ms", "45000")]);
        let p = producer_config(common, &user).expect("valid");
        assert_eq!(p.get("message.timeout.ms"), Some("45000"));
    }

    /// A setting given under librdkafka's other name, for both clients or for one, gets
    /// no default beside it under the first name.
    #[test]
    fn a_default_yields_to_its_alias() {
        // With exactly-once replies, a delivery timeout under the other name is the
        // user's, and is checked against the transaction's.
        let user = props(&[("delivery.timeout.ms", "20000")]);
        let p = producer_config(ClientConfig::new(), &user).expect("valid");
        let (p, _) = transactional(p, "t", Duration::from_secs(1)).expect("valid");
        assert_eq!(p.get("message.timeout.ms"), Some("20000"));
        let user = props(&[("delivery.timeout.ms", "90000")]);
        let p = producer_config(ClientConfig::new(), &user).expect("valid");
        assert!(transactional(p, "t", Duration::from_secs(1)).is_err());
        let mut common = ClientConfig::new();
        common.set("delivery.timeout.ms", "30000");
        let p = producer_config(common, &[]).expect("valid");
        assert_eq!(p.get("message.timeout.ms"), None);
        let user = props(&[("delivery.timeout.ms", "30000")]);
        let p = producer_config(ClientConfig::new(), &user).expect("valid");
        assert_eq!(p.get("message.timeout.ms"), None);
        assert_eq!(p.get("delivery.timeout.ms"), Some("30000"));
        let user = props(&[("fetch.message.max.bytes", "65536")]);
        let c = consumer_config(&ClientConfig::new(), "g", &user).expect("valid");
        assert_eq!(c.get("max.partition.fetch.bytes"), None);
        assert_eq!(c.get("fetch.message.max.bytes"), Some("65536"));
        // `acks` under its other name is guarded as `acks` is.
        let user = props(&[("request.required.acks", "1")]);
        assert!(producer_config(ClientConfig::new(), &user).is_err());
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
