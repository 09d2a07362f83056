//! glibc `malloc` settings for the request path's multi-megabyte buffers.
//!
//! Every prediction allocates a few buffers of one to tens of megabytes (the request body, the decoded samples, the
//! `f32` image, the model input) and frees them milliseconds later. With glibc's defaults that memory goes back to
//! the kernel — buffers above the (dynamic) mmap threshold are unmapped on free, and heap tops above the trim
//! threshold are trimmed — so the next request faults every page in again. Measured on the 2-core benchmark VM,
//! 16 closed-loop clients posting a 1024² DICOM: ~500 page faults per image and 1 ms of CPU, 4 % of the saturated
//! throughput (18.2 → 18.9 img/s once tuned; `perf stat -e page-faults`: 134 k → 10 k in 15 s).
//!
//! [`tune`] sets the mmap threshold to 32 MiB (glibc's own ceiling for its dynamic threshold) and the trim threshold
//! to 64 MiB, so these buffers are reused from the heap, and caps the number of malloc arenas at 2 × CPUs (glibc's
//! default is 8 × CPUs), since every arena keeps its own free memory. The memory kept is bounded by what the bounded
//! decode and inference concurrency has in use at its peak; free space above 64 MiB at the top of a heap is still
//! returned, and a buffer of 32 MiB or more (an image over ~8 megapixels as `f32`) still gets its own mapping.
//! Measured RSS after the same 30-s load: 833 MB untuned, 1,048 MB with the thresholds alone, 899 MB with the arena
//! cap as well (page faults in 15 s: 119 k, 15 k, 12 k).
//!
//! Written by hand (three `mallopt` calls) rather than by swapping the global allocator: jemalloc and mimalloc, tried
//! through `LD_PRELOAD` on the same load, cost 8.0–8.4 and 5.3–5.6 ms of CPU per image instead of glibc's 3.3–3.4 ms
//! (untuned) and 2.3–2.6 ms (tuned).

/// glibc's mmap threshold set by [`tune`]: allocations below it come from the heap.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// glibc's trim threshold set by [`tune`]: free memory at a heap's top beyond it is returned to the kernel.
pub const TRIM_THRESHOLD: usize = 64 << 20;

/// Most malloc arenas per CPU set by [`tune`].
pub const ARENAS_PER_CPU: usize = 2;

/// What [`tune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// Both thresholds were set.
    Applied,
    /// The environment already configures glibc's malloc (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`,
    /// `MALLOC_TOP_PAD_`, `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` with `glibc.malloc.*`): the operator's choice is left alone.
    LeftToEnvironment,
    /// Not glibc (or glibc refused a value): nothing changed.
    Unavailable,
}

/// Applies the thresholds and the arena cap above unless the environment sets malloc options itself; call once at startup.
pub fn tune() -> Tuning {
    let env_sets_malloc = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
    if env_sets_malloc {
        return Tuning::LeftToEnvironment;
    }
    set_thresholds()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> Tuning {
    let to_c = |v: usize| libc::c_int::try_from(v).expect("threshold fits a C int");
    // SAFETY: `mallopt` only updates glibc's malloc parameters (under its own lock); any value is memory safe, and a
    // value glibc does not accept is refused with 0.
    let arenas = ARENAS_PER_CPU * std::thread::available_parallelism().map_or(1, usize::from);
    let applied = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, to_c(MMAP_THRESHOLD)) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, to_c(TRIM_THRESHOLD)) == 1
            && libc::mallopt(libc::M_ARENA_MAX, to_c(arenas)) == 1
    };
    if applied { Tuning::Applied } else { Tuning::Unavailable }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> Tuning {
    Tuning::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_the_thresholds() {
        // The test process's environment is the CI's; only check glibc's answer when nothing overrides it.
        if tune() != Tuning::LeftToEnvironment {
            assert_eq!(set_thresholds(), Tuning::Applied);
        }
        // A large buffer freed and allocated again still works (the settings change where memory comes from only).
        let a = vec![1u8; 8 << 20];
        drop(a);
        let b = vec![2u8; 8 << 20];
        assert!(b.iter().all(|&x| x == 2));
    }
}
