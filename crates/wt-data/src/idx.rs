//! The IDX format of MNIST and Fashion-MNIST (LeCun et al.): a big-endian header
//! `0x00 0x00 <type> <rank>`, `rank` big-endian `u32` sizes, then the data. Files may be
//! gzipped (the official `.gz` downloads) or raw; gzip is detected by its magic bytes.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

/// An IDX array of unsigned bytes (type `0x08`, the only type MNIST uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of each dimension, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads a whole file, un-gzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    gunzip_if_gzip(path, raw)
}

/// Un-gzips the bytes of a file read from `path` (named in errors) when they start with the
/// gzip magic bytes; returns them unchanged otherwise.
pub fn gunzip_if_gzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| DataError::file(path, format!("gzip stream is corrupt or truncated: {e}")))?;
    Ok(out)
}

/// Parses IDX bytes read from `path` (named in errors).
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(DataError::at(
            path,
            "offset 0",
            format!(
                "{} bytes, too short for an IDX header (4 bytes)",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::at(
            path,
            "offset 0",
            format!(
                "magic number {:02x}{:02x}{:02x}{:02x} is not IDX (expected 0000 then type and rank)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::at(
            path,
            "offset 2",
            format!("IDX type {:#04x}, expected 0x08 (unsigned bytes)", bytes[2]),
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(DataError::at(
            path,
            "offset 3",
            "IDX rank 0, expected at least 1",
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::at(
            path,
            format!("offset {}", bytes.len()),
            format!("file ends inside the header ({header} bytes for rank {rank})"),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| DataError::at(path, "offset 4", format!("sizes {dims:?} overflow")))?;
    if bytes.len() != expected {
        let what = if bytes.len() < expected {
            "truncated"
        } else {
            "has trailing bytes"
        };
        return Err(DataError::at(
            path,
            format!("offset {}", bytes.len().min(expected)),
            format!(
                "{what}: {} bytes, expected {expected} for sizes {dims:?}",
                bytes.len()
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dims: &[u32]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn parses_a_well_formed_array() {
        let mut bytes = header(&[2, 3]);
        bytes.extend([1, 2, 3, 4, 5, 6]);
        let a = parse_idx(Path::new("x.idx"), &bytes).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn every_malformed_input_is_a_named_error() {
        let p = Path::new("bad.idx");
        let mut ok = header(&[2, 2]);
        ok.extend([1, 2, 3, 4]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0, 0], "too short"),
            (vec![8, 0, 8, 1, 0, 0, 0, 1, 7], "magic number"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "IDX type"),
            (vec![0, 0, 8, 0], "rank 0"),
            (vec![0, 0, 8, 3, 0, 0, 0, 1], "inside the header"),
            (ok[..ok.len() - 1].to_vec(), "truncated"),
            ([ok.clone(), vec![9]].concat(), "trailing bytes"),
            (header(&[u32::MAX, u32::MAX, u32::MAX]), "overflow"),
        ];
        for (bytes, expected) in cases {
            let err = parse_idx(p, &bytes).unwrap_err().to_string();
            assert!(err.starts_with("bad.idx"), "{err}");
            assert!(err.contains(expected), "expected `{expected}` in `{err}`");
        }
    }

    #[test]
    fn every_prefix_of_a_valid_file_errors_without_panicking() {
        let mut bytes = header(&[3, 2, 2]);
        bytes.extend(0..12u8);
        for len in 0..bytes.len() {
            assert!(
                parse_idx(Path::new("p.idx"), &bytes[..len]).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn mutated_idx_and_mnist_inputs_never_panic() {
        use crate::testdata::mutate;
        // Seeds: a small IDX array, its gzip, and an MNIST-shaped pair of files.
        let mut small = header(&[3, 2, 2]);
        small.extend(0..12u8);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &small).unwrap();
        let small_gz = gz.finish().unwrap();
        let mut images = header(&[2, 28, 28]);
        images.extend((0..2 * 784).map(|i| (i % 256) as u8));
        let mut labels = header(&[2]);
        labels.extend([7, 3]);
        let p = Path::new("fuzz.idx");
        let mut rng = crate::ItemRng::new(0x1D4, 0, 0);
        let (mut ok, mut errors) = (0, 0);
        for _ in 0..20_000 {
            let seed = match rng.below(3) {
                0 => &small,
                1 => &small_gz,
                _ => &images,
            };
            let input = mutate(&mut rng, seed);
            match gunzip_if_gzip(p, input).and_then(|b| parse_idx(p, &b).map(|a| (a, b))) {
                Ok((a, bytes)) => {
                    ok += 1;
                    assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
                    assert_eq!(bytes.len(), 4 + 4 * a.dims.len() + a.data.len());
                }
                Err(e) => {
                    errors += 1;
                    assert!(e.to_string().starts_with("fuzz.idx"), "{e}");
                }
            }
            let (im, lb) = match rng.below(2) {
                0 => (mutate(&mut rng, &images), labels.clone()),
                _ => (images.clone(), mutate(&mut rng, &labels)),
            };
            if let Ok(ds) = crate::MnistDataset::from_idx_bytes(p, &im, p, &lb) {
                assert!(ds.labels().iter().all(|&l| l <= 9));
                assert_eq!(ds.class_counts().iter().sum::<usize>(), ds.labels().len());
            }
        }
        // Both outcomes were exercised (a mutation can leave a file valid, e.g. a changed
        // pixel).
        assert!(ok > 100 && errors > 10_000, "ok {ok}, errors {errors}");
    }
}
