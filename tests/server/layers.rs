//! The module layering of both crates holds: every module of `src/` (cxr-serve) and `training/src/` (cxr-train)
//! belongs to a layer of the tables in `ARCHITECTURE.md`, no module imports one of a higher layer, and no modules
//! import each other in a cycle (within a layer either).
//!
//! The check reads the sources themselves (comments stripped): every `crate::…` path, including the items of
//! `use crate::{a, b::{c, d}}` groups and paths written inline, and every `super::…` path, resolved from the file
//! (and inline `mod` block) it is written in. A path names the longest module of the table that prefixes it; a
//! path to a module that no table row names (`crate::Config`, a re-export at the crate root) names the crate root,
//! which is above every layer. Rust's own module tree allows all of these imports: the layering is ours.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::helpers::{CRATE_DIR, repository_files};

/// One layer table of `ARCHITECTURE.md`: module path (`a::b`) → layer number.
type Layers = BTreeMap<String, usize>;

/// The table between `<!-- layers: NAME -->` and `<!-- /layers -->`: rows `| N | `a`, `a::b` | what |`.
fn layer_table(architecture: &str, name: &str) -> Layers {
    let start = format!("<!-- layers: {name} -->");
    let body = architecture
        .split_once(&start)
        .and_then(|(_, rest)| rest.split_once("<!-- /layers -->"))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no `{start}` … `<!-- /layers -->` table"));
    let mut layers = Layers::new();
    for row in body.lines().filter(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(layer) = cells.get(1).copied().unwrap_or_default().parse::<usize>() else { continue };
        let modules = cells.get(2).copied().unwrap_or_default();
        for module in modules.split(',').map(|m| m.trim().trim_matches('`')).filter(|m| !m.is_empty()) {
            assert!(layers.insert(module.to_string(), layer).is_none(), "{name}: `{module}` is listed twice");
        }
    }
    assert!(!layers.is_empty(), "the `{name}` layer table has no rows");
    layers
}

/// Source text with comments, string literals and character literals blanked out (newlines kept), so that
/// neither prose nor data can look like an import and braces inside literals do not count.
fn strip_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, span: &[char]| out.extend(span.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    let find = |from: usize, pattern: &[char]| {
        (from..chars.len()).find(|&k| chars[k..].starts_with(pattern)).map_or(chars.len(), |k| k + pattern.len())
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let end = if c == '/' && next == Some('/') {
            (i..chars.len()).find(|&k| chars[k] == '\n').unwrap_or(chars.len())
        } else if c == '/' && next == Some('*') {
            find(i + 2, &['*', '/'])
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !chars[..i].last().is_some_and(|p| p.is_alphanumeric())
        {
            // A raw string `r"…"` or `r#"…"#`: it ends at the quote followed by as many `#`.
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let mut close = vec!['"'];
            close.extend(std::iter::repeat_n('#', hashes));
            find(i + 2 + hashes, &close)
        } else if c == '"' {
            let mut k = i + 1;
            while k < chars.len() && chars[k] != '"' {
                k += if chars[k] == '\\' { 2 } else { 1 };
            }
            k + 1
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal (`'x'`, `'\n'`, `'\u{7f}'`); a lifetime `'a` has no closing quote.
            (i + 2..chars.len()).find(|&k| chars[k] == '\'').map_or(chars.len(), |k| k + 1)
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        let end = end.min(chars.len());
        blank(&mut out, &chars[i..end]);
        i = end;
    }
    out
}

/// The inline `mod name {` blocks enclosing each byte offset: `(start, end, name)` of every block.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let mut blocks = Vec::new();
    let mut search = 0;
    while let Some(found) = code[search..].find("mod ") {
        let at = search + found;
        search = at + 4;
        if at > 0 && (code.as_bytes()[at - 1].is_ascii_alphanumeric() || code.as_bytes()[at - 1] == b'_') {
            continue;
        }
        let rest = &code[at + 4..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = at + 4 + rest.len() - after.len();
        let mut depth = 0usize;
        let mut end = code.len();
        for (offset, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + offset;
                        break;
                    }
                }
                _ => {}
            }
        }
        blocks.push((open, end, name));
    }
    blocks
}

