//! Kafka topic names: the broker's own rules, checked before a name is used.

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Why a byte string is not a valid Kafka topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicNameError {
    /// The name is empty.
    #[error("topic name is empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_NAME_LEN`] bytes.
    #[error("topic name is {0} bytes long, more than 249")]
    TooLong(usize),
    /// The name is `.` or `..`.
    #[error("topic name may not be `.` or `..`")]
    Dots,
    /// The name holds a byte outside `[A-Za-z0-9._-]`.
    #[error(
        "topic name {name:?} has the byte {byte:#04x} at {index}; only [A-Za-z0-9._-] are allowed"
    )]
    IllegalByte {
        /// The name, lossily decoded for display.
        name: String,
        /// The offending byte.
        byte: u8,
        /// Where it stands.
        index: usize,
    },
}

/// Checks `name` against Kafka's topic naming rules and returns it as `&str`.
///
/// ```
/// use responder_core::topic::validate_topic_name;
/// assert_eq!(validate_topic_name(b"WALLET-KYC-RESPONSE"), Ok("WALLET-KYC-RESPONSE"));
/// assert!(validate_topic_name(b"a/b").is_err());
/// assert!(validate_topic_name(b"..").is_err());
/// ```
pub fn validate_topic_name(name: &[u8]) -> Result<&str, TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(TopicNameError::TooLong(name.len()));
    }
    if name == b"." || name == b".." {
        return Err(TopicNameError::Dots);
    }
    if let Some(index) = name
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    {
        return Err(TopicNameError::IllegalByte {
            name: String::from_utf8_lossy(name).into_owned(),
            byte: name[index],
            index,
        });
    }
    // Only ASCII bytes remain, so this cannot fail.
    std::str::from_utf8(name).map_err(|e| TopicNameError::IllegalByte {
        name: String::from_utf8_lossy(name).into_owned(),
        byte: name[e.valid_up_to()],
        index: e.valid_up_to(),
    })
}

/// Whether `name` is one of Kafka's internal topics (`__consumer_offsets`,
/// `__transaction_state`, ...): every name that starts with two underscores.
pub fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_names() {
        for ok in ["a", "A-b_c.d", "0", &"x".repeat(249), "..."] {
            assert_eq!(validate_topic_name(ok.as_bytes()), Ok(ok));
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(validate_topic_name(b""), Err(TopicNameError::Empty));
        assert_eq!(
            validate_topic_name("x".repeat(250).as_bytes()),
            Err(TopicNameError::TooLong(250))
        );
        assert_eq!(validate_topic_name(b"."), Err(TopicNameError::Dots));
        assert_eq!(validate_topic_name(b".."), Err(TopicNameError::Dots));
        for bad in [&b"a/b"[..], b"a b", b"a\0b", b"caf\xc3\xa9", b"\xff"] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(TopicNameError::IllegalByte { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn internal_topics() {
        assert!(is_internal_topic("__consumer_offsets"));
        assert!(is_internal_topic("__transaction_state"));
        assert!(!is_internal_topic("_schemas"));
    }
}
