//! Holds on WAL segments: readers of the log (a remote-write forwarder) ask
//! the database to keep the segments they have not read yet.
//!
//! A hold is named and persisted (`<wal>/holds/<name>`, the lowest segment
//! still needed), so it survives restarts of the reader and of the database.
//! Checkpoints then delete only segments below the lowest hold, but never
//! keep more than a bounded number of bytes for holders (a stalled or
//! abandoned reader must not fill the disk): beyond the bound, segments are
//! deleted anyway and the reader sees a skip ([`super::WalSkip`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::segment::{segment_path, sync_dir};
use super::Wal;
use crate::vfs::OsFs;
use crate::Error;

/// Longest accepted hold name.
const MAX_NAME_LEN: usize = 100;

/// A reader's claim on WAL segments, from [`crate::Db::hold_wal`].
///
/// Dropping the handle keeps the hold (so a reader that stops and later
/// resumes loses nothing); [`crate::Db::release_wal_hold`] removes it.
#[derive(Debug)]
pub struct WalHold {
    name: String,
    slot: Arc<Slot>,
}

#[derive(Debug)]
struct Slot {
    /// Lowest segment still needed.
    segment: Mutex<u64>,
    /// Where it is persisted.
    path: PathBuf,
}

impl WalHold {
    /// The hold's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lowest segment the holder still needs.
    pub fn segment(&self) -> u64 {
        *self.slot.segment.lock()
    }

    /// Declares that segments below `segment` are no longer needed
    /// (persisted atomically when the number changes). Moving the hold
    /// backwards protects only segments still on disk.
    pub fn advance(&self, segment: u64) -> Result<(), Error> {
        let mut cur = self.slot.segment.lock();
        if *cur == segment {
            return Ok(());
        }
        persist(&self.slot.path, segment)?;
        *cur = segment;
        Ok(())
    }
}

/// The holds of one WAL.
#[derive(Debug)]
pub(crate) struct WalHolds {
    dir: PathBuf,
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
}

impl WalHolds {
    /// Loads the persisted holds from `dir` (`<wal>/holds`). Unreadable
    /// files are ignored with a warning: a lost hold only risks a reader
    /// seeing a skip, never the database's own data.
    pub(crate) fn load(dir: &Path) -> Result<WalHolds, Error> {
        let mut slots = BTreeMap::new();
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io(dir, e))?;
                    let path = entry.path();
                    let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                    if check_name(&name).is_err() {
                        continue; // a leftover temporary file
                    }
                    match fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                        Some(segment) => {
                            slots.insert(name, Arc::new(Slot { segment: Mutex::new(segment), path }));
                        }
                        None => tracing::warn!(path = %path.display(), "ignoring an unreadable WAL hold"),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir, e)),
        }
        Ok(WalHolds { dir: dir.to_path_buf(), slots: Mutex::new(slots) })
    }

    /// The hold `name`: the existing one, or a new one at `segment`.
    pub(crate) fn acquire(&self, name: &str, segment: u64) -> Result<WalHold, Error> {
        check_name(name)?;
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(name) {
            return Ok(WalHold { name: name.to_owned(), slot: slot.clone() });
        }
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(name);
        persist(&path, segment)?;
        let slot = Arc::new(Slot { segment: Mutex::new(segment), path });
        slots.insert(name.to_owned(), slot.clone());
        Ok(WalHold { name: name.to_owned(), slot })
    }

    /// Removes the hold `name`; returns whether it existed.
    pub(crate) fn release(&self, name: &str) -> Result<bool, Error> {
        let Some(slot) = self.slots.lock().remove(name) else { return Ok(false) };
        match fs::remove_file(&slot.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&slot.path, e)),
            _ => {}
        }
        sync_dir(&OsFs, &self.dir)?;
        Ok(true)
    }

    /// The lowest held segment, if any hold exists.
    pub(crate) fn min(&self) -> Option<u64> {
        self.slots.lock().values().map(|s| *s.segment.lock()).min()
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.ends_with(".tmp");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid WAL hold name {name:?}: use 1 to {MAX_NAME_LEN} of [A-Za-z0-9._-], not starting with '.' nor ending in .tmp"
        )))
    }
}

/// Writes the hold file atomically (temporary file, fsync, rename).
fn persist(path: &Path, segment: u64) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(format!("{segment}\n").as_bytes()).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(&OsFs, path.parent().unwrap_or(Path::new(".")))
}

/// The highest segment a checkpoint may cover when it wants to cover up to
/// `wanted`: below the lowest hold, unless that keeps more than `max_held`
/// bytes of segments that would otherwise be deleted, in which case the
/// oldest of those go anyway. `None` when nothing may be checkpointed
/// (the bound is below `first`, the oldest segment on disk).
pub(crate) fn checkpoint_bound(
    wanted: u64,
    first: u64,
    hold_min: Option<u64>,
    max_held: u64,
    size_of: impl Fn(u64) -> u64,
) -> Option<u64> {
    let mut upto = match hold_min {
        Some(h) if h <= wanted => h.checked_sub(1),
        _ => Some(wanted),
    };
    let held_from = upto.map_or(0, |u| u + 1).max(first);
    let mut held: u64 = (held_from..=wanted).map(&size_of).sum();
    if held > max_held {
        let mut next = held_from;
        while held > max_held && next <= wanted {
            held -= size_of(next);
            upto = Some(next);
            next += 1;
        }
        tracing::warn!(
            hold = ?hold_min,
            checkpoint_upto = ?upto,
            max_held_bytes = max_held,
            "WAL holds exceed the limit: deleting segments a reader has not read yet"
        );
    }
    upto.filter(|&u| u >= first)
}

impl Wal {
    /// The WAL's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Bytes of segment `n` on disk (0 if it does not exist).
    pub(crate) fn segment_bytes(&self, n: u64) -> u64 {
        fs::metadata(segment_path(&self.inner.dir, n)).map_or(0, |m| m.len())
    }
}
