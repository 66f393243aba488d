//! The architecture's rules, checked on the source tree itself (docs/ARCHITECTURE.md): every module is in the
//! codemap, `unsafe` lives only under `src/sys/`, the top-level modules import each other without a circle,
//! no source file passes 1,000 lines, and the repository cites no document it does not hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::harness::repo;

/// Every file under `dir` whose name ends with one of `extensions`, relative to the repository.
fn files(dir: &str, extensions: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.ends_with("node_modules") {
                continue; // installed packages, not ours
            }
            if path.is_dir() {
                walk(&path, extensions, out);
            } else if extensions.iter().any(|e| path.to_string_lossy().ends_with(e)) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join(dir), extensions, &mut out);
    out.sort();
    out.into_iter().map(|p| p.strip_prefix(repo()).unwrap().to_path_buf()).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The code of a Rust file without its comments and without its `#[cfg(test)]` tail.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_module_is_in_the_codemap() {
    let codemap = read(Path::new("docs/ARCHITECTURE.md"));
    let missing: Vec<String> = files("src", &[".rs"])
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !codemap.contains(&format!("`{p}`")))
        .collect();
    assert!(missing.is_empty(), "docs/ARCHITECTURE.md's codemap does not name these modules: {missing:?}");
}

#[test]
fn unsafe_code_lives_only_under_src_sys() {
    let offenders: Vec<String> = files("src", &[".rs"])
        .iter()
        .filter(|p| !p.starts_with("src/sys"))
        .filter(|p| {
            let code = code(&read(p));
            ["unsafe {", "unsafe fn", "unsafe impl", "allow(unsafe_code)"].iter().any(|u| code.contains(u))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "unsafe outside src/sys: {offenders:?}");
    for root in ["src/lib.rs", "src/main.rs"] {
        assert!(read(Path::new(root)).contains("#![deny(unsafe_code)]"), "{root}, a crate root, denies unsafe code");
    }
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files("src", &[".rs"]) {
        let module = path.iter().nth(1).unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        let code = code(&read(&path));
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let target: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !target.is_empty() && target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    assert_no_circle(&edges);
    assert!(edges.get("sys").is_none_or(|e| e.is_empty()), "sys imports nothing of ours: {edges:?}");
}

/// Fails with the circle when `edges` has one.
fn assert_no_circle(edges: &BTreeMap<String, BTreeSet<String>>) {
    // Depth-first search for a back edge; the path to it is the circle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, bool>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), false);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(false) => {
                    let from = path.iter().position(|n| n == next).unwrap();
                    return Some([&path[from..], &[next.clone()]].concat());
                }
                None => {
                    if let Some(circle) = visit(next, edges, state, path) {
                        return Some(circle);
                    }
                }
                Some(true) => {}
            }
        }
        state.insert(node.to_string(), true);
        path.pop();
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node) {
            let circle = visit(node, edges, &mut state, &mut Vec::new());
            assert!(circle.is_none(), "an import circle: {}", circle.unwrap().join(" → "));
        }
    }
}

/// The first segment of each path a `use` group names: `{a::B, c::{D, E}, f}` gives `a`, `c`, `f`.
fn group_heads(group: &str) -> Vec<String> {
    let (mut heads, mut depth, mut item) = (Vec::new(), 0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(std::mem::take(&mut item)),
            _ if depth == 0 => item.push(c),
            _ => {}
        }
    }
    heads.push(item);
    heads
        .iter()
        .map(|i| {
            i.trim().split("::").next().unwrap_or_default().split_whitespace().next().unwrap_or_default().to_string()
        })
        .filter(|h| !h.is_empty())
        .collect()
}

/// The files of each folder under `src/` import each other without a circle: a file names a sibling through
/// `super::sibling` (alone or in a `super::{…}` group) or `crate::folder::sibling`. The folder's `mod.rs`,
/// its front door, is left out.
#[test]
fn the_files_of_each_folder_import_each_other_without_a_circle() {
    let mut folders: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for path in files("src", &[".rs"]) {
        if path.parent() != Some(Path::new("src")) && !path.ends_with("mod.rs") {
            folders.entry(path.parent().unwrap().to_path_buf()).or_default().push(path);
        }
    }
    for (folder, members) in &folders {
        let stem = |p: &PathBuf| p.file_stem().unwrap().to_string_lossy().to_string();
        let siblings: BTreeSet<String> = members.iter().map(stem).collect();
        let module_path = folder.strip_prefix("src").unwrap().to_string_lossy().replace('/', "::");
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for path in members {
            let code = code(&read(path));
            let mut named = Vec::new();
            for prefix in ["super::".to_string(), format!("crate::{module_path}::")] {
                for (at, _) in code.match_indices(&prefix) {
                    let rest = &code[at + prefix.len()..];
                    match rest.strip_prefix('{') {
                        Some(group) => named.extend(group_heads(group)),
                        None => {
                            named.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
                        }
                    }
                }
            }
            let me = stem(path);
            let targets = named.into_iter().filter(|n| siblings.contains(n) && *n != me);
            edges.entry(me.clone()).or_default().extend(targets);
        }
        assert_no_circle(&edges);
    }
    assert_eq!(group_heads("a::B, c::{D, E}, f as g}"), ["a", "c", "f"]);
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let long: Vec<String> = files("src", &[".rs"])
        .into_iter()
        .chain(files("tests", &[".rs", ".py", ".sh", ".js", ".mjs"]))
        .map(|p| (read(&p).lines().count(), p))
        .filter(|(lines, _)| *lines > 1000)
        .map(|(lines, p)| format!("{} ({lines} lines)", p.display()))
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

#[test]
fn the_repository_cites_only_what_it_holds() {
    let mut cited = Vec::new();
    for path in files("src", &[".rs"])
        .into_iter()
        .chain(files("tests", &[".rs", ".py", ".sh"]))
        .chain(files("docs", &[".md"]))
        .chain([PathBuf::from("README.md")])
    {
        let text = read(&path);
        if text.contains(concat!("SPEC ", "§")) || text.contains(concat!("STYLE", ".md")) {
            cited.push(path.display().to_string());
        }
    }
    assert!(cited.is_empty(), "these cite documents that are not in the repository: {cited:?}");
}

#[test]
fn every_test_the_conformance_table_names_exists() {
    let api = read(Path::new("docs/api.md"));
    let section = api
        .split("\n## SMART Imaging Access conformance\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/api.md has its conformance table");
    let rows: Vec<&str> =
        section.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| IG requirement")).collect();
    let rows: Vec<&str> = rows.into_iter().filter(|l| !l.starts_with("| ---")).collect();
    assert!(rows.len() >= 15, "the table has a row per SHALL: {}", rows.len());
    let interop: String = files("tests/interop", &[".py"]).iter().map(|p| read(p)).collect();
    for row in rows {
        let test = row.trim_end_matches('|').rsplit(" | ").next().unwrap_or_default();
        let mut named = 0;
        for quoted in test.split('`').skip(1).step_by(2) {
            named += 1;
            match quoted.split_once("::") {
                Some((file, name)) => {
                    let text = read(Path::new(file));
                    assert!(text.contains(&format!("fn {name}(")), "{file} has no test {name}: {row}");
                }
                None => assert!(repo().join(quoted).is_file(), "no file {quoted}: {row}"),
            }
        }
        for case in test.split('"').skip(1).step_by(2) {
            named += 1;
            assert!(interop.contains(case), "no interop case {case:?}: {row}");
        }
        assert!(named > 0, "a row names no test: {row}");
    }
}
