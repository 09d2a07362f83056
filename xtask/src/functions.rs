//! No function is longer than [`LIMIT`] lines.
//!
//! A function's length is its lines from the `fn` keyword's line to the line of its closing brace, both counted;
//! its doc comment and attributes are not. Every function with a body counts: free functions, methods, trait
//! methods with a default body, functions nested in other functions, test functions. Closures are part of their
//! function, and functions that only exist inside a macro invocation's tokens are not seen.
//!
//! [`STRICT`] holds every file of its folders to the limit. In [`LISTED`] folders (the benchmark), a function
//! over the limit must be on [`ALLOWED`] with the reason it is long, and the check fails when an allowed
//! function is gone or is now within the limit, so the list stays true.

use std::path::Path;

use syn::visit::{self, Visit};

use crate::source::{files_below, line, parse};

/// The most lines a function may have.
pub const LIMIT: usize = 100;
/// The folders (repository paths) where no function may be longer; folders that do not exist are skipped.
pub const STRICT: &[&str] = &["src", "engine", "core", "training/src", "xtask"];
/// The folders where a longer function needs an entry in [`ALLOWED`].
pub const LISTED: &[&str] = &["bench"];

/// A function allowed over the limit: its file, its name (see [`Function::name`]) and why.
pub struct Allowed {
    pub file: &'static str,
    pub function: &'static str,
    pub reason: &'static str,
}

/// The benchmark's functions that stay over the limit.
pub const ALLOWED: &[Allowed] = &[
    Allowed {
        file: "bench/rust/src/lib.rs",
        function: "run",
        reason: "the benchmark's phases in their fixed order (plan, raw sessions, the server phase, the report), each \
                 a few lines writing into the one report",
    },
    Allowed {
        file: "bench/rust/src/lib.rs",
        function: "ServerPhase::run",
        reason: "starts cxr-serve and the Python reference server and stops both on every way out, so the cleanup \
                 stays in one place",
    },
    Allowed {
        file: "bench/rust/src/fault.rs",
        function: "run",
        reason: "one scenario in order (start, saturate with faulty clients, SIGTERM under load, judge) whose shared \
                 counters the load tasks and the verdict both read",
    },
    Allowed {
        file: "bench/rust/src/report.rs",
        function: "Report::derive",
        reason: "one pass over the measurements that fills the ratios and the flat list of target rows together",
    },
    Allowed {
        file: "bench/rust/src/report.rs",
        function: "Report::markdown",
        reason: "the BENCHMARKS.md summary written top to bottom, table after table: its length is the document's",
    },
];

/// One function with a body.
#[derive(Debug, PartialEq)]
pub struct Function {
    /// The names around it and its own, `::`-joined: inline modules, the type of its `impl` or its trait, and
    /// enclosing functions (`tests::parses`, `Report::markdown`, `run::step`).
    pub name: String,
    /// The line of its `fn` keyword.
    pub line: usize,
    /// Its length in lines.
    pub lines: usize,
}

/// Finds every function with a body in a file.
#[derive(Default)]
struct Finder {
    scope: Vec<String>,
    found: Vec<Function>,
}

impl Finder {
    fn add(&mut self, signature: &syn::Signature, block: &syn::Block) {
        let start = line(signature.fn_token.span);
        let end = line(block.brace_token.span.close());
        let mut name = self.scope.clone();
        name.push(signature.ident.to_string());
        self.found.push(Function { name: name.join("::"), line: start, lines: end + 1 - start });
    }

    fn within(&mut self, name: String, inside: impl FnOnce(&mut Self)) {
        self.scope.push(name);
        inside(self);
        self.scope.pop();
    }
}

/// The name an `impl` block gives its methods: the last segment of its type's path.
fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(path) => path.path.segments.last().map_or_else(String::new, |s| s.ident.to_string()),
        syn::Type::Reference(reference) => type_name(&reference.elem),
        syn::Type::Paren(inner) => type_name(&inner.elem),
        _ => "_".to_string(),
    }
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.within(item.ident.to_string(), |finder| visit::visit_item_mod(finder, item));
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        self.within(type_name(&item.self_ty), |finder| visit::visit_item_impl(finder, item));
    }

    fn visit_item_trait(&mut self, item: &'ast syn::ItemTrait) {
        self.within(item.ident.to_string(), |finder| visit::visit_item_trait(finder, item));
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.add(&item.sig, &item.block);
        self.within(item.sig.ident.to_string(), |finder| visit::visit_item_fn(finder, item));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.add(&item.sig, &item.block);
        self.within(item.sig.ident.to_string(), |finder| visit::visit_impl_item_fn(finder, item));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if let Some(block) = &item.default {
            self.add(&item.sig, block);
        }
        self.within(item.sig.ident.to_string(), |finder| visit::visit_trait_item_fn(finder, item));
    }
}

