//! Chunk groups: the small sealed chunks of up to [`MAX_MEMBERS`] series
//! stored as one record of a block's chunk file, compressed as one zstd
//! frame.
//!
//! Why: a block that holds only part of a series' samples (the data crossed
//! a block boundary) has small chunks, and a small chunk pays fixed costs
//! of its own: its record's length and CRC, the sealed header's version
//! and raw length, and above all a zstd frame (frame and block headers,
//! literal and sequence headers, Huffman and FSE tables). In a group these
//! are paid once for up to 15 chunks, and zstd also finds what neighbouring
//! series (adjacent in label order: the same metric of other targets) have
//! in common. Layout in `docs/format/chunks.md` ("Chunk groups").
//!
//! A member is addressed by its group record's reference with `slot + 1`
//! in bits 60–63 ([`member_ref`]); file numbers stay below 2^20, so those
//! bits are never set in a plain reference. Reading a member decompresses
//! its whole group (at most [`MAX_GROUP_RAW`] bytes, typically 5–20 KiB); a
//! small per-thread cache keeps the last groups decoded so that reading the
//! series of a block in order decompresses each group once.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use memmap2::Mmap;

use super::enc::{put_uvarint, Dec, DecResult};
use crate::chunkenc::sealed;

/// The encoding byte of a chunk-file record that holds a chunk group.
pub const GROUP_ENCODING: u8 = 3;
/// Bit position of the slot in a member's chunk reference.
pub const SLOT_SHIFT: u32 = 60;
/// Most members of one group (slots 1..=15 fit 4 bits; 0 means "not a
/// group member").
pub const MAX_MEMBERS: usize = 15;
/// Most uncompressed bytes of one group, a bound the decoder enforces: a
/// member read never decompresses more than this.
pub const MAX_GROUP_RAW: usize = 1 << 20;
/// The writer puts a sealed chunk into a group only if its uncompressed
/// encoding is at most this long; longer chunks amortise their fixed costs
/// on their own, and grouping them would make reading one series decode
/// more unrelated bytes.
pub const MAX_MEMBER_RAW: usize = 8 << 10;
/// The writer closes a group once its members take this many uncompressed
/// bytes (or it has [`MAX_MEMBERS`] members).
pub const GROUP_TARGET_RAW: usize = 32 << 10;

const FLAG_ZSTD: u8 = 1;

/// The group slot of a chunk reference: 0 for a chunk with a record of its
/// own, `k ≥ 1` for member `k − 1` of the group record at [`record_of`].
#[inline]
pub fn slot_of(chunk_ref: u64) -> u8 {
    (chunk_ref >> SLOT_SHIFT) as u8
}

/// The reference of the chunk-file record that holds `chunk_ref`
/// (`file << 32 | offset`).
#[inline]
pub fn record_of(chunk_ref: u64) -> u64 {
    chunk_ref & ((1 << SLOT_SHIFT) - 1)
}

/// The reference of member `index` (0-based, below [`MAX_MEMBERS`]) of the
/// group record at `record`.
#[inline]
pub fn member_ref(record: u64, index: usize) -> u64 {
    debug_assert!(index < MAX_MEMBERS && record >> SLOT_SHIFT == 0);
    record | ((index as u64 + 1) << SLOT_SHIFT)
}

/// Encodes a group record's data from its members' bytes (each a sealed
/// chunk, normally written without zstd): `count:u8`, `count × len:uvarint`,
/// `flags:u8`, then the members back to back, as one zstd frame without
/// magic number when that is smaller (flag bit 0), else raw.
pub fn encode_group(members: &[&[u8]], zstd_level: i32, out: &mut Vec<u8>) {
    assert!(!members.is_empty() && members.len() <= MAX_MEMBERS, "a group has 1..=15 members");
    out.push(members.len() as u8);
    let mut body = Vec::with_capacity(members.iter().map(|m| m.len()).sum());
    for m in members {
        put_uvarint(out, m.len() as u64);
        body.extend_from_slice(m);
    }
    match sealed::compress_magicless(&body, zstd_level).filter(|c| c.len() < body.len()) {
        Some(c) => {
            out.push(FLAG_ZSTD);
            out.extend_from_slice(&c);
        }
        None => {
            out.push(0);
            out.extend_from_slice(&body);
        }
    }
}

/// A decoded group: the members' bytes back to back and where each ends.
#[derive(Debug)]
pub struct Group {
    raw: Vec<u8>,
    ends: Vec<usize>,
}

impl Group {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the group has no members (never true for a decoded group).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of member `index`, if it exists.
    pub fn member(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.raw[start..end])
    }
}

