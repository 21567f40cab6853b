//! Where a data set lies when no folder is named: `$WT_DATA/<name>`, then the cache folder
//! (where the `download` feature puts what it fetches).
//!
//! `WT_DATA` is a folder holding data sets under their usual names (`mnist/`,
//! `fashion-mnist/`, `cifar-10-batches-bin/`, ...); each data set's names are in the
//! [`catalog`](crate::catalog) ([`KnownDataset::usual_names`](crate::KnownDataset::usual_names),
//! e.g. CIFAR-10: `cifar-10-batches-bin`, `cifar-10-binary.tar.gz`, ..., `cifar-10`).

use std::path::{Path, PathBuf};

/// The environment variable naming the folder of data sets.
pub const DATA_VAR: &str = "WT_DATA";

/// The cache folder: `$WT_DATA_CACHE` when set, else `$XDG_CACHE_HOME/wt-data`, else
/// `$HOME/.cache/wt-data`, else `wt-data-cache` in the current folder.
pub fn cache_dir() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("WT_DATA_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("wt-data");
    }
    if let Some(home) = var("HOME") {
        return PathBuf::from(home).join(".cache/wt-data");
    }
    PathBuf::from("wt-data-cache")
}

/// The folders searched, in order: `$WT_DATA` (when set), then [`cache_dir`].
pub fn search_roots() -> Vec<PathBuf> {
    let data = std::env::var_os(DATA_VAR).filter(|v| !v.is_empty());
    data.map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(cache_dir()))
        .collect()
}

/// The first `<root>/<name>` that exists, trying every name in one root before the next
/// root.
pub fn find_in(roots: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    roots
        .iter()
        .flat_map(|root| names.iter().map(move |name| root.join(name)))
        .find(|path| path.exists())
}

/// [`find_in`] the [`search_roots`].
pub fn find(names: &[&str]) -> Option<PathBuf> {
    find_in(&search_roots(), names)
}

/// `paths` as one line for error messages: `a, b`.
pub fn list(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| Path::display(p).to_string()).collect();
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_name_of_the_first_root_holding_one() {
        let base = std::env::temp_dir().join(format!("wt-locate-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(a.join("cifar-10")).unwrap();
        std::fs::create_dir_all(b.join("cifar-10-batches-bin")).unwrap();
        let roots = [a.clone(), b.clone()];
        let names = ["cifar-10-batches-bin", "cifar-10"];
        // Root order wins over name order.
        assert_eq!(find_in(&roots, &names), Some(a.join("cifar-10")));
        assert_eq!(
            find_in(&roots[1..], &names),
            Some(b.join("cifar-10-batches-bin"))
        );
        assert_eq!(find_in(&roots, &["mnist"]), None);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
