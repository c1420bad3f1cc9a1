//! Appending a decoded [`Batch`] to the database, sample by sample, keeping
//! every valid sample and accounting for every rejected one.
//!
//! Per series: a series the receiver has seen before is found by its labels
//! as sent ([`SeriesCache`], a trusted 128-bit key) and its samples go to
//! it through its handle ([`Appender::append_handle`]). The keys of a 1.0
//! request's series are computed and looked up first, all together (one
//! lock per cache shard, slots prefetched); appending then prefetches the
//! series a few ahead, so the cache misses of a large head overlap. Otherwise the labels are validated and built once; the
//! first sample goes through [`Appender::append`] (label lookup, series
//! creation) and the rest through [`Appender::append_ref`]. A rejected sample does not stop
//! the series or the batch: the storage appender keeps its other samples.

use std::fmt::Write as _;

use tidemark_storage::head::SeriesHandle;
use tidemark_storage::{AppendError, Appender, Labels, METRIC_NAME};

use super::decode::{Batch, SeriesView};
use super::series_cache::{Key, SeriesCache};
use super::stats::RejectReason;
use super::validate::{family_name, series_labels, DisplayPairs, SeriesError};
use super::ReceiverOptions;
use crate::MetadataStore;

/// What ingesting a batch did (before the commit).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Samples accepted by the appender.
    pub samples_written: u64,
    /// Samples rejected, by [`RejectReason`] index.
    pub rejected: [u64; 5],
    /// Series with at least one problem.
    pub series_rejected: u64,
    /// Exemplars dropped.
    pub exemplars_dropped: u64,
    /// Native histogram samples dropped.
    pub histograms_dropped: u64,
    /// Metadata entries received.
    pub metadata_entries: u64,
    /// One line per problem series, the first [`ReceiverOptions::max_errors_reported`].
    pub messages: Vec<String>,
}

impl Outcome {
    /// Samples rejected, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// The 400 body: totals, counts by reason, then the first problems.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "stored {} samples, rejected {} samples of {} series (",
            self.samples_written,
            self.rejected_total(),
            self.series_rejected
        );
        let mut first = true;
        for r in RejectReason::ALL {
            let n = self.rejected[r.index()];
            if n > 0 {
                let _ = write!(s, "{}{}: {n}", if first { "" } else { ", " }, r.as_str());
                first = false;
            }
        }
        s.push_str("); the valid samples were stored, retrying this request is not needed\n");
        for m in &self.messages {
            s.push_str(m);
            s.push('\n');
        }
        let omitted = self.series_rejected.saturating_sub(self.messages.len() as u64);
        if omitted > 0 {
            let _ = writeln!(s, "... and {omitted} more series");
        }
        s
    }

    fn note(&mut self, limit: usize, msg: impl FnOnce() -> String) {
        self.series_rejected += 1;
        if self.messages.len() < limit {
            self.messages.push(msg());
        }
    }
}

/// How many series ahead appending prefetches a cached series: enough to
/// cover a memory access with the work of the series in between.
const PREFETCH_AHEAD: usize = 4;

