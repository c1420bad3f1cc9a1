//! Sends the comparison tool's synthetic remote-write load to one
//! `tidemark serve` and reports only the ingest figures: wall rate and the
//! server's CPU time (user + system from `/proc/<pid>/stat`) per million
//! samples. No queries, no persisting: a quick A/B of two server builds,
//! and a window to attach `perf` to (`--pause`).
//!
//! ```sh
//! cargo run --release -p tidemark-bench --bin ingest_drive -- \
//!     --bin target/release/tidemark --series 100000 --samples-per-series 60
//! ```
//!
//! With `--warmup-rounds N` the first `N` scrape rounds (which create every
//! series) are sent before the measurement starts and are not counted: the
//! figures are then the steady state of a server whose series all exist,
//! which is what a production receiver spends nearly all its time in
//! (~257 samples per series per head block at 15 s).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use tidemark_bench::compare::load::{Load, Request, SyntheticOptions};
use tidemark_bench::compare::systems::{Running, SystemKind};
use tidemark_testkit::{now_ms, Http};

#[derive(Parser)]
struct Args {
    /// The `tidemark` binary to run.
    #[arg(long)]
    bin: PathBuf,
    /// Series of the synthetic fleet.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Scrape targets (two per host): with `--targets 2000 --series
    /// 368695`, the production shape (busier services). Default: the
    /// default host shape.
    #[arg(long)]
    targets: Option<usize>,
    /// Samples per series (15 s apart).
    #[arg(long, default_value_t = 60)]
    samples_per_series: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Samples per request.
    #[arg(long, default_value_t = 2000)]
    per_request: usize,
    /// Scrape rounds sent first, unmeasured (series creation), before the
    /// measured sends of the remaining rounds.
    #[arg(long, default_value_t = 0)]
    warmup_rounds: usize,
    /// Seconds to wait after printing the server's pid (and after the
    /// warm-up, if any) before the measured sends (to attach a profiler or
    /// zero callgrind's counters).
    #[arg(long, default_value_t = 0)]
    pause: u64,
    /// Seconds to keep each server up after its sends, its URL printed
    /// (to time queries against the loaded data by hand).
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// Run the load this many times, each on a fresh server (A/B runs
    /// interleave by calling the binary per build in turn).
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

fn main() {
    let args = Args::parse();
    let end_ms = (now_ms() - 60_000).div_euclid(15_000) * 15_000;
    let load = Load::synthetic(SyntheticOptions {
        series: args.series,
        targets: args.targets,
        samples_per_series: args.samples_per_series,
        end_ms,
        seed: 42,
    });
    let mut builder = load.request_builder(args.senders, args.per_request);
    let warmup = if args.warmup_rounds > 0 { builder.next_rounds(args.warmup_rounds, |_| {}) } else { Vec::new() };
    let requests = builder.next_rounds(usize::MAX, |_| {});
    let bytes: usize = requests.iter().flatten().map(|r| r.body.len()).sum();
    // The samples measured: the whole load less the warm-up.
    let warm_samples: u64 = warmup.iter().flatten().map(|r| u64::from(r.samples)).sum();
    let samples = load.samples as u64 - warm_samples;
    eprintln!(
        "load: {} series, {} samples measured ({} in the warm-up), {} requests, {:.1} MB compressed",
        load.series.len(),
        samples,
        warm_samples,
        requests.iter().map(Vec::len).sum::<usize>(),
        bytes as f64 / 1e6
    );
    for run in 0..args.runs {
        let running = Running::start(SystemKind::Tidemark, &args.bin).expect("start tidemark");
        let pid = running.process().pid();
        eprintln!("run {run}: tidemark pid {pid}");
        let url = format!("{}/api/v1/write", running.process().url());
        if !warmup.is_empty() {
            let t0 = Instant::now();
            let failed = send_all(&url, &warmup);
            eprintln!("run {run}: warm-up sent in {:.1} s, {failed} failed", t0.elapsed().as_secs_f64());
        }
        if args.pause > 0 {
            std::thread::sleep(Duration::from_secs(args.pause));
        }
        let before = running.process().stats().expect("stats");
        let t0 = Instant::now();
        let failed = send_all(&url, &requests);
        let wall = t0.elapsed().as_secs_f64();
        let during = running.process().stats().expect("stats");
        std::thread::sleep(Duration::from_secs(3));
        let after = running.process().stats().expect("stats");
        let m = samples as f64 / 1e6;
        println!(
            "run {run}: {:.0} samples/s, {:.3} CPU-s/M samples ({:.3} during the sends, {:.2} cores busy), peak RSS {:.0} MiB, {} failed",
            samples as f64 / wall,
            (after.cpu_seconds - before.cpu_seconds) / m,
            (during.cpu_seconds - before.cpu_seconds) / m,
            // The server's CPU utilisation while the senders ran: what it
            // leaves idle shows what serialises it.
            (during.cpu_seconds - before.cpu_seconds) / wall,
            after.peak_rss_bytes as f64 / (1 << 20) as f64,
            failed
        );
        if args.hold > 0 {
            eprintln!("run {run}: holding {} s at {}", args.hold, running.process().url());
            std::thread::sleep(Duration::from_secs(args.hold));
        }
        running.stop().expect("stop");
    }
}

/// Sends each sender's requests in order, the senders concurrently; returns
/// how many requests failed (the first failure is printed).
fn send_all(url: &str, requests: &[Vec<Request>]) -> usize {
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for mine in requests {
            let failed = &failed;
            s.spawn(move || {
                let http = Http::new(Duration::from_secs(300));
                let headers = [
                    ("Content-Type", "application/x-protobuf"),
                    ("Content-Encoding", "snappy"),
                    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                ];
                for r in mine {
                    match http.post(url, &headers, &r.body) {
                        Ok(resp) if resp.is_success() => {}
                        Ok(resp) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("{}: {}", resp.status, resp.text().trim());
                            }
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("{e}");
                            }
                        }
                    }
                }
            });
        }
    });
    failed.into_inner()
}
