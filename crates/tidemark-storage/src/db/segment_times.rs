//! How new the samples in each WAL segment are, as maintenance observed
//! it: which segments a block covers entirely, so that truncating the WAL
//! after a head block is written deletes them instead of rewriting the
//! samples they share with the head into a checkpoint.
//!
//! An observation `(open, newest)` is taken by reading the segment being
//! written (`open`) and then the head's newest sample time: every segment
//! below `open` was written before, so its samples are (up to a commit
//! still being applied to the head) no newer than `newest`. A bound that
//! turns out wrong costs only bytes, never data: a checkpoint keeps every
//! sample at or after its `mint`, whichever segments it covers.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Observations kept at most (maintenance takes one per round; rounds are
/// 30 s apart by default, so this covers hours).
const MAX_MARKS: usize = 1024;

/// `(segment being written, head's newest sample time)` observations,
/// oldest first; both increase.
#[derive(Debug, Default)]
pub(super) struct SegmentTimes {
    marks: Mutex<VecDeque<(u64, i64)>>,
}

impl SegmentTimes {
    /// Records that every segment below `open` holds samples no newer than
    /// `newest`. An observation older than the last one is ignored.
    pub(super) fn observe(&self, open: u64, newest: i64) {
        let mut marks = self.marks.lock();
        if let Some(&(o, n)) = marks.back() {
            if open < o || newest < n {
                return;
            }
            if open == o {
                // The same segment: the earlier (lower) time is the bound.
                return;
            }
        }
        if marks.len() == MAX_MARKS {
            marks.pop_front();
        }
        marks.push_back((open, newest));
    }

    /// The highest segment whose samples are all older than `t`, as far as
    /// the observations show (`None`: no segment is known to be).
    pub(super) fn all_older_than(&self, t: i64) -> Option<u64> {
        let marks = self.marks.lock();
        marks.iter().rev().find(|&&(_, newest)| newest < t).and_then(|&(open, _)| open.checked_sub(1))
    }

    /// Forgets observations about segments up to `upto` only (they are
    /// checkpointed).
    pub(super) fn forget_upto(&self, upto: u64) {
        let mut marks = self.marks.lock();
        while marks.front().is_some_and(|&(open, _)| open <= upto + 1) {
            marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_segment_known_to_be_older_is_found() {
        let s = SegmentTimes::default();
        assert_eq!(s.all_older_than(i64::MAX), None);
        s.observe(0, 10);
        // Nothing below segment 0.
        assert_eq!(s.all_older_than(100), None);
        s.observe(2, 50);
        s.observe(3, 70);
        s.observe(5, 120);
        assert_eq!(s.all_older_than(50), None, "segments 0–1 may hold a sample at 50");
        assert_eq!(s.all_older_than(51), Some(1));
        assert_eq!(s.all_older_than(71), Some(2));
        assert_eq!(s.all_older_than(121), Some(4));
        assert_eq!(s.all_older_than(i64::MIN), None);
    }

    #[test]
    fn stale_and_repeated_observations_do_not_loosen_the_bound() {
        let s = SegmentTimes::default();
        s.observe(3, 70);
        // The same open segment later: the first time stays the bound.
        s.observe(3, 90);
        assert_eq!(s.all_older_than(71), Some(2));
        // Out of order (an older read): ignored.
        s.observe(2, 60);
        s.observe(4, 65);
        assert_eq!(s.all_older_than(66), None);
        assert_eq!(s.all_older_than(71), Some(2));
    }

    #[test]
    fn checkpointed_segments_are_forgotten() {
        let s = SegmentTimes::default();
        for (open, t) in [(1, 10), (2, 20), (3, 30)] {
            s.observe(open, t);
        }
        s.forget_upto(1);
        assert_eq!(s.all_older_than(21), None);
        assert_eq!(s.all_older_than(31), Some(2));
        for i in 0..(MAX_MARKS as u64 + 10) {
            s.observe(10 + i, 100 + i as i64);
        }
        assert_eq!(s.marks.lock().len(), MAX_MARKS);
    }
}
