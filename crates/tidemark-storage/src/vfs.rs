//! The file layer: every file operation the write paths use (WAL segments
//! and checkpoints, block and head-persistence output, compaction output,
//! retention deletes, small state files) goes through [`FileSystem`], so a
//! test can make any of them fail. Reads and memory maps stay direct: a
//! failing read is the recovery side's business, not the write side's.
//!
//! [`OsFs`] is the real thing and the default. [`FaultFs`] wraps it and
//! injects errors by operation and path pattern, once or until cleared, or
//! simulates a disk with a fixed number of bytes left (writes past it fail
//! with `ENOSPC` after writing what fit, as the kernel does). It is a test
//! tool: public so integration tests and embedders' tests can use it,
//! never meant for production.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// A file opened for writing through a [`FileSystem`]. Methods take `&self`
/// (like `&File` implements `Write`) so one handle can be written by one
/// thread and fsynced by another.
pub trait WritableFile: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at the end of what this handle wrote so far.
    /// On error an unknown prefix of `buf` may have been written.
    fn write_all(&self, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`: the data written so far is durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: data and metadata (size) are durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates (or extends with zeros) to `len` bytes. Later writes go to
    /// the end of the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Writes all of `buf` at byte `offset` (`pwrite`), extending the file
    /// if it ends before. Only for files made by
    /// [`FileSystem::create_new_positional`]: in append mode the kernel
    /// would put the bytes at the end instead. On error an unknown prefix
    /// of `buf` may have been written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
}

/// The file operations of the write paths. Implementations must be cheap to
/// call concurrently.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates `path`, failing if it exists (`O_CREAT | O_EXCL`), in append
    /// mode: after [`WritableFile::set_len`] writes continue at the new end.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Creates `path`, failing if it exists, for positional writes
    /// ([`WritableFile::write_at`]), not in append mode: `write_all` writes
    /// at a cursor that starts at 0.
    fn create_new_positional(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Creates or truncates `path`.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file for writing (to truncate or append to it).
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// `mkdir`.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// `mkdir -p`.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `rename(2)`: atomic replacement within one file system.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Deletes a directory tree.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// fsyncs a directory, making creations, renames and deletions in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Bytes an unprivileged writer can still add to the file system holding
    /// `path` (`statvfs`: `f_bavail * f_frsize`).
    fn available_space(&self, path: &Path) -> io::Result<u64>;
}

/// The operating system's file system. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl WritableFile for OsFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    #[cfg(unix)]
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }
    #[cfg(not(unix))]
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "positional writes need a unix system"))
    }
}

impl FileSystem for OsFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = OpenOptions::new().append(true).create_new(true).open(path)?;
        Ok(Box::new(OsFile(f)))
    }
    fn create_new_positional(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(OsFile(f)))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(OsFile(File::create(path)?)))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        // Append mode: after `set_len` later writes land at the new end.
        let f = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(OsFile(f)))
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn available_space(&self, path: &Path) -> io::Result<u64> {
        statvfs_available(path)
    }
}

#[cfg(unix)]
fn statvfs_available(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string and `st` a properly sized,
    // writable out-parameter; statvfs does not keep either pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field widths differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn statvfs_available(_path: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

/// Adapts a [`WritableFile`] to [`io::Write`] (for `BufWriter`).
pub(crate) struct FileWriter(pub(crate) Box<dyn WritableFile>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The shared handle the database and its parts hold.
pub type SharedFs = Arc<dyn FileSystem>;

/// The default file system, shared.
pub fn os() -> SharedFs {
    Arc::new(OsFs)
}

/// A file operation [`FaultFs`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Creating or opening a file for writing.
    Open,
    /// Writing to a file.
    Write,
    /// `fsync`/`fdatasync` of a file.
    Sync,
    /// Truncating a file.
    SetLen,
    /// Creating a directory.
    CreateDir,
    /// Renaming.
    Rename,
    /// Deleting a file or a directory tree.
    Remove,
    /// fsync of a directory.
    SyncDir,
}

/// The error a [`FaultFs`] rule injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// `ENOSPC`: no space left on device.
    NoSpace,
    /// `EIO`: input/output error.
    Io,
}

impl FaultKind {
    fn error(self, op: Op, path: &Path) -> io::Error {
        let (code, kind) = match self {
            FaultKind::NoSpace => (28, io::ErrorKind::StorageFull),
            FaultKind::Io => (5, io::ErrorKind::Other),
        };
        if cfg!(target_os = "linux") {
            io::Error::from_raw_os_error(code)
        } else {
            io::Error::new(kind, format!("injected {self:?} on {op:?} of {}", path.display()))
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    /// Substring of the path; empty matches every path.
    pattern: String,
    kind: FaultKind,
    /// Matching operations to let through before failing.
    skip: u64,
    /// Fail only once, then remove the rule.
    once: bool,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<Rule>,
    /// Bytes writes may still add before `ENOSPC`; `None`: unlimited.
    space: Option<u64>,
    injected: u64,
}

/// A [`FileSystem`] for tests: forwards to [`OsFs`] and injects failures.
/// Cloning shares the same rules.
///
/// ```
/// use std::sync::Arc;
/// use tidemark_storage::vfs::{FaultFs, FaultKind, Op};
/// use tidemark_storage::Db;
/// let dir = tempfile::tempdir().unwrap();
/// let faults = FaultFs::new();
/// let db = Db::builder(dir.path()).file_system(Arc::new(faults.clone())).open().unwrap();
/// let up = tidemark_storage::Labels::new([("__name__", "up")]).unwrap();
/// faults.fail_once(Op::Sync, "wal", FaultKind::Io);
/// let mut app = db.appender();
/// app.append(&up, 1_000, 1.0).unwrap();
/// assert!(app.commit().is_err()); // not acknowledged
/// let mut app = db.appender();
/// app.append(&up, 2_000, 1.0).unwrap();
/// app.commit().unwrap(); // continues in a fresh segment
/// db.close().unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct FaultFs {
    state: Arc<Mutex<FaultState>>,
}

