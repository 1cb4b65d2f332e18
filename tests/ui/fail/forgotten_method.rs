use kafka_responder::{Handler, Responder};

#[derive(Handler)]
#[handler(topic = "requests", codec = json, request = String, reply = String, method = answer)]
struct Kyc;

fn main() {
    // Using the type does not fail a second time: the one error is the missing method.
    let _ = Responder::builder().handler(Kyc);
}
