//! Exemplars: samples with their own labels (typically a trace id) that
//! point from a series to an example event, kept in one bounded ring.
//!
//! The store follows Prometheus' circular exemplar storage
//! (`tsdb/exemplar.go`): one global ring of `limit` entries
//! ([`DEFAULT_MAX_EXEMPLARS`] by default, `--storage.exemplars.exemplars-limit`),
//! overwritten oldest first, with a per-series index (oldest and newest
//! entry, entries of one series chained in time order). Per series,
//! exemplars are kept in order: one with the same timestamp, value and
//! labels as the newest is a duplicate and ignored, one at or before the
//! newest's timestamp is refused ([`ExemplarError::OutOfOrder`]). An
//! exemplar's label set is at most [`MAX_LABEL_SET_RUNES`] UTF-8 characters
//! (names and values together, OpenMetrics' limit). A limit of 0 disables
//! the store: appends are ignored and queries answer nothing.
//!
//! Memory: [`BYTES_PER_EXEMPLAR`] per ring slot (allocated as the ring fills),
//! plus each exemplar's label bytes on the heap (a 32-hex-digit trace id
//! under `trace_id` takes 42 bytes), plus about 64 bytes and the series'
//! label bytes per series that has exemplars. With the default limit of
//! 100 000 the ring takes 4 MB, about 9 MB with trace-id labels.
//!
//! ```
//! use tidemark_storage::exemplar::{Exemplar, ExemplarStorage};
//! use tidemark_storage::{Labels, Matcher};
//!
//! let store = ExemplarStorage::new(3);
//! let series = Labels::new([("__name__", "rpc_seconds_bucket"), ("le", "0.5")]).unwrap();
//! for (i, trace) in ["a1", "b2", "c3", "d4"].into_iter().enumerate() {
//!     let ex = Exemplar { labels: Labels::new([("trace_id", trace)]).unwrap(), value: 0.25, t: 1000 * i as i64 };
//!     store.add(&series, &ex).unwrap();
//! }
//! let got = store.select(0, 10_000, &[vec![Matcher::equal("__name__", "rpc_seconds_bucket")]]);
//! // The ring holds 3: the oldest was overwritten.
//! let traces: Vec<_> = got[0].exemplars.iter().map(|e| e.labels.get("trace_id").unwrap()).collect();
//! assert_eq!(traces, ["b2", "c3", "d4"]);
//! ```

mod record;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

pub use record::RefExemplar;
pub(crate) use record::{exemplar_columns_len, put_exemplar_columns, read_exemplar_columns, MIN_EXEMPLAR_COLUMN_LEN};

use crate::{Labels, Matcher};

/// Default ring size, as Prometheus' `--storage.exemplars.exemplars-limit`.
pub const DEFAULT_MAX_EXEMPLARS: usize = 100_000;

/// Most UTF-8 characters an exemplar's label names and values may have
/// together (OpenMetrics; Prometheus' `exemplar.ExemplarMaxLabelSetLength`).
pub const MAX_LABEL_SET_RUNES: usize = 128;

/// Bytes one ring slot takes (the exemplar's labels are on the heap, apart).
/// The ring grows to its limit as exemplars arrive and never shrinks.
pub const BYTES_PER_EXEMPLAR: usize = std::mem::size_of::<Option<Entry>>();

/// An exemplar: a value at a time, with labels of its own (e.g. `trace_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The exemplar's own labels (may be empty).
    pub labels: Labels,
    /// The observed value.
    pub value: f64,
    /// Milliseconds since the epoch.
    pub t: i64,
}

impl Exemplar {
    /// Whether `o` is the same exemplar: labels, timestamp and value (bit
    /// pattern, so NaN equals NaN) equal.
    pub fn same(&self, o: &Exemplar) -> bool {
        self.t == o.t && self.value.to_bits() == o.value.to_bits() && self.labels == o.labels
    }
}

