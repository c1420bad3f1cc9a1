use proptest::prelude::Strategy;

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
    let refs: Vec<ChunkRef> = (0..n)
        .map(|i| s.write_record(i % 7, i as i64 * 10, i as i64 * 10 + 5, Encoding::Xor, &chunk(i), None))
        .collect();
    for (i, r) in refs.iter().enumerate() {
        let i = i as u64;
        let b = s.read(*r, Some(i % 7), i as i64 * 10, i as i64 * 10 + 5).unwrap();
        assert_eq!(b.1.as_ref(), &chunk(i)[..], "chunk {i}");
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
    assert!(matches!(s.read(refs[0], Some(0), 0, 5).unwrap().1, ChunkBytes::Mapped { .. }));
}

#[test]
fn identity_and_bounds_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1 << 20);
    let r = s.write_record(42, 100, 200, Encoding::Xor, b"abc", None);
    assert_eq!(s.read(r, Some(42), 100, 200).unwrap().1.as_ref(), b"abc");
    assert_eq!(s.read(r, None, 100, 200).unwrap().1.as_ref(), b"abc");
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
    let r = s.write_record(1, 1, 2, Encoding::Xor, b"x", None);
    assert_eq!(s.read(r, Some(1), 1, 2).unwrap().1.as_ref(), b"x");
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
    let h = parse_header(&bytes, refs[0].offset() as usize).unwrap();
    bytes[refs[0].offset() as usize + h.len + 3] ^= 0xff;
    // Also make the second record's length (the header's last byte) longer
    // than the segment.
    let h = parse_header(&bytes, refs[1].offset() as usize).unwrap();
    bytes[refs[1].offset() as usize + h.len - 1] |= 0x80;
    bytes[refs[1].offset() as usize + h.len] = 0x7f;
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
    let more: Vec<ChunkRef> = (3_000..6_000u64)
        .map(|i| s.write_record(i % 7, i as i64 * 10, i as i64 * 10 + 5, Encoding::Xor, &chunk(i), None))
        .collect();
    assert!(s.write_failures() > 0);
    for (i, r) in refs.iter().chain(&more).enumerate() {
        let i = i as u64;
        let b = s.read(*r, Some(i % 7), i as i64 * 10, i as i64 * 10 + 5).unwrap();
        assert_eq!(b.1.as_ref(), &chunk(i)[..]);
    }
    // Creating segments fails too: still in RAM.
    let faults = Arc::new(FaultFs::new());
    faults.fail(Op::Open, "other", FaultKind::Io);
    let s = HeadChunks::open(faults, &dir.path().join("other"), 1 << 20).unwrap();
    round_trip(&s, 1_000);
    assert!(s.write_failures() > 0);
}

/// A closed XOR chunk of `n` scrape-like samples (15 s apart with jitter, a
/// counter with decimals), as the head closes them.
fn xor_chunk(seed: u64, n: usize) -> (Vec<Sample>, Vec<u8>) {
    let mut v = seed as f64;
    let samples: Vec<Sample> = (0..n as i64)
        .map(|i| {
            v += ((i as u64 * 31 + seed) % 17) as f64 / 10.0;
            Sample::new(1_780_000_000_000 + i * 15_000 + (i * 7 + seed as i64) % 5, v)
        })
        .collect();
    (samples.clone(), xor_of(&samples))
}

fn xor_of(samples: &[Sample]) -> Vec<u8> {
    let mut a = crate::chunkenc::XorAppender::new();
    for s in samples {
        a.append(s.t, s.v);
    }
    a.into_bytes()
}

/// Decodes what the store hands back for a chunk, whatever its encoding.
fn samples_of(store: &HeadChunks, r: ChunkRef, series: u64, mint: i64, maxt: i64) -> (Encoding, Vec<Sample>) {
    let (encoding, bytes) = store.read(r, Some(series), mint, maxt).unwrap();
    let chunk = crate::chunkenc::Chunk { mint, maxt, encoding, bytes, timestamps: None, summary: None };
    let mut out = Vec::new();
    chunk.decode_into(&mut out).unwrap();
    (encoding, out)
}

fn same_bits(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits())
}

