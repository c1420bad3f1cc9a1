//! Iterating over a chunk decoded up front (the sealed encoding), with its
//! sample buffer reused from chunk to chunk.
//!
//! A query reads one or two sealed chunks of each series it selects; each
//! used to decode into a fresh vector (one allocation and one free per
//! chunk) and then copy its samples out one `next`/`at` call at a time.
//! Here the buffer comes from a small per-thread pool and goes back to it
//! when the iterator is dropped, and [`DecodedIterator::drain_range`] copies
//! the samples in range as one slice.

use std::cell::RefCell;

use crate::sample::{Sample, SampleIterator, VecIterator};

use super::DrainEnd;

/// Buffers each thread keeps for reuse: a reader holds one chunk's buffer
/// at a time per series iterator, and merges of overlapping chunks a few.
const POOL_BUFFERS: usize = 8;

/// Buffers larger than this many samples are freed rather than kept (a
/// block chunk can be large; a head chunk holds ~120 samples).
const POOL_MAX_SAMPLES: usize = 4096;

thread_local! {
    static POOL: RefCell<Vec<Vec<Sample>>> = const { RefCell::new(Vec::new()) };
}

/// An empty sample buffer, from this thread's pool if it has one.
pub(crate) fn take_buffer() -> Vec<Sample> {
    POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten().unwrap_or_default()
}

/// Hands a buffer back to this thread's pool (or frees it).
fn give_buffer(mut buf: Vec<Sample>) {
    if buf.capacity() == 0 || buf.capacity() > POOL_MAX_SAMPLES {
        return;
    }
    buf.clear();
    // During thread teardown the pool may be gone: then the buffer is freed.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_BUFFERS {
            p.push(buf);
        }
    });
}

/// A [`SampleIterator`] over samples decoded up front (sorted by strictly
/// increasing `t`), and the decode error if there was one (then it holds no
/// samples). The cursor is a [`VecIterator`] over a pooled buffer.
#[derive(Debug, Default)]
pub struct DecodedIterator {
    inner: VecIterator,
    err: Option<crate::Error>,
}

impl DecodedIterator {
    /// Iterates over `samples`, which must be sorted by strictly increasing
    /// `t`; the buffer is handed to the pool when the iterator is dropped.
    pub(crate) fn new(samples: Vec<Sample>) -> DecodedIterator {
        DecodedIterator { inner: VecIterator::new(samples), err: None }
    }

    /// An iterator that holds no samples and reports `err`; `buf` (which a
    /// failed decode may have partly filled) is emptied and kept only for
    /// the pool.
    pub(crate) fn failed(err: crate::Error, mut buf: Vec<Sample>) -> DecodedIterator {
        buf.clear();
        DecodedIterator { inner: VecIterator::new(buf), err: Some(err) }
    }

    /// Appends the remaining samples from the first one at or after `from`
    /// up to `maxt` to `out`: the batch form of `seek(from)` then `next`
    /// while in range, leaving the cursor where that loop would (on the
    /// first sample after `maxt`, or exhausted). A started iterator
    /// continues after the sample it rests on.
    pub fn drain_range(&mut self, from: i64, maxt: i64, out: &mut Vec<Sample>) -> DrainEnd {
        if self.err.is_some() {
            return DrainEnd::Failed;
        }
        let it = &mut self.inner;
        let len = it.samples.len();
        // The first candidate: after the current sample if started, else
        // the first one.
        let first = if it.started() { it.pos } else { it.pos.saturating_sub(1) };
        if first >= len {
            it.pos = len + 1;
            return DrainEnd::Exhausted;
        }
        let lo = first + it.samples[first..].partition_point(|s| s.t < from);
        // The first sample after `maxt`, by a scan as the loop finds it.
        let hi = it.samples[lo..].iter().position(|s| s.t > maxt).map_or(len, |k| lo + k);
        out.extend_from_slice(&it.samples[lo..hi]);
        if hi < len {
            it.pos = hi + 1;
            DrainEnd::PastEnd
        } else {
            it.pos = len + 1;
            DrainEnd::Exhausted
        }
    }
}

