//! The shape the crate docs promise: every `crate::` import runs down one order of modules
//! (no import circle), the payment modes are reached only from the dispatch and the
//! builder, and no mode reaches into another. Read from the sources, so a change that breaks
//! the shape fails here instead of in a reviewer's head.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module a source file is (`modes::token`, `wire::nut24`, `settle`, …).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [one] if one == "lib" => "lib".into(),
        [dir, last] if last == "mod" => dir.clone(),
        _ => parts.join("::"),
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules each module names with `crate::…` (outside its tests), to the depth the
/// crate has them: `crate::modes::pass::X` is `modes::pass`, `crate::Price` is `lib`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        // Code only: not the tests, not comments (doc links name modules too).
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            // `crate::modes::{a, b}` names `modes::a` and `modes::b`.
            let mut paths = vec![path.clone()];
            if let Some(group) = rest[path.len()..].strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                paths = inner
                    .split(',')
                    .map(|name| format!("{path}{}", name.trim()))
                    .collect();
            }
            for path in paths {
                let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                let target = (1..=segments.len().min(2))
                    .rev()
                    .map(|n| segments[..n].join("::"))
                    .find(|candidate| modules.contains(candidate))
                    .unwrap_or_else(|| "lib".into());
                if target != module {
                    named.insert(target);
                }
            }
        }
        graph.insert(module, named);
    }
    graph
}

/// A module's top-level group: `modes::token` is `modes`, `wire::nut24` is `wire`.
fn group(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn no_module_imports_in_a_circle() {
    let graph = imports();
    // Groups (lib's re-exports aside: they are the crate's public face, not a layer).
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, targets) in &graph {
        for to in targets {
            let (from, to) = (group(from), group(to));
            if from != to && from != "lib" && to != "lib" {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(start) = path.iter().position(|n| *n == node) {
            panic!("import circle: {} -> {node}", path[start..].join(" -> "));
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done);
    }
    assert!(
        edges.contains_key("modes"),
        "the graph was not read: {edges:?}"
    );
}

#[test]
fn modes_are_reached_from_the_dispatch_and_the_builder_only() {
    let graph = imports();
    for (from, targets) in &graph {
        for to in targets.iter().filter(|t| t.starts_with("modes")) {
            let allowed = matches!(from.as_str(), "service" | "layer" | "lib" | "modes")
                || (group(from) == "modes" && to == "modes");
            assert!(allowed, "{from} imports the mode {to}");
        }
        if group(from) == "modes" && from != "modes" {
            let other = targets
                .iter()
                .find(|t| group(t) == "modes" && *t != from && *t != "modes");
            assert!(other.is_none(), "{from} imports another mode: {other:?}");
        }
    }
    let service = &graph["service"];
    for mode in [
        "modes::token",
        "modes::credential",
        "modes::session",
        "modes::pass",
    ] {
        assert!(service.contains(mode), "the dispatch does not reach {mode}");
    }
}
