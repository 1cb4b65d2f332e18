use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "requests", codec = json, request = String, reply = String, method = answer, retries = 3)]
struct Kyc;

fn main() {}
