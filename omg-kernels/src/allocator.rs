//! Process-wide allocator tuning for large tensors.

/// Makes the C allocator keep and reuse freed memory instead of returning every large
/// block to the kernel (glibc on Linux; elsewhere this does nothing).
///
/// By default glibc serves each allocation over 32 MiB with a fresh `mmap` and unmaps it
/// on free, so every large activation (a 256×256×768 f32 map is 192 MiB) is page-faulted
/// and zeroed by the kernel again on every layer. With this call such blocks come from
/// the heap and are reused: on a 2-core machine it took 1.7 s off the 1024² encoder
/// (`docs/performance.md`), and lowered the peak resident memory.
///
/// Call it once, early in `main`, before large tensors exist. It changes the behaviour of
/// the whole process (for every library), which is why it is not done implicitly.
/// Returns whether the setting was applied.
pub fn reuse_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both options exist in glibc.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
