//! rms-sync stays pure: nothing it depends on, directly or through others, does networking,
//! async I/O, SQLite or thread-local randomness (SPEC §1). Read from Cargo.lock, so a new
//! dependency anywhere under rms-sync fails this test.

use std::collections::{BTreeMap, BTreeSet};

const FORBIDDEN: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "warp",
    "hyper",
    "hyper-util",
    "tungstenite",
    "tokio-tungstenite",
    "rusqlite",
    "libsqlite3-sys",
    "r2d2",
    "r2d2_sqlite",
    "rand",
    "getrandom",
    "ureq",
];

/// Package name → names of its dependencies, from Cargo.lock.
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .expect("Cargo.lock at the workspace root");
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_deps = false;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            current = None;
            in_deps = false;
        } else if let Some(name) = line.strip_prefix("name = ") {
            let name = name.trim_matches('"').to_owned();
            graph.entry(name.clone()).or_default();
            current = Some(name);
        } else if line.starts_with("dependencies = [") {
            in_deps = true;
        } else if in_deps && line == "]" {
            in_deps = false;
        } else if in_deps && let Some(package) = &current {
            let dep = line.trim_matches(|c| c == '"' || c == ',');
            let dep = dep.split(' ').next().unwrap_or(dep).to_owned();
            graph.entry(package.clone()).or_default().push(dep);
        }
    }
    graph
}

#[test]
fn rms_sync_depends_on_no_io_crate() {
    let graph = lock_graph();
    assert!(graph.contains_key("rms-sync"), "rms-sync is in Cargo.lock");
    let mut seen = BTreeSet::new();
    let mut stack = vec![("rms-sync".to_owned(), vec!["rms-sync".to_owned()])];
    while let Some((package, path)) = stack.pop() {
        if !seen.insert(package.clone()) {
            continue;
        }
        assert!(
            !FORBIDDEN.contains(&package.as_str()),
            "rms-sync must stay pure, but reaches {package} via {}",
            path.join(" -> ")
        );
        for dep in graph.get(&package).into_iter().flatten() {
            let mut next = path.clone();
            next.push(dep.clone());
            stack.push((dep.clone(), next));
        }
    }
    assert!(
        seen.contains("rms-domain"),
        "the walk reached rms-sync's dependencies"
    );
}

#[test]
fn the_lint_that_bans_clock_reads_is_configured() {
    let clippy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/clippy.toml"))
        .expect("clippy.toml");
    for banned in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "time::OffsetDateTime::now_utc",
        "rand::thread_rng",
    ] {
        assert!(clippy.contains(banned), "clippy.toml must ban {banned}");
    }
}
