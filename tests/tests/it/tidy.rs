//! House rules kept as ordinary tests (rust-analyzer's `xtask/src/tidy.rs`): what a reviewer
//! would otherwise have to remember.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, in path order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The `src` folders of the workspace's crates and binaries.
fn source_dirs() -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut dirs = Vec::new();
    for group in ["crates", "bins"] {
        let Ok(entries) = std::fs::read_dir(workspace.join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            let src = entry.path().join("src");
            if src.is_dir() {
                dirs.push(src);
            }
        }
    }
    dirs.sort();
    dirs
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    // Proves: a newcomer who opens any file of a crate or binary reads first what it is for.
    let dirs = source_dirs();
    assert!(dirs.len() >= 6, "found the crates' sources: {dirs:?}");
    let missing: Vec<String> = dirs
        .iter()
        .flat_map(|dir| rust_files(dir))
        .filter(|file| std::fs::read_to_string(file).map_or(true, |text| !text.starts_with("//!")))
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` doc saying what they are for:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_library_api_returns_a_string_error() {
    // Proves: every error a library crate hands to its caller is a type the caller can match on
    // (thiserror enums), not text (STYLE.md; issue #13).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut found = Vec::new();
    for file in rust_files(&workspace.join("crates")) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (index, _) in text.match_indices("pub fn ") {
            let rest = &text[index..];
            let signature = &rest[..rest.find(['{', ';']).unwrap_or(rest.len())];
            let flat: String = signature.split_whitespace().collect::<Vec<_>>().join(" ");
            if flat.contains(", String>") && flat.contains("Result<") {
                found.push(format!("{}: {flat}", file.display()));
            }
        }
        if text.contains("type Err = String") {
            found.push(format!("{}: type Err = String", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "library APIs that return text as an error:\n{}",
        found.join("\n")
    );
}