#[test]
fn closed_xor_chunks_are_stored_sealed_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for s in [store(dir.path(), 1 << 16), HeadChunks::in_memory()] {
        let mut refs = Vec::new();
        let mut xor_bytes = 0;
        for i in 0..600u64 {
            let (samples, xor) = xor_chunk(i, 120);
            xor_bytes += xor.len();
            let (mint, maxt) = (samples[0].t, samples[119].t);
            refs.push((s.write(i, mint, maxt, &xor), samples));
        }
        for (i, (r, want)) in refs.iter().enumerate() {
            let (encoding, got) = samples_of(&s, *r, i as u64, want[0].t, want[119].t);
            assert_eq!(encoding, Encoding::Sealed, "chunk {i}");
            assert!(same_bits(&got, want), "chunk {i}");
        }
        // Denser than the XOR chunks, headers and CRCs included.
        let (_, disk, ram) = s.sizes();
        let stored = if disk > 0 { disk + 4096 } else { ram };
        assert!((stored as usize) < xor_bytes * 7 / 10, "{stored} B stored for {xor_bytes} B of XOR");
    }
}

#[test]
fn with_reencoding_off_chunks_are_stored_as_xor_and_mix_with_sealed_ones() {
    let s = HeadChunks::in_memory();
    let (samples, xor) = xor_chunk(5, 120);
    let (mint, maxt) = (samples[0].t, samples[119].t);
    s.set_reencode(false);
    let replayed = s.write(1, mint, maxt, &xor);
    s.set_reencode(true);
    let live = s.write(2, mint, maxt, &xor);
    let (encoding, got) = samples_of(&s, replayed, 1, mint, maxt);
    assert_eq!(encoding, Encoding::Xor);
    assert_eq!(s.read(replayed, Some(1), mint, maxt).unwrap().1.as_ref(), &xor[..]);
    assert!(same_bits(&got, &samples));
    let (encoding, got) = samples_of(&s, live, 2, mint, maxt);
    assert_eq!(encoding, Encoding::Sealed);
    assert!(same_bits(&got, &samples));
    // Both carry the chunk's summary: a restarted head (chunks rebuilt by
    // WAL replay, stored as XOR) answers `max_over_time` from it as well.
    let want = crate::chunkenc::ChunkSummary::of(&samples);
    assert!(want.is_some());
    assert_eq!(s.read_summarized(replayed, Some(1), mint, maxt).unwrap().2, want);
    assert_eq!(s.read_summarized(live, Some(2), mint, maxt).unwrap().2, want);
}

#[test]
fn chunks_that_do_not_shrink_stay_xor() {
    let s = HeadChunks::in_memory();
    // One sample: the XOR chunk is as small as it gets.
    let (samples, xor) = xor_chunk(3, 1);
    let r = s.write(9, samples[0].t, samples[0].t, &xor);
    let (encoding, got) = samples_of(&s, r, 9, samples[0].t, samples[0].t);
    assert_eq!(encoding, Encoding::Xor);
    assert!(same_bits(&got, &samples));
    // Bytes that are no XOR chunk are stored as they are, never lost.
    let r = s.write(9, 1, 2, b"\xff\xff garbage");
    assert_eq!(s.read(r, Some(9), 1, 2).unwrap().0, Encoding::Xor);
    assert_eq!(s.read(r, Some(9), 1, 2).unwrap().1.as_ref(), b"\xff\xff garbage");
}

