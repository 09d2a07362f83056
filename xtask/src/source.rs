//! Reading Rust sources: the files below a directory, one file parsed with `syn` (lines from
//! `proc-macro2`'s span locations), and a library's module tree from its root file through its `mod`
//! declarations — `mod a;` files (`a.rs`, `a/mod.rs`, `#[path]`), inline `mod a { … }` blocks and
//! `#[cfg(test)] mod tests` alike.

use std::collections::BTreeMap;
use std::path::Path;

use proc_macro2::Span;

/// The line (from 1) a token starts on.
pub fn line(span: Span) -> usize {
    span.start().line
}

/// The files below `dir` (a repository path) whose repository path `keep` accepts, sorted. `target` folders and
/// hidden ones are skipped; a missing `dir` has none.
pub fn files_below(root: &Path, dir: &str, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
    fn walk(root: &Path, dir: &str, keep: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { return };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
            if entry.path().is_dir() {
                if name != "target" && !name.starts_with('.') {
                    walk(root, &path, keep, out);
                }
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, dir, keep, &mut files);
    files.sort();
    files
}

/// Parses the file at repository path `path`; the error names the file, line and column.
pub fn parse(root: &Path, path: &str) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(root.join(path)).map_err(|e| format!("{path}: {e}"))?;
    syn::parse_file(&text).map_err(|e| {
        let at = e.span().start();
        format!("{path}:{}:{}: does not parse as Rust: {e}", at.line, at.column + 1)
    })
}

/// One file of a module tree.
pub struct ModuleFile {
    /// The file's module from the crate root (`["api", "predict"]`; empty for the root file).
    pub module: Vec<String>,
    /// Its repository path.
    pub path: String,
    /// Its syntax tree.
    pub ast: syn::File,
}

/// A library's modules: its files, and every module (file or inline) with where it is declared.
#[derive(Default)]
pub struct ModuleTree {
    pub files: Vec<ModuleFile>,
    /// Module path → (file, line) of its `mod` item; the root is not in it.
    pub modules: BTreeMap<Vec<String>, (String, usize)>,
    /// Files that are missing or do not parse.
    pub problems: Vec<String>,
}

/// What the walk knows about the file it is in, to place the files of `mod a;` items.
struct FileContext<'a> {
    path: &'a str,
    module: &'a [String],
    /// Whether the file is a crate root or a `mod.rs` (its children live beside it, not in a folder named after
    /// it).
    mod_rs: bool,
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `dir/relative` with `.` and `..` components folded.
fn normalize(dir: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

fn path_attribute(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find(|a| a.path().is_ident("path")).and_then(|a| match &a.meta {
        syn::Meta::NameValue(syn::MetaNameValue {
            value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }),
            ..
        }) => Some(s.value()),
        _ => None,
    })
}

fn has_cfg(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg"))
}

impl ModuleTree {
    /// Walks the library whose root file is `crate_root` (a repository path).
    pub fn walk(root: &Path, crate_root: &str) -> ModuleTree {
        let mut tree = ModuleTree::default();
        let mut pending = vec![(Vec::new(), crate_root.to_string(), true)];
        while let Some((module, path, mod_rs)) = pending.pop() {
            let ast = match parse(root, &path) {
                Ok(ast) => ast,
                Err(problem) => {
                    tree.problems.push(problem);
                    continue;
                }
            };
            let context = FileContext { path: &path, module: &module, mod_rs };
            tree.declarations(root, &context, &ast.items, &[], &mut pending);
            tree.files.push(ModuleFile { module, path, ast });
        }
        tree.files.sort_by(|a, b| a.path.cmp(&b.path));
        tree
    }

