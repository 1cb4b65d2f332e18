//! Codec decoding on arbitrary payloads: JSON, bincode and raw. A payload either
//! fails with a `CodecError` or decodes to a value that encodes and decodes back to
//! itself; nothing panics, overflows the stack or allocates without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use responder_core::{Bincode, Codec, ErrorReply, Handler, Json, Raw, RequestContext};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Request {
    id: u64,
    wallet: String,
    amount_cents: i64,
    tags: Vec<String>,
    note: Option<String>,
    kind: Kind,
    next: Option<Box<Request>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Payment,
    Refund { of: u64 },
    Check(Vec<u8>),
}

struct Sink;

impl Handler for Sink {
    type Request = Request;
    type Reply = Request;
    type Error = ErrorReply;

    async fn handle(&self, r: Request, _cx: &RequestContext) -> Result<Request, ErrorReply> {
        Ok(r)
    }
}

struct Bytes;

impl Handler for Bytes {
    type Request = Vec<u8>;
    type Reply = Vec<u8>;
    type Error = ErrorReply;

    async fn handle(&self, r: Vec<u8>, _cx: &RequestContext) -> Result<Vec<u8>, ErrorReply> {
        Ok(r)
    }
}

fn round_trip<C: Codec>(codec: &C, payload: &[u8])
where
    <C::Handler as Handler>::Request: Into<<C::Handler as Handler>::Reply> + Clone + PartialEq + std::fmt::Debug,
{
    if let Ok(request) = codec.decode(payload) {
        let encoded = codec
            .encode(request.clone().into())
            .expect("a decoded value encodes");
        let again = codec.decode(&encoded).expect("an encoded value decodes");
        assert_eq!(again, request);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip(&Json(Sink), data);
    round_trip(&Bincode(Sink), data);
    round_trip(&Raw(Bytes), data);
});
