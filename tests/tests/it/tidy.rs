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
    for group in ["crates", "bins", "examples"] {
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

/// The source files of the library crates (`crates/*/src`), with their text.
fn library_sources() -> Vec<(PathBuf, String)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let files: Vec<(PathBuf, String)> = source_dirs()
        .into_iter()
        .filter(|dir| dir.starts_with(workspace.join("crates")))
        .flat_map(|dir| rust_files(&dir))
        .filter_map(|file| std::fs::read_to_string(&file).ok().map(|text| (file, text)))
        .collect();
    assert!(
        files.len() >= 40,
        "found the libraries' sources: {}",
        files.len()
    );
    files
}

/// Longest a library source file may be: past it, a file holds more than one part of the design.
const FILE_LINES_MAX: usize = 800;

/// Longest a library function may be.
const FN_LINES_MAX: usize = 100;

#[test]
fn no_library_source_file_is_over_800_lines() {
    // Proves: each part of the design has a file of its own (issue #13).
    let long: Vec<String> = library_sources()
        .iter()
        .map(|(file, text)| (file, text.lines().count()))
        .filter(|(_, lines)| *lines > FILE_LINES_MAX)
        .map(|(file, lines)| format!("{}: {lines} lines", file.display()))
        .collect();
    assert!(
        long.is_empty(),
        "library files over {FILE_LINES_MAX} lines:\n{}",
        long.join("\n")
    );
}

/// Functions of `text` with their first line and length: from a line that starts (after its
/// indentation) with a `fn` item to the closing brace at the same indentation.
fn functions(text: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let item = ["pub(crate) ", "pub(super) ", "pub ", "async ", "const "]
            .iter()
            .fold(body, |rest, prefix| {
                rest.strip_prefix(prefix).unwrap_or(rest)
            });
        let Some(name) = item.strip_prefix("fn ") else {
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[start..].iter().position(|l| *l == close) {
            found.push((start + 1, end + 1, name));
        }
    }
    found
}

#[test]
fn no_library_function_is_over_100_lines() {
    // Proves: a function does one thing a reader can hold at once (issue #13).
    let long: Vec<String> = library_sources()
        .iter()
        .flat_map(|(file, text)| {
            functions(text)
                .into_iter()
                .filter(|(_, lines, _)| *lines > FN_LINES_MAX)
                .map(move |(at, lines, name)| {
                    format!("{}:{at} {name}: {lines} lines", file.display())
                })
        })
        .collect();
    assert!(
        long.is_empty(),
        "library functions over {FN_LINES_MAX} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_function_lengths_are_measured() {
    let text = "fn a() {\n    x;\n}\n\nimpl T {\n    pub fn b(&self) {\n        y;\n        z;\n    }\n}\n";
    let found = functions(text);
    assert_eq!(found, [(1, 3, "a".to_owned()), (6, 4, "b".to_owned())]);
}

#[test]
fn no_aws_lc_in_the_build() {
    // Proves issue #14's choice: TLS and certificates on the `ring` provider only, so nothing but
    // SQLite is built from C sources, and one crypto library is audited, not two.
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock at the workspace root");
    let packages: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = "))
        .map(|n| n.trim_matches('"'))
        .collect();
    assert!(packages.contains(&"ring"), "ring is the provider");
    let aws: Vec<&&str> = packages
        .iter()
        .filter(|p| p.starts_with("aws-lc"))
        .collect();
    assert!(aws.is_empty(), "aws-lc is in the build: {aws:?}");
}
