#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use responder_core::*;
/// Derives [`Handler`](trait@Handler) and [`IntoRoutes`] for a type with an inherent
/// answering method. See the crate docs ("The derive").
pub use responder_macros::Handler;

/// Paths the derive's generated code uses. Not public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "bincode")]
    pub use responder_core::Bincode;
    pub use responder_core::topic::assert_request_topic;
    pub use responder_core::{ErrorReply, Handler, IntoRoutes, Json, Raw, RequestContext, Route};
}
