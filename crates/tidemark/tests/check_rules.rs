//! `tidemark check rules FILE…`: the built binary's exit code and output,
//! next to Debian's `promtool check rules` on the same files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tidemark_check(files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["check", "rules"])
        .args(files)
        .output()
        .expect("run the tidemark binary")
}

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/rules/seed-rules.yml")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const BAD: &str = "groups:
  - name: api
    rules:
      - record: job:up:sum
        alert: JobDown
        expr: sum by (job) (up) == 0
  - name: api
    rules:
      - record: 5xx:rate5m
        expr: sum(rate(http_requests_total{code=~\"5..\"}[5m]))
";

#[test]
fn a_good_file_passes() {
    let seed = seed();
    let out = tidemark_check(&[&seed]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("Checking {}\n  SUCCESS: 20 rules found\n\n", seed.display())
    );
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}

#[test]
fn a_bad_file_fails_with_promtools_output() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.yml", BAD);
    let b = bad.display();
    let out = tidemark_check(&[&bad]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout.clone()).unwrap(), format!("Checking {b}\n\n"));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(
        stderr,
        format!(
            "  FAILED:\n\
             {b}: 4:17: 5:16: group \"api\", rule 1, \"JobDown\": only one of 'record' and 'alert' must be set\n\
             {b}: 7:5: groupname: \"api\" is repeated in the same file\n\
             {b}: 9:17: group \"api\", rule 1, \"5xx:rate5m\": invalid recording rule name: 5xx:rate5m\n"
        )
    );

    // Promtool prints the same, in the same order, to the same streams.
    let promtool = tidemark_testkit::promtool(["check".as_ref(), "rules".as_ref(), bad.as_os_str()]).unwrap();
    assert_eq!(promtool.status.code(), Some(1));
    assert_eq!(promtool.stdout.as_bytes(), &out.stdout[..]);
    assert_eq!(promtool.stderr, stderr);
}

#[test]
fn one_bad_file_among_good_ones_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.yml", BAD);
    let seed = seed();
    let missing = dir.path().join("missing.yml");
    let out = tidemark_check(&[&seed, &bad, &missing]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "Checking {}\n  SUCCESS: 20 rules found\n\nChecking {}\n\nChecking {}\n\n",
            seed.display(),
            bad.display(),
            missing.display()
        )
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let m = missing.display();
    assert!(stderr.ends_with(&format!("  FAILED:\n{m}: open {m}: no such file or directory\n")), "{stderr}");
}

#[test]
fn no_file_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark")).args(["check", "rules"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("<FILES>..."));
}
