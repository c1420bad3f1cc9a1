//! `meta.json`: what a block covers and where it came from.
//!
//! The file is JSON so operators can read it, but it carries a CRC32-C of
//! its own canonical serialisation (`checksum`), so a flipped digit is
//! detected instead of silently shifting a block's time range. See
//! `docs/format/meta.md`.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::BlockError;
use crate::error::Error;

/// Name of the meta file inside a block directory.
pub const META_FILENAME: &str = "meta.json";

/// The only `meta.json` version this code reads and writes.
pub const META_VERSION: u32 = 1;

/// Description of one block, stored as its `meta.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BlockMeta {
    /// The block's id (a ULID, see [`new_block_id`]); also its directory name.
    pub ulid: String,
    /// First millisecond covered (inclusive).
    pub min_time: i64,
    /// End of the covered range (exclusive).
    pub max_time: i64,
    /// Counts of what the block holds.
    pub stats: BlockStats,
    /// Compaction lineage.
    pub compaction: CompactionMeta,
    /// Format version of the block ([`META_VERSION`]).
    pub version: u32,
}

/// Counts of a block's contents.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct BlockStats {
    /// Samples over all series.
    pub num_samples: u64,
    /// Series with at least one sample.
    pub num_series: u64,
    /// Chunks over all series.
    pub num_chunks: u64,
}

/// Where a block came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactionMeta {
    /// 1 for a block cut from the head; a compacted block has the highest
    /// level of its inputs plus one.
    pub level: u32,
    /// Ulids of the level-1 blocks whose data this block contains (a level-1
    /// block lists itself), sorted.
    pub sources: Vec<String>,
    /// Ulids of the blocks merged into this one (empty for level 1), sorted.
    pub parents: Vec<String>,
}

impl CompactionMeta {
    /// Lineage of a block cut from the head: level 1, no sources yet (the
    /// writer fills in the block's own ulid).
    pub fn level1() -> CompactionMeta {
        CompactionMeta { level: 1, sources: Vec::new(), parents: Vec::new() }
    }
}

/// What is written to disk: the meta plus a checksum over its canonical JSON.
#[derive(Serialize, Deserialize)]
struct MetaFile {
    #[serde(flatten)]
    meta: BlockMeta,
    /// CRC32-C of `serde_json::to_vec(&meta)`.
    checksum: u32,
}

impl BlockMeta {
    /// The bytes of `meta.json` for this meta (compact JSON, newline-terminated).
    pub fn to_json(&self) -> Vec<u8> {
        let checksum = crc32c::crc32c(&serde_json::to_vec(self).expect("BlockMeta always serialises"));
        let mut out =
            serde_json::to_vec_pretty(&MetaFile { meta: self.clone(), checksum }).expect("BlockMeta always serialises");
        out.push(b'\n');
        out
    }

    /// Parses and validates the bytes of a `meta.json`: JSON shape, checksum,
    /// version, ulid syntax and a non-empty time range. `block` names the
    /// block in errors.
    pub fn from_json(bytes: &[u8], block: &str) -> Result<BlockMeta, Error> {
        let corrupt = |reason: String| Error::from(BlockError::Corrupt { block: block.to_string(), reason });
        let f: MetaFile = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("meta.json: {e}")))?;
        let m = f.meta;
        let want = crc32c::crc32c(&serde_json::to_vec(&m).expect("BlockMeta always serialises"));
        if want != f.checksum {
            return Err(corrupt(format!("meta.json checksum {:#010x} != computed {want:#010x}", f.checksum)));
        }
        if m.version != META_VERSION {
            return Err(corrupt(format!("meta.json version {} (this build reads {META_VERSION})", m.version)));
        }
        if !is_block_id(&m.ulid) {
            return Err(corrupt(format!("meta.json ulid {:?} is not a ULID", m.ulid)));
        }
        if m.min_time >= m.max_time {
            return Err(corrupt(format!("meta.json time range [{}, {}) is empty", m.min_time, m.max_time)));
        }
        Ok(m)
    }

    /// Reads `dir/meta.json`.
    pub fn read(dir: &Path) -> Result<BlockMeta, Error> {
        let path = dir.join(META_FILENAME);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        BlockMeta::from_json(&bytes, &dir_name(dir))
    }

    /// Whether this block's time range intersects `[mint, maxt]` (inclusive).
    pub fn overlaps_closed(&self, mint: i64, maxt: i64) -> bool {
        self.min_time <= maxt && mint < self.max_time
    }
}

