//! The reply address of a request, read from its headers through the accepted
//! [`HeaderConvention`]s, and the reasons a request cannot be answered.

use std::sync::Arc;

pub use crate::correlation_id::CorrelationId;
use crate::headers::{HeaderConvention, PartitionEncoding};
pub use crate::request_headers::RequestHeaders;
use crate::topic::TopicNameError;
pub use crate::topic_names::TopicName;
use crate::topic_names::topic_name;

/// Where the reply to one request goes. Read by handlers and tests; made only by the
/// responder (an [`AddressReader`]) and the testkit, so fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplyAddress {
    /// The reply topic (already checked against Kafka's naming rules), shared with
    /// the other requests that name it.
    pub topic: TopicName,
    /// The reply partition, when the request named one.
    pub partition: Option<i32>,
    /// The correlation id, byte for byte as received; `None` only when the reader
    /// accepts requests without one ([`MissingCorrelationId::ReplyWithout`]).
    pub correlation_id: Option<CorrelationId>,
    /// The convention the request used; the reply uses it too.
    pub convention: Arc<HeaderConvention>,
}

/// Why a request gets no reply at all. Each has a stable [`code`](Unanswerable::code).
///
/// Such a request is logged with its coordinates, counted, and committed: it is never
/// answered anywhere else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unanswerable {
    /// No accepted convention's reply-topic or correlation header is present.
    #[error("the request names no reply address")]
    NoReplyAddress,
    /// The correlation header is present but the reply-topic header is not.
    #[error("header {header} (convention {convention}) is missing")]
    MissingReplyTopic {
        /// The convention whose correlation header was present.
        convention: String,
        /// The missing header.
        header: String,
    },
    /// The reply-topic header is present but the correlation header is not.
    #[error("header {header} (convention {convention}) is missing")]
    MissingCorrelationId {
        /// The convention whose reply-topic header was present.
        convention: String,
        /// The missing header.
        header: String,
    },
    /// The reply-topic header does not hold a valid topic name.
    #[error("reply topic header is invalid: {0}")]
    InvalidReplyTopic(#[from] TopicNameError),
    /// The reply-partition header cannot be read in the convention's encoding, or is
    /// negative.
    #[error("reply partition header {header} is invalid: {reason}")]
    InvalidReplyPartition {
        /// The header.
        header: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The correlation id is empty or longer than the reader accepts.
    #[error("correlation id is invalid: {0}")]
    InvalidCorrelationId(String),
    /// The reply topic does not exist (the responder never creates topics).
    #[error("reply topic {0:?} does not exist")]
    UnknownReplyTopic(String),
    /// The reply partition is beyond the reply topic's partitions.
    #[error("reply partition {partition} is out of range: topic {topic:?} has {partitions}")]
    ReplyPartitionOutOfRange {
        /// The reply topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: i32,
    },
    /// The broker says the responder may not write to the reply topic.
    #[error("the broker does not authorize writing to reply topic {0:?}")]
    ReplyTopicNotAuthorized(String),
    /// A reply header appears more than once with different values.
    #[error("header {0} appears more than once with different values")]
    ConflictingHeaders(String),
    /// The reply-topic policy does not admit the topic.
    #[error("reply topic {0:?} is not allowed by the reply-topic policy")]
    TopicNotAllowed(String),
}

impl Unanswerable {
    /// A stable, machine-readable code for logs, metrics and dead letters.
    pub fn code(&self) -> &'static str {
        use crate::codes as c;
        match self {
            Unanswerable::NoReplyAddress => c::NO_REPLY_ADDRESS,
            Unanswerable::MissingReplyTopic { .. } => c::MISSING_REPLY_TOPIC,
            Unanswerable::MissingCorrelationId { .. } => c::MISSING_CORRELATION_ID,
            Unanswerable::InvalidReplyTopic(_) => c::INVALID_REPLY_TOPIC,
            Unanswerable::InvalidReplyPartition { .. } => c::INVALID_REPLY_PARTITION,
            Unanswerable::ConflictingHeaders(_) => c::CONFLICTING_HEADERS,
            Unanswerable::TopicNotAllowed(_) => c::REPLY_TOPIC_NOT_ALLOWED,
            Unanswerable::InvalidCorrelationId(_) => c::INVALID_CORRELATION_ID,
            Unanswerable::UnknownReplyTopic(_) => c::UNKNOWN_REPLY_TOPIC,
            Unanswerable::ReplyPartitionOutOfRange { .. } => c::REPLY_PARTITION_OUT_OF_RANGE,
            Unanswerable::ReplyTopicNotAuthorized(_) => c::REPLY_TOPIC_NOT_AUTHORIZED,
        }
    }
}

