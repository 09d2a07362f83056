//! The codemap of `ARCHITECTURE.md` names every source file, script and Python check, and only files that exist.
//!
//! The files it must name: every `.rs` file below each workspace member's `src/` (all members, read from the
//! workspace's `Cargo.toml`) and each library or binary root a manifest places elsewhere, every script of
//! `scripts/`, and every Python check (`.py`, `.sh`) of `tests/python/`, each written as `` `path` `` from the
//! repository root. The files it must not name: any `` `a/b.ext` `` code span (with a `/`, no space, not
//! starting with `/`, ending in `.rs`, `.sh`, `.py`, `.md` or `.yaml`) for which no file exists.

use std::collections::BTreeSet;
use std::path::Path;

use crate::layers::ARCHITECTURE;
use crate::source::files_below;
use crate::workspace::{Workspace, join};

/// The files the codemap must name, as repository paths.
pub fn required_files(root: &Path, workspace: &Workspace) -> Vec<String> {
    let mut files: BTreeSet<String> = BTreeSet::new();
    for package in &workspace.packages {
        files.extend(files_below(root, &join(&package.dir, "src"), &|p: &str| p.ends_with(".rs")));
        files.extend(package.lib.iter().cloned());
        files.extend(package.bins.iter().map(|(_, path)| path.clone()));
    }
    files.extend(files_below(root, "scripts", &|p: &str| p.ends_with(".sh")));
    files.extend(files_below(root, "tests/python", &|p: &str| p.ends_with(".py") || p.ends_with(".sh")));
    files.into_iter().collect()
}

/// Every code span of `text` that names a file, with its line.
fn named_paths(text: &str) -> Vec<(&str, usize)> {
    let mut named = Vec::new();
    let mut offset = 0;
    for (index, piece) in text.split('`').enumerate() {
        let is_file = !piece.starts_with('/') && piece.contains('/') && !piece.contains(char::is_whitespace);
        if index % 2 == 1 && is_file && [".rs", ".sh", ".py", ".md", ".yaml"].iter().any(|e| piece.ends_with(e)) {
            named.push((piece, text[..offset].matches('\n').count() + 1));
        }
        offset += piece.len() + 1;
    }
    named
}

/// Checks the codemap of the repository at `root`; empty when it is complete and current.
pub fn check(root: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(root.join(ARCHITECTURE)) {
        Ok(text) => text,
        Err(e) => return vec![format!("{ARCHITECTURE}: {e}")],
    };
    let workspace = match Workspace::load(root) {
        Ok(workspace) => workspace,
        Err(e) => return vec![e],
    };
    let files = required_files(root, &workspace);
    if !files.iter().any(|f| f.ends_with(".rs")) {
        return vec![
            "the workspace has no .rs files below its members' src/: is this the repository root?".to_string(),
        ];
    }
    let mut problems: Vec<String> = files
        .iter()
        .filter(|file| !text.contains(&format!("`{file}`")))
        .map(|file| format!("{file}: not named in {ARCHITECTURE}'s codemap (write it as `{file}`)"))
        .collect();
    let mut seen = BTreeSet::new();
    for (path, line) in named_paths(&text) {
        if seen.insert(path) && !root.join(path).exists() {
            problems.push(format!("{ARCHITECTURE}:{line}: names `{path}`, which does not exist"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Tree;

    const MANIFEST: &str = "[workspace]\nmembers = [\".\", \"tool\"]\n[package]\nname = \"top\"\n";

    fn files(architecture: &str) -> Tree {
        Tree::new(&[
            ("Cargo.toml", MANIFEST),
            ("src/lib.rs", ""),
            ("src/a/b.rs", ""),
            ("tool/Cargo.toml", "[package]\nname = \"tool\"\n[[bin]]\nname = \"t\"\npath = \"bin/t.rs\"\n"),
            ("tool/bin/t.rs", ""),
            ("scripts/run.sh", ""),
            ("tests/python/check.py", ""),
            ("tests/python/requirements.txt", ""),
            ("ARCHITECTURE.md", architecture),
        ])
    }

    #[test]
    fn a_complete_codemap_passes() {
        let text = "- `src/lib.rs`, `src/a/b.rs`: code.\n- `tool/bin/t.rs`, `scripts/run.sh`, `tests/python/check.py`; \
                    routes like `/v1/models` and prose `a / b.rs` are not files.";
        assert_eq!(check(files(text).path()), Vec::<String>::new());
    }

    #[test]
    fn unnamed_files_and_names_of_missing_files_are_found() {
        let text = "- `src/lib.rs`, `tool/bin/t.rs`, `scripts/run.sh`.\n\n- `src/gone.rs` was removed.";
        assert_eq!(
            check(files(text).path()),
            [
                "src/a/b.rs: not named in ARCHITECTURE.md's codemap (write it as `src/a/b.rs`)",
                "tests/python/check.py: not named in ARCHITECTURE.md's codemap (write it as `tests/python/check.py`)",
                "ARCHITECTURE.md:3: names `src/gone.rs`, which does not exist",
            ]
        );
    }
}
