//! The self-tests' synthetic repositories: a fresh directory under the system temporary directory holding the
//! given files, removed again when the test is done with it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A repository tree written for one test.
pub struct Tree {
    dir: PathBuf,
}

impl Tree {
    /// Writes each `(path, contents)` below a new directory.
    pub fn new(files: &[(&str, &str)]) -> Tree {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-selftest-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tree = Tree { dir };
        for (path, contents) in files {
            tree.write(path, contents);
        }
        tree
    }

    /// Writes (or overwrites) one file.
    pub fn write(&self, path: &str, contents: &str) {
        let file = self.dir.join(path);
        std::fs::create_dir_all(file.parent().expect("a file has a parent")).expect("create the test tree");
        std::fs::write(&file, contents).expect("write the test tree");
    }

    /// The tree's root.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