/// Every path `code` names through `crate::` or `super::`, as module segments from the crate root.
/// `file_module` is the module of the file (`["api", "predict"]`; empty for the crate root).
fn named_paths(code: &str, file_module: &[String]) -> Vec<Vec<String>> {
    let blocks = inline_modules(code);
    let mut paths = Vec::new();
    for keyword in ["crate::", "super::"] {
        let mut search = 0;
        while let Some(found) = code[search..].find(keyword) {
            let at = search + found;
            search = at + keyword.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == ':') {
                continue;
            }
            // The module this occurrence is written in: the file's, plus the inline blocks around it.
            let mut here: Vec<String> = file_module.to_vec();
            here.extend(blocks.iter().filter(|(s, e, _)| *s < at && at < *e).map(|(_, _, name)| name.clone()));
            let mut prefix = if keyword == "crate::" {
                Vec::new()
            } else {
                here.pop();
                here
            };
            let mut rest = &code[search..];
            while let Some(more) = rest.strip_prefix("super::") {
                prefix.pop();
                rest = more;
            }
            paths.extend(expand_tree(rest, prefix));
        }
    }
    paths
}

/// Expands a use tree (`a::b`, `a::{b, c::d}`, `a::*`) that starts `text`, below `prefix`.
fn expand_tree(text: &str, prefix: Vec<String>) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut items = Vec::new();
        let mut start = 0;
        for (offset, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..offset]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..offset]);
                    start = offset + 1;
                }
                _ => {}
            }
        }
        return items
            .into_iter()
            .filter(|i| !i.trim().is_empty())
            .flat_map(|i| expand_tree(i, prefix.clone()))
            .collect();
    }
    let ident: String = text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    if ident.is_empty() || ident == "self" {
        return vec![prefix];
    }
    let mut path = prefix;
    path.push(ident.clone());
    match text[ident.len()..].trim_start().strip_prefix("::") {
        Some(rest) => expand_tree(rest, path),
        None => vec![path],
    }
}

/// The table module a path falls in: the longest listed prefix; `None` is the crate root.
fn owner<'a>(layers: &'a Layers, path: &[String]) -> Option<&'a str> {
    (1..=path.len()).rev().find_map(|n| layers.get_key_value(&path[..n].join("::")).map(|(k, _)| k.as_str()))
}

/// The violations of one crate whose files are `(module path, source)`: unlisted modules, imports of a higher
/// layer, cycles. Empty when the layering holds.
fn violations(layers: &Layers, files: &[(Vec<String>, String)]) -> Vec<String> {
    const ROOT: &str = "<crate root>";
    let top = layers.values().max().copied().unwrap_or(0) + 1;
    let layer = |module: &str| if module == ROOT { top } else { layers[module] };
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, source) in files {
        let from = if module.is_empty() {
            ROOT
        } else if let Some(from) = owner(layers, module) {
            from
        } else {
            problems.push(format!("module `{}` is in no layer of the table", module.join("::")));
            continue;
        };
        for path in named_paths(&strip_comments(source), module) {
            let to = owner(layers, &path).unwrap_or(ROOT);
            if to == from {
                continue;
            }
            if layer(to) > layer(from) {
                problems.push(format!(
                    "`{from}` (layer {}) imports `{}` of `{to}` (layer {})",
                    layer(from),
                    path.join("::"),
                    layer(to)
                ));
            }
            edges.entry(from.to_string()).or_default().insert(to.to_string());
        }
    }
    problems.extend(cycles(&edges));
    problems
}

