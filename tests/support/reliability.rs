//! The figures of a hostile-input scenario (what was sent, what failed, memory), as one JSON
//! line appended to the file named by `RELIABILITY_OUT` when it is set (RELIABILITY.md is
//! built from them); nothing otherwise.

use std::io::Write;

use serde_json::{Value, json};

/// Append `{"scenario": scenario, "test": test, ...figures}`; also printed, so that a plain
/// `cargo test -- --nocapture` shows the figures.
pub fn record(test: &str, scenario: &str, figures: Value) {
    let mut line = json!({"scenario": scenario, "test": test});
    if let (Some(out), Some(extra)) = (line.as_object_mut(), figures.as_object()) {
        out.extend(extra.clone());
    }
    let text = format!("{line}\n");
    eprint!("reliability: {text}");
    let Some(path) = std::env::var_os("RELIABILITY_OUT") else {
        return;
    };
    // One write of one line with O_APPEND: lines of concurrent tests do not interleave.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("RELIABILITY_OUT {}: {e}", path.to_string_lossy()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("RELIABILITY_OUT {}: {e}", path.to_string_lossy()));
}
