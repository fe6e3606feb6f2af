//! Memory given back: after a cycle that applied, reverted or repaired something (and once
//! after start), the free heap pages glibc keeps for reuse go back to the kernel
//! (`malloc_trim`), so an idle agent's RSS is what it holds, not the high-water mark of its
//! last converge. A no-op cycle does not trim: it frees and reuses the same pages each time,
//! and giving them back would only fault them in again. Nothing else lives here.

/// Return the heap's free pages to the kernel (glibc; elsewhere this does nothing).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer from us; it walks glibc's own arenas under
    // their locks and may be called from any thread at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
