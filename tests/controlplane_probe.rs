//! The control-plane build's version probe (hack/controlplane/probe.sh), run by bash the way build.sh
//! runs it: under `set -euo pipefail`. Issue 9: a probe that piped the binary into `grep -q` failed at
//! random when the binary wrote more lines after the matching one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn probe_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/controlplane/probe.sh")
}

/// A fake binary: `body` is its shell code.
fn fake_binary(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs `version_probe BIN WANT ARGS...` under `set -euo pipefail`, verbose.
fn probe(bin: &Path, want: &str, args: &[&str]) -> Output {
    let script = format!(
        "set -euo pipefail; . '{}'; VERSION_PROBE_VERBOSE=1 version_probe \"$@\"",
        probe_script().display()
    );
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("probe")
        .arg(bin)
        .arg(want)
        .args(args)
        .output()
        .expect("bash runs")
}

#[test]
fn a_matching_first_line_followed_by_many_slow_lines_passes() {
    let dir = tempfile::tempdir().unwrap();
    // The first line matches; then 300 lines, each after a pause, and a last burst bigger than a pipe
    // buffer (64 KiB). A probe that stops reading at the first match kills this writer with SIGPIPE.
    let bin = fake_binary(
        dir.path(),
        "kubectl",
        r#"[ "$1 $2" = "version --client" ] || exit 2
echo 'Client Version: v1.34.4'
for i in $(seq 300); do echo "Kustomize Version: v5.7.1 line $i"; sleep 0.002; done
head -c 200000 /dev/zero | tr '\0' 'x'
echo"#,
    );
    for run in 0..3 {
        let out = probe(&bin, "Client Version: v1.34.4", &["version", "--client"]);
        assert!(
            out.status.success(),
            "run {run}: probe failed: status {:?}, stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_version_mismatch_fails_and_says_what_the_binary_printed() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_binary(
        dir.path(),
        "kube-apiserver",
        "echo 'Kubernetes v0.0.0-master+$Format:%H$'",
    );
    let out = probe(&bin, "Kubernetes v1.34.4", &["--version"]);
    assert!(!out.status.success(), "a mismatching version passed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--version"), "command not named: {err}");
    assert!(err.contains("status 0"), "exit status not given: {err}");
    assert!(
        err.contains("Kubernetes v0.0.0-master"),
        "output not shown: {err}"
    );
}

#[test]
fn a_binary_that_fails_after_printing_the_version_fails_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_binary(
        dir.path(),
        "etcd",
        "echo 'etcd Version: 3.6.16'; echo 'boom' >&2; exit 3",
    );
    let out = probe(&bin, "etcd Version: 3.6.16", &["--version"]);
    assert!(!out.status.success(), "a failing binary passed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("status 3"), "exit status not given: {err}");
    assert!(err.contains("boom"), "stderr not shown: {err}");
}

#[test]
fn a_missing_binary_fails_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = probe(&dir.path().join("nothing"), "x", &["--version"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
}
