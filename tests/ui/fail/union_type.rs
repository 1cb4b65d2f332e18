use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topic = "requests", codec = json, request = String, reply = String, method = answer)]
union Kyc {
    a: u32,
    b: f32,
}

fn main() {}
