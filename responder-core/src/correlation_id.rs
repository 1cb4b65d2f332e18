//! A request's correlation id, as the reply echoes it: bytes, kept inline when short.

use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

/// Bytes kept inline, without an allocation: Spring's 16-byte ids, a UUID as text
/// (36), NestJS's ids. A longer id is allocated.
const INLINE: usize = 40;

/// A correlation id, byte for byte as the request carried it. It reads as `&[u8]`
/// (it derefs to a slice) and shows as text when it is printable ASCII, else as hex.
///
/// A request's reply address is read for every request and held until its reply is
/// acknowledged: kept inline, the id costs no allocation while hundreds of requests
/// are in flight.
///
/// ```
/// use responder_core::CorrelationId;
///
/// let id = CorrelationId::from(&b"order-42"[..]);
/// assert_eq!(&*id, b"order-42");
/// assert_eq!(id.to_string(), "order-42");
/// assert_eq!(CorrelationId::from(vec![0x00, 0xff]).to_string(), "00ff");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(SmallVec<[u8; INLINE]>);

impl CorrelationId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for CorrelationId {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for CorrelationId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for CorrelationId {
    fn from(bytes: &[u8]) -> Self {
        CorrelationId(SmallVec::from_slice(bytes))
    }
}

impl From<Vec<u8>> for CorrelationId {
    fn from(bytes: Vec<u8>) -> Self {
        // A short id is copied inline (`SmallVec::from_vec` goes by the capacity, and
        // would keep a short id's spare heap); a long one keeps the vector's allocation.
        if bytes.len() <= INLINE {
            CorrelationId(SmallVec::from_slice(&bytes))
        } else {
            CorrelationId(SmallVec::from_vec(bytes))
        }
    }
}

impl std::borrow::Borrow<[u8]> for CorrelationId {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<CorrelationId> for Vec<u8> {
    fn from(id: CorrelationId) -> Self {
        id.0.into_vec()
    }
}

impl PartialEq<[u8]> for CorrelationId {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&[u8]> for CorrelationId {
    fn eq(&self, other: &&[u8]) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Vec<u8>> for CorrelationId {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self.0 == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for CorrelationId {
    fn eq(&self, other: &[u8; N]) -> bool {
        *self.0 == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for CorrelationId {
    fn eq(&self, other: &&[u8; N]) -> bool {
        *self.0 == **other
    }
}

/// Printable ASCII as text, anything else as lowercase hex (as the responder's log
/// events show it; the text `00ff` and the bytes `[0x00, 0xff]` show alike: compare
/// the bytes, not the text).
impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = &*self.0;
        if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_graphic) {
            // Printable ASCII is valid UTF-8.
            f.write_str(std::str::from_utf8(bytes).unwrap_or_default())
        } else {
            bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
}

/// As `Display`, quoted when text: `"order-42"`, or `0x00ff`.
impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = &*self.0;
        if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_graphic) {
            write!(f, "{:?}", std::str::from_utf8(bytes).unwrap_or_default())
        } else {
            write!(f, "0x{self}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids up to the inline size stay inline; longer ones are kept whole; every id
    /// reads back byte for byte.
    #[test]
    fn ids_read_back_byte_for_byte_inline_or_not() {
        for len in [1, 16, 36, INLINE, INLINE + 1, 255] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let from_slice = CorrelationId::from(&bytes[..]);
            let from_vec = CorrelationId::from(bytes.clone());
            assert_eq!(&*from_slice, &bytes[..]);
            assert_eq!(from_slice, from_vec);
            assert_eq!(from_slice, bytes);
            assert_eq!(from_slice.0.spilled(), len > INLINE, "{len}");
            assert_eq!(from_vec.0.spilled(), len > INLINE, "{len}");
            // A short id in a vector with spare room is still kept inline.
            let mut roomy = Vec::with_capacity(4 * INLINE);
            roomy.extend_from_slice(&bytes);
            assert_eq!(
                CorrelationId::from(roomy).0.spilled(),
                len > INLINE,
                "{len}"
            );
            assert_eq!(Vec::from(from_vec), bytes);
        }
    }

    #[test]
    fn shown_as_text_when_printable_else_as_hex() {
        let text = CorrelationId::from(&b"3f1c-uuid"[..]);
        assert_eq!(text, b"3f1c-uuid");
        assert_eq!(text, *b"3f1c-uuid");
        assert_eq!(text.to_string(), "3f1c-uuid");
        assert_eq!(format!("{text:?}"), "\"3f1c-uuid\"");
        let binary = CorrelationId::from(&[0x12, 0xab, b' '][..]);
        assert_eq!(binary.to_string(), "12ab20");
        assert_eq!(format!("{binary:?}"), "0x12ab20");
    }
}