/// The value of a header that may repeat.
pub(crate) enum Lookup<'h> {
    Absent,
    /// Present (possibly several times with the same value). `None` is a null value.
    Present(Option<&'h [u8]>),
    Conflicting,
}

impl Lookup<'_> {
    fn is_present(&self) -> bool {
        !matches!(self, Lookup::Absent)
    }
}

/// Finds `name` among the headers. A header that repeats with the same value is read
/// once; with different values it is a conflict (never "first wins" or "last wins":
/// a requester that sends two reply topics has a bug or is hostile).
pub(crate) fn lookup<'h>(headers: &RequestHeaders<'h>, name: &str) -> Lookup<'h> {
    let mut found = Lookup::Absent;
    for (key, value) in headers.iter() {
        if key != name {
            continue;
        }
        found = match found {
            Lookup::Absent => Lookup::Present(value),
            Lookup::Present(v) if v == value => Lookup::Present(v),
            _ => return Lookup::Conflicting,
        };
    }
    found
}

/// What to do with a request that names a reply topic but no correlation id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingCorrelationId {
    /// It is unanswerable (`missing_correlation_id`): a requester that waits for its
    /// reply cannot match one without the id. The default.
    #[default]
    Refuse,
    /// Reply without a correlation header (for fire-and-collect requesters that match
    /// replies by key or payload).
    ReplyWithout,
}

/// Reads reply addresses from request headers: the accepted [`HeaderConvention`]s, in
/// order, and the rules on correlation ids.
///
/// ```
/// use responder_core::address::{AddressReader, RequestHeaders};
/// use responder_core::HeaderConvention;
///
/// let reader = AddressReader::new([HeaderConvention::spring()]);
/// let headers: RequestHeaders<'_> = [
///     ("kafka_replyTopic", Some(&b"replies"[..])),
///     ("kafka_replyPartition", Some(&[0u8, 0, 0, 3][..])),
///     ("kafka_correlationId", Some(&b"c-1"[..])),
/// ]
/// .into_iter()
/// .collect();
/// let address = reader.read(&headers)?;
/// assert_eq!((address.topic.as_str(), address.partition), ("replies", Some(3)));
/// # Ok::<_, responder_core::Unanswerable>(())
/// ```
#[derive(Debug, Clone)]
pub struct AddressReader {
    conventions: Vec<Arc<HeaderConvention>>,
    missing_correlation_id: MissingCorrelationId,
    max_correlation_id_len: usize,
}

/// The default bound on a correlation id's length, in bytes. Spring sends 16 bytes,
/// SmallRye and NestJS a 36-character UUID; a longer id is more likely an attempt to
/// make every reply large than a real requester.
pub const DEFAULT_MAX_CORRELATION_ID_LEN: usize = 1024;

impl AddressReader {
    /// A reader accepting `conventions` (tried in order), refusing requests without a
    /// correlation id and ids longer than [`DEFAULT_MAX_CORRELATION_ID_LEN`].
    pub fn new(conventions: impl IntoIterator<Item = HeaderConvention>) -> Self {
        Self::from_shared(conventions.into_iter().map(Arc::new).collect())
    }

    pub(crate) fn from_shared(conventions: Vec<Arc<HeaderConvention>>) -> Self {
        AddressReader {
            conventions,
            missing_correlation_id: MissingCorrelationId::default(),
            max_correlation_id_len: DEFAULT_MAX_CORRELATION_ID_LEN,
        }
    }

    /// What to do with a request without a correlation id.
    #[must_use]
    pub fn missing_correlation_id(mut self, rule: MissingCorrelationId) -> Self {
        self.missing_correlation_id = rule;
        self
    }