/// Why an exemplar was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExemplarError {
    /// Its timestamp is not after the newest exemplar of its series
    /// (Prometheus: "out of order exemplar").
    #[error("out of order exemplar: timestamp {t} is not after the series' newest exemplar at {newest}")]
    OutOfOrder {
        /// The refused timestamp.
        t: i64,
        /// The newest exemplar's timestamp.
        newest: i64,
    },
    /// Its labels have more than [`MAX_LABEL_SET_RUNES`] characters
    /// (Prometheus: "exemplar label set is too long").
    #[error("exemplar label set is too long: {runes} characters, at most {MAX_LABEL_SET_RUNES}")]
    LabelSetTooLong {
        /// Characters of the names and values.
        runes: usize,
    },
    /// The series the exemplar was appended for is not known.
    #[error("unknown series reference {0} for an exemplar")]
    UnknownSeriesRef(u64),
}

/// What [`ExemplarStorage::add`] did with an exemplar it did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Stored.
    Stored,
    /// Equal to its series' newest exemplar: nothing to do.
    Duplicate,
    /// The store is disabled (limit 0).
    Disabled,
}

/// The exemplars of one series, oldest first ([`ExemplarStorage::select`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesExemplars {
    /// The series' labels.
    pub series_labels: Labels,
    /// Its exemplars in the time range, oldest first.
    pub exemplars: Vec<Exemplar>,
}

/// Counters and gauges of the store (Prometheus' `prometheus_tsdb_exemplar_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExemplarStats {
    /// Ring size (the limit).
    pub max_exemplars: u64,
    /// Exemplars in the ring.
    pub exemplars_in_storage: u64,
    /// Series with at least one exemplar in the ring.
    pub series_with_exemplars: u64,
    /// Exemplars stored since start (replayed ones included).
    pub appended_total: u64,
    /// Out-of-order exemplars refused since start.
    pub out_of_order_total: u64,
}

const NONE: u32 = u32::MAX;

/// One ring slot in use.
#[derive(Debug)]
struct Entry {
    ex_labels: Labels,
    value: f64,
    t: i64,
    /// The series' slot in [`Ring::series`].
    series: u32,
    /// The ring index of the series' next (newer) exemplar, or [`NONE`].
    next: u32,
}

#[derive(Debug)]
struct SeriesEntry {
    labels: Labels,
    oldest: u32,
    newest: u32,
}

#[derive(Debug, Default)]
struct Ring {
    /// Most slots (the store's limit).
    limit: usize,
    /// The slots, grown up to `limit` as the ring fills (all in use).
    slots: Vec<Option<Entry>>,
    /// Where the next exemplar goes (the oldest entry once the ring is full).
    next: usize,
    /// Series labels → slot in `series`.
    index: HashMap<Labels, u32>,
    series: Vec<Option<SeriesEntry>>,
    free_series: Vec<u32>,
}

/// The bounded exemplar store (see the module documentation). Shared by
/// reference; every method takes `&self`.
#[derive(Debug)]
pub struct ExemplarStorage {
    ring: RwLock<Ring>,
    appended: AtomicU64,
    out_of_order: AtomicU64,
}

impl Default for ExemplarStorage {
    fn default() -> ExemplarStorage {
        ExemplarStorage::new(DEFAULT_MAX_EXEMPLARS)
    }
}

/// Characters of the names and values of `labels`, or the error when
/// above [`MAX_LABEL_SET_RUNES`].
pub fn check_label_set_length(labels: &Labels) -> Result<(), ExemplarError> {
    let runes: usize = labels.iter().map(|l| l.name.chars().count() + l.value.chars().count()).sum();
    if runes > MAX_LABEL_SET_RUNES {
        return Err(ExemplarError::LabelSetTooLong { runes });
    }
    Ok(())
}

