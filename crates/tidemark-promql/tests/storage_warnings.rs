//! Warnings a series source reports with its selection (data it could not
//! read, e.g. damaged storage) reach the query's warnings, once each, and
//! the rest of the answer is unaffected.

use tidemark_promql::{Engine, MemStorage, SelectedSeries, SeriesSource, Value};
use tidemark_storage::{Labels, Matcher};

/// A store that has lost some data and says so on every selection.
struct Damaged(MemStorage);

impl SeriesSource for Damaged {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<Vec<SelectedSeries>, String> {
        self.0.select(mint, maxt, matchers)
    }

    fn select_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
        Ok((self.0.select(mint, maxt, matchers)?, vec!["damaged data skipped: block X".to_string()]))
    }
}

#[test]
fn source_warnings_become_query_warnings() {
    let mem = MemStorage::new();
    for job in ["a", "b"] {
        let l = Labels::new([("__name__", "up"), ("job", job)]).unwrap();
        mem.add(&l, 0, 1.0);
    }
    let src = Damaged(mem);
    let r = Engine::default().instant_query(&src, "sum(up) + count(up{job=\"a\"})", 10_000).unwrap();
    assert!(matches!(r.value, Value::Vector(ref v) if v.len() == 1 && v[0].v == 3.0), "{:?}", r.value);
    let warnings: Vec<String> = r.annotations.warnings().map(|a| a.message.clone()).collect();
    assert_eq!(warnings, ["damaged data skipped: block X"], "reported once for two selectors");

    // A source without warnings adds none.
    let r = Engine::default().instant_query(&src.0, "sum(up)", 10_000).unwrap();
    assert_eq!(r.annotations.warnings().count(), 0);
}
