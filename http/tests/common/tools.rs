//! The Python tools some tests drive: schemathesis (the API fuzzer) and prometheus-client (the
//! reference parser of the Prometheus text format), in the virtualenv `scripts/services.sh`
//! installs (`.venv-tools`, or `EMP_TEST_TOOLS_VENV`). A missing tool fails the test with the
//! command that installs it; nothing is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn tools_venv() -> PathBuf {
    std::env::var_os("EMP_TEST_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-tools"))
}

/// A program of the tools' virtualenv (`python`, `schemathesis`).
pub fn tool(name: &str) -> PathBuf {
    let path = tools_venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/services.sh` (it installs schemathesis and \
         prometheus-client into .venv-tools), or point EMP_TEST_TOOLS_VENV at such a virtualenv",
        path.display()
    );
    path
}

/// Runs a Python script with `input` on its standard input; its standard output, or a panic
/// with its standard error.
pub fn python(script: &str, input: &str) -> String {
    let mut child = Command::new(tool("python"))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
