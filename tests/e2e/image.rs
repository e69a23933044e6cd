//! The container image's recipe (`deploy/Dockerfile`), checked without a container engine:
//! its build stage installs what `scripts/setup.sh` installs by running that script (one
//! list, not two), and builds coinslotd with the same cargo arguments as the README's main
//! command (`scripts/run.sh`). The build itself, as the image runs it, is the ignored test
//! below: a release build of coinslotd takes minutes on two cores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                all.push(std::mem::take(&mut current));
            }
        }
    }
    all
}

/// The instructions of the stage named `name` (`FROM … AS name` up to the next `FROM`).
fn stage(instructions: &[String], name: &str) -> Vec<String> {
    let start = instructions
        .iter()
        .position(|i| i.starts_with("FROM ") && i.ends_with(&format!(" AS {name}")))
        .unwrap_or_else(|| panic!("no stage {name}"));
    instructions[start + 1..]
        .iter()
        .take_while(|i| !i.starts_with("FROM "))
        .cloned()
        .collect()
}

/// The arguments after `cargo <verb>` in `text`, up to the end of that command.
fn cargo_args(text: &str, verb: &str) -> Vec<String> {
    let at = text
        .find(&format!("cargo {verb} "))
        .unwrap_or_else(|| panic!("no `cargo {verb}` in {text}"));
    text[at..]
        .split_whitespace()
        .skip(2)
        .take_while(|word| !matches!(*word, "&&" | "--" | ";"))
        .map(str::to_string)
        .collect()
}

fn image_build_args() -> Vec<String> {
    let dockerfile = read("deploy/Dockerfile");
    let builder = stage(&instructions(&dockerfile), "builder");
    let build = builder
        .iter()
        .find(|i| i.contains("cargo build"))
        .expect("the builder stage runs cargo build");
    cargo_args(build, "build")
}

#[test]
fn the_image_installs_with_setup_sh_and_builds_as_run_sh_does() {
    let dockerfile = read("deploy/Dockerfile");
    let builder = stage(&instructions(&dockerfile), "builder");
    let setup = builder
        .iter()
        .position(|i| i.starts_with("RUN ") && i.contains("bash scripts/setup.sh"))
        .expect("the builder stage runs scripts/setup.sh");
    let build = builder
        .iter()
        .position(|i| i.contains("cargo build"))
        .expect("the builder stage runs cargo build");
    assert!(setup < build, "setup.sh must run before the build");
    assert!(
        !builder.iter().any(|i| i.contains("apt-get install")),
        "the builder installs packages only through scripts/setup.sh (one list): {builder:#?}"
    );
    let mut image = image_build_args();
    let mut run = cargo_args(&read("scripts/run.sh"), "run");
    image.sort();
    run.sort();
    assert_eq!(
        image, run,
        "deploy/Dockerfile and scripts/run.sh build coinslotd with other arguments"
    );
    for needed in ["--release", "--locked", "-p", "coinslotd"] {
        assert!(image.iter().any(|a| a == needed), "{needed} in {image:?}");
    }
}

#[test]
#[ignore = "a release build of coinslotd (minutes): scripts/test.sh runs it when COINSLOT_IMAGE=1"]
fn coinslotd_builds_as_the_image_builds_it() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args = image_build_args();
    let status = std::process::Command::new(cargo)
        .arg("build")
        .args(&args)
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build {args:?} failed");
}
