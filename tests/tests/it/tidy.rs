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
fn no_library_error_is_text() {
    // Proves: every error a library crate makes, public or private, is a type a caller can
    // match on (thiserror enums), not text (STYLE.md; issues #13 and #28).
    let found: Vec<String> = library_sources()
        .iter()
        .flat_map(|(file, text)| {
            string_errors(text)
                .into_iter()
                .map(move |found| format!("{}: {found}", file.display()))
        })
        .collect();
    assert!(
        found.is_empty(),
        "library errors that are text (use a thiserror type, or name the field if the text is \
         data):\n{}",
        found.join("\n")
    );
}

/// What in `text` makes an error of text: a `Result` whose error is `String`, `type Err =
/// String`, or a variant that is a bare `(String)` in an enum deriving `thiserror::Error`.
fn string_errors(text: &str) -> Vec<String> {
    let code = without_tests(text);
    let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found = Vec::new();
    for (at, _) in flat.match_indices("Result<") {
        let mut depth = 0usize;
        let mut last_comma = None;
        for (i, c) in flat[at + "Result".len()..].char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        let inside = &flat[at + "Result<".len()..at + "Result".len() + i];
                        let error = last_comma.map(|c: usize| inside[c..].trim());
                        if error == Some("String") {
                            found.push(flat[at..at + "Result".len() + i + 1].to_owned());
                        }
                        break;
                    }
                }
                ',' if depth == 1 => last_comma = Some(i),
                _ => {}
            }
        }
    }
    if flat.contains("type Err = String") {
        found.push("type Err = String".to_owned());
    }
    for (at, _) in flat.match_indices("thiserror::Error") {
        let Some(open) = flat[at..].find("enum ").map(|e| at + e) else {
            continue;
        };
        let Some(body) = flat[open..].find('{').map(|b| open + b) else {
            continue;
        };
        // The derive must be the enum's own: nothing between them but attributes.
        let between = &flat[at..open];
        if between.contains("struct ") || between.contains('{') || between.contains(';') {
            continue;
        }
        let mut depth = 0usize;
        let end = flat[body..]
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(body + i);
                        }
                    }
                    _ => {}
                }
                None
            })
            .unwrap_or(flat.len());
        for (v, _) in flat[body..end].match_indices("(String)") {
            let before = &flat[body..body + v];
            let name = before
                .rsplit(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or_default();
            found.push(format!("variant {name}(String)"));
        }
    }
    found
}

/// `text` without its `#[cfg(test)] mod tests` (test code may build errors of text).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at])
}

#[test]
fn the_string_error_rule_finds_each_kind() {
    // Proves: the rule above can fail, on each form it forbids, and passes what it allows.
    let probes = [
        "fn a() -> Result<u8, String> { }",
        "fn b(x: u8)\n    -> Result<Vec<(u8, u8)>, String>;",
        "impl FromStr for X { type Err = String; }",
        "#[derive(Debug, thiserror::Error)]\npub enum E {\n    #[error(\"{0}\")]\n    Bad(String),\n}",
    ];
    for probe in probes {
        assert_eq!(string_errors(probe).len(), 1, "not found in {probe:?}");
    }
    let allowed = [
        "fn a() -> Result<String, E> { }",
        "fn b() -> Result<Option<u64>, Error> { }",
        "#[derive(Debug, thiserror::Error)]\npub enum E {\n    Bad { address: String },\n}",
        "pub enum Code {\n    Other(String),\n}",
        "#[derive(thiserror::Error)]\npub struct E;\nenum Text {\n    Text(String),\n}",
        "#[cfg(test)]\nmod tests {\n    fn a() -> Result<u8, String> {}\n}",
    ];
    for probe in allowed {
        assert_eq!(string_errors(probe), Vec::<String>::new(), "{probe:?}");
    }
}