    /// The longest correlation id accepted, in bytes.
    #[must_use]
    pub fn max_correlation_id_len(mut self, len: usize) -> Self {
        self.max_correlation_id_len = len;
        self
    }

    /// The accepted conventions, in order.
    pub fn conventions(&self) -> &[Arc<HeaderConvention>] {
        &self.conventions
    }

    /// Reads the reply address from `headers` with the first convention (in order)
    /// whose reply-topic and correlation headers are both present (or, when requests
    /// without a correlation id are answered, whose reply-topic header is).
    pub fn read(&self, headers: &RequestHeaders<'_>) -> Result<ReplyAddress, Unanswerable> {
        let mut partial: Option<Unanswerable> = None;
        let mut topic_only = None;
        for convention in &self.conventions {
            let topic = lookup(headers, convention.reply_topic_header());
            let correlation = lookup(headers, convention.correlation_id_header());
            match (topic.is_present(), correlation.is_present()) {
                (true, true) => return self.read_address(convention, headers, topic, correlation),
                (true, false) => {
                    if topic_only.is_none() {
                        topic_only = Some((convention, topic));
                    }
                    if partial.is_some() {
                        continue;
                    }
                    partial = Some(Unanswerable::MissingCorrelationId {
                        convention: convention.name().to_owned(),
                        header: convention.correlation_id_header().to_owned(),
                    });
                }
                (false, true) if partial.is_none() => {
                    partial = Some(Unanswerable::MissingReplyTopic {
                        convention: convention.name().to_owned(),
                        header: convention.reply_topic_header().to_owned(),
                    });
                }
                _ => {}
            }
        }
        // No convention matched fully: a reply topic alone is enough only if allowed.
        if let (MissingCorrelationId::ReplyWithout, Some((convention, topic))) =
            (self.missing_correlation_id, topic_only)
        {
            return self.read_address(convention, headers, topic, Lookup::Absent);
        }
        Err(partial.unwrap_or(Unanswerable::NoReplyAddress))
    }

    fn read_address(
        &self,
        convention: &Arc<HeaderConvention>,
        headers: &RequestHeaders<'_>,
        topic: Lookup<'_>,
        correlation: Lookup<'_>,
    ) -> Result<ReplyAddress, Unanswerable> {
        let topic = match topic {
            Lookup::Present(v) => topic_name(v.unwrap_or_default())?,
            _ => {
                return Err(Unanswerable::ConflictingHeaders(
                    convention.reply_topic_header().to_owned(),
                ));
            }
        };
        let correlation_id = match correlation {
            Lookup::Absent => None,
            Lookup::Present(v) => {
                let id = v.unwrap_or_default();
                if id.is_empty() {
                    return Err(Unanswerable::InvalidCorrelationId("it is empty".into()));
                }
                if id.len() > self.max_correlation_id_len {
                    return Err(Unanswerable::InvalidCorrelationId(format!(
                        "{} bytes, more than the {} accepted",
                        id.len(),
                        self.max_correlation_id_len
                    )));
                }
                Some(CorrelationId::from(id))
            }
            Lookup::Conflicting => {
                return Err(Unanswerable::ConflictingHeaders(
                    convention.correlation_id_header().to_owned(),
                ));
            }
        };
        let partition = match convention.reply_partition_header() {
            None => None,
            Some((name, encoding)) => match lookup(headers, name) {
                Lookup::Absent => None,
                Lookup::Conflicting => {
                    return Err(Unanswerable::ConflictingHeaders(name.to_owned()));
                }
                Lookup::Present(v) => Some(
                    decode_partition(v.unwrap_or_default(), encoding).map_err(|reason| {
                        Unanswerable::InvalidReplyPartition {
                            header: name.to_owned(),
                            reason,
                        }
                    })?,
                ),
            },
        };
        Ok(ReplyAddress {
            topic,
            partition,
            correlation_id,
            convention: Arc::clone(convention),
        })
    }
}

