//! Appending a decoded [`Batch`] to the database, sample by sample, keeping
//! every valid sample and accounting for every rejected one.
//!
//! Per series: a series the receiver has seen before is found by its labels
//! as sent ([`SeriesCache`], a trusted 128-bit key) and its samples go to
//! it through its handle ([`Appender::append_handle`]). The keys of a 1.0
//! request's series are computed and looked up first, all together (one
//! lock per cache shard, slots prefetched); appending then prefetches the
//! series a few ahead, so the cache misses of a large head overlap. A hit's
//! labels, sent together, are never split into pairs (the batch comes from
//! [`Batch::decode_lazy`]); every other series' labels are split and
//! checked before the first sample is appended, so a malformed body still
//! appends nothing. Otherwise the labels are validated and built once; the
//! first sample goes through [`Appender::append`] (label lookup, series
//! creation) and the rest through [`Appender::append_ref`]. A series'
//! native histograms follow its float samples (as in Prometheus'
//! receiver), decoded one at a time from the bytes the wire decode kept
//! and appended by the same series ref ([`Appender::append_histogram_ref`],
//! or [`Appender::append_histogram`] when the series is not known yet). A
//! rejected sample, float or histogram, does not stop the series or the
//! batch: the storage appender keeps its other samples.

use std::fmt::Write as _;

use tidemark_storage::exemplar::Exemplar;
use tidemark_storage::head::SeriesHandle;
use tidemark_storage::histogram::HistogramValue;
use tidemark_storage::{AppendError, Appender, LabelError, Labels, METRIC_NAME};

use super::decode::{Batch, SeriesView};
use super::error::ReceiveError;
use super::ha;
use super::series_cache::{Key, SeriesCache};
use super::stats::RejectReason;
use super::validate::{family_name, series_labels, DisplayPairs, SeriesError};
use super::ReceiverOptions;
use crate::MetadataStore;

/// What ingesting a batch did (before the commit).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Float samples accepted by the appender.
    pub samples_written: u64,
    /// Float samples rejected, by [`RejectReason`] index.
    pub rejected: [u64; RejectReason::COUNT],
    /// Native histogram samples accepted by the appender.
    pub histograms_written: u64,
    /// Native histogram samples rejected, by [`RejectReason`] index.
    pub histograms_rejected: [u64; RejectReason::COUNT],
    /// Series with at least one problem.
    pub series_rejected: u64,
    /// Exemplars accepted by the appender (stored at commit; duplicates of
    /// a series' newest exemplar included, as Prometheus counts them).
    pub exemplars_written: u64,
    /// Exemplars not stored: out of order, label set too long or invalid,
    /// malformed (2.0 references), or of a series none of whose samples
    /// could be appended. They never fail the request (as in Prometheus).
    pub exemplars_dropped: u64,
    /// Metadata entries received.
    pub metadata_entries: u64,
    /// One line per problem series, the first [`ReceiverOptions::max_errors_reported`].
    pub messages: Vec<String>,
}

impl Outcome {
    /// Float samples rejected, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Native histogram samples rejected, all reasons.
    pub fn histograms_rejected_total(&self) -> u64 {
        self.histograms_rejected.iter().sum()
    }

