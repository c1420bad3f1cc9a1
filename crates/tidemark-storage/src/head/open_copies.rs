//! The open chunks a select copies, gathered into buffers shared by runs of
//! series.
//!
//! A select copies each selected series' open chunk (the appenders keep
//! writing to the original). Copied one allocation per series, the copies
//! cost a `malloc` in the select threads and a `free` in whichever
//! evaluation thread drops the series, another thread's memory: at 64k
//! series the allocator's work (and the consolidation of the freed
//! fragments) was a tenth of an instant `rate` query. Here the select
//! appends the bytes of a run of series' open chunks to one growing vector
//! and, at the end of the run, freezes it into one reference-counted buffer
//! that every chunk of the run points into ([`ChunkBytes::Shared`]): one
//! allocation and one free per run. The buffer lives while any chunk of the
//! run is referenced (a query holds all of them until it has read them).

use std::sync::Arc;

use crate::chunkenc::{Chunk, ChunkBytes, ChunkSeries, Encoding};

/// Bytes gathered after which a run's buffer is frozen early (besides at
/// the end of a run of series): a run's buffer stays below glibc's 64 KiB,
/// the size at which freeing a block makes the allocator consolidate every
/// small free block it holds (the query's threads free many).
pub(crate) const MAX_RUN_BYTES: usize = 32 << 10;

/// Where [`super::series::MemSeries::chunks_in`] put the copy of an open
/// chunk in the run's bytes, and the chunk's time range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenCopy {
    /// Timestamp of the chunk's first sample.
    pub(crate) mint: i64,
    /// Timestamp of its last sample.
    pub(crate) maxt: i64,
    /// Offset of its bytes in the run's bytes.
    pub(crate) start: u32,
    /// Length of its bytes.
    pub(crate) len: u32,
}

/// The open-chunk copies of the current run: their bytes, and for each the
/// series (an index into the select's output) whose chunk list it ends.
#[derive(Debug, Default)]
pub(crate) struct OpenCopies {
    /// The copied bytes of the run, one chunk after another.
    bytes: Vec<u8>,
    /// (index of the series in the output, the copy) for each copy.
    waiting: Vec<(usize, OpenCopy)>,
}

impl OpenCopies {
    /// Where [`super::series::MemSeries::chunks_in`] appends the bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Records that `copy` (whose bytes were just appended) ends the chunk
    /// list of the series at `index` in the output.
    pub(crate) fn wait(&mut self, index: usize, copy: OpenCopy) {
        self.waiting.push((index, copy));
    }

    /// Whether the run's buffer should be frozen now (it has grown large).
    pub(crate) fn full(&self) -> bool {
        self.bytes.len() >= MAX_RUN_BYTES
    }

    /// Freezes the run's bytes into one shared buffer and pushes each
    /// waiting copy onto the end of its series' chunk list in `out`. The
    /// byte vector is kept (emptied) for the next run.
    pub(crate) fn freeze_into(&mut self, out: &mut [ChunkSeries]) {
        if self.waiting.is_empty() {
            self.bytes.clear();
            return;
        }
        let buf: Arc<[u8]> = Arc::from(&self.bytes[..]);
        self.bytes.clear();
        for (index, c) in self.waiting.drain(..) {
            // Every index was that of a series pushed before its copy was
            // recorded; one that is not there is skipped, never a panic.
            let Some(series) = out.get_mut(index) else { continue };
            series.chunks.push(Chunk {
                mint: c.mint,
                maxt: c.maxt,
                encoding: Encoding::Xor,
                bytes: ChunkBytes::Shared { buf: Arc::clone(&buf), start: c.start, len: c.len },
                timestamps: None,
                summary: None,
            });
        }
    }
}
