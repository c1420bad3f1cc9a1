//! Acknowledgement tracking: which part of the WAL the endpoint has fully
//! acknowledged, although shards finish their batches in any order.
//!
//! Every read from the WAL becomes a *chunk*: the position after it, the
//! number of samples sent to shards and their newest timestamp. Shards
//! report finished samples per chunk; the acknowledged position is the end
//! of the longest prefix of chunks with nothing outstanding. Only that
//! position is persisted, so a crash re-sends (at least once) and never
//! skips.

use std::collections::VecDeque;

use tidemark_storage::wal::WalPosition;

#[derive(Debug)]
struct Chunk {
    end: WalPosition,
    remaining: u64,
    min_t: Option<i64>,
    max_t: Option<i64>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Tracker {
    chunks: VecDeque<Chunk>,
    /// Id of `chunks[0]`.
    front_id: u64,
    acked: WalPosition,
    acked_t: Option<i64>,
    read_t: Option<i64>,
}

impl Tracker {
    pub(crate) fn new(start: WalPosition) -> Tracker {
        Tracker { chunks: VecDeque::new(), front_id: 0, acked: start, acked_t: None, read_t: None }
    }

    /// Registers a read ending at `end` with `samples` samples (timestamps
    /// `min_t..=max_t`) about to be queued; returns its id.
    pub(crate) fn push(&mut self, end: WalPosition, samples: u64, min_t: Option<i64>, max_t: Option<i64>) -> u64 {
        let id = self.front_id + self.chunks.len() as u64;
        self.read_t = self.read_t.max(max_t);
        self.chunks.push_back(Chunk { end, remaining: samples, min_t, max_t });
        self.pop_done();
        id
    }

    /// `n` samples of chunk `id` were sent or dropped.
    pub(crate) fn ack(&mut self, id: u64, n: u64) {
        if let Some(c) = id.checked_sub(self.front_id).and_then(|i| self.chunks.get_mut(i as usize)) {
            c.remaining = c.remaining.saturating_sub(n);
        }
        self.pop_done();
    }

    fn pop_done(&mut self) {
        while self.chunks.front().is_some_and(|c| c.remaining == 0) {
            if let Some(c) = self.chunks.pop_front() {
                self.acked = c.end;
                self.acked_t = self.acked_t.max(c.max_t);
                self.front_id += 1;
            }
        }
    }

    /// The end of the fully acknowledged prefix.
    pub(crate) fn acked(&self) -> WalPosition {
        self.acked
    }

    /// Samples queued but not yet acknowledged.
    pub(crate) fn pending(&self) -> u64 {
        self.chunks.iter().map(|c| c.remaining).sum()
    }

    /// Newest sample timestamp read, and newest in the acknowledged prefix.
    pub(crate) fn timestamps(&self) -> (Option<i64>, Option<i64>) {
        (self.read_t, self.acked_t)
    }

    /// How far, in sample time (ms), the acknowledged prefix trails the
    /// newest sample read: 0 when nothing is outstanding. Before anything
    /// was acknowledged, measured from the oldest outstanding sample.
    pub(crate) fn lag_ms(&self) -> i64 {
        let Some(front) = self.chunks.front() else { return 0 };
        let base = self.acked_t.or(front.min_t);
        match (self.read_t, base) {
            (Some(r), Some(b)) => r.saturating_sub(b).max(0),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: u64) -> WalPosition {
        WalPosition { segment: 1, offset: o }
    }

    #[test]
    fn position_advances_only_over_a_fully_acknowledged_prefix() {
        let mut t = Tracker::new(p(0));
        let a = t.push(p(10), 2, Some(50), Some(100));
        let b = t.push(p(20), 1, Some(200), Some(200));
        let c = t.push(p(30), 0, None, None);
        assert_eq!(t.lag_ms(), 150, "nothing acknowledged: from the oldest outstanding sample");
        t.ack(b, 1);
        assert_eq!(t.acked(), p(0), "b is done but a is not");
        assert_eq!(t.pending(), 2);
        t.ack(a, 1);
        assert_eq!(t.acked(), p(0));
        t.ack(a, 1);
        assert_eq!(t.acked(), p(30), "a, b and the empty c");
        assert_eq!(t.timestamps(), (Some(200), Some(200)));
        assert_eq!(t.lag_ms(), 0);
        t.ack(c, 5); // unknown or finished ids are ignored
        let d = t.push(p(40), 0, None, None);
        assert_eq!(d, 3);
        assert_eq!(t.acked(), p(40));
    }
}
