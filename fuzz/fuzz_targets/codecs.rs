//! Codec decoding on arbitrary payloads: JSON, bincode and raw. A payload either
//! fails with a `CodecError` or decodes to a value that encodes and decodes back to
//! itself; nothing panics, overflows the stack or allocates without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use responder_core::{Bincode, Codec, Json, Raw};
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

fn round_trip<T, C>(codec: &C, payload: &[u8])
where
    T: Clone + PartialEq + std::fmt::Debug,
    C: Codec<T, T>,
{
    if let Ok(request) = codec.decode(payload) {
        let encoded = codec.encode(request.clone()).expect("a decoded value encodes");
        let again = codec.decode(&encoded).expect("an encoded value decodes");
        assert_eq!(again, request);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Request, _>(&Json, data);
    round_trip::<Request, _>(&Bincode, data);
    round_trip::<Vec<u8>, _>(&Raw, data);
});
