//! Memory given back and kept small. glibc's malloc is tuned for throughput, not for a
//! daemon that idles: it keeps up to eight arenas per core, each holding its own free pages,
//! and keeps freed pages for reuse. At start the agent limits it to two arenas; after a cycle
//! that applied, reverted or repaired something (and once after start) the free heap pages go
//! back to the kernel (`malloc_trim`), so an idle agent's RSS is what it holds, not the
//! high-water mark of its last converge. A no-op cycle does not trim: it frees and reuses the
//! same pages each time, and giving them back would only fault them in again. Nothing else
//! lives here.

/// At most this many malloc arenas: the agent's threads are few and mostly asleep.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: i32 = 2;

/// Limit malloc's arenas (call once, before other threads start; glibc only).
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` takes no pointer; it sets a malloc parameter under glibc's lock.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, ARENAS);
    }
}

/// Return the heap's free pages to the kernel (glibc; elsewhere this does nothing).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer from us; it walks glibc's own arenas under
    // their locks and may be called from any thread at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
