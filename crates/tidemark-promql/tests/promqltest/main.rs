//! promqltest: runs Prometheus' upstream PromQL test scripts (and our own in
//! `testdata/promql/`) against Tidemark's engine, with our own
//! implementation of the script language.
//!
//! Run: `cargo test --release -p tidemark-promql --test promqltest`.
//!
//! - Upstream scripts are read at test time from `$TIDEMARK_PROMQLTEST_DIR`,
//!   else `<repo>/../shared/promqltest/upstream`; their classification from
//!   `evals.tsv` next to that directory. A missing directory fails the test.
//! - Prints one line per file and the final summary
//!   `promqltest: core P/889 passed, extended Q/1004 passed`.
//! - Fails when the core or the extended pass count drops below its line in
//!   `testdata/promql/RATCHET`,
//!   or when any eval of our own scripts fails.
//! - `PROMQLTEST_VERBOSE=1` prints every failure (`=core`, `=extended`,
//!   `=out-of-scope` only that bucket's); `PROMQLTEST_FILE=<name>` runs one
//!   file (upstream or ours; the ratchet is then not enforced).

mod compare;
mod histo;
mod nhcb;
mod notation;
mod readback;
mod report;
mod runner;
mod script;
mod selfcheck;
mod variants;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use report::{print_failure, print_script_errors, Bucket, Classification, Tally};
use runner::Runner;

/// Default longest time one query may take before the harness abandons it.
/// The engine's own timeout is upstream's 100 s; this only guards against
/// an engine that never checks it, so that the run still finishes.
const DEFAULT_WATCHDOG_SECS: u64 = 30;

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    // Canonical paths read better in messages; keep the joined one if the
    // file system cannot resolve it.
    root.canonicalize().unwrap_or(root)
}

fn upstream_dir() -> PathBuf {
    match std::env::var_os("TIDEMARK_PROMQLTEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("..").join("shared").join("promqltest").join("upstream"),
    }
}

fn test_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> =
        rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "test")).collect();
    files.sort();
    Ok(files)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether `PROMQLTEST_FILE` selects this file (with or without `.test`).
fn selected(filter: &Option<String>, name: &str) -> bool {
    match filter {
        None => true,
        Some(f) => name == f || name.strip_suffix(".test") == Some(f.as_str()),
    }
}

/// Which failures `PROMQLTEST_VERBOSE` asks to print.
enum Verbosity {
    Quiet,
    All,
    Bucket(Bucket),
}

impl Verbosity {
    fn from_env() -> Verbosity {
        match std::env::var("PROMQLTEST_VERBOSE").ok().as_deref() {
            None | Some("") | Some("0") => Verbosity::Quiet,
            Some("core") => Verbosity::Bucket(Bucket::Core),
            Some("extended") => Verbosity::Bucket(Bucket::Extended),
            Some("out-of-scope") | Some("out_of_scope") => Verbosity::Bucket(Bucket::OutOfScope),
            Some(_) => Verbosity::All,
        }
    }

    fn shows(&self, b: Bucket) -> bool {
        match self {
            Verbosity::Quiet => false,
            Verbosity::All => true,
            Verbosity::Bucket(x) => *x == b,
        }
    }
}

fn main() {
    // Behave like a libtest binary towards `cargo test` arguments: list
    // ourselves, and stay out of runs filtered to other tests.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("promqltest: test");
        return;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        let exact = args.iter().any(|a| a == "--exact");
        let matches = if exact { filter == "promqltest" } else { "promqltest".contains(filter.as_str()) };
        if !matches {
            println!("promqltest: not run (filtered out by {filter:?})");
            return;
        }
    }
    let started = Instant::now();
    let verbosity = Verbosity::from_env();
    runner::install_panic_hook(matches!(verbosity, Verbosity::All));
    if let Err(e) = selfcheck::run() {
        eprintln!("promqltest: self-check of the script parser failed: {e}");
        std::process::exit(1);
    }
    let code = match run(&verbosity) {
        Ok(ok) => {
            if ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("promqltest: {e}");
            1
        }
    };
    eprintln!("promqltest: finished in {:.1?}", started.elapsed());
    std::process::exit(code);
}

