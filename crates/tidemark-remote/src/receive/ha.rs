//! Deduplication of HA pairs: two (or more) Prometheus replicas scrape the
//! same targets and remote-write the same series, told apart only by a
//! replica label among their external labels. Per cluster one replica is
//! *elected*: its requests are stored (the replica label stripped, so both
//! replicas name the same series), the others' requests are dropped and
//! answered 202 so their senders move on. When the elected replica has sent
//! nothing for [`HaOptions::failover_timeout`], the next replica to send is
//! elected instead.
//!
//! These are the semantics of Cortex' and Mimir's HA tracker (on a single
//! node, so the elections live in memory):
//!
//! - the decision is made per request from the labels of its *first*
//!   series (external labels are on every series of a sender's request);
//! - a request whose first series has both the cluster and the replica
//!   label is tracked: accepted if it comes from the elected replica (or
//!   elects its replica: the cluster's first request, or the elected one
//!   has been silent for at least the failover timeout), dropped otherwise;
//! - a request with only one of the two labels, or neither, is stored as
//!   is (nothing stripped);
//! - in an accepted tracked request the replica label is removed from every
//!   series that has it; the cluster label stays;
//! - "silent" is measured by the receiver's wall clock at receipt, not by
//!   sample timestamps (a replica replaying an old WAL is alive).
//!
//! Elections are kept in memory only: after a restart the first replica to
//! send is elected again (within one request of starting, no data is lost:
//! the other replica is dropped only while the elected one sends).
//!
//! The number of clusters tracked is bounded ([`HaOptions::max_clusters`]):
//! a request naming a new cluster beyond it is refused (400, as Mimir's
//! per-tenant `ha_max_clusters`), after clusters silent for
//! [`FORGET_AFTER`] are forgotten.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use super::decode::Batch;
use super::wire::split_label_fields;

/// A cluster whose elected replica has been silent this long is forgotten
/// when room is needed for a new cluster (Mimir deletes such entries after
/// 30 minutes too).
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);

/// How HA pairs are recognised and when to fail over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaOptions {
    /// The label naming the cluster (the HA group). Default `cluster`.
    pub cluster_label: String,
    /// The label naming the replica within its cluster; removed from the
    /// stored series. Default `__replica__`.
    pub replica_label: String,
    /// How long the elected replica may be silent before another one is
    /// elected. Default 30 s (Mimir's default). Keep it above the senders'
    /// flush interval (`batch_send_deadline`, 5 s by default) plus their
    /// scrape interval, or replicas take turns on every pause.
    pub failover_timeout: Duration,
    /// Most clusters tracked at once. Default 100 (Mimir's per-tenant
    /// default).
    pub max_clusters: usize,
}

