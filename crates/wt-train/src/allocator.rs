//! The process allocator on CPU backends: keep freed memory for reuse.
//!
//! A training step on a CPU backend allocates and frees the same large temporaries every step
//! (activations, im2col buffers, gradients: megabytes each). With glibc's defaults, blocks
//! above a dynamic threshold are `mmap`ed and unmapped again when freed, and the heap's free
//! top is given back to the kernel; every step then pays the kernel for zeroing fresh pages
//! (page faults). [`keep_freed_memory`] sets a fixed 32 MiB `mmap` threshold and a 2 GiB trim
//! threshold, so that freed blocks stay in the process and are reused. Measured on Flex
//! (docs/benchmarks.md, "The allocator"): Burn's dense-layer training step 1.7–1.9× faster, a
//! 64-channel 3×3 convolution's 1.4–1.6×, whole ResNet-20 steps 1.07–1.23×. The cost is that
//! the process keeps its peak heap until it exits, which is what a training process wants.
//!
//! wt's examples call it first thing; a program that embeds wt calls it at the start of
//! `main`. It does nothing outside Linux with glibc, where the user has tuned glibc's
//! allocator already (any `MALLOC_*_` variable or `GLIBC_TUNABLES` set), or with
//! `WT_ALLOCATOR=system` (glibc's defaults, e.g. to measure against them).

use std::ffi::OsString;

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocatorTuning {
    /// The thresholds were set.
    Applied,
    /// Left alone because of this environment variable (the user tunes the allocator, or asks
    /// for the system's defaults with `WT_ALLOCATOR=system`).
    LeftToUser(String),
    /// Left alone: not Linux with glibc, or glibc refused a setting.
    Unsupported,
}

/// The `mmap` threshold set: blocks up to this size come from the heap (glibc's ceiling for it).
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// The trim threshold set: the heap gives memory back only past this much free at its top.
pub const TRIM_THRESHOLD: i32 = i32::MAX;

/// Sets glibc's allocator to keep freed memory for reuse (see the module docs). Call it once at
/// the start of `main`, before the training loop; calling it again is harmless.
pub fn keep_freed_memory() -> AllocatorTuning {
    if let Some(var) = user_tuning(std::env::vars_os()) {
        return AllocatorTuning::LeftToUser(var);
    }
    set_thresholds()
}

/// The first environment variable by which the user takes charge of glibc's allocator, if any:
/// `WT_ALLOCATOR=system`, `GLIBC_TUNABLES` or a `MALLOC_*_` variable.
fn user_tuning(vars: impl Iterator<Item = (OsString, OsString)>) -> Option<String> {
    vars.map(|(k, v)| (k.to_string_lossy().into_owned(), v))
        .find(|(k, v)| {
            (k == "WT_ALLOCATOR" && v == "system")
                || k == "GLIBC_TUNABLES"
                || (k.starts_with("MALLOC_") && k.ends_with('_') && k.len() > 8)
        })
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> AllocatorTuning {
    // SAFETY: mallopt only changes glibc's malloc parameters (taking malloc's own lock); it
    // reads no memory of ours.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    };
    if ok {
        AllocatorTuning::Applied
    } else {
        AllocatorTuning::Unsupported
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> AllocatorTuning {
    AllocatorTuning::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (OsString, OsString)> {
        v.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn a_user_tuned_allocator_is_left_alone() {
        assert_eq!(user_tuning(vars(&[("PATH", "/bin"), ("HOME", "/")])), None);
        assert_eq!(
            user_tuning(vars(&[("PATH", "/bin"), ("MALLOC_TRIM_THRESHOLD_", "0")])).as_deref(),
            Some("MALLOC_TRIM_THRESHOLD_=0")
        );
        assert_eq!(
            user_tuning(vars(&[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")])).as_deref(),
            Some("GLIBC_TUNABLES=glibc.malloc.trim_threshold=0")
        );
        assert_eq!(
            user_tuning(vars(&[("WT_ALLOCATOR", "system")])).as_deref(),
            Some("WT_ALLOCATOR=system")
        );
        // Not glibc's (no trailing underscore, nothing after the prefix), or not `system`.
        assert_eq!(
            user_tuning(vars(&[
                ("MALLOC_CONF", "x"),
                ("MALLOC_", "1"),
                ("WT_ALLOCATOR", "keep")
            ])),
            None
        );
    }

    /// A 30 MiB block, which glibc's defaults `mmap` (and unmap when freed), comes from the heap.
    /// `malloc_usable_size` tells them apart: a heap chunk has 8 bytes beyond the request, an
    /// `mmap`ed one the rest of its last page (4,080 here).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_large_block_comes_from_the_heap() {
        if user_tuning(std::env::vars_os()).is_some() {
            return; // the test's environment tunes the allocator itself
        }
        assert_eq!(keep_freed_memory(), AllocatorTuning::Applied);
        const LEN: usize = 30 << 20;
        // SAFETY: a plain malloc / malloc_usable_size / free of one block.
        let extra = unsafe {
            let p = libc::malloc(LEN);
            assert!(!p.is_null(), "malloc of 30 MiB");
            let usable = libc::malloc_usable_size(p);
            libc::free(p);
            usable - LEN
        };
        assert!(
            extra < 64,
            "30 MiB block has {extra} usable bytes past the request: mmapped, not from the heap"
        );
    }
}
