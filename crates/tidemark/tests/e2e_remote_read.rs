//! End to end: remote read (`POST /api/v1/read`) against a real
//! Prometheus 2.42.
//!
//! The data exists only in Tidemark: the test writes an hour of series
//! (counters, a classic histogram, gauges, a staleness marker) into a data
//! directory in-process, the first 40 minutes persisted as a block (our
//! sealed chunk encoding) and the last 20 left in the head (replayed from
//! the WAL), then starts the real `tidemark serve` on it with the remote
//! read flags. A Prometheus 2.42 with an empty TSDB and
//! `remote_read: [{url: …/api/v1/read, read_recent: true}]` is asked a set
//! of PromQL (instant and range; raw selectors, `rate`, `sum by`,
//! `histogram_quantile` over classic buckets, regex and negative matchers,
//! `offset`, over-time functions) and must answer as Tidemark's own query
//! API answers: same series, same timestamps, values within 1e-9 relative.
//!
//! Prometheus 2.42's remote read client only ever asks for `SAMPLES`
//! (streaming arrived in its client much later), so the streamed answer is
//! checked with hand-built requests to the same server: its frames read by
//! a reader written here (uvarint length, CRC32-C, message), its XOR chunks
//! decoded, and the samples compared with the query API's raw samples. The
//! sample limit flag is checked on the same server (a `SAMPLES` request
//! over it is a 400 with Prometheus' message).
//!
//! Making the comparison exact: samples sit 3.217 s past a 15 s grid and
//! every evaluation time and range is whole seconds, so no sample lies on a
//! range boundary (2.42's ranges are closed at the left, ours open); rate
//! windows start long after every series' first sample (2.42 and 3.x
//! extrapolate differently at a series' birth).
//!
//! Needs Debian's `prometheus`: fails, never skips, without it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value as Json;
use tidemark::remote::proto::read::{
    ChunkEncoding, ChunkedReadResponse, LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, ResponseType,
};
use tidemark::storage::chunkenc::{prom_xor, XorIterator};
use tidemark::storage::{is_stale_nan, stale_nan, Labels, SampleIterator};
use tidemark::{Tidemark as Instance, TidemarkOptions};
use tidemark_testkit::{now_ms, url_encode, Http, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig};

const STEP_MS: i64 = 15_000;
const PHASE_MS: i64 = 3_217;
const TWO_HOURS: i64 = 7_200_000;
/// The `--storage.remote.read-sample-limit` the server runs with: above
/// what any of Prometheus' reads here selects (at most ~1,700 samples),
/// below the whole data set (4,800).
const SAMPLE_LIMIT: usize = 3_000;
const TIME_LIMIT: Duration = Duration::from_secs(150);

