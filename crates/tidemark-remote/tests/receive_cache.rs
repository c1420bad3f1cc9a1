//! The receiver's map from label pairs to series refs changes nothing but
//! speed: a receiver with it and one without answer every request alike
//! and store the same data, whatever mix of valid, invalid, repeated,
//! out-of-order and future samples arrives, in 1.0 and 2.0.

use std::sync::Arc;

use proptest::prelude::*;
use tidemark_remote::codec::{encode_v1, encode_v2, SymbolTable};
use tidemark_remote::proto::{v1, Sample};
use tidemark_remote::{MetadataStore, Receiver, ReceiverOptions, WriteResponse};
use tidemark_storage::{Db, MatchOp, Matcher};

const NOW: i64 = 1_700_000_000_000;
const V1: &str = "application/x-protobuf";
const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// Label sets a request draws from: valid ones (some differing only in
/// where a byte sits between name and value), and invalid ones (unsorted,
/// duplicate, no name, empty name, empty value, non-legacy name).
const POOL: &[&[(&str, &str)]] = &[
    &[("__name__", "up"), ("job", "a")],
    &[("__name__", "up"), ("job", "b")],
    &[("__name__", "up"), ("jo", "ba")],
    &[("__name__", "up"), ("job", "a"), ("zone", "x")],
    &[("__name__", "up")],
    &[("__name__", "up"), ("env", ""), ("job", "a")],
    &[("job", "a"), ("__name__", "up")],
    &[("__name__", "up"), ("job", "a"), ("job", "b")],
    &[("job", "a")],
    &[("__name__", "up"), ("", "a")],
    &[("__name__", ""), ("job", "a")],
    &[("__name__", "up"), ("job.name", "a")],
    &[("__name__", "down"), ("job", "a")],
];

/// One series of a request: pool index and samples (t offset in s, value).
type Series = (usize, Vec<(i64, u8)>);

fn requests() -> impl Strategy<Value = Vec<(bool, Vec<Series>)>> {
    let series = (0..POOL.len(), prop::collection::vec((-3i64..8, 0u8..3), 0..4));
    prop::collection::vec((any::<bool>(), prop::collection::vec(series, 0..6)), 1..8)
}

fn samples(s: &[(i64, u8)]) -> Vec<Sample> {
    s.iter()
        .map(|&(dt, v)| Sample {
            // Offsets past 5 s are beyond the 10 min allowance when scaled.
            timestamp: NOW + dt * if dt > 5 { 600_000 } else { 1000 },
            value: f64::from(v),
        })
        .collect()
}

fn body(v2: bool, series: &[Series]) -> Vec<u8> {
    let pairs = |i: usize| -> Vec<(String, String)> {
        POOL[i].iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    };
    if v2 {
        let mut st = SymbolTable::new();
        let list = series.iter().map(|(i, s)| st.series(&pairs(*i), samples(s))).collect();
        encode_v2(&st.into_request(list))
    } else {
        let timeseries = series
            .iter()
            .map(|(i, s)| v1::TimeSeries {
                labels: POOL[*i].iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect(),
                samples: samples(s),
                ..Default::default()
            })
            .collect();
        encode_v1(&v1::WriteRequest { timeseries, metadata: vec![] })
    }
}

fn receiver(opts: ReceiverOptions) -> (Arc<Db>, Receiver) {
    let db = Arc::new(Db::in_memory().expect("in-memory db"));
    let r = Receiver::new(db.clone(), Arc::new(MetadataStore::new()), opts);
    (db, r)
}

fn stored(db: &Db) -> Vec<(String, Vec<(i64, u64)>)> {
    let q = db.querier(i64::MIN / 2, i64::MAX / 2);
    let series = q.select(&[Matcher::new(MatchOp::Regex, "__name__", ".+").expect("regex")]).expect("select");
    series
        .iter()
        .map(|s| (s.labels().to_string(), s.samples().expect("samples").iter().map(|x| (x.t, x.v.to_bits())).collect()))
        .collect()
}

fn same(a: &WriteResponse, b: &WriteResponse) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.status, b.status);
    prop_assert_eq!(&a.body, &b.body);
    prop_assert_eq!(&a.headers, &b.headers);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn answers_and_data_match_a_receiver_without_the_map(reqs in requests(), legacy in any::<bool>()) {
        let scheme =
            if legacy { tidemark_storage::NameValidation::Legacy } else { tidemark_storage::NameValidation::Utf8 };
        // A tiny map, so entries are also dropped and refilled.
        let (db_a, with) = receiver(ReceiverOptions { series_cache_entries: 70, name_validation: scheme, ..Default::default() });
        let (db_b, without) = receiver(ReceiverOptions { series_cache_entries: 0, name_validation: scheme, ..Default::default() });
        for (v2, series) in &reqs {
            let b = body(*v2, series);
            let ct = Some(if *v2 { V2 } else { V1 });
            let a = with.handle_at(ct, Some("snappy"), &b, NOW);
            let c = without.handle_at(ct, Some("snappy"), &b, NOW);
            same(&a, &c)?;
        }
        prop_assert_eq!(stored(&db_a), stored(&db_b));
        prop_assert_eq!(with.stats(), without.stats());
    }
}

/// A series whose samples arrive in one request per sample, as Prometheus'
/// queue manager sends them, is found by its pairs from the second request
/// on and still gets every sample, also after the head dropped it.
#[test]
fn known_series_survive_head_truncation() {
    let (db, r) = receiver(ReceiverOptions::default());
    let send = |t: i64| {
        let series = |job: &str| v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: "up".into() },
                v1::Label { name: "job".into(), value: job.into() },
            ],
            samples: vec![Sample { timestamp: t, value: 1.0 }],
            ..Default::default()
        };
        let body = encode_v1(&v1::WriteRequest { timeseries: vec![series("a"), series("b")], metadata: vec![] });
        r.handle_at(Some(V1), Some("snappy"), &body, NOW)
    };
    assert_eq!(send(NOW - 10_000).status, 204);
    assert_eq!(send(NOW - 5_000).status, 204);
    // Everything goes: the refs the receiver holds no longer exist.
    db.flush_head().expect("flush");
    assert_eq!(send(NOW).status, 204);
    assert_eq!(send(NOW + 5_000).status, 204);
    let all = stored(&db);
    assert_eq!(all.len(), 2, "{all:?}");
    for (labels, samples) in &all {
        assert_eq!(samples.len(), 4, "{labels}: {samples:?}");
    }
}
