//! The `xtask` binary on small synthetic repositories: one line per problem after the check's name, exit status 1
//! when a check fails and 0 when all pass. (Its integration test also makes `cargo test --workspace --no-run`
//! build the binary, which `make check` runs.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// A repository written below the temporary directory, removed on drop.
struct Repo(PathBuf);

impl Repo {
    fn new(name: &str, files: &[(&str, &str)]) -> Repo {
        let dir = std::env::temp_dir().join(format!("xtask-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, contents) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, contents).unwrap();
        }
        Repo(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn xtask(args: &[&str], dir: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).current_dir(dir).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

const MANIFEST: &str = "[workspace]\nmembers = [\".\"]\n[package]\nname = \"toy\"\n";
const TABLE: &str = "<!-- layers: toy -->\n| layer | modules | what |\n|---|---|---|\n| 0 | `low` | |\n| 1 | `high` | |\n\
                     <!-- /layers -->\n- `src/lib.rs`, `src/low.rs`, `src/high.rs`\n";

#[test]
fn a_sound_tree_passes_and_a_broken_one_fails_with_every_message() {
    let repo = Repo::new(
        "layers",
        &[
            ("Cargo.toml", MANIFEST),
            ("ARCHITECTURE.md", TABLE),
            ("src/lib.rs", "pub mod low;\npub mod high;\n"),
            ("src/low.rs", "pub fn f() {}\n"),
            ("src/high.rs", "pub fn g() { crate::low::f() }\n"),
        ],
    );
    // The root is found from a folder below it.
    let (status, stdout, _) = xtask(&["layers"], &repo.path().join("src"));
    assert_eq!((status, stdout.as_str()), (0, "xtask layers: ok\n"));
    let (status, stdout, _) = xtask(&["codemap"], repo.path());
    assert_eq!((status, stdout.as_str()), (0, "xtask codemap: ok\n"));

    std::fs::write(repo.path().join("src/low.rs"), "pub fn f() { crate::high::g() }\n").unwrap();
    std::fs::write(repo.path().join("src/extra.rs"), "").unwrap();
    let (status, _, stderr) = xtask(&["layers", "--root", repo.path().to_str().unwrap()], Path::new("/"));
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.starts_with("xtask layers: 2 problem(s)\n"), "{stderr}");
    assert!(stderr.contains("  src/low.rs:1: `low` (layer 0) imports `high::g` of `high` (layer 1)\n"), "{stderr}");
    assert!(stderr.contains("  import cycle: high → low → high"), "{stderr}");
    let (status, _, stderr) = xtask(&["codemap"], repo.path());
    assert_eq!(status, 1);
    assert!(stderr.contains("src/extra.rs: not named in ARCHITECTURE.md's codemap"), "{stderr}");
}

#[test]
fn functions_over_the_limit_fail_the_function_check() {
    let body = "    let _ = 1;\n".repeat(100);
    let repo =
        Repo::new("functions", &[("Cargo.toml", MANIFEST), ("src/lib.rs", &format!("fn long() {{\n{body}}}\n"))]);
    let (status, _, stderr) = xtask(&["functions"], repo.path());
    assert_eq!(status, 1);
    assert!(stderr.contains("  src/lib.rs:1: `long` is 102 lines long (the limit is 100)"), "{stderr}");
}
