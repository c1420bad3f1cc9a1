//! Data shared by the block and compaction benchmarks (a module of each
//! bench target, not a target itself).

use tidemark_storage::block::BlockWriteOptions;
use tidemark_storage::chunkenc::Encoding;
use tidemark_storage::{Labels, Sample};

/// One block range: 2 h in milliseconds.
pub const H2: i64 = 2 * 3_600_000;
/// Scrape interval of [`series`] (ms).
pub const STEP: i64 = 15_000;

/// `n` series of counters and gauges over `[t0, t0 + 2h)`, sorted by labels.
pub fn series(n: usize, t0: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..n)
        .map(|i| {
            let l = Labels::new([
                ("__name__", if i % 2 == 0 { "http_requests_total" } else { "process_resident_memory_bytes" }),
                ("instance", &format!("host-{:04}:9100", i / 10)),
                ("job", ["api", "web", "db", "cache", "queue"][i % 5]),
                ("code", ["200", "500"][(i / 2) % 2]),
                ("series", &i.to_string()),
            ])
            .unwrap();
            let mut v = (i * 1000) as f64;
            let samples = (0..H2 / STEP)
                .map(|k| {
                    // Scrape jitter of a few ms, counters that grow, gauges that wander.
                    let t = t0 + k * STEP + (k * 7 + i as i64) % 4;
                    v = if i % 2 == 0 {
                        v + ((k * 31 + i as i64) % 17) as f64
                    } else {
                        5e8 + ((k * i as i64) % 4096) as f64
                    };
                    Sample::new(t, v)
                })
                .collect();
            (l, samples)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Block write options for `encoding`.
pub fn opts(encoding: Encoding) -> BlockWriteOptions {
    match encoding {
        Encoding::Xor => BlockWriteOptions::xor(),
        Encoding::Sealed => BlockWriteOptions::default(),
        Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram => {
            panic!("blocks of float samples have no histogram encoding")
        }
    }
}
