//! Header conventions: which request headers name the reply address, and how their
//! values are encoded.
//!
//! A requester tells the responder where to answer through headers. Each framework uses
//! its own names and byte encodings; a [`HeaderConvention`] captures one of them. The
//! presets follow the frameworks' source (see the README's "Header conventions").

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// How a reply-partition header encodes the partition number.
///
/// A 4-byte value could be read either way, so the encoding belongs to the convention
/// and is never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionEncoding {
    /// Exactly 4 bytes, a big-endian signed 32-bit integer (Spring, SmallRye).
    BigEndianI32,
    /// ASCII decimal digits, e.g. `"3"` (NestJS, the plain style).
    AsciiDecimal,
}

/// What a convention's own error header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ErrorValue {
    /// The error message as text (SmallRye's `REPLY_ERROR`).
    #[default]
    Message,
    /// A JSON object `{"status":"error","code":"…","message":"…"}`, the shape NestJS's
    /// own exception handling sends, which a NestJS requester receives as the error
    /// object (`err.message`, `err.code`).
    Json,
}

/// A named set of header names and encodings that a requester uses to name its reply
/// address.
///
/// ```
/// use responder_core::{HeaderConvention, PartitionEncoding};
///
/// let spring = HeaderConvention::spring();
/// assert_eq!(spring.reply_topic_header(), "kafka_replyTopic");
///
/// // A convention of your own:
/// let mine = HeaderConvention::new("acme", "x-reply-to", "x-request-id")
///     .with_reply_partition("x-reply-partition", PartitionEncoding::AsciiDecimal)
///     .with_error_header("x-error");
/// assert_eq!(mine.name(), "acme");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderConvention {
    name: Cow<'static, str>,
    reply_topic: Cow<'static, str>,
    reply_partition: Option<(Cow<'static, str>, PartitionEncoding)>,
    correlation_id: Cow<'static, str>,
    error_header: Option<(Cow<'static, str>, ErrorValue)>,
    /// Headers every reply carries (name, value).
    reply_headers: Vec<(Cow<'static, str>, Cow<'static, [u8]>)>,
}

impl HeaderConvention {
    /// A convention with the given reply-topic and correlation-id header names, no
    /// partition header and no error header of its own.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        reply_topic: impl Into<Cow<'static, str>>,
        correlation_id: impl Into<Cow<'static, str>>,
    ) -> Self {
        HeaderConvention {
            name: name.into(),
            reply_topic: reply_topic.into(),
            reply_partition: None,
            correlation_id: correlation_id.into(),
            error_header: None,
            reply_headers: Vec::new(),
        }
    }

    /// Adds the header that names the reply partition and its encoding.
    pub fn with_reply_partition(
        mut self,
        header: impl Into<Cow<'static, str>>,
        encoding: PartitionEncoding,
    ) -> Self {
        self.reply_partition = Some((header.into(), encoding));
        self
    }

    /// Adds the convention's own error header: error replies carry the error message
    /// in it, beside the responder's `responder-error-*` headers.
    pub fn with_error_header(mut self, header: impl Into<Cow<'static, str>>) -> Self {
        self.error_header = Some((header.into(), ErrorValue::Message));
        self
    }

    /// Adds the convention's own error header, holding the error as `value` says.
    pub fn with_error_header_as(
        mut self,
        header: impl Into<Cow<'static, str>>,
        value: ErrorValue,
    ) -> Self {
        self.error_header = Some((header.into(), value));
        self
    }

    /// Adds a header every reply (and error reply) carries, as the convention's
    /// requesters expect it.
    pub fn with_reply_header(
        mut self,
        header: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, [u8]>>,
    ) -> Self {
        self.reply_headers.push((header.into(), value.into()));
        self
    }

    /// Spring for Apache Kafka (`ReplyingKafkaTemplate`): `kafka_replyTopic`,
    /// `kafka_replyPartition` (4-byte big-endian), `kafka_correlationId` (opaque bytes,
    /// 16 raw UUID bytes by default).
    pub fn spring() -> Self {
        Self::new("spring", "kafka_replyTopic", "kafka_correlationId")
            .with_reply_partition("kafka_replyPartition", PartitionEncoding::BigEndianI32)
    }

    /// SmallRye Reactive Messaging / Quarkus (`KafkaRequestReply`): `REPLY_TOPIC`,
    /// `REPLY_PARTITION` (4-byte big-endian), `REPLY_CORRELATION_ID`; errors in
    /// `REPLY_ERROR`.
    pub fn smallrye() -> Self {
        Self::new("smallrye", "REPLY_TOPIC", "REPLY_CORRELATION_ID")
            .with_reply_partition("REPLY_PARTITION", PartitionEncoding::BigEndianI32)
            .with_error_header("REPLY_ERROR")
    }

    /// NestJS microservices (Kafka transport): Spring's names with text values (ASCII
    /// decimal partition). Every reply carries `kafka_nest-is-disposed` (a `0x00` byte,
    /// as NestJS's own server writes it): without it, `ClientKafka.send()`'s observable
    /// never completes, so `lastValueFrom` (and a controller returning it) waits
    /// forever. Errors go in `kafka_nest-err` as the JSON object NestJS's exception
    /// handling sends.
    pub fn nestjs() -> Self {
        Self::new("nestjs", "kafka_replyTopic", "kafka_correlationId")
            .with_reply_partition("kafka_replyPartition", PartitionEncoding::AsciiDecimal)
            .with_error_header_as("kafka_nest-err", ErrorValue::Json)
            .with_reply_header("kafka_nest-is-disposed", &[0u8][..])
    }

    /// The plain style: `REPLY_TOPIC`, `REPLY_PARTITION` (ASCII decimal),
    /// `CORRELATION_ID` (opaque bytes).
    pub fn plain() -> Self {
        Self::new("plain", "REPLY_TOPIC", "CORRELATION_ID")
            .with_reply_partition("REPLY_PARTITION", PartitionEncoding::AsciiDecimal)
    }

    /// The convention's name, used in logs and configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Header that names the reply topic.
    pub fn reply_topic_header(&self) -> &str {
        &self.reply_topic
    }

    /// Header that names the reply partition, and its encoding, if the convention has one.
    pub fn reply_partition_header(&self) -> Option<(&str, PartitionEncoding)> {
        self.reply_partition.as_ref().map(|(h, e)| (h.as_ref(), *e))
    }

    /// Header that carries the correlation id (echoed byte for byte on the reply).
    pub fn correlation_id_header(&self) -> &str {
        &self.correlation_id
    }

    /// The convention's own error header, if it has one.
    pub fn error_header(&self) -> Option<&str> {
        self.error_header.as_ref().map(|(h, _)| h.as_ref())
    }

    /// What the convention's own error header holds.
    pub fn error_value(&self) -> ErrorValue {
        self.error_header
            .as_ref()
            .map_or(ErrorValue::Message, |(_, v)| *v)
    }

    /// The headers every reply carries.
    pub fn reply_headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.reply_headers
            .iter()
            .map(|(h, v)| (h.as_ref(), v.as_ref()))
    }

    /// Encodes a partition number the way this convention's requesters write it.
    /// Used by requesters (the test kit) rather than by the responder.
    pub fn encode_partition(&self, partition: i32) -> Option<Vec<u8>> {
        self.reply_partition.as_ref().map(|(_, enc)| match enc {
            PartitionEncoding::BigEndianI32 => partition.to_be_bytes().to_vec(),
            PartitionEncoding::AsciiDecimal => partition.to_string().into_bytes(),
        })
    }

    /// Whether two conventions read the same header names (and so cannot both be
    /// accepted: a request would be ambiguous).
    pub fn clashes_with(&self, other: &HeaderConvention) -> bool {
        self.reply_topic == other.reply_topic && self.correlation_id == other.correlation_id
    }
}

