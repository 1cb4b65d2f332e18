use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "requests", codec = json, codec = raw, request = String, reply = String, method = answer)]
struct Kyc;

fn main() {}
