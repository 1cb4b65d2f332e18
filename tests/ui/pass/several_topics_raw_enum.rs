use kafka_responder::{Handler, IntoRoutes, RequestContext, Responder};

/// Raw bytes, two topics, an enum, an error type of its own.
#[derive(Handler)]
#[handler(
    topics = ["echo-a", "echo-b"],
    codec = "raw",
    request = Vec<u8>,
    reply = Vec<u8>,
    error = Refused,
    method = echo,
)]
enum Echo {
    Forward,
    Backward,
}

struct Refused;

impl From<Refused> for kafka_responder::ErrorReply {
    fn from(_: Refused) -> Self {
        kafka_responder::ErrorReply::new("refused", "empty request")
    }
}

impl Echo {
    async fn echo(&self, mut b: Vec<u8>, _cx: &RequestContext) -> Result<Vec<u8>, Refused> {
        if b.is_empty() {
            return Err(Refused);
        }
        if let Echo::Backward = self {
            b.reverse();
        }
        Ok(b)
    }
}

#[derive(Handler)]
#[handler(topic = "other", codec = raw, request = Vec<u8>, reply = Vec<u8>, method = echo)]
struct Other;

impl Other {
    async fn echo(&self, b: Vec<u8>, _cx: &RequestContext) -> Result<Vec<u8>, kafka_responder::ErrorReply> {
        Ok(b)
    }
}

fn main() {
    assert_eq!(Echo::TOPICS, ["echo-a", "echo-b"]);
    // One responder serving several derived handlers, topics taken from the derives.
    let built = Responder::builder()
        .bootstrap_servers("127.0.0.1:1")
        .group_id("echo")
        .handler(Echo::Backward)
        .handler(Other)
        .reply_topics("replies*".parse().unwrap())
        .build();
    assert!(built.is_ok());
    let _ = Echo::Forward;
}
