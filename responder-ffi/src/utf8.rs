//! Text from bytes, with a fast path for ASCII: topic names (Kafka allows only ASCII
//! in them) and header keys (ASCII in practice) are read per request.
//!
//! `std::str::from_utf8` spends some 140 instructions (under callgrind) on a 20-byte
//! ASCII key; checking that every byte is ASCII, a word at a time, spends a fraction
//! of that, and ASCII is UTF-8.

use std::str::Utf8Error;

/// `bytes` as text: checked as ASCII first (the common case, and the cheap one), as
/// UTF-8 otherwise.
///
/// ```
/// use responder_ffi::utf8::from_utf8;
///
/// assert_eq!(from_utf8(b"kafka_replyTopic"), Ok("kafka_replyTopic"));
/// assert_eq!(from_utf8("café".as_bytes()), Ok("café"));
/// assert!(from_utf8(b"\xff").is_err());
/// ```
#[inline]
pub fn from_utf8(bytes: &[u8]) -> Result<&str, Utf8Error> {
    if bytes.is_ascii() {
        // SAFETY: every byte is ASCII, and ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agrees with the standard library on every input it is given: ASCII, multi-byte
    /// text, and invalid sequences at every position of a word.
    #[test]
    fn agrees_with_std() {
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            b"kafka_correlationId".to_vec(),
            "r\u{e9}ponse \u{1f600}".as_bytes().to_vec(),
            b"\xc3".to_vec(),
            b"\xed\xa0\x80".to_vec(),
        ];
        for at in 0..20 {
            for bad in [0x80u8, 0xff, 0xc3] {
                let mut v = vec![b'x'; 20];
                v[at] = bad;
                inputs.push(v);
            }
        }
        for input in &inputs {
            assert_eq!(from_utf8(input), std::str::from_utf8(input), "{input:?}");
        }
    }
}
