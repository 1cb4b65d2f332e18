//! Codecs: how a route's request and reply types travel as bytes.
//!
//! A codec is chosen per route, next to the handler and apart from it:
//! `Route::new("requests", Json, MyHandler)`. The codecs here are [`Json`], [`Bincode`]
//! (feature `bincode`) and [`Raw`]; any other format is a type of your own that
//! implements [`Codec`] for the request and reply types it can carry.
//!
//! ```
//! use responder_core::{Codec, CodecError};
//!
//! /// UTF-8 text in and out.
//! #[derive(Debug, Clone, Copy, Default)]
//! struct Text;
//!
//! impl Codec<String, String> for Text {
//!     fn decode(&self, payload: &[u8]) -> Result<String, CodecError> {
//!         String::from_utf8(payload.to_vec()).map_err(|e| CodecError::new("text", e))
//!     }
//!
//!     fn encode(&self, reply: String) -> Result<Vec<u8>, CodecError> {
//!         Ok(reply.into_bytes())
//!     }
//! }
//!
//! assert_eq!(Text.decode(b"hi").unwrap(), "hi");
//! assert!(Text.decode(b"\xff").is_err());
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A payload could not be decoded, or a reply could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("{format}: {message}")]
pub struct CodecError {
    format: &'static str,
    message: String,
}

impl CodecError {
    /// A codec error of the named format.
    pub fn new(format: &'static str, message: impl ToString) -> Self {
        CodecError {
            format,
            message: message.to_string(),
        }
    }

    /// The format's name, as given to [`CodecError::new`].
    pub fn format(&self) -> &'static str {
        self.format
    }
}

/// A format that decodes requests of type `Req` and encodes replies of type `Rep`.
///
/// A payload that does not decode is answered with a `bad_request` error reply; a reply
/// that does not encode with `internal_error`.
pub trait Codec<Req, Rep>: Send + Sync + 'static {
    /// Decodes a request payload (a tombstone arrives as an empty slice).
    fn decode(&self, payload: &[u8]) -> Result<Req, CodecError>;

    /// Encodes a reply payload.
    fn encode(&self, reply: Rep) -> Result<Vec<u8>, CodecError>;
}

/// JSON payloads (serde_json), for any `DeserializeOwned` request and `Serialize`
/// reply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<Req: DeserializeOwned, Rep: Serialize> Codec<Req, Rep> for Json {
    fn decode(&self, payload: &[u8]) -> Result<Req, CodecError> {
        serde_json::from_slice(payload).map_err(|e| CodecError::new("json", e))
    }

    fn encode(&self, reply: Rep) -> Result<Vec<u8>, CodecError> {
        // Sized like the last reply this thread encoded: a service's replies are
        // mostly alike, and a buffer grown by doubling from serde_json's 128 bytes
        // reallocates (and often copies) six times for a 10 KiB reply.
        thread_local! {
            static LAST_LEN: std::cell::Cell<usize> = const { std::cell::Cell::new(128) };
        }
        let hint = LAST_LEN.with(std::cell::Cell::get);
        // Bounded: one large reply does not make every later one reserve as much (the
        // buffer is held until the reply is acknowledged). Recycled: see `reply_buffers`.
        let mut out = crate::reply_buffers::take(hint.clamp(128, 64 << 10) + 64);
        serde_json::to_writer(&mut out, &reply).map_err(|e| CodecError::new("json", e))?;
        LAST_LEN.with(|last| last.set(out.len()));
        Ok(out)
    }
}

/// Bincode 1.x payloads (feature `bincode`). Decoding is bounded by the payload's own
/// length, and trailing bytes are refused.
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

#[cfg(feature = "bincode")]
impl<Req: DeserializeOwned, Rep: Serialize> Codec<Req, Rep> for Bincode {
    fn decode(&self, payload: &[u8]) -> Result<Req, CodecError> {
        use bincode::Options;
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(payload.len() as u64)
            .deserialize(payload)
            .map_err(|e| CodecError::new("bincode", e))
    }

    fn encode(&self, reply: Rep) -> Result<Vec<u8>, CodecError> {
        let error = |e| CodecError::new("bincode", e);
        let size = bincode::serialized_size(&reply).map_err(error)?;
        // Recycled: see `reply_buffers`.
        let mut out = crate::reply_buffers::take(usize::try_from(size).unwrap_or(0));
        bincode::serialize_into(&mut out, &reply).map_err(error)?;
        Ok(out)
    }
}

/// Raw bytes in and out: the handler's request and reply are `Vec<u8>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec<Vec<u8>, Vec<u8>> for Raw {
    fn decode(&self, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(payload.to_vec())
    }

    fn encode(&self, reply: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        Ok(reply)
    }
}
