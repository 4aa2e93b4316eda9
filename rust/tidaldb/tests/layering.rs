//! The crate's shape, checked from its source text: no module imports one above it in
//! DESIGN.md's order, and no source file grows past 600 lines.
//!
//! The order is `error` → `schema` → `event`/`crdt` → `ledger`/`tenancy` → `query`/`wal` →
//! `node` → `control` → `cluster` → `sim`/`runtime`. `error` imports nothing of the crate.
//! `tenancy` sits beside `ledger`: it needs only `error`, `schema` and `event`, and `node`
//! admits writes through its quotas. `interrupt` needs only `error`: every long loop, at
//! any tier, asks it whether to stop.

use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module with its tier: a module may import modules of a lower tier only.
const TIERS: &[(&str, u8)] = &[
    ("error", 0),
    ("interrupt", 1),
    ("schema", 1),
    ("event", 2),
    ("crdt", 2),
    ("ledger", 3),
    ("tenancy", 3),
    ("query", 4),
    ("wal", 4),
    ("node", 5),
    ("control", 6),
    ("cluster", 7),
    ("sim", 8),
    ("runtime", 8),
];

/// Imports between modules of one tier that the design allows, with the reason.
const SAME_TIER: &[(&str, &str, &str)] = &[(
    "event",
    "crdt",
    "an event is stamped with the crdt module's hybrid logical clock",
)];

/// Imports that break the order today, each with why it stays for now. Empty: keep it so.
const ALLOWED_VIOLATIONS: &[(&str, &str, &str)] = &[];

const MAX_LINES: usize = 600;

fn tier(module: &str) -> Option<u8> {
    TIERS.iter().find(|(m, _)| *m == module).map(|(_, t)| *t)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for `lib.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    let name = name.strip_suffix(".rs").unwrap_or(name);
    (name != "lib").then(|| name.to_owned())
}

/// Every `crate::<module>` a line of code names, comments left out.
fn imports_of(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
        rest = after;
    }
    found
}

/// The module each name that `lib.rs` re-exports comes from (`crate::TidalError` is
/// `error`'s), read from its `pub use <module>::...;` statements.
fn root_exports(src: &Path) -> Vec<(String, String)> {
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let mut out = Vec::new();
    for statement in lib.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !name.is_empty() {
                out.push((name.to_owned(), module.trim().to_owned()));
            }
        }
    }
    out
}

/// Each import in `src` that goes up or sideways without leave, as `file:line: a -> b`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let exports = root_exports(src);
    let module_named = |name: String| {
        exports
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(name, |(_, m)| m.clone())
    };
    let mut out = Vec::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = fs::read_to_string(file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for to in imports_of(line).into_iter().map(module_named) {
                if to != from && !allowed(&from, &to) {
                    out.push(format!("{}:{}: {from} -> {to}", file.display(), n + 1));
                }
            }
        }
    }
    out
}

fn allowed(from: &str, to: &str) -> bool {
    let listed = |list: &[(&str, &str, &str)]| list.iter().any(|(a, b, _)| *a == from && *b == to);
    match (tier(from), tier(to)) {
        (Some(f), Some(t)) if t < f => true,
        (Some(f), Some(t)) if t == f => listed(SAME_TIER) || listed(ALLOWED_VIOLATIONS),
        // A module missing from the table must be placed in it before it can be imported.
        _ => listed(ALLOWED_VIOLATIONS),
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_module_imports_one_above_it() {
    let found = violations(&crate_dir().join("src"));
    assert!(
        found.is_empty(),
        "imports against DESIGN.md's module order:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_tier() {
    let mut files = Vec::new();
    let src = crate_dir().join("src");
    rust_files(&src, &mut files);
    let mut missing: Vec<String> = files
        .iter()
        .filter_map(|f| module_of(&src, f))
        .filter(|m| tier(m).is_none())
        .collect();
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "modules with no tier: {missing:?}");
}

#[test]
fn the_check_finds_an_upward_import() {
    let dir = std::env::temp_dir().join(format!("tidaldb-layering-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("schema")).unwrap();
    fs::write(
        dir.join("lib.rs"),
        "pub use sim::{Scope, SimulatedCluster};\n",
    )
    .unwrap();
    fs::write(dir.join("error.rs"), "use crate::event::TenantId;\n").unwrap();
    fs::write(
        dir.join("schema/mod.rs"),
        "use crate::error::Result;\n// see crate::sim for the driver\nfn f() -> crate::node::Node {}\n\
         type S = crate::SimulatedCluster;\n",
    )
    .unwrap();
    let found = violations(&dir);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].ends_with("error.rs:1: error -> event"),
        "{found:?}"
    );
    assert!(found[1].ends_with("mod.rs:3: schema -> node"), "{found:?}");
    assert!(found[2].ends_with("mod.rs:4: schema -> sim"), "{found:?}");
}

#[test]
fn no_source_file_passes_600_lines() {
    let root = crate_dir();
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "../tidaldb-py/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = fs::read_to_string(f).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} has {lines} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by behaviour (at most {MAX_LINES} lines each):\n{}",
        long.join("\n")
    );
}
