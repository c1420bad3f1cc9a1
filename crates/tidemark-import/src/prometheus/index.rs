//! Reader of a Prometheus block's `index` file, versions 2 and 3 (the two
//! are read alike; version 1, written only by Prometheus 2.0, is refused).
//!
//! We only need every series with its labels and chunk references, so the
//! reader loads the table of contents, the symbol table and the postings
//! offset table, takes the all-series postings list (the entry whose name
//! and value are both empty) and decodes each series entry it points to.
//! Every section and entry's CRC32-Castagnoli is checked. Layouts are in
//! `docs/format/prometheus_block.md`.

use super::decbuf::{crc32c, Decbuf};
use super::format::FormatError;

/// First four bytes of an index file.
pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
/// Size of the table of contents at the end of the file: six 8-byte
/// offsets and a CRC.
const TOC_LEN: usize = 6 * 8 + 4;
/// Series entries start on 16-byte boundaries; a series' id is its offset
/// divided by 16.
const SERIES_ALIGN: u64 = 16;

/// The offsets the table of contents holds (0: section absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toc {
    /// Symbol table.
    pub symbols: u64,
    /// First series entry.
    pub series: u64,
    /// First label index (unused by readers since Prometheus 2.x).
    pub label_indices: u64,
    /// Label offset table (unused).
    pub label_indices_table: u64,
    /// First postings list.
    pub postings: u64,
    /// Postings offset table.
    pub postings_table: u64,
}

/// One chunk of a series as the index lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First sample's time.
    pub mint: i64,
    /// Last sample's time.
    pub maxt: i64,
    /// Segment file number (0 for `chunks/000001`) in the upper 32 bits,
    /// byte offset in that file in the lower 32.
    pub chunk_ref: u64,
}

/// One series: its id (offset / 16, what tombstones refer to), its label
/// pairs as raw bytes (sorted by name) and its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSeries<'a> {
    /// The series id.
    pub id: u64,
    /// Label name/value pairs, in the index's order.
    pub labels: Vec<(&'a [u8], &'a [u8])>,
    /// Chunks, ordered by time.
    pub chunks: Vec<ChunkMeta>,
}

/// An index file held in memory.
#[derive(Debug)]
pub struct IndexReader<'a> {
    b: &'a [u8],
    version: u8,
    toc: Toc,
    symbols: Vec<&'a [u8]>,
    all_postings: u64,
}

fn section_at<'a>(b: &'a [u8], off: u64, what: &'static str) -> Result<&'a [u8], FormatError> {
    // len <4b> | data (len bytes) | crc <4b> over data.
    let off = usize::try_from(off).map_err(|_| FormatError::Truncated(what))?;
    let mut d = Decbuf::new(b.get(off..).ok_or(FormatError::Truncated(what))?);
    let len = d.be32().ok_or(FormatError::Truncated(what))? as usize;
    let data = d.bytes(len).ok_or(FormatError::Truncated(what))?;
    let crc = d.be32().ok_or(FormatError::Truncated(what))?;
    if crc32c(data) != crc {
        return Err(FormatError::Checksum(what));
    }
    Ok(data)
}

