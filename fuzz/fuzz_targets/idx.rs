//! The IDX parser (MNIST, Fashion-MNIST) on arbitrary bytes: gzip detection and inflation,
//! the header and size checks, and the MNIST image/label checks on the input split in two.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wt_data::MnistDataset;
use wt_data::idx::{gunzip_if_gzip, parse_idx};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    if let Ok(bytes) = gunzip_if_gzip(path, data.to_vec())
        && let Ok(array) = parse_idx(path, &bytes)
    {
        assert_eq!(array.data.len(), array.dims.iter().product::<usize>());
    }
    // First two bytes: where to split the rest into an images file and a labels file.
    if let [a, b, rest @ ..] = data {
        let at = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
        let (images, labels) = rest.split_at(at);
        if let Ok(ds) = MnistDataset::from_idx_bytes(path, images, path, labels) {
            assert!(ds.labels().iter().all(|&l| l <= 9));
        }
    }
});