impl fmt::Display for HeaderConvention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The name is not one of the presets (`spring`, `smallrye`, `nestjs`, `plain`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown header convention {0:?}; expected one of spring, smallrye, nestjs, plain")]
#[non_exhaustive]
pub struct UnknownConvention(pub String);

impl FromStr for HeaderConvention {
    type Err = UnknownConvention;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "spring" => Ok(Self::spring()),
            "smallrye" | "quarkus" => Ok(Self::smallrye()),
            "nestjs" => Ok(Self::nestjs()),
            "plain" => Ok(Self::plain()),
            _ => Err(UnknownConvention(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_interop_doc() {
        let s = HeaderConvention::spring();
        assert_eq!(
            s.reply_partition_header(),
            Some(("kafka_replyPartition", PartitionEncoding::BigEndianI32))
        );
        assert_eq!(s.error_header(), None);
        let r = HeaderConvention::smallrye();
        assert_eq!(r.correlation_id_header(), "REPLY_CORRELATION_ID");
        assert_eq!(r.error_header(), Some("REPLY_ERROR"));
        let n = HeaderConvention::nestjs();
        assert_eq!(n.encode_partition(12), Some(b"12".to_vec()));
        assert_eq!(n.error_header(), Some("kafka_nest-err"));
        let p = HeaderConvention::plain();
        assert_eq!(p.correlation_id_header(), "CORRELATION_ID");
        assert_eq!(s.encode_partition(3), Some(vec![0, 0, 0, 3]));
    }

    #[test]
    fn spring_and_nestjs_clash() {
        assert!(HeaderConvention::spring().clashes_with(&HeaderConvention::nestjs()));
        assert!(!HeaderConvention::smallrye().clashes_with(&HeaderConvention::plain()));
    }

    #[test]
    fn parses_names() {
        assert_eq!("Spring".parse(), Ok(HeaderConvention::spring()));
        assert!("kafka".parse::<HeaderConvention>().is_err());
    }
}
