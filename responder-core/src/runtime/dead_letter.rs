//! Dead letters: a request that cannot be answered is copied, with headers saying why,
//! to the configured dead-letter topic before its offset is committed.

use super::acks::Record;
use crate::received::Received;
use rdkafka::error::KafkaError;

use super::delivery::{Kind, deliver};
use super::ticket::Ticket;
use super::{Shared, records};
use crate::metrics::TopicMetrics;

/// The prefix of every header the responder writes on a dead letter. A request's own
/// headers with this prefix are not copied: a requester cannot forge the reasons.
pub const DLQ_HEADER_PREFIX: &str = "responder-dlq-";

/// Header with the stable reason code (e.g. `reply_topic_not_allowed`).
pub const DLQ_REASON_HEADER: &str = "responder-dlq-reason";
/// Header with the human-readable reason.
pub const DLQ_MESSAGE_HEADER: &str = "responder-dlq-message";
/// Header with the original topic.
pub const DLQ_TOPIC_HEADER: &str = "responder-dlq-topic";
/// Header with the original partition (ASCII decimal).
pub const DLQ_PARTITION_HEADER: &str = "responder-dlq-partition";
/// Header with the original offset (ASCII decimal).
pub const DLQ_OFFSET_HEADER: &str = "responder-dlq-offset";
/// Header with the time of dead-lettering (epoch milliseconds, ASCII decimal).
pub const DLQ_TIME_HEADER: &str = "responder-dlq-time";

/// Copies the request to the dead-letter topic, if one is configured (see [`write`]),
/// and counts it. A dead letter the broker refuses for good is logged: the request is
/// committed all the same.
pub(crate) async fn dead_letter(
    shared: &Shared,
    metrics: &TopicMetrics,
    ticket: &mut Ticket,
    message: &Received,
    code: &str,
    reason: &str,
) {
    match write(shared, metrics, ticket, message, code, reason).await {
        Ok(true) => metrics.dead_lettered(code),
        Ok(false) => {}
        Err(e) => tracing::error!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            error = %e,
            "dead letter refused by the broker; committing anyway"
        ),
    }
}

/// Copies `message` (key, payload and headers, less any `responder-dlq-*` header it
/// carried) to the dead-letter topic with the reason headers, and waits for the
/// broker's acknowledgement, retrying what fails for a passing reason (see
/// [`deliver`]). `Ok(false)` when no dead-letter topic is configured.
async fn write(
    shared: &Shared,
    metrics: &TopicMetrics,
    ticket: &mut Ticket,
    message: &Received,
    code: &str,
    reason: &str,
) -> Result<bool, KafkaError> {
    let Some(topic) = shared.dead_letter_topic.as_deref() else {
        return Ok(false);
    };
    let (partition, offset, time) = (
        message.partition().to_string(),
        message.offset().to_string(),
        crate::deadline::now_millis().to_string(),
    );
    let headers =
        || records::dead_letter_headers(message, code, reason, &partition, &offset, &time);
    deliver(shared, metrics, ticket, message, Kind::DeadLetter, || {
        let mut record: Record<'_> = Record::to(topic).headers(headers());
        if let Some(k) = message.key() {
            record = record.key(k);
        }
        if let Some(p) = message.payload() {
            record = record.payload(p);
        }
        record
    })
    .await
    .map(|()| true)
}
