//! An acknowledged sample survives `kill -9`: a child process appends and
//! reports every commit it got back; the parent kills it with SIGKILL at a
//! random moment, reopens the directory and finds every acknowledged sample.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tidemark_storage::{Db, Labels, Matcher};

const CHILD_ENV: &str = "TIDEMARK_KILL9_CHILD_DIR";

fn labels(i: u64) -> Labels {
    Labels::new([("__name__", "kill9_test"), ("series", &(i % 50).to_string())]).unwrap()
}

/// Runs only as the child process of `acknowledged_samples_survive_kill_9`.
#[test]
fn kill9_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let db =
        Db::builder(&dir).block_range(60_000).maintenance_interval(Some(Duration::from_millis(50))).open().unwrap();
    let mut out = std::io::stdout().lock();
    let mut t = 0u64;
    loop {
        let mut app = db.appender();
        for _ in 0..100 {
            t += 1;
            app.append(&labels(t), t as i64 * 10, t as f64).unwrap();
        }
        app.commit().unwrap();
        // Only now is the batch acknowledged.
        writeln!(out, "acked {t}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_samples_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill9_child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked = 0u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = 20_000 + round * 7_000;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().unwrap();
                if acked >= target || Instant::now() > deadline {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(acked > 0, "child acknowledged nothing");

        let db = Db::builder(dir.path()).block_range(60_000).maintenance_interval(None).open().unwrap();
        let q = db.querier(0, i64::MAX);
        let series = q.select(&[Matcher::equal("__name__", "kill9_test")]).unwrap();
        let mut seen = 0u64;
        for s in &series {
            seen += s.samples().unwrap().iter().filter(|x| x.t <= acked as i64 * 10).count() as u64;
        }
        assert!(seen >= acked, "round {round}: {acked} samples acknowledged, {seen} found after kill -9");
        db.close().unwrap();
        // The next child continues in the same directory: timestamps restart,
        // so use a fresh directory to keep the arithmetic simple.
        std::fs::remove_dir_all(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
    }
}
