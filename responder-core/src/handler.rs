//! The [`Handler`] trait a service implements, and its type-erased form used by the
//! router.

use std::future::Future;
use std::pin::Pin;

use crate::codec::Codec;
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

/// A boxed future, as served by an [`Endpoint`].
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of a handler with its codec: payload bytes in, reply bytes or
/// an error reply out. The one place a request's future is boxed (type erasure).
pub(crate) trait Endpoint: Send + Sync + 'static {
    fn serve<'a>(&'a self, cx: &'a RequestContext) -> BoxFuture<'a, Result<Vec<u8>, ErrorReply>>;
}

impl<C: Codec> Endpoint for C {
    fn serve<'a>(&'a self, cx: &'a RequestContext) -> BoxFuture<'a, Result<Vec<u8>, ErrorReply>> {
        Box::pin(async move {
            let request = self
                .decode(cx.payload().unwrap_or_default())
                .map_err(|e| ErrorReply::bad_request(e.to_string()))?;
            let reply = self
                .handler()
                .handle(request, cx)
                .await
                .map_err(Into::into)?;
            self.encode(reply)
                .map_err(|e| ErrorReply::internal(format!("reply could not be encoded: {e}")))
        })
    }
}
