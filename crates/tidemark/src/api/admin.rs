//! `/api/v1/admin/tsdb/snapshot`, bounded: off unless the admin API is
//! enabled, refused for cross-origin browser requests, one snapshot at a
//! time per snapshot directory, at most `max_snapshots` kept, and never one
//! that would fill the disk or pass the size limit.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::params::{format_compact_utc, Params};
use super::response::{ApiError, ErrorType, Reply};
use super::{blocking, json, now_ms, ApiState};

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// 63 random bits (Prometheus uses `rand.Int63`); std's per-process random
/// hash keys are enough to keep snapshot names apart.
fn random63() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    h.write_u64(u64::from(std::process::id()));
    h.finish() >> 1
}

/// Snapshot directories with a snapshot being taken. Process-wide, so that
/// every router over the same data directory shares it.
static IN_PROGRESS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Holds a snapshot directory's slot in [`IN_PROGRESS`] until dropped.
struct Busy(PathBuf);

impl Busy {
    fn take(root: &Path) -> Option<Busy> {
        let mut set = IN_PROGRESS.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(root.to_owned()).then(|| Busy(root.to_owned()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        IN_PROGRESS.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0);
    }
}

/// Snapshots already under `root` (directories; a missing root has none).
fn count_snapshots(root: &Path) -> Result<usize, ApiError> {
    match std::fs::read_dir(root) {
        Ok(entries) => Ok(entries.filter_map(Result::ok).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(ApiError::internal(format!("list snapshots in {}: {e}", root.display()))),
    }
}

/// Free space a snapshot leaves on the file system at least, beyond what it
/// writes, so that ingestion is never the one that meets a full disk.
const SNAPSHOT_FREE_MARGIN: u64 = 64 << 20;

/// Refuses a snapshot that would fill the disk or push the data directory
/// over its size limit. Blocks are hard-linked (no room needed; the size
/// accounting counts a hard-linked file once); the head is written as new
/// blocks, which take less than the WAL's records would uncompressed (they
/// also hold series records and full-width timestamps and values), so
/// `wal_uncompressed_bytes` bounds what the snapshot writes. (Not the WAL's
/// size on disk: its compressed records can be far smaller than a block's
/// index of the same series.)
fn check_room(db: &tidemark_storage::Db, data_dir: &std::path::Path, skip_head: bool) -> Result<(), ApiError> {
    use tidemark_storage::vfs::{FileSystem, OsFs};
    let stats = db.stats();
    let writes = if skip_head { 0 } else { stats.wal_uncompressed_bytes };
    let free = OsFs.available_space(data_dir).unwrap_or(u64::MAX);
    if free < writes.saturating_add(SNAPSHOT_FREE_MARGIN) {
        return Err(ApiError::new(
            ErrorType::Unavailable,
            format!(
                "not enough free space for a snapshot: it writes up to {writes} bytes and must leave {SNAPSHOT_FREE_MARGIN} free; {free} bytes are free in {}",
                data_dir.display()
            ),
        ));
    }
    // Under a size limit the snapshot must also leave the room maintenance
    // keeps for persisting the head and checkpointing the WAL.
    let reserve = tidemark_storage::retention::maintenance_reserve(stats.wal_uncompressed_bytes);
    let Some((used, limit)) = db.measure_disk() else { return Ok(()) };
    if used.saturating_add(writes).saturating_add(reserve) > limit {
        return Err(ApiError::new(
            ErrorType::Unavailable,
            format!(
                "a snapshot of the head (up to {writes} bytes) would push the data directory ({used} bytes, plus {reserve} kept free for maintenance) over its size limit ({limit} bytes), and size retention would delete blocks to pay for it; use skip_head=true or raise the size limit"
            ),
        ));
    }
    Ok(())
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot[?skip_head=true]`: hard-links the
/// blocks (and writes the head as blocks unless `skip_head`) into
/// `<data-dir>/snapshots/<UTC time>-<random hex>`; answers
/// `{"name": "<that name>"}`. A second call while one runs, and a call when
/// `max_snapshots` snapshots exist, or when the snapshot would fill the disk
/// or pass the size limit ([`check_room`]), get `unavailable` naming the
/// reason; a failed snapshot's directory is removed.
pub(crate) async fn snapshot(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    if let Some(refused) = super::origin::check(req.headers(), req.uri()) {
        return refused;
    }
    if !st.options.enable_admin_api {
        return ApiError::new(ErrorType::Unavailable, "admin APIs disabled").into_response();
    }
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    blocking(move || {
        let skip_head = match p.get("skip_head") {
            None => false,
            Some(s) => go_parse_bool(s)
                .map_err(|e| ApiError::invalid_param("skip_head", format!("unable to parse boolean: {e}")))?,
        };
        let Some(data_dir) = &st.options.data_dir else {
            return Err(ApiError::new(
                ErrorType::Unavailable,
                "snapshots need an on-disk database; this one is in memory",
            ));
        };
        let root = data_dir.join(&st.options.snapshot_dir_name);
        let Some(_busy) = Busy::take(&root) else {
            return Err(ApiError::new(
                ErrorType::Unavailable,
                "a snapshot is already being taken; try again when it has finished",
            ));
        };
        let max = st.options.max_snapshots;
        let existing = count_snapshots(&root)?;
        if max > 0 && existing >= max {
            return Err(ApiError::new(
                ErrorType::Unavailable,
                format!(
                    "snapshot limit reached: {existing} snapshots in {} (at most {max} are kept); delete old ones first",
                    root.display()
                ),
            ));
        }
        check_room(&st.db, data_dir, skip_head)?;
        let name = format!("{}-{:016x}", format_compact_utc(now_ms()), random63());
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(format!("create snapshot directory: {e}")))?;
        if let Err(e) = st.db.snapshot(&dir, skip_head) {
            // A half-written snapshot must not count against the limit or hold disk.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::internal(format!("create snapshot: {e}")));
        }
        let mut out = String::from("{\"name\":");
        json::string(&mut out, &name);
        out.push('}');
        Ok(Reply::new(out))
    })
    .await
    .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bools_parse_like_go() {
        assert_eq!(super::go_parse_bool("True"), Ok(true));
        assert_eq!(super::go_parse_bool("0"), Ok(false));
        assert_eq!(super::go_parse_bool("yes").unwrap_err(), "strconv.ParseBool: parsing \"yes\": invalid syntax");
    }

    #[test]
    fn one_snapshot_at_a_time_per_directory() {
        let a = std::path::Path::new("/nonexistent/a/snapshots");
        let first = super::Busy::take(a).expect("free");
        assert!(super::Busy::take(a).is_none(), "a second snapshot of the same directory must wait");
        let other = super::Busy::take(std::path::Path::new("/nonexistent/b/snapshots"));
        assert!(other.is_some(), "another database is independent");
        drop(first);
        assert!(super::Busy::take(a).is_some(), "released when the first finishes");
    }
}
