//! Codecs: how a handler's request and reply types travel as bytes.
//!
//! A route pairs a [`Handler`] with a codec by wrapping it: [`Json`], [`Bincode`]
//! (feature `bincode`) or [`Raw`]. Implement [`Codec`] on a wrapper of your own for any
//! other format.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::handler::Handler;

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
}

/// A handler together with the format of its payloads.
pub trait Codec: Send + Sync + 'static {
    /// The wrapped handler.
    type Handler: Handler;

    /// The wrapped handler.
    fn handler(&self) -> &Self::Handler;

    /// Decodes a request payload (a tombstone arrives as an empty slice).
    fn decode(&self, payload: &[u8]) -> Result<<Self::Handler as Handler>::Request, CodecError>;

    /// Encodes a reply payload.
    fn encode(&self, reply: <Self::Handler as Handler>::Reply) -> Result<Vec<u8>, CodecError>;
}

/// JSON payloads (serde_json).
#[derive(Debug, Clone, Default)]
pub struct Json<H>(pub H);

impl<H> Codec for Json<H>
where
    H: Handler,
    H::Request: DeserializeOwned,
    H::Reply: Serialize,
{
    type Handler = H;

    fn handler(&self) -> &H {
        &self.0
    }

    fn decode(&self, payload: &[u8]) -> Result<H::Request, CodecError> {
        serde_json::from_slice(payload).map_err(|e| CodecError::new("json", e))
    }

    fn encode(&self, reply: H::Reply) -> Result<Vec<u8>, CodecError> {
        // Sized like the last reply this thread encoded: a service's replies are
        // mostly alike, and a buffer grown by doubling from serde_json's 128 bytes
        // reallocates (and often copies) six times for a 10 KiB reply.
        thread_local! {
            static LAST_LEN: std::cell::Cell<usize> = const { std::cell::Cell::new(128) };
        }
        let hint = LAST_LEN.with(std::cell::Cell::get);
        // Bounded: one large reply does not make every later one reserve as much (the
        // buffer is held until the reply is acknowledged).
        let mut out = Vec::with_capacity(hint.clamp(128, 64 << 10) + 64);
        serde_json::to_writer(&mut out, &reply).map_err(|e| CodecError::new("json", e))?;
        LAST_LEN.with(|last| last.set(out.len()));
        Ok(out)
    }
}

/// Bincode 1.x payloads (feature `bincode`). Decoding is bounded by the payload's own
/// length, and trailing bytes are refused.
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Default)]
pub struct Bincode<H>(pub H);

#[cfg(feature = "bincode")]
impl<H> Codec for Bincode<H>
where
    H: Handler,
    H::Request: DeserializeOwned,
    H::Reply: Serialize,
{
    type Handler = H;

    fn handler(&self) -> &H {
        &self.0
    }

    fn decode(&self, payload: &[u8]) -> Result<H::Request, CodecError> {
        use bincode::Options;
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(payload.len() as u64)
            .deserialize(payload)
            .map_err(|e| CodecError::new("bincode", e))
    }

    fn encode(&self, reply: H::Reply) -> Result<Vec<u8>, CodecError> {
        bincode::serialize(&reply).map_err(|e| CodecError::new("bincode", e))
    }
}

/// Raw bytes in and out: the handler's request and reply are `Vec<u8>`.
#[derive(Debug, Clone, Default)]
pub struct Raw<H>(pub H);

impl<H> Codec for Raw<H>
where
    H: Handler<Request = Vec<u8>, Reply = Vec<u8>>,
{
    type Handler = H;

    fn handler(&self) -> &H {
        &self.0
    }

    fn decode(&self, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(payload.to_vec())
    }

    fn encode(&self, reply: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        Ok(reply)
    }
}
