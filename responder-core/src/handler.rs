//! The [`Handler`] trait a service implements.

use std::future::Future;

use crate::context::RequestContext;
use crate::error_reply::ErrorReply;

/// Answers requests of one kind: an `async fn` in the impl (native async functions in
/// traits; no macro). Its future must be `Send`, as requests run on a multi-threaded
/// runtime: the compiler says so at the impl when it is not.
///
/// ```
/// use responder_core::{ErrorReply, Handler, RequestContext};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Request = String;
///     type Reply = String;
///     type Error = ErrorReply;
///
///     async fn handle(&self, req: String, _cx: &RequestContext) -> Result<String, ErrorReply> {
///         if req.is_empty() {
///             return Err(ErrorReply::bad_request("empty"));
///         }
///         Ok(req)
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The decoded request.
    type Request: Send + 'static;
    /// The reply, encoded by the route's codec.
    type Reply: Send + 'static;
    /// The handler's error; it becomes an error reply.
    type Error: Into<ErrorReply> + Send + 'static;

    /// Answers one request.
    fn handle(
        &self,
        request: Self::Request,
        cx: &RequestContext,
    ) -> impl Future<Output = Result<Self::Reply, Self::Error>> + Send;
}

/// A shared handler answers like the handler itself (one handler serving several
/// topics is shared this way).
impl<H: Handler> Handler for std::sync::Arc<H> {
    type Request = H::Request;
    type Reply = H::Reply;
    type Error = H::Error;

    fn handle(
        &self,
        request: Self::Request,
        cx: &RequestContext,
    ) -> impl Future<Output = Result<Self::Reply, Self::Error>> + Send {
        (**self).handle(request, cx)
    }
}