#[test]
fn scan_reads_every_record_and_stops_at_a_torn_or_damaged_tail() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1 << 16);
    let mut want = Vec::new();
    for i in 0..200u64 {
        let (samples, xor) = xor_chunk(i, 40 + i as usize % 90);
        let (mint, maxt) = (samples[0].t, samples.last().unwrap().t);
        s.write(i * 3, mint, maxt, &xor);
        want.push((i * 3, mint, maxt, samples));
    }
    s.truncate(i64::MIN); // nothing older: no-op
                          // Start a new segment so that segment 0 is flushed whole.
    let full = {
        let mut st = s.state.lock();
        s.rotate(&mut st);
        std::fs::read(dir.path().join(DIR_NAME).join("00000000")).unwrap()
    };
    let scan = scan_segment(&full).unwrap();
    assert_eq!(scan.stopped, None);
    assert_eq!(scan.valid_len, full.len());
    assert_eq!(scan.records.len(), want.len());
    for (rec, (series, mint, maxt, samples)) in scan.records.iter().zip(&want) {
        assert_eq!((rec.series_ref, rec.mint, rec.maxt), (*series, *mint, *maxt));
        // Every chunk written while re-encoding carries its summary.
        assert_eq!(rec.summary, crate::chunkenc::ChunkSummary::of(samples));
        let chunk = crate::chunkenc::Chunk {
            mint: rec.mint,
            maxt: rec.maxt,
            encoding: rec.encoding,
            bytes: rec.data.to_vec().into(),
            timestamps: None,
            summary: None,
        };
        let mut got = Vec::new();
        chunk.decode_into(&mut got).unwrap();
        assert!(same_bits(&got, samples));
    }
    // A crash can cut the file anywhere: every record before the cut is
    // intact, the torn one is reported, nothing panics.
    let ends: Vec<usize> = scan.records.iter().skip(1).map(|r| r.offset).chain([full.len()]).collect();
    for cut in (SEGMENT_HEADER_LEN..full.len()).step_by(7).chain([full.len() - 1]) {
        let torn = scan_segment(&full[..cut]).unwrap();
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        assert_eq!(torn.records.len(), whole, "cut at {cut}");
        assert_eq!(torn.records[..], scan.records[..whole]);
        assert_eq!(torn.stopped.is_some(), cut != torn.valid_len, "cut at {cut}");
    }
    // A flipped bit in record 5 stops the scan there.
    let mut bad = full.clone();
    bad[scan.records[5].offset + 20] ^= 0x10;
    let damaged = scan_segment(&bad).unwrap();
    assert_eq!(damaged.records.len(), 5);
    assert!(damaged.stopped.is_some());
    assert_eq!(scan_segment(&full[..4]), Err(HeadChunkError::NotASegment));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Any in-order chunk the head can close (any value bits: NaN payloads,
    /// infinities, -0.0; any timestamp steps) reads back bit for bit.
    #[test]
    fn any_closed_chunk_reads_back_bit_for_bit(
        start in proptest::prelude::any::<i64>().prop_map(|t| t / 4),
        steps in proptest::collection::vec(1i64..100_000, 0..300),
        bits in proptest::collection::vec(proptest::prelude::any::<u64>(), 300),
        decimal in proptest::prelude::any::<bool>(),
    ) {
        let mut t = start;
        let mut samples = vec![];
        for (i, step) in std::iter::once(0).chain(steps).enumerate() {
            t += step;
            let v = if decimal { (bits[i] % 100_000) as f64 / 100.0 } else { f64::from_bits(bits[i]) };
            samples.push(Sample::new(t, v));
        }
        let xor = xor_of(&samples);
        let s = HeadChunks::in_memory();
        let (mint, maxt) = (samples[0].t, samples.last().unwrap().t);
        let r = s.write(1, mint, maxt, &xor);
        let (_, got) = samples_of(&s, r, 1, mint, maxt);
        proptest::prop_assert!(same_bits(&got, &samples));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Arbitrary bytes after a valid segment header (what the fuzz target
    /// `head_chunk_file` feeds, without its coverage guidance): the scan
    /// never panics, returns intact records only, and what it returns decodes
    /// or fails without panicking.
    #[test]
    fn scanning_arbitrary_bytes_never_panics(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        version in 2u8..=3,
    ) {
        let mut seg = b"TMHC\x02\0\0\0".to_vec();
        seg[4] = version;
        seg.extend_from_slice(&body);
        let scan = scan_segment(&seg).unwrap();
        proptest::prop_assert!(scan.valid_len <= seg.len());
        proptest::prop_assert_eq!(scan.stopped.is_none(), scan.valid_len == seg.len());
        for r in &scan.records {
            let chunk = crate::chunkenc::Chunk {
                mint: r.mint,
                maxt: r.maxt,
                encoding: r.encoding,
                bytes: r.data.to_vec().into(),
                timestamps: None,
            summary: None,
            };
            let _ = chunk.decode_into(&mut Vec::new());
        }
        let _ = scan_segment(&body);
    }
}

/// Chunks are read back with their summary, from RAM and from the map;
/// records written without one have none.
#[test]
fn summaries_are_read_back_with_their_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = store(dir.path(), 1 << 12);
    for s in [&HeadChunks::in_memory(), &on_disk] {
        let mut refs = Vec::new();
        for i in 0..60u64 {
            let (samples, xor) = xor_chunk(i, 30 + i as usize % 90);
            let (mint, maxt) = (samples[0].t, samples.last().unwrap().t);
            refs.push((s.write(i, mint, maxt, &xor), i, mint, maxt, samples));
        }
        let bare = s.write_record(99, 5, 6, Encoding::Xor, b"ab", None);
        for (r, series, mint, maxt, samples) in &refs {
            let (_, _, summary) = s.read_summarized(*r, Some(*series), *mint, *maxt).unwrap();
            assert_eq!(summary, crate::chunkenc::ChunkSummary::of(samples));
        }
        assert_eq!(s.read_summarized(bare, Some(99), 5, 6).unwrap().2, None);
    }
}

/// Segments of format version 2 (no summary field) are still scanned.
#[test]
fn version_2_segments_are_still_read() {
    let (samples, xor) = xor_chunk(3, 50);
    let (mint, maxt) = (samples[0].t, samples.last().unwrap().t);
    let mut seg = b"TMHC\x02\0\0\0".to_vec();
    let start = seg.len();
    put_uvarint(&mut seg, 7);
    put_varint(&mut seg, mint);
    put_uvarint(&mut seg, maxt.wrapping_sub(mint) as u64);
    seg.push(Encoding::Xor as u8);
    put_uvarint(&mut seg, xor.len() as u64);
    seg.extend_from_slice(&xor);
    let crc = crc32c::crc32c(&seg[start..]);
    seg.extend_from_slice(&crc.to_le_bytes());
    let scan = scan_segment(&seg).unwrap();
    assert_eq!(scan.stopped, None);
    assert_eq!(scan.records.len(), 1);
    let r = scan.records[0];
    assert_eq!(
        (r.series_ref, r.mint, r.maxt, r.encoding, r.data, r.summary),
        (7, mint, maxt, Encoding::Xor, &xor[..], None)
    );
    // Under a version 3 header the payload starts with a summary field, so
    // the same bytes do not give the chunk back; an unknown version is
    // refused.
    seg[4] = 3;
    assert!(scan_segment(&seg).unwrap().records.iter().all(|r| r.data != &xor[..]));
    seg[4] = 4;
    assert_eq!(scan_segment(&seg), Err(HeadChunkError::NotASegment));
}

#[test]
fn mapped_records_point_at_records_on_disk_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 4096);
    let refs = round_trip(&s, 600);
    let records = s.mapped_records();
    let mut found = 0;
    for (i, r) in refs.iter().enumerate() {
        let on_disk =
            matches!(s.read(*r, None, i as i64 * 10, i as i64 * 10 + 5).unwrap().1, ChunkBytes::Mapped { .. });
        match records.record_start(*r) {
            Some(rest) => {
                // The record's own bytes: its header starts with the series ref.
                let file = std::fs::read(dir.path().join(DIR_NAME).join(format!("{:08}", r.segment()))).unwrap();
                let off = r.offset() as usize;
                assert_eq!(&rest[..16], &file[off..off + 16], "record {i}");
                assert!(on_disk, "record {i} is mapped, so it is read from the map");
                records.prefetch(*r);
                found += 1;
            }
            // Still in RAM, or too near the end of the map to prefetch.
            None => records.prefetch(*r),
        }
    }
    assert!(found > 300, "{found} of {} records mapped", refs.len());
    // Records elsewhere: nothing, and no panic.
    for r in [ChunkRef::new(999, 8), ChunkRef::new(0, u32::MAX), ChunkRef::new(0, 4095)] {
        assert!(records.record_start(r).is_none());
        records.prefetch(r);
    }
    // A truncated store's segments are gone, but the maps taken before
    // stay valid while held.
    s.truncate(i64::MAX);
    assert!(records.record_start(refs[0]).is_some());
    records.prefetch(refs[0]);
    assert!(s.mapped_records().record_start(refs[0]).is_none());
}

