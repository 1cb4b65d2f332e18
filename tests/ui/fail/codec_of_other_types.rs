use kafka_responder::{ErrorReply, Handler, RequestContext};

// `raw` carries `Vec<u8>` only: the error names the types it would need.
#[derive(Handler)]
#[handler(topic = "requests", codec = raw, request = String, reply = String, method = answer)]
struct Kyc;

impl Kyc {
    async fn answer(&self, s: String, _cx: &RequestContext) -> Result<String, ErrorReply> {
        Ok(s)
    }
}

fn main() {}
