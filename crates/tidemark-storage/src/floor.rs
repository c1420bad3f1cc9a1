//! The retention floor: the oldest timestamp the database may still hold.
//!
//! Retention deletes whole blocks, oldest first. The WAL (and its
//! checkpoint) may still hold samples of a deleted block's range — for
//! instance when size retention deletes a block the head persisted a moment
//! ago, before the WAL was checkpointed. Without a record of what was
//! deleted, the next open would replay those samples and bring deleted data
//! back. So before deleting blocks, retention raises the floor to the end of
//! the newest deleted block and persists it in `<dir>/deleted_before`
//! (format: `docs/format/datadir.md`); replay, the head and checkpoints drop
//! every sample below it.

use std::path::Path;

use crate::vfs::FileSystem;
use crate::Error;

/// The floor's file name in the data directory.
pub(crate) const FLOOR_FILE: &str = "deleted_before";
const MAGIC: [u8; 4] = *b"TMFL";
const VERSION: u8 = 1;
/// Length of the floor file in bytes.
pub const LEN: usize = 20;

/// Encodes the floor: magic, version, three zero bytes, the timestamp (i64
/// little-endian) and a CRC32-C of the 16 bytes before it.
pub fn encode(floor: i64) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..4].copy_from_slice(&MAGIC);
    b[4] = VERSION;
    b[8..16].copy_from_slice(&floor.to_le_bytes());
    let crc = crc32c::crc32c(&b[..16]);
    b[16..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a floor file; `Err` names what is wrong.
pub fn decode(b: &[u8]) -> Result<i64, String> {
    if b.len() != LEN {
        return Err(format!("{} bytes, expected {LEN}", b.len()));
    }
    if b[..4] != MAGIC {
        return Err("bad magic".into());
    }
    if b[4] != VERSION {
        return Err(format!("unsupported version {}", b[4]));
    }
    // Reserved for later versions; version 1 writes zeros, so anything else
    // is not a file version 1 wrote (and the format keeps one spelling).
    if b[5..8] != [0, 0, 0] {
        return Err("reserved bytes are not zero".into());
    }
    let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if crc32c::crc32c(&b[..16]) != crc {
        return Err("checksum mismatch".into());
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[8..16]);
    Ok(i64::from_le_bytes(t))
}

/// Reads the floor of `dir`: `Ok(None)` when there is none (nothing was ever
/// deleted), `Err` when the file exists but cannot be read or is damaged.
pub(crate) fn read(dir: &Path) -> Result<Option<i64>, Error> {
    let path = dir.join(FLOOR_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some).map_err(|reason| Error::Corrupt { path, reason }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Persists `floor` atomically: temporary file, fsync, rename, fsync of `dir`.
pub(crate) fn write(fs: &dyn FileSystem, dir: &Path, floor: i64) -> Result<(), Error> {
    let path = dir.join(FLOOR_FILE);
    let tmp = dir.join(format!("{FLOOR_FILE}.tmp"));
    let f = fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(&encode(floor)).and_then(|()| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    fs.rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        for t in [i64::MIN, -1, 0, 7_200_000, i64::MAX] {
            assert_eq!(decode(&encode(t)), Ok(t));
        }
        let good = encode(42);
        for i in 0..LEN {
            let mut b = good;
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "flipped byte {i} accepted");
        }
        assert!(decode(&good[..19]).is_err());
    }

    /// Found by the `retention_floor` fuzz target: non-zero reserved bytes
    /// under a matching checksum were accepted, so two files decoded to the
    /// same floor.
    #[test]
    fn nonzero_reserved_bytes_are_refused_even_with_a_valid_checksum() {
        let mut b = encode(0x25 << 24);
        b[5] = 0x32;
        let crc = crc32c::crc32c(&b[..16]);
        b[16..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&b), Err("reserved bytes are not zero".to_string()));
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(&crate::vfs::OsFs, dir.path(), 123).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(123));
        std::fs::write(dir.path().join(FLOOR_FILE), b"junk").unwrap();
        assert!(matches!(read(dir.path()), Err(Error::Corrupt { .. })));
    }
}