fn decode_partition(value: &[u8], encoding: PartitionEncoding) -> Result<i32, String> {
    let partition = match encoding {
        PartitionEncoding::BigEndianI32 => {
            let bytes: [u8; 4] = value.try_into().map_err(|_| {
                format!(
                    "expected 4 bytes (big-endian int), got {} bytes",
                    value.len()
                )
            })?;
            i32::from_be_bytes(bytes)
        }
        PartitionEncoding::AsciiDecimal => {
            if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
                return Err(format!(
                    "expected ASCII decimal digits, got {:?}",
                    String::from_utf8_lossy(&value[..value.len().min(32)])
                ));
            }
            // At most 10 ASCII digits: parses as u64 without overflow.
            let n: u64 = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            i32::try_from(n).map_err(|_| format!("partition {n} is out of range"))?
        }
    };
    if partition < 0 {
        return Err(format!("partition {partition} is negative"));
    }
    Ok(partition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::received::Received;

    fn headers(pairs: &[(&str, &[u8])]) -> Received {
        let pairs = pairs.iter().map(|(k, v)| (k.as_bytes(), Some(*v)));
        Received::new("requests", 0, 0, None, None, None, pairs)
    }

    fn all() -> AddressReader {
        AddressReader::new(
            ["spring", "smallrye", "plain"]
                .iter()
                .map(|n| n.parse().expect("preset")),
        )
    }

    fn resolve(reader: &AddressReader, h: Option<&Received>) -> Result<ReplyAddress, Unanswerable> {
        reader.read(&RequestHeaders::of(
            h.into_iter().flat_map(Received::headers),
        ))
    }

    #[test]
    fn spring_binary_address() {
        let corr = [7u8; 16];
        let h = headers(&[
            ("kafka_replyTopic", b"replies"),
            ("kafka_replyPartition", &[0, 0, 0, 2]),
            ("kafka_correlationId", &corr),
        ]);
        let a = resolve(&all(), Some(&h)).expect("address");
        assert_eq!(a.topic, "replies");
        assert_eq!(a.partition, Some(2));
        assert_eq!(a.correlation_id.as_deref(), Some(&corr[..]));
        assert_eq!(a.convention.name(), "spring");
    }

    #[test]
    fn plain_text_partition_and_smallrye_told_apart() {
        let h = headers(&[
            ("REPLY_TOPIC", b"r"),
            ("REPLY_PARTITION", b"11"),
            ("CORRELATION_ID", b"abc"),
        ]);
        let a = resolve(&all(), Some(&h)).expect("address");
        assert_eq!((a.convention.name(), a.partition), ("plain", Some(11)));

        let h = headers(&[
            ("REPLY_TOPIC", b"r"),
            ("REPLY_PARTITION", &[0, 0, 0, 11]),
            ("REPLY_CORRELATION_ID", b"abc"),
        ]);
        let a = resolve(&all(), Some(&h)).expect("address");
        assert_eq!((a.convention.name(), a.partition), ("smallrye", Some(11)));
    }

    #[test]
    fn missing_pieces_are_named() {
        let h = headers(&[("kafka_replyTopic", b"r")]);
        assert_eq!(
            resolve(&all(), Some(&h)).map_err(|e| e.code()),
            Err("missing_correlation_id")
        );
        let h = headers(&[("CORRELATION_ID", b"x")]);
        assert_eq!(
            resolve(&all(), Some(&h)).map_err(|e| e.code()),
            Err("missing_reply_topic")
        );
        let h = headers(&[("other", b"x")]);
        assert_eq!(resolve(&all(), Some(&h)), Err(Unanswerable::NoReplyAddress));
        assert_eq!(resolve(&all(), None), Err(Unanswerable::NoReplyAddress));
    }

    #[test]
    fn bad_partitions() {
        let cases: &[(&str, &[u8])] = &[
            ("kafka_replyPartition", &[0, 0, 1]),
            ("kafka_replyPartition", &[0, 0, 0, 0, 1]),
            ("kafka_replyPartition", &(-1i32).to_be_bytes()),
            ("kafka_replyPartition", b"1"),
        ];
        for (name, value) in cases {
            let h = headers(&[
                ("kafka_replyTopic", b"r"),
                ("kafka_correlationId", b"c"),
                (name, value),
            ]);
            assert_eq!(
                resolve(&all(), Some(&h)).map_err(|e| e.code()),
                Err("invalid_reply_partition"),
                "{value:?}"
            );
        }
        for value in [&b"-1"[..], b"", b"x", b"99999999999", b"\0\0\0\x01", b" 1"] {
            let h = headers(&[
                ("REPLY_TOPIC", b"r"),
                ("CORRELATION_ID", b"c"),
                ("REPLY_PARTITION", value),
            ]);
            assert_eq!(
                resolve(&all(), Some(&h)).map_err(|e| e.code()),
                Err("invalid_reply_partition"),
                "{value:?}"
            );
        }
        let h = headers(&[
            ("REPLY_TOPIC", b"r"),
            ("CORRELATION_ID", b"c"),
            ("REPLY_PARTITION", b"2147483647"),
        ]);
        assert_eq!(
            resolve(&all(), Some(&h)).map(|a| a.partition),
            Ok(Some(i32::MAX))
        );
    }

    #[test]
    fn duplicates() {
        let h = headers(&[
            ("kafka_replyTopic", b"a"),
            ("kafka_replyTopic", b"b"),
            ("kafka_correlationId", b"c"),
        ]);
        assert_eq!(
            resolve(&all(), Some(&h)),
            Err(Unanswerable::ConflictingHeaders("kafka_replyTopic".into()))
        );
        let h = headers(&[
            ("kafka_replyTopic", b"a"),
            ("kafka_replyTopic", b"a"),
            ("kafka_correlationId", b"c"),
        ]);
        assert_eq!(
            resolve(&all(), Some(&h)).map(|a| a.topic.to_string()),
            Ok("a".into())
        );
    }

    #[test]
    fn invalid_topics() {
        for t in [
            &b""[..],
            b"a/b",
            b"a b",
            b"a\0",
            b"\xff\xfe",
            b"..",
            &[b'x'; 250],
        ] {
            let h = headers(&[("kafka_replyTopic", t), ("kafka_correlationId", b"c")]);
            assert_eq!(
                resolve(&all(), Some(&h)).map_err(|e| e.code()),
                Err("invalid_reply_topic")
            );
        }
    }

    #[test]
    fn correlation_id_rules() {
        let long = vec![b'x'; 65 * 1024];
        for (corr, want) in [
            (&b""[..], Err("invalid_correlation_id")),
            (&long[..], Err("invalid_correlation_id")),
            (&long[..1024], Ok(1024)),
        ] {
            let h = headers(&[("kafka_replyTopic", b"r"), ("kafka_correlationId", corr)]);
            assert_eq!(
                resolve(&all(), Some(&h))
                    .map(|a| a.correlation_id.map_or(0, |c| c.len()))
                    .map_err(|e| e.code()),
                want
            );
        }
        let h = headers(&[("kafka_replyTopic", b"r")]);
        let lenient = all().missing_correlation_id(MissingCorrelationId::ReplyWithout);
        let a = lenient
            .read(&RequestHeaders::of(h.headers()))
            .expect("address");
        assert_eq!((a.topic.as_str(), a.correlation_id), ("r", None));
        // A correlation header of one convention does not hide another's reply topic.
        let h = headers(&[("kafka_correlationId", b"c"), ("REPLY_TOPIC", b"r")]);
        assert_eq!(
            lenient
                .read(&RequestHeaders::of(h.headers()))
                .map(|a| a.topic.to_string()),
            Ok("r".to_owned())
        );
        // A full match of a later convention beats a topic-only match of an earlier.
        let h = headers(&[("REPLY_TOPIC", b"r"), ("CORRELATION_ID", b"c")]);
        let a = lenient
            .read(&RequestHeaders::of(h.headers()))
            .expect("address");
        assert_eq!(a.convention.name(), "plain");
        assert_eq!(a.correlation_id.as_deref(), Some(&b"c"[..]));
        let strict = all().max_correlation_id_len(4);
        let h = headers(&[
            ("kafka_replyTopic", b"r"),
            ("kafka_correlationId", b"12345"),
        ]);
        assert!(strict.read(&RequestHeaders::of(h.headers())).is_err());
    }
}
