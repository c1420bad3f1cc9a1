//! Scrubbing blocks in the background and cutting damaged chunks out of
//! them, so that a rotten byte costs only the chunk it is in.
//!
//! A scrub pass verifies every block ([`Block::verify`]) at most
//! [`Options::scrub_bytes_per_sec`](super::Options::scrub_bytes_per_sec),
//! without holding the maintenance lock. Damaged chunks (found by a scrub
//! or by a query) are counted and logged once; maintenance then rewrites
//! each block with damaged chunks without them and moves the original to
//! `quarantine/`. A block whose index is damaged is moved to `quarantine/`
//! whole: the index is what maps series to chunks.

use std::fs;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Db, Inner, SCRUB_FIRST_DELAY};
use crate::block::{Block, ChunkDamage};
use crate::damage::{now_ms, QuarantinedBlock};
use crate::{BlockError, Error};

/// Why a scrub pass ended early.
struct Stopped;

impl Db {
    pub(super) fn start_scrubber(&self) {
        let Some(interval) = self.inner.opts.scrub_interval else { return };
        if self.inner.disk.is_none() {
            return;
        }
        let (tx, rx) = mpsc::channel::<()>();
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name("tidemark-scrub".into())
            .spawn(move || {
                inner.check_cut_chunk_files();
                let mut wait = interval.min(SCRUB_FIRST_DELAY);
                loop {
                    match rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    match inner.scrub_pass(inner.opts.scrub_bytes_per_sec, Some(&rx)) {
                        Ok(_) => {}
                        Err(Ok(Stopped)) => return,
                        Err(Err(e)) => tracing::error!(error = %e, "block scrub failed"),
                    }
                    wait = interval;
                }
            })
            .expect("spawning the scrub thread");
        *self.inner.scrub_stop.lock() = Some(tx);
        *self.scrubber.lock() = Some(handle);
    }

    pub(super) fn stop_scrubber(&self) {
        if let Some(tx) = self.inner.scrub_stop.lock().take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.scrubber.lock().take() {
            let _ = h.join();
        }
    }

    /// Verifies every block now, without rate limit: every chunk's
    /// CRC32-C and bounds, and the index's checksums (re-read from disk).
    /// Damaged chunks are logged at ERROR and counted; each block with
    /// damaged chunks is then rewritten without them (the original goes to
    /// `quarantine/`), and a block whose index is damaged is moved to
    /// `quarantine/` whole. Returns the damaged chunks this scrub found.
    /// The background thread does the same every
    /// [`Options::scrub_interval`](super::Options::scrub_interval).
    pub fn scrub(&self) -> Result<Vec<ChunkDamage>, Error> {
        self.inner.scrub_pass(0, None).map_err(|e| match e {
            Ok(Stopped) => Error::Closed,
            Err(e) => e,
        })
    }
}

impl Inner {
    /// One pass over every block; then repairs under the maintenance lock.
    fn scrub_pass(&self, rate: u64, stop: Option<&Receiver<()>>) -> Result<Vec<ChunkDamage>, Result<Stopped, Error>> {
        let blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        let started = Instant::now();
        let mut done: u64 = 0;
        let mut stopped = false;
        let mut found = Vec::new();
        for b in &blocks {
            let mut pace = |bytes: u64| {
                done += bytes;
                if rate == 0 || stopped {
                    return;
                }
                let due = Duration::from_secs_f64(done as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    if let Some(rx) = stop {
                        if !matches!(rx.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
                            stopped = true;
                        }
                    }
                }
            };
            if !self.has_block(b) {
                continue;
            }
            match b.verify(&mut pace) {
                Ok(d) => {
                    self.damage.chunks(&d);
                    found.extend(d);
                }
                Err(e @ Error::Block(BlockError::Corrupt { .. })) => {
                    let _g = self.maintenance.lock();
                    self.quarantine_block(b, &e.to_string(), None).map_err(Err)?;
                }
                // Deleted by compaction or retention meanwhile: nothing to check.
                Err(_) if !self.has_block(b) => {}
                Err(e) => tracing::error!(block = %b.meta().ulid, error = %e, "scrubbing a block failed"),
            }
            if stopped {
                return Err(Ok(Stopped));
            }
        }
        self.damage.scrubbed();
        tracing::info!(blocks = blocks.len(), bytes = done, damaged_chunks = found.len(), elapsed = ?started.elapsed(), "scrubbed blocks");
        let _g = self.maintenance.lock();
        self.repair_damaged_blocks().map_err(Err)?;
        Ok(found)
    }

    fn has_block(&self, b: &Block) -> bool {
        self.blocks.read().iter().any(|x| x.meta().ulid == b.meta().ulid)
    }