/// Runs everything; `Ok(false)` when the test fails on its own terms.
fn run(verbosity: &Verbosity) -> Result<bool, String> {
    let filter = std::env::var("PROMQLTEST_FILE").ok().filter(|s| !s.is_empty());
    let watchdog = std::env::var("PROMQLTEST_QUERY_WATCHDOG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_WATCHDOG_SECS);
    let watchdog = Duration::from_secs(watchdog);
    let up_dir = upstream_dir();
    if !up_dir.is_dir() {
        return Err(format!(
            "the upstream test scripts are missing: {} is not a directory (set TIDEMARK_PROMQLTEST_DIR to the directory holding the upstream *.test files)",
            up_dir.display()
        ));
    }
    let tsv = up_dir.join("..").join("evals.tsv");
    let classes = Classification::load(&tsv)?;
    let upstream = test_files(&up_dir)?;
    if upstream.is_empty() {
        return Err(format!("no *.test files in {}", up_dir.display()));
    }
    let own_dir = repo_root().join("testdata").join("promql");
    let own = test_files(&own_dir)?;

    let mut ok = true;
    let mut total = Tally::default();
    let mut ran_upstream = false;
    for path in &upstream {
        let name = file_name(path);
        if !selected(&filter, &name) {
            continue;
        }
        ran_upstream = true;
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cmds = script::parse_script(&text);
        let out = Runner::new(watchdog).run_script(&cmds);
        print_script_errors(&name, &out);
        let mut tally = Tally::default();
        for e in &out.evals {
            let b = classes.bucket(&name, e.line);
            tally.add(b, e.failure.is_none());
            if e.failure.is_some() && verbosity.shows(b) {
                print_failure(&name, Some(b), e);
            }
        }
        let (cp, cn) = tally.get(Bucket::Core);
        let (ep, en) = tally.get(Bucket::Extended);
        let (op, on) = tally.get(Bucket::OutOfScope);
        let mut line = format!("{name}: core {cp}/{cn}, extended {ep}/{en}, out-of-scope {op}/{on}");
        let (_, un) = tally.get(Bucket::Unclassified);
        if un > 0 {
            line.push_str(&format!(" (and {un} evals missing from evals.tsv)"));
        }
        // The table and the scripts must agree on where the evals are.
        let listed = classes.count(Some(&name), Bucket::Core)
            + classes.count(Some(&name), Bucket::Extended)
            + classes.count(Some(&name), Bucket::OutOfScope);
        if listed != out.evals.len() - un {
            line.push_str(&format!(" (evals.tsv lists {listed} evals, the script has {})", out.evals.len()));
        }
        println!("{line}");
        total.merge(&tally);
    }

    // Our own scripts: every eval must pass.
    let mut own_failed = 0usize;
    let mut ran_own = false;
    for path in &own {
        let name = file_name(path);
        if !selected(&filter, &name) {
            continue;
        }
        ran_own = true;
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cmds = script::parse_script(&text);
        let out = Runner::new(watchdog).run_script(&cmds);
        let shown = format!("testdata/promql/{name}");
        print_script_errors(&shown, &out);
        let passed = out.evals.iter().filter(|e| e.failure.is_none()).count();
        for e in &out.evals {
            print_failure(&shown, None, e);
        }
        println!("{shown}: {passed}/{} passed", out.evals.len());
        if passed != out.evals.len() || !out.script_errors.is_empty() {
            own_failed += 1;
        }
    }
    if filter.is_some() && !ran_upstream && !ran_own {
        return Err(format!(
            "PROMQLTEST_FILE={} matches no upstream or testdata/promql file",
            filter.unwrap_or_default()
        ));
    }
    if own_failed > 0 {
        println!("promqltest: {own_failed} of our own testdata/promql scripts have failures (all must pass)");
        ok = false;
    }

    let (cp, cn) = total.get(Bucket::Core);
    let (ep, en) = total.get(Bucket::Extended);
    println!("promqltest: core {cp}/{cn} passed, extended {ep}/{en} passed");

    if filter.is_none() {
        let ratchet_path = own_dir.join("RATCHET");
        let text = std::fs::read_to_string(&ratchet_path)
            .map_err(|e| format!("cannot read the ratchet {}: {e}", ratchet_path.display()))?;
        // `core N` and `extended M`: the lowest accepted pass counts.
        let floor = |bucket: &str| -> Result<usize, String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(bucket)?.trim().parse().ok())
                .ok_or_else(|| format!("{} must hold a line `{bucket} <minimum pass count>`", ratchet_path.display()))
        };
        for (bucket, passed) in [("core", cp), ("extended", ep)] {
            let ratchet = floor(bucket)?;
            if passed < ratchet {
                println!(
                    "promqltest: FAILED: {bucket} pass count {passed} is below the ratchet {ratchet} ({})",
                    ratchet_path.display()
                );
                ok = false;
            } else if passed > ratchet {
                println!(
                    "promqltest: note: {bucket} pass count {passed} is above the ratchet {ratchet}; raise it in {}",
                    ratchet_path.display()
                );
            }
        }
    }
    Ok(ok)
}
