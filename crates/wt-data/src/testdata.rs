//! Test support: the shared real data sets and temporary folders.

use std::path::{Path, PathBuf};

/// `../shared/data/<name>` from the workspace root. The crate folder is read at run time
/// (cargo sets `CARGO_MANIFEST_DIR` for test runs): a test binary reused from a build in
/// another checkout that shares the target folder must not look beside that checkout.
pub fn shared_data(name: &str) -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = crate_dir.join("../../../shared/data");
    let dir = root.join(name);
    assert!(
        dir.is_dir(),
        "real data set {} not found (expected ../shared/data beside the checkout)",
        dir.display()
    );
    dir
}

/// A temporary folder removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wt-data-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
