use kafka_responder::{ErrorReply, Handler, RequestContext};

#[derive(Handler)]
#[handler(
    topic = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    codec = json,
    request = String,
    reply = String,
    method = answer
)]
struct Kyc;

impl Kyc {
    async fn answer(&self, s: String, _cx: &RequestContext) -> Result<String, ErrorReply> {
        Ok(s)
    }
}

fn main() {}
