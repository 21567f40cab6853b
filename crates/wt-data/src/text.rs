//! [`CharCorpus`]: a UTF-8 text file as a character-level language-modelling corpus (e.g.
//! Karpathy's Tiny Shakespeare, `tinyshakespeare/input.txt`), split by position into a
//! training head and a validation tail, with seeded random windows for training and every
//! window in order for evaluation.

use std::path::{Path, PathBuf};

use crate::{DataError, ItemRng};

/// A text read as characters: its vocabulary (the distinct characters, sorted by code point)
/// and the training and validation parts as indices into it.
#[derive(Debug, Clone)]
pub struct CharCorpus {
    /// The file it was read from.
    pub path: PathBuf,
    /// The distinct characters, sorted; a character's index is its token.
    pub vocab: Vec<char>,
    /// The first `1 − validation` of the characters, as tokens.
    pub train: Vec<u32>,
    /// The last `validation` of the characters, as tokens.
    pub valid: Vec<u32>,
}

impl CharCorpus {
    /// Reads `path` (UTF-8) and splits it: the first `1 − validation` of its characters train,
    /// the rest validate (0.1: the usual 90 % / 10 % split of Tiny Shakespeare).
    ///
    /// # Errors
    /// The file cannot be read, is not UTF-8 (the byte offset of the first bad byte is named),
    /// or is too short to leave at least two characters on each side.
    pub fn read(path: impl AsRef<Path>, validation: f64) -> Result<Self, DataError> {
        let path = path.as_ref();
        if !(0.0..1.0).contains(&validation) {
            return Err(DataError::file(
                path,
                format!("the validation fraction must be in [0, 1), not {validation}"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            DataError::at(
                path,
                format!("offset {}", e.utf8_error().valid_up_to()),
                "not UTF-8 text",
            )
        })?;
        let chars: Vec<char> = text.chars().collect();
        let mut vocab = chars.clone();
        vocab.sort_unstable();
        vocab.dedup();
        let n_train = ((chars.len() as f64) * (1.0 - validation)).round() as usize;
        if n_train < 2 || (validation > 0.0 && chars.len() - n_train < 2) {
            return Err(DataError::file(
                path,
                format!(
                    "{} characters are too few for a {:.0} % / {:.0} % split",
                    chars.len(),
                    100.0 * (1.0 - validation),
                    100.0 * validation
                ),
            ));
        }
        let token = |c: &char| vocab.binary_search(c).expect("in the vocabulary") as u32;
        let tokens: Vec<u32> = chars.iter().map(token).collect();
        Ok(Self {
            path: path.to_path_buf(),
            train: tokens[..n_train].to_vec(),
            valid: tokens[n_train..].to_vec(),
            vocab,
        })
    }

    /// The same corpus with the last `fraction` of the training part as its validation part and
    /// the rest as its training part: a split for choosing a recipe that never reads the real
    /// validation text.
    ///
    /// # Errors
    /// `fraction` outside (0, 1), or a part shorter than two characters.
    pub fn holdout(&self, fraction: f64) -> Result<Self, DataError> {
        let n = self.train.len();
        let keep = ((n as f64) * (1.0 - fraction)).round() as usize;
        if !(fraction > 0.0 && fraction < 1.0) || keep < 2 || n - keep < 2 {
            return Err(DataError::file(
                &self.path,
                format!(
                    "cannot hold out {fraction} of {n} training characters (a fraction in \
                     (0, 1) leaving two characters on each side)"
                ),
            ));
        }
        Ok(Self {
            path: self.path.clone(),
            vocab: self.vocab.clone(),
            train: self.train[..keep].to_vec(),
            valid: self.train[keep..].to_vec(),
        })
    }

    /// The token of `c`, if it is in the vocabulary.
    pub fn token(&self, c: char) -> Option<u32> {
        self.vocab.binary_search(&c).ok().map(|i| i as u32)
    }

    /// The text of `tokens`.
    pub fn decode(&self, tokens: &[u32]) -> String {
        tokens.iter().map(|&t| self.vocab[t as usize]).collect()
    }
}

/// A batch of windows: inputs `[batch·context]` and the next characters, the inputs shifted by
/// one (row-major `[batch, context]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CharWindows {
    /// Windows.
    pub batch: usize,
    /// Characters a window.
    pub context: usize,
    /// `tokens[i..i + context]` of each window.
    pub inputs: Vec<i64>,
    /// `tokens[i + 1..i + 1 + context]` of each window.
    pub targets: Vec<i64>,
}

impl CharWindows {
    /// The windows of `tokens` starting at `starts`, each `context` long (each start at most
    /// `tokens.len() − context − 1`).
    pub fn at(tokens: &[u32], starts: &[usize], context: usize) -> Self {
        let mut inputs = Vec::with_capacity(starts.len() * context);
        let mut targets = Vec::with_capacity(starts.len() * context);
        for &s in starts {
            inputs.extend(tokens[s..s + context].iter().map(|&t| t as i64));
            targets.extend(tokens[s + 1..s + 1 + context].iter().map(|&t| t as i64));
        }
        Self {
            batch: starts.len(),
            context,
            inputs,
            targets,
        }
    }