/// A library crate's modules (one per file: `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`;
/// the root is the empty path), each with its text.
fn crate_modules(src: &Path) -> Vec<(Vec<String>, String)> {
    let mut modules = Vec::new();
    for file in rust_files(src) {
        let Ok(relative) = file.strip_prefix(src) else {
            continue;
        };
        let mut path: Vec<String> = relative
            .with_extension("")
            .iter()
            .map(|part| part.to_string_lossy().into_owned())
            .collect();
        if path == ["lib"] || path.last().is_some_and(|last| last == "mod") {
            path.pop();
        }
        if let Ok(text) = std::fs::read_to_string(&file) {
            modules.push((path, text));
        }
    }
    modules
}

/// The edges of a crate's module graph: module A uses module B when a `crate::`, `super::` or
/// `self::` path in A (outside its tests) names B, or names an item the crate root re-exports
/// from B (`pub use b::Item;`). A module and its own ancestors or descendants are not edges: a
/// parent holds its children.
fn module_edges(modules: &[(Vec<String>, String)]) -> Vec<(usize, usize)> {
    let index = |path: &[String]| modules.iter().position(|(p, _)| p == path);
    let root_exports = root_exports(modules);
    let mut edges = Vec::new();
    for (from, (path, text)) in modules.iter().enumerate() {
        let code = without_comments(without_tests(text));
        for (base, segments) in paths_in(&code, path) {
            let mut target = base.clone();
            let mut rest = segments.iter();
            for segment in rest.by_ref() {
                let mut next = target.clone();
                next.push(segment.clone());
                if index(&next).is_some() {
                    target = next;
                } else {
                    if target.is_empty()
                        && let Some(module) = root_exports.get(segment.as_str())
                    {
                        target = module.clone();
                    }
                    break;
                }
            }
            let related = target.starts_with(path) || path.starts_with(&target);
            if let Some(to) = index(&target).filter(|_| !related)
                && !edges.contains(&(from, to))
            {
                edges.push((from, to));
            }
        }
    }
    edges
}

/// The items the crate root re-exports (`pub use a::b::{C, D};`), with the module they come from.
fn root_exports(
    modules: &[(Vec<String>, String)],
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut exports = std::collections::BTreeMap::new();
    let Some((_, root)) = modules.iter().find(|(p, _)| p.is_empty()) else {
        return exports;
    };
    for statement in without_comments(root).split(';') {
        let Some(used) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let used = used
            .trim_start_matches("crate::")
            .trim_start_matches("self::");
        let (module, items) = match used.split_once("::{") {
            Some((module, items)) => (module, items.trim_end_matches('}').to_owned()),
            None => match used.rsplit_once("::") {
                Some((module, item)) => (module, item.to_owned()),
                None => continue,
            },
        };
        let module: Vec<String> = module.split("::").map(str::to_owned).collect();
        if modules.iter().any(|(p, _)| *p == module) {
            for item in items.split(',') {
                let name = item.split(" as ").last().unwrap_or_default().trim();
                if !name.is_empty() && name != "self" {
                    exports.insert(name.to_owned(), module.clone());
                }
            }
        }
    }
    exports
}

/// `text` without `//` comments (docs name modules they do not use).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::`/`super::`/`self::` path in `code` of module `module`: where it starts (a
/// module path) and its segments after that, one path per item of a `{...}` group.
fn paths_in(code: &str, module: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for head in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(head) {
            let boundary = at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':');
            if !boundary {
                continue;
            }
            let mut base: Vec<String> = match head {
                "crate::" => Vec::new(),
                "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.to_vec(),
            };
            let rest = &code[at + head.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let mut segments: Vec<String> = rest[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            while segments.first().is_some_and(|s| s == "super") {
                segments.remove(0);
                base.pop();
            }
            if rest[end..].starts_with('{') {
                let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |e| end + e)];
                for item in group.split(',') {
                    let first = item
                        .trim()
                        .split("::")
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let mut path = segments.clone();
                    path.push(first);
                    found.push((base.clone(), path));
                }
            } else {
                found.push((base, segments));
            }
        }
    }
    found
}

