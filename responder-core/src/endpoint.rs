//! A route's handler and codec, erased to one object-safe type: the one place a
//! request's future is boxed.

use std::future::Future;
use std::pin::Pin;

use crate::codec::Codec;
use crate::context::RequestContext;
use crate::error_reply::ErrorReply;
use crate::handler::Handler;

/// A boxed future, as served by an [`Endpoint`].
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Payload bytes in, reply bytes or an error reply out.
pub(crate) trait Endpoint: Send + Sync + 'static {
    fn serve<'a>(&'a self, cx: &'a RequestContext) -> BoxFuture<'a, Result<Vec<u8>, ErrorReply>>;
}

/// A handler with the codec of its route.
pub(crate) struct Served<C, H> {
    pub(crate) codec: C,
    pub(crate) handler: H,
}

/// Decodes, handles, encodes, as the responder runs every request: a payload that does
/// not decode is a `bad_request`, a reply that does not encode an `internal_error`.
pub(crate) async fn run<C, H>(
    codec: &C,
    handler: &H,
    cx: &RequestContext,
) -> Result<Vec<u8>, ErrorReply>
where
    H: Handler,
    C: Codec<H::Request, H::Reply>,
{
    let request = codec
        .decode(cx.payload().unwrap_or_default())
        .map_err(|e| ErrorReply::bad_request(e.to_string()))?;
    let reply = handler.handle(request, cx).await.map_err(Into::into)?;
    codec
        .encode(reply)
        .map_err(|e| ErrorReply::internal(format!("reply could not be encoded: {e}")))
}

impl<C, H> Endpoint for Served<C, H>
where
    H: Handler,
    C: Codec<H::Request, H::Reply>,
{
    fn serve<'a>(&'a self, cx: &'a RequestContext) -> BoxFuture<'a, Result<Vec<u8>, ErrorReply>> {
        Box::pin(run(&self.codec, &self.handler, cx))
    }
}
