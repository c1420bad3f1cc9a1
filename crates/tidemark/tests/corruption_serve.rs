//! `tidemark serve` on a data directory with a damaged WAL segment and a
//! damaged chunk: it starts and reports ready, serves everything intact,
//! answers the damaged range with a warning instead of an error, and tells
//! the operator what was lost in `/metrics` and `/api/v1/status/tsdb`.

use std::fs;
use std::path::{Path, PathBuf};

use tidemark::storage::{Db, Labels};
use tidemark_testkit::{Tidemark, TidemarkConfig};

const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const SERIES: usize = 5;
/// Start of the WAL-only hour: the first 2 h boundary after the block data.
const W: i64 = (T0 + 2 * HOUR + 2 * HOUR - 1) / (2 * HOUR) * 2 * HOUR;

fn labels(i: usize) -> Labels {
    Labels::new([("__name__", "m"), ("instance", &format!("h{i}"))]).unwrap()
}

fn fill(db: &Db, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for i in 0..SERIES {
            app.append(&labels(i), t, (i as i64 * 1000 + (t - T0) / STEP) as f64).unwrap();
        }
        app.commit().unwrap();
        t += STEP;
    }
}

fn get(url: &str) -> String {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    agent.get(url).call().unwrap().body_mut().read_to_string().unwrap()
}

fn sorted_files(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    v.sort();
    v
}

/// Flips the last 8 bytes (the last sample's value) of the frame in the
/// middle of a WAL segment file.
fn damage_middle_record(seg: &Path) {
    let mut b = fs::read(seg).unwrap();
    let mut ends = Vec::new();
    let mut p = 8;
    while p + 8 <= b.len() {
        let len = u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) as usize;
        if len == 0 || p + 8 + len > b.len() {
            break;
        }
        p += 8 + len;
        ends.push(p);
    }
    let end = ends[ends.len() / 2];
    for x in &mut b[end - 8..end] {
        *x ^= 0xff;
    }
    fs::write(seg, b).unwrap();
}

#[test]
fn serve_starts_on_damaged_files_serves_the_rest_and_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::builder(dir.path()).maintenance_interval(None).wal_segment_size(1024).open().unwrap();
        fill(&db, T0, T0 + 2 * HOUR);
        assert!(db.flush_head().unwrap() >= 1);
        fill(&db, W, W + HOUR);
        db.close().unwrap();
    }
    // A middle WAL segment loses one record; one chunk of a block rots.
    let segs = sorted_files(&dir.path().join("wal"), |n| n.bytes().all(|b| b.is_ascii_digit()));
    // Compressed records (format 2) fill fewer segments than plain ones.
    assert!(segs.len() >= 3, "{segs:?}");
    damage_middle_record(&segs[segs.len() / 2]);
    let block = sorted_files(dir.path(), |n| n.len() == 26)[0].clone();
    let chunk_file = block.join("chunks").join("000001");
    let mut b = fs::read(&chunk_file).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    fs::write(&chunk_file, b).unwrap();
    let block_id = block.file_name().unwrap().to_str().unwrap().to_string();

    let config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), dir.path());
    let server = Tidemark::start(config).unwrap_or_else(|e| panic!("{e}"));
    let base = server.url();

    // The whole range: answered, with a warning naming the damaged block.
    let url = format!(
        "{base}/api/v1/query_range?query=count_over_time(m[1m])&start={}&end={}&step=60",
        T0 / 1000,
        (W + HOUR) / 1000
    );
    let body = get(&url);
    let tail = &body[body.len().saturating_sub(400)..];
    assert!(body.starts_with(r#"{"status":"success""#), "{tail}");
    // Small chunks of neighbouring series share one record (a chunk group,
    // index v4): the flipped byte costs every chunk of its group, 1 to 15
    // series, and only those.
    let lost = body
        .split("damaged data skipped: ")
        .nth(1)
        .and_then(|w| w.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no damage warning: {tail}"));
    assert!((1..=15).contains(&lost), "{tail}");
    let warning = format!("damaged data skipped: {lost} unreadable chunk(s) of {lost} series in block {block_id}");
    assert!(body.contains(r#""warnings":["PromQL warning: "#) && body.contains(&warning), "{tail}");
    // The WAL-backed hour lost exactly one commit: 5 samples at one step.
    let wal_hour = format!("{base}/api/v1/query?query=sum(count_over_time(m[1h]))&time={}", (W + HOUR - 1) / 1000);
    let body = get(&wal_hour);
    assert!(body.contains(&format!(r#""{}"]"#, 60 * SERIES - SERIES)), "{body}");

    let metrics = get(&format!("{base}/metrics"));
    for line in [
        "tidemark_wal_corruptions_total 1",
        "tidemark_wal_records_skipped_total 1",
        &format!("tidemark_wal_samples_lost_total {SERIES}"),
        &format!("tidemark_chunks_corrupt_total {lost}"),
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line:?}:\n{metrics}");
    }
    let status = get(&format!("{base}/api/v1/status/tsdb"));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let d = &v["data"]["tidemarkDamage"];
    assert_eq!(d["walCorruptions"], 1, "{status}");
    assert_eq!(d["walSamplesLost"], SERIES, "{status}");
    assert_eq!(d["chunksCorrupt"], lost, "{status}");
    assert_eq!(d["chunks"][0]["block"], block_id.as_str(), "{status}");
    assert!(d["wal"][0]["quarantinedTo"].as_str().unwrap().contains("quarantine/wal-"), "{status}");
    drop(server);
}