impl FaultFs {
    /// No faults yet.
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    /// Fails every `op` on a path containing `pattern` ("" for any) with
    /// `kind`, until [`FaultFs::clear`].
    pub fn fail(&self, op: Op, pattern: &str, kind: FaultKind) {
        self.add(Rule { op, pattern: pattern.into(), kind, skip: 0, once: false });
    }

    /// Fails the next matching `op` once.
    pub fn fail_once(&self, op: Op, pattern: &str, kind: FaultKind) {
        self.add(Rule { op, pattern: pattern.into(), kind, skip: 0, once: true });
    }

    /// Lets `n` matching operations through, then fails the next one once.
    pub fn fail_after(&self, n: u64, op: Op, pattern: &str, kind: FaultKind) {
        self.add(Rule { op, pattern: pattern.into(), kind, skip: n, once: true });
    }

    /// Simulates a disk with `bytes` left: writes beyond it write what fits
    /// and fail with `ENOSPC`, and so do file creations once nothing is
    /// left. `None` lifts the limit ("space was freed").
    pub fn set_space(&self, bytes: Option<u64>) {
        self.state.lock().space = bytes;
    }

    /// Removes every rule and the space limit.
    pub fn clear(&self) {
        let mut st = self.state.lock();
        st.rules.clear();
        st.space = None;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    fn add(&self, rule: Rule) {
        self.state.lock().rules.push(rule);
    }

    /// The error to inject for `op` on `path`, if any.
    fn check(&self, op: Op, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let p = path.to_string_lossy();
        let hit = st.rules.iter_mut().position(|r| {
            if r.op != op || !p.contains(r.pattern.as_str()) {
                return false;
            }
            if r.skip > 0 {
                r.skip -= 1;
                return false;
            }
            true
        });
        let Some(i) = hit else { return Ok(()) };
        let rule = st.rules[i].clone();
        if rule.once {
            st.rules.remove(i);
        }
        st.injected += 1;
        Err(rule.kind.error(op, path))
    }

    /// [`FaultFs::check`] for creating a file, which a full disk refuses.
    fn check_create(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Open, path)?;
        let mut st = self.state.lock();
        if st.space == Some(0) {
            st.injected += 1;
            return Err(FaultKind::NoSpace.error(Op::Open, path));
        }
        Ok(())
    }

