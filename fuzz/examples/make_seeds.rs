//! Writes the seed corpora under `fuzz/corpus/<target>/seed-*` from real
//! inputs: series of the capture in `../shared/data` (the path can be given
//! as the first argument) encoded by our own chunk encoders, WAL segments
//! and blocks written by our own database, remote-write bodies of those
//! series, HTTP parameter sets, and operation sequences for the model
//! target. Deterministic: running it again rewrites the same bytes (block
//! ids are replaced by a fixed one). Other files in the corpus directories
//! (e.g. the golden bodies, the PromQL queries) are left alone.
//!
//! Run from `fuzz/`: `cargo run --example make_seeds [capture.om.zst]`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use prost::Message;
use tidemark_fuzz::model::{Input, Op};
use tidemark_remote::proto::{self, v1, v2};
use tidemark_storage::block::{write_block, BlockMeta, CompactionMeta, INDEX_FILENAME};
use tidemark_storage::chunkenc::sealed::{self, EncodeOptions};
use tidemark_storage::chunkenc::XorAppender;
use tidemark_storage::{Db, Labels, Sample, SyncPolicy};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Seeds larger than this are cut (or not written): libFuzzer mutates small
/// inputs faster, and the committed corpus must stay small.
const MAX_SEED: usize = 64 << 10;
/// A fixed block id, so that meta.json seeds are reproducible.
const FIXED_ULID: &str = "01JDSEEDS0000000000000000Z";

fn main() -> Result<()> {
    let capture = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(default_capture);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let series = read_capture(&capture, 24)?;
    eprintln!("{} series from {}", series.len(), capture.display());

    let mut out = Seeds::new(&corpus);
    chunks(&mut out, &series)?;
    labels(&mut out, &series)?;
    wal(&mut out, &series)?;
    blocks(&mut out, &series)?;
    remote(&mut out, &series)?;
    remote_histogram(&mut out)?;
    http(&mut out)?;
    model(&mut out)?;
    web_config(&mut out)?;
    retention_floor(&mut out)?;
    out.report();
    Ok(())
}

fn default_capture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared/data/node-and-prometheus-5s.om.zst"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("../../shared/data/node-and-prometheus-5s.om.zst"))
}

struct Seeds {
    root: PathBuf,
    written: BTreeMap<String, (usize, usize)>,
}

impl Seeds {
    fn new(root: &Path) -> Seeds {
        Seeds { root: root.to_owned(), written: BTreeMap::new() }
    }

    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
        if bytes.len() > MAX_SEED {
            return Err(format!("seed {target}/{name} is {} bytes (limit {MAX_SEED})", bytes.len()).into());
        }
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        let e = self.written.entry(target.to_owned()).or_default();
        e.0 += 1;
        e.1 += bytes.len();
        Ok(())
    }

    fn report(&self) {
        for (t, (n, b)) in &self.written {
            eprintln!("{t}: {n} seeds, {b} bytes");
        }
    }
}

/// Reads the first `max_series` series of the capture (zstd-compressed
/// OpenMetrics text, sorted by series then time): `name{l="v",...} value ts`
/// with the timestamp in seconds with a fraction.
fn read_capture(path: &Path, max_series: usize) -> Result<Vec<(Labels, Vec<Sample>)>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = BufReader::new(zstd::stream::read::Decoder::new(file)?);
    let mut out: Vec<(Labels, Vec<Sample>)> = Vec::new();
    let mut last_key = String::new();
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = match line.rfind('}') {
            Some(i) => line.split_at(i + 1),
            None => line.split_at(line.find(' ').ok_or("no value")?),
        };
        let mut fields = rest.split_whitespace();
        let value: f64 = parse_value(fields.next().ok_or("no value")?)?;
        let t = parse_ts(fields.next().ok_or("no timestamp")?).ok_or("bad timestamp")?;
        if key != last_key {
            if out.len() == max_series {
                break;
            }
            out.push((parse_series(key)?, Vec::new()));
            last_key = key.to_owned();
        }
        if let Some(s) = out.last_mut() {
            s.1.push(Sample::new(t, value));
        }
    }
    Ok(out)
}

fn parse_value(s: &str) -> Result<f64> {
    Ok(match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse()?,
    })
}

/// Seconds with an optional fraction, to integer milliseconds without
/// going through `f64`.
fn parse_ts(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut ms: i64 = secs.parse::<i64>().ok()?.checked_mul(1000)?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    ms += digits.parse::<i64>().ok()?;
    Some(ms)
}

