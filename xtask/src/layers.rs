//! The module layering of each crate that `ARCHITECTURE.md` gives a layer table: every module belongs to a layer
//! (the longest module a row names that prefixes it), no module imports one of a higher layer, no modules import
//! each other in a cycle (within a layer either), and every module a row names exists.
//!
//! A table is the text between `<!-- layers: PACKAGE -->` and `<!-- /layers -->`, rows `| N | `a`, `a::b` | what |`.
//! The crate is the workspace member of that package name, its modules the tree below its library root. Every
//! file of the tree is parsed with `syn`, and every path that names a module of the crate counts as an import:
//! paths starting with `crate::`, `self::` or `super::`, and paths starting with a child module of the module
//! they are written in, in `use` trees (groups, globs, renames), in expressions, types and patterns anywhere, and
//! in the tokens of macro invocations (`$crate::` paths of macro definitions excepted). A path to an item of the
//! crate root that no row names (`crate::Config`, a re-export) names the crate root, which is above every layer.
//! Rust's own module tree allows all of these imports: the layering is ours.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};

use crate::source::{ModuleTree, line};
use crate::workspace::Workspace;

/// The document the tables are in.
pub const ARCHITECTURE: &str = "ARCHITECTURE.md";
/// How the crate root is named in messages.
const ROOT: &str = "<crate root>";

/// One layer table.
#[derive(Debug)]
pub struct Table {
    /// The package it is for.
    pub package: String,
    /// The line of its `<!-- layers: … -->` marker.
    pub line: usize,
    /// Module (`a::b`) → (layer, line of its row).
    pub rows: BTreeMap<String, (usize, usize)>,
}

impl Table {
    /// The module of the table a module path falls in: the longest one that prefixes it.
    fn owner(&self, path: &[String]) -> Option<&str> {
        (1..=path.len()).rev().find_map(|n| self.rows.get_key_value(&path[..n].join("::")).map(|(k, _)| k.as_str()))
    }

    fn layer(&self, module: &str) -> usize {
        match self.rows.get(module) {
            Some((layer, _)) => *layer,
            None => self.rows.values().map(|(layer, _)| layer + 1).max().unwrap_or(0),
        }
    }
}

/// Every layer table of `text` (the contents of [`ARCHITECTURE`]), or what is malformed about them.
pub fn tables(text: &str) -> Result<Vec<Table>, Vec<String>> {
    const OPEN: &str = "<!-- layers: ";
    let (mut tables, mut problems) = (Vec::new(), Vec::new());
    let mut current: Option<Table> = None;
    for (index, row) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = row.trim();
        if let Some(name) = trimmed.strip_prefix(OPEN).and_then(|rest| rest.strip_suffix("-->")) {
            if let Some(open) = current.take() {
                problems.push(format!(
                    "{ARCHITECTURE}:{}: the `{}` table has no `<!-- /layers -->`",
                    open.line, open.package
                ));
            }
            current = Some(Table { package: name.trim().to_string(), line: number, rows: BTreeMap::new() });
        } else if trimmed == "<!-- /layers -->" {
            match current.take() {
                Some(table) if table.rows.is_empty() => {
                    problems.push(format!("{ARCHITECTURE}:{}: the `{}` table has no rows", table.line, table.package))
                }
                Some(table) => tables.push(table),
                None => problems.push(format!("{ARCHITECTURE}:{number}: `<!-- /layers -->` closes no table")),
            }
        } else if let Some(table) = current.as_mut() {
            let cells: Vec<&str> = trimmed.split('|').map(str::trim).collect();
            let Some(Ok(layer)) = cells.get(1).map(|c| c.parse::<usize>()) else { continue };
            let modules = cells.get(2).copied().unwrap_or_default();
            for module in modules.split(',').map(|m| m.trim().trim_matches('`')).filter(|m| !m.is_empty()) {
                if table.rows.insert(module.to_string(), (layer, number)).is_some() {
                    problems.push(format!(
                        "{ARCHITECTURE}:{number}: `{module}` is listed twice in the `{}` table",
                        table.package
                    ));
                }
            }
        }
    }
    if let Some(open) = current {
        problems.push(format!("{ARCHITECTURE}:{}: the `{}` table has no `<!-- /layers -->`", open.line, open.package));
    }
    if problems.is_empty() { Ok(tables) } else { Err(problems) }
}

