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
