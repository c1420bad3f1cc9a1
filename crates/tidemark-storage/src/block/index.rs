//! The block index: symbols, series with chunk references, and postings.
//!
//! Layout (see `docs/format/index.md`): an 8-byte header (magic `TMIX`,
//! version byte, three zero bytes), six sections (five in version 1), and a
//! fixed-size table of contents at the end giving each section's offset,
//! length and CRC32-C.
//!
//! | section        | contents                                                        |
//! |----------------|-----------------------------------------------------------------|
//! | symbols        | every label name and value, sorted, unique; id = position       |
//! | series         | per series, in label order: labels as symbol ids + chunk metas  |
//! | label names    | per label name: its range of rows in the postings table         |
//! | postings table | fixed 20-byte rows `(name id, value id, start, count)`, sorted  |
//! | postings       | series ids (`u32le`), one sorted run per postings-table row     |
//! | timestamps     | (v2) distinct timestamp columns shared by sealed chunks         |
//!
//! Because symbol ids are assigned in sorted string order, comparing ids
//! compares strings: the postings table is sorted by `(name, value)` and a
//! label's values are one contiguous, sorted run of rows found by binary
//! search. The reader decodes lazily from the mapped file; everything it
//! reads is bounds-checked, so arbitrary bytes give an error, never a panic.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::enc::{put_u32, put_u64, put_uvarint, put_varint, u32_at, u64_at, Dec, DecResult};
use crate::postings::PostingsIndex;
use crate::Labels;

/// Magic number at the start of the index file (`"TMIX"`).
pub const INDEX_MAGIC: [u8; 4] = *b"TMIX";
/// Current index format version (the one the writer produces): version 3's
/// layout, with chunk references that may name a member of a chunk group
/// (see [`crate::block::group`]) stored packed (`record << 4 | slot`).
pub const INDEX_VERSION: u8 = 4;
/// Index format version 3, still readable: series entries in groups of
/// [`SERIES_GROUP`], each coded against the one before it, and postings
/// runs as delta varints; chunk references are plain `file << 32 | offset`.
pub const INDEX_VERSION_3: u8 = 3;
/// Index format version 2, still readable: one `u64` offset per series,
/// every series entry self-contained, postings as `u32le` ids.
pub const INDEX_VERSION_2: u8 = 2;
/// The first index format version, still readable: no timestamps section,
/// no `ts` field in chunk metas.
pub const INDEX_VERSION_1: u8 = 1;
/// Series entries per group in a version 3 index: one offset per group, and
/// an entry is coded against the entry before it in its group.
pub const SERIES_GROUP: usize = 16;
/// Bytes of the index header.
pub const INDEX_HEADER_LEN: usize = 8;
/// Number of sections listed in the table of contents (version 2).
pub const NUM_SECTIONS: usize = 6;
/// Bytes of the table of contents (version 2): per section
/// `offset:u64 len:u64 crc:u32`, then a CRC32-C of those bytes.
pub const TOC_LEN: usize = NUM_SECTIONS * 20 + 4;

/// Sections of an index of the given version, if the version is known.
fn sections_of(version: u8) -> Option<usize> {
    match version {
        INDEX_VERSION_1 => Some(5),
        INDEX_VERSION_2 | INDEX_VERSION_3 | INDEX_VERSION => Some(NUM_SECTIONS),
        _ => None,
    }
}

const SYMBOLS: usize = 0;
const SERIES: usize = 1;
const LABEL_NAMES: usize = 2;
const POSTINGS_TABLE: usize = 3;
const POSTINGS: usize = 4;
const TIMESTAMPS: usize = 5;
const SECTION_NAMES: [&str; NUM_SECTIONS] =
    ["symbols", "series", "label names", "postings table", "postings", "timestamps"];
const ROW_LEN: usize = 20;
const LABEL_NAME_ROW_LEN: usize = 12;

/// A chunk reference as version 4 stores it: the record's reference
/// shifted up by 4 bits, the group slot (0: a chunk record of its own,
/// `k ≥ 1`: member `k − 1` of a group record) in the low 4 bits, so the
/// members of one group differ by 1 and delta-code in one byte.
fn pack_ref(r: u64) -> u64 {
    (super::group::record_of(r) << 4) | u64::from(super::group::slot_of(r))
}

/// The in-memory reference of a packed version 4 reference. References
/// whose record part does not fit 60 bits cannot name a real chunk file;
/// they keep their low bits and fail at read time.
fn unpack_ref(p: u64) -> u64 {
    (p >> 4) | ((p & 0xf) << super::group::SLOT_SHIFT)
}

/// Where one chunk of a series lives and what time it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Timestamp of the chunk's first sample.
    pub mint: i64,
    /// Timestamp of the chunk's last sample.
    pub maxt: i64,
    /// `file_number << 32 | offset` in the block's chunk files, plus, for a
    /// member of a chunk group, its slot + 1 in bits 60–63 (see
    /// [`crate::block::group`]).
    pub chunk_ref: u64,
    /// The shared timestamp column the (sealed) chunk was written against,
    /// as an index into the timestamps section; `None` when the chunk holds
    /// its own timestamps.
    pub shared_ts: Option<u32>,
}

/// Serialises an index (current version) for `series`, which must be sorted
/// by labels, unique, with non-empty label sets and chunk metas sorted and
/// non-overlapping. `columns` are the shared timestamp columns, each encoded
/// with [`crate::chunkenc::sealed::encode_timestamps`]; every
/// [`ChunkMeta::shared_ts`] must index into it.
pub fn write_index(series: &[(Labels, Vec<ChunkMeta>)], columns: &[Vec<u8>]) -> DecResult<Vec<u8>> {
    write_index_version(series, columns, INDEX_VERSION)
}