    /// Records the `mod` items among `items` (inside the inline modules `inline` of the file) and queues the
    /// files of `mod a;` items.
    fn declarations(
        &mut self,
        root: &Path,
        file: &FileContext,
        items: &[syn::Item],
        inline: &[String],
        pending: &mut Vec<(Vec<String>, String, bool)>,
    ) {
        for item in items {
            let syn::Item::Mod(item) = item else { continue };
            let name = item.ident.to_string();
            let mut module: Vec<String> = file.module.iter().chain(inline).cloned().collect();
            module.push(name.clone());
            self.modules.insert(module.clone(), (file.path.to_string(), line(item.ident.span())));
            if let Some((_, items)) = &item.content {
                let mut inner = inline.to_vec();
                inner.push(name);
                self.declarations(root, file, items, &inner, pending);
                continue;
            }
            // The folder a child's file is looked up in: beside a mod-rs file, in a folder named after any
            // other file, then one folder per enclosing inline module.
            let mut base = parent_dir(file.path).to_string();
            if !file.mod_rs {
                let stem = file.path.rsplit('/').next().unwrap_or_default().trim_end_matches(".rs");
                base = normalize(&base, stem);
            }
            let base = inline.iter().fold(base, |dir, m| normalize(&dir, m));
            let candidates = match path_attribute(&item.attrs) {
                Some(path) if inline.is_empty() => vec![normalize(parent_dir(file.path), &path)],
                Some(path) => vec![normalize(&base, &path)],
                None => vec![normalize(&base, &format!("{name}.rs")), normalize(&base, &format!("{name}/mod.rs"))],
            };
            match candidates.iter().find(|c| root.join(c).is_file()) {
                Some(found) => {
                    let mod_rs = found.ends_with("/mod.rs");
                    pending.push((module, found.clone(), mod_rs));
                }
                // Configured out, and no file to read: nothing of it is compiled either.
                None if has_cfg(&item.attrs) => {
                    self.modules.remove(&module);
                }
                None => self.problems.push(format!(
                    "{}:{}: `mod {name};` has no file ({})",
                    file.path,
                    line(item.ident.span()),
                    candidates.join(" or ")
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Tree;

    #[test]
    fn the_tree_follows_files_folders_inline_blocks_and_path_attributes() {
        let tree = Tree::new(&[
            ("src/lib.rs", "mod a;\nmod b;\nmod c { mod d; }\n#[path = \"other/e.rs\"]\nmod e;\n#[cfg(x)]\nmod f;"),
            ("src/a.rs", "mod inner;\n#[cfg(test)]\nmod tests {}"),
            ("src/a/inner.rs", ""),
            ("src/b/mod.rs", "mod g;"),
            ("src/b/g.rs", ""),
            ("src/c/d.rs", ""),
            ("src/other/e.rs", ""),
        ]);
        let modules = ModuleTree::walk(tree.path(), "src/lib.rs");
        assert_eq!(modules.problems, Vec::<String>::new());
        let names: Vec<String> = modules.modules.keys().map(|m| m.join("::")).collect();
        assert_eq!(names, ["a", "a::inner", "a::tests", "b", "b::g", "c", "c::d", "e"]);
        let files: Vec<&str> = modules.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            files,
            ["src/a.rs", "src/a/inner.rs", "src/b/g.rs", "src/b/mod.rs", "src/c/d.rs", "src/lib.rs", "src/other/e.rs"]
        );
    }

    #[test]
    fn a_missing_file_or_a_syntax_error_is_reported_with_its_line() {
        let tree = Tree::new(&[("src/lib.rs", "\nmod gone;\nmod broken;"), ("src/broken.rs", "fn f( {")]);
        let modules = ModuleTree::walk(tree.path(), "src/lib.rs");
        assert_eq!(modules.problems.len(), 2, "{:?}", modules.problems);
        assert!(
            modules
                .problems
                .iter()
                .any(|p| p == "src/lib.rs:2: `mod gone;` has no file (src/gone.rs or src/gone/mod.rs)")
        );
        assert!(modules.problems.iter().any(|p| p.starts_with("src/broken.rs:1:")), "{:?}", modules.problems);
    }
}