/// Takes every queued job (the sealer's batches, driven by hand).
fn queued(s: &HeadChunks) -> Vec<Staged> {
    let mut jobs = Vec::new();
    while s.sealer_counts().2 > 0 {
        assert!(s.seal.queue.next_batch(&mut jobs, 7));
    }
    jobs
}

/// Staging segments present, by index.
fn staging_segments(s: &HeadChunks) -> Vec<u32> {
    s.state.lock().segments.keys().copied().filter(|&i| i >= STAGE_BASE).collect()
}

#[test]
fn staged_chunks_are_read_as_xor_then_sealed_and_their_segments_freed() {
    let dir = tempfile::tempdir().unwrap();
    for s in [HeadChunks::in_memory(), store(dir.path(), 1 << 20)] {
        // A sealer "running" that this test drives by hand.
        s.attach_sealer(None);
        // Enough chunks for several staging segments of 1 MiB.
        let n = 6_000u64;
        let chunks: Vec<(Vec<Sample>, Vec<u8>)> = (0..n).map(|i| xor_chunk(i, 120)).collect();
        let staged: Vec<ChunkRef> =
            chunks.iter().enumerate().map(|(i, (sm, x))| s.write_closed(i as u64, sm[0].t, sm[119].t, x)).collect();
        assert!(staged.iter().all(|r| r.segment() >= STAGE_BASE));
        assert!(staging_segments(&s).len() >= 2, "{:?}", staging_segments(&s));
        // Staged records read back as the XOR chunk, without a summary.
        for (i, r) in staged.iter().enumerate() {
            let (sm, x) = &chunks[i];
            let (encoding, bytes, summary) = s.read_summarized(*r, Some(i as u64), sm[0].t, sm[119].t).unwrap();
            assert_eq!((encoding, bytes.as_ref(), summary), (Encoding::Xor, &x[..], None));
        }
        let jobs = queued(&s);
        assert_eq!(jobs.len(), n as usize);
        for (i, job) in jobs.iter().enumerate() {
            let (sm, _) = &chunks[i];
            assert_eq!((job.series_ref, job.mint, job.maxt, job.at), (i as u64, sm[0].t, sm[119].t, staged[i]));
            let sealed = s.seal_staged(job).unwrap();
            assert!(sealed.segment() < STAGE_BASE);
            let (encoding, got) = samples_of(&s, sealed, i as u64, job.mint, job.maxt);
            assert_eq!(encoding, Encoding::Sealed);
            assert!(same_bits(&got, sm));
            let summary = s.read_summarized(sealed, Some(i as u64), job.mint, job.maxt).unwrap().2;
            assert_eq!(summary, crate::chunkenc::ChunkSummary::of(sm));
            s.release_staged(job.at);
        }
        // Every staging segment but the one still being filled is freed.
        assert_eq!(staging_segments(&s).len(), 1);
        assert_eq!(s.sealer_counts(), (n, 0, 0));
        assert_eq!(s.damaged_reads(), 0);
        // The next segment started frees the drained one.
        let big = vec![7u8; STAGE_SEGMENT_SIZE - 200];
        let r = s.write_closed(1, 0, 10, &big);
        assert_eq!(staging_segments(&s), vec![r.segment()]);
    }
}

