//! A cache-line prefetch hint, shared by the hot loops that chase a chain
//! of pointers per series: the head's select and apply, a query's series
//! reads and the remote-write receiver's series cache.

/// Starts loading the cache line that holds `p`.
///
/// A hint only: it reads nothing architecturally and cannot fault, whatever
/// `p` is (dangling, unmapped or null), so a caller may pass an address it
/// is not sure of. A no-op where no stable prefetch instruction exists.
///
/// ```
/// let v = vec![7u64; 4096];
/// // The loop below will read the second half next: ask for it early.
/// tidemark_storage::prefetch::prefetch(v[2048..].as_ptr());
/// assert_eq!(v.iter().sum::<u64>(), 7 * 4096);
/// ```
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault,
    // even for a dangling or unmapped address; SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
