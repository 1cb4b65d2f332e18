use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "requests", codec = json, reply = String)]
struct Kyc;

fn main() {}
