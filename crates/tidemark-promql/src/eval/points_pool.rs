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

use parking_lot::Mutex;
use tidemark_storage::Sample;

/// Spare, empty point buffers (see the module documentation).
#[derive(Debug)]
pub(crate) struct PointsPool {
    spare: Mutex<Vec<Vec<Sample>>>,
    max_spare: usize,
}

impl PointsPool {
    /// A pool that keeps at most `max_spare` buffers.
    pub(crate) fn new(max_spare: usize) -> PointsPool {
        PointsPool { spare: Mutex::new(Vec::new()), max_spare }
    }

    /// An empty buffer with room for at least `capacity` points: a spare
    /// one if there is any, else a new one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<Sample> {
        let spare = self.spare.lock().pop();
        match spare {
            Some(mut v) => {
                // Spares are stored empty (see `give`).
                v.reserve(capacity);
                v
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Hands a buffer back for reuse; its contents are dropped. Buffers
    /// without capacity, or beyond `max_spare`, are simply freed.
    pub(crate) fn give(&self, mut v: Vec<Sample>) {
        if v.capacity() == 0 {
            return;
        }
        v.clear();
        let mut spare = self.spare.lock();
        if spare.len() < self.max_spare {
            spare.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_capacity() {
        let pool = PointsPool::new(2);
        let mut a = pool.take(10);
        assert!(a.is_empty() && a.capacity() >= 10);
        a.push(Sample::new(1, 2.0));
        let cap = a.capacity();
        pool.give(a);
        let b = pool.take(3);
        assert!(b.is_empty());
        assert_eq!(b.capacity(), cap);
        let c = pool.take(50);
        assert!(c.is_empty() && c.capacity() >= 50);
    }

    #[test]
    fn keeps_at_most_max_spare() {
        let pool = PointsPool::new(2);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(4));
        }
        pool.give(Vec::new());
        assert_eq!(pool.spare.lock().len(), 2);
    }
}
