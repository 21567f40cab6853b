//! The CIFAR-10/100 record parser and the `.tar.gz` archive reader on arbitrary bytes. The first
//! byte picks CIFAR-10 or CIFAR-100, the split, and whether the rest is a batch file or an
//! archive.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wt_data::{CifarDataset, CifarKind, Split};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let kind = if mode & 1 == 0 {
        CifarKind::Cifar10
    } else {
        CifarKind::Cifar100
    };
    let split = if mode & 2 == 0 {
        Split::Train
    } else {
        Split::Test
    };
    let path = Path::new("fuzz.bin");
    let result = if mode & 4 == 0 {
        CifarDataset::from_batch_bytes(path, rest, kind)
    } else {
        CifarDataset::from_archive_reader(path, rest, kind, split)
    };
    if let Ok(ds) = result {
        let classes = if kind == CifarKind::Cifar10 { 10 } else { 100 };
        assert!(ds.labels().iter().all(|&l| (l as usize) < classes));
        assert_eq!(ds.class_counts().iter().sum::<usize>(), ds.labels().len());
    }
});