fn parse_series(key: &str) -> Result<Labels> {
    let (name, body) = match key.find('{') {
        Some(i) => (&key[..i], key[i + 1..].strip_suffix('}').ok_or("unclosed labels")?),
        None => (key, ""),
    };
    let mut pairs: Vec<(String, String)> = vec![("__name__".into(), name.into())];
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let lname: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if chars.next() != Some('"') {
            return Err(format!("bad label in {key}").into());
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(o) => v.push(o),
                    None => return Err("dangling escape".into()),
                },
                _ => v.push(c),
            }
        }
        if chars.peek() == Some(&',') {
            chars.next();
        }
        pairs.push((lname.trim().to_owned(), v));
    }
    Ok(Labels::new(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))?)
}

fn chunks(out: &mut Seeds, series: &[(Labels, Vec<Sample>)]) -> Result<()> {
    for (i, (_, samples)) in series.iter().enumerate().take(12) {
        // Head chunks hold 120 samples.
        let s = &samples[..samples.len().min(120)];
        let mut a = XorAppender::new();
        for x in s {
            a.append(x.t, x.v);
        }
        out.put("chunk_xor", &format!("capture-{i:02}"), a.bytes())?;
        for level in [0, 3] {
            let mut enc = Vec::new();
            sealed::encode_with(s, &EncodeOptions { zstd_level: level, shared_timestamps: None }, &mut enc);
            out.put("chunk_sealed", &format!("capture-{i:02}-z{level}"), &enc)?;
        }
    }
    Ok(())
}

fn labels(out: &mut Seeds, series: &[(Labels, Vec<Sample>)]) -> Result<()> {
    for (i, (l, _)) in series.iter().enumerate() {
        out.put("labels_decode", &format!("capture-{i:02}"), l.encoded())?;
    }
    Ok(())
}

