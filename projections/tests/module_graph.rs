//! The modules of this crate form no cycle: no module imports one that imports it back
//! (the backends import `store`, and only `open` knows the backends), and no module imports
//! the crate root's re-exports (which would hide such a cycle behind `lib.rs`).
//!
//! The graph is read from the sources: every `crate::…`, `super::…` and `self::…` path (and
//! the submodules a `mod.rs` names), outside comments and the `#[cfg(test)] mod tests` at
//! the end of a file, points at the deepest module it names.

#![expect(
    clippy::expect_used,
    reason = "a source that cannot be read fails the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`scylla::url`; the root is empty) → its source, without comments and tests.
fn sources() -> BTreeMap<String, (bool, String)> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, (bool, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("src is readable")
            .map(|e| e.expect("src entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("file name")
                .to_owned();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let is_dir = name == "mod" || name == "lib";
                let mut p = prefix.to_vec();
                if !is_dir {
                    p.push(name);
                }
                let text = std::fs::read_to_string(&path).expect("source is readable");
                let text = text
                    .split("\n#[cfg(test)]\nmod tests")
                    .next()
                    .unwrap_or_default();
                let code: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                let code = code.join("\n").replace("$crate", "");
                out.insert(p.join("::"), (is_dir, code));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    out
}

/// The paths of `code` that start with `crate`, `super` or `self`, each as its keyword and
/// its segments (`use crate::{a, b::C}` gives `crate a` and `crate b C`).
fn paths(code: &str) -> Vec<(&str, Vec<String>)> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for kw in ["crate", "super", "self"] {
        let needle = format!("{kw}::");
        for (at, _) in code.match_indices(&needle) {
            if code[..at].chars().next_back().is_some_and(ident) {
                continue;
            }
            let rest = &code[at + needle.len()..];
            let group = rest.strip_prefix('{').and_then(|r| r.split_once('}'));
            let items: Vec<&str> = match group {
                Some((inner, _)) => inner.split(',').collect(),
                None => vec![rest],
            };
            for item in items {
                let mut segments: Vec<String> = Vec::new();
                for part in item.trim().split("::") {
                    let name: String = part.chars().take_while(|c| ident(*c)).collect();
                    let whole = name.len() == part.len();
                    if !name.is_empty() {
                        segments.push(name);
                    }
                    if !whole || segments.is_empty() {
                        break;
                    }
                }
                if !segments.is_empty() {
                    out.push((kw, segments));
                }
            }
        }
    }
    out
}

/// Module → the other modules it imports; and the uses of root items by other modules.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let sources = sources();
    let mut edges = BTreeMap::new();
    let mut root_items = Vec::new();
    for (module, (is_dir, code)) in &sources {
        let here: Vec<String> = if module.is_empty() {
            Vec::new()
        } else {
            module.split("::").map(str::to_owned).collect()
        };
        let mut targets = BTreeSet::new();
        if *is_dir {
            for child in sources.keys().filter(|k| {
                k.strip_prefix(module.as_str())
                    .and_then(|r| r.strip_prefix("::"))
                    .is_some_and(|r| !r.contains("::"))
            }) {
                let name = child.rsplit("::").next().unwrap_or_default();
                let used = code.match_indices(&format!("{name}::")).any(|(at, _)| {
                    !code[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if used {
                    targets.insert(child.clone());
                }
            }
        }
        for (kw, segments) in paths(code) {
            let base: Vec<String> = match kw {
                "crate" => Vec::new(),
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => here.clone(),
            };
            let target = (1..=segments.len()).rev().find_map(|k| {
                let mut p = base.clone();
                p.extend(segments[..k].iter().cloned());
                let p = p.join("::");
                sources.contains_key(&p).then_some(p)
            });
            match target {
                Some(t) => {
                    targets.insert(t);
                }
                None if base.is_empty() && !module.is_empty() => {
                    root_items.push(format!("`{module}` uses `crate::{}`", segments.join("::")));
                }
                None => {
                    targets.insert(base.join("::"));
                }
            }
        }
        targets.remove(module);
        targets.remove("");
        edges.insert(module.clone(), targets);
    }
    (edges, root_items)
}

/// A path from `from` to `to`, if any.
fn path_between(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().cloned().unwrap_or_default();
        if last == to {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in edges.get(&last).into_iter().flatten() {
            let mut p = path.clone();
            p.push(next.clone());
            stack.push(p);
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let (edges, _) = graph();
    let mut cycles = Vec::new();
    for (module, targets) in &edges {
        for target in targets {
            if let Some(back) = path_between(&edges, target, module) {
                cycles.push(format!("{module} -> {}", back.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
    assert!(
        edges["open"].contains("store") && edges["embedded"].contains("store"),
        "the graph is read: {edges:#?}"
    );
}

#[test]
fn modules_import_where_items_are_defined_not_the_root() {
    let (_, root_items) = graph();
    assert!(root_items.is_empty(), "{}", root_items.join("\n"));
}

#[test]
fn the_reader_sees_the_cycles_it_must_refuse() {
    let code = "use crate::{store::Store, scylla};\nfn f() { super::url::parse(); self::x::y(); }";
    let found = paths(code);
    assert_eq!(
        found,
        vec![
            ("crate", vec!["store".to_owned(), "Store".to_owned()]),
            ("crate", vec!["scylla".to_owned()]),
            ("super", vec!["url".to_owned(), "parse".to_owned()]),
            ("self", vec!["x".to_owned(), "y".to_owned()]),
        ]
    );
    let mut edges = BTreeMap::new();
    edges.insert("store".to_owned(), BTreeSet::from(["scylla".to_owned()]));
    edges.insert("scylla".to_owned(), BTreeSet::from(["store".to_owned()]));
    assert_eq!(
        path_between(&edges, "scylla", "store"),
        Some(vec!["scylla".to_owned(), "store".to_owned()])
    );
}
