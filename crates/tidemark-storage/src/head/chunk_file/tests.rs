use super::*;
use crate::vfs::{self, FaultFs, FaultKind, Op};

fn chunk(i: u64) -> Vec<u8> {
    (0..(20 + i % 200)).map(|k| (k * 31 + i) as u8).collect()
}

fn store(dir: &Path, segment_size: usize) -> HeadChunks {
    HeadChunks::open(vfs::os(), &dir.join(DIR_NAME), segment_size).unwrap()
}

/// Writes `n` chunks (series `i % 7`, times `i*10..=i*10+5`) and reads them
/// all back.
fn round_trip(s: &HeadChunks, n: u64) -> Vec<ChunkRef> {
    let refs: Vec<ChunkRef> = (0..n).map(|i| s.write(i % 7, i as i64 * 10, i as i64 * 10 + 5, &chunk(i))).collect();
    for (i, r) in refs.iter().enumerate() {
        let i = i as u64;
        let b = s.read(*r, Some(i % 7), i as i64 * 10, i as i64 * 10 + 5).unwrap();
        assert_eq!(b.as_ref(), &chunk(i)[..], "chunk {i}");
    }
    refs
}

#[test]
fn chunks_round_trip_in_ram_and_on_disk_across_segments() {
    round_trip(&HeadChunks::in_memory(), 20_000);
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 4096);
    let refs = round_trip(&s, 3_000);
    let (segments, disk, _) = s.sizes();
    assert!(segments > 10, "{segments} segments");
    // Every finished segment is on disk, mapped, and at most 4096 bytes.
    assert!(disk > 0);
    for r in &refs {
        assert!(r.offset() as usize >= SEGMENT_HEADER_LEN && (r.offset() as usize) < 4096);
    }
    let files = std::fs::read_dir(dir.path().join(DIR_NAME)).unwrap().count();
    assert_eq!(files, segments);
    for e in std::fs::read_dir(dir.path().join(DIR_NAME)).unwrap() {
        let len = e.unwrap().metadata().unwrap().len();
        assert!(len <= 4096, "segment of {len} bytes");
    }
    // Bytes on disk are shared through the map, not copied.
    assert!(matches!(s.read(refs[0], Some(0), 0, 5).unwrap(), ChunkBytes::Mapped { .. }));
}

#[test]
fn identity_and_bounds_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1 << 20);
    let r = s.write(42, 100, 200, b"abc");
    assert_eq!(s.read(r, Some(42), 100, 200).unwrap().as_ref(), b"abc");
    assert_eq!(s.read(r, None, 100, 200).unwrap().as_ref(), b"abc");
    assert!(matches!(s.read(r, Some(41), 100, 200), Err(HeadChunkError::Mismatch { .. })));
    assert!(matches!(s.read(r, Some(42), 100, 201), Err(HeadChunkError::Mismatch { .. })));
    assert!(matches!(s.read(ChunkRef::new(0, 3), Some(42), 100, 200), Err(HeadChunkError::OutOfBounds { .. })));
    assert!(matches!(s.read(ChunkRef::new(0, 1 << 30), None, 100, 200), Err(HeadChunkError::OutOfBounds { .. })));
    assert!(matches!(s.read(ChunkRef::new(9, 8), None, 100, 200), Err(HeadChunkError::MissingSegment { segment: 9 })));
    assert_eq!(s.damaged_reads(), 5);
}

#[test]
fn truncate_deletes_only_segments_wholly_older_than_mint() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 2048);
    let refs = round_trip(&s, 1_000);
    let before = s.sizes().0;
    // Chunk i covers [10i, 10i+5]: keep chunks from 500 on.
    let deleted = s.truncate(5_000);
    assert!(deleted > 0 && deleted < before);
    let files = std::fs::read_dir(dir.path().join(DIR_NAME)).unwrap().count();
    assert_eq!(files, before - deleted);
    for (i, r) in refs.iter().enumerate().skip(500) {
        let i = i as u64;
        s.read(*r, Some(i % 7), i as i64 * 10, i as i64 * 10 + 5).unwrap();
    }
    assert!(matches!(s.read(refs[0], Some(0), 0, 5), Err(HeadChunkError::MissingSegment { .. })));
    // Everything older: the current segment is finished and deleted too,
    // and writing goes on in a new one.
    s.truncate(i64::MAX);
    assert_eq!(s.sizes().0, 1);
    let r = s.write(1, 1, 2, b"x");
    assert_eq!(s.read(r, Some(1), 1, 2).unwrap().as_ref(), b"x");
    // In RAM, truncation frees whole segments as well.
    let m = HeadChunks::in_memory();
    round_trip(&m, 20_000);
    let n = m.sizes().0;
    assert!(n > 2);
    assert!(m.truncate(100_000) > 0);
    assert!(m.sizes().0 < n);
}

#[test]
fn reopening_discards_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path(), 1 << 16);
        round_trip(&s, 2_000);
    }
    assert!(std::fs::read_dir(dir.path().join(DIR_NAME)).unwrap().count() > 0);
    let s = store(dir.path(), 1 << 16);
    assert_eq!(std::fs::read_dir(dir.path().join(DIR_NAME)).unwrap().count(), 0);
    round_trip(&s, 100);
}

#[test]
fn damage_on_disk_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 4096);
    let refs = round_trip(&s, 500);
    // Flip a byte inside the first chunk's data in the (finished) segment 0.
    let path = dir.path().join(DIR_NAME).join("00000000");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = refs[0].offset() as usize + RECORD_HEADER_LEN + 3;
    bytes[at] ^= 0xff;
    // Also make the second record's length absurd.
    let at2 = refs[1].offset() as usize + 25;
    bytes[at2..at2 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    // Rewriting in place keeps the inode the map refers to.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    assert!(matches!(s.read(refs[0], Some(0), 0, 5), Err(HeadChunkError::Checksum { .. })));
    assert!(matches!(s.read(refs[1], Some(1), 10, 15), Err(HeadChunkError::OutOfBounds { .. })));
    s.read(refs[2], Some(2), 20, 25).unwrap();
    // A deleted segment file does not matter to an open map.
    std::fs::remove_file(&path).unwrap();
    s.read(refs[2], Some(2), 20, 25).unwrap();
}

#[test]
fn write_failures_keep_chunks_in_ram() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultFs::new());
    let s = HeadChunks::open(faults.clone(), &dir.path().join(DIR_NAME), 1 << 20).unwrap();
    let refs = round_trip(&s, 3_000); // > WRITE_BUFFER: some reached the file
    assert!(s.sizes().1 > 0);
    faults.fail(Op::Write, DIR_NAME, FaultKind::NoSpace);
    let more: Vec<ChunkRef> =
        (3_000..6_000u64).map(|i| s.write(i % 7, i as i64 * 10, i as i64 * 10 + 5, &chunk(i))).collect();
    assert!(s.write_failures() > 0);
    for (i, r) in refs.iter().chain(&more).enumerate() {
        let i = i as u64;
        let b = s.read(*r, Some(i % 7), i as i64 * 10, i as i64 * 10 + 5).unwrap();
        assert_eq!(b.as_ref(), &chunk(i)[..]);
    }
    // Creating segments fails too: still in RAM.
    let faults = Arc::new(FaultFs::new());
    faults.fail(Op::Open, "other", FaultKind::Io);
    let s = HeadChunks::open(faults, &dir.path().join("other"), 1 << 20).unwrap();
    round_trip(&s, 1_000);
    assert!(s.write_failures() > 0);
}