/// [`write_index`] in an older version (2, 3 or 4), for tests that check old
/// indexes keep reading.
#[doc(hidden)]
pub fn write_index_version(
    series: &[(Labels, Vec<ChunkMeta>)],
    columns: &[Vec<u8>],
    version: u8,
) -> DecResult<Vec<u8>> {
    if version != INDEX_VERSION && version != INDEX_VERSION_3 && version != INDEX_VERSION_2 {
        return Err(format!("cannot write index version {version}"));
    }
    let v3 = version >= INDEX_VERSION_3;
    let v4 = version == INDEX_VERSION;
    // Version 4 stores references packed; earlier versions cannot name a
    // group member.
    let pack = |r: u64| -> DecResult<u64> {
        if version == INDEX_VERSION {
            Ok(pack_ref(r))
        } else if super::group::slot_of(r) != 0 {
            Err(format!("index version {version} cannot reference chunk group members"))
        } else {
            Ok(r)
        }
    };
    let num_series = u32::try_from(series.len()).map_err(|_| "more than 2^32-1 series".to_string())?;
    // Symbols, sorted; ids follow the order.
    let mut set: BTreeSet<&str> = BTreeSet::new();
    for (l, _) in series {
        for p in l {
            set.insert(p.name);
            set.insert(p.value);
        }
    }
    let syms: Vec<&str> = set.into_iter().collect();
    let nsyms = u32::try_from(syms.len()).map_err(|_| "more than 2^32-1 symbols".to_string())?;
    let ids: HashMap<&str, u32> = syms.iter().enumerate().map(|(i, s)| (*s, i as u32)).collect();

    let mut out = Vec::new();
    out.extend_from_slice(&INDEX_MAGIC);
    out.extend_from_slice(&[version, 0, 0, 0]);
    let mut toc = [(0u64, 0u64); NUM_SECTIONS];

    // Symbols: count, u32 offsets into the string data, string data.
    let start = out.len();
    put_u32(&mut out, nsyms);
    let mut off = 0u64;
    for s in &syms {
        put_u32(&mut out, u32::try_from(off).map_err(|_| "symbol data exceeds 4 GiB".to_string())?);
        off += s.len() as u64;
    }
    for s in &syms {
        out.extend_from_slice(s.as_bytes());
    }
    toc[SYMBOLS] = (start as u64, (out.len() - start) as u64);

    // Series: count, u64 offsets (per series in v2, per group in v3), entries.
    let start = out.len();
    put_u32(&mut out, num_series);
    let mut entries = Vec::new();
    let mut postings: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
    let mut prev = EntryBase::default();
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (sid, (labels, chunks)) in series.iter().enumerate() {
        let group_start = sid.is_multiple_of(SERIES_GROUP);
        if !v3 || group_start {
            put_u64(&mut out, entries.len() as u64);
        }
        pairs.clear();
        pairs.extend(labels.iter().map(|p| (ids[p.name], ids[p.value])));
        for &(n, v) in &pairs {
            postings.entry((n, v)).or_default().push(sid as u32);
        }
        let ts_of = |c: &ChunkMeta| match c.shared_ts {
            None => Ok(0),
            Some(k) if (k as usize) < columns.len() => Ok(u64::from(k) + 1),
            Some(k) => Err(format!("chunk meta names timestamp column {k} of {}", columns.len())),
        };
        if v3 {
            if group_start {
                prev = EntryBase::default();
            }
            let shared = prev.pairs.iter().zip(&pairs).take_while(|(a, b)| a == b).count();
            put_uvarint(&mut entries, shared as u64);
            put_uvarint(&mut entries, (pairs.len() - shared) as u64);
            for &(n, v) in &pairs[shared..] {
                put_uvarint(&mut entries, u64::from(n));
                put_uvarint(&mut entries, u64::from(v));
            }
            put_uvarint(&mut entries, chunks.len() as u64);
            let mut prev_maxt = 0i64;
            for (i, c) in chunks.iter().enumerate() {
                if i == 0 {
                    put_varint(&mut entries, c.mint.wrapping_sub(prev.mint));
                    prev.mint = c.mint;
                } else {
                    put_uvarint(&mut entries, c.mint.wrapping_sub(prev_maxt) as u64);
                }
                let span = c.maxt.wrapping_sub(c.mint);
                if v4 {
                    put_varint(&mut entries, span.wrapping_sub(prev.span));
                    prev.span = span;
                } else {
                    put_uvarint(&mut entries, span as u64);
                }
                let r = pack(c.chunk_ref)?;
                put_varint(&mut entries, r.wrapping_sub(prev.chunk_ref) as i64);
                prev.chunk_ref = r;
                let ts = ts_of(c)?;
                if v4 {
                    put_varint(&mut entries, ts.wrapping_sub(prev.ts) as i64);
                    prev.ts = ts;
                } else {
                    put_uvarint(&mut entries, ts);
                }
                prev_maxt = c.maxt;
            }
            std::mem::swap(&mut prev.pairs, &mut pairs);
        } else {
            put_uvarint(&mut entries, pairs.len() as u64);
            for &(n, v) in &pairs {
                put_uvarint(&mut entries, u64::from(n));
                put_uvarint(&mut entries, u64::from(v));
            }
            put_uvarint(&mut entries, chunks.len() as u64);
            let mut prev_maxt = 0i64;
            for (i, c) in chunks.iter().enumerate() {
                if i == 0 {
                    put_varint(&mut entries, c.mint);
                } else {
                    put_uvarint(&mut entries, c.mint.wrapping_sub(prev_maxt) as u64);
                }
                put_uvarint(&mut entries, c.maxt.wrapping_sub(c.mint) as u64);
                put_uvarint(&mut entries, pack(c.chunk_ref)?);
                put_uvarint(&mut entries, ts_of(c)?);
                prev_maxt = c.maxt;
            }
        }
    }
    out.extend_from_slice(&entries);
    toc[SERIES] = (start as u64, (out.len() - start) as u64);

    // Label names: count, rows (name id, first postings-table row, row count).
    let start = out.len();
    let mut names: Vec<(u32, u32, u32)> = Vec::new();
    for (row, &(n, _)) in postings.keys().enumerate() {
        match names.last_mut() {
            Some(last) if last.0 == n => last.2 += 1,
            _ => names.push((n, row as u32, 1)),
        }
    }
    put_u32(&mut out, names.len() as u32);
    for (n, first, count) in names {
        put_u32(&mut out, n);
        put_u32(&mut out, first);
        put_u32(&mut out, count);
    }
    toc[LABEL_NAMES] = (start as u64, (out.len() - start) as u64);

    // Postings: the id runs, as `u32le` ids (v2) or delta uvarints (v3).
    let mut runs = Vec::new();
    let mut firsts = Vec::with_capacity(postings.len());
    for ids in postings.values() {
        if v3 {
            firsts.push(runs.len() as u64);
            let mut prev_id = 0u32;
            for (k, &id) in ids.iter().enumerate() {
                put_uvarint(&mut runs, u64::from(if k == 0 { id } else { id - prev_id }));
                prev_id = id;
            }
        } else {
            firsts.push((runs.len() / 4) as u64);
            for &id in ids {
                put_u32(&mut runs, id);
            }
        }
    }

    // Postings table: count, rows (name id, value id, first, id count);
    // `first` counts ids (v2) or bytes (v3) into the postings section.
    let start = out.len();
    put_u32(&mut out, u32::try_from(postings.len()).map_err(|_| "too many label pairs".to_string())?);
    for ((&(n, v), ids), first) in postings.iter().zip(firsts) {
        put_u32(&mut out, n);
        put_u32(&mut out, v);
        put_u64(&mut out, first);
        put_u32(&mut out, ids.len() as u32);
    }
    toc[POSTINGS_TABLE] = (start as u64, (out.len() - start) as u64);

    let start = out.len();
    out.extend_from_slice(&runs);
    toc[POSTINGS] = (start as u64, (out.len() - start) as u64);

    // Timestamps: count, u64 offsets into the column data, columns.
    let start = out.len();
    put_u32(&mut out, u32::try_from(columns.len()).map_err(|_| "too many timestamp columns".to_string())?);
    let mut off = 0u64;
    for c in columns {
        put_u64(&mut out, off);
        off += c.len() as u64;
    }
    for c in columns {
        out.extend_from_slice(c);
    }
    toc[TIMESTAMPS] = (start as u64, (out.len() - start) as u64);

    let toc_start = out.len();
    for (off, len) in toc {
        let crc = crc32c::crc32c(&out[off as usize..(off + len) as usize]);
        put_u64(&mut out, off);
        put_u64(&mut out, len);
        put_u32(&mut out, crc);
    }
    let crc = crc32c::crc32c(&out[toc_start..]);
    put_u32(&mut out, crc);
    Ok(out)
}

