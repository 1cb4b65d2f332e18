use kafka_responder::Handler;

#[derive(Handler)]
struct Kyc;

fn main() {}
