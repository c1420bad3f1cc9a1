//! Metric metadata (type, help, unit) as senders report it, kept in memory
//! for `/api/v1/metadata`.
//!
//! Remote write 1.0 sends metadata per metric family in separate requests;
//! 2.0 attaches it to every series. Both end up here keyed by metric family
//! name. Like Prometheus, a family can carry several distinct entries (two
//! targets disagreeing about a help text); each distinct entry is kept once.
//!
//! ```
//! use tidemark_remote::{MetadataStore, MetricKind, MetricMetadata};
//! let store = MetadataStore::new();
//! let m = MetricMetadata { kind: MetricKind::Counter, help: "Requests.".into(), unit: String::new() };
//! store.record("http_requests", m.clone());
//! store.record("http_requests", m.clone()); // kept once
//! assert_eq!(store.get(None, None, None)["http_requests"], vec![m]);
//! ```

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use crate::proto::MetricType;

/// Most distinct entries kept per family; more are ignored.
pub const MAX_ENTRIES_PER_FAMILY: usize = 16;

/// A metric family's type, as the Prometheus API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// `unknown`.
    Unknown,
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram`.
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info`.
    Info,
    /// `stateset`.
    StateSet,
}

impl MetricKind {
    /// The lowercase name the HTTP API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Unknown => "unknown",
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::GaugeHistogram => "gaugehistogram",
            MetricKind::Summary => "summary",
            MetricKind::Info => "info",
            MetricKind::StateSet => "stateset",
        }
    }

    /// From the protobuf enum value; unknown numbers map to `Unknown`.
    pub fn from_proto(v: i32) -> MetricKind {
        match MetricType::try_from(v) {
            Ok(MetricType::Counter) => MetricKind::Counter,
            Ok(MetricType::Gauge) => MetricKind::Gauge,
            Ok(MetricType::Histogram) => MetricKind::Histogram,
            Ok(MetricType::Gaugehistogram) => MetricKind::GaugeHistogram,
            Ok(MetricType::Summary) => MetricKind::Summary,
            Ok(MetricType::Info) => MetricKind::Info,
            Ok(MetricType::Stateset) => MetricKind::StateSet,
            Ok(MetricType::Unknown) | Err(_) => MetricKind::Unknown,
        }
    }

    /// The protobuf enum value.
    pub fn to_proto(self) -> MetricType {
        match self {
            MetricKind::Unknown => MetricType::Unknown,
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
            MetricKind::GaugeHistogram => MetricType::Gaugehistogram,
            MetricKind::Summary => MetricType::Summary,
            MetricKind::Info => MetricType::Info,
            MetricKind::StateSet => MetricType::Stateset,
        }
    }
}

/// One metadata entry of a metric family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricMetadata {
    /// The type.
    pub kind: MetricKind,
    /// Help text.
    pub help: String,
    /// Unit (often empty).
    pub unit: String,
}

/// Thread-safe metadata by metric family name.
#[derive(Debug, Default)]
pub struct MetadataStore {
    families: RwLock<HashMap<String, Vec<MetricMetadata>>>,
}

impl MetadataStore {
    /// An empty store.
    pub fn new() -> MetadataStore {
        MetadataStore::default()
    }

    /// Records `meta` for `family` unless an equal entry is already kept.
    pub fn record(&self, family: &str, meta: MetricMetadata) {
        if let Some(list) = self.families.read().get(family) {
            if list.contains(&meta) {
                return;
            }
        }
        let mut families = self.families.write();
        let list = families.entry(family.to_owned()).or_default();
        if !list.contains(&meta) && list.len() < MAX_ENTRIES_PER_FAMILY {
            list.push(meta);
        }
    }

    /// Like [`MetadataStore::record`], from borrowed parts: allocates only
    /// when the entry is new (the receiver calls this for every 2.0 series,
    /// which nearly always repeats a known entry). Returns whether it was
    /// added.
    pub fn record_parts(&self, family: &str, kind: MetricKind, help: &str, unit: &str) -> bool {
        let same = |m: &MetricMetadata| m.kind == kind && m.help == help && m.unit == unit;
        if let Some(list) = self.families.read().get(family) {
            if list.iter().any(same) || list.len() >= MAX_ENTRIES_PER_FAMILY {
                return false;
            }
        }
        let mut families = self.families.write();
        let list = families.entry(family.to_owned()).or_default();
        if list.iter().any(same) || list.len() >= MAX_ENTRIES_PER_FAMILY {
            return false;
        }
        list.push(MetricMetadata { kind, help: help.to_owned(), unit: unit.to_owned() });
        true
    }

    /// Number of families known.
    pub fn len(&self) -> usize {
        self.families.read().len()
    }

    /// True when no metadata has been recorded.
    pub fn is_empty(&self) -> bool {
        self.families.read().is_empty()
    }

    /// The entries, sorted by family name, as `/api/v1/metadata` returns
    /// them: only `metric` when given, at most `limit` families and at most
    /// `limit_per_metric` entries per family.
    pub fn get(
        &self,
        metric: Option<&str>,
        limit: Option<usize>,
        limit_per_metric: Option<usize>,
    ) -> BTreeMap<String, Vec<MetricMetadata>> {
        let families = self.families.read();
        let mut out = BTreeMap::new();
        let per = limit_per_metric.unwrap_or(usize::MAX);
        match metric {
            Some(name) => {
                if let Some(list) = families.get(name) {
                    out.insert(name.to_owned(), list.iter().take(per).cloned().collect());
                }
            }
            None => {
                let mut names: Vec<&String> = families.keys().collect();
                names.sort();
                for name in names.into_iter().take(limit.unwrap_or(usize::MAX)) {
                    out.insert(name.clone(), families[name].iter().take(per).cloned().collect());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: MetricKind, help: &str) -> MetricMetadata {
        MetricMetadata { kind, help: help.into(), unit: String::new() }
    }

    #[test]
    fn keeps_distinct_entries_and_applies_limits() {
        let s = MetadataStore::new();
        s.record("b", meta(MetricKind::Gauge, "x"));
        s.record("b", meta(MetricKind::Gauge, "y"));
        s.record("a", meta(MetricKind::Counter, "z"));
        assert_eq!(s.len(), 2);
        let all = s.get(None, None, None);
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all["b"].len(), 2);
        assert_eq!(s.get(None, Some(1), None).keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.get(None, None, Some(1))["b"], vec![meta(MetricKind::Gauge, "x")]);
        assert_eq!(s.get(Some("b"), None, None)["b"].len(), 2);
        assert!(s.get(Some("c"), None, None).is_empty());
    }

    #[test]
    fn kind_round_trips_through_proto() {
        for v in 0..8 {
            assert_eq!(MetricKind::from_proto(v).to_proto() as i32, v);
        }
        assert_eq!(MetricKind::from_proto(99), MetricKind::Unknown);
    }
}
