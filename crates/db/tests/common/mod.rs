//! A fresh engine root per test, removed when the test ends.

use std::path::{Path, PathBuf};

pub struct TempRoot(PathBuf);

impl TempRoot {
    /// A root under the temp dir that does not exist yet (so hull.db is created by the test).
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hull-db-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempRoot(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
