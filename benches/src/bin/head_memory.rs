//! Heap bytes per active series in the head, measured with a counting
//! global allocator (requested bytes, so allocator overhead is excluded).
//!
//! Usage: `head_memory [series=200000] [samples_per_series=20] [file|ram]`
//! (`STRIPES=n` sets the lock shards, `STAGGER=0` aligns chunk cuts).
//! Prints the process's RSS at the end and its peak (`VmHWM`).
//!
//! `file` (the default, as in a `Db` with a directory) writes closed head
//! chunks to a head chunk file in a temporary directory; `ram` keeps them
//! on the heap (a `Db` without a directory).
//!
//! Series carry ~7 realistic labels (node_exporter / kubelet style); each
//! gets `samples_per_series` samples 15 s apart, appended one scrape at a
//! time through cached refs.

use std::time::Instant;

use tidemark_bench::counting_alloc::{self, CountingAlloc};
use tidemark_storage::head::{Head, HeadChunks, HeadMemory, HeadOptions};
use tidemark_storage::Labels;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const METRICS: [&str; 12] = [
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_network_receive_bytes_total",
    "node_filesystem_avail_bytes",
    "node_disk_io_time_seconds_total",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_network_transmit_bytes_total",
    "kube_pod_container_status_restarts_total",
    "kube_pod_status_phase",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
];

/// A realistic label set for series `i`: ~7 labels, a few high-cardinality.
fn labels(i: usize) -> Labels {
    let host = i / 400;
    let pod = i / 40;
    let ns = pod % 25;
    Labels::new([
        ("__name__", METRICS[i % METRICS.len()].to_string()),
        ("instance", format!("10.{}.{}.{}:9100", host / 65536 % 256, host / 256 % 256, host % 256)),
        ("job", if i.is_multiple_of(3) { "node-exporter" } else { "kubernetes-pods" }.to_string()),
        ("namespace", format!("team-{ns}-prod")),
        (
            "pod",
            format!("svc-{ns}-deployment-{:08x}-{:05x}", pod.wrapping_mul(2_654_435_761) % 0xffff_ffff, pod % 0xfffff),
        ),
        ("container", ["app", "sidecar", "istio-proxy", "init"][i % 4].to_string()),
        ("le", ["0.1", "0.5", "1", "5", "+Inf", "10"][i / 12 % 6].to_string()),
    ])
    .expect("valid labels")
}

/// CPU time this process has run, from `/proc/self/schedstat` (Linux), in
/// seconds. The machine may be shared, so CPU time is a fairer measure of
/// single-core throughput than wall time.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// `VmRSS`, `RssAnon`, `RssFile` and `VmHWM` (the peak RSS) of this
/// process in KiB (Linux).
fn rss_kib() -> Option<(u64, u64, u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let get =
        |k: &str| -> Option<u64> { s.lines().find(|l| l.starts_with(k))?.split_whitespace().nth(1)?.parse().ok() };
    Some((get("VmRSS:")?, get("RssAnon:")?, get("RssFile:")?, get("VmHWM:")?))
}

