//! Compile-time behaviour of `#[derive(Handler)]`: what compiles, and the errors that
//! teach when something is wrong (checked-in `.stderr` files; regenerate with
//! `TRYBUILD=overwrite cargo test --all-features --test ui` and review the diff).

#[test]
#[cfg_attr(
    not(embedded_broker),
    ignore = "compile-time checks: run once, in the embedded pass"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
