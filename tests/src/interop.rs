//! Other projects' clients for the interop tests (Nutshell's `cashu`, cashu-ts, mppx, the
//! `openai` SDKs), from `tests/interop/<name>`: Python ones in a venv of their own under
//! `~/.cache/coinslot` (outside the checkout, reused across runs, installed again when the
//! pinned requirements change), Node ones with their locked packages, each flow run with a
//! deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long a flow may take before it is killed and the test fails (a hung client must not
/// hold CI until its own time limit).
pub const FLOW_DEADLINE: Duration = Duration::from_secs(300);

/// The client project `tests/interop/<name>`.
pub fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(name)
}

/// The Node project `tests/interop/<name>`, its packages installed (`npm ci`) unless
/// `package` is there already.
///
/// # Panics
/// When npm does not run or fails.
pub fn npm_project(name: &str, package: &str) -> PathBuf {
    // Two tests of one binary installing the same project at once: `npm ci` empties
    // `node_modules` first, so the other could find its tool gone. One install at a time.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = dir(name);
    if !dir.join("node_modules").join(package).exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("npm does not run: {e}"));
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    dir
}

/// Runs `flow` to its end (at most [`FLOW_DEADLINE`]): whether it succeeded, its stdout and
/// its stderr. `what` names it in a failure.
///
/// # Panics
/// When it does not start or does not finish in time.
pub async fn output(flow: Command, what: &str) -> (bool, String, String) {
    let mut flow = tokio::process::Command::from(flow);
    flow.kill_on_drop(true);
    let output = tokio::time::timeout(FLOW_DEADLINE, flow.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {FLOW_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{what} does not run: {e}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `bin` directory of the venv `name`, with `requirements` (a pip requirements file)
/// installed.
///
/// # Panics
/// When `python3 -m venv` or `pip install` fails: the test cannot run without them.
pub fn venv(name: &str, requirements: &Path) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let venv = home.join(".cache/coinslot").join(name);
    let bin = venv.join("bin");
    let pinned = std::fs::read_to_string(requirements)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", requirements.display()));
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(pinned.as_str()) {
        return bin;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap_or_else(|e| panic!("python3 does not run: {e}"));
    assert!(
        status.success(),
        "cannot create the venv {}",
        venv.display()
    );
    let status = Command::new(bin.join("pip"))
        .args(["install", "--quiet", "-r"])
        .arg(requirements)
        .status()
        .unwrap_or_else(|e| panic!("pip does not run: {e}"));
    assert!(
        status.success(),
        "pip install -r {} failed",
        requirements.display()
    );
    if let Err(e) = std::fs::write(&stamp, &pinned) {
        panic!("cannot write {}: {e}", stamp.display());
    }
    bin
}