/// Every function with a body in `file`, in source order.
pub fn functions(file: &syn::File) -> Vec<Function> {
    let mut finder = Finder::default();
    finder.visit_file(file);
    finder.found.sort_by_key(|f| f.line);
    finder.found
}

fn rust_files(root: &Path, dirs: &[&str]) -> Vec<String> {
    dirs.iter().flat_map(|dir| files_below(root, dir, &|p: &str| p.ends_with(".rs"))).collect()
}

/// Checks the function lengths of the repository at `root` against `allowed`; empty when every function is
/// within the limit or allowed.
pub fn check_with(root: &Path, strict: &[&str], listed: &[&str], allowed: &[Allowed]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut found = vec![false; allowed.len()];
    let too_long = |path: &str, f: &Function| {
        format!("{path}:{}: `{}` is {} lines long (the limit is {LIMIT})", f.line, f.name, f.lines)
    };
    for (path, is_listed) in rust_files(root, strict)
        .into_iter()
        .map(|p| (p, false))
        .chain(rust_files(root, listed).into_iter().map(|p| (p, true)))
    {
        let file = match parse(root, &path) {
            Ok(file) => file,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        for function in functions(&file) {
            let entry = allowed.iter().position(|a| is_listed && a.file == path && a.function == function.name);
            match entry {
                Some(index) => {
                    found[index] = true;
                    if function.lines <= LIMIT {
                        problems.push(format!(
                            "{path}:{}: `{}` is allowed over {LIMIT} lines but is {} now: remove it from xtask's \
                             allow-list",
                            function.line, function.name, function.lines
                        ));
                    }
                }
                None if function.lines > LIMIT => problems.push(too_long(&path, &function)),
                None => {}
            }
        }
    }
    for (entry, found) in allowed.iter().zip(found) {
        if !found {
            problems.push(format!(
                "{}: `{}` is on xtask's allow-list but no longer exists: remove it",
                entry.file, entry.function
            ));
        }
    }
    problems
}

/// [`check_with`] the repository's folders and allow-list.
pub fn check(root: &Path) -> Vec<String> {
    check_with(root, STRICT, LISTED, ALLOWED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Tree;

    /// A function of `lines` lines (`fn` line and closing brace included).
    fn long(name: &str, lines: usize) -> String {
        format!("fn {name}() {{\n{}}}\n", "    let _ = 1;\n".repeat(lines - 2))
    }

    #[test]
    fn every_kind_of_function_is_measured_from_fn_to_its_closing_brace() {
        let source = format!(
            "/// Doc.\n#[test]\n{}mod m {{ struct S; impl S {{ {} }} trait T {{ fn d() {{}} fn r(); }} }}\nfn outer() {{ {} }}",
            long("free", 3),
            long("method", 101),
            long("nested", 4)
        );
        let file = syn::parse_file(&source).unwrap();
        let found: Vec<(String, usize, usize)> =
            functions(&file).into_iter().map(|f| (f.name, f.line, f.lines)).collect();
        assert_eq!(
            found,
            [
                ("free".to_string(), 3, 3),
                ("m::S::method".to_string(), 6, 101),
                ("m::T::d".to_string(), 107, 1),
                ("outer".to_string(), 108, 5),
                ("outer::nested".to_string(), 108, 4),
            ]
        );
    }

    #[test]
    fn long_functions_fail_unless_allowed_and_stale_allowances_fail() {
        let tree = Tree::new(&[
            ("src/a.rs", &format!("\n{}{}", long("ok", 100), long("over", 101))),
            ("bench/b.rs", &format!("{}{}", long("kept", 150), long("shortened", 20))),
            ("bench/c.rs", &long("unlisted", 102)),
        ]);
        let allowed = [
            Allowed { file: "bench/b.rs", function: "kept", reason: "one table" },
            Allowed { file: "bench/b.rs", function: "shortened", reason: "was long" },
            Allowed { file: "bench/b.rs", function: "removed", reason: "was long" },
        ];
        assert_eq!(
            check_with(tree.path(), &["src", "missing"], &["bench"], &allowed),
            [
                "src/a.rs:102: `over` is 101 lines long (the limit is 100)",
                "bench/b.rs:151: `shortened` is allowed over 100 lines but is 20 now: remove it from xtask's allow-list",
                "bench/c.rs:1: `unlisted` is 102 lines long (the limit is 100)",
                "bench/b.rs: `removed` is on xtask's allow-list but no longer exists: remove it",
            ]
        );
    }
}
