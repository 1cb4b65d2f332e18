// One mistake (a topic listed twice) under `crate = ...`: one error. The type is
// still a `Handler` and has routes, so the code that uses it does not fail again.
use kafka_responder as kr;

#[derive(kr::Handler)]
#[handler(crate = kr, topics = ["kyc", "kyc"], codec = json, request = String, reply = String, method = answer)]
struct Kyc;

impl Kyc {
    async fn answer(&self, request: String, _: &kr::RequestContext) -> Result<String, kr::ErrorReply> {
        Ok(request)
    }
}

fn main() {
    // Needs `Kyc: Handler` (a codec over it) and `Kyc: IntoRoutes`.
    let _ = kr::Responder::builder().route("requests", kr::Json, Kyc);
    let _ = kr::Responder::builder().handler(Kyc);
}
