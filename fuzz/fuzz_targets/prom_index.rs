//! Arbitrary bytes as a Prometheus block `index` file: the reader returns
//! errors, never panics. After a flag byte: 1 repairs the checksums of the
//! table of contents, symbol table, postings offset table, all-series
//! postings list and of every series entry it lists, so the input reaches
//! the decoders behind them; 0 feeds the bytes as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_import::prometheus::index::IndexReader;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Rewrites the CRC of the `len<4b> data crc<4b>` section at `off`.
fn fix_section(b: &mut [u8], off: usize) -> Option<usize> {
    let len = be32(b, off)? as usize;
    let end = off.checked_add(4)?.checked_add(len)?;
    let crc = crc32c::crc32c(b.get(off.checked_add(4)?..end)?);
    b.get_mut(end..end.checked_add(4)?)?.copy_from_slice(&crc.to_be_bytes());
    Some(len)
}

fn uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut x = 0u64;
    for i in 0..10 {
        let c = *b.get(pos.checked_add(i)?)?;
        x |= u64::from(c & 0x7f) << (7 * i);
        if c < 0x80 {
            *pos = pos.checked_add(i + 1)?;
            return Some(x);
        }
    }
    None
}

fn repair(b: &mut [u8]) -> Option<()> {
    let n = b.len();
    let toc = n.checked_sub(52)?;
    let crc = crc32c::crc32c(&b[toc..toc + 48]);
    b[toc + 48..].copy_from_slice(&crc.to_be_bytes());
    let symbols = be64(b, toc)? as usize;
    let table = be64(b, toc.checked_add(40)?)? as usize;
    if symbols != 0 {
        fix_section(b, symbols);
    }
    fix_section(b, table)?;
    // Find the all-series postings list and repair it and its series.
    let count = be32(b, table.checked_add(4)?)?;
    let mut pos = table.checked_add(8)?;
    let mut all = None;
    for _ in 0..count {
        pos = pos.checked_add(1)?;
        let nl = uvarint(b, &mut pos)? as usize;
        let name_empty = nl == 0;
        pos = pos.checked_add(nl)?;
        let vl = uvarint(b, &mut pos)? as usize;
        pos = pos.checked_add(vl)?;
        let off = uvarint(b, &mut pos)?;
        if name_empty && vl == 0 {
            all = Some(off as usize);
        }
    }
    let all = all?;
    let len = fix_section(b, all)?;
    let entries = (len.saturating_sub(4) / 4).min(10_000);
    for i in 0..entries {
        let id = be32(b, all.checked_add(8 + 4 * i)?)? as usize;
        let at = id.checked_mul(16)?;
        let mut p = at;
        let l = uvarint(b, &mut p)? as usize;
        let end = p.checked_add(l)?;
        let crc = crc32c::crc32c(b.get(p..end)?);
        if let Some(dst) = b.get_mut(end..end.checked_add(4)?) {
            dst.copy_from_slice(&crc.to_be_bytes());
        }
    }
    Some(())
}

fuzz_target!(|input: &[u8]| {
    let Some((&flag, rest)) = input.split_first() else { return };
    let mut b = rest.to_vec();
    if flag & 1 == 1 {
        let _ = repair(&mut b);
    }
    let Ok(ix) = IndexReader::new(&b) else { return };
    let Ok(ids) = ix.series_ids() else { return };
    for id in ids.into_iter().take(10_000) {
        let _ = ix.series(id);
    }
});
