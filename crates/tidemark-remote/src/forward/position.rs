//! The forwarder's persisted position: how far into the WAL the endpoint
//! has acknowledged everything. One line, `v1 <segment> <offset>`, written
//! atomically (temporary file, fsync, rename, fsync of the directory).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tidemark_storage::wal::WalPosition;

use super::ForwardError;

/// `<data_dir>/forward/<name>.position`.
pub(crate) fn position_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("forward").join(format!("{name}.position"))
}

/// The stored position, or `None` if there is none yet.
pub(crate) fn load(path: &Path) -> Result<Option<WalPosition>, ForwardError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ForwardError::Io { path: path.to_path_buf(), source: e }),
    };
    let mut parts = text.split_ascii_whitespace();
    let parsed = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(s), Some(o), None) => s.parse().ok().zip(o.parse().ok()),
        _ => None,
    };
    match parsed {
        Some((segment, offset)) => Ok(Some(WalPosition { segment, offset })),
        None => {
            Err(ForwardError::CorruptPosition { path: path.to_path_buf(), content: text.chars().take(100).collect() })
        }
    }
}

/// Stores `pos` atomically.
pub(crate) fn store(path: &Path, pos: WalPosition) -> Result<(), ForwardError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ForwardError::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("position.tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(format!("v1 {} {}\n", pos.segment, pos.offset).as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = position_path(dir.path(), "a");
        assert_eq!(load(&p).unwrap(), None);
        let pos = WalPosition { segment: 7, offset: 12345 };
        store(&p, pos).unwrap();
        assert_eq!(load(&p).unwrap(), Some(pos));
        fs::write(&p, "v1 7").unwrap();
        assert!(matches!(load(&p), Err(ForwardError::CorruptPosition { .. })));
    }
}
