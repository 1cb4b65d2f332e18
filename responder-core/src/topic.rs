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

/// What is wrong with a topic name: Kafka's rules, in a `const fn` so that the derive's
/// compile-time check ([`assert_request_topic`]) and the run-time checks share them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Empty,
    TooLong,
    Dots,
    IllegalByte(usize),
}

const fn problem(name: &[u8]) -> Option<Problem> {
    if name.is_empty() {
        return Some(Problem::Empty);
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Some(Problem::TooLong);
    }
    if matches!(name, b"." | b"..") {
        return Some(Problem::Dots);
    }
    let mut i = 0;
    while i < name.len() {
        if !LEGAL[name[i] as usize] {
            return Some(Problem::IllegalByte(i));
        }
        i += 1;
    }
    None
}

/// The bytes a topic name may hold, by value: ASCII letters, digits, `.`, `_` and
/// `-` (a reply topic is checked per request; a table lookup per byte is the cheapest
/// test).
const LEGAL: [bool; 256] = {
    let mut legal = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        legal[b] = byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
        b += 1;
    }
    legal
};

/// Checks `name` against Kafka's topic naming rules and returns it as `&str`.
///
/// ```
/// use responder_core::topic::validate_topic_name;
/// assert_eq!(validate_topic_name(b"WALLET-KYC-RESPONSE"), Ok("WALLET-KYC-RESPONSE"));
/// assert!(validate_topic_name(b"a/b").is_err());
/// assert!(validate_topic_name(b"..").is_err());
/// ```
pub fn validate_topic_name(name: &[u8]) -> Result<&str, TopicNameError> {
    let illegal = |index: usize| TopicNameError::IllegalByte {
        name: String::from_utf8_lossy(name).into_owned(),
        byte: name[index],
        index,
    };
    match problem(name) {
        Some(Problem::Empty) => Err(TopicNameError::Empty),
        Some(Problem::TooLong) => Err(TopicNameError::TooLong(name.len())),
        Some(Problem::Dots) => Err(TopicNameError::Dots),
        Some(Problem::IllegalByte(index)) => Err(illegal(index)),
        // Only ASCII bytes remain, so this cannot fail (and takes the ASCII path).
        None => responder_ffi::utf8::from_utf8(name).map_err(|e| illegal(e.valid_up_to())),
    }
}

/// The derive's compile-time check of a request topic named in `#[handler(...)]`:
/// Kafka's naming rules, and not an internal topic. Evaluated in a constant, so a bad
/// name fails the build with the rule it breaks. Not meant to be called otherwise.
#[doc(hidden)]
pub const fn assert_request_topic(name: &str) {
    match problem(name.as_bytes()) {
        Some(Problem::Empty) => panic!("a topic name cannot be empty"),
        Some(Problem::TooLong) => panic!("a topic name has at most 249 characters"),
        Some(Problem::Dots) => panic!("a topic name cannot be `.` or `..`"),
        Some(Problem::IllegalByte(_)) => {
            panic!("a topic name has only ASCII letters, digits, `.`, `_` and `-` (Kafka's rule)")
        }
        None => {}
    }
    if is_internal_topic(name) {
        panic!("topics starting with `__` are Kafka's internal topics");
    }
}

/// Whether `name` is one of Kafka's internal topics (`__consumer_offsets`,
/// `__transaction_state`, ...): every name that starts with two underscores.
pub const fn is_internal_topic(name: &str) -> bool {
    matches!(name.as_bytes(), [b'_', b'_', ..])
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
    fn every_byte_is_judged_by_kafkas_rule() {
        for b in 0..=255u8 {
            let legal = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
            assert_eq!(validate_topic_name(&[b'a', b]).is_ok(), legal, "byte {b}");
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

    // The derive's check holds in a constant for a good name...
    const _: () = assert_request_topic("WALLET-KYC-REQUEST");

    #[test]
    fn the_compile_time_check_refuses_what_the_run_time_check_refuses() {
        for bad in ["", ".", "..", "a/b", "a b", "café", "__consumer_offsets"] {
            let long = "x".repeat(250);
            for name in [bad, long.as_str()] {
                let refused = std::panic::catch_unwind(|| assert_request_topic(name)).is_err();
                let invalid =
                    validate_topic_name(name.as_bytes()).is_err() || is_internal_topic(name);
                assert!(refused && invalid, "{name:?}");
            }
        }
        assert!(std::panic::catch_unwind(|| assert_request_topic("a.b_c-D9")).is_ok());
    }

    #[test]
    fn internal_topics() {
        assert!(is_internal_topic("__consumer_offsets"));
        assert!(is_internal_topic("__transaction_state"));
        assert!(!is_internal_topic("_schemas"));
    }
}
