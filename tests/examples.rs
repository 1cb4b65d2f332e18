//! The examples run as a user runs them: the KYC demo prints its round trips, and the
//! end-to-end risk-scoring story gives every payment its decision with two KYC replicas.

mod common;

use std::process::Command;

fn run_example(name: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(common::example_binary(name));
    cmd.env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env("RUST_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn kyc_demo_prints_real_round_trips() {
    let out = run_example("kyc_responder", &[]);
    println!("{out}");
    assert!(out.contains(r#"{"wallet_id":"wallet-1","score":"#), "{out}");
    assert!(
        out.contains("error not_found: unknown wallet unknown-9"),
        "{out}"
    );
    assert!(out.contains("error bad_request"), "{out}");
    assert!(
        out.contains("responder: 5 received, 3 replied, 2 error replies"),
        "{out}"
    );
}

#[test]
fn risk_scoring_gives_every_payment_a_decision() {
    let out = run_example("risk_scoring", &[("RISK_PAYMENTS", "60")]);
    println!("{out}");
    assert!(out.contains("60 payments, 60 decisions"), "{out}");
}
