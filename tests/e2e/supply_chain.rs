//! The supply chain as `cargo metadata` sees it: the stated MSRV covers every dependency,
//! every crate of the workspace states it, and nothing comes from git or another registry.
//! (Licenses, bans and sources are also checked by `cargo deny` in `.ci/run`; clippy's
//! `incompatible_msrv` lint holds our own code to the MSRV's standard library.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use serde_json::Value;

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap());
    (
        parts.next().unwrap(),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn the_stated_msrv_covers_every_dependency_and_every_crate_states_it() {
    let metadata = metadata();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let packages = metadata["packages"].as_array().unwrap();
    let ours: Vec<&Value> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap()))
        .collect();
    assert!(ours.len() > 10, "the workspace's crates are found");
    let msrv = ours[0]["rust_version"]
        .as_str()
        .expect("the workspace states rust-version");
    for package in &ours {
        assert_eq!(
            package["rust_version"].as_str(),
            Some(msrv),
            "{} states the workspace's rust-version",
            package["name"]
        );
    }
    let mut too_new = Vec::new();
    for package in packages {
        if let Some(needs) = package["rust_version"].as_str() {
            if version(needs) > version(msrv) {
                too_new.push(format!(
                    "{} {} needs {needs}",
                    package["name"], package["version"]
                ));
            }
        }
    }
    assert!(
        too_new.is_empty(),
        "dependencies need a newer Rust than the stated MSRV {msrv}: {too_new:?}"
    );
}

#[test]
fn every_dependency_comes_from_crates_io() {
    let metadata = metadata();
    let foreign: Vec<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let source = p["source"].as_str()?;
            (source != "registry+https://github.com/rust-lang/crates.io-index")
                .then(|| format!("{} from {source}", p["name"]))
        })
        .collect();
    assert!(foreign.is_empty(), "{foreign:?}");
}