/// The circles of a module graph of `count` modules (Tarjan's strongly connected components of
/// more than one module).
fn circles(count: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    struct Search<'a> {
        edges: &'a [(usize, usize)],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Search<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            let targets: Vec<usize> = self
                .edges
                .iter()
                .filter(|e| e.0 == v)
                .map(|e| e.1)
                .collect();
            for w in targets {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        edges,
        index: vec![None; count],
        low: vec![0; count],
        stack: Vec::new(),
        on_stack: vec![false; count],
        next: 0,
        found: Vec::new(),
    };
    for v in 0..count {
        if search.index[v].is_none() {
            search.visit(v);
        }
    }
    search.found
}

/// The circles of one crate's modules, each as its modules' paths.
fn crate_circles(modules: &[(Vec<String>, String)]) -> Vec<String> {
    let name = |i: usize| match modules[i].0.join("::") {
        root if root.is_empty() => "crate".to_owned(),
        path => path,
    };
    circles(modules.len(), &module_edges(modules))
        .into_iter()
        .map(|circle| {
            circle
                .into_iter()
                .map(name)
                .collect::<Vec<_>>()
                .join(" <-> ")
        })
        .collect()
}

#[test]
fn no_library_crate_has_a_module_circle() {
    // Proves: inside every library crate, dependencies point one way (issue #28), so each layer
    // can be read, tested and moved without the ones above it.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut found = Vec::new();
    let mut crates = 0;
    for src in source_dirs()
        .into_iter()
        .filter(|dir| dir.starts_with(workspace.join("crates")))
    {
        crates += 1;
        for circle in crate_circles(&crate_modules(&src)) {
            found.push(format!("{}: {circle}", src.display()));
        }
    }
    assert!(crates >= 6, "found the library crates: {crates}");
    assert!(
        found.is_empty(),
        "module circles (give what they share its own home):\n{}",
        found.join("\n")
    );
}

/// rms-transport's layers, bottom first (its `lib.rs` and `docs/ARCHITECTURE.md`): a module may
/// import its own layer and those below, never one above.
const TRANSPORT_LAYERS: [&[&str]; 6] = [
    &[
        "audit_gate",
        "clock",
        "input",
        "status",
        "db",
        "locks",
        "log_head",
        "sync_store",
        "step",
    ],
    &["net"],
    &["driver"],
    &["tasks"],
    &["node"],
    &["api"],
];

