//! Python clients for the interop tests (Nutshell's `cashu`, the `openai` SDK): each in a
//! venv of its own under `~/.cache/coinslot`, outside the checkout and reused across runs,
//! installed again when its pinned requirements change.

use std::path::{Path, PathBuf};
use std::process::Command;

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
