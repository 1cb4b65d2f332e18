use kafka_responder::Handler;

#[derive(Handler)]
#[handler(topics = ["..", "", "__consumer_offsets"], codec = json, request = String, reply = String, method = answer)]
struct Kyc;

fn main() {}