/// One message per import cycle found by a depth-first search (each cycle reported once, from its first module).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            found.push(format!("import cycle: {}", cycle.join(" → ")));
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for node in edges.keys() {
        visit(node, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

/// Every `.rs` file of a crate's `src/` as `(module path, source)`; binary roots (`main.rs`, `bin/`) are left out
/// (they use the library by its crate name, never `crate::`).
fn crate_files(src: &str) -> Vec<(Vec<String>, String)> {
    let files = repository_files(src, &|p: &str| p.ends_with(".rs"));
    assert!(!files.is_empty(), "no sources below {src}");
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&format!("{src}/")).unwrap().strip_suffix(".rs").unwrap();
            let mut module: Vec<String> = relative.split('/').map(str::to_string).collect();
            if module.first().is_some_and(|m| m == "bin") || module == ["main"] {
                return None;
            }
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            Some((module, std::fs::read_to_string(Path::new(CRATE_DIR).join(&path)).unwrap()))
        })
        .collect()
}

fn architecture() -> String {
    std::fs::read_to_string(Path::new(CRATE_DIR).join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

#[test]
fn server_modules_import_only_lower_layers() {
    let layers = layer_table(&architecture(), "cxr-serve");
    let problems = violations(&layers, &crate_files("src"));
    assert!(problems.is_empty(), "cxr-serve layering (ARCHITECTURE.md):\n{}", problems.join("\n"));
}

#[test]
fn training_modules_import_only_lower_layers() {
    let layers = layer_table(&architecture(), "cxr-train");
    let problems = violations(&layers, &crate_files("training/src"));
    assert!(problems.is_empty(), "cxr-train layering (ARCHITECTURE.md):\n{}", problems.join("\n"));
}

/// The checker itself finds what it must: an upward import (a `use` group, an inline path, a `super::` path from a
/// test module), a cycle within one layer, an unlisted module, and ignores comments and strings.
#[test]
fn the_check_fails_on_upward_imports_and_cycles() {
    let table = "<!-- layers: toy -->\n| layer | modules |\n|---|---|\n| 0 | `low`, `peer` |\n| 1 | `high`, \
                 `high::inner` |\n<!-- /layers -->";
    let layers = layer_table(table, "toy");
    let file = |module: &[&str], source: &str| (module.iter().map(|m| m.to_string()).collect(), source.to_string());
    let clean = [
        file(&["low"], "// crate::high is only mentioned\nconst S: &str = \"crate::high::X\";\nuse crate::peer::P;"),
        file(&["peer"], "pub struct P;"),
        file(&["high"], "use crate::{low::{self, X}, peer::P};\nmod tests { use super::*; }"),
        file(&["high", "inner"], "use super::Y;\nfn f() { crate::low::g(); }"),
        file(&[], "pub use high::Z;"),
    ];
    assert_eq!(violations(&layers, &clean), Vec::<String>::new());

    let upward = [file(&["low"], "use crate::{peer::P, high::{Q, R}};")];
    let found = violations(&layers, &upward);
    assert!(found.iter().any(|p| p.contains("`low` (layer 0) imports `high::Q`")), "{found:?}");

    let inline = [file(&["low"], "fn f() -> u8 { crate::high::inner::g() }")];
    assert!(violations(&layers, &inline)[0].contains("imports `high::inner::g` of `high::inner`"));

    let from_tests = [file(&["high", "inner"], "mod tests { use super::super::super::Root; }")];
    assert!(violations(&layers, &from_tests)[0].contains("of `<crate root>`"), "the crate root is above all");

    let cycle = [file(&["low"], "use crate::peer::P;"), file(&["peer"], "use crate::low::L;")];
    let found = violations(&layers, &cycle);
    assert_eq!(found, ["import cycle: low → peer → low"]);

    let unlisted = [file(&["extra"], "")];
    assert_eq!(violations(&layers, &unlisted), ["module `extra` is in no layer of the table"]);
}
