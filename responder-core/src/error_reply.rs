//! Error replies: what a requester receives when its request failed.
//!
//! An error reply goes to the request's reply address with the echoed correlation id,
//! no payload, and two headers: [`ERROR_CODE_HEADER`] (a stable machine-readable code)
//! and [`ERROR_MESSAGE_HEADER`] (a human-readable message). Conventions with an error
//! header of their own (SmallRye's `REPLY_ERROR`, NestJS's `kafka_nest-err`) also get
//! the message there.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;

use crate::codes;

/// Header carrying an error reply's stable code (UTF-8), e.g. `bad_request`.
pub const ERROR_CODE_HEADER: &str = "responder-error-code";
/// Header carrying an error reply's message (UTF-8).
pub const ERROR_MESSAGE_HEADER: &str = "responder-error-message";

/// An error reply: a stable code and a message.
///
/// A handler's error type converts into it (`type Error: Into<ErrorReply>`):
///
/// ```
/// use responder_core::ErrorReply;
///
/// enum KycError { UnknownWallet(String) }
///
/// impl From<KycError> for ErrorReply {
///     fn from(e: KycError) -> Self {
///         match e {
///             KycError::UnknownWallet(w) => ErrorReply::new("not_found", format!("no wallet {w}")),
///         }
///     }
/// }
/// let reply: ErrorReply = KycError::UnknownWallet("w1".into()).into();
/// assert_eq!(reply.code(), "not_found");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    code: Cow<'static, str>,
    message: String,
}

impl ErrorReply {
    /// An error reply with the given code and message.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ErrorReply {
            code: code.into(),
            message: message.into(),
        }
    }

    /// `bad_request`: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(codes::BAD_REQUEST, message)
    }

    /// `internal_error`: the responder failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL_ERROR, message)
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<Infallible> for ErrorReply {
    fn from(e: Infallible) -> Self {
        match e {}
    }
}

impl From<String> for ErrorReply {
    /// A message with the code `handler_error`.
    fn from(message: String) -> Self {
        Self::new(codes::HANDLER_ERROR, message)
    }
}

impl From<&'static str> for ErrorReply {
    /// A message with the code `handler_error`.
    fn from(message: &'static str) -> Self {
        Self::new(codes::HANDLER_ERROR, message)
    }
}
