use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "requests", codec = protobuf, request = String, reply = String, method = answer)]
struct Kyc;

fn main() {}