/// What a version 3 series entry is coded against: the previous entry of
/// its group (all zero at the start of a group).
#[derive(Debug, Default, Clone)]
struct EntryBase {
    /// The previous entry's label pairs as symbol ids.
    pairs: Vec<(u32, u32)>,
    /// The previous entry's first chunk's `mint`.
    mint: i64,
    /// The last chunk reference written.
    chunk_ref: u64,
    /// The last chunk's `maxt − mint` (version 4).
    span: i64,
    /// The last chunk's `ts` field (version 4).
    ts: u64,
}

/// Recomputes every section CRC and the TOC CRC of index bytes in place,
/// for sections whose TOC entry is in bounds. Fuzzers and tests use it to
/// get damaged bytes past the checksums into the structural checks.
#[doc(hidden)]
pub fn repair_checksums(bytes: &mut [u8]) {
    let Some(nsec) = bytes.get(4).and_then(|&v| sections_of(v)) else { return };
    let toc_len = nsec * 20 + 4;
    if bytes.len() < toc_len {
        return;
    }
    let toc_start = bytes.len() - toc_len;
    for i in 0..nsec {
        let at = toc_start + i * 20;
        let (Ok(off), Ok(len)) = (u64_at(bytes, at), u64_at(bytes, at + 8)) else { return };
        let Some(end) = off.checked_add(len).filter(|&e| e <= toc_start as u64) else { continue };
        let crc = crc32c::crc32c(&bytes[off as usize..end as usize]);
        bytes[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32c::crc32c(&bytes[toc_start..bytes.len() - 4]);
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// Runs every lookup an index supports; returns the first error. For fuzzing
/// and tests: whatever the bytes, this must not panic.
#[doc(hidden)]
pub fn exercise<B: AsRef<[u8]>>(ix: &IndexReader<B>) -> DecResult<()> {
    let names = ix.label_names()?;
    let mut chunks = Vec::new();
    for n in names.iter().take(16) {
        for v in ix.label_values(n)?.iter().take(16) {
            for id in ix.postings(n, v)? {
                ix.series(id, &mut chunks)?;
            }
        }
    }
    for id in 0..ix.num_series().min(64) {
        ix.series(id, &mut chunks)?;
    }
    let mut cursor = ix.cursor();
    for id in (0..ix.num_series().min(64)).chain((0..ix.num_series().min(40)).rev().step_by(3)) {
        cursor.series(id, &mut chunks)?;
    }
    let lookup = ix.lookup();
    let ms = [
        crate::Matcher::new(crate::MatchOp::Regex, "__name__", ".+").expect("valid regex"),
        crate::Matcher::new(crate::MatchOp::NotEqual, "job", "x").expect("valid matcher"),
    ];
    for id in crate::postings::postings_for_matchers(&lookup, &ms) {
        ix.series(id, &mut chunks)?;
    }
    lookup.finish()?;
    for i in 0..ix.num_timestamp_columns().min(64) {
        ix.timestamp_column(i)?;
    }
    Ok(())
}

/// A section's byte range in the index.
#[derive(Debug, Clone, Copy, Default)]
struct Range {
    start: usize,
    end: usize,
}

/// Reads an index from any byte container (a mapped file in a block).
///
/// `open` validates the header, the table of contents, every section's
/// checksum, and the structure of the symbol and postings tables; series
/// entries and postings runs are decoded and checked on access.
pub struct IndexReader<B> {
    bytes: B,
    num_syms: usize,
    sym_offsets: usize,
    sym_data: Range,
    num_series: u32,
    series_offsets: usize,
    series_data: Range,
    num_names: usize,
    names: usize,
    num_rows: usize,
    rows: usize,
    postings: Range,
    version: u8,
    num_cols: u32,
    col_offsets: usize,
    col_data: Range,
}

impl<B: AsRef<[u8]>> IndexReader<B> {
    /// Validates and wraps index bytes.
    pub fn open(bytes: B) -> DecResult<IndexReader<B>> {
        let b = bytes.as_ref();
        if b.len() < INDEX_HEADER_LEN {
            return Err(format!("index of {} bytes is shorter than its header", b.len()));
        }
        if b[..4] != INDEX_MAGIC {
            return Err("bad index magic".into());
        }
        let version = b[4];
        let nsec = match sections_of(version) {
            Some(n) if b[5..8] == [0, 0, 0] => n,
            _ => return Err(format!("unsupported index version {}", b[4])),
        };
        let toc_len = nsec * 20 + 4;
        if b.len() < INDEX_HEADER_LEN + toc_len {
            return Err(format!("index of {} bytes is shorter than header and table of contents", b.len()));
        }
        let toc_start = b.len() - toc_len;
        let toc_crc = u32_at(b, b.len() - 4)?;
        if crc32c::crc32c(&b[toc_start..b.len() - 4]) != toc_crc {
            return Err("index table of contents checksum mismatch".into());
        }
        let mut sec = [Range::default(); NUM_SECTIONS];
        let mut prev_end = INDEX_HEADER_LEN;
        for (i, s) in sec.iter_mut().enumerate().take(nsec) {
            let at = toc_start + i * 20;
            let off = u64_at(b, at)?;
            let len = u64_at(b, at + 8)?;
            let crc = u32_at(b, at + 16)?;
            let end = off.checked_add(len).filter(|&e| e <= toc_start as u64);
            // Sections are contiguous and in order, so no byte goes unchecked.
            let Some(end) = end.filter(|_| off == prev_end as u64) else {
                return Err(format!("index section {} at [{off}, +{len}) is out of place", SECTION_NAMES[i]));
            };
            *s = Range { start: off as usize, end: end as usize };
            if crc32c::crc32c(&b[s.start..s.end]) != crc {
                return Err(format!("index section {} checksum mismatch", SECTION_NAMES[i]));
            }
            prev_end = s.end;
        }
        if prev_end != toc_start {
            return Err("index has bytes between its last section and the table of contents".into());
        }

        // Symbols.
        let s = sec[SYMBOLS];
        let num_syms = u32_at(&b[..s.end], s.start)? as usize;
        let sym_offsets = s.start + 4;
        let data_start = num_syms
            .checked_mul(4)
            .and_then(|n| n.checked_add(sym_offsets))
            .filter(|&e| e <= s.end)
            .ok_or("symbol offsets exceed their section")?;
        let sym_data = Range { start: data_start, end: s.end };
        let mut r = IndexReader {
            bytes,
            num_syms,
            sym_offsets,
            sym_data,
            num_series: 0,
            series_offsets: 0,
            series_data: Range::default(),
            num_names: 0,
            names: 0,
            num_rows: 0,
            rows: 0,
            postings: sec[POSTINGS],
            version,
            num_cols: 0,
            col_offsets: 0,
            col_data: Range::default(),
        };
        let mut prev: Option<&str> = None;
        for id in 0..num_syms as u32 {
            let cur = r.symbol(id)?;
            if prev.is_some_and(|p| p >= cur) {
                return Err(format!("symbols not sorted and unique at id {id}"));
            }
            prev = Some(cur);
        }

        // Series.
        let b = r.bytes.as_ref();
        let s = sec[SERIES];
        let num_series = u32_at(&b[..s.end], s.start)?;
        let series_offsets = s.start + 4;
        let num_offsets =
            if version >= INDEX_VERSION_3 { (num_series as usize).div_ceil(SERIES_GROUP) } else { num_series as usize };
        let data_start = num_offsets
            .checked_mul(8)
            .and_then(|n| n.checked_add(series_offsets))
            .filter(|&e| e <= s.end)
            .ok_or("series offsets exceed their section")?;
        let series_data = Range { start: data_start, end: s.end };
        if version >= INDEX_VERSION_3 {
            // Group offsets start at 0, never decrease and stay in the data.
            let data_len = (s.end - data_start) as u64;
            let mut prev = 0u64;
            for g in 0..num_offsets {
                let off = u64_at(b, series_offsets + g * 8)?;
                if off < prev || off > data_len || (g == 0 && off != 0) {
                    return Err(format!("series group {g} has an invalid offset {off}"));
                }
                prev = off;
            }
        }

        // Postings table.
        let s = sec[POSTINGS_TABLE];
        let num_rows = u32_at(&b[..s.end], s.start)? as usize;
        let rows = s.start + 4;
        if num_rows.checked_mul(ROW_LEN).and_then(|n| n.checked_add(rows)) != Some(s.end) {
            return Err("postings table length does not match its row count".into());
        }
        // Runs are back to back, so together they cover the postings
        // section exactly: v2 counts `first` in ids, v3 in bytes (a v3 run
        // of `count` ids takes at least `count` bytes; its exact end is the
        // next run's start, checked when the run is decoded).
        let p = sec[POSTINGS];
        let v3 = version >= INDEX_VERSION_3;
        if !v3 && (p.end - p.start) % 4 != 0 {
            return Err("postings section is not a whole number of ids".into());
        }
        let total = if v3 { (p.end - p.start) as u64 } else { ((p.end - p.start) / 4) as u64 };
        let mut prev_key: Option<(u32, u32)> = None;
        let mut next_start = 0u64;
        for i in 0..num_rows {
            let at = rows + i * ROW_LEN;
            let key = (u32_at(b, at)?, u32_at(b, at + 4)?);
            let (first, count) = (u64_at(b, at + 8)?, u64::from(u32_at(b, at + 16)?));
            if key.0 as usize >= num_syms || key.1 as usize >= num_syms {
                return Err(format!("postings table row {i} names a missing symbol"));
            }
            if prev_key.is_some_and(|p| p >= key) {
                return Err(format!("postings table not sorted at row {i}"));
            }
            let placed = if v3 { first >= next_start && (i > 0 || first == 0) } else { first == next_start };
            if !placed || count == 0 {
                return Err(format!("postings table row {i} has a misplaced or empty run"));
            }
            next_start = first.checked_add(count).ok_or("postings run overflows")?;
            prev_key = Some(key);
        }
        if (v3 && next_start > total) || (!v3 && next_start != total) || (num_rows == 0 && total != 0) {
            return Err("postings runs do not cover the postings section".into());
        }

        // Label names.
        let s = sec[LABEL_NAMES];
        let num_names = u32_at(&b[..s.end], s.start)? as usize;
        let names = s.start + 4;
        if num_names.checked_mul(LABEL_NAME_ROW_LEN).and_then(|n| n.checked_add(names)) != Some(s.end) {
            return Err("label names section length does not match its count".into());
        }
        let mut next_row = 0usize;
        for i in 0..num_names {
            let at = names + i * LABEL_NAME_ROW_LEN;
            let (name, first, count) = (u32_at(b, at)?, u32_at(b, at + 4)? as usize, u32_at(b, at + 8)? as usize);
            if first != next_row || count == 0 || first + count > num_rows {
                return Err(format!("label name {i} has a misplaced row range"));
            }
            if u32_at(b, rows + first * ROW_LEN)? != name || u32_at(b, rows + (first + count - 1) * ROW_LEN)? != name {
                return Err(format!("label name {i} does not match its postings table rows"));
            }
            next_row = first + count;
        }
        if next_row != num_rows {
            return Err("label names do not cover the postings table".into());
        }

        // Timestamp columns (version 2): offsets non-decreasing, in bounds.
        if version >= INDEX_VERSION_2 {
            let s = sec[TIMESTAMPS];
            let num_cols = u32_at(&b[..s.end], s.start)?;
            let col_offsets = s.start + 4;
            let data_start = (num_cols as usize)
                .checked_mul(8)
                .and_then(|n| n.checked_add(col_offsets))
                .filter(|&e| e <= s.end)
                .ok_or("timestamp column offsets exceed their section")?;
            let data_len = (s.end - data_start) as u64;
            let mut prev = 0u64;
            for i in 0..num_cols as usize {
                let off = u64_at(b, col_offsets + i * 8)?;
                if off < prev || off > data_len {
                    return Err(format!("timestamp column {i} has an invalid offset {off}"));
                }
                prev = off;
            }
            r.num_cols = num_cols;
            r.col_offsets = col_offsets;
            r.col_data = Range { start: data_start, end: s.end };
        }

        r.num_series = num_series;
        r.series_offsets = series_offsets;
        r.series_data = series_data;
        r.num_rows = num_rows;
        r.rows = rows;
        r.num_names = num_names;
        r.names = names;
        Ok(r)
    }

    /// Number of series in the index.
    pub fn num_series(&self) -> u32 {
        self.num_series
    }

    /// The index format version (1, 2 or 3).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Number of shared timestamp columns (0 for a version 1 index).
    pub fn num_timestamp_columns(&self) -> u32 {
        self.num_cols
    }

    /// The encoded bytes of shared timestamp column `i` (decode them with
    /// [`crate::chunkenc::sealed::decode_timestamps`]).
    pub fn timestamp_column(&self, i: u32) -> DecResult<&[u8]> {
        if i >= self.num_cols {
            return Err(format!("timestamp column {i} out of range ({} columns)", self.num_cols));
        }
        let b = self.bytes.as_ref();
        let i = i as usize;
        let data_len = (self.col_data.end - self.col_data.start) as u64;
        let start = u64_at(b, self.col_offsets + i * 8)?;
        let end = if i + 1 < self.num_cols as usize { u64_at(b, self.col_offsets + (i + 1) * 8)? } else { data_len };
        if start > end || end > data_len {
            return Err(format!("timestamp column {i} has invalid bounds [{start}, {end})"));
        }
        Ok(&b[self.col_data.start + start as usize..self.col_data.start + end as usize])
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> usize {
        self.num_syms
    }

    /// The symbol with id `id`.
    pub fn symbol(&self, id: u32) -> DecResult<&str> {
        let b = self.bytes.as_ref();
        let id = id as usize;
        if id >= self.num_syms {
            return Err(format!("symbol id {id} out of range ({} symbols)", self.num_syms));
        }
        let data_len = self.sym_data.end - self.sym_data.start;
        let start = u32_at(b, self.sym_offsets + id * 4)? as usize;
        let end = if id + 1 < self.num_syms { u32_at(b, self.sym_offsets + (id + 1) * 4)? as usize } else { data_len };
        if start > end || end > data_len {
            return Err(format!("symbol {id} has invalid bounds [{start}, {end})"));
        }
        std::str::from_utf8(&b[self.sym_data.start + start..self.sym_data.start + end])
            .map_err(|_| format!("symbol {id} is not UTF-8"))
    }

    /// The id of symbol `s`, if present (binary search; ids are in string order).
    pub fn symbol_id(&self, s: &str) -> DecResult<Option<u32>> {
        let (mut lo, mut hi) = (0u32, self.num_syms as u32);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.symbol(mid)?.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(mid)),
            }
        }
        Ok(None)
    }

    fn row(&self, i: usize) -> DecResult<(u32, u32, u64, u32)> {
        let b = self.bytes.as_ref();
        let at = self.rows + i * ROW_LEN;
        Ok((u32_at(b, at)?, u32_at(b, at + 4)?, u64_at(b, at + 8)?, u32_at(b, at + 16)?))
    }

    /// The postings-table rows of label name `name_id`: `[first, end)`.
    fn rows_of(&self, name_id: u32) -> DecResult<Option<(usize, usize)>> {
        let b = self.bytes.as_ref();
        let (mut lo, mut hi) = (0usize, self.num_names);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = self.names + mid * LABEL_NAME_ROW_LEN;
            match u32_at(b, at)?.cmp(&name_id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let first = u32_at(b, at + 4)? as usize;
                    return Ok(Some((first, first + u32_at(b, at + 8)? as usize)));
                }
            }
        }
        Ok(None)
    }

    /// Every label name, sorted.
    pub fn label_names(&self) -> DecResult<Vec<String>> {
        let b = self.bytes.as_ref();
        (0..self.num_names)
            .map(|i| self.symbol(u32_at(b, self.names + i * LABEL_NAME_ROW_LEN)?).map(str::to_string))
            .collect()
    }

    /// Every value of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> DecResult<Vec<String>> {
        let Some(nid) = self.symbol_id(name)? else { return Ok(Vec::new()) };
        let Some((first, end)) = self.rows_of(nid)? else { return Ok(Vec::new()) };
        (first..end).map(|i| self.symbol(self.row(i)?.1).map(str::to_string)).collect()
    }

    /// Sorted ids of the series with `name="value"`.
    pub fn postings(&self, name: &str, value: &str) -> DecResult<Vec<u32>> {
        let (Some(nid), Some(vid)) = (self.symbol_id(name)?, self.symbol_id(value)?) else { return Ok(Vec::new()) };
        let Some((mut lo, mut hi)) = self.rows_of(nid)? else { return Ok(Vec::new()) };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (_, v, first, count) = self.row(mid)?;
            match v.cmp(&vid) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.run(mid, first, count),
            }
        }
        Ok(Vec::new())
    }

    /// Decodes the postings run of table row `row`, which starts at `first`
    /// and holds `count` ids.
    fn run(&self, row: usize, first: u64, count: u32) -> DecResult<Vec<u32>> {
        let b = self.bytes.as_ref();
        let mut out = Vec::with_capacity(count as usize);
        if self.version >= INDEX_VERSION_3 {
            // The run ends where the next one starts (or with the section).
            let end = if row + 1 < self.num_rows {
                self.row(row + 1)?.2
            } else {
                (self.postings.end - self.postings.start) as u64
            };
            let bytes = usize::try_from(first)
                .ok()
                .zip(usize::try_from(end).ok())
                .filter(|&(f, e)| f <= e && self.postings.start + e <= self.postings.end)
                .map(|(f, e)| &b[self.postings.start + f..self.postings.start + e])
                .ok_or("postings run exceeds its section")?;
            let mut d = Dec::new(bytes);
            let mut id = 0u32;
            for k in 0..count {
                let v = d.uvarint32()?;
                id = if k == 0 {
                    v
                } else {
                    id.checked_add(v).filter(|_| v > 0).ok_or("postings run holds unsorted series ids")?
                };
                if id >= self.num_series {
                    return Err(format!("postings run holds invalid series id {id}"));
                }
                out.push(id);
            }
            if d.remaining() != 0 {
                return Err(format!("postings run of row {row} has {} trailing bytes", d.remaining()));
            }
            return Ok(out);
        }
        let start = usize::try_from(first)
            .ok()
            .and_then(|f| f.checked_mul(4))
            .and_then(|f| f.checked_add(self.postings.start))
            .ok_or("postings run offset overflows")?;
        let end = start
            .checked_add(count as usize * 4)
            .filter(|&e| e <= self.postings.end)
            .ok_or("postings run exceeds its section")?;
        for c in b[start..end].chunks_exact(4) {
            let id = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if id >= self.num_series || out.last().is_some_and(|&p| p >= id) {
                return Err(format!("postings run holds invalid or unsorted series id {id}"));
            }
            out.push(id);
        }
        Ok(out)
    }

    /// The labels and chunk metas of series `id`. `chunks` is cleared and
    /// filled. Reading many series in increasing id order is cheaper through
    /// one [`SeriesCursor`] ([`IndexReader::cursor`]).
    pub fn series(&self, id: u32, chunks: &mut Vec<ChunkMeta>) -> DecResult<Labels> {
        self.cursor().series(id, chunks)
    }

    /// A cursor for reading series entries, cheapest in increasing id order.
    pub fn cursor(&self) -> SeriesCursor<'_, B> {
        SeriesCursor { ix: self, next_id: 0, pos: 0, group_end: 0, base: EntryBase::default() }
    }

    /// Every chunk reference, series by series (tests).
    #[cfg(test)]
    pub(crate) fn cursor_refs(&self) -> Vec<u64> {
        let (mut c, mut metas, mut out) = (self.cursor(), Vec::new(), Vec::new());
        for id in 0..self.num_series {
            c.series(id, &mut metas).unwrap();
            out.extend(metas.iter().map(|m| m.chunk_ref));
        }
        out
    }

    /// Series `id` of a version 1 or 2 index: entries are self-contained,
    /// with one offset each.
    fn series_direct(&self, id: u32, chunks: &mut Vec<ChunkMeta>) -> DecResult<Labels> {
        let b = self.bytes.as_ref();
        if id >= self.num_series {
            return Err(format!("series id {id} out of range ({} series)", self.num_series));
        }
        let data_len = (self.series_data.end - self.series_data.start) as u64;
        let start = u64_at(b, self.series_offsets + id as usize * 8)?;
        let end =
            if id + 1 < self.num_series { u64_at(b, self.series_offsets + (id as usize + 1) * 8)? } else { data_len };
        if start > end || end > data_len {
            return Err(format!("series {id} has invalid bounds [{start}, {end})"));
        }
        let entry = &b[self.series_data.start + start as usize..self.series_data.start + end as usize];
        let mut d = Dec::new(entry);
        let n = d.uvarint()?;
        if n == 0 || n > entry.len() as u64 {
            return Err(format!("series {id} declares {n} labels"));
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(n as usize);
        let mut prev_name: Option<u32> = None;
        for _ in 0..n {
            let (nid, vid) = (d.uvarint32()?, d.uvarint32()?);
            if prev_name.is_some_and(|p| p >= nid) {
                return Err(format!("series {id} labels not sorted"));
            }
            prev_name = Some(nid);
            let (name, value) = (self.symbol(nid)?, self.symbol(vid)?);
            if name.is_empty() || value.is_empty() {
                return Err(format!("series {id} has an empty label name or value"));
            }
            pairs.push((name, value));
        }
        let nchunks = d.uvarint()?;
        if nchunks > d.remaining() as u64 {
            return Err(format!("series {id} declares {nchunks} chunks"));
        }
        chunks.clear();
        let mut prev_maxt = 0i64;
        for i in 0..nchunks {
            let mint = if i == 0 {
                d.varint()?
            } else {
                let delta = d.uvarint()?;
                i64::try_from(delta)
                    .ok()
                    .filter(|&d| d > 0)
                    .and_then(|d| prev_maxt.checked_add(d))
                    .ok_or_else(|| format!("series {id} chunk {i} overlaps its predecessor"))?
            };
            let span = d.uvarint()?;
            let maxt = i64::try_from(span)
                .ok()
                .and_then(|s| mint.checked_add(s))
                .ok_or_else(|| format!("series {id} chunk {i} has an invalid time span"))?;
            let chunk_ref = d.uvarint()?;
            let shared_ts = if self.version >= INDEX_VERSION_2 {
                match d.uvarint()? {
                    0 => None,
                    k if k <= u64::from(self.num_cols) => Some((k - 1) as u32),
                    k => return Err(format!("series {id} chunk {i} names missing timestamp column {}", k - 1)),
                }
            } else {
                None
            };
            chunks.push(ChunkMeta { mint, maxt, chunk_ref, shared_ts });
            prev_maxt = maxt;
        }
        if d.remaining() != 0 {
            return Err(format!("series {id} entry has {} trailing bytes", d.remaining()));
        }
        Ok(Labels::from_sorted(pairs))
    }

    /// A [`PostingsIndex`] view for matcher selection; decoding errors are
    /// collected instead of returned (the trait is infallible), so check
    /// [`Lookup::finish`] afterwards.
    pub fn lookup(&self) -> Lookup<'_, B> {
        Lookup { ix: self, err: RefCell::new(None) }
    }
}

