use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "wallet/kyc", codec = json, request = String, reply = String, method = answer)]
struct Kyc;

fn main() {}