/// A WAL written by the database itself: series records, samples
/// (including a stale marker), a rolled-back batch (not logged) and a
/// checkpointable prefix. Each segment is a seed (flag byte 0: the segment
/// has its own header).
fn wal(out: &mut Seeds, series: &[(Labels, Vec<Sample>)]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::builder(dir.path()).wal_sync(SyncPolicy::EveryCommit).maintenance_interval(None).open()?;
    for round in 0..4 {
        let mut app = db.appender();
        for (l, samples) in series.iter().take(8) {
            for x in samples.iter().skip(round * 5).take(5) {
                app.append(l, x.t, x.v)?;
            }
        }
        app.commit()?;
    }
    let mut app = db.appender();
    if let Some((l, samples)) = series.first() {
        let t = samples.last().map_or(0, |x| x.t) + 1000;
        app.append(l, t, tidemark_storage::stale_nan())?;
    }
    app.commit()?;
    db.close()?;
    drop(db);
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("wal"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    segs.sort();
    for (i, p) in segs.iter().enumerate() {
        let mut bytes = vec![0u8];
        let data = std::fs::read(p)?;
        bytes.extend_from_slice(&data[..data.len().min(MAX_SEED - 1)]);
        out.put("wal_replay", &format!("db-segment-{i}"), &bytes)?;
    }
    if segs.is_empty() {
        return Err("the database wrote no WAL segment".into());
    }
    Ok(())
}

/// Blocks written by the block writer: the index (flag byte 0: checksums
/// as written) and meta.json with a fixed id; plus a compacted-looking meta.
fn blocks(out: &mut Seeds, series: &[(Labels, Vec<Sample>)]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (i, n) in [(0, 4usize), (1, 24)] {
        let chosen: Vec<(Labels, Vec<Sample>)> =
            series.iter().take(n).map(|(l, s)| (l.clone(), s[..s.len().min(200)].to_vec())).collect();
        let mint = chosen.iter().filter_map(|s| s.1.first()).map(|x| x.t).min().unwrap_or(0);
        let maxt = chosen.iter().filter_map(|s| s.1.last()).map(|x| x.t).max().unwrap_or(0) + 1;
        let meta =
            write_block(dir.path(), mint, maxt, CompactionMeta::level1(), chosen.into_iter(), &Default::default())?;
        let bdir = dir.path().join(&meta.ulid);
        let mut index = vec![0u8];
        index.extend_from_slice(&std::fs::read(bdir.join(INDEX_FILENAME))?);
        out.put("block_index", &format!("block-{i}"), &index)?;

        let mut meta = BlockMeta::from_json(&std::fs::read(bdir.join("meta.json"))?, "seed")?;
        meta.ulid = FIXED_ULID.into();
        meta.compaction.sources = vec![FIXED_ULID.into()];
        out.put("block_meta", &format!("level1-{i}"), &meta.to_json())?;
        if i == 1 {
            meta.compaction = CompactionMeta {
                level: 2,
                sources: vec!["01JDSEEDS0000000000000000A".into(), "01JDSEEDS0000000000000000B".into()],
                parents: vec!["01JDSEEDS0000000000000000A".into(), "01JDSEEDS0000000000000000B".into()],
            };
            out.put("block_meta", "level2", &meta.to_json())?;
        }
    }
    Ok(())
}

/// Remote-write bodies of capture series, as raw protobuf (mode byte 0: the
/// target compresses) and as snappy (mode byte 1: sent as is).
fn remote(out: &mut Seeds, series: &[(Labels, Vec<Sample>)]) -> Result<()> {
    let batch = &series[..series.len().min(12)];
    let v1req = v1::WriteRequest {
        timeseries: batch
            .iter()
            .map(|(l, s)| v1::TimeSeries {
                labels: l.iter().map(|x| v1::Label { name: x.name.into(), value: x.value.into() }).collect(),
                samples: s.iter().take(10).map(|x| proto::Sample { value: x.v, timestamp: x.t }).collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut symbols: Vec<String> = vec![String::new()];
    let mut sym = |s: &str| -> u32 {
        match symbols.iter().position(|x| x == s) {
            Some(i) => i as u32,
            None => {
                symbols.push(s.to_owned());
                (symbols.len() - 1) as u32
            }
        }
    };
    let timeseries: Vec<v2::TimeSeries> = batch
        .iter()
        .map(|(l, s)| v2::TimeSeries {
            labels_refs: l.iter().flat_map(|x| [sym(x.name), sym(x.value)]).collect(),
            samples: s.iter().take(10).map(|x| proto::Sample { value: x.v, timestamp: x.t }).collect(),
            ..Default::default()
        })
        .collect();
    let v2req = v2::Request { symbols, timeseries };
    for (target, raw) in [("remote_v1", v1req.encode_to_vec()), ("remote_v2", v2req.encode_to_vec())] {
        let mut plain = vec![0u8];
        plain.extend_from_slice(&raw);
        out.put(target, "capture-raw", &plain)?;
        let mut snappy = vec![1u8];
        snappy.extend_from_slice(&tidemark_remote::codec::compress(&raw));
        out.put(target, "capture-snappy", &snappy)?;
    }
    Ok(())
}

/// Native histogram messages of every kind, near the targets' clock
/// (1_700_000_000_000): an integer histogram of schema 3 with negative,
/// zero and positive buckets, its successor, a float histogram of schema
/// 8, a custom-bucket one, a staleness marker, and two the receiver must
/// refuse (a count that does not match the buckets, integer and float
/// fields mixed). For `remote_histogram` (each message a length byte and
/// its bytes, after the version byte) and, as whole requests, for
/// `remote_v1` and `remote_v2`.
fn remote_histogram(out: &mut Seeds) -> Result<()> {
    for (name, msgs) in histogram_seed_messages() {
        for (mode, version) in [(0u8, "v1"), (1u8, "v2")] {
            let mut seed = vec![mode];
            for m in &msgs {
                let b = m.encode_to_vec();
                seed.push(u8::try_from(b.len())?);
                seed.extend_from_slice(&b);
            }
            out.put("remote_histogram", &format!("{name}-{version}"), &seed)?;
        }
        let series =
            |labels_refs: Vec<u32>| v2::TimeSeries { labels_refs, histograms: msgs.clone(), ..Default::default() };
        let v1req = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![v1::Label { name: "__name__".into(), value: format!("seed_{name}") }],
                histograms: msgs.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v2req = v2::Request {
            symbols: vec![String::new(), "__name__".into(), format!("seed_{name}")],
            timeseries: vec![series(vec![1, 2])],
        };
        let mut raw = vec![0u8];
        raw.extend_from_slice(&v1req.encode_to_vec());
        out.put("remote_v1", &format!("histograms-{name}"), &raw)?;
        let mut raw = vec![0u8];
        raw.extend_from_slice(&v2req.encode_to_vec());
        out.put("remote_v2", &format!("histograms-{name}"), &raw)?;
    }
    Ok(())
}

/// The messages of [`remote_histogram`], by seed name.
fn histogram_seed_messages() -> Vec<(&'static str, Vec<proto::Histogram>)> {
    use proto::histogram::{Count, ZeroCount};
    use proto::BucketSpan;
    const NOW: i64 = 1_700_000_000_000;
    let int = |t: i64, k: u64| proto::Histogram {
        count: Some(Count::CountInt(4 * k + 1)),
        sum: 2.5 * k as f64,
        schema: 3,
        zero_threshold: 1e-3,
        zero_count: Some(ZeroCount::ZeroCountInt(1)),
        negative_spans: vec![BucketSpan { offset: -2, length: 1 }],
        negative_deltas: vec![k as i64],
        positive_spans: vec![BucketSpan { offset: 0, length: 2 }, BucketSpan { offset: 3, length: 1 }],
        positive_deltas: vec![k as i64, -(k as i64), 2 * k as i64],
        timestamp: t,
        ..Default::default()
    };
    let float = proto::Histogram {
        count: Some(Count::CountFloat(3.5)),
        sum: -1.25,
        schema: 8,
        zero_threshold: 1e-128,
        zero_count: Some(ZeroCount::ZeroCountFloat(0.5)),
        positive_spans: vec![BucketSpan { offset: 300, length: 2 }],
        positive_counts: vec![1.0, 2.0],
        reset_hint: proto::ResetHint::Gauge as i32,
        timestamp: NOW - 2_000,
        ..Default::default()
    };
    let nhcb = proto::Histogram {
        count: Some(Count::CountInt(6)),
        sum: 4.0,
        schema: -53,
        positive_spans: vec![BucketSpan { offset: 0, length: 3 }],
        positive_deltas: vec![1, 1, 1],
        custom_values: vec![0.5, 1.0],
        timestamp: NOW - 1_000,
        ..Default::default()
    };
    let stale = proto::Histogram { sum: f64::from_bits(0x7ff0_0000_0000_0002), timestamp: NOW, ..Default::default() };
    let mut bad_count = int(NOW - 500, 2);
    bad_count.count = Some(Count::CountInt(1));
    let mut mixed = int(NOW - 400, 2);
    mixed.positive_counts = vec![1.0];
    vec![
        ("integer", vec![int(NOW - 3_000, 1), int(NOW - 2_000, 2), stale.clone()]),
        ("kinds", vec![float, nhcb]),
        ("invalid", vec![int(NOW - 600, 1), bad_count, mixed, stale]),
    ]
}

/// Parameter sets in the http_params text form, as Grafana and the
/// Prometheus UI send them, with some invalid ones among them.
/// `--web.config.file` texts: the documented example, each TLS version,
/// client-auth policy and a few cipher suites and curves, an empty file,
/// and files that must be refused (TLS 1.0, an unknown field).
fn web_config(out: &mut Seeds) -> Result<()> {
    let hash = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";
    let full = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\n  max_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\nhttp_server_config:\n  http2: false\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Frame-Options: deny\nbasic_auth_users:\n  grafana: {hash}\n  alloy: {hash}\n"
    );
    out.put("web_config", "full", full.as_bytes())?;
    out.put("web_config", "empty", b"")?;
    out.put("web_config", "auth-only", format!("basic_auth_users:\n  u: {hash}\n").as_bytes())?;
    for policy in ["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven"] {
        let text = format!("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: {policy}\n");
        out.put("web_config", &format!("policy-{policy}"), text.as_bytes())?;
    }
    out.put("web_config", "inline-cert", b"tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    -----END CERTIFICATE-----\n  key: secret\n")?;
    out.put("web_config", "tls10", b"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n")?;
    out.put("web_config", "unknown-field", b"tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n")?;
    out.put("web_config", "anchors", b"a: &x [1, 2]\nbasic_auth_users: *x\n")?;
    Ok(())
}

/// Retention floor files: valid ones for a few timestamps.
fn retention_floor(out: &mut Seeds) -> Result<()> {
    for (name, t) in [("zero", 0i64), ("2026", 1_764_000_000_000), ("min", i64::MIN), ("max", i64::MAX)] {
        out.put("retention_floor", name, &tidemark_storage::floor::encode(t))?;
    }
    Ok(())
}

fn http(out: &mut Seeds) -> Result<()> {
    let sets: &[(&str, &str)] = &[
        ("query", "GET /api/v1/query\nquery=up\ntime=1700000300"),
        ("query-post", "POST /api/v1/query\nquery=sum by (job) (rate(http_requests_total[5m]))\ntime=1700000300.5\ntimeout=500ms"),
        ("query-stats", "GET /api/v1/query\nquery=temperature\ntime=2023-11-14T22:18:20Z\nstats=all\nlookback_delta=1m"),
        ("query-limit", "GET /api/v1/query\nquery={__name__=~\".+\"}\ntime=1700000300\nlimit=2"),
        ("query-bad-time", "GET /api/v1/query\nquery=up\ntime=yesterday"),
        ("range", "GET /api/v1/query_range\nquery=histogram_quantile(0.9, sum by (le) (rate(latency_bucket[1m])))\nstart=1700000000\nend=1700000600\nstep=15"),
        ("range-post", "POST /api/v1/query_range\nquery=rate(http_requests_total[1m])\nstart=1700000000\nend=1700000600\nstep=1m"),
        ("range-step-zero", "GET /api/v1/query_range\nquery=up\nstart=1700000000\nend=1700000600\nstep=0"),
        ("range-too-many", "GET /api/v1/query_range\nquery=up\nstart=0\nend=1700000600\nstep=0.001"),
        ("range-reversed", "GET /api/v1/query_range\nquery=up\nstart=1700000600\nend=1700000000\nstep=15s"),
        ("series", "GET /api/v1/series\nmatch[]=http_requests_total\nmatch[]={job=\"db\"}\nstart=1700000000\nend=1700000600"),
        ("series-post-limit", "POST /api/v1/series\nmatch[]={__name__=~\"temp.*\"}\nlimit=1"),
        ("series-none", "GET /api/v1/series"),
        ("labels", "GET /api/v1/labels\nstart=1700000000\nend=1700000600"),
        ("labels-match", "POST /api/v1/labels\nmatch[]=latency_bucket\nlimit=1"),
        ("label-values", "GET /api/v1/label/job/values\nmatch[]=temperature"),
        ("label-values-name", "GET /api/v1/label/__name__/values\nstart=-9223372036854775\nend=9223372036854775"),
        ("label-values-utf8", "GET /api/v1/label/U__caf_e9/values"),
        ("format", "GET /api/v1/format_query\nquery=sum(rate(x[5m]))by(job)"),
        ("metadata", "GET /api/v1/metadata\nmetric=http_requests_total\nlimit=1\nlimit_per_metric=1"),
        ("federate", "GET /federate\nmatch[]={job=\"api\"}"),
        ("tsdb", "GET /api/v1/status/tsdb\nlimit=3"),
        ("buildinfo", "GET /api/v1/status/buildinfo"),
        ("flags", "GET /api/v1/status/flags"),
        ("snapshot", "POST /api/v1/admin/tsdb/snapshot\nskip_head=true"),
        ("exemplars", "GET /api/v1/query_exemplars\nquery=up\nstart=1700000000\nend=1700000600"),
        ("unknown", "GET /api/v1/nope\nquery=up"),
    ];
    for (name, text) in sets {
        out.put("http_params", name, text.as_bytes())?;
    }
    Ok(())
}

/// Operation sequences for the model target: pseudo-random byte strings
/// (fixed seeds) kept when what they decode to covers appends, commits, a
/// crash or reopen, block writes, compaction or retention, and queries.
fn model(out: &mut Seeds) -> Result<()> {
    let mut state = 0x5eed_u64;
    let mut kept = 0;
    let mut tried = 0;
    while kept < 16 {
        tried += 1;
        if tried > 1_000_000 {
            return Err("no model seed covers every kind of operation".into());
        }
        let len = 128 + (splitmix(&mut state) % 640) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| splitmix(&mut state) as u8).collect();
        let input = Input::from_bytes(&bytes);
        let ops = &input.ops;
        let count = |f: fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
        let good = count(|o| matches!(o, Op::Append { .. })) >= 8
            && count(|o| matches!(o, Op::Commit)) >= 2
            && count(|o| matches!(o, Op::Crash | Op::Reopen)) >= 1
            && count(|o| matches!(o, Op::PersistHead | Op::FlushHead)) >= 1
            && count(|o| matches!(o, Op::Compact | Op::Retention)) >= 1
            && count(|o| matches!(o, Op::Query { .. })) >= 1;
        if good {
            out.put("model", &format!("ops-{kept:02}"), &bytes)?;
            kept += 1;
        }
    }
    Ok(())
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
