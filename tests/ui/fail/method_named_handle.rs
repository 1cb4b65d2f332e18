use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "requests", codec = json, request = String, reply = String, method = handle)]
struct Kyc;

fn main() {}
