//! Verification: the imported data directory is opened as a running
//! Tidemark would open it and every imported sample is read back through
//! the querier and compared with a second read of the source.

use std::path::{Path, PathBuf};

use tidemark_storage::block::SeriesData;
use tidemark_storage::histogram::HistogramSample;
use tidemark_storage::{Db, Matcher, Sample, SampleIterator};

use super::import::{replay_wal, wal_series, OpenBlock, PromBlock, Skips};
use super::{ImportSummary, PrometheusImportError as E};

/// Checks that every sample of `blocks` (and of the WAL segments, replayed
/// from `min_valid` on) reads back from `data_dir` with the same value, and
/// that the counts match `summary`. The WAL is replayed with the import's
/// memory bound `max_bytes`.
pub(crate) fn verify(
    data_dir: &Path,
    blocks: &[PromBlock],
    wal: Option<(&[PathBuf], i64)>,
    max_bytes: u64,
    summary: &ImportSummary,
) -> Result<(), E> {
    // No retention and no background maintenance: imported data may be
    // older than the default retention measured back from its newest
    // sample, and verifying must not delete what it checks.
    let db = crate::target::open_quiet(data_dir)?;
    let mut checked = (0u64, 0u64);
    let res = (|| -> Result<(), E> {
        for b in blocks {
            let ob = OpenBlock::open(b)?;
            let ix = ob.reader()?;
            let mut buf = Vec::new();
            for id in ob.series_ids(&ix)? {
                if let (Some(s), _) = ob.read_series(&ix, id, &mut Skips::default(), &mut buf)? {
                    compare(&db, &s, &mut checked)?;
                }
            }
        }
        if let Some((segs, min_valid)) = wal {
            replay_wal(
                segs,
                min_valid,
                max_bytes,
                &mut Skips::default(),
                |_| {},
                |data, skips| {
                    for s in wal_series(data, skips) {
                        compare(&db, &s, &mut checked)?;
                    }
                    Ok(())
                },
            )?;
        }
        if checked != (summary.float_samples, summary.histogram_samples) {
            return Err(E::Verify(format!(
                "the source holds {} float and {} histogram samples on a second read; the import wrote {} and {}",
                checked.0, checked.1, summary.float_samples, summary.histogram_samples
            )));
        }
        Ok(())
    })();
    let closed = db.close();
    res?;
    closed?;
    Ok(())
}

fn compare(db: &Db, want: &SeriesData, checked: &mut (u64, u64)) -> Result<(), E> {
    let ts = want.floats.iter().map(|s| s.t).chain(want.histograms.iter().map(|h| h.t));
    let (mint, maxt) = ts.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let q = db.querier(mint, maxt);
    let matchers: Vec<Matcher> = want.labels.iter().map(|l| Matcher::equal(l.name, l.value)).collect();
    let found = q.select(&matchers)?.into_iter().find(|s| s.labels() == &want.labels);
    let Some(series) = found else {
        return Err(E::Verify(format!("series {:?} is missing", want.labels)));
    };
    let (mut floats, mut hists): (Vec<Sample>, Vec<HistogramSample>) = (Vec::new(), Vec::new());
    let mut it = series.iter();
    it.drain_mixed_into(&mut floats, &mut hists);
    if let Some(e) = it.err() {
        return Err(E::Verify(format!("series {:?}: {e}", want.labels)));
    }
    for s in &want.floats {
        match floats.binary_search_by_key(&s.t, |x| x.t) {
            Ok(i) if floats[i].v.to_bits() == s.v.to_bits() => {}
            Ok(i) => {
                return Err(E::Verify(format!(
                    "series {:?} at {}: read back {}, imported {}",
                    want.labels, s.t, floats[i].v, s.v
                )))
            }
            Err(_) => return Err(E::Verify(format!("series {:?}: float sample at {} is missing", want.labels, s.t))),
        }
    }
    for h in &want.histograms {
        match hists.binary_search_by_key(&h.t, |x| x.t) {
            Ok(i) if hists[i].h.same_data(&h.h) => {}
            Ok(_) => return Err(E::Verify(format!("series {:?}: histogram at {} differs", want.labels, h.t))),
            Err(_) => return Err(E::Verify(format!("series {:?}: histogram at {} is missing", want.labels, h.t))),
        }
    }
    checked.0 += want.floats.len() as u64;
    checked.1 += want.histograms.len() as u64;
    Ok(())
}