fn print_breakdown(m: &HeadMemory, label_bytes_outside: bool) {
    let n = m.series.max(1) as f64;
    let row = |name: &str, b: u64| println!("  {name:<34} {:>8.1} B/series", b as f64 / n);
    println!("breakdown (requested heap bytes unless noted):");
    row("labels (symbol ids)", m.labels);
    row("symbol table", m.symbol_table);
    row("MemSeries structs", m.series_structs);
    row("ref -> series maps", m.series_maps);
    row("label hash -> ref maps", m.hash_maps);
    row("inverted index", m.index);
    row("closed chunk refs (Vec)", m.closed_chunk_refs);
    row("closed chunk bytes in RAM", m.closed_chunk_bytes_in_ram);
    row("open chunk bytes", m.open_chunk_bytes);
    row("open chunk spare capacity", m.open_chunk_spare);
    row("out-of-order data", m.out_of_order);
    row("closed chunk bytes on disk (not heap)", m.closed_chunk_bytes_on_disk);
    println!("  symbols: {} distinct label names and values", m.symbols);
    if label_bytes_outside {
        println!("  (boxes of the series structs and allocator slack are not included)");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let per: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let in_ram = args.next().is_some_and(|a| a == "ram");
    let tmp = tempfile::tempdir().expect("temporary directory");

    let all: Vec<Labels> = (0..n).map(labels).collect();
    let label_bytes: usize = all.iter().map(Labels::heap_bytes).sum();
    let base = counting_alloc::current();
    let start = Instant::now();

    let mut opts = HeadOptions::default();
    if let Some(stripes) = std::env::var("STRIPES").ok().and_then(|s| s.parse().ok()) {
        opts.stripes = stripes;
    }
    // `STAGGER=0`: every series cuts its chunks at the same instants
    // (Prometheus' rule), for an A/B against the staggered default.
    if std::env::var("STAGGER").is_ok_and(|s| s == "0") {
        opts.stagger_chunk_cuts = false;
    }
    let store = if in_ram {
        HeadChunks::in_memory()
    } else {
        let fs = tidemark_storage::vfs::os();
        HeadChunks::open(fs, &tmp.path().join("chunks_head"), 128 << 20).expect("head chunk directory")
    };
    let head = Head::with_chunks(opts, None, store);
    let after_new = counting_alloc::current();
    let t0 = 1_700_000_000_000i64;
    let mut app = head.appender();
    let refs: Vec<u64> = all.iter().enumerate().map(|(i, l)| app.append(l, t0, i as f64).expect("append")).collect();
    app.commit().expect("commit");
    let created = start.elapsed();
    let cpu_created = cpu_seconds();
    drop(all);
    let base = base - label_bytes as isize; // the caller's copies are gone
                                            // The largest heap the head held after any scrape round: with chunks
                                            // cut at the same instants in every series, the open chunks are all
                                            // full together just before a cut, which the end state may not show.
    let mut peak_held = counting_alloc::current() - base;
    let mut peak_round = 0;
    for k in 1..per {
        let mut app = head.appender();
        for (i, &r) in refs.iter().enumerate() {
            let jitter = ((i as i64 * 7919 + k * 31) % 5) - 2;
            let v = (k * 1000 + i as i64 % 97) as f64 * 1.5;
            app.append_ref(r, t0 + k * 15_000 + jitter, v).expect("append_ref");
        }
        app.commit().expect("commit");
        let held = counting_alloc::current() - base;
        if held > peak_held {
            (peak_held, peak_round) = (held, k);
        }
    }
    let elapsed = start.elapsed();
    let cpu_appends = cpu_seconds().zip(cpu_created).map(|(b, a)| b - a);
    let refs_bytes = (refs.capacity() * 8) as isize;
    let used = counting_alloc::current() - base - refs_bytes;
    let stats = head.stats();
    println!("closed chunks:         {}", if in_ram { "in RAM" } else { "head chunk file" });
    println!("series:                {n}");
    println!("samples per series:    {per}");
    println!("chunks:                {}", stats.num_chunks);
    println!("empty head:            {} bytes (lock shards)", after_new - base - label_bytes as isize);
    println!("heap held by the head: {used} bytes");
    println!("bytes per series:      {:.1}", used as f64 / n as f64);
    let refs_bytes = refs_bytes as f64;
    println!(
        "peak over the rounds:  {:.1} bytes/series (after sample {})",
        (peak_held as f64 - refs_bytes) / n as f64,
        peak_round + 1
    );
    println!("stats() estimate:      {:.1} bytes/series", stats.memory_bytes as f64 / n as f64);
    println!("peak heap (process):   {} bytes", counting_alloc::peak());
    if let Some((rss, anon, file, hwm)) = rss_kib() {
        println!("RSS now:               {rss} KiB (anon {anon} KiB, file {file} KiB)");
        // Includes the label sets the program builds before the head's.
        println!("peak RSS (VmHWM):      {hwm} KiB");
    }
    print_breakdown(&head.memory_breakdown(), true);
    println!("series creation:       {created:.2?}");
    let appended = n as f64 * (per - 1) as f64;
    println!(
        "appends by ref:        {:.2?} wall ({:.1} M samples/s)",
        elapsed - created,
        appended / (elapsed - created).as_secs_f64() / 1e6
    );
    if let Some(cpu) = cpu_appends {
        println!("appends by ref:        {cpu:.2} s CPU ({:.1} M samples per CPU-second)", appended / cpu / 1e6);
    }
}
