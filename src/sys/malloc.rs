//! Tuning of the C allocator.

#![allow(unsafe_code)]

/// Caps glibc's malloc at two arenas. By default it grows one arena per thread that allocates, up to eight per
/// core, and each keeps its own free memory: with a worker pool and one tiny_http thread per connection the
/// resident size then creeps up for as long as new threads get work. Two arenas keep it flat, at little cost
/// for a server whose requests allocate little.
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tuning parameter of the allocator; it is called once at start, before the
    // server's threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Serves every allocation of `MMAP_FROM` bytes or more with a memory map of its own, returned to the system
/// when it is freed. glibc's default threshold moves up to 32 MiB after the first large block is freed, and
/// blocks under it come from an arena that keeps their pages: a request head of a few megabytes that the
/// server refused would then stay resident after its connection closed. Setting the threshold fixes it.
pub fn return_large_blocks() {
    // SAFETY: as in `limit_malloc_arenas`.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM);
    }
}

/// Allocations at least this large are memory maps of their own.
const MMAP_FROM: libc::c_int = 1 << 20;
