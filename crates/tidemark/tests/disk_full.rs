//! `tidemark serve` on a small real file system (a tmpfs mounted for the
//! test; the suite runs as root): with `--retention.size` the data directory
//! stays under the limit while a remote-write load fills it for minutes,
//! writes keep being accepted, and deleted data stays deleted across
//! `kill -9` and restarts; without a limit, a full disk fails writes (503,
//! `/-/ready` 503, `tidemark_storage_writable 0`) until space is freed, then
//! writes resume by themselves and SIGTERM exits 0.
//!
//! `TIDEMARK_DISK_FULL_SECS` sets the load's duration of the size-limit run
//! (default 90 s; the reliability document's figures come from a 600 s run).
//! Each run prints a summary table line to stderr (`--nocapture`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tidemark::remote::proto::v1;
use tidemark_testkit::{Tidemark, TidemarkConfig};

/// A tmpfs mounted at a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount(8) (this test needs root and util-linux): {e}"));
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs failed (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a process still holding files (a failed test) cannot
        // keep the mount around.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn start(data_dir: &Path, extra: &[&str]) -> Tidemark {
    let config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), data_dir).with_args(extra);
    Tidemark::start(config).unwrap_or_else(|e| panic!("{e}"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// A remote-write request of one sample for each of `n` series at `t`, with
/// values that compress poorly (like real gauges), so blocks are not tiny.
fn request(n: usize, t: i64) -> Vec<u8> {
    let timeseries = (0..n)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (t as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
            v1::TimeSeries {
                labels: vec![
                    v1::Label { name: "__name__".into(), value: "load".into() },
                    v1::Label { name: "instance".into(), value: format!("host-{i:05}") },
                    v1::Label { name: "job".into(), value: "disk-full".into() },
                ],
                samples: vec![v1::Sample { value: (x % 1_000_000) as f64 / 7.0, timestamp: t }],
                ..Default::default()
            }
        })
        .collect();
    let req = v1::WriteRequest { timeseries, metadata: Vec::new() };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
}

fn post(agent: &ureq::Agent, base: &str, body: &[u8]) -> u16 {
    match agent
        .post(&format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send(body)
    {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("remote write transport error: {e}"),
    }
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut r = agent.get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// The value of an unlabelled metric in `/metrics`.
fn metric(agent: &ureq::Agent, base: &str, name: &str) -> Option<f64> {
    let (_, text) = get(agent, &format!("{base}/metrics"));
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// `count(<selector> @ t)` as a number (0 when empty).
fn count_at(agent: &ureq::Agent, base: &str, selector: &str, t_ms: i64) -> u64 {
    let q = format!("count({selector})");
    let url = format!(
        "{base}/api/v1/query?query={}&time={}",
        q.replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
            .replace('[', "%5B")
            .replace(']', "%5D"),
        t_ms as f64 / 1000.0
    );
    let (status, body) = get(agent, &url);
    assert_eq!(status, 200, "{body}");
    match body.find("\"value\":[") {
        None => 0,
        Some(i) => {
            let rest = &body[i..];
            let v = rest.split('"').nth(3).unwrap_or("0");
            v.parse().unwrap_or_else(|_| panic!("bad count in {body}"))
        }
    }
}

/// Bytes of every file under `dir` (what `du --apparent-size` counts).
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// What each top-level entry of `dir` holds, for a report of an overshoot.
fn breakdown(dir: &Path) -> String {
    let mut parts: Vec<(u64, String)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let size = if e.path().is_dir() { du(&e.path()) } else { e.metadata().map_or(0, |m| m.len()) };
                    (size, e.file_name().to_string_lossy().into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    parts.sort_by(|a, b| b.cmp(a));
    parts.iter().take(8).map(|(n, name)| format!("{name}={n}")).collect::<Vec<_>>().join(" ")
}

/// Samples `du` of `dir` every 100 ms until stopped; returns the peak. The
/// test sets `phase` so an overshoot can be placed.
struct DuSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    phase: Arc<AtomicU64>,
    over: Arc<std::sync::Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl DuSampler {
    fn start(dir: PathBuf) -> DuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(AtomicU64::new(0));
        let phase = Arc::new(AtomicU64::new(0));
        let over = Arc::new(std::sync::Mutex::new(Vec::new()));
        let handle = {
            let (stop, peak, samples, phase, over) =
                (stop.clone(), peak.clone(), samples.clone(), phase.clone(), over.clone());
            let t0 = Instant::now();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = du(&dir);
                    peak.fetch_max(n, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                    if n > LIMIT {
                        let mut o = over.lock().unwrap();
                        if o.len() < 5 {
                            o.push(format!(
                                "{n} B at {:.1} s, phase {}: {}",
                                t0.elapsed().as_secs_f64(),
                                phase.load(Ordering::Relaxed),
                                breakdown(&dir)
                            ));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        DuSampler { stop, peak, samples, phase, over, handle: Some(handle) }
    }

    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        let over = self.over.lock().unwrap().clone();
        (self.peak.load(Ordering::Relaxed), self.samples.load(Ordering::Relaxed), over)
    }
}

const LIMIT: u64 = 32 << 20;
const SERIES: usize = 2_000;
/// Simulated time per request: the load covers hours of data in minutes,
/// so block ranges complete and size retention has blocks to delete.
const STEP_MS: i64 = 15_000;

#[test]
fn size_limit_holds_on_a_small_tmpfs_under_a_filling_load() {
    let secs: u64 = std::env::var("TIDEMARK_DISK_FULL_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(90);
    let fs = Tmpfs::mount("48m");
    let data = fs.path().join("data");
    let args = ["--retention.size", "32MB", "--retention.time", "0"];
    let server = start(&data, &args);
    let base = server.url();
    let agent = agent();
    let sampler = DuSampler::start(data.clone());

    // Simulated time starts 30 days ago and moves 15 s per request.
    let t0 = tidemark_testkit::now_ms() - 30 * 86_400_000;
    let started = Instant::now();
    let (mut ok, mut refused) = (0u64, 0u64);
    let mut longest_5xx = Duration::ZERO;
    let mut run_start: Option<Instant> = None;
    let mut t = t0;
    let mut last_acked = None;
    let mut per_window = Vec::new(); // (ok, 5xx) per 10 s
    let (mut w_ok, mut w_bad, mut w_start) = (0u64, 0u64, Instant::now());
    while started.elapsed() < Duration::from_secs(secs) {
        let status = post(&agent, &base, &request(SERIES, t));
        match status {
            200..=299 => {
                ok += 1;
                w_ok += 1;
                last_acked = Some(t);
                if let Some(s) = run_start.take() {
                    longest_5xx = longest_5xx.max(s.elapsed());
                }
                t += STEP_MS;
            }
            500..=599 => {
                refused += 1;
                w_bad += 1;
                run_start.get_or_insert_with(Instant::now);
                // A sender backs off before retrying the same request.
                std::thread::sleep(Duration::from_millis(50));
            }
            s => panic!("unexpected status {s} at t={t}"),
        }
        if w_start.elapsed() >= Duration::from_secs(10) {
            per_window.push((w_ok, w_bad));
            (w_ok, w_bad, w_start) = (0, 0, Instant::now());
        }
    }
    if let Some(s) = run_start {
        longest_5xx = longest_5xx.max(s.elapsed());
    }
    let elapsed = started.elapsed();
    let last = last_acked.expect("some writes were accepted");

    // The newest acknowledged sample of every series is readable.
    assert_eq!(count_at(&agent, &base, "load", last), SERIES as u64, "the last acknowledged samples are not all there");
    let floor = metric(&agent, &base, "tidemark_retention_floor_ms").expect("size retention deleted something") as i64;
    let deletions = get(&agent, &format!("{base}/metrics")).1;
    let limit_seen = metric(&agent, &base, "tidemark_storage_disk_limit_bytes").unwrap_or(0.0) as u64;
    assert!(floor > t0, "floor {floor} t0 {t0}");
    let below = floor - 60_000;
    assert_eq!(count_at(&agent, &base, "load", below), 0, "data below the floor is still served");

    // kill -9, restart: acknowledged data is there, deleted data is not.
    sampler.phase.store(1, Ordering::Relaxed);
    drop(server);
    let server = start(&data, &args);
    let base = server.url();
    assert_eq!(count_at(&agent, &base, "load", last), SERIES as u64, "acknowledged samples lost by kill -9");
    assert_eq!(count_at(&agent, &base, "load", below), 0, "deleted data came back after kill -9");
    // More load after the restart, then SIGTERM and another restart.
    sampler.phase.store(2, Ordering::Relaxed);
    let mut t2 = last + STEP_MS;
    let mut last2 = last;
    for _ in 0..100 {
        if (200..300).contains(&post(&agent, &base, &request(SERIES, t2))) {
            last2 = t2;
            t2 += STEP_MS;
        }
    }
    sampler.phase.store(3, Ordering::Relaxed);
    let mut server = server;
    let status = server.terminate(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM exit status; log:\n{}", server.log_tail(30));
    drop(server);
    let server = start(&data, &args);
    let base = server.url();
    assert_eq!(count_at(&agent, &base, "load", last2), SERIES as u64);
    assert_eq!(count_at(&agent, &base, "load", below), 0, "deleted data came back after a restart");
    let (peak, du_samples, over) = sampler.finish();
    let mut server = server;
    assert_eq!(server.terminate(Duration::from_secs(30)).unwrap().code(), Some(0));

    let total = ok + refused;
    let worst_window = per_window.iter().map(|&(o, b)| b as f64 / (o + b).max(1) as f64).fold(0.0, f64::max);
    eprintln!(
        "disk-full run: tmpfs 48 MiB, --retention.size 32MB ({LIMIT} B, limit in force {limit_seen} B), {SERIES} series/request, \
         {secs} s load ({:.0} s): requests {total}, 2xx {ok}, 5xx {refused} ({:.2}%), worst 10 s window {:.0}% 5xx, \
         longest 5xx run {:.2} s, samples accepted {}, simulated span {:.1} h, du peak {peak} B ({:.1}% of limit) over {du_samples} samples, \
         floor {:.1} h after start, retention deletions: {}",
        elapsed.as_secs_f64(),
        100.0 * refused as f64 / total.max(1) as f64,
        100.0 * worst_window,
        longest_5xx.as_secs_f64(),
        ok * SERIES as u64,
        (last - t0) as f64 / 3_600_000.0,
        100.0 * peak as f64 / LIMIT as f64,
        (floor - t0) as f64 / 3_600_000.0,
        deletions.lines().find(|l| l.starts_with("tidemark_retention_deletions_total{reason=\"size\"}")).unwrap_or("?"),
    );
    assert!(
        peak <= LIMIT,
        "the data directory reached {peak} bytes, over the {LIMIT}-byte limit:\n{}",
        over.join("\n")
    );
    assert!(ok * 10 >= total * 9, "too many refusals: {refused} of {total}");
    assert!(longest_5xx < Duration::from_secs(10), "writes were refused for {longest_5xx:?} in a row");
}

#[test]
fn without_a_limit_a_full_disk_fails_writes_until_space_is_freed() {
    let fs = Tmpfs::mount("24m");
    let data = fs.path().join("data");
    let server = start(&data, &["--retention.time", "0"]);
    let base = server.url();
    let agent = agent();
    // Fill the file system but for ~2 MiB with a file that is not ours.
    let filler = fs.path().join("filler");
    fill_but(fs.path(), &filler, 2);
    let t0 = tidemark_testkit::now_ms() - 86_400_000;
    let mut t = t0;
    let mut last_acked = None;
    let started = Instant::now();
    let first_fail = loop {
        assert!(started.elapsed() < Duration::from_secs(120), "the disk never filled");
        let status = post(&agent, &base, &request(500, t));
        if (200..300).contains(&status) {
            last_acked = Some(t);
            t += 1_000;
        } else {
            assert_eq!(status, 503, "a full disk answers 503 (retryable)");
            break t;
        }
    };
    let last = last_acked.expect("writes were accepted before the disk filled");
    // Still full: more writes fail, readiness and /metrics say so.
    assert_eq!(post(&agent, &base, &request(500, first_fail)), 503);
    let (ready, why) = get(&agent, &format!("{base}/-/ready"));
    assert_eq!(ready, 503, "{why}");
    assert!(why.contains("WAL"), "{why}");
    assert_eq!(metric(&agent, &base, "tidemark_storage_writable"), Some(0.0));
    let (healthy, _) = get(&agent, &format!("{base}/-/healthy"));
    assert_eq!(healthy, 200, "the process itself is healthy");
    // Free space: writes resume (by the next commit, at the latest within
    // one maintenance interval, 30 s by default).
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let resumed = loop {
        let status = post(&agent, &base, &request(500, first_fail));
        if (200..300).contains(&status) {
            break freed.elapsed();
        }
        assert!(freed.elapsed() < Duration::from_secs(30), "writes did not resume within one maintenance interval");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(get(&agent, &format!("{base}/-/ready")).0, 200);
    assert_eq!(metric(&agent, &base, "tidemark_storage_writable"), Some(1.0));
    assert_eq!(count_at(&agent, &base, "load", last), 500);
    assert_eq!(count_at(&agent, &base, "load", first_fail), 500);
    let mut server = server;
    let status = server.terminate(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM after a disk-full episode; log:\n{}", server.log_tail(30));
    drop(server);
    let server = start(&data, &[]);
    let base = server.url();
    assert_eq!(count_at(&agent, &base, "load", first_fail), 500, "acknowledged samples survive a restart");
    // Fill again and stop while the disk is still full: still exit 0.
    fill_but(fs.path(), &filler, 2);
    let mut t = first_fail + 1_000;
    let mut last_acked = first_fail;
    let refill = Instant::now();
    loop {
        assert!(refill.elapsed() < Duration::from_secs(120), "the disk never filled again");
        if (200..300).contains(&post(&agent, &base, &request(500, t))) {
            last_acked = t;
            t += 1_000;
        } else {
            break;
        }
    }
    assert_eq!(get(&agent, &format!("{base}/-/ready")).0, 503);
    let mut server = server;
    let status = server.terminate(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM while the disk is full; log:\n{}", server.log_tail(30));
    drop(server);
    std::fs::remove_file(&filler).unwrap();
    let server = start(&data, &[]);
    assert_eq!(count_at(&agent, &server.url(), "load", last_acked), 500, "acknowledged before SIGTERM on a full disk");
    eprintln!(
        "disk-full run without a limit: tmpfs 24 MiB with a filler leaving ~2 MiB, 500 series/request: \
         {} requests accepted before ENOSPC ({:.1} s), 503 + /-/ready 503 + writable 0 while full, \
         writes resumed {:.2} s after the filler was deleted, SIGTERM exit 0 (also while full), data intact after restarts",
        (last - t0) / 1_000 + 1,
        started.elapsed().as_secs_f64(),
        resumed.as_secs_f64()
    );
}

/// Writes `filler` so that only about `mib_left` MiB stay free on `fs`.
fn fill_but(fs: &Path, filler: &Path, mib_left: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    let avail = statvfs_avail(fs);
    for _ in 0..(avail >> 20).saturating_sub(mib_left) {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
}

fn statvfs_avail(path: &Path) -> u64 {
    let out = Command::new("stat").args(["-f", "-c", "%a %S"]).arg(path).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    it.next().unwrap() * it.next().unwrap()
}