impl<'a> IndexReader<'a> {
    /// Parses the header, table of contents, symbols and postings offset
    /// table of the index file `b`.
    pub fn new(b: &'a [u8]) -> Result<IndexReader<'a>, FormatError> {
        let mut h = Decbuf::new(b);
        let magic = h.be32().ok_or(FormatError::Truncated("index header"))?;
        if magic != MAGIC_INDEX {
            return Err(FormatError::BadMagic { got: magic, want: MAGIC_INDEX });
        }
        let version = h.byte().ok_or(FormatError::Truncated("index header"))?;
        if version != 2 && version != 3 {
            return Err(FormatError::UnsupportedVersion { what: "index", got: version });
        }
        if b.len() < 5 + TOC_LEN {
            return Err(FormatError::Truncated("index table of contents"));
        }
        let toc_bytes = &b[b.len() - TOC_LEN..];
        let mut d = Decbuf::new(toc_bytes);
        let mut f = [0u64; 6];
        for x in &mut f {
            *x = d.be64().ok_or(FormatError::Truncated("index table of contents"))?;
        }
        let crc = d.be32().ok_or(FormatError::Truncated("index table of contents"))?;
        if crc32c(&toc_bytes[..48]) != crc {
            return Err(FormatError::Checksum("index table of contents"));
        }
        let toc = Toc {
            symbols: f[0],
            series: f[1],
            label_indices: f[2],
            label_indices_table: f[3],
            postings: f[4],
            postings_table: f[5],
        };
        let symbols = if toc.symbols == 0 { Vec::new() } else { read_symbols(b, toc.symbols)? };
        let all_postings = if toc.postings_table == 0 { 0 } else { find_all_postings(b, toc.postings_table)? };
        Ok(IndexReader { b, version, toc, symbols, all_postings })
    }

    /// The index format version (2 or 3).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The table of contents.
    pub fn toc(&self) -> Toc {
        self.toc
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> usize {
        self.symbols.len()
    }

    /// Ids of every series, in label order (the all-series postings list).
    pub fn series_ids(&self) -> Result<Vec<u64>, FormatError> {
        if self.all_postings == 0 {
            return Ok(Vec::new());
        }
        let data = section_at(self.b, self.all_postings, "postings list")?;
        let mut d = Decbuf::new(data);
        let n = d.be32().ok_or(FormatError::Truncated("postings list"))? as usize;
        if d.len() != n.saturating_mul(4) {
            return Err(FormatError::invalid(format!("postings list declares {n} entries in {} bytes", d.len())));
        }
        let mut ids = Vec::with_capacity(n);
        let mut prev = None;
        for _ in 0..n {
            let id = u64::from(d.be32().ok_or(FormatError::Truncated("postings list"))?);
            if prev.is_some_and(|p| p >= id) {
                return Err(FormatError::invalid("postings list not strictly increasing"));
            }
            prev = Some(id);
            ids.push(id);
        }
        Ok(ids)
    }

    fn symbol(&self, r: u32) -> Result<&'a [u8], FormatError> {
        self.symbols
            .get(r as usize)
            .copied()
            .ok_or_else(|| FormatError::invalid(format!("symbol reference {r} out of range")))
    }

    /// Decodes the series entry with id `id`.
    pub fn series(&self, id: u64) -> Result<IndexSeries<'a>, FormatError> {
        const W: &str = "series entry";
        let off = id.checked_mul(SERIES_ALIGN).ok_or(FormatError::Truncated(W))?;
        let off = usize::try_from(off).map_err(|_| FormatError::Truncated(W))?;
        let mut d = Decbuf::new(self.b.get(off..).ok_or(FormatError::Truncated(W))?);
        let len = d.uvarint().ok_or(FormatError::Truncated(W))?;
        let data =
            d.bytes(usize::try_from(len).map_err(|_| FormatError::Truncated(W))?).ok_or(FormatError::Truncated(W))?;
        let crc = d.be32().ok_or(FormatError::Truncated(W))?;
        if crc32c(data) != crc {
            return Err(FormatError::Checksum(W));
        }
        let mut d = Decbuf::new(data);
        let nl = d.uvarint().ok_or(FormatError::Truncated(W))?;
        // Each label takes at least two bytes: a count above that is corrupt
        // (and must not size an allocation).
        if nl > d.len() as u64 / 2 {
            return Err(FormatError::invalid(format!("series declares {nl} labels in {} bytes", d.len())));
        }
        let mut labels = Vec::with_capacity(nl as usize);
        for _ in 0..nl {
            let n = d.uvarint32().ok_or(FormatError::Truncated(W))?;
            let v = d.uvarint32().ok_or(FormatError::Truncated(W))?;
            labels.push((self.symbol(n)?, self.symbol(v)?));
        }
        let nc = d.uvarint().ok_or(FormatError::Truncated(W))?;
        if nc > d.len() as u64 / 3 {
            return Err(FormatError::invalid(format!("series declares {nc} chunks in {} bytes", d.len())));
        }
        let mut chunks = Vec::with_capacity(nc as usize);
        let bad = || FormatError::Truncated("series chunk list");
        for i in 0..nc {
            let (mint, maxt, chunk_ref) = if i == 0 {
                let mint = d.varint().ok_or_else(bad)?;
                let dt = d.uvarint().ok_or_else(bad)?;
                let r = d.uvarint().ok_or_else(bad)?;
                (mint, mint.wrapping_add(dt as i64), r)
            } else {
                let prev: &ChunkMeta = chunks.last().ok_or_else(bad)?;
                let mint = prev.maxt.wrapping_add(d.uvarint().ok_or_else(bad)? as i64);
                let maxt = mint.wrapping_add(d.uvarint().ok_or_else(bad)? as i64);
                let r = (prev.chunk_ref as i64).wrapping_add(d.varint().ok_or_else(bad)?) as u64;
                (mint, maxt, r)
            };
            if maxt < mint {
                return Err(FormatError::invalid("chunk maxt before mint"));
            }
            chunks.push(ChunkMeta { mint, maxt, chunk_ref });
        }
        if !d.is_empty() {
            return Err(FormatError::invalid(format!("{} bytes left after series entry", d.len())));
        }
        Ok(IndexSeries { id, labels, chunks })
    }
}

