//! `EGRESS_SKIP_CLUSTER_TESTS=1` at build time sets `cfg(egress_skip_cluster_tests)`, which
//! marks every test that needs a control plane `#[ignore]`: skipped tests then show as
//! "ignored" (with the reason) in the test output instead of passing without running. Cargo
//! rebuilds when the variable changes.
fn main() {
    println!("cargo::rerun-if-env-changed=EGRESS_SKIP_CLUSTER_TESTS");
    println!("cargo::rustc-check-cfg=cfg(egress_skip_cluster_tests)");
    if std::env::var("EGRESS_SKIP_CLUSTER_TESTS").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=egress_skip_cluster_tests");
    }
}