/// The last path component, for error messages.
pub(crate) fn dir_name(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Encodes a 128-bit ULID as 26 Crockford base32 characters.
fn encode_ulid(v: u128) -> String {
    (0..26).map(|i| CROCKFORD[((v >> (125 - 5 * i)) & 31) as usize] as char).collect()
}

/// Whether `s` is a 26-character Crockford base32 ULID (upper case, first
/// character at most `7` so the value fits 128 bits).
pub fn is_block_id(s: &str) -> bool {
    s.len() == 26 && s.as_bytes()[0] <= b'7' && s.bytes().all(|b| CROCKFORD.contains(&b))
}

/// The millisecond timestamp in a ULID's first 48 bits, if `s` is a ULID.
pub fn block_id_time(s: &str) -> Option<u64> {
    if !is_block_id(s) {
        return None;
    }
    let mut v: u128 = 0;
    for b in s.bytes() {
        v = (v << 5) | CROCKFORD.iter().position(|&c| c == b)? as u128;
    }
    Some((v >> 80) as u64)
}

/// The last id handed out, so ids made within one millisecond still sort in
/// creation order (the random part is incremented, as in monotonic ULIDs).
static LAST_ID: Mutex<u128> = Mutex::new(0);

/// A new block id: a ULID (48-bit Unix milliseconds, 80 random bits) in
/// Crockford base32, 26 characters. Ids sort by creation time; within one
/// process they are strictly increasing.
pub fn new_block_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0) & ((1 << 48) - 1);
    // RandomState is seeded from the OS once per process and perturbed per
    // instance; hashing the time and a counter through two fresh instances
    // gives 128 unpredictable bits without another dependency.
    let mut rnd = [0u64; 2];
    for (i, r) in rnd.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(ms);
        h.write_usize(i);
        h.write_u32(std::process::id());
        *r = h.finish();
    }
    let random = ((u128::from(rnd[0]) << 64) | u128::from(rnd[1])) & ((1u128 << 80) - 1);
    let mut id = (u128::from(ms) << 80) | random;
    let mut last = LAST_ID.lock().unwrap_or_else(|e| e.into_inner());
    if id <= *last {
        id = *last + 1;
    }
    *last = id;
    encode_ulid(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_meta() -> BlockMeta {
        BlockMeta {
            ulid: new_block_id(),
            min_time: -7_200_000,
            max_time: 7_200_000,
            stats: BlockStats { num_samples: 12, num_series: 3, num_chunks: 4 },
            compaction: CompactionMeta { level: 2, sources: vec![new_block_id(), new_block_id()], parents: vec![] },
            version: META_VERSION,
        }
    }

    #[test]
    fn block_ids_are_ulids_sorted_by_creation() {
        let ids: Vec<String> = (0..1000).map(|_| new_block_id()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        assert!(ids.iter().all(|i| is_block_id(i)));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let t = block_id_time(&ids[0]).unwrap();
        assert!(now.abs_diff(t) < 60_000, "embedded time {t} vs now {now}");
        assert_eq!(encode_ulid(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(encode_ulid(0), "00000000000000000000000000");
        assert!(!is_block_id("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(!is_block_id("0000000000000000000000000U"));
    }

    #[test]
    fn meta_json_round_trips() {
        let m = sample_meta();
        let got = BlockMeta::from_json(&m.to_json(), "b").unwrap();
        assert_eq!(got, m);
    }

    #[test]
    fn every_bit_flip_in_meta_json_is_detected() {
        let m = sample_meta();
        let bytes = m.to_json();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                match BlockMeta::from_json(&b, "b") {
                    Err(_) => {}
                    // A flip inside insignificant whitespace could only be
                    // harmless if the meta is unchanged.
                    Ok(got) => assert_eq!(got, m, "flip of bit {bit} at byte {i} changed the meta undetected"),
                }
            }
        }
    }

    #[test]
    fn every_truncation_of_meta_json_is_rejected() {
        let bytes = sample_meta().to_json();
        // The trailing newline is insignificant; any shorter prefix is not valid JSON.
        for n in 0..bytes.len() - 1 {
            assert!(BlockMeta::from_json(&bytes[..n], "b").is_err(), "prefix of {n} bytes accepted");
        }
    }

    #[test]
    fn wrong_version_and_empty_range_are_rejected() {
        let mut m = sample_meta();
        m.version = 2;
        assert!(BlockMeta::from_json(&m.to_json(), "b").is_err());
        let mut m = sample_meta();
        m.max_time = m.min_time;
        assert!(BlockMeta::from_json(&m.to_json(), "b").is_err());
        let mut m = sample_meta();
        m.ulid = "not-a-ulid".into();
        assert!(BlockMeta::from_json(&m.to_json(), "b").is_err());
    }
}
