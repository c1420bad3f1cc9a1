//! The sealer: one background thread that re-encodes closed head chunks
//! with the sealed codec off the append path.
//!
//! When a series cuts its open chunk, the apply only copies the XOR bytes
//! into the head chunk store's RAM staging area and queues the chunk
//! ([`HeadChunks::write_closed`](super::HeadChunks::write_closed)); the series keeps a reference to the
//! staged record, which every reader reads like any other. The sealer takes
//! the queued chunks in order, re-encodes each outside any series lock,
//! writes the sealed record to the main segments, and then, under the
//! series' shard lock, moves the series' reference to the new record.
//!
//! # Invariants
//! - A series' reference is replaced only if it still holds exactly the
//!   staged reference for that `mint` (it may have been truncated, rewritten
//!   or dropped meanwhile); otherwise the new record is left as garbage,
//!   freed with its segment.
//! - Every reader resolves a chunk reference and reads its bytes under the
//!   series' shard lock (getting a heap copy of a staged record, or a
//!   shared map of a main segment), and the swap holds that lock, so once
//!   it is done no reader can reach the staged record through the series
//!   again: the record is released then, and its staging segment is freed
//!   when all its records are.
//! - The queue is bounded ([`chunk_file::SEAL_QUEUE_CAP`]): when it is
//!   full, the apply re-encodes inline as it did before the sealer existed.
//! - The sealer holds only a weak reference to the head: dropping the head
//!   (or [`HeadChunks::stop_sealer`](super::HeadChunks::stop_sealer)) ends it; chunks still queued then stay
//!   staged, as XOR, which is correct, only larger.
//!
//! [`chunk_file::SEAL_QUEUE_CAP`]: super::chunk_file::SEAL_QUEUE_CAP

use std::sync::{Arc, Weak};

use super::chunk_file::{ChunkRef, SealQueue, Staged};
use super::Head;

/// Jobs taken from the queue per hold of its lock.
const BATCH: usize = 256;
/// Jobs sealed per hold of the store's lock.
const SLICE: usize = 64;

impl Head {
    /// Starts the sealer thread of `head` (a no-op if one runs). From then
    /// on chunks closed by appends are re-encoded in the background.
    pub fn start_sealer(head: &Arc<Head>) {
        let queue = head.chunks.seal_queue();
        let weak = Arc::downgrade(head);
        let spawned = std::thread::Builder::new().name("tidemark-sealer".into()).spawn(move || run(&queue, &weak));
        match spawned {
            Ok(handle) => head.chunks.attach_sealer(Some(handle)),
            // Without the thread chunks are simply re-encoded inline.
            Err(e) => tracing::warn!(error = %e, "cannot start the head chunk sealer; chunks are sealed inline"),
        }
    }

    /// Seals one staged chunk: the sealed record is written, the series'
    /// reference moved to it if it still holds the staged one, and the
    /// staged record released. Returns whether the reference was moved.
    #[cfg(test)]
    pub(crate) fn seal_one(&self, job: &Staged) -> bool {
        let mut sealed = Vec::with_capacity(1);
        self.seal_all(std::slice::from_ref(job), &mut sealed) == 1
    }

    /// [`Head::seal_one`] for a batch of jobs (`sealed` is scratch): the
    /// store's lock is taken a few times per batch, not per chunk. Returns
    /// how many references were moved.
    fn seal_all(&self, jobs: &[Staged], sealed: &mut Vec<Option<ChunkRef>>) -> usize {
        sealed.clear();
        self.chunks.seal_batch(jobs, sealed);
        let mut moved = 0;
        for (job, new) in jobs.iter().zip(sealed.iter()) {
            // None: gone with its segment (truncated), nothing refers to
            // it; or unreadable, kept: the series still refers to it.
            let Some(new) = *new else { continue };
            let mut shard = self.series_shard(job.series_ref).lock();
            if shard.get_mut(&job.series_ref).is_some_and(|s| s.replace_chunk_ref(job.mint, job.at, new)) {
                moved += 1;
            }
        }
        // Released only now: no reader can reach them any more.
        self.chunks.release_staged_all(jobs.iter().zip(sealed.iter()).filter(|(_, n)| n.is_some()).map(|(j, _)| j.at));
        moved
    }
}

