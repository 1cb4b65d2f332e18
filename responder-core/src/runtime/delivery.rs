//! Delivering a reply or a dead letter: produce it, await the broker's
//! acknowledgement, and retry what failed for a passing reason.
//!
//! | produce error | whose fault | what happens |
//! |---|---|---|
//! | record too large, invalid record or message, invalid topic | the record's | refused at once: dead-lettered (a reply) or logged (a dead letter), and committed |
//! | topic authorization failed, unknown topic or partition | unsure: ACLs change and metadata propagates | retried [`UNSURE_ATTEMPTS`] times over a few seconds, then the record's |
//! | anything else (timeouts, broker or leader gone, not enough replicas, queue full) | passing | retried with capped exponential backoff for as long as the request's partition is assigned and the responder runs |
//! | the producer's fatal error (its idempotence guarantee broken, or fenced by another instance with its `transactional.id`) | the producer's, for good | the responder stops with an error; the request stays uncommitted |
//! | with exactly-once replies, any error after the record was queued | the transaction's: it can only abort | the responder stops with an error; the transaction is aborted, its requests stay uncommitted |
//!
//! A retry sends the same encoded record: the handler is not called again, and the
//! request keeps its in-flight slot. Only a revocation or shutdown abandons it (its
//! task is cancelled; uncommitted, so the next owner answers it).

use std::time::Duration;

use crate::received::Received;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::Shared;
use super::acks::{self, Record};
use super::ticket::Ticket;
use super::topic_handles::TopicHandles;
use crate::metrics::TopicMetrics;

/// Attempts for an error that may pass (authorization, unknown topic or partition)
/// before it is taken as the record's own fault: with the backoff below, about 4 s.
pub(crate) const UNSURE_ATTEMPTS: u32 = 5;
/// The first retry's wait; each later one doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Whose fault a produce error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The record itself is refused: retrying the same record cannot help.
    Record,
    /// Maybe the record's, maybe passing: a few attempts first.
    Unsure,
    /// Passing: the broker, the network or the producer.
    Passing,
    /// The producer cannot produce anything any more.
    Fatal,
}

/// Classifies a produce error.
pub(crate) fn fault(e: &KafkaError) -> Fault {
    use RDKafkaErrorCode as C;
    match e {
        KafkaError::MessageProduction(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::InvalidTopic,
        ) => Fault::Record,
        KafkaError::MessageProduction(
            C::TopicAuthorizationFailed
            | C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::UnknownPartition,
        ) => Fault::Unsure,
        KafkaError::MessageProduction(C::Fatal) => Fault::Fatal,
        _ => Fault::Passing,
    }
}

/// The wait before retry number `retry` (0 for the first).
pub(crate) fn backoff(retry: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF)
}

/// What is being delivered, for the logs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Reply,
    DeadLetter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Reply => "reply",
            Kind::DeadLetter => "dead letter",
        }
    }
}

/// Produces the record `record` builds until the broker acknowledges it, retrying
/// (see the module docs). `ticket` is told the request is handled once the first
/// attempt is with the producer. Returns the error that made the record refused;
/// never returns for a passing error: the caller's cancellation ends it. After a
/// fatal producer error it tells the responder to stop, and waits for that.
pub(crate) async fn deliver<'a>(
    shared: &Shared,
    metrics: &TopicMetrics,
    ticket: &mut Ticket,
    request: &Received,
    kind: Kind,
    record: impl Fn() -> Record<'a>,
) -> Result<(), KafkaError> {
    if let Some(gate) = &shared.transaction
        && !ticket.in_transaction()
    {
        // Boxed, as the retries' waits below: each would make every request's future
        // larger.
        ticket.enlist(Box::pin(gate.enter()).await);
    }
    let mut retry = 0;
    let mut unsure = 0;
    loop {
        let result = attempt(&shared.topics, record(), ticket).await;
        let Err((e, queued)) = result else {
            if retry > 0 {
                tracing::info!(
                    topic = request.topic(),
                    partition = request.partition(),
                    offset = request.offset(),
                    attempts = retry + 1,
                    "{} delivered after retries",
                    kind.as_str()
                );
            }
            return Ok(());
        };
        if queued && let Some(gate) = &shared.transaction {
            // A record the broker refused makes the open transaction abortable: it
            // cannot commit, and the records after it cannot enter it.
            gate.taint("the broker refused a record of the transaction");
            let why = format!(
                "{} not delivered inside the transaction: {e}",
                kind.as_str()
            );
            shared.producer_failed.send_replace(Some(why));
            std::future::pending::<()>().await;
        }
        match fault(&e) {
            Fault::Fatal => {
                let why = format!("the reply producer failed for good: {e}");
                shared.producer_failed.send_replace(Some(why));
                // Uncommitted: cancelled by the shutdown this starts.
                std::future::pending::<()>().await;
            }
            Fault::Record => return Err(e),
            Fault::Unsure if unsure + 1 >= UNSURE_ATTEMPTS => return Err(e),
            Fault::Unsure => unsure += 1,
            Fault::Passing => {}
        }
        let wait = backoff(retry);
        metrics.retried();
        tracing::warn!(
            topic = request.topic(),
            partition = request.partition(),
            offset = request.offset(),
            error = %e,
            retry = retry + 1,
            retry_in_ms = wait.as_millis() as u64,
            "{} not delivered; retrying the same record (the request stays uncommitted until it is)",
            kind.as_str()
        );
        Box::pin(tokio::time::sleep(wait)).await;
        retry += 1;
    }
}

/// One attempt: enqueue (waiting while the producer's queue is full), then await the
/// broker's acknowledgement. An error says whether the record was queued (refused by
/// the broker or timed out) or refused by the producer at once.
async fn attempt(
    producer: &TopicHandles,
    mut record: Record<'_>,
    ticket: &mut Ticket,
) -> Result<(), (KafkaError, bool)> {
    let delivery = loop {
        match acks::send(producer, record) {
            Ok(delivery) => break delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                Box::pin(tokio::time::sleep(Duration::from_millis(5))).await;
            }
            Err((e, _)) => {
                ticket.handled();
                return Err((e, false));
            }
        }
    };
    ticket.handled();
    delivery.await.map_err(|e| (e, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults() {
        use RDKafkaErrorCode as C;
        let produce = KafkaError::MessageProduction;
        assert_eq!(fault(&produce(C::MessageSizeTooLarge)), Fault::Record);
        assert_eq!(fault(&produce(C::InvalidRecord)), Fault::Record);
        assert_eq!(fault(&produce(C::TopicAuthorizationFailed)), Fault::Unsure);
        assert_eq!(fault(&produce(C::UnknownTopicOrPartition)), Fault::Unsure);
        assert_eq!(fault(&produce(C::MessageTimedOut)), Fault::Passing);
        assert_eq!(fault(&produce(C::NotEnoughReplicas)), Fault::Passing);
        assert_eq!(fault(&produce(C::NotLeaderForPartition)), Fault::Passing);
        assert_eq!(fault(&KafkaError::Canceled), Fault::Passing);
        assert_eq!(fault(&produce(C::Fatal)), Fault::Fatal);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
        let unsure: Duration = (0..UNSURE_ATTEMPTS - 1).map(backoff).sum();
        assert!((Duration::from_secs(2)..=Duration::from_secs(10)).contains(&unsure));
    }
}