/// A series' labels and its value at sample k.
type SeriesSpec = (Vec<(&'static str, String)>, Box<dyn Fn(i64) -> f64>);

/// The series written, as (labels, value at sample k). Counters grow by
/// uneven steps; bucket counters are cumulative.
fn series() -> Vec<SeriesSpec> {
    let mut out: Vec<SeriesSpec> = Vec::new();
    for (j, job) in ["api", "web"].into_iter().enumerate() {
        for (c, code) in ["200", "500"].into_iter().enumerate() {
            let scale = (1 + j * 3 + c) as f64 * if c == 1 { 0.1 } else { 1.0 };
            out.push((
                vec![("__name__", "http_requests_total".into()), ("code", code.into()), ("job", job.into())],
                Box::new(move |k| (0..=k).map(|i| ((i * 7 + 3) % 11) as f64 * scale).sum()),
            ));
        }
        let les = ["0.1", "0.5", "1", "+Inf"];
        for (b, le) in les.into_iter().enumerate() {
            let share = [0.3, 0.7, 0.9, 1.0][b];
            out.push((
                vec![
                    ("__name__", "http_request_duration_seconds_bucket".into()),
                    ("job", job.into()),
                    ("le", le.into()),
                ],
                Box::new(move |k| ((k + 1) as f64 * (10.0 + j as f64) * share + (k % 5) as f64 * share).floor()),
            ));
        }
        out.push((
            vec![("__name__", "http_request_duration_seconds_count".into()), ("job", job.into())],
            Box::new(move |k| ((k + 1) as f64 * (10.0 + j as f64) + (k % 5) as f64).floor()),
        ));
        out.push((
            vec![("__name__", "http_request_duration_seconds_sum".into()), ("job", job.into())],
            Box::new(move |k| (k + 1) as f64 * 3.25 * (1.0 + j as f64)),
        ));
    }
    for (r, room) in ["kitchen", "kiln", "hall"].into_iter().enumerate() {
        out.push((
            vec![("__name__", "room_temperature".into()), ("room", room.into())],
            Box::new(move |k| 20.0 + r as f64 + ((k as f64) / 9.0).sin() * 3.0),
        ));
    }
    out
}

/// Writes the data: samples `k` at `start + k * 15 s + phase`, those before
/// `boundary` persisted as a block, the rest left in the head (WAL).
/// `up{job="gone"}` gets a staleness marker half-way through the block.
fn write_data(dir: &std::path::Path, start: i64, boundary: i64, samples: i64) {
    let tm = Instance::open(TidemarkOptions::new(dir)).unwrap();
    let all = series();
    let up = Labels::new([("__name__", "up"), ("job", "gone")]).unwrap();
    for head in [false, true] {
        let mut app = tm.db().appender();
        for k in 0..samples {
            let t = start + k * STEP_MS + PHASE_MS;
            if (t >= boundary) != head {
                continue;
            }
            for (labels, f) in &all {
                let l = Labels::new(labels.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
                app.append(&l, t, f(k)).unwrap();
            }
            let v = if k == samples / 3 { stale_nan() } else { 1.0 };
            if k <= samples / 3 {
                app.append(&up, t, v).unwrap();
            }
        }
        app.commit().unwrap();
        if !head {
            assert!(tm.db().flush_head().unwrap() > 0, "a block was written");
        }
    }
    tm.close().unwrap();
}

/// An answer of the query API reduced to comparable form: series labels →
/// (timestamp ms, value) pairs.
type Answer = BTreeMap<String, Vec<(i64, f64)>>;

fn parse_answer(body: &[u8], what: &str) -> Answer {
    let j: Json =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(body)));
    assert_eq!(j["status"], "success", "{what}: {j}");
    let point = |p: &Json| {
        let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
        let v = p[1].as_str().unwrap();
        let v = match v {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        (t, v)
    };
    let mut out = Answer::new();
    match j["data"]["resultType"].as_str().unwrap() {
        "vector" => {
            for s in j["data"]["result"].as_array().unwrap() {
                out.insert(s["metric"].to_string(), vec![point(&s["value"])]);
            }
        }
        "matrix" => {
            for s in j["data"]["result"].as_array().unwrap() {
                out.insert(s["metric"].to_string(), s["values"].as_array().unwrap().iter().map(point).collect());
            }
        }
        "scalar" => {
            out.insert("scalar".into(), vec![point(&j["data"]["result"])]);
        }
        other => panic!("{what}: result type {other}"),
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || ((a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
}

fn assert_same(what: &str, prom: &Answer, ours: &Answer) {
    assert_eq!(prom.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>(), "{what}: series differ");
    for (k, p) in prom {
        let o = &ours[k];
        assert_eq!(p.len(), o.len(), "{what}: {k}: point count");
        for (a, b) in p.iter().zip(o) {
            assert!(a.0 == b.0 && close(a.1, b.1), "{what}: {k}: Prometheus {a:?}, Tidemark {b:?}");
        }
    }
}

fn matcher(t: MatcherType, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher { r#type: t as i32, name: name.into(), value: value.into() }
}

fn read_request(queries: Vec<Query>, accepted: &[ResponseType]) -> Vec<u8> {
    let req = ReadRequest { queries, accepted_response_types: accepted.iter().map(|&t| t as i32).collect() };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
}

/// The frames of a streamed body, read with a reader of this test's own.
fn read_frames(mut b: &[u8]) -> Vec<ChunkedReadResponse> {
    fn crc32c(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let (mut len, mut shift, mut i) = (0usize, 0, 0);
        while b[i] >= 0x80 {
            len |= usize::from(b[i] & 0x7f) << shift;
            shift += 7;
            i += 1;
        }
        len |= usize::from(b[i]) << shift;
        i += 1;
        let crc = u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        let msg = &b[i + 4..i + 4 + len];
        assert_eq!(crc, crc32c(msg), "frame checksum");
        out.push(ChunkedReadResponse::decode(msg).unwrap());
        b = &b[i + 4 + len..];
    }
    out
}

/// JSON object text of sorted label pairs, as the query API prints `metric`.
fn metric_key(labels: &[tidemark::remote::proto::v1::Label]) -> String {
    let m: serde_json::Map<String, Json> =
        labels.iter().map(|l| (l.name.clone(), Json::String(l.value.clone()))).collect();
    Json::Object(m).to_string()
}

#[test]
fn prometheus_reads_tidemark_and_answers_as_tidemark_does() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("tidemark");
    // The block boundary lies at least an hour in the past, so all data
    // (40 minutes before it, 20 after) is.
    let boundary = (now_ms() - 3_600_000).div_euclid(TWO_HOURS) * TWO_HOURS;
    let start = boundary - 40 * 60_000;
    let samples = 60 * 4;
    write_data(&data_dir, start, boundary, samples);

    let limit = SAMPLE_LIMIT.to_string();
    let tidemark = Tidemark::start(TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), &data_dir).with_args(&[
        "--storage.remote.read-sample-limit",
        &limit,
        "--storage.remote.read-concurrent-limit",
        "4",
        "--storage.remote.read-max-bytes-in-frame",
        "512",
    ]))
    .unwrap();
    let read_url = format!("{}/api/v1/read", tidemark.base_url());
    let mut config = PrometheusConfig::new(dir.path().join("prometheus"));
    config.config_yaml = format!("scrape_configs: []\nremote_read:\n  - url: {read_url}\n    read_recent: true\n");
    let prometheus = Prometheus::start(config).unwrap();
    let http = Http::new(Duration::from_secs(30));

    // Instant queries at whole minutes through block and head data, and
    // range queries over both.
    let queries = [
        "http_requests_total",
        r#"room_temperature{room=~"ki.*"}"#,
        r#"room_temperature{room!="hall"}"#,
        "rate(http_requests_total[5m])",
        r#"sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))"#,
        "sum(rate(http_requests_total[2m])) by (code)",
        "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        r#"histogram_quantile(0.5, rate(http_request_duration_seconds_bucket{job!="web"}[5m]))"#,
        "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
        "avg_over_time(room_temperature[10m])",
        r#"http_requests_total{code!="200"} offset 5m"#,
        "max_over_time(up[3m])",
        "count(up)",
        r#"increase(http_requests_total{job=~"api|web"}[10m])"#,
    ];
    let times: Vec<i64> = (-25..=15).step_by(5).map(|m| boundary + m * 60_000).collect();
    let mut compared = 0;
    for q in queries {
        for &t in &times {
            let path = format!("/api/v1/query?query={}&time={}", url_encode(q), t / 1000);
            let p = http.get(&format!("{}{path}", prometheus.url())).unwrap();
            let o = http.get(&format!("{}{path}", tidemark.base_url())).unwrap();
            let what = format!("{q} at {t}");
            let (p, o) = (parse_answer(&p.body, &what), parse_answer(&o.body, &what));
            assert_same(&what, &p, &o);
            compared += usize::from(!p.is_empty());
        }
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            url_encode(q),
            (boundary - 30 * 60_000) / 1000,
            (boundary + 18 * 60_000) / 1000
        );
        let p = http.get(&format!("{}{path}", prometheus.url())).unwrap();
        let o = http.get(&format!("{}{path}", tidemark.base_url())).unwrap();
        let what = format!("range {q}");
        let (p, o) = (parse_answer(&p.body, &what), parse_answer(&o.body, &what));
        assert!(!p.is_empty(), "{what}: Prometheus read nothing");
        assert_same(&what, &p, &o);
    }
    // Every answer holds something, except the two queries over `up`
    // after its staleness marker (20 minutes in: 7 of the 9 times each).
    assert_eq!(compared, queries.len() * times.len() - 2 * 7, "non-empty instant answers");

    // Hand-built requests: what Tidemark's query API holds, raw.
    let window_s = 5 * 3600; // reaches before `start`, which is at most 3 h 40 min ago
    let raw_path = format!(
        "/api/v1/query?query={}&time={}",
        url_encode(&format!("{{__name__=~\".+\"}}[{window_s}s]")),
        now_ms() / 1000
    );
    let raw = parse_answer(&http.get(&format!("{}{raw_path}", tidemark.base_url())).unwrap().body, "raw");
    assert_eq!(raw.len(), series().len() + 1);
    let everything = |accepted: &[ResponseType]| {
        read_request(
            vec![Query {
                start_timestamp_ms: start - 1,
                end_timestamp_ms: now_ms(),
                matchers: vec![matcher(MatcherType::Re, "__name__", ".+")],
                hints: None,
            }],
            accepted,
        )
    };
    let headers = [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy")];

    // SAMPLES over the limit: Prometheus' status and message.
    let r = http.post(&read_url, &headers, &everything(&[])).unwrap();
    assert_eq!((r.status, r.text()), (400, format!("exceeded sample limit ({SAMPLE_LIMIT})\n")));

    // SAMPLES under it: one query per metric family.
    let mut got = Answer::new();
    let mut stale_seen = 0;
    let mut samples_bytes = 0;
    for name in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_sum",
        "room_temperature",
        "up",
    ] {
        let body = read_request(
            vec![Query {
                start_timestamp_ms: start - 1,
                end_timestamp_ms: now_ms(),
                matchers: vec![matcher(MatcherType::Eq, "__name__", name)],
                hints: None,
            }],
            &[ResponseType::Samples],
        );
        let r = http.post(&read_url, &headers, &body).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        samples_bytes += r.body.len();
        let resp = ReadResponse::decode(snap::raw::Decoder::new().decompress_vec(&r.body).unwrap().as_slice()).unwrap();
        for ts in &resp.results[0].timeseries {
            stale_seen += ts.samples.iter().filter(|s| is_stale_nan(s.value)).count();
            let pts = ts.samples.iter().filter(|s| !is_stale_nan(s.value)).map(|s| (s.timestamp, s.value)).collect();
            got.insert(metric_key(&ts.labels), pts);
        }
    }
    assert_eq!(stale_seen, 1, "the staleness marker is sent as stored");
    eprintln!("SAMPLES answers: {samples_bytes} bytes (snappy) for the same samples");
    assert_same("SAMPLES against the query API", &raw, &got);

    // STREAMED_XOR_CHUNKS, preferred over SAMPLES, is not limited.
    let r =
        http.post(&read_url, &headers, &everything(&[ResponseType::StreamedXorChunks, ResponseType::Samples])).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"));
    let frames = read_frames(&r.body);
    eprintln!(
        "streamed answer: {} samples in {} frames, {} bytes ({:.2} bytes/sample)",
        raw.values().map(Vec::len).sum::<usize>() + 1,
        frames.len(),
        r.body.len(),
        r.body.len() as f64 / (raw.values().map(Vec::len).sum::<usize>() + 1) as f64
    );
    assert!(frames.len() > raw.len(), "512-byte frames split the series: {} frames", frames.len());
    let mut got = Answer::new();
    for f in &frames {
        assert_eq!(f.query_index, 0);
        let s = &f.chunked_series[0];
        let pts = got.entry(metric_key(&s.labels)).or_default();
        for c in &s.chunks {
            assert_eq!(c.r#type, ChunkEncoding::Xor as i32);
            let ours = prom_xor::from_prometheus(&c.data).unwrap();
            let mut it = XorIterator::new(&ours[..]);
            while it.next() {
                let p = it.at();
                if !is_stale_nan(p.v) {
                    pts.push((p.t, p.v));
                }
            }
            assert!(it.err().is_none());
        }
    }
    assert_same("STREAMED_XOR_CHUNKS against the query API", &raw, &got);

    // The counters on /metrics saw both answer types.
    let metrics = http.get(&format!("{}/metrics", tidemark.base_url())).unwrap().text();
    for needle in [
        r#"tidemark_remote_read_requests_total{response_type="streamed_xor_chunks"} 1"#,
        r#"tidemark_remote_read_requests_total{response_type="failed"} 1"#,
    ] {
        assert!(metrics.contains(needle), "/metrics lacks {needle}");
    }
    assert!(started.elapsed() < TIME_LIMIT, "took {:?}", started.elapsed());
    drop(prometheus);
    drop(tidemark);
}
