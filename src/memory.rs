//! Handing freed memory back to the OS after a burst of allocation.
//!
//! Loading a catalog (a file, or a watch's full list) allocates and frees far more than it
//! keeps: parsed documents, the list itself, the versions it replaces. mimalloc (the binary's
//! allocator, `src/main.rs`) keeps freed pages for reuse and purges them later, page by page; a
//! forced collection right after the burst returns them at once, so the resident size of an idle
//! webhook is what it holds rather than what loading it peaked at (issue 12: about 20 MB less
//! with the 41,000-object catalog, bench/results/memory.md).

/// Return the calling thread's free pages to the OS. Cheap next to what it follows (a catalog
/// load); never call it per review. Harmless when mimalloc is not the global allocator (tests):
/// it then has nothing to collect.
pub fn release_after_burst() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