/// Reads series entries of an index. In a version 3 index an entry is coded
/// against the one before it in its group of [`SERIES_GROUP`], so the
/// cursor remembers where it stopped: reading ids in increasing order
/// decodes each entry once; going back, or to another group, restarts at
/// that group's first entry.
pub struct SeriesCursor<'a, B> {
    ix: &'a IndexReader<B>,
    /// The id of the entry at `pos`.
    next_id: u32,
    /// Where entry `next_id` starts in the series data.
    pos: usize,
    /// Where the current group ends in the series data.
    group_end: usize,
    /// What entry `next_id` is coded against.
    base: EntryBase,
}

impl<B: AsRef<[u8]>> SeriesCursor<'_, B> {
    /// The labels and chunk metas of series `id`; `chunks` is cleared and
    /// filled.
    pub fn series(&mut self, id: u32, chunks: &mut Vec<ChunkMeta>) -> DecResult<Labels> {
        let ix = self.ix;
        if ix.version < INDEX_VERSION_3 {
            return ix.series_direct(id, chunks);
        }
        if id >= ix.num_series {
            return Err(format!("series id {id} out of range ({} series)", ix.num_series));
        }
        let group = SERIES_GROUP as u32;
        if id < self.next_id || id / group != self.next_id / group || self.next_id.is_multiple_of(group) {
            self.seek_group(id / group).inspect_err(|_| self.reset())?;
        }
        while self.next_id < id {
            self.decode(None).inspect_err(|_| self.reset())?;
        }
        let pairs = self.decode(Some(chunks)).inspect_err(|_| self.reset())?;
        let mut labels = Vec::with_capacity(pairs.len());
        for &(nid, vid) in &pairs {
            let (name, value) = (ix.symbol(nid)?, ix.symbol(vid)?);
            if name.is_empty() || value.is_empty() {
                return Err(format!("series {id} has an empty label name or value"));
            }
            labels.push((name, value));
        }
        Ok(Labels::from_sorted(labels))
    }

    /// Forgets the position (after an error, the state is not trusted).
    fn reset(&mut self) {
        self.next_id = 0;
        self.pos = 0;
        self.group_end = 0;
        self.base = EntryBase::default();
    }

    /// Moves to the first entry of group `g`.
    fn seek_group(&mut self, g: u32) -> DecResult<()> {
        let ix = self.ix;
        let b = ix.bytes.as_ref();
        let data_len = ix.series_data.end - ix.series_data.start;
        let groups = (ix.num_series as usize).div_ceil(SERIES_GROUP);
        let g = g as usize;
        let start = u64_at(b, ix.series_offsets + g * 8)?;
        let end = if g + 1 < groups { u64_at(b, ix.series_offsets + (g + 1) * 8)? } else { data_len as u64 };
        if start > end || end > data_len as u64 {
            return Err(format!("series group {g} has invalid bounds [{start}, {end})"));
        }
        self.next_id = (g * SERIES_GROUP) as u32;
        self.pos = start as usize;
        self.group_end = end as usize;
        self.base = EntryBase::default();
        Ok(())
    }

    /// Decodes entry `next_id` and advances; fills `chunks` if given and
    /// returns the entry's label pairs (as symbol ids).
    fn decode(&mut self, chunks: Option<&mut Vec<ChunkMeta>>) -> DecResult<Vec<(u32, u32)>> {
        let ix = self.ix;
        let id = self.next_id;
        let data = &ix.bytes.as_ref()[ix.series_data.start..ix.series_data.start + self.group_end];
        let mut d = Dec::at(data, self.pos)?;
        let shared = d.uvarint()?;
        let new = d.uvarint()?;
        if shared > self.base.pairs.len() as u64 || new > d.remaining() as u64 || shared + new == 0 {
            return Err(format!("series {id} declares {shared} shared and {new} new labels"));
        }
        self.base.pairs.truncate(shared as usize);
        for _ in 0..new {
            let (nid, vid) = (d.uvarint32()?, d.uvarint32()?);
            if self.base.pairs.last().is_some_and(|p| p.0 >= nid) {
                return Err(format!("series {id} labels not sorted"));
            }
            self.base.pairs.push((nid, vid));
        }
        let nchunks = d.uvarint()?;
        if nchunks > d.remaining() as u64 {
            return Err(format!("series {id} declares {nchunks} chunks"));
        }
        let mut out = chunks;
        if let Some(c) = out.as_deref_mut() {
            c.clear();
        }
        let mut prev_maxt = 0i64;
        for i in 0..nchunks {
            let mint = if i == 0 {
                self.base.mint = self.base.mint.wrapping_add(d.varint()?);
                self.base.mint
            } else {
                let delta = d.uvarint()?;
                i64::try_from(delta)
                    .ok()
                    .filter(|&d| d > 0)
                    .and_then(|d| prev_maxt.checked_add(d))
                    .ok_or_else(|| format!("series {id} chunk {i} overlaps its predecessor"))?
            };
            let v4 = ix.version == INDEX_VERSION;
            let span = if v4 {
                self.base.span = self.base.span.wrapping_add(d.varint()?);
                self.base.span as u64
            } else {
                d.uvarint()?
            };
            let maxt = i64::try_from(span)
                .ok()
                .and_then(|s| mint.checked_add(s))
                .ok_or_else(|| format!("series {id} chunk {i} has an invalid time span"))?;
            self.base.chunk_ref = self.base.chunk_ref.wrapping_add(d.varint()? as u64);
            let chunk_ref = if v4 { unpack_ref(self.base.chunk_ref) } else { self.base.chunk_ref };
            let ts = if v4 {
                self.base.ts = self.base.ts.wrapping_add(d.varint()? as u64);
                self.base.ts
            } else {
                d.uvarint()?
            };
            let shared_ts = match ts {
                0 => None,
                k if k <= u64::from(ix.num_cols) => Some((k - 1) as u32),
                k => return Err(format!("series {id} chunk {i} names missing timestamp column {}", k - 1)),
            };
            if let Some(c) = out.as_deref_mut() {
                c.push(ChunkMeta { mint, maxt, chunk_ref, shared_ts });
            }
            prev_maxt = maxt;
        }
        self.pos = d.pos();
        self.next_id += 1;
        // The last entry of a group must end exactly where the group ends.
        let last_of_group = self.next_id.is_multiple_of(SERIES_GROUP as u32) || self.next_id == ix.num_series;
        if last_of_group && self.pos != self.group_end {
            return Err(format!("series group of {id} has {} trailing bytes", self.group_end - self.pos));
        }
        Ok(if out.is_some() { self.base.pairs.clone() } else { Vec::new() })
    }
}

