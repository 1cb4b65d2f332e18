//! Tells the integration tests which broker they meet (see `testkit::TestBroker`):
//! with any but the embedded one, the tests that need its fault injection are compiled
//! as ignored, so the test runner reports them as skipped, with the reason; the same
//! for the few tests that need Apache Kafka (`cfg(kafka_broker)`) or cannot run on it.
fn main() {
    println!("cargo::rerun-if-env-changed=RESPONDER_TEST_BROKER");
    println!("cargo::rerun-if-env-changed=KAFKA_BOOTSTRAP_SERVERS");
    println!("cargo::rustc-check-cfg=cfg(embedded_broker)");
    println!("cargo::rustc-check-cfg=cfg(kafka_broker)");
    let external = std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok_and(|s| !s.trim().is_empty());
    let broker = std::env::var("RESPONDER_TEST_BROKER").unwrap_or_default();
    if !external && matches!(broker.as_str(), "" | "embedded") {
        println!("cargo::rustc-cfg=embedded_broker");
    }
    if !external && broker == "kafka" {
        println!("cargo::rustc-cfg=kafka_broker");
    }
}