/// A path as written: each segment with its line.
type Written = Vec<(String, usize)>;

/// Collects the paths of one file that name modules of the crate, each resolved to a module path from the crate
/// root, with the module it is written in and the line of its last segment.
struct Collector<'a> {
    modules: &'a BTreeMap<Vec<String>, (String, usize)>,
    here: Vec<String>,
    found: Vec<Reference>,
}

/// One import: written in module `from` at `line`, naming `path` (from the crate root).
struct Reference {
    from: Vec<String>,
    path: Vec<String>,
    line: usize,
}

impl Collector<'_> {
    /// Resolves a written path from the module it is written in; `None` when it names nothing of the crate
    /// (another crate, a local item, an invalid `super`).
    fn resolve(&self, written: &[(String, usize)]) -> Option<Vec<String>> {
        let (first, _) = written.first()?;
        let mut module = self.here.clone();
        let mut rest = written;
        match first.as_str() {
            "crate" => {
                module.clear();
                rest = &written[1..];
            }
            "self" | "super" => {
                while let Some((segment, _)) = rest.first() {
                    match segment.as_str() {
                        "self" => {}
                        "super" => {
                            module.pop()?;
                        }
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            child => {
                let mut path = self.here.clone();
                path.push(child.to_string());
                if !self.modules.contains_key(&path) {
                    return None;
                }
            }
        }
        module.extend(rest.iter().map(|(segment, _)| segment.clone()));
        Some(module)
    }

    fn record(&mut self, written: &[(String, usize)]) {
        if let Some(path) = self.resolve(written) {
            let line = written.last().map_or(0, |(_, line)| *line);
            self.found.push(Reference { from: self.here.clone(), path, line });
        }
    }

    /// The paths in a macro's tokens: an identifier followed by `::` and more identifiers, not itself after `::`
    /// or `$`. Groups are searched too.
    fn scan(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let colons = |at: usize| {
            matches!((trees.get(at), trees.get(at + 1)), (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
        };
        let dollar = |at: usize| matches!(trees.get(at), Some(TokenTree::Punct(p)) if p.as_char() == '$');
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(group) => self.scan(group.stream()),
                TokenTree::Ident(ident) => {
                    // Not the tail of a longer path (`a::b`) nor a macro variable's (`$crate::b`).
                    let starts = !(i >= 2 && colons(i - 2) || i >= 1 && dollar(i - 1));
                    let mut written: Written = vec![(ident.to_string(), line(ident.span()))];
                    while colons(i + 1) {
                        let Some(TokenTree::Ident(next)) = trees.get(i + 3) else { break };
                        written.push((next.to_string(), line(next.span())));
                        i += 3;
                    }
                    if starts && written.len() >= 2 {
                        self.record(&written);
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Each path a use tree imports, below `prefix`.
fn expand(tree: &syn::UseTree, prefix: &mut Written, out: &mut Vec<Written>) {
    let leaf = |ident: &syn::Ident, prefix: &mut Written, out: &mut Vec<Written>| {
        if ident == "self" {
            out.push(prefix.clone());
        } else {
            prefix.push((ident.to_string(), line(ident.span())));
            out.push(prefix.clone());
            prefix.pop();
        }
    };
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push((path.ident.to_string(), line(path.ident.span())));
            expand(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => leaf(&name.ident, prefix, out),
        syn::UseTree::Rename(rename) => leaf(&rename.ident, prefix, out),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(group) => group.items.iter().for_each(|item| expand(item, prefix, out)),
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.here.push(item.ident.to_string());
        visit::visit_item_mod(self, item);
        self.here.pop();
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        for attribute in &item.attrs {
            self.visit_attribute(attribute);
        }
        if item.leading_colon.is_some() {
            return;
        }
        let mut paths = Vec::new();
        expand(&item.tree, &mut Vec::new(), &mut paths);
        for written in paths.iter().filter(|w| !w.is_empty()) {
            self.record(written);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() >= 2 {
            let written: Written = path.segments.iter().map(|s| (s.ident.to_string(), line(s.ident.span()))).collect();
            self.record(&written);
        }
        visit::visit_path(self, path);
    }

    /// `pub(crate)`, `pub(super)` and `pub(in crate::a)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.scan(mac.tokens.clone());
    }
}

/// The layering problems of one crate against its table.
fn crate_problems(table: &Table, tree: &ModuleTree, lib: &str) -> Vec<String> {
    let mut problems = tree.problems.clone();
    for (module, (_, row)) in &table.rows {
        let path: Vec<String> = module.split("::").map(str::to_string).collect();
        if !tree.modules.contains_key(&path) {
            problems.push(format!(
                "{ARCHITECTURE}:{row}: the `{}` table names `{module}`, which is no module of {lib}'s tree",
                table.package
            ));
        }
    }
    for (module, (file, line)) in &tree.modules {
        if table.owner(module).is_none() {
            problems.push(format!(
                "{file}:{line}: module `{}` is in no layer of the `{}` table",
                module.join("::"),
                table.package
            ));
        }
    }
    // (from, to) → where the first import along that edge is written.
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for file in &tree.files {
        let mut collector = Collector { modules: &tree.modules, here: file.module.clone(), found: Vec::new() };
        collector.visit_file(&file.ast);
        for reference in &collector.found {
            let from = if reference.from.is_empty() {
                ROOT
            } else if let Some(from) = table.owner(&reference.from) {
                from
            } else {
                continue;
            };
            let to = match table.owner(&reference.path) {
                Some(to) => to,
                // Into a module no row names (reported above), or an item of the crate root.
                None if !reference.path.is_empty() && tree.modules.contains_key(&reference.path[..1]) => continue,
                None => ROOT,
            };
            if from == to {
                continue;
            }
            let at = format!("{}:{}", file.path, reference.line);
            let (low, high) = (table.layer(from), table.layer(to));
            if high > low {
                let to_layer = if to == ROOT { "above every layer".to_string() } else { format!("layer {high}") };
                problems.push(format!(
                    "{at}: `{from}` (layer {low}) imports `{}` of `{to}` ({to_layer})",
                    reference.path.join("::")
                ));
            }
            edges.entry((from.to_string(), to.to_string())).or_insert(at);
        }
    }
    problems.extend(cycles(&edges));
    problems
}

/// One message per import cycle found by a depth-first search (each cycle reported once, from its first module),
/// with where each of its imports is written.
fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<String> {
    struct Search<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        edges: &'a BTreeMap<(String, String), String>,
        stack: Vec<&'a str>,
        done: BTreeSet<&'a str>,
        found: Vec<String>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, node: &'a str) {
            if let Some(at) = self.stack.iter().position(|n| *n == node) {
                let mut cycle = self.stack[at..].to_vec();
                cycle.push(node);
                let imports: Vec<String> = cycle
                    .windows(2)
                    .map(|w| format!("{} → {} at {}", w[0], w[1], self.edges[&(w[0].to_string(), w[1].to_string())]))
                    .collect();
                self.found.push(format!("import cycle: {} ({})", cycle.join(" → "), imports.join("; ")));
                return;
            }
            if self.done.contains(node) {
                return;
            }
            self.stack.push(node);
            for next in self.next.get(node).cloned().unwrap_or_default() {
                self.visit(next);
            }
            self.stack.pop();
            self.done.insert(node);
        }
    }
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from.as_str()).or_default().push(to.as_str());
    }
    let starts: Vec<&str> = next.keys().copied().collect();
    let mut search = Search { next, edges, stack: Vec::new(), done: BTreeSet::new(), found: Vec::new() };
    for node in starts {
        search.visit(node);
    }
    search.found
}

/// Checks every layer table of the repository at `root`; empty when the layering holds.
pub fn check(root: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(root.join(ARCHITECTURE)) {
        Ok(text) => text,
        Err(e) => return vec![format!("{ARCHITECTURE}: {e}")],
    };
    let tables = match tables(&text) {
        Ok(tables) if tables.is_empty() => {
            return vec![format!("{ARCHITECTURE} has no `<!-- layers: PACKAGE -->` table")];
        }
        Ok(tables) => tables,
        Err(problems) => return problems,
    };
    let workspace = match Workspace::load(root) {
        Ok(workspace) => workspace,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for table in &tables {
        let Some(package) = workspace.package_named(&table.package) else {
            problems.push(format!(
                "{ARCHITECTURE}:{}: the `{}` table names no workspace package",
                table.line, table.package
            ));
            continue;
        };
        let Some(lib) = &package.lib else {
            problems
                .push(format!("{ARCHITECTURE}:{}: package `{}` has no library to layer", table.line, table.package));
            continue;
        };
        problems.extend(crate_problems(table, &ModuleTree::walk(root, lib), lib));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Tree;

    const LIB: (&str, &str) = ("src/lib.rs", "pub mod low;\npub mod peer;\npub mod high;\npub use high::Z;\n");
    const ROWS: &str = "| 0 | `low`, `peer` | below |\n| 1 | `high`, `high::inner` | above |\n";

    /// The problems of a one-crate workspace `toy` with the layer table `rows` and the source `files`.
    fn toy(rows: &str, files: &[(&str, &str)]) -> Vec<String> {
        let architecture =
            format!("# A\n\n<!-- layers: toy -->\n| layer | modules | what |\n|---|---|---|\n{rows}<!-- /layers -->\n");
        let manifest = "[workspace]\nmembers = [\".\"]\n[package]\nname = \"toy\"\n";
        let mut all = vec![("Cargo.toml", manifest), ("ARCHITECTURE.md", architecture.as_str())];
        all.extend_from_slice(files);
        let tree = Tree::new(&all);
        check(tree.path())
    }

    /// The toy crate with `low.rs` replaced (`high.rs` declares `inner`).
    fn with_low(low: &str) -> Vec<String> {
        toy(
            ROWS,
            &[LIB, ("src/low.rs", low), ("src/peer.rs", ""), ("src/high.rs", "mod inner;"), ("src/high/inner.rs", "")],
        )
    }

    #[test]
    fn a_layered_crate_passes() {
        let low = "// crate::high is only mentioned\nconst S: &str = \"crate::high::X\";\nuse crate::peer::P;\n\
                   pub(in crate::low) fn f() {}\nmacro_rules! m { () => { $crate::high::Z } }";
        let high = "mod inner;\nuse crate::{low::{self, X}, peer::P as Q};\nuse inner::*;\n#[cfg(test)]\nmod tests { use super::*; }";
        let inner = "fn f() { crate::low::g(); let v: Vec<crate::peer::T> = vec![]; }";
        let files = [
            LIB,
            ("src/low.rs", low),
            ("src/peer.rs", "pub struct P;"),
            ("src/high.rs", high),
            ("src/high/inner.rs", inner),
        ];
        assert_eq!(toy(ROWS, &files), Vec::<String>::new());
    }

    #[test]
    fn an_upward_import_in_a_use_group_is_found_with_its_line() {
        let found = with_low("\nuse crate::{peer::P, high::{\n    Q, R}};");
        assert!(
            found.contains(&"src/low.rs:3: `low` (layer 0) imports `high::Q` of `high` (layer 1)".to_string()),
            "{found:?}"
        );
        assert!(found.iter().any(|p| p.contains("imports `high::R`")), "{found:?}");
    }

    #[test]
    fn an_upward_path_in_an_expression_a_type_or_a_macro_is_found() {
        let found = with_low("fn f() -> u8 { crate::high::inner::g() }");
        assert!(found[0].contains("`low` (layer 0) imports `high::inner::g` of `high::inner` (layer 1)"), "{found:?}");
        let found = with_low("fn f(_: &crate::high::T) {}");
        assert!(found[0].contains("imports `high::T` of `high`"), "{found:?}");
        let found = with_low("fn f() { println!(\"{}\", crate::high::NAME); }");
        assert!(found[0].starts_with("src/low.rs:1: `low` (layer 0) imports `high::NAME`"), "{found:?}");
    }

    #[test]
    fn super_paths_and_child_module_paths_resolve_from_where_they_are_written() {
        let inner = "#[cfg(test)]\nmod tests { use super::super::super::Root; }";
        let files =
            [LIB, ("src/low.rs", ""), ("src/peer.rs", ""), ("src/high.rs", "mod inner;"), ("src/high/inner.rs", inner)];
        let found = toy(ROWS, &files);
        assert_eq!(
            found,
            ["src/high/inner.rs:2: `high::inner` (layer 1) imports `Root` of `<crate root>` (above every layer)"]
        );

        let rows = "| 0 | `low`, `peer` | below |\n| 1 | `high` | middle |\n| 2 | `high::inner` | above |\n";
        let files = [
            LIB,
            ("src/low.rs", ""),
            ("src/peer.rs", ""),
            ("src/high.rs", "mod inner;\nfn f() { inner::g() }"),
            ("src/high/inner.rs", ""),
        ];
        assert_eq!(
            toy(rows, &files),
            ["src/high.rs:2: `high` (layer 1) imports `high::inner::g` of `high::inner` (layer 2)"]
        );
    }

    #[test]
    fn a_cycle_within_a_layer_is_found() {
        let files = [
            LIB,
            ("src/low.rs", "use crate::peer::P;"),
            ("src/peer.rs", "\nuse super::low::L;"),
            ("src/high.rs", "mod inner;"),
            ("src/high/inner.rs", ""),
        ];
        assert_eq!(
            toy(ROWS, &files),
            ["import cycle: low → peer → low (low → peer at src/low.rs:1; peer → low at src/peer.rs:2)"]
        );
    }

    #[test]
    fn unlisted_modules_and_rows_without_a_module_are_found() {
        let lib = ("src/lib.rs", "pub mod low;\npub mod peer;\npub mod high;\npub mod extra;\n");
        let rows = format!("{ROWS}| 2 | `ghost` | gone |\n");
        let files = [
            lib,
            ("src/low.rs", ""),
            ("src/peer.rs", ""),
            ("src/high.rs", "mod inner;"),
            ("src/high/inner.rs", ""),
            ("src/extra.rs", ""),
        ];
        assert_eq!(
            toy(&rows, &files),
            [
                "ARCHITECTURE.md:8: the `toy` table names `ghost`, which is no module of src/lib.rs's tree",
                "src/lib.rs:4: module `extra` is in no layer of the `toy` table",
            ]
        );
    }

    #[test]
    fn malformed_tables_and_tables_of_unknown_packages_are_found() {
        assert_eq!(
            tables("<!-- layers: a -->\n| 0 | `x`, `x` | |\n<!-- /layers -->").unwrap_err(),
            ["ARCHITECTURE.md:2: `x` is listed twice in the `a` table"]
        );
        assert_eq!(
            tables("<!-- layers: a -->\n| 0 | `x` | |\n").unwrap_err(),
            ["ARCHITECTURE.md:1: the `a` table has no `<!-- /layers -->`"]
        );
        let tree = Tree::new(&[
            ("Cargo.toml", "[workspace]\nmembers = [\".\"]\n[package]\nname = \"toy\"\n"),
            ("src/lib.rs", ""),
            ("ARCHITECTURE.md", "<!-- layers: other -->\n| 0 | `x` | |\n<!-- /layers -->\n"),
        ]);
        assert_eq!(check(tree.path()), ["ARCHITECTURE.md:1: the `other` table names no workspace package"]);
    }
}
