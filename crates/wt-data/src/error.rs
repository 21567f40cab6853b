//! Errors that say which file, where in it, and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// A data file that could not be read, or does not hold what its format promises.
#[derive(Debug)]
pub struct DataError {
    /// The file (or archive member, as `archive.tar.gz:member`).
    pub path: PathBuf,
    /// Where in the file: a byte offset, a record, or nothing for whole-file problems.
    pub location: Option<String>,
    /// What was expected and what was found.
    pub message: String,
}

impl DataError {
    /// An error about `path` as a whole.
    pub fn file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            location: None,
            message: message.into(),
        }
    }

    /// An error at a place inside `path` (e.g. `offset 8`, `record 12 (offset 36876)`).
    pub fn at(
        path: impl AsRef<Path>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            location: Some(location.into()),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Self::file(path, err.to_string())
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{}: {at}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for DataError {}

/// Result of the readers.
pub type Result<T> = std::result::Result<T, DataError>;

/// An item index past the end of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOutOfRange {
    /// The index asked for.
    pub index: usize,
    /// The number of items.
    pub len: usize,
}

impl fmt::Display for IndexOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "item {} requested from a data set of {} items",
            self.index, self.len
        )
    }
}

impl std::error::Error for IndexOutOfRange {}

/// `Ok(())` when `index < len`, else Burn's dataset error wrapping [`IndexOutOfRange`].
pub(crate) fn check_index(
    index: usize,
    len: usize,
) -> std::result::Result<(), burn::data::dataset::DatasetError> {
    if index < len {
        Ok(())
    } else {
        Err(burn::data::dataset::DatasetError::new(IndexOutOfRange {
            index,
            len,
        }))
    }
}