    fn wrap(&self, path: &Path, f: Box<dyn WritableFile>) -> Box<dyn WritableFile> {
        Box::new(FaultFile { fs: self.clone(), path: path.to_path_buf(), inner: f })
    }
}

#[derive(Debug)]
struct FaultFile {
    fs: FaultFs,
    path: PathBuf,
    inner: Box<dyn WritableFile>,
}

impl WritableFile for FaultFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.fs.check(Op::Write, &self.path)?;
        let fit = {
            let mut st = self.fs.state.lock();
            match st.space {
                Some(left) if (buf.len() as u64) > left => {
                    st.space = Some(0);
                    st.injected += 1;
                    Some(left as usize)
                }
                Some(left) => {
                    st.space = Some(left - buf.len() as u64);
                    None
                }
                None => None,
            }
        };
        match fit {
            Some(n) => {
                self.inner.write_all(&buf[..n])?;
                Err(FaultKind::NoSpace.error(Op::Write, &self.path))
            }
            None => self.inner.write_all(buf),
        }
    }
    fn sync_data(&self) -> io::Result<()> {
        self.fs.check(Op::Sync, &self.path)?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.fs.check(Op::Sync, &self.path)?;
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.check(Op::SetLen, &self.path)?;
        self.inner.set_len(len)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.fs.check(Op::Write, &self.path)?;
        // Only bytes past the file's end take space: overwriting does not.
        let file_len = fs::metadata(&self.path)?.len();
        let grows = (offset + buf.len() as u64).saturating_sub(file_len.max(offset));
        let fit = {
            let mut st = self.fs.state.lock();
            match st.space {
                Some(left) if grows > left => {
                    st.space = Some(0);
                    st.injected += 1;
                    // What fits: up to the old end, plus `left` bytes.
                    Some((file_len.max(offset) + left - offset) as usize)
                }
                Some(left) => {
                    st.space = Some(left - grows);
                    None
                }
                None => None,
            }
        };
        match fit {
            Some(n) => {
                self.inner.write_at(&buf[..n.min(buf.len())], offset)?;
                Err(FaultKind::NoSpace.error(Op::Write, &self.path))
            }
            None => self.inner.write_at(buf, offset),
        }
    }
}

impl FileSystem for FaultFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check_create(path)?;
        Ok(self.wrap(path, OsFs.create_new(path)?))
    }
    fn create_new_positional(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check_create(path)?;
        Ok(self.wrap(path, OsFs.create_new_positional(path)?))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check_create(path)?;
        Ok(self.wrap(path, OsFs.create(path)?))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check(Op::Open, path)?;
        Ok(self.wrap(path, OsFs.open_write(path)?))
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.check(Op::CreateDir, path)?;
        OsFs.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(Op::CreateDir, path)?;
        OsFs.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename, from)?;
        OsFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        OsFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        OsFs.remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check(Op::SyncDir, path)?;
        OsFs.sync_dir(path)
    }
    fn available_space(&self, path: &Path) -> io::Result<u64> {
        let real = OsFs.available_space(path)?;
        Ok(self.state.lock().space.map_or(real, |s| s.min(real)))
    }
}

/// Whether an I/O error means "no space left" (`ENOSPC`, `EDQUOT`).
pub fn is_no_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(28) | Some(122))
}