    /// The 400 body: totals, counts by reason (floats and histograms
    /// together), then the first problems. Histograms are named only when
    /// the request carried some.
    pub fn summary(&self) -> String {
        let mut s = if self.histograms_written + self.histograms_rejected_total() > 0 {
            format!(
                "stored {} samples and {} histograms, rejected {} samples and {} histograms of {} series (",
                self.samples_written,
                self.histograms_written,
                self.rejected_total(),
                self.histograms_rejected_total(),
                self.series_rejected
            )
        } else {
            format!(
                "stored {} samples, rejected {} samples of {} series (",
                self.samples_written,
                self.rejected_total(),
                self.series_rejected
            )
        };
        let mut first = true;
        for r in RejectReason::ALL {
            let n = self.rejected[r.index()] + self.histograms_rejected[r.index()];
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
/// skips splitting its labels (`batch` may come from
/// [`Batch::decode_lazy`]), validation, building its [`Labels`] and the
/// label lookup. The pending labels of every other series are split and
/// checked before anything is appended: a malformed body is an error and
/// appends nothing. `strip`, when set, is the HA replica label name to
/// remove from every series ([`super::ha`]); such series are cached in a
/// key space of their own.
pub fn ingest(
    batch: &mut Batch<'_>,
    app: &mut Appender<'_>,
    metadata: &MetadataStore,
    opts: &ReceiverOptions,
    cache: &SeriesCache,
    max_t: i64,
    strip: Option<&str>,
) -> Result<Outcome, ReceiveError> {
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
                Ok(s) if !s.samples.is_empty() || !s.histograms.is_empty() => {
                    Some(ha::key_space(cache.key(s.label_bytes, s.labels, &mut scratch), strip))
                }
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
    // A hit's label bytes equal those of a label set validated before (the
    // cache's trusted key): only the others need splitting and checking.
    if let Err(e) = batch.split_labels(|i| !matches!(hits.get(i), Some(Some(_)))) {
        lists.clear();
        return Err(e);
    }
    let batch = &*batch;
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
                out.histograms_rejected[RejectReason::InvalidSeries.index()] += bad.histograms as u64;
                let reason = SeriesError::BadRefs(bad.reason);
                out.note(limit, || format!("invalid series: {reason}"));
                return;
            }
        };
        // Counted as dropped until `append_exemplars` stores them: every
        // early return below (an invalid series) drops them.
        out.exemplars_dropped += series.exemplars.len() as u64;
        // A series without samples or histograms takes the full path: its
        // validation (and 2.0's "no samples" rule) decide what to answer.
        let has_data = !series.samples.is_empty() || !series.histograms.is_empty();
        let (key, entry) = match keys.get(i) {
            // Looked up in the first pass (or not cacheable there).
            Some(&key) => (key, hits[i]),
            None => {
                let key = (cache.enabled() && has_data)
                    .then(|| ha::key_space(cache.key(series.label_bytes, series.labels, &mut scratch), strip));
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
                    let pairs = series.pairs().unwrap_or_default();
                    if let Some(&(_, name)) = pairs.iter().find(|(n, _)| *n == METRIC_NAME) {
                        metadata.record_parts(&family_name(name, m.kind), m.kind, m.help, m.unit);
                    }
                }
                (Some(h), None)
            }
            None => {
                // A hit whose series went away still has its labels as
                // bytes; they split as they did when validated.
                let pairs = match series.pairs() {
                    Ok(p) if ha::kept_len(&p, strip) != p.len() => {
                        p.iter().copied().filter(|(n, _)| !ha::stripped(n, strip)).collect::<Vec<_>>().into()
                    }
                    Ok(p) => p,
                    Err(e) => {
                        out.rejected[RejectReason::InvalidSeries.index()] += series.samples.len() as u64;
                        out.histograms_rejected[RejectReason::InvalidSeries.index()] += series.histograms.len() as u64;
                        out.note(limit, || format!("invalid series: {e}"));
                        return;
                    }
                };
                let labels = match series_labels(&pairs, opts.name_validation) {
                    Ok(l) if v2 && !has_data => {
                        drop(l);
                        out.note(limit, || format!("{}: {}", DisplayPairs(&pairs), SeriesError::NoSamples));
                        return;
                    }
                    Ok(l) => l,
                    Err(e) => {
                        out.rejected[RejectReason::InvalidSeries.index()] += series.samples.len() as u64;
                        out.histograms_rejected[RejectReason::InvalidSeries.index()] += series.histograms.len() as u64;
                        out.note(limit, || format!("{}: invalid series: {e}", DisplayPairs(&pairs)));
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
        let exact =
            labels.as_ref().is_some_and(|l| Some(l.len()) == series.pairs().ok().map(|p| ha::kept_len(&p, strip)));
        let mut target = Target { series_ref: handle.map(|h| h.series_ref()), handle, labels, series: &series, strip };
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
    Ok(out)
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
struct Target<'v, 'a, 's> {
    series_ref: Option<u64>,
    handle: Option<SeriesHandle>,
    labels: Option<Labels>,
    series: &'v SeriesView<'a, 's>,
    /// The HA replica label removed from the pairs, if any.
    strip: Option<&'v str>,
}

impl Target<'_, '_, '_> {
    /// Appends by labels (looking the series up, creating it if new) and
    /// remembers the ref.
    fn append_by_labels(&mut self, app: &mut Appender<'_>, t: i64, v: f64) -> Result<(), AppendError> {
        let r = app.append(self.labels()?, t, v)?;
        self.series_ref = Some(r);
        self.handle = None;
        Ok(())
    }

    /// [`Target::append_by_labels`] for a native histogram sample.
    fn append_histogram_by_labels(
        &mut self,
        app: &mut Appender<'_>,
        t: i64,
        h: HistogramValue,
    ) -> Result<(), AppendError> {
        let r = app.append_histogram(self.labels()?, t, h)?;
        self.series_ref = Some(r);
        self.handle = None;
        Ok(())
    }

    /// The series' [`Labels`], built on first use.
    fn labels(&mut self) -> Result<&Labels, AppendError> {
        // Without labels the series came from the cache: its pairs equal a
        // stored label set (sorted, unique, no empty value), which is what
        // `from_sorted` requires. Its label bytes, when pending, split as
        // they did when that set was validated; were they ever not to, the
        // sample is refused as of an invalid series.
        let labels = match &mut self.labels {
            Some(l) => l,
            slot @ None => {
                let pairs = self
                    .series
                    .pairs()
                    .map_err(|e| AppendError::InvalidLabels(LabelError::InvalidName(e.to_string())))?;
                slot.insert(Labels::from_sorted(pairs.iter().copied().filter(|(n, _)| !ha::stripped(n, self.strip))))
            }
        };
        Ok(labels)
    }
}

/// Appends one valid series' float samples, then its native histograms.
/// `first_result`, when set, is the result of appending the first float
/// sample already (with the cache check).
fn append_series(
    app: &mut Appender<'_>,
    target: &mut Target<'_, '_, '_>,
    series: &SeriesView<'_, '_>,
    mut first_result: Option<Result<(), AppendError>>,
    max_t: i64,
    out: &mut Outcome,
    limit: usize,
) {
    // The first rejection of the series (reported) and how many followed.
    let mut first: Option<(RejectReason, String)> = None;
    let mut rejected = 0u64;
    let mut reject = |reason: RejectReason, histogram: bool, describe: &dyn Fn() -> String, out: &mut Outcome| {
        if histogram {
            out.histograms_rejected[reason.index()] += 1;
        } else {
            out.rejected[reason.index()] += 1;
        }
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
                false,
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
            Err(e) => reject(RejectReason::of(&e), false, &|| e.to_string(), out),
        }
    }
    for i in 0..series.histograms.len() {
        let h = match series.histogram(i) {
            Ok(h) => h,
            Err(e) => {
                reject(RejectReason::InvalidHistogram, true, &|| format!("invalid histogram: {e}"), out);
                continue;
            }
        };
        let t = h.t;
        if t > max_t {
            reject(
                RejectReason::FutureTimestamp,
                true,
                &|| format!("histogram timestamp {t} is too far in the future (newest accepted: {max_t})"),
                out,
            );
            continue;
        }
        let res = match target.series_ref {
            Some(r) => match app.append_histogram_ref(r, t, h.h) {
                // The series went away under us (head truncation): look it
                // up again by labels, with the histogram decoded again (it
                // was moved into the failed append; it decoded once, so it
                // decodes the same way now).
                Err(AppendError::UnknownSeriesRef(_)) => match series.histogram(i) {
                    Ok(again) => target.append_histogram_by_labels(app, t, again.h),
                    Err(e) => Err(AppendError::InvalidHistogram(e)),
                },
                other => other,
            },
            None => target.append_histogram_by_labels(app, t, h.h),
        };
        match res {
            Ok(()) => out.histograms_written += 1,
            Err(e) => reject(RejectReason::of(&e), true, &|| e.to_string(), out),
        }
    }
    if rejected > 0 {
        let (_, first) = first.unwrap_or((RejectReason::InvalidSeries, String::new()));
        let more = if rejected > 1 { format!(" (and {} more rejected samples)", rejected - 1) } else { String::new() };
        out.note(limit, || format!("{}: {first}{more}", DisplayPairs(&series.pairs().unwrap_or_default())));
    }
    append_exemplars(app, target, series, out);
}

/// Appends a series' exemplars (after its samples and histograms, as
/// Prometheus' receiver does) to the series its samples went to or, when
/// none was appended in this request (Prometheus' sender puts exemplars in
/// entries of their own, without samples), to the series with its labels
/// if the head holds it. A refused exemplar is counted and logged at debug
/// level, never a reason to fail the request (Prometheus' receiver:
/// "exemplar storage is still experimental").
fn append_exemplars(
    app: &mut Appender<'_>,
    target: &mut Target<'_, '_, '_>,
    series: &SeriesView<'_, '_>,
    out: &mut Outcome,
) {
    if series.exemplars.is_empty() {
        return;
    }
    let found = match target.series_ref {
        Some(r) => Some(r),
        None => target.labels().ok().and_then(|l| app.series_ref(l)),
    };
    let Some(r) = found else {
        // An unknown series (they stay counted as dropped), as Prometheus'
        // "unknown HeadSeriesRef when trying to add exemplar".
        tracing::debug!(exemplars = series.exemplars.len(), "exemplars of an unknown series dropped");
        return;
    };
    for i in 0..series.exemplars.len() {
        let res = series.exemplar(i).and_then(|e| {
            let labels =
                Labels::new(e.labels.iter().copied()).map_err(|err| format!("invalid exemplar labels: {err}"))?;
            let ex = Exemplar { labels, value: e.value, t: e.timestamp };
            app.append_exemplar(r, ex).map_err(|err| err.to_string())
        });
        match res {
            Ok(()) => {
                out.exemplars_dropped -= 1;
                out.exemplars_written += 1;
            }
            Err(err) => tracing::debug!(error = %err, "remote write: exemplar dropped"),
        }
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
        send_pending(db, cache, raw).expect("valid body").0
    }

    /// Sends `raw` and tells, per series, whether its labels were left
    /// unsplit.
    fn send_pending(db: &Db, cache: &SeriesCache, raw: &[u8]) -> Result<(Outcome, Vec<bool>), ReceiveError> {
        let mut batch = Batch::decode_lazy(Protocol::V1, raw).expect("valid structure");
        let mut app = db.appender();
        let out =
            ingest(&mut batch, &mut app, &MetadataStore::new(), &ReceiverOptions::default(), cache, i64::MAX, None)?;
        app.commit().expect("commit");
        let mut pending = Vec::new();
        batch.for_each_series(|s| pending.push(s.map(|s| s.labels_pending).unwrap_or(false)));
        Ok((out, pending))
    }

    /// A series found in the cache keeps its labels as bytes; every other
    /// one is split and checked before anything is appended, so a
    /// malformed label in a new series refuses the whole request.
    #[test]
    fn only_cache_hits_skip_the_split_and_a_bad_label_appends_nothing() {
        let db = Db::in_memory().expect("db");
        let cache = SeriesCache::new(100);
        let (out, pending) = send_pending(&db, &cache, &request("a", 1_000)).unwrap();
        assert_eq!((out.samples_written, pending), (1, vec![false]));
        let (out, pending) = send_pending(&db, &cache, &request("a", 2_000)).unwrap();
        assert_eq!((out.samples_written, pending), (1, vec![true]));
        // A known series and a new one whose job value is not UTF-8.
        let mut bad = request("a", 3_000);
        bad.extend(request("b", 3_000));
        let at = bad.iter().rposition(|&c| c == b'b').expect("the value");
        bad[at] = 0xff;
        assert!(matches!(send_pending(&db, &cache, &bad), Err(ReceiveError::BadProtobuf { .. })));
        assert_eq!(jobs(&db), vec![("a".to_owned(), 2)]);
        // Without a cache everything is split.
        let db = Db::in_memory().expect("db");
        let off = SeriesCache::new(0);
        for t in [1_000, 2_000] {
            assert_eq!(send_pending(&db, &off, &request("a", t)).unwrap().1, vec![false]);
        }
        assert_eq!(jobs(&db), vec![("a".to_owned(), 2)]);
    }

    /// A hit whose series the head no longer holds is appended by its
    /// labels, split from the bytes then.
    #[test]
    fn a_hit_on_a_removed_series_is_found_again_by_its_labels() {
        let cache = SeriesCache::new(100);
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::open(dir.path()).expect("db");
        send(&db, &cache, &request("a", 1_000));
        assert_eq!(cache.len(), 1);
        // Persisting the whole head removes the series from it: the
        // cached handle no longer reaches it.
        db.flush_head().expect("flush");
        let raw = request("a", 86_400_000);
        let bytes = crate::receive::wire::decode_v1(&raw).expect("body").label_bytes[0].expect("together");
        let mut h = cache.get(cache.key(Some(bytes), &[], &mut Vec::new())).expect("cached");
        let mut app = db.appender();
        assert!(matches!(app.append_handle(&mut h, 86_400_000, 1.0), Err(AppendError::UnknownSeriesRef(_))));
        drop(app);
        let (out, pending) = send_pending(&db, &cache, &raw).unwrap();
        assert_eq!((out.samples_written, out.rejected_total()), (1, 0));
        // Split for the lookup by labels (a view of the batch after the
        // request still shows the bytes: the split went to a copy).
        assert_eq!(pending, vec![true]);
        assert_eq!(jobs(&db), vec![("a".to_owned(), 2)]);
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