impl Drop for DecodedIterator {
    fn drop(&mut self) {
        give_buffer(std::mem::take(&mut self.inner.samples));
    }
}

impl SampleIterator for DecodedIterator {
    #[inline]
    fn next(&mut self) -> bool {
        self.inner.next()
    }

    fn seek(&mut self, t: i64) -> bool {
        self.inner.seek(t)
    }

    #[inline]
    fn at(&self) -> Sample {
        self.inner.at()
    }

    fn started(&self) -> bool {
        self.inner.started()
    }

    fn err(&self) -> Option<&crate::Error> {
        self.err.as_ref()
    }

    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        self.inner.drain_into(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop `drain_range` replaces: `seek(from)` (after a `next` if
    /// started), then `next` while in range.
    fn drain_by_steps(it: &mut DecodedIterator, from: i64, maxt: i64, out: &mut Vec<Sample>) -> DrainEnd {
        if it.started() && !it.next() {
            return DrainEnd::Exhausted;
        }
        if !it.seek(from) {
            return DrainEnd::Exhausted;
        }
        loop {
            let s = it.at();
            if s.t > maxt {
                return DrainEnd::PastEnd;
            }
            out.push(s);
            if !it.next() {
                return DrainEnd::Exhausted;
            }
        }
    }

    #[test]
    fn drain_range_is_seek_then_next() {
        let samples: Vec<Sample> = (0..12).map(|i| Sample::new(i * 10, i as f64)).collect();
        let bounds = [-5, 0, 5, 10, 55, 60, 110, 115, 200];
        // Fresh, and after 1..3 `next`s (a started iterator).
        for pre in 0..4 {
            for &from in &bounds {
                for &maxt in &bounds {
                    let mut a = DecodedIterator::new(samples.clone());
                    let mut b = DecodedIterator::new(samples.clone());
                    for _ in 0..pre {
                        a.next();
                        b.next();
                    }
                    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
                    let end_a = a.drain_range(from, maxt, &mut out_a);
                    let end_b = drain_by_steps(&mut b, from, maxt, &mut out_b);
                    let case = format!("pre {pre}, from {from}, maxt {maxt}");
                    assert_eq!(end_a, end_b, "{case}");
                    assert_eq!(out_a, out_b, "{case}");
                    // Left where the loop leaves its iterator.
                    assert_eq!(a.started(), b.started(), "{case}");
                    if a.started() {
                        assert_eq!(a.at(), b.at(), "{case}");
                    }
                    assert_eq!(a.next(), b.next(), "{case}");
                }
            }
        }
        // An empty iterator and a failed one.
        let mut empty = DecodedIterator::new(Vec::new());
        assert_eq!(empty.drain_range(i64::MIN, i64::MAX, &mut Vec::new()), DrainEnd::Exhausted);
        let err = crate::Error::from(crate::ChunkError::Corrupt("test"));
        let mut failed = DecodedIterator::failed(err, Vec::new());
        assert_eq!(failed.drain_range(i64::MIN, i64::MAX, &mut Vec::new()), DrainEnd::Failed);
        assert!(failed.err().is_some() && !failed.next());
        // A decode that failed part way hands over a partly filled buffer:
        // none of it is read back.
        let err = crate::Error::from(crate::ChunkError::Corrupt("test"));
        let mut failed = DecodedIterator::failed(err, samples.clone());
        assert!(!failed.next() && !failed.seek(i64::MIN));
        let mut out = Vec::new();
        failed.drain_into(&mut out);
        assert!(out.is_empty() && failed.err().is_some());
    }

    #[test]
    fn buffers_are_reused_and_come_back_empty() {
        let mut buf = take_buffer();
        buf.extend((0..100).map(|i| Sample::new(i, 1.0)));
        let ptr = buf.as_ptr();
        drop(DecodedIterator::new(buf));
        let again = take_buffer();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the dropped iterator's buffer is handed out again");
        // A huge buffer is not kept.
        drop(DecodedIterator::new(Vec::with_capacity(POOL_MAX_SAMPLES + 1)));
        assert!(take_buffer().capacity() <= POOL_MAX_SAMPLES);
    }
}