impl ExemplarStorage {
    /// A store of `limit` exemplars (0 disables it). The ring grows as it
    /// fills, up to [`BYTES_PER_EXEMPLAR`] × `limit` bytes. A limit above
    /// `u32::MAX - 1` is lowered to it.
    pub fn new(limit: usize) -> ExemplarStorage {
        let limit = limit.min(NONE as usize - 1);
        ExemplarStorage {
            ring: RwLock::new(Ring { limit, ..Ring::default() }),
            appended: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
        }
    }

    /// The ring size.
    pub fn limit(&self) -> usize {
        self.ring.read().limit
    }

    /// Whether the store keeps anything (limit above 0).
    pub fn enabled(&self) -> bool {
        self.limit() > 0
    }

    /// Changes the ring size, keeping the newest exemplars that fit (as
    /// Prometheus' `Resize`). Returns how many were kept.
    pub fn resize(&self, limit: usize) -> usize {
        let limit = limit.min(NONE as usize - 1);
        let mut ring = self.ring.write();
        if ring.limit == limit {
            return 0;
        }
        let mut old = std::mem::replace(&mut *ring, Ring { limit, ..Ring::default() });
        let keep = old.slots.len().min(limit);
        let mut kept = 0;
        for at in old.order().skip(old.slots.len() - keep).collect::<Vec<_>>() {
            if let Some(e) = old.slots[at].take() {
                let series = old.series[e.series as usize].as_ref().map(|s| s.labels.clone()).unwrap_or_default();
                ring.push(&series, Exemplar { labels: e.ex_labels, value: e.value, t: e.t });
                kept += 1;
            }
        }
        kept
    }

    /// Checks `ex` for `series` without storing it: `Ok(Added::Stored)` if
    /// [`ExemplarStorage::add`] would store it now.
    pub fn validate(&self, series: &Labels, ex: &Exemplar) -> Result<Added, ExemplarError> {
        let ring = self.ring.read();
        ring.validate(series, ex)
    }

    /// Stores `ex` for `series`, overwriting the oldest exemplar of the
    /// ring when it is full.
    pub fn add(&self, series: &Labels, ex: &Exemplar) -> Result<Added, ExemplarError> {
        let mut ring = self.ring.write();
        match ring.validate(series, ex) {
            Ok(Added::Stored) => {}
            Err(e @ ExemplarError::OutOfOrder { .. }) => {
                self.out_of_order.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            other => return other,
        }
        ring.push(series, ex.clone());
        self.appended.fetch_add(1, Ordering::Relaxed);
        Ok(Added::Stored)
    }

    /// The exemplars with `mint <= t <= maxt` of every series that matches
    /// all matchers of at least one of `matcher_sets`, oldest first, series
    /// sorted by labels. Series without exemplars in the range are left out.
    pub fn select(&self, mint: i64, maxt: i64, matcher_sets: &[Vec<Matcher>]) -> Vec<SeriesExemplars> {
        let ring = self.ring.read();
        let mut out = Vec::new();
        for s in ring.series.iter().flatten() {
            let (Some(oldest), Some(newest)) = (ring.entry(s.oldest), ring.entry(s.newest)) else { continue };
            if oldest.t > maxt || newest.t < mint {
                continue;
            }
            let matches = |ms: &Vec<Matcher>| ms.iter().all(|m| m.matches(s.labels.get(&m.name).unwrap_or_default()));
            if !matcher_sets.iter().any(matches) {
                continue;
            }
            let mut exemplars = Vec::new();
            let mut at = s.oldest;
            while let Some(e) = ring.entry(at) {
                if e.t > maxt {
                    break;
                }
                if e.t >= mint {
                    exemplars.push(Exemplar { labels: e.ex_labels.clone(), value: e.value, t: e.t });
                }
                at = e.next;
            }
            if !exemplars.is_empty() {
                out.push(SeriesExemplars { series_labels: s.labels.clone(), exemplars });
            }
        }
        out.sort_by(|a, b| a.series_labels.cmp(&b.series_labels));
        out
    }

    /// Calls `f` with every stored exemplar and its series, oldest first.
    pub fn for_each(&self, mut f: impl FnMut(&Labels, &Exemplar)) {
        let ring = self.ring.read();
        for at in ring.order() {
            if let Some(e) = &ring.slots[at] {
                if let Some(s) = &ring.series[e.series as usize] {
                    f(&s.labels, &Exemplar { labels: e.ex_labels.clone(), value: e.value, t: e.t });
                }
            }
        }
    }

    /// The store's counters and gauges.
    pub fn stats(&self) -> ExemplarStats {
        let ring = self.ring.read();
        ExemplarStats {
            max_exemplars: ring.limit as u64,
            exemplars_in_storage: ring.slots.len() as u64,
            series_with_exemplars: ring.index.len() as u64,
            appended_total: self.appended.load(Ordering::Relaxed),
            out_of_order_total: self.out_of_order.load(Ordering::Relaxed),
        }
    }
}

impl Ring {
    /// The slot indexes, oldest exemplar first.
    fn order(&self) -> impl Iterator<Item = usize> {
        let n = self.slots.len();
        // Until the ring is full, slot 0 holds the oldest.
        let start = if n < self.limit { 0 } else { self.next };
        (0..n).map(move |i| (start + i) % n.max(1))
    }