fn read_symbols(b: &[u8], off: u64) -> Result<Vec<&[u8]>, FormatError> {
    let data = section_at(b, off, "symbol table")?;
    let mut d = Decbuf::new(data);
    let n = d.be32().ok_or(FormatError::Truncated("symbol table"))? as usize;
    if n > d.len() {
        return Err(FormatError::invalid(format!("symbol table declares {n} symbols in {} bytes", d.len())));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(d.uvarint_bytes().ok_or(FormatError::Truncated("symbol"))?);
    }
    Ok(out)
}

/// Walks the postings offset table for the entry with empty name and value
/// (the list of all series) and returns its offset, 0 if absent.
fn find_all_postings(b: &[u8], off: u64) -> Result<u64, FormatError> {
    const W: &str = "postings offset table";
    let data = section_at(b, off, W)?;
    let mut d = Decbuf::new(data);
    let n = d.be32().ok_or(FormatError::Truncated(W))?;
    for _ in 0..n {
        let k = d.byte().ok_or(FormatError::Truncated(W))?;
        if k != 2 {
            return Err(FormatError::invalid(format!("postings offset entry with {k} keys (want 2)")));
        }
        let name = d.uvarint_bytes().ok_or(FormatError::Truncated(W))?;
        let value = d.uvarint_bytes().ok_or(FormatError::Truncated(W))?;
        let o = d.uvarint().ok_or(FormatError::Truncated(W))?;
        if name.is_empty() && value.is_empty() {
            return Ok(o);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/prometheus/testdata/prom-2.42/01M98MP02K0NQ0C47GVT901V3H/index");
        std::fs::read(p).unwrap()
    }

    #[test]
    fn reads_the_series_of_a_real_index() {
        let b = fixture();
        let ix = IndexReader::new(&b).unwrap();
        assert_eq!(ix.version(), 2);
        let ids = ix.series_ids().unwrap();
        assert_eq!(ids.len(), 3);
        let s: Vec<IndexSeries<'_>> = ids.iter().map(|&id| ix.series(id).unwrap()).collect();
        let names: Vec<(&[u8], &[u8])> = s.iter().map(|s| s.labels[0]).collect();
        assert_eq!(names[0], (&b"__name__"[..], &b"fx_requests_total"[..]));
        assert_eq!(s[1].labels[1], (&b"room"[..], &b"a"[..]));
        assert_eq!(s[2].labels[1], (&b"room"[..], &b"b"[..]));
        for x in &s {
            assert_eq!(x.chunks.len(), 1);
            assert_eq!(x.chunks[0].chunk_ref >> 32, 0, "all in 000001");
        }
        assert_eq!((s[1].chunks[0].mint, s[1].chunks[0].maxt), (1_796_600_000_000, 1_796_600_585_000));
        // Label sets come in order: what the block writer needs.
        assert!(s.windows(2).all(|w| w[0].labels < w[1].labels));
    }

    #[test]
    fn corruption_is_an_error() {
        let b = fixture();
        let ix = IndexReader::new(&b).unwrap();
        let id = ix.series_ids().unwrap()[1];
        // A flipped byte inside a series entry fails its checksum.
        let mut bad = b.clone();
        bad[id as usize * 16 + 3] ^= 0x01;
        let ix2 = IndexReader::new(&bad).unwrap();
        assert_eq!(ix2.series(id), Err(FormatError::Checksum("series entry")));
        // A flipped byte in the table of contents.
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 10] ^= 0x01;
        assert_eq!(IndexReader::new(&bad).unwrap_err(), FormatError::Checksum("index table of contents"));
        // Version 1, and not an index at all.
        let mut v1 = b.clone();
        v1[4] = 1;
        assert_eq!(IndexReader::new(&v1).unwrap_err(), FormatError::UnsupportedVersion { what: "index", got: 1 });
        assert!(matches!(IndexReader::new(b"no").unwrap_err(), FormatError::Truncated(_)));
        assert!(matches!(IndexReader::new(&[0u8; 64]).unwrap_err(), FormatError::BadMagic { .. }));
        // Every truncation fails cleanly.
        for n in 0..b.len() {
            let _ = IndexReader::new(&b[..n]).and_then(|ix| ix.series_ids());
        }
        // An id past the end.
        assert!(ix.series(u64::MAX).is_err());
        assert!(ix.series(b.len() as u64).is_err());
    }
}