/// Adapter from [`IndexReader`] to [`PostingsIndex`] that remembers the first
/// decoding error.
pub struct Lookup<'a, B> {
    ix: &'a IndexReader<B>,
    err: RefCell<Option<String>>,
}

impl<B: AsRef<[u8]>> Lookup<'_, B> {
    fn keep<T: Default>(&self, r: DecResult<T>) -> T {
        r.unwrap_or_else(|e| {
            self.err.borrow_mut().get_or_insert(e);
            T::default()
        })
    }

    /// The first error met while answering lookups, if any.
    pub fn finish(self) -> DecResult<()> {
        match self.err.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<B: AsRef<[u8]>> PostingsIndex for Lookup<'_, B> {
    type Id = u32;

    fn all_postings(&self) -> Vec<u32> {
        (0..self.ix.num_series).collect()
    }

    fn label_values(&self, name: &str) -> Vec<String> {
        self.keep(self.ix.label_values(name))
    }

    fn postings(&self, name: &str, value: &str) -> Vec<u32> {
        self.keep(self.ix.postings(name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_series() -> Vec<(Labels, Vec<ChunkMeta>)> {
        let mut v: Vec<(Labels, Vec<ChunkMeta>)> = (0..20)
            .map(|i| {
                let l = Labels::new([
                    ("__name__", if i % 2 == 0 { "a" } else { "b" }),
                    ("i", &i.to_string()),
                    ("odd", if i % 3 == 0 { "" } else { "yes" }),
                ])
                .unwrap();
                let c = vec![
                    ChunkMeta { mint: -5 + i, maxt: 10 + i, chunk_ref: (1 << 32) | 8, shared_ts: None },
                    ChunkMeta {
                        mint: 11 + i,
                        maxt: 11 + i,
                        chunk_ref: (2 << 32) | 100,
                        shared_ts: (i % 4 != 0).then_some((i % 2) as u32),
                    },
                ];
                (l, c)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn sample_columns() -> Vec<Vec<u8>> {
        let mut cols = vec![Vec::new(), Vec::new()];
        crate::chunkenc::sealed::encode_timestamps(&[1, 2, 3], &mut cols[0]);
        crate::chunkenc::sealed::encode_timestamps(&[10, 25, 31, 47], &mut cols[1]);
        cols
    }

    #[test]
    fn index_round_trips_series_symbols_postings_and_timestamp_columns() {
        let series = sample_series();
        let cols = sample_columns();
        let bytes = write_index(&series, &cols).unwrap();
        let ix = IndexReader::open(&bytes[..]).unwrap();
        assert_eq!(ix.version(), INDEX_VERSION);
        assert_eq!(ix.num_series(), 20);
        assert_eq!(ix.num_timestamp_columns(), 2);
        for (i, c) in cols.iter().enumerate() {
            assert_eq!(ix.timestamp_column(i as u32).unwrap(), &c[..]);
        }
        assert!(ix.timestamp_column(2).is_err());
        let mut chunks = Vec::new();
        for (id, (l, c)) in series.iter().enumerate() {
            assert_eq!(&ix.series(id as u32, &mut chunks).unwrap(), l);
            assert_eq!(&chunks, c);
        }
        assert_eq!(ix.label_names().unwrap(), vec!["__name__", "i", "odd"]);
        assert_eq!(ix.label_values("__name__").unwrap(), vec!["a", "b"]);
        assert_eq!(ix.label_values("nope").unwrap(), Vec::<String>::new());
        let odd = ix.postings("odd", "yes").unwrap();
        let want: Vec<u32> = (0..20u32).filter(|&i| series[i as usize].0.get("odd") == Some("yes")).collect();
        assert_eq!(odd, want);
        assert!(ix.postings("odd", "no").unwrap().is_empty());
        assert!(ix.postings("a", "yes").unwrap().is_empty(), "value exists but not under this name");
    }

    /// Damages `bytes` 3000 times (1 to 3 random byte changes each), repairs
    /// the checksums so the damage reaches the structural checks, and counts
    /// the indexes rejected at open or by [`exercise`]. Never panics.
    fn rejected_damage(bytes: &[u8], seed: u64) -> usize {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut rejected = 0;
        for _ in 0..3000 {
            let mut b = bytes.to_vec();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] = if rng.gen_bool(0.5) { rng.gen() } else { b[i] ^ (1 << rng.gen_range(0..8)) };
            }
            repair_checksums(&mut b);
            match IndexReader::open(&b[..]) {
                Ok(ix) => rejected += usize::from(exercise(&ix).is_err()),
                Err(_) => rejected += 1,
            }
        }
        rejected
    }

    #[test]
    fn damaged_structure_behind_valid_checksums_is_an_error_not_a_panic() {
        let rejected = rejected_damage(&write_index(&sample_series(), &sample_columns()).unwrap(), 11);
        // Some damage is undetectable (e.g. a chunk reference or timestamp
        // changed to another valid value), but most is caught structurally.
        assert!(rejected > 1500, "only {rejected} of 3000 damaged indexes rejected");
    }

    /// Many series in several groups, with chunk references that go back
    /// and forth and label sets sharing prefixes of every length.
    fn many_series(n: u32) -> Vec<(Labels, Vec<ChunkMeta>)> {
        let mut v: Vec<(Labels, Vec<ChunkMeta>)> = (0..n)
            .map(|i| {
                let l = Labels::new([
                    ("__name__", format!("m{}", i % 3).as_str()),
                    ("a", format!("{}", i % 5).as_str()),
                    ("b", format!("{}", i % 7).as_str()),
                    ("c", format!("{i}").as_str()),
                ])
                .unwrap();
                let base = 1_700_000_000_000i64 + i64::from(i % 11) * 1000 - 5000;
                let chunks = (0..(i % 4))
                    .map(|k| ChunkMeta {
                        mint: base + i64::from(k) * 100_000,
                        maxt: base + i64::from(k) * 100_000 + 50_000,
                        chunk_ref: (u64::from(k % 2 + 1) << 32) | u64::from((i * 7919) % 100_000),
                        shared_ts: (k == 1).then_some(i % 2),
                    })
                    .collect();
                (l, chunks)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn version_3_and_version_2_read_back_the_same_in_any_order() {
        let series = many_series(150);
        let cols = sample_columns();
        for version in [INDEX_VERSION_2, INDEX_VERSION_3, INDEX_VERSION] {
            let bytes = write_index_version(&series, &cols, version).unwrap();
            let ix = IndexReader::open(&bytes[..]).unwrap();
            assert_eq!(ix.version(), version);
            let mut chunks = Vec::new();
            let mut cursor = ix.cursor();
            // In order, backwards, by strides, and repeated ids.
            let order: Vec<u32> = (0..150)
                .chain((0..150).rev())
                .chain((0..150).step_by(7))
                .chain([5, 5, 40, 17, 149, 0, 16, 15, 16])
                .collect();
            for id in order {
                let got = cursor.series(id, &mut chunks).unwrap();
                assert_eq!(got, series[id as usize].0, "version {version} series {id}");
                assert_eq!(chunks, series[id as usize].1, "version {version} series {id}");
            }
            assert!(cursor.series(150, &mut chunks).is_err());
            for (n, v) in [("a", "3"), ("b", "0"), ("__name__", "m1"), ("c", "77")] {
                let want: Vec<u32> = (0..150u32).filter(|&i| series[i as usize].0.get(n) == Some(v)).collect();
                assert_eq!(ix.postings(n, v).unwrap(), want, "version {version} {n}={v}");
            }
            exercise(&ix).unwrap();
        }
        let v2 = write_index_version(&series, &cols, INDEX_VERSION_2).unwrap();
        let v3 = write_index(&series, &cols).unwrap();
        assert!(v3.len() * 4 < v2.len() * 3, "v3 {} bytes, v2 {}", v3.len(), v2.len());
    }

    #[test]
    fn damaged_version_3_groups_are_errors_not_panics() {
        let rejected = rejected_damage(&write_index(&many_series(100), &sample_columns()).unwrap(), 12);
        assert!(rejected > 1000, "only {rejected} of 3000 damaged indexes rejected");
    }

    #[test]
    fn empty_index_is_valid() {
        let bytes = write_index(&[], &[]).unwrap();
        let ix = IndexReader::open(&bytes[..]).unwrap();
        assert_eq!(ix.num_series(), 0);
        assert_eq!(ix.num_timestamp_columns(), 0);
        assert!(ix.label_names().unwrap().is_empty());
        assert!(ix.postings("a", "b").unwrap().is_empty());
    }

    #[test]
    fn truncated_or_flipped_index_is_rejected() {
        let bytes = write_index(&sample_series(), &sample_columns()).unwrap();
        for n in 0..bytes.len() {
            assert!(IndexReader::open(&bytes[..n]).is_err(), "prefix {n} accepted");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(IndexReader::open(&b[..]).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn chunk_meta_naming_a_missing_timestamp_column_is_rejected() {
        let mut series = sample_series();
        series[0].1[0].shared_ts = Some(2);
        assert!(write_index(&series, &sample_columns()).is_err(), "the writer refuses dangling column ids");
        // Damage behind valid checksums: set one `ts` field past the column
        // count. The field is the first byte where the index with a shared
        // first chunk differs from the one without.
        series[0].1[0].shared_ts = Some(1);
        let shared = write_index(&series, &sample_columns()).unwrap();
        series[0].1[0].shared_ts = None;
        let own = write_index(&series, &sample_columns()).unwrap();
        let at = shared.iter().zip(&own).position(|(a, b)| a != b).unwrap();
        // Version 4 codes `ts` as a zig-zag difference: 2 is stored as 4.
        assert_eq!((shared[at], own[at]), (4, 0));
        let mut damaged = shared.clone();
        damaged[at] = 6;
        repair_checksums(&mut damaged);
        let ix = IndexReader::open(&damaged[..]).unwrap();
        let mut metas = Vec::new();
        let err = ix.series(0, &mut metas).unwrap_err();
        assert!(err.contains("missing timestamp column"), "{err}");
        // Entries of the same group are coded against series 0; the next
        // group's are not.
        assert!(ix.series(1, &mut metas).is_err());
        assert!(ix.series(SERIES_GROUP as u32, &mut metas).is_ok());
    }

    #[test]
    fn damaged_timestamp_column_offsets_are_rejected_at_open() {
        let bytes = write_index(&sample_series(), &sample_columns()).unwrap();
        // The timestamps section starts with the column count, then the
        // offsets; column 1's offset is the second one.
        let section = u64_at(&bytes, bytes.len() - TOC_LEN + TIMESTAMPS * 20).unwrap() as usize;
        let pos = section + 4 + 8;
        let mut damaged = bytes.clone();
        damaged[pos..pos + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        repair_checksums(&mut damaged);
        let err = IndexReader::open(&damaged[..]).err().expect("bad offset rejected");
        assert!(err.contains("timestamp column"), "{err}");
    }
}