/// The edges of `modules` that go up `layers` (a module's layer is that of its first segment;
/// the crate root is above every layer).
fn upward_edges(modules: &[(Vec<String>, String)], layers: &[&[&str]]) -> Vec<String> {
    let layer = |path: &[String]| {
        path.first()
            .and_then(|top| layers.iter().position(|l| l.contains(&top.as_str())))
    };
    module_edges(modules)
        .into_iter()
        .filter_map(|(from, to)| {
            let (a, b) = (&modules[from].0, &modules[to].0);
            match (layer(a), layer(b)) {
                (Some(below), Some(above)) if above > below => {
                    Some(format!("{} -> {}", a.join("::"), b.join("::")))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn rms_transport_imports_only_down_its_layers() {
    // Proves the layering of issue #28 (leaves, net, driver, tasks, node, api): the driver knows no
    // task, no task knows the node, nothing below the API knows it. Every module is in a layer.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/rms-transport/src");
    let modules = crate_modules(&src);
    let unplaced: Vec<String> = modules
        .iter()
        .filter_map(|(path, _)| path.first())
        .filter(|top| !TRANSPORT_LAYERS.iter().any(|l| l.contains(&top.as_str())))
        .cloned()
        .collect();
    assert!(unplaced.is_empty(), "modules in no layer: {unplaced:?}");
    let up = upward_edges(&modules, &TRANSPORT_LAYERS);
    assert!(up.is_empty(), "imports up the layers:\n{}", up.join("\n"));
}

/// A module of a probe crate: its path (`a::b`; empty for the root) and its text.
fn probe(path: &str, text: &str) -> (Vec<String>, String) {
    let path = path
        .split("::")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    (path, text.to_owned())
}

#[test]
fn the_layer_rule_finds_an_import_up() {
    // Proves: the rule above can fail (a leaf reaching a task, the driver reaching the API), and
    // passes imports down or within a layer.
    let modules = [
        probe("", "mod input; mod driver; mod tasks; mod api;"),
        probe("input", "use crate::tasks::journal::Signer;"),
        probe(
            "driver",
            "use crate::input::Input;\nfn f() { crate::api::routes() }",
        ),
        probe("tasks", "mod journal;"),
        probe(
            "tasks::journal",
            "use crate::input::Input;\nuse super::Handles;",
        ),
        probe("api", "use crate::tasks::journal;\nuse crate::driver;"),
    ];
    let layers: [&[&str]; 4] = [&["input"], &["driver"], &["tasks"], &["api"]];
    assert_eq!(
        upward_edges(&modules, &layers),
        ["input -> tasks::journal", "driver -> api"]
    );
}

#[test]
fn the_circle_rule_finds_a_circle() {
    // Proves: the rule above can fail: on a direct circle, on one through a `super::` path, on one
    // through a `{...}` group, and on one hidden behind a re-export of the crate root; and that a
    // child using its parent is no circle.
    let circle = [
        probe("", "pub use b::Thing;\nmod a;\nmod b;\nmod net;"),
        probe("a", "use crate::Thing;"),
        probe("b", "use crate::net::{dial::Dialer, link};"),
        probe("net", "mod dial;\nmod link;"),
        probe("net::dial", "use super::link::Peer;"),
        probe("net::link", "use crate::a::helper;"),
    ];
    assert_eq!(
        crate_circles(&circle),
        ["a <-> b <-> net::dial <-> net::link"]
    );
    let two = [
        probe("", "mod a;\nmod b;"),
        probe("a", "fn f() { crate::b::g() }"),
        probe("b", "fn g() { super::a::f() }"),
    ];
    assert_eq!(crate_circles(&two), ["a <-> b"]);
    let tree = [
        probe("", "mod net;"),
        probe(
            "net",
            "mod dial;\npub use dial::Dialer;\nfn f() { dial::g() }",
        ),
        probe(
            "net::dial",
            "use super::Shared;\n// crate::net::other is only a comment",
        ),
    ];
    assert_eq!(crate_circles(&tree), Vec::<String>::new());
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

#[test]
fn every_library_documents_its_api_and_shows_it_in_a_runnable_example() {
    // Proves issue #28's rule for integrators: every library crate denies undocumented public
    // items, and its crate doc opens with an example that `cargo test --doc` runs (no `ignore`).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut missing = Vec::new();
    for src in source_dirs()
        .into_iter()
        .filter(|dir| dir.starts_with(workspace.join("crates")))
    {
        let lib = src.join("lib.rs");
        let text = std::fs::read_to_string(&lib).unwrap_or_default();
        if !text.contains("#![deny(missing_docs)]") {
            missing.push(format!("{}: no #![deny(missing_docs)]", lib.display()));
        }
        let doc: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(str::trim)
            .collect();
        let runs = doc
            .iter()
            .any(|l| *l == "```" || *l == "```rust" || *l == "```no_run");
        if !runs {
            missing.push(format!("{}: no example in the crate doc", lib.display()));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn an_app_embeds_a_node_with_one_rms_crate() {
    // Proves issue #28's integrator promise on the example an integrator copies: its manifest
    // names one rms crate, so what it touches is all re-exported there.
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/embedded-till/Cargo.toml"
    ))
    .expect("the example's manifest");
    let rms: Vec<&str> = manifest
        .lines()
        .filter(|l| l.trim_start().starts_with("rms-"))
        .collect();
    assert_eq!(rms, ["rms-transport.workspace = true"], "{manifest}");
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