/// Decodes a group record's data. Every length is checked before anything
/// is allocated: the members' total must be at most [`MAX_GROUP_RAW`] and,
/// when compressed, what a frame of the payload's size can expand to.
pub fn decode_group(data: &[u8]) -> DecResult<Group> {
    let mut d = Dec::new(data);
    let count = d.u8()? as usize;
    if count == 0 || count > MAX_MEMBERS {
        return Err(format!("chunk group declares {count} members"));
    }
    let mut ends = Vec::with_capacity(count);
    let mut total = 0usize;
    for _ in 0..count {
        let len = d.uvarint()?;
        total = usize::try_from(len)
            .ok()
            .and_then(|l| total.checked_add(l))
            .filter(|&t| t <= MAX_GROUP_RAW)
            .ok_or("chunk group larger than its limit")?;
        ends.push(total);
    }
    let flags = d.u8()?;
    let payload = d.bytes(d.remaining())?;
    let raw = match flags {
        0 => {
            if payload.len() != total {
                return Err(format!("chunk group of {total} bytes holds {}", payload.len()));
            }
            payload.to_vec()
        }
        FLAG_ZSTD => {
            // A zstd block decodes to at most 128 KiB and takes at least 3
            // bytes, so a small hostile record cannot make us reserve much.
            if total as u64 > (payload.len() as u64 / 3 + 1) * (128 << 10) {
                return Err("chunk group declares an impossible length".into());
            }
            let mut raw = Vec::new();
            sealed::decompress_magicless(payload, total, &mut raw).map_err(|e| format!("chunk group: {e}"))?;
            raw
        }
        f => return Err(format!("chunk group has unknown flags {f:#04x}")),
    };
    Ok(Group { raw, ends })
}

/// Groups kept decoded per thread.
const CACHE_GROUPS: usize = 4;

/// A decoded group remembered by the map it was read from (weakly: the
/// cache never keeps a block's file mapped) and its record's position.
struct Cached {
    map: Weak<Mmap>,
    record: u64,
    group: Arc<Group>,
}

thread_local! {
    static CACHE: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

/// The group stored at `record` in `map`, whose record data is `data`
/// (already checksum-verified by the caller): from this thread's cache, or
/// decoded and remembered. A map that was dropped never matches (its
/// `Weak` cannot be upgraded, and its address is not reused while a `Weak`
/// to it lives).
pub(crate) fn cached_group(map: &Arc<Mmap>, record: u64, data: &[u8]) -> DecResult<Arc<Group>> {
    let hit = CACHE.with(|c| {
        let c = c.borrow();
        c.iter()
            .find(|e| e.record == record && Weak::as_ptr(&e.map) == Arc::as_ptr(map) && e.map.strong_count() > 0)
            .map(|e| Arc::clone(&e.group))
    });
    if let Some(g) = hit {
        return Ok(g);
    }
    let g = Arc::new(decode_group(data)?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|e| e.map.strong_count() > 0);
        if c.len() >= CACHE_GROUPS {
            c.remove(0);
        }
        c.push(Cached { map: Arc::downgrade(map), record, group: Arc::clone(&g) });
    });
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_compressed_or_raw() {
        let a = vec![7u8; 300];
        let b: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let c = vec![1u8];
        for level in [0, 9] {
            let mut out = Vec::new();
            encode_group(&[&a, &b, &c], level, &mut out);
            let g = decode_group(&out).unwrap();
            assert_eq!(g.len(), 3);
            assert_eq!(g.member(0).unwrap(), &a[..]);
            assert_eq!(g.member(1).unwrap(), &b[..]);
            assert_eq!(g.member(2).unwrap(), &c[..]);
            assert!(g.member(3).is_none());
        }
    }

    #[test]
    fn references_keep_the_record_and_the_slot_apart() {
        let rec = (999_999u64 << 32) | 0xffff_fff0;
        for i in 0..MAX_MEMBERS {
            let r = member_ref(rec, i);
            assert_eq!(record_of(r), rec);
            assert_eq!(slot_of(r) as usize, i + 1);
        }
        assert_eq!(slot_of(rec), 0);
    }

    #[test]
    fn damaged_groups_are_errors_not_panics() {
        let a: Vec<u8> = (0..500u32).map(|i| (i % 13) as u8).collect();
        let mut good = Vec::new();
        encode_group(&[&a, &a[..100]], 9, &mut good);
        assert!(decode_group(&[]).is_err());
        assert!(decode_group(&[0]).is_err());
        assert!(decode_group(&[16, 1, 0, 0]).is_err());
        // Lengths beyond the limit are rejected before allocating.
        assert!(decode_group(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0]).is_err());
        let mut rejected = 0;
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                match decode_group(&bad) {
                    Err(_) => rejected += 1,
                    Ok(g) => assert!(g.len() <= MAX_MEMBERS),
                }
            }
            assert!(decode_group(&good[..i]).is_err());
        }
        assert!(rejected > 0);
    }
}
