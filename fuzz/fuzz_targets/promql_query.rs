//! Any query text, parsed and evaluated (instant and range) against a small
//! fixed data set: must never panic, hang past the timeout, or exhaust memory.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tidemark_promql::{Engine, EngineOptions, MemStorage};
use tidemark_storage::{stale_nan, Labels};

fn storage() -> &'static MemStorage {
    static S: OnceLock<MemStorage> = OnceLock::new();
    S.get_or_init(|| {
        let s = MemStorage::new();
        for (i, job) in ["api", "db"].iter().enumerate() {
            let c = Labels::new([("__name__", "http_requests_total"), ("job", job), ("code", "200")]).unwrap();
            let g = Labels::new([("__name__", "temperature"), ("job", job)]).unwrap();
            for k in 0..40i64 {
                s.add(&c, k * 15_000, (k * (i as i64 + 1)) as f64);
                s.add(&g, k * 15_000 + 7, (k as f64).sin() * 10.0);
            }
            s.add(&g, 40 * 15_000, stale_nan());
            for (b, le) in ["0.1", "1", "+Inf"].iter().enumerate() {
                let h = Labels::new([("__name__", "latency_bucket"), ("job", job), ("le", le)]).unwrap();
                for k in 0..40i64 {
                    s.add(&h, k * 15_000, (k * (b as i64 + 1)) as f64);
                }
            }
        }
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    if query.len() > 256 {
        return;
    }
    let engine = Engine::new(EngineOptions {
        max_samples: 200_000,
        timeout: Some(Duration::from_secs(2)),
        enable_experimental_functions: true,
        parallelism: 1,
        ..EngineOptions::default()
    });
    let _ = engine.instant_query(storage(), query, 300_000);
    let _ = engine.range_query(storage(), query, 0, 600_000, 60_000);
});