    /// Right after open, without rate limit but reading only indexes and
    /// file sizes: finds chunk files cut short, verifies those blocks fully
    /// and cuts the lost chunks out.
    fn check_cut_chunk_files(&self) {
        let blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        let mut any = false;
        for b in &blocks {
            match b.chunk_files_cut_short() {
                Ok(false) => {}
                Ok(true) => match b.verify(&mut |_| {}) {
                    Ok(d) => {
                        self.damage.chunks(&d);
                        any = true;
                    }
                    Err(e @ Error::Block(_)) => {
                        let _g = self.maintenance.lock();
                        if let Err(e) = self.quarantine_block(b, &e.to_string(), None) {
                            tracing::error!(error = %e, "moving a damaged block to quarantine/ failed");
                        }
                    }
                    Err(e) => tracing::error!(block = %b.meta().ulid, error = %e, "checking a block failed"),
                },
                Err(e) => tracing::error!(block = %b.meta().ulid, error = %e, "checking a block failed"),
            }
        }
        if any {
            let _g = self.maintenance.lock();
            if let Err(e) = self.repair_damaged_blocks() {
                tracing::error!(error = %e, "cutting damaged chunks out of blocks failed");
            }
        }
    }

    /// Rewrites every block with damaged chunks without them and moves the
    /// original to `quarantine/`. Caller holds the maintenance lock.
    pub(super) fn repair_damaged_blocks(&self) -> Result<(), Error> {
        let Some(disk) = &self.disk else { return Ok(()) };
        let damaged: Vec<Arc<Block>> =
            self.blocks.read().iter().filter(|b| !b.damaged_chunks().is_empty()).cloned().collect();
        for b in damaged {
            let meta = b.rewrite_without_damaged_on(&disk.fs, &disk.dir, &self.write_options())?;
            let chunks = b.damaged_chunks();
            self.damage.chunks(&chunks);
            let first = chunks.first().map(|d| d.reason.clone()).unwrap_or_default();
            let reason = format!("{} damaged chunk(s) cut out (first: {first})", chunks.len());
            if meta.stats.num_samples == 0 {
                // Nothing intact is left: no replacement block.
                super::delete_dir(&disk.dir.join(&meta.ulid))?;
                self.quarantine_block(&b, &reason, None)?;
                continue;
            }
            let fresh = Arc::new(Block::open(&disk.dir.join(&meta.ulid))?);
            {
                let mut blocks = self.blocks.write();
                blocks.retain(|x| x.meta().ulid != b.meta().ulid);
                blocks.push(fresh);
                blocks.sort_by_key(|x| (x.meta().min_time, x.meta().ulid.clone()));
            }
            tracing::error!(block = %b.meta().ulid, replacement = %meta.ulid, damaged_chunks = chunks.len(), "rewrote a block without its damaged chunks; the original is in quarantine/");
            self.move_to_quarantine(&b, reason, Some(meta.ulid))?;
        }
        Ok(())
    }

    /// Drops `b` from the block list and moves its directory to
    /// `quarantine/`. Caller holds the maintenance lock.
    pub(super) fn quarantine_block(
        &self,
        b: &Arc<Block>,
        reason: &str,
        replaced_by: Option<String>,
    ) -> Result<(), Error> {
        let present = {
            let mut blocks = self.blocks.write();
            let n = blocks.len();
            blocks.retain(|x| x.meta().ulid != b.meta().ulid);
            blocks.len() != n
        };
        if !present {
            return Ok(());
        }
        tracing::error!(block = %b.meta().ulid, reason, "block is damaged beyond its chunks; moved to quarantine/");
        self.move_to_quarantine(b, reason.to_string(), replaced_by)
    }

    fn move_to_quarantine(&self, b: &Block, reason: String, replaced_by: Option<String>) -> Result<(), Error> {
        let Some(disk) = &self.disk else { return Ok(()) };
        let q = disk.dir.join("quarantine");
        fs::create_dir_all(&q).map_err(|e| Error::io(&q, e))?;
        let mut to = q.join(&b.meta().ulid);
        if to.exists() {
            to = q.join(format!("{}-{}", b.meta().ulid, now_ms()));
        }
        // Readers still holding the block keep their mappings.
        fs::rename(b.dir(), &to).map_err(|e| Error::io(b.dir(), e))?;
        super::sync_dir(&disk.dir)?;
        self.damage.quarantined(QuarantinedBlock {
            block: b.meta().ulid.clone(),
            reason,
            moved_to: to,
            time_range: Some((b.meta().min_time, b.meta().max_time)),
            replaced_by,
            at_ms: now_ms(),
        });
        Ok(())
    }
}