/// Appends every series of `batch` and records its metadata. `max_t` is the
/// newest timestamp accepted (now + the future allowance). `cache` maps
/// labels as sent to refs (see [`SeriesCache`]): a series found there
/// skips validation, building its [`Labels`] and the label lookup.
pub fn ingest(
    batch: &Batch<'_>,
    app: &mut Appender<'_>,
    metadata: &MetadataStore,
    opts: &ReceiverOptions,
    cache: &SeriesCache,
    max_t: i64,
) -> Outcome {
    let mut out = Outcome::default();
    let limit = opts.max_errors_reported;
    let v2 = matches!(batch, Batch::V2(_));
    let mut scratch = Vec::new();
    for (family, m) in batch.family_metadata() {
        out.metadata_entries += 1;
        metadata.record_parts(family, m.kind, m.help, m.unit);
    }
    // First pass (1.0: the labels come with each series): every cacheable
    // series' key, then all their entries at once.
    let mut lists = LISTS.with(|l| std::mem::take(&mut *l.borrow_mut()));
    let Lists { keys, hits, lookups } = &mut lists;
    if cache.enabled() && !v2 {
        batch.for_each_series(|series| {
            let key = match series {
                // Labels not sent together are keyed by their pairs, as in
                // the second pass for 2.0.
                Ok(s) if !s.samples.is_empty() => Some(cache.key(s.label_bytes, s.labels, &mut scratch)),
                _ => None,
            };
            if let Some(k) = key {
                lookups.push((k, keys.len() as u32));
            }
            keys.push(key);
        });
        hits.resize(keys.len(), None);
        cache.get_many(lookups, hits);
    }
    let mut idx = 0usize;
    batch.for_each_series(|series| {
        let i = idx;
        idx += 1;
        if let Some(Some(h)) = hits.get(i + PREFETCH_AHEAD) {
            app.prefetch(h);
        }
        let series = match series {
            Ok(s) => s,
            Err(bad) => {
                out.rejected[RejectReason::InvalidSeries.index()] += bad.samples as u64;
                let reason = SeriesError::BadRefs(bad.reason);
                out.note(limit, || format!("invalid series: {reason}"));
                return;
            }
        };
        out.exemplars_dropped += series.exemplars as u64;
        out.histograms_dropped += series.histograms as u64;
        // A series without samples takes the full path: its validation
        // (and 2.0's "no samples" rule) decide what to answer.
        let (key, entry) = match keys.get(i) {
            // Looked up in the first pass (or not cacheable there).
            Some(&key) => (key, hits[i]),
            None => {
                let key = (cache.enabled() && !series.samples.is_empty())
                    .then(|| cache.key(series.label_bytes, series.labels, &mut scratch));
                (key, key.and_then(|k| cache.get(k)))
            }
        };
        // A hit is trusted (see the cache's invariants): the series' first
        // sample (unless it is in the future, which is rejected before the
        // appender sees it) goes straight to its handle. Only a series the
        // head no longer holds takes the full path.
        let mut first_result = None;
        let cached = entry.and_then(|mut h| {
            let before = h;
            let keep = match series.samples.first() {
                Some(s) if s.timestamp <= max_t => match app.append_handle(&mut h, s.timestamp, s.value) {
                    Err(AppendError::UnknownSeriesRef(_)) => false,
                    res => {
                        first_result = Some(res);
                        true
                    }
                },
                _ => true,
            };
            if keep && h != before {
                // Refreshed (series were removed since it was stored).
                if let Some(k) = key {
                    cache.insert(k, h);
                }
            }
            keep.then_some(h)
        });
        let (handle, labels) = match cached {
            Some(h) => {
                // The pairs equal a stored, validated label set: valid.
                if let Some(m) = series.metadata {
                    out.metadata_entries += 1;
                    if let Some(&(_, name)) = series.labels.iter().find(|(n, _)| *n == METRIC_NAME) {
                        metadata.record_parts(&family_name(name, m.kind), m.kind, m.help, m.unit);
                    }
                }
                (Some(h), None)
            }
            None => {
                let labels = match series_labels(series.labels, opts.name_validation) {
                    Ok(l) if v2 && series.samples.is_empty() && series.histograms == 0 => {
                        drop(l);
                        out.note(limit, || format!("{}: {}", DisplayPairs(series.labels), SeriesError::NoSamples));
                        return;
                    }
                    Ok(l) => l,
                    Err(e) => {
                        out.rejected[RejectReason::InvalidSeries.index()] += series.samples.len() as u64;
                        out.note(limit, || format!("{}: invalid series: {e}", DisplayPairs(series.labels)));
                        return;
                    }
                };
                if let Some(m) = series.metadata {
                    out.metadata_entries += 1;
                    if let Some(name) = labels.get(METRIC_NAME) {
                        metadata.record_parts(&family_name(name, m.kind), m.kind, m.help, m.unit);
                    }
                }
                (None, Some(labels))
            }
        };
        // Invariant (a) of the cache: only pairs that are exactly the
        // validated labels (none dropped for an empty value) are entered.
        let exact = labels.as_ref().is_some_and(|l| l.len() == series.labels.len());
        let mut target = Target { series_ref: handle.map(|h| h.series_ref()), handle, labels, pairs: series.labels };
        append_series(app, &mut target, &series, first_result, max_t, &mut out, limit);
        if let (Some(k), None, Some(r), true) = (key, cached, target.series_ref, exact) {
            if let Some(h) = app.handle(r) {
                cache.insert(k, h);
            }
        }
    });
    lists.clear();
    if lists.keys.capacity() <= MAX_KEPT_LIST {
        LISTS.with(|l| *l.borrow_mut() = lists);
    }
    out
}

