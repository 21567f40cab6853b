//! Test support: the shared real data sets and temporary folders.

use std::path::{Path, PathBuf};

use crate::cifar::{CIFAR_PIXELS, CifarKind};
use crate::split::Split;

/// `$WT_DATA/<name>`: a real data set for the tests (`.ci/run` sets `WT_DATA` to the folder
/// of data sets; `mnist/`, `fashion-mnist/`, `cifar-10-approx/`, ... as `../shared/data`
/// holds them).
pub fn shared_data(name: &str) -> PathBuf {
    let var = crate::locate::DATA_VAR;
    let root = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("the tests read real data: set {var} to the folder of data sets")
        });
    let dir = PathBuf::from(root).join(name);
    assert!(
        dir.is_dir(),
        "real data set {} not found (under {var})",
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

/// Writes a tiny CIFAR-10 archive with `per_file` records in each official member.
pub fn write_cifar10_archive(path: &Path, per_file: usize) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut test_labels = Vec::new();
    for (k, name) in CifarKind::Cifar10
        .files(Split::Train)
        .into_iter()
        .chain(CifarKind::Cifar10.files(Split::Test))
        .enumerate()
    {
        let mut bytes = Vec::new();
        for i in 0..per_file {
            let label = ((k * 3 + i) % 10) as u8;
            if name == "test_batch.bin" {
                test_labels.push(label);
            }
            bytes.push(label);
            bytes.extend((0..CIFAR_PIXELS).map(|p| ((p + i + k) % 251) as u8));
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{name}"),
            &bytes[..],
        )
        .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    test_labels
}

/// A fuzzer-style mutation of `seed` (1 to 4 edits: bit flips, interesting bytes and 32-bit
/// big-endian values, truncation, insertion, duplicated or deleted chunks), deterministic in
/// `rng`. Used by the no-panic tests that run the parsers over many mutated inputs on stable.
pub fn mutate(rng: &mut crate::ItemRng, seed: &[u8]) -> Vec<u8> {
    const BYTES: [u8; 8] = [0, 1, 2, 3, 8, 0x7f, 0x80, 0xff];
    const WORDS: [u32; 8] = [0, 1, 2, 28, 3072, 0x7fff_ffff, 0x8000_0000, u32::MAX];
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len() as u64;
        let at = |rng: &mut crate::ItemRng| rng.below(len.max(1)) as usize;
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at(rng);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = at(rng);
                v[i] = BYTES[rng.below(8) as usize];
            }
            2 if v.len() >= 4 => {
                let i = rng.below(len - 3) as usize;
                v[i..i + 4].copy_from_slice(&WORDS[rng.below(8) as usize].to_be_bytes());
            }
            3 => v.truncate(rng.below(len + 1) as usize),
            4 => {
                let i = rng.below(len + 1) as usize;
                let n = 1 + rng.below(16) as usize;
                let extra: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(i..i, extra);
            }
            5 if !v.is_empty() => {
                let i = at(rng);
                let n = (1 + rng.below(64) as usize).min(v.len() - i);
                let chunk = v[i..i + n].to_vec();
                let j = rng.below(v.len() as u64 + 1) as usize;
                v.splice(j..j, chunk);
            }
            6 if !v.is_empty() => {
                let i = at(rng);
                let n = (1 + rng.below(64) as usize).min(v.len() - i);
                v.drain(i..i + n);
            }
            _ => {}
        }
    }
    v
}