impl Default for HaOptions {
    fn default() -> HaOptions {
        HaOptions {
            cluster_label: "cluster".to_owned(),
            replica_label: "__replica__".to_owned(),
            failover_timeout: Duration::from_secs(30),
            max_clusters: 100,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaDecision {
    /// Its first series lacks the cluster or the replica label: store it as
    /// is, nothing stripped.
    Untracked,
    /// From the elected replica (possibly elected by this request): store
    /// it with the replica label stripped.
    Accept,
    /// From a replica that is not elected while the elected one is alive:
    /// drop it (answered 202).
    Drop {
        /// The cluster.
        cluster: String,
        /// The replica that sent the request.
        replica: String,
        /// The elected replica.
        elected: String,
    },
    /// A new cluster while [`HaOptions::max_clusters`] are tracked: refuse
    /// it (answered 400).
    TooManyClusters {
        /// The limit.
        limit: usize,
    },
}

/// Why samples were dropped by the HA tracker, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HaDropReason {
    /// Sent by a replica that is not the elected one.
    NotElected,
    /// Their cluster was new while [`HaOptions::max_clusters`] were tracked.
    TooManyClusters,
}

impl HaDropReason {
    /// How many reasons there are.
    pub const COUNT: usize = 2;
    /// Every reason, in the order of [`super::ReceiverStats::ha_dropped_samples`].
    pub const ALL: [HaDropReason; HaDropReason::COUNT] = [HaDropReason::NotElected, HaDropReason::TooManyClusters];

    /// The metric label value: `not_elected`, `too_many_clusters`.
    pub fn as_str(self) -> &'static str {
        match self {
            HaDropReason::NotElected => "not_elected",
            HaDropReason::TooManyClusters => "too_many_clusters",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One cluster's election, as [`HaTracker::elections`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaElection {
    /// The cluster.
    pub cluster: String,
    /// Its elected replica.
    pub replica: String,
    /// When that replica was elected, ms since the epoch (receiver clock).
    pub elected_at_ms: i64,
    /// When that replica's last accepted request arrived, ms since the epoch.
    pub last_seen_ms: i64,
    /// How many times the cluster's elected replica changed (failovers).
    pub changes: u64,
}

#[derive(Debug)]
struct Entry {
    replica: Box<str>,
    elected_at_ms: i64,
    last_seen_ms: i64,
    changes: u64,
}

/// The elected replica of each cluster. One lock, taken once per request
/// for a hash lookup: the cost per request does not depend on its size.
///
/// ```
/// use std::time::Duration;
/// use tidemark_remote::receive::{HaDecision, HaOptions, HaTracker};
///
/// let ha = HaTracker::new(HaOptions { failover_timeout: Duration::from_secs(5), ..HaOptions::default() });
/// assert_eq!(ha.check("a", "r1", 0), HaDecision::Accept); // elected
/// assert!(matches!(ha.check("a", "r2", 1_000), HaDecision::Drop { .. }));
/// assert_eq!(ha.check("a", "r2", 7_000), HaDecision::Accept); // r1 silent for 7 s: failover
/// assert_eq!(ha.elections()[0].replica, "r2");
/// ```
#[derive(Debug)]
pub struct HaTracker {
    opts: HaOptions,
    failover_ms: i64,
    clusters: Mutex<HashMap<Box<str>, Entry>>,
}

impl HaTracker {
    /// A tracker with no cluster yet.
    pub fn new(opts: HaOptions) -> HaTracker {
        let failover_ms = i64::try_from(opts.failover_timeout.as_millis()).unwrap_or(i64::MAX);
        HaTracker { opts, failover_ms, clusters: Mutex::new(HashMap::new()) }
    }

    /// The options.
    pub fn options(&self) -> &HaOptions {
        &self.opts
    }

    /// The decision for a request whose first series carries `cluster` and
    /// `replica`, received at `now_ms` (ms since the epoch), recording it:
    /// an election or failover, or the elected replica's last-seen time.
    pub fn check(&self, cluster: &str, replica: &str, now_ms: i64) -> HaDecision {
        let mut clusters = self.clusters.lock();
        if let Some(e) = clusters.get_mut(cluster) {
            if &*e.replica == replica {
                // The clock may step back: last-seen never does.
                e.last_seen_ms = e.last_seen_ms.max(now_ms);
                return HaDecision::Accept;
            }
            let silent_ms = now_ms.saturating_sub(e.last_seen_ms);
            if silent_ms < self.failover_ms {
                return HaDecision::Drop {
                    cluster: cluster.to_owned(),
                    replica: replica.to_owned(),
                    elected: e.replica.to_string(),
                };
            }
            tracing::info!(
                cluster,
                from = &*e.replica,
                to = replica,
                silent_ms,
                "HA failover: the elected replica was silent longer than the failover timeout"
            );
            e.replica = replica.into();
            e.elected_at_ms = now_ms;
            e.last_seen_ms = now_ms;
            e.changes += 1;
            return HaDecision::Accept;
        }
        if clusters.len() >= self.opts.max_clusters {
            let forget_ms = i64::try_from(FORGET_AFTER.as_millis()).unwrap_or(i64::MAX).max(self.failover_ms);
            clusters.retain(|_, e| now_ms.saturating_sub(e.last_seen_ms) < forget_ms);
            if clusters.len() >= self.opts.max_clusters {
                return HaDecision::TooManyClusters { limit: self.opts.max_clusters };
            }
        }
        tracing::info!(cluster, replica, "HA election: first replica seen for the cluster");
        clusters.insert(
            cluster.into(),
            Entry { replica: replica.into(), elected_at_ms: now_ms, last_seen_ms: now_ms, changes: 0 },
        );
        HaDecision::Accept
    }

    /// The decision for `batch` (see [`HaTracker::check`]): from its first
    /// series' labels, [`HaDecision::Untracked`] unless it has both.
    pub fn decide(&self, batch: &Batch<'_>, now_ms: i64) -> HaDecision {
        match self.labels_of(batch) {
            Some((cluster, replica)) => self.check(cluster, replica, now_ms),
            None => HaDecision::Untracked,
        }
    }

    /// The non-empty cluster and replica values of `batch`'s first series,
    /// if it has both. A 1.0 series' labels still unsplit are split here
    /// (the first series only); labels that do not split are left for the
    /// receiver's decoding to refuse, so they count as untracked.
    fn labels_of<'a>(&self, batch: &Batch<'a>) -> Option<(&'a str, &'a str)> {
        let (cl, rl) = (self.opts.cluster_label.as_str(), self.opts.replica_label.as_str());
        let mut cluster = None;
        let mut replica = None;
        let mut see = |n: &str, v: &'a str| {
            if v.is_empty() {
                return;
            }
            if n == cl {
                cluster = Some(v);
            } else if n == rl {
                replica = Some(v);
            }
        };
        match batch {
            Batch::V1(w) => {
                let span = w.series.first()?;
                if w.labels_pending(0) {
                    let mut pairs = Vec::new();
                    split_label_fields(w.label_bytes[0]?, &mut pairs).ok()?;
                    pairs.iter().for_each(|&(n, v)| see(n, v));
                } else {
                    let pairs = w.labels.get(span.labels.0 as usize..span.labels.1 as usize)?;
                    pairs.iter().for_each(|&(n, v)| see(n, v));
                }
            }
            Batch::V2(w) => {
                let span = w.series.first()?;
                let refs = w.refs.get(span.refs.0 as usize..span.refs.1 as usize)?;
                for pair in refs.chunks_exact(2) {
                    let n = w.symbols.get(pair[0] as usize)?;
                    let v = w.symbols.get(pair[1] as usize)?;
                    see(n, v);
                }
            }
        }
        Some((cluster?, replica?))
    }

    /// Every cluster's election, sorted by cluster.
    pub fn elections(&self) -> Vec<HaElection> {
        let clusters = self.clusters.lock();
        let mut out: Vec<HaElection> = clusters
            .iter()
            .map(|(c, e)| HaElection {
                cluster: c.to_string(),
                replica: e.replica.to_string(),
                elected_at_ms: e.elected_at_ms,
                last_seen_ms: e.last_seen_ms,
                changes: e.changes,
            })
            .collect();
        out.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        out
    }
}

/// Float samples and native histogram samples in `batch`, the count a
/// dropped request reports.
pub(crate) fn batch_samples(batch: &Batch<'_>) -> (u64, u64) {
    match batch {
        Batch::V1(w) => (w.samples.len() as u64, w.histograms.len() as u64),
        Batch::V2(w) => (w.samples.len() as u64, w.histograms.len() as u64),
    }
}

/// Key space of series whose replica label is stripped: xored into their
/// series cache key, so the same label bytes stored with and without the
/// label (a request tracked, another not) never share an entry.
const STRIPPED_KEY_SALT: u128 = 0x6861_2d73_7472_6970_7065_642d_6b65_7931;

/// A series cache key in the space of `strip` (see [`STRIPPED_KEY_SALT`]).
#[inline]
pub(crate) fn key_space(key: u128, strip: Option<&str>) -> u128 {
    if strip.is_some() {
        key ^ STRIPPED_KEY_SALT
    } else {
        key
    }
}

/// Whether pair name `name` is removed under `strip`.
#[inline]
pub(crate) fn stripped(name: &str, strip: Option<&str>) -> bool {
    strip == Some(name)
}

/// How many of `pairs` stay under `strip`.
#[inline]
pub(crate) fn kept_len(pairs: &[(&str, &str)], strip: Option<&str>) -> usize {
    match strip {
        None => pairs.len(),
        Some(_) => pairs.iter().filter(|(n, _)| !stripped(n, strip)).count(),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::{v1, Sample};
    use crate::receive::negotiate::Protocol;

    fn tracker(failover_s: u64) -> HaTracker {
        HaTracker::new(HaOptions { failover_timeout: Duration::from_secs(failover_s), ..HaOptions::default() })
    }

    fn dropped(elected: &str, replica: &str) -> HaDecision {
        HaDecision::Drop { cluster: "a".into(), replica: replica.into(), elected: elected.into() }
    }

    #[test]
    fn the_first_replica_is_elected_and_the_other_dropped_while_it_sends() {
        let ha = tracker(30);
        assert_eq!(ha.check("a", "r1", 1_000), HaDecision::Accept);
        // Steady state: both send every few seconds, r1 keeps the lead.
        for t in (2_000..120_000).step_by(5_000) {
            assert_eq!(ha.check("a", "r2", t), dropped("r1", "r2"));
            assert_eq!(ha.check("a", "r1", t + 1), HaDecision::Accept);
        }
        let e = &ha.elections()[0];
        assert_eq!((e.replica.as_str(), e.elected_at_ms, e.last_seen_ms, e.changes), ("r1", 1_000, 117_001, 0));
        // Clusters are independent.
        assert_eq!(ha.check("b", "r2", 5_000), HaDecision::Accept);
        assert_eq!(ha.elections().iter().map(|e| e.replica.as_str()).collect::<Vec<_>>(), vec!["r1", "r2"]);
    }

    #[test]
    fn failover_happens_at_the_timeout_and_not_before() {
        let ha = tracker(30);
        assert_eq!(ha.check("a", "r1", 10_000), HaDecision::Accept);
        // r1 stops; r2 is dropped until r1 has been silent 30 s.
        assert_eq!(ha.check("a", "r2", 39_999), dropped("r1", "r2"));
        assert_eq!(ha.check("a", "r2", 40_000), HaDecision::Accept);
        let e = &ha.elections()[0];
        assert_eq!((e.replica.as_str(), e.elected_at_ms, e.changes), ("r2", 40_000, 1));
        // r1 comes back: now it is the one dropped.
        assert_eq!(ha.check("a", "r1", 41_000), dropped("r2", "r1"));
        // A dropped request does not refresh the sender: r2 is still alive.
        assert_eq!(ha.check("a", "r1", 69_999), dropped("r2", "r1"));
        assert_eq!(ha.check("a", "r1", 70_000), HaDecision::Accept);
        assert_eq!(ha.elections()[0].changes, 2);
    }

    #[test]
    fn a_clock_stepping_back_neither_fails_over_nor_rewinds_last_seen() {
        let ha = tracker(30);
        ha.check("a", "r1", 100_000);
        ha.check("a", "r1", 50_000);
        assert_eq!(ha.elections()[0].last_seen_ms, 100_000);
        assert_eq!(ha.check("a", "r2", 20_000), dropped("r1", "r2"));
    }

    #[test]
    fn new_clusters_beyond_the_limit_are_refused_until_old_ones_are_forgotten() {
        let ha = HaTracker::new(HaOptions { max_clusters: 2, ..HaOptions::default() });
        assert_eq!(ha.check("a", "r1", 0), HaDecision::Accept);
        assert_eq!(ha.check("b", "r1", 0), HaDecision::Accept);
        assert_eq!(ha.check("c", "r1", 1_000), HaDecision::TooManyClusters { limit: 2 });
        // Known clusters still work.
        assert_eq!(ha.check("a", "r1", 2_000), HaDecision::Accept);
        // Once b has been silent for FORGET_AFTER it makes room; a stays.
        let later = FORGET_AFTER.as_millis() as i64;
        ha.check("a", "r1", later);
        assert_eq!(ha.check("c", "r1", later), HaDecision::Accept);
        let names: Vec<String> = ha.elections().into_iter().map(|e| e.cluster).collect();
        assert_eq!(names, vec!["a", "c"]);
    }

    fn body(series: &[&[(&str, &str)]]) -> Vec<u8> {
        v1::WriteRequest {
            timeseries: series
                .iter()
                .map(|labels| v1::TimeSeries {
                    labels: labels.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect(),
                    samples: vec![Sample { timestamp: 1, value: 1.0 }],
                    ..Default::default()
                })
                .collect(),
            metadata: vec![],
        }
        .encode_to_vec()
    }

    fn decide(ha: &HaTracker, series: &[&[(&str, &str)]], lazy: bool) -> HaDecision {
        let raw = body(series);
        let batch = if lazy { Batch::decode_lazy(Protocol::V1, &raw) } else { Batch::decode(Protocol::V1, &raw) };
        ha.decide(&batch.expect("valid"), 0)
    }

    #[test]
    fn only_requests_whose_first_series_has_both_labels_are_tracked() {
        for lazy in [false, true] {
            let ha = tracker(30);
            let both: &[(&str, &str)] = &[("__name__", "up"), ("__replica__", "r1"), ("cluster", "a")];
            let cluster_only: &[(&str, &str)] = &[("__name__", "up"), ("cluster", "a")];
            let replica_only: &[(&str, &str)] = &[("__name__", "up"), ("__replica__", "r2")];
            let empty_replica: &[(&str, &str)] = &[("__name__", "up"), ("__replica__", ""), ("cluster", "a")];
            assert_eq!(decide(&ha, &[cluster_only], lazy), HaDecision::Untracked);
            assert_eq!(decide(&ha, &[replica_only], lazy), HaDecision::Untracked);
            assert_eq!(decide(&ha, &[empty_replica], lazy), HaDecision::Untracked);
            assert!(ha.elections().is_empty());
            // The first series decides, whatever the others carry.
            assert_eq!(decide(&ha, &[cluster_only, both], lazy), HaDecision::Untracked);
            assert_eq!(decide(&ha, &[both, cluster_only], lazy), HaDecision::Accept);
            let r2: &[(&str, &str)] = &[("__name__", "up"), ("__replica__", "r2"), ("cluster", "a")];
            assert_eq!(decide(&ha, &[r2], lazy), dropped("r1", "r2"));
            assert_eq!(decide(&ha, &[], lazy), HaDecision::Untracked);
        }
    }

    #[test]
    fn two_point_zero_requests_are_tracked_by_their_resolved_labels() {
        use crate::proto::v2;
        let ha = tracker(30);
        let symbols = ["", "__name__", "up", "cluster", "a", "__replica__", "r1", "r2"];
        let req = |replica: u32| v2::Request {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2, 5, replica, 3, 4],
                samples: vec![Sample { value: 1.0, timestamp: 1 }],
                ..Default::default()
            }],
        };
        for (replica, want) in [(6, HaDecision::Accept), (7, dropped("r1", "r2"))] {
            let raw = req(replica).encode_to_vec();
            let batch = Batch::decode(Protocol::V2, &raw).expect("valid");
            assert_eq!(ha.decide(&batch, 0), want);
            assert_eq!(batch_samples(&batch), (1, 0));
        }
    }

    #[test]
    fn stripping_helpers_remove_only_the_replica_label() {
        let pairs = [("__name__", "up"), ("__replica__", "r1"), ("cluster", "a")];
        assert_eq!(kept_len(&pairs, None), 3);
        assert_eq!(kept_len(&pairs, Some("__replica__")), 2);
        assert_eq!(kept_len(&pairs, Some("cluster")), 2);
        assert!(stripped("__replica__", Some("__replica__")) && !stripped("cluster", Some("__replica__")));
        assert_ne!(key_space(7, Some("x")), key_space(7, None));
        assert_eq!(key_space(7, None), 7);
    }
}

