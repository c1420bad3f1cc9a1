//! Spare point buffers handed back by consumers that fold series, reused by
//! the producers of the next series.
//!
//! A range function computes one `Vec<Sample>` per input series (241 points,
//! 3.9 KiB at a 15 s step over 1 h). An aggregation folds it into its group
//! state and drops it, so without reuse a heavy range query allocates and
//! frees one such buffer per series (10⁵ of them), and glibc's allocator
//! spends its time consolidating and splitting free chunks of that size
//! (`_int_malloc`, `malloc_consolidate`, `unlink_chunk` in the profiles).
//! Consumers [`give`](PointsPool::give) the buffer back; producers
//! [`take`](PointsPool::take) one. The pool never holds more buffers than
//! were alive at once before (two rounds of worker batches at most), so it does not
//! raise a query's peak memory; it is dropped with the query.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tidemark_storage::Sample;

/// Buffers for fewer points than this are not kept, and a request for so
/// few takes the pool's lock only when it holds spares: such an allocation
/// (an instant query's one point per series) is cheaper than the lock,
/// which every worker thread and the consumer share, so taking it for every
/// series moved its cache line between the cores.
const POOLED_MIN_CAPACITY: usize = 16;

/// Spare, empty point buffers (see the module documentation).
#[derive(Debug)]
pub(crate) struct PointsPool {
    spare: Mutex<Vec<Vec<Sample>>>,
    /// How many buffers `spare` holds (written under its lock): read
    /// without it, an empty pool costs no lock.
    held: AtomicUsize,
    max_spare: usize,
}

impl PointsPool {
    /// A pool that keeps at most `max_spare` buffers.
    pub(crate) fn new(max_spare: usize) -> PointsPool {
        PointsPool { spare: Mutex::new(Vec::new()), held: AtomicUsize::new(0), max_spare }
    }

    /// An empty buffer with room for at least `capacity` points: a spare
    /// one if there is any, else a new one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<Sample> {
        if capacity < POOLED_MIN_CAPACITY && self.held.load(Ordering::Relaxed) == 0 {
            return Vec::with_capacity(capacity);
        }
        let spare = {
            let mut spare = self.spare.lock();
            let v = spare.pop();
            self.held.store(spare.len(), Ordering::Relaxed);
            v
        };
        match spare {
            Some(mut v) => {
                // Spares are stored empty (see `give`).
                v.reserve(capacity);
                v
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Hands a buffer back for reuse; its contents are dropped. Small
    /// buffers, or any beyond `max_spare`, are simply freed.
    pub(crate) fn give(&self, mut v: Vec<Sample>) {
        if v.capacity() < POOLED_MIN_CAPACITY {
            return;
        }
        v.clear();
        let mut spare = self.spare.lock();
        if spare.len() < self.max_spare {
            spare.push(v);
            self.held.store(spare.len(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_capacity() {
        let pool = PointsPool::new(2);
        let mut a = pool.take(30);
        assert!(a.is_empty() && a.capacity() >= 30);
        a.push(Sample::new(1, 2.0));
        let cap = a.capacity();
        pool.give(a);
        let b = pool.take(20);
        assert!(b.is_empty());
        assert_eq!(b.capacity(), cap);
        let c = pool.take(50);
        assert!(c.is_empty() && c.capacity() >= 50);
    }

    #[test]
    fn keeps_at_most_max_spare() {
        let pool = PointsPool::new(2);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(POOLED_MIN_CAPACITY));
        }
        pool.give(Vec::new());
        assert_eq!(pool.spare.lock().len(), 2);
    }

    #[test]
    fn small_buffers_are_not_kept_and_small_requests_take_spares() {
        let pool = PointsPool::new(4);
        pool.give(Vec::with_capacity(POOLED_MIN_CAPACITY - 1));
        assert_eq!(pool.spare.lock().len(), 0);
        assert!(pool.take(0).capacity() < POOLED_MIN_CAPACITY);
        // A request for few points (a selector's growing buffer) still
        // takes a spare when there is one.
        pool.give(Vec::with_capacity(64));
        assert_eq!(pool.take(0).capacity(), 64);
        assert_eq!(pool.held.load(Ordering::Relaxed), 0);
    }
}