/// A request's per-series lists of the first pass, kept by the thread for
/// its next request (emptied) instead of being allocated each time.
#[derive(Default)]
struct Lists {
    /// Each series' cache key (`None`: not cacheable).
    keys: Vec<Option<Key>>,
    /// Each series' handle, for the series found in the cache.
    hits: Vec<Option<SeriesHandle>>,
    /// The keys to look up, with their series' index.
    lookups: Vec<(Key, u32)>,
}

impl Lists {
    fn clear(&mut self) {
        self.keys.clear();
        self.hits.clear();
        self.lookups.clear();
    }
}

thread_local! {
    static LISTS: std::cell::RefCell<Lists> = std::cell::RefCell::new(Lists::default());
}

/// A thread keeps its lists only up to this many series: a rare huge
/// request does not pin its memory on every thread.
const MAX_KEPT_LIST: usize = 1 << 16;

/// The series samples are appended to: its ref once known (and its handle
/// when it came from the cache), its [`Labels`] when built (built on demand
/// for a cached series whose ref went away).
struct Target<'a, 'p> {
    series_ref: Option<u64>,
    handle: Option<SeriesHandle>,
    labels: Option<Labels>,
    pairs: &'p [(&'a str, &'a str)],
}

impl Target<'_, '_> {
    /// Appends by labels (looking the series up, creating it if new) and
    /// remembers the ref.
    fn append_by_labels(&mut self, app: &mut Appender<'_>, t: i64, v: f64) -> Result<(), AppendError> {
        // Without labels the series came from the cache: its pairs equal a
        // stored label set (sorted, unique, no empty value), which is what
        // `from_sorted` requires.
        let labels = self.labels.get_or_insert_with(|| Labels::from_sorted(self.pairs.iter().copied()));
        let r = app.append(labels, t, v)?;
        self.series_ref = Some(r);
        self.handle = None;
        Ok(())
    }
}