/// The tracker inside a [`super::Receiver`]: what is stored, answered and
/// counted.
#[cfg(test)]
mod receiver_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tidemark_storage::{Db, Matcher};

    use super::{HaDropReason, HaOptions};
    use crate::codec::encode_v1;
    use crate::proto::{v1, Sample};
    use crate::{MetadataStore, Receiver, ReceiverOptions};

    const T0: i64 = 1_700_000_000_000;

    fn receiver(series_cache_entries: usize) -> (Arc<Db>, Receiver) {
        let db = Arc::new(Db::in_memory().expect("db"));
        let opts = ReceiverOptions {
            series_cache_entries,
            ha: Some(HaOptions { failover_timeout: Duration::from_secs(5), ..HaOptions::default() }),
            ..ReceiverOptions::default()
        };
        (db.clone(), Receiver::new(db, Arc::new(MetadataStore::new()), opts))
    }

    /// A request of replica `replica` (None: no replica label) with two
    /// series, `up` and `other`, sampled at `t` with value `v`.
    fn request(replica: Option<&str>, t: i64, v: f64) -> Vec<u8> {
        encode_v1(&write_request(replica, t, v))
    }

    fn write_request(replica: Option<&str>, t: i64, v: f64) -> v1::WriteRequest {
        let series = |name: &str| {
            let mut labels = vec![v1::Label { name: "__name__".into(), value: name.into() }];
            if let Some(r) = replica {
                labels.push(v1::Label { name: "__replica__".into(), value: r.into() });
            }
            labels.push(v1::Label { name: "cluster".into(), value: "a".into() });
            labels.push(v1::Label { name: "job".into(), value: "node".into() });
            v1::TimeSeries { labels, samples: vec![Sample { value: v, timestamp: t }], ..Default::default() }
        };
        v1::WriteRequest { timeseries: vec![series("up"), series("other")], metadata: vec![] }
    }

    fn send(rx: &Receiver, body: &[u8], now: i64) -> u16 {
        let resp = rx.handle_at(Some("application/x-protobuf"), Some("snappy"), body, now);
        resp.status
    }

    /// Every stored `up` series: its labels and its (t, v) samples.
    fn stored(db: &Db) -> Vec<(String, Vec<(i64, f64)>)> {
        let q = db.querier(0, i64::MAX / 2);
        q.select(&[Matcher::equal("__name__", "up")])
            .expect("select")
            .iter()
            .map(|s| (s.labels().to_string(), s.samples().expect("samples").iter().map(|p| (p.t, p.v)).collect()))
            .collect()
    }

    #[test]
    fn the_pair_makes_one_series_from_one_replica_at_a_time() {
        for cache in [0, 1 << 10] {
            let (db, rx) = receiver(cache);
            // Both replicas send every second; r1 (value 1) is elected.
            for i in 0..5 {
                let t = T0 + i * 1_000;
                assert_eq!(send(&rx, &request(Some("r1"), t, 1.0), t), 204);
                assert_eq!(send(&rx, &request(Some("r2"), t + 10, 2.0), t + 10), 202);
            }
            // r1 dies; r2 is dropped for 5 s, then takes over.
            let mut failover_at = None;
            for i in 5..15 {
                let t = T0 + i * 1_000;
                let status = send(&rx, &request(Some("r2"), t, 2.0), t);
                if status == 204 && failover_at.is_none() {
                    failover_at = Some(t);
                }
                assert_eq!(status, if failover_at.is_some() { 204 } else { 202 }, "at {t}");
            }
            assert_eq!(failover_at, Some(T0 + 9_000), "4 s after r1's last request + 5 s");
            let series = stored(&db);
            assert_eq!(series.len(), 1, "{series:?}");
            assert_eq!(series[0].0, r#"{__name__="up", cluster="a", job="node"}"#);
            let want: Vec<(i64, f64)> =
                (0..5).map(|i| (T0 + i * 1_000, 1.0)).chain((9..15).map(|i| (T0 + i * 1_000, 2.0))).collect();
            assert_eq!(series[0].1, want);
            let s = rx.stats();
            // 9 dropped requests of 2 series.
            assert_eq!((s.ha_dropped(HaDropReason::NotElected), s.responses_with(202)), (18, 9));
            assert_eq!((s.samples_appended, s.samples_rejected.iter().sum::<u64>()), (22, 0));
            let e = &rx.ha().expect("tracker").elections()[0];
            assert_eq!((e.cluster.as_str(), e.replica.as_str(), e.changes), ("a", "r2", 1));
        }
    }

    #[test]
    fn untracked_requests_are_stored_as_sent_and_never_share_a_cached_series() {
        let (db, rx) = receiver(1 << 10);
        // Without a replica label: untracked, stored as sent.
        assert_eq!(send(&rx, &request(None, T0, 1.0), T0), 204);
        // The same labels plus a replica label: tracked, stripped to the
        // same series (cached separately from the untracked spelling).
        assert_eq!(send(&rx, &request(Some("r1"), T0 + 1_000, 1.0), T0 + 1_000), 204);
        assert_eq!(send(&rx, &request(None, T0 + 2_000, 1.0), T0 + 2_000), 204);
        assert_eq!(send(&rx, &request(Some("r1"), T0 + 3_000, 1.0), T0 + 3_000), 204);
        let series = stored(&db);
        assert_eq!(series.len(), 1, "{series:?}");
        assert_eq!(series[0].1.len(), 4);
        // In an untracked request (its first series has no replica label)
        // a later series' replica label is stored as sent.
        let mut req = write_request(None, T0 + 4_000, 1.0);
        let other = v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: "up".into() },
                v1::Label { name: "__replica__".into(), value: "r9".into() },
                v1::Label { name: "job".into(), value: "x".into() },
            ],
            samples: vec![Sample { value: 1.0, timestamp: T0 + 4_000 }],
            ..Default::default()
        };
        req.timeseries.push(other);
        assert_eq!(send(&rx, &encode_v1(&req), T0 + 4_000), 204);
        let names: Vec<String> = stored(&db).into_iter().map(|(l, _)| l).collect();
        assert_eq!(
            names,
            vec![r#"{__name__="up", __replica__="r9", job="x"}"#, r#"{__name__="up", cluster="a", job="node"}"#]
        );
    }

    /// The fuzz target's seeds, in order, with the clock moving as the
    /// target moves it: what each is answered.
    #[test]
    fn the_fuzz_seeds_are_answered_as_their_names_say() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/remote_ha");
        let (db, rx) = receiver(1 << 10);
        let mut now = T0;
        for (seed, want) in [
            ("seed-v1-r1", 204),
            ("seed-v1-r2-same-second", 202),
            ("seed-v2-r2", 202),
            ("seed-v1-untracked", 204),
            ("seed-v1-new-cluster", 204),
            ("seed-v1-r2-after-failover", 204),
            ("seed-v2-r1", 202),
        ] {
            let bytes = std::fs::read(dir.join(seed)).expect("seed");
            let (&mode, rest) = bytes.split_first().expect("mode byte");
            now += i64::from(mode >> 1) * 1_000;
            let ct = if mode & 1 == 0 {
                "application/x-protobuf"
            } else {
                "application/x-protobuf;proto=io.prometheus.write.v2.Request"
            };
            let resp = rx.handle_at(Some(ct), Some("snappy"), &crate::codec::compress(rest), now);
            assert_eq!(resp.status, want, "{seed}: {}", resp.body);
        }
        let names: Vec<String> = stored(&db).into_iter().map(|(l, _)| l).collect();
        assert_eq!(
            names,
            vec![r#"{__name__="up", cluster="a", job="node"}"#, r#"{__name__="up", cluster="b", job="node"}"#]
        );
    }

    #[test]
    fn a_dropped_two_point_zero_request_reports_its_samples_as_written() {
        for cache in [0, 1 << 10] {
            two_point_zero(cache);
        }
    }

    fn two_point_zero(cache: usize) {
        use crate::proto::v2;
        let (db, rx) = receiver(cache);
        let symbols = ["", "__name__", "up", "cluster", "a", "__replica__", "r1", "r2"];
        let body = |replica: u32, t: i64| {
            crate::codec::encode_v2(&v2::Request {
                symbols: symbols.iter().map(|s| s.to_string()).collect(),
                timeseries: vec![v2::TimeSeries {
                    labels_refs: vec![1, 2, 5, replica, 3, 4],
                    samples: vec![Sample { value: 1.0, timestamp: t }, Sample { value: 1.0, timestamp: t + 1 }],
                    ..Default::default()
                }],
            })
        };
        let ct = Some("application/x-protobuf;proto=io.prometheus.write.v2.Request");
        let ok = rx.handle_at(ct, Some("snappy"), &body(6, T0), T0);
        assert_eq!((ok.status, ok.header(crate::receive::SAMPLES_WRITTEN)), (204, Some("2")));
        let dropped = rx.handle_at(ct, Some("snappy"), &body(7, T0), T0);
        assert_eq!((dropped.status, dropped.header(crate::receive::SAMPLES_WRITTEN)), (202, Some("2")));
        assert!(
            dropped.body.contains(r#"replica "r2" of cluster "a" is not the elected replica "r1""#),
            "{}",
            dropped.body
        );
        // The elected replica again (a cache hit when the cache is on):
        // one series, the replica label stripped.
        let again = rx.handle_at(ct, Some("snappy"), &body(6, T0 + 1_000), T0 + 1_000);
        assert_eq!(again.status, 204, "{}", again.body);
        let want = vec![(T0, 1.0), (T0 + 1, 1.0), (T0 + 1_000, 1.0), (T0 + 1_001, 1.0)];
        assert_eq!(stored(&db), vec![(r#"{__name__="up", cluster="a"}"#.to_owned(), want)]);
    }
}

/// Random interleavings of two replicas (and untracked senders) through a
/// receiver with its series cache, against a plain model of the election.
#[cfg(test)]
mod model_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;
    use tidemark_storage::{Db, Matcher};

    use super::HaOptions;
    use crate::codec::encode_v1;
    use crate::proto::{v1, Sample};
    use crate::{MetadataStore, Receiver, ReceiverOptions};

    const T0: i64 = 1_700_000_000_000;
    const FAILOVER_MS: i64 = 3_000;

    fn body(replica: Option<&str>, t: i64) -> Vec<u8> {
        let mut labels = vec![v1::Label { name: "__name__".into(), value: "up".into() }];
        if let Some(r) = replica {
            labels.push(v1::Label { name: "__replica__".into(), value: r.into() });
        }
        labels.push(v1::Label { name: "cluster".into(), value: "a".into() });
        let series =
            v1::TimeSeries { labels, samples: vec![Sample { value: 1.0, timestamp: t }], ..Default::default() };
        encode_v1(&v1::WriteRequest { timeseries: vec![series], metadata: vec![] })
    }

    proptest! {
        #[test]
        fn the_receiver_stores_what_the_model_elects(
            steps in prop::collection::vec((0u8..3, 0i64..5_000), 1..60),
            cache in prop::bool::ANY,
        ) {
            let db = Arc::new(Db::in_memory().expect("db"));
            let opts = ReceiverOptions {
                series_cache_entries: if cache { 1 << 10 } else { 0 },
                ha: Some(HaOptions {
                    failover_timeout: Duration::from_millis(FAILOVER_MS as u64),
                    ..HaOptions::default()
                }),
                ..ReceiverOptions::default()
            };
            let rx = Receiver::new(db.clone(), Arc::new(MetadataStore::new()), opts);
            // The model: the elected replica and when it was last accepted.
            let mut elected: Option<(&str, i64)> = None;
            let mut want = Vec::new();
            let mut now = T0;
            for (who, dt) in steps {
                // Strictly increasing time: every sample is new.
                now += dt + 1;
                let replica = [Some("r1"), Some("r2"), None][usize::from(who)];
                let accepted = match (replica, elected) {
                    (None, _) => true,
                    (Some(r), None) => { elected = Some((r, now)); true }
                    (Some(r), Some((e, _))) if r == e => { elected = Some((r, now)); true }
                    (Some(r), Some((_, seen))) if now - seen >= FAILOVER_MS => { elected = Some((r, now)); true }
                    (Some(_), Some(_)) => false,
                };
                if accepted {
                    want.push(now);
                }
                let resp = rx.handle_at(Some("application/x-protobuf"), Some("snappy"), &body(replica, now), now);
                prop_assert_eq!(resp.status, if accepted { 204 } else { 202 }, "{}", resp.body);
            }
            let series = db.querier(0, i64::MAX / 2).select(&[Matcher::equal("__name__", "up")]).expect("select");
            prop_assert_eq!(series.len(), 1);
            prop_assert_eq!(series[0].labels().to_string(), r#"{__name__="up", cluster="a"}"#);
            let got: Vec<i64> = series[0].samples().expect("samples").iter().map(|s| s.t).collect();
            prop_assert_eq!(got, want);
        }
    }
}
