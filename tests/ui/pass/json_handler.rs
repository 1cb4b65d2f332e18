use kafka_responder::{ErrorReply, Handler, IntoRoutes, RequestContext, Responder};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Query {
    wallet_id: String,
}

#[derive(Serialize)]
struct Score {
    wallet_id: String,
    score: u8,
}

#[derive(Handler)]
#[handler(topic = "WALLET-KYC-REQUEST", codec = json, request = Query, reply = Score, method = score)]
struct Kyc {
    default_score: u8,
}

impl Kyc {
    async fn score(&self, q: Query, _cx: &RequestContext) -> Result<Score, ErrorReply> {
        Ok(Score { wallet_id: q.wallet_id, score: self.default_score })
    }
}

fn main() {
    assert_eq!(Kyc::TOPICS, ["WALLET-KYC-REQUEST"]);
    let responder = Responder::builder()
        .bootstrap_servers("127.0.0.1:1")
        .group_id("kyc")
        .handler(Kyc { default_score: 50 })
        .reply_topics("WALLET-KYC-RESPONSE".parse().unwrap())
        .build();
    assert!(responder.is_ok());
}
