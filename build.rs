//! Tells the integration tests which broker they meet (see `testkit::TestBroker`):
//! with any but the embedded one, the tests that need its fault injection are compiled
//! as ignored, so the test runner reports them as skipped, with the reason.
fn main() {
    println!("cargo::rerun-if-env-changed=RESPONDER_TEST_BROKER");
    println!("cargo::rerun-if-env-changed=KAFKA_BOOTSTRAP_SERVERS");
    println!("cargo::rustc-check-cfg=cfg(embedded_broker)");
    let external = std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok_and(|s| !s.trim().is_empty());
    let broker = std::env::var("RESPONDER_TEST_BROKER").unwrap_or_default();
    if !external && matches!(broker.as_str(), "" | "embedded") {
        println!("cargo::rustc-cfg=embedded_broker");
    }
}
