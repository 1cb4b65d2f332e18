use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "requests", codec = json, request = String, reply = String, method = answer)]
struct Kyc<T> {
    inner: T,
}

fn main() {}