/// The sealer thread's loop: takes batches of staged chunks until the
/// queue is closed or the head is gone.
fn run(queue: &SealQueue, head: &Weak<Head>) {
    let mut batch: Vec<Staged> = Vec::with_capacity(BATCH);
    let mut sealed = Vec::with_capacity(BATCH);
    while queue.next_batch(&mut batch, BATCH) {
        let Some(head) = head.upgrade() else { return };
        // Small slices, so a stop waits for a few chunks at most.
        for part in batch.chunks(SLICE) {
            if queue.is_closed() {
                break;
            }
            head.seal_all(part, &mut sealed);
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::chunkenc::Encoding;
    use crate::head::chunk_file::ChunkRef;
    use crate::head::{HeadChunks, HeadOptions};
    use crate::sample::{collect_samples, Sample};
    use crate::{Labels, Matcher};

    fn head() -> Arc<Head> {
        Arc::new(Head::new(HeadOptions { stripes: 8, ..HeadOptions::default() }, None))
    }

    fn series(i: usize) -> Labels {
        Labels::new([("__name__", "m"), ("i", &i.to_string())]).unwrap()
    }

    /// Every series' samples as a select returns them, by label set.
    fn selected(h: &Head) -> BTreeMap<Labels, Vec<Sample>> {
        let mut warnings = Vec::new();
        let sel = h.select_reporting(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        sel.into_iter()
            .map(|s| {
                let mut all = Vec::new();
                for c in &s.chunks {
                    all.extend(collect_samples(&mut c.iter()).unwrap());
                }
                (s.labels, all)
            })
            .collect()
    }

    /// The closed-chunk references of every series.
    fn refs(h: &Head) -> Vec<ChunkRef> {
        let mut out = Vec::new();
        for shard in h.series.iter() {
            for (_, s) in shard.lock().iter() {
                out.extend(s.chunks().iter().map(|c| c.at));
            }
        }
        out
    }

    /// Appends `rounds` scrapes (15 s apart from `t0`) of `n` series.
    fn scrape(h: &Head, n: usize, t0: i64, rounds: i64) {
        for k in 0..rounds {
            let mut app = h.appender();
            for i in 0..n {
                app.append(&series(i), t0 + k * 15_000, (i as i64 * 1000 + k) as f64).unwrap();
            }
            app.commit().unwrap();
        }
    }

    fn want(n: usize, t0: i64, rounds: i64) -> BTreeMap<Labels, Vec<Sample>> {
        (0..n)
            .map(|i| {
                (series(i), (0..rounds).map(|k| Sample::new(t0 + k * 15_000, (i as i64 * 1000 + k) as f64)).collect())
            })
            .collect()
    }

    #[test]
    fn sealing_moves_every_reference_to_a_sealed_record() {
        let h = head();
        h.chunks.attach_sealer(None);
        scrape(&h, 20, 0, 600);
        assert!(refs(&h).iter().all(|&r| HeadChunks::is_staged(r)));
        let before = selected(&h);
        assert_eq!(before, want(20, 0, 600));
        let mut jobs = Vec::new();
        let queue = h.chunks.seal_queue();
        while h.chunks.sealer_counts().2 > 0 {
            assert!(queue.next_batch(&mut jobs, 64));
        }
        assert!(jobs.len() >= 20 * 4, "{} chunks", jobs.len());
        assert!(jobs.iter().all(|j| h.seal_one(j)));
        let after = refs(&h);
        assert_eq!(after.len(), jobs.len());
        assert!(after.iter().all(|&r| !HeadChunks::is_staged(r)));
        assert_eq!(h.chunks.staged_records(), 0);
        // The sealed records are the ones read now, with their summaries.
        let mut warnings = Vec::new();
        let sel = h.select_reporting(&[Matcher::equal("__name__", "m")], 0, 1_000_000, &mut warnings);
        assert!(sel.iter().flat_map(|s| &s.chunks).any(|c| c.encoding == Encoding::Sealed && c.summary.is_some()));
        assert_eq!(selected(&h), before);
        // Sealing twice is a no-op (the series no longer holds the staged ref).
        assert!(!h.seal_one(&jobs[0]));
        assert_eq!(h.chunks.damaged_reads(), 0);
    }

    #[test]
    fn a_series_truncated_or_dropped_before_sealing_keeps_its_state() {
        let h = head();
        h.chunks.attach_sealer(None);
        // Chunks of 2 h ranges; the second series stops after the first range.
        scrape(&h, 2, 0, 480);
        let mut app = h.appender();
        for k in 480..960 {
            app.append(&series(0), k * 15_000, k as f64).unwrap();
        }
        app.commit().unwrap();
        let mut jobs = Vec::new();
        let queue = h.chunks.seal_queue();
        while h.chunks.sealer_counts().2 > 0 {
            assert!(queue.next_batch(&mut jobs, 64));
        }
        // Truncated to the second range: series 1 is dropped, series 0
        // keeps only its newer chunks; the old jobs find nothing to move.
        let dropped = h.truncate(7_200_000);
        assert_eq!(dropped.len(), 1);
        let moved = jobs.iter().filter(|j| h.seal_one(j)).count();
        let kept: Vec<_> = jobs.iter().filter(|j| j.series_ref != dropped[0] && j.mint >= 7_200_000).collect();
        assert_eq!(moved, kept.len());
        assert!(refs(&h).iter().all(|&r| !HeadChunks::is_staged(r)));
        let got = selected(&h);
        assert_eq!(got.len(), 1);
        let ts: Vec<i64> = got[&series(0)].iter().map(|s| s.t).collect();
        assert_eq!(ts, (480..960).map(|k| k * 15_000).collect::<Vec<_>>());
        assert_eq!(h.chunks.damaged_reads(), 0);
        assert_eq!(h.chunks.staged_records(), 0);
    }

    #[test]
    fn selects_beside_the_sealer_thread_always_see_the_model() {
        let h = head();
        Head::start_sealer(&h);
        let n = 40;
        let rounds = 1_500i64;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                for k in 0..rounds {
                    let mut app = h.appender();
                    for i in 0..n {
                        app.append(&series(i), k * 15_000, (i as i64 * 1000 + k) as f64).unwrap();
                    }
                    app.commit().unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            for _ in 0..2 {
                sc.spawn(|| {
                    let full = want(n, 0, rounds);
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        // Every answer is a prefix of each series' samples.
                        for (l, got) in selected(&h) {
                            let all = &full[&l];
                            assert!(got.len() <= all.len() && got[..] == all[..got.len()], "{l}");
                        }
                    }
                });
            }
        });
        // The sealer catches up: nothing staged is left.
        for _ in 0..6_000 {
            if h.chunks.staged_records() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(h.chunks.staged_records(), 0);
        assert!(refs(&h).iter().all(|&r| !HeadChunks::is_staged(r)));
        assert_eq!(selected(&h), want(n, 0, rounds));
        assert_eq!(h.chunks.damaged_reads(), 0);
        h.chunks.stop_sealer();
    }
}