#[test]
fn a_full_queue_or_a_stopped_sealer_reencodes_inline() {
    let s = HeadChunks::in_memory();
    let (sm, x) = xor_chunk(3, 120);
    let (mint, maxt) = (sm[0].t, sm[119].t);
    // No sealer: inline, as always.
    assert!(s.write_closed(1, mint, maxt, &x).segment() < STAGE_BASE);
    s.attach_sealer(None);
    s.seal.queue.set_cap(2);
    let refs: Vec<ChunkRef> = (0..3).map(|i| s.write_closed(i, mint, maxt, &x)).collect();
    assert!(refs[0].segment() >= STAGE_BASE && refs[1].segment() >= STAGE_BASE);
    assert!(refs[2].segment() < STAGE_BASE);
    assert_eq!(samples_of(&s, refs[2], 2, mint, maxt).0, Encoding::Sealed);
    assert_eq!(s.sealer_counts(), (0, 1, 2));
    // Re-encoding off (WAL replay): stored as XOR in the main segments.
    s.set_reencode(false);
    let replayed = s.write_closed(4, mint, maxt, &x);
    assert!(replayed.segment() < STAGE_BASE);
    assert_eq!(samples_of(&s, replayed, 4, mint, maxt).0, Encoding::Xor);
    s.set_reencode(true);
    // Stopped: inline again, the queue emptied, staged records still read.
    s.stop_sealer();
    assert_eq!(s.sealer_counts().2, 0);
    assert!(s.write_closed(5, mint, maxt, &x).segment() < STAGE_BASE);
    assert!(same_bits(&samples_of(&s, refs[0], 0, mint, maxt).1, &sm));
}

#[test]
fn truncation_frees_staged_chunks_and_their_jobs_then_do_nothing() {
    let s = HeadChunks::in_memory();
    s.attach_sealer(None);
    let big = vec![1u8; STAGE_SEGMENT_SIZE / 4];
    // Two staging segments: the first full of old chunks.
    let old: Vec<ChunkRef> = (0..3).map(|i| s.write_closed(i, i as i64 * 10, i as i64 * 10 + 5, &big)).collect();
    let newer = s.write_closed(9, 1_000, 1_005, &big);
    assert_ne!(old[0].segment(), newer.segment());
    s.truncate(500);
    assert_eq!(staging_segments(&s), vec![newer.segment()]);
    let jobs = queued(&s);
    assert_eq!(jobs.len(), 4);
    for job in &jobs[..3] {
        assert_eq!(s.seal_staged(job), None);
        s.release_staged(job.at);
    }
    // A missing record is not damage: nothing referred to it any more.
    assert_eq!(s.damaged_reads(), 0);
    // The current staging segment is never truncated away.
    s.truncate(5_000);
    assert_eq!(staging_segments(&s), vec![newer.segment()]);
    assert!(s.seal_staged(&jobs[3]).is_some());
}