    /// `batch` windows at starts drawn uniformly from `tokens` by SplitMix64 from `seed` (the
    /// same seed, the same windows, on any machine).
    ///
    /// # Panics
    /// If `tokens` is not longer than `context`.
    pub fn random(tokens: &[u32], batch: usize, context: usize, seed: u64) -> Self {
        assert!(
            tokens.len() > context,
            "CharWindows: {} tokens, a window needs {}",
            tokens.len(),
            context + 1
        );
        let span = (tokens.len() - context) as u64;
        let mut rng = ItemRng::from_state(seed);
        let starts: Vec<usize> = (0..batch)
            .map(|_| (rng.next_u64() % span) as usize)
            .collect();
        Self::at(tokens, &starts, context)
    }

    /// The non-overlapping windows that cover `tokens` (the last partial one left out), in
    /// order, `batch` at a time: what a validation pass reads.
    pub fn sequential(tokens: &[u32], batch: usize, context: usize) -> Vec<Self> {
        let count = tokens.len().saturating_sub(1) / context;
        let starts: Vec<usize> = (0..count).map(|i| i * context).collect();
        starts
            .chunks(batch.max(1))
            .map(|chunk| Self::at(tokens, chunk, context))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::TempDir;

    #[test]
    fn reads_splits_and_windows_a_text() {
        let dir = TempDir::new("char-corpus");
        let path = dir.path().join("t.txt");
        std::fs::write(&path, "abcabcabcé").unwrap();
        let c = CharCorpus::read(&path, 0.2).unwrap();
        assert_eq!(c.vocab, vec!['a', 'b', 'c', 'é']);
        assert_eq!(c.train, vec![0, 1, 2, 0, 1, 2, 0, 1]);
        assert_eq!(c.valid, vec![2, 3]);
        assert_eq!(c.decode(&c.train[..3]), "abc");
        assert_eq!(c.token('é'), Some(3));
        let w = CharWindows::at(&c.train, &[0, 4], 3);
        assert_eq!(w.inputs, vec![0, 1, 2, 1, 2, 0]);
        assert_eq!(w.targets, vec![1, 2, 0, 2, 0, 1]);
        let h = c.holdout(0.25).unwrap();
        assert_eq!((h.train, h.valid), (vec![0, 1, 2, 0, 1, 2], vec![0, 1]));
        assert!(c.holdout(0.0).is_err() && c.holdout(0.9).is_err());
        let seq = CharWindows::sequential(&c.train, 2, 3);
        assert_eq!(seq.len(), 1);
        assert_eq!(seq[0].inputs, vec![0, 1, 2, 0, 1, 2]);
        let r = CharWindows::random(&c.train, 4, 3, 7);
        assert_eq!(r, CharWindows::random(&c.train, 4, 3, 7));
        assert!(r.inputs.len() == 12 && r.targets.len() == 12);
    }

    #[test]
    fn bad_text_names_the_file_and_offset() {
        let dir = TempDir::new("char-corpus-bad");
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"abc\xffdef").unwrap();
        let err = CharCorpus::read(&path, 0.1).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("offset 3"), "{err}");
        std::fs::write(&path, "ab").unwrap();
        let err = CharCorpus::read(&path, 0.1).unwrap_err().to_string();
        assert!(err.contains("too few"), "{err}");
        let err = CharCorpus::read(dir.path().join("none.txt"), 0.1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.txt"), "{err}");
    }

    /// Tiny Shakespeare as the issue splits it: 1,115,394 characters, 65 distinct, the first
    /// 90 % training.
    #[test]
    fn tiny_shakespeare_splits_ninety_ten() {
        let dir = crate::testdata::shared_data("tinyshakespeare");
        let c = CharCorpus::read(dir.join("input.txt"), 0.1).unwrap();
        assert_eq!(c.vocab.len(), 65);
        assert_eq!(c.train.len() + c.valid.len(), 1_115_394);
        assert_eq!(c.train.len(), 1_003_855);
        assert_eq!(c.decode(&c.train[..14]), "First Citizen:");
    }
}
