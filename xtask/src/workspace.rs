//! The workspace as the checks see it, read from its `Cargo.toml` files: each member's package name, directory,
//! library root and binary roots. Paths are relative to the repository root, with `/` separators, as every
//! message prints them.

use std::path::{Path, PathBuf};

/// One member package of the workspace.
#[derive(Debug, Clone)]
pub struct Package {
    /// `[package] name`.
    pub name: String,
    /// The member's directory from the repository root; empty for the root package.
    pub dir: String,
    /// The library's root file (`[lib] path`, else `src/lib.rs` when it exists).
    pub lib: Option<String>,
    /// Each binary as (name, root file): `[[bin]]` entries, `src/main.rs` (named after the package) and
    /// `src/bin/*.rs`.
    pub bins: Vec<(String, String)>,
}

/// The workspace at a repository root.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The repository root.
    pub root: PathBuf,
    /// The members, in the order `[workspace] members` lists them.
    pub packages: Vec<Package>,
}

/// `dir/file` as a repository path (`file` alone for the root package).
pub fn join(dir: &str, file: &str) -> String {
    let file = file.strip_prefix("./").unwrap_or(file);
    if dir.is_empty() { file.to_string() } else { format!("{dir}/{file}") }
}

fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.parse::<toml::Table>().map_err(|e| format!("{}: {e}", path.display()))
}

fn strings(value: Option<&toml::Value>) -> Vec<String> {
    value.and_then(toml::Value::as_array).into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect()
}

impl Workspace {
    /// Reads `root/Cargo.toml` and every member's manifest. A member given as `dir/*` stands for each
    /// subdirectory of `dir` with a `Cargo.toml`.
    pub fn load(root: &Path) -> Result<Workspace, String> {
        let manifest = read_table(&root.join("Cargo.toml"))?;
        let workspace = manifest.get("workspace").ok_or("Cargo.toml has no [workspace] table")?;
        let mut dirs = Vec::new();
        for member in strings(workspace.get("members")) {
            let member = member.trim_end_matches('/').to_string();
            match member.strip_suffix("/*") {
                Some(parent) => {
                    let entries = std::fs::read_dir(root.join(parent)).map_err(|e| format!("{parent}: {e}"))?;
                    let mut found: Vec<String> = entries
                        .filter_map(Result::ok)
                        .filter(|e| e.path().join("Cargo.toml").is_file())
                        .map(|e| format!("{parent}/{}", e.file_name().to_string_lossy()))
                        .collect();
                    found.sort();
                    dirs.extend(found);
                }
                None => dirs.push(if member == "." { String::new() } else { member }),
            }
        }
        let packages = dirs.iter().map(|dir| Self::package(root, dir)).collect::<Result<_, _>>()?;
        Ok(Workspace { root: root.to_path_buf(), packages })
    }

    fn package(root: &Path, dir: &str) -> Result<Package, String> {
        let manifest_path = join(dir, "Cargo.toml");
        let manifest = read_table(&root.join(&manifest_path))?;
        let name = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            .ok_or_else(|| format!("{manifest_path} has no [package] name"))?
            .to_string();
        let exists = |file: &str| root.join(join(dir, file)).is_file();
        let lib = match manifest.get("lib").and_then(|l| l.get("path")).and_then(toml::Value::as_str) {
            Some(path) => Some(join(dir, path)),
            None => exists("src/lib.rs").then(|| join(dir, "src/lib.rs")),
        };
        let mut bins: Vec<(String, String)> = Vec::new();
        for bin in manifest.get("bin").and_then(toml::Value::as_array).into_iter().flatten() {
            let bin_name = bin.get("name").and_then(toml::Value::as_str).unwrap_or(&name).to_string();
            let path = bin.get("path").and_then(toml::Value::as_str).map(str::to_string);
            let path = path.unwrap_or_else(|| format!("src/bin/{bin_name}.rs"));
            bins.push((bin_name, join(dir, &path)));
        }
        let mut automatic = Vec::new();
        if exists("src/main.rs") {
            automatic.push((name.clone(), join(dir, "src/main.rs")));
        }
        if let Ok(entries) = std::fs::read_dir(root.join(join(dir, "src/bin"))) {
            for entry in entries.filter_map(Result::ok) {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(stem) = file.strip_suffix(".rs") {
                    automatic.push((stem.to_string(), join(dir, &format!("src/bin/{file}"))));
                }
            }
        }
        for (bin_name, path) in automatic {
            if !bins.iter().any(|(n, p)| *n == bin_name || *p == path) {
                bins.push((bin_name, path));
            }
        }
        bins.sort();
        Ok(Package { name, dir: dir.to_string(), lib, bins })
    }

    /// The member named `name`.
    pub fn package_named(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Tree;

    #[test]
    fn members_libraries_and_binaries_are_found() {
        let tree = Tree::new(&[
            ("Cargo.toml", "[workspace]\nmembers = [\".\", \"core\", \"tools/*\"]\n[package]\nname = \"top\"\n"),
            ("src/lib.rs", ""),
            ("src/main.rs", ""),
            (
                "core/Cargo.toml",
                "[package]\nname = \"low\"\n[lib]\npath = \"lib/root.rs\"\n[[bin]]\nname = \"x\"\npath = \"x.rs\"\n",
            ),
            ("tools/one/Cargo.toml", "[package]\nname = \"one\"\n"),
            ("tools/one/src/bin/helper.rs", ""),
        ]);
        let workspace = Workspace::load(tree.path()).unwrap();
        let names: Vec<&str> = workspace.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["top", "low", "one"]);
        let top = workspace.package_named("top").unwrap();
        assert_eq!((top.dir.as_str(), top.lib.as_deref()), ("", Some("src/lib.rs")));
        assert_eq!(top.bins, [("top".to_string(), "src/main.rs".to_string())]);
        let low = workspace.package_named("low").unwrap();
        assert_eq!(low.lib.as_deref(), Some("core/lib/root.rs"));
        assert_eq!(low.bins, [("x".to_string(), "core/x.rs".to_string())]);
        let one = workspace.package_named("one").unwrap();
        assert_eq!(one.lib, None);
        assert_eq!(one.bins, [("helper".to_string(), "tools/one/src/bin/helper.rs".to_string())]);
    }
}