/// Appends one valid series' samples. `first_result`, when set, is the
/// result of appending the first sample already (with the cache check).
fn append_series(
    app: &mut Appender<'_>,
    target: &mut Target<'_, '_>,
    series: &SeriesView<'_, '_>,
    mut first_result: Option<Result<(), AppendError>>,
    max_t: i64,
    out: &mut Outcome,
    limit: usize,
) {
    // The first rejection of the series (reported) and how many followed.
    let mut first: Option<(RejectReason, String)> = None;
    let mut rejected = 0u64;
    let mut reject = |reason: RejectReason, describe: &dyn Fn() -> String, out: &mut Outcome| {
        out.rejected[reason.index()] += 1;
        rejected += 1;
        // Formatting only what may be reported keeps a batch of rejected
        // samples cheap.
        if first.is_none() && out.messages.len() < limit {
            first = Some((reason, describe()));
        }
    };
    for s in series.samples {
        let (t, v) = (s.timestamp, s.value);
        if t > max_t {
            reject(
                RejectReason::FutureTimestamp,
                &|| format!("sample timestamp {t} is too far in the future (newest accepted: {max_t})"),
                out,
            );
            continue;
        }
        let res = match (first_result.take(), target.series_ref) {
            (Some(done), _) => done,
            (None, Some(r)) => match match target.handle.as_mut() {
                Some(h) => app.append_handle(h, t, v),
                None => app.append_ref(r, t, v),
            } {
                // The series went away under us (head truncation): look it
                // up again by labels.
                Err(AppendError::UnknownSeriesRef(_)) => target.append_by_labels(app, t, v),
                other => other,
            },
            (None, None) => target.append_by_labels(app, t, v),
        };
        match res {
            Ok(()) => out.samples_written += 1,
            Err(e) => reject(RejectReason::of(&e), &|| e.to_string(), out),
        }
    }
    if rejected > 0 {
        let (_, first) = first.unwrap_or((RejectReason::InvalidSeries, String::new()));
        let more = if rejected > 1 { format!(" (and {} more rejected samples)", rejected - 1) } else { String::new() };
        out.note(limit, || format!("{}: {first}{more}", DisplayPairs(series.labels)));
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tidemark_storage::{Db, Matcher};

    use super::*;
    use crate::proto::{v1, Sample};
    use crate::receive::decode::Batch;
    use crate::receive::negotiate::Protocol;

    fn request(job: &str, t: i64) -> Vec<u8> {
        v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![
                    v1::Label { name: "__name__".into(), value: "up".into() },
                    v1::Label { name: "job".into(), value: job.into() },
                ],
                samples: vec![Sample { timestamp: t, value: 1.0 }],
                ..Default::default()
            }],
            metadata: vec![],
        }
        .encode_to_vec()
    }

    fn send(db: &Db, cache: &SeriesCache, raw: &[u8]) -> Outcome {
        let batch = Batch::decode(Protocol::V1, raw).expect("valid body");
        let mut app = db.appender();
        let out = ingest(&batch, &mut app, &MetadataStore::new(), &ReceiverOptions::default(), cache, i64::MAX);
        app.commit().expect("commit");
        out
    }

    fn jobs(db: &Db) -> Vec<(String, usize)> {
        let series = db.querier(0, i64::MAX / 2).select(&[Matcher::equal("__name__", "up")]).expect("select");
        series
            .iter()
            .map(|s| (s.labels().get("job").unwrap_or("").to_owned(), s.samples().expect("samples").len()))
            .collect()
    }

    /// What the cache's invariant (c) rules out in practice: if two label
    /// sets shared a key, the second one's samples would be stored under
    /// the first series (and nothing would be refused). With the key
    /// forced equal for every series, that is what happens.
    #[test]
    fn a_forced_collision_files_the_second_series_under_the_first() {
        let db = Db::in_memory().expect("db");
        let cache = SeriesCache::with_forced_key(100, 7);
        assert_eq!(send(&db, &cache, &request("a", 1_000)).samples_written, 1);
        assert_eq!(send(&db, &cache, &request("b", 2_000)).samples_written, 1);
        assert_eq!(jobs(&db), vec![("a".to_owned(), 2)]);
        // With real keys the two stay apart.
        let db = Db::in_memory().expect("db");
        let cache = SeriesCache::new(100);
        send(&db, &cache, &request("a", 1_000));
        send(&db, &cache, &request("b", 2_000));
        send(&db, &cache, &request("a", 3_000));
        assert_eq!(jobs(&db), vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
        assert_eq!(cache.len(), 2);
    }

    /// Pairs that validation changes (an empty value dropped) are never
    /// entered: a hit must be the stored labels exactly.
    #[test]
    fn only_exact_label_sets_are_entered() {
        let db = Db::in_memory().expect("db");
        let cache = SeriesCache::new(100);
        let raw = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![
                    v1::Label { name: "__name__".into(), value: "up".into() },
                    v1::Label { name: "env".into(), value: String::new() },
                ],
                samples: vec![Sample { timestamp: 1_000, value: 1.0 }],
                ..Default::default()
            }],
            metadata: vec![],
        }
        .encode_to_vec();
        assert_eq!(send(&db, &cache, &raw).samples_written, 1);
        assert_eq!(cache.len(), 0);
        send(&db, &cache, &request("a", 1_000));
        assert_eq!(cache.len(), 1);
    }
}
