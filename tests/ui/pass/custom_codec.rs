//! A codec of the user's own, named by path in the derive.
use kafka_responder::{Codec, CodecError, ErrorReply, Handler, IntoRoutes, RequestContext};

mod formats {
    /// UTF-8 text in and out.
    #[derive(Default)]
    pub struct Text;

    impl kafka_responder::Codec<String, String> for Text {
        fn decode(&self, payload: &[u8]) -> Result<String, kafka_responder::CodecError> {
            String::from_utf8(payload.to_vec())
                .map_err(|e| kafka_responder::CodecError::new("text", e))
        }

        fn encode(&self, reply: String) -> Result<Vec<u8>, kafka_responder::CodecError> {
            Ok(reply.into_bytes())
        }
    }
}

#[derive(Handler)]
#[handler(topic = "shout", codec = formats::Text, request = String, reply = String, method = shout)]
struct Shout;

impl Shout {
    async fn shout(&self, s: String, _cx: &RequestContext) -> Result<String, ErrorReply> {
        Ok(s.to_uppercase())
    }
}

fn main() {
    assert_eq!(Shout::TOPICS, ["shout"]);
    assert_eq!(Shout.into_routes().len(), 1);
    let decoded: Result<String, CodecError> = formats::Text.decode(b"hi");
    assert_eq!(decoded.unwrap(), "hi");
}