    fn entry(&self, at: u32) -> Option<&Entry> {
        if at == NONE {
            return None;
        }
        self.slots.get(at as usize).and_then(Option::as_ref)
    }

    fn validate(&self, series: &Labels, ex: &Exemplar) -> Result<Added, ExemplarError> {
        if self.limit == 0 {
            return Ok(Added::Disabled);
        }
        check_label_set_length(&ex.labels)?;
        let Some(&si) = self.index.get(series) else { return Ok(Added::Stored) };
        let Some(newest) = self.series[si as usize].as_ref().and_then(|s| self.entry(s.newest)) else {
            return Ok(Added::Stored);
        };
        if newest.t == ex.t && newest.value.to_bits() == ex.value.to_bits() && newest.ex_labels == ex.labels {
            return Ok(Added::Duplicate);
        }
        if ex.t <= newest.t {
            return Err(ExemplarError::OutOfOrder { t: ex.t, newest: newest.t });
        }
        Ok(Added::Stored)
    }

    /// Stores `ex` at `next` (validated by the caller), unlinking the
    /// entry it overwrites from its series.
    fn push(&mut self, series: &Labels, ex: Exemplar) {
        let at = self.next as u32;
        if self.next == self.slots.len() {
            self.slots.push(None);
        }
        if let Some(old) = self.slots[self.next].take() {
            let si = old.series as usize;
            if old.next == NONE {
                // The series' only exemplar left: the series goes.
                if let Some(s) = self.series[si].take() {
                    self.index.remove(&s.labels);
                    self.free_series.push(si as u32);
                }
            } else if let Some(s) = self.series[si].as_mut() {
                s.oldest = old.next;
            }
        }
        let si = match self.index.get(series) {
            Some(&si) => {
                if let Some(s) = self.series[si as usize].as_mut() {
                    let prev = s.newest;
                    s.newest = at;
                    if let Some(Some(p)) = self.slots.get_mut(prev as usize) {
                        p.next = at;
                    }
                }
                si
            }
            None => {
                let entry = SeriesEntry { labels: series.clone(), oldest: at, newest: at };
                let si = match self.free_series.pop() {
                    Some(si) => {
                        self.series[si as usize] = Some(entry);
                        si
                    }
                    None => {
                        self.series.push(Some(entry));
                        (self.series.len() - 1) as u32
                    }
                };
                self.index.insert(series.clone(), si);
                si
            }
        };
        self.slots[self.next] = Some(Entry { ex_labels: ex.labels, value: ex.value, t: ex.t, series: si, next: NONE });
        self.next = (self.next + 1) % self.limit;
    }
}

#[cfg(test)]
mod tests;
