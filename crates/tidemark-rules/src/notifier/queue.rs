//! The bounded queue of alerts waiting for one Alertmanager.
//!
//! Invariant: `len() <= capacity` after every call. When new alerts do not
//! fit, the oldest queued ones go first: a newer notification about an
//! alert supersedes an older one (alerts are re-sent every resend delay),
//! so the newest state is the one worth keeping.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Alert;

#[derive(Debug)]
pub(crate) struct AlertQueue {
    items: VecDeque<Arc<Alert>>,
    capacity: usize,
}

impl AlertQueue {
    /// An empty queue holding at most `capacity` (≥ 1) alerts.
    pub(crate) fn new(capacity: usize) -> AlertQueue {
        AlertQueue { items: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends `alerts` in order, dropping the oldest alerts (queued ones
    /// first, then the first of `alerts` if they alone exceed the
    /// capacity). Returns how many were dropped.
    pub(crate) fn push(&mut self, alerts: &[Arc<Alert>]) -> usize {
        let skip = alerts.len().saturating_sub(self.capacity);
        let incoming = &alerts[skip..];
        let evict = (self.items.len() + incoming.len()).saturating_sub(self.capacity);
        self.items.drain(..evict);
        self.items.extend(incoming.iter().cloned());
        skip + evict
    }

    /// Removes and returns the oldest `max` (≥ 1) alerts.
    pub(crate) fn pop_batch(&mut self, max: usize) -> Vec<Arc<Alert>> {
        let n = self.items.len().min(max.max(1));
        self.items.drain(..n).collect()
    }

    /// Empties the queue; returns how many alerts it held.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn alert(i: i64) -> Arc<Alert> {
        Arc::new(Alert {
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at_ms: i,
            ends_at_ms: None,
            generator_url: String::new(),
        })
    }

    fn ids(v: &[Arc<Alert>]) -> Vec<i64> {
        v.iter().map(|a| a.starts_at_ms).collect()
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let mut q = AlertQueue::new(3);
        assert_eq!(q.push(&[alert(1), alert(2)]), 0);
        assert_eq!(q.push(&[alert(3), alert(4)]), 1);
        assert_eq!(q.push(&(5..=9).map(alert).collect::<Vec<_>>()), 5);
        assert_eq!(ids(&q.pop_batch(2)), [7, 8]);
        assert_eq!(ids(&q.pop_batch(2)), [9]);
        assert!(q.is_empty());
        assert_eq!(q.pop_batch(2).len(), 0);
    }

    proptest! {
        /// Against a plain model: the queue always holds the newest
        /// `capacity` alerts in arrival order, and pushed = popped + dropped.
        #[test]
        fn matches_a_model(cap in 1usize..20, ops in prop::collection::vec((0usize..30, 0usize..10), 1..40)) {
            let mut q = AlertQueue::new(cap);
            let mut model: Vec<i64> = Vec::new();
            let (mut next, mut pushed, mut popped, mut dropped) = (0i64, 0usize, 0usize, 0usize);
            for (n, take) in ops {
                let batch: Vec<_> = (0..n).map(|_| { next += 1; alert(next) }).collect();
                pushed += n;
                dropped += q.push(&batch);
                model.extend(ids(&batch));
                let cut = model.len().saturating_sub(cap);
                model.drain(..cut);
                prop_assert!(q.len() <= cap);
                let got = ids(&q.pop_batch(take));
                let want: Vec<i64> = model.drain(..take.max(1).min(model.len())).collect();
                prop_assert_eq!(&got, &want);
                popped += got.len();
            }
            prop_assert_eq!(pushed, popped + dropped + q.len());
        }
    }
}
