//! The class index: class ids (WordNet ids for ImageNet) to indices and names, from
//! `imagenet1k_classes.tsv` or sorted folder names.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{DataError, Result};

/// Class ids (WordNet ids for ImageNet) to indices and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassIndex {
    wnids: Vec<String>,
    names: Vec<String>,
    by_wnid: HashMap<String, usize>,
}

impl ClassIndex {
    /// Reads a tab-separated index: a header line, then `index wnid name [lemmas]` rows whose
    /// indices are 0, 1, 2, ... in order.
    pub fn from_tsv(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let (mut wnids, mut names) = (Vec::new(), Vec::new());
        for (line_no, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let at = || format!("line {}", line_no + 1);
            if cols.len() < 3 {
                return Err(DataError::at(
                    path,
                    at(),
                    format!("{} columns, expected index, wnid, name", cols.len()),
                ));
            }
            let index: usize = cols[0].trim().parse().map_err(|_| {
                DataError::at(path, at(), format!("index `{}` is not a number", cols[0]))
            })?;
            if index != wnids.len() {
                return Err(DataError::at(
                    path,
                    at(),
                    format!(
                        "index {index}, expected {} (rows in index order)",
                        wnids.len()
                    ),
                ));
            }
            wnids.push(cols[1].trim().to_string());
            names.push(cols[2].trim().to_string());
        }
        if wnids.is_empty() {
            return Err(DataError::file(
                path,
                "no classes (expected a header and rows)",
            ));
        }
        Self::new(wnids, names).map_err(|m| DataError::file(path, m))
    }

    /// Classes `0..n` with the given ids and names.
    pub(super) fn new(wnids: Vec<String>, names: Vec<String>) -> std::result::Result<Self, String> {
        let mut by_wnid = HashMap::new();
        for (i, w) in wnids.iter().enumerate() {
            if by_wnid.insert(w.clone(), i).is_some() {
                return Err(format!("class id {w} appears twice"));
            }
        }
        Ok(Self {
            wnids,
            names,
            by_wnid,
        })
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.wnids.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.wnids.is_empty()
    }

    /// Index of a class id.
    pub fn index_of(&self, wnid: &str) -> Option<usize> {
        self.by_wnid.get(wnid).copied()
    }

    /// Name of class `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// Id of class `index`.
    pub fn wnid(&self, index: usize) -> &str {
        &self.wnids[index]
    }
}
