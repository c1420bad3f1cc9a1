//! Random compositions of PromQL constructs (deterministic seed), to reach
//! combinations a hand-written list misses.
//!
//! The grammar leaves out what 2.42 and 3.x answer differently by design:
//! `last_over_time` (3.x keeps `__name__`), `atan2` (3.x drops `__name__`),
//! `topk`/`bottomk` (ties), `stddev`/`stdvar` (single NaN groups), and nested subqueries (an inner subquery evaluated at the outer step's
//! whole-minute points would put its range boundary on its own step points,
//! where 2.x's closed and 3.x's left-open ranges disagree).

use super::data::Lcg;

const COUNTERS: &[&str] = &[
    "http_requests_total",
    "http_requests_total{job=\"web\"}",
    "http_requests_total{status=~\"5..\"}",
    "node_cpu_seconds_total",
    "node_cpu_seconds_total{mode!=\"idle\"}",
    "container_cpu_usage_seconds_total",
    "socketio_disconnect_total",
    "kube_pod_container_status_restarts_total",
    "hypersdk_jobs_completed_total",
];

const GAUGES: &[&str] = &[
    "up",
    "temperature_celsius",
    "temperature_celsius{sensor!=\"faulty\"}",
    "node_memory_MemAvailable_bytes",
    "db_pool_connections",
    "db_replication_lag_seconds",
    "websocket_active_connections",
    "container_memory_working_set_bytes",
    "kube_node_status_condition",
    "sli:platform_availability:rate5m",
];

const LABELS: &[&str] = &["job", "instance", "method", "status", "mode", "cpu", "sensor", "pool", "state", "pod", "le"];

const RANGES: &[&str] = &["1m", "2m", "5m", "10m", "30m"];

/// Subquery (range, step) pairs; steps are multiples of 15 s, which the
/// test's evaluation times are not.
const SUBQUERIES: &[(&str, &str)] = &[("10m", "1m"), ("5m", "30s"), ("30m", "5m"), ("15m", "15s"), ("20m", "")];

struct Gen<'a> {
    rng: &'a mut Lcg,
}

impl Gen<'_> {
    fn pick<'s>(&mut self, xs: &[&'s str]) -> &'s str {
        xs[self.rng.int(0, xs.len() as i64 - 1) as usize]
    }

    fn labels(&mut self) -> String {
        let n = self.rng.int(0, 2);
        let mut ls: Vec<&str> = (0..n).map(|_| self.pick(LABELS)).collect();
        ls.sort_unstable();
        ls.dedup();
        ls.join(", ")
    }

    fn number(&mut self) -> String {
        self.pick(&["0", "1", "2", "0.5", "10", "100", "-3", "1e3", "0.001"]).to_string()
    }

    /// A range-vector function over a raw selector.
    fn range_call(&mut self) -> String {
        let r = self.pick(RANGES);
        if self.rng.chance(0.5) {
            let f = self.pick(&["rate", "irate", "increase", "resets", "deriv", "delta", "idelta"]);
            format!("{f}({}[{r}])", self.pick(COUNTERS))
        } else {
            let sel = self.pick(GAUGES);
            match self.rng.int(0, 11) {
                0 => format!("quantile_over_time({}, {sel}[{r}])", self.pick(&["0", "0.25", "0.5", "0.9", "1"])),
                1 => format!("predict_linear({sel}[{r}], {})", self.pick(&["60", "600", "-300"])),
                2 => format!("changes({sel}[{r}])"),
                3 => format!("present_over_time({sel}[{r}])"),
                _ => {
                    let f = self.pick(&[
                        "avg_over_time",
                        "min_over_time",
                        "max_over_time",
                        "sum_over_time",
                        "count_over_time",
                        "stddev_over_time",
                        "stdvar_over_time",
                    ]);
                    format!("{f}({sel}[{r}])")
                }
            }
        }
    }

    /// An instant-vector expression; `sub` says whether a subquery may still appear.
    fn vector(&mut self, depth: u32, sub: bool) -> String {
        if depth == 0 {
            return if self.rng.chance(0.5) { self.pick(GAUGES).to_string() } else { self.range_call() };
        }
        match self.rng.int(0, 12) {
            0 | 1 => self.range_call(),
            2 => {
                // No sin/cos (they turn the last-bit differences of 2.42's
                // plain sums against 3.x's Kahan sums on values near 1e11 into
                // visible ones) and no round (same at a .5 boundary).
                let f = self.pick(&["abs", "ceil", "floor", "sgn", "sqrt", "ln", "exp", "tanh"]);
                format!("{f}({})", self.vector(depth - 1, sub))
            }
            3 | 4 => {
                // No stddev/stdvar: over a group of one NaN or ±Inf, 3.x gives
                // NaN and 2.42 gives 0 (listed once in KNOWN_DIFFERENCES).
                let op = self.pick(&["sum", "avg", "min", "max", "count", "group"]);
                let how = self.pick(&["by", "without"]);
                format!("{op} {how} ({}) ({})", self.labels(), self.vector(depth - 1, sub))
            }
            5 => {
                // No topk/bottomk: random inputs tie often (0/1 gauges, equal
                // counts), and which tied series wins is not specified (2.42
                // even picks differently in instant and range queries).
                let p = self.pick(&["0", "0.5", "0.9", "1"]);
                format!("quantile by ({}) ({p}, {})", self.labels(), self.vector(depth - 1, sub))
            }
            6 => {
                let op = self.pick(&["+", "-", "*", "/", "%", "^", ">", "<", ">=", "!=", "== bool", "> bool"]);
                let v = self.vector(depth - 1, sub);
                if self.rng.chance(0.5) {
                    format!("({v}) {op} {}", self.number())
                } else {
                    format!("{} {op} ({v})", self.number())
                }
            }
            7 | 8 => {
                let op = self.pick(&["+", "-", "*", "/", ">", "<=", "and", "or", "unless", "> bool"]);
                let matching = match self.rng.int(0, 3) {
                    0 => String::new(),
                    1 => format!(" on ({})", self.labels()),
                    2 => format!(" ignoring ({})", self.labels()),
                    _ => format!(" on ({}) group_left", self.labels()),
                };
                let l = self.vector(depth - 1, sub);
                let r = self.vector(depth - 1, sub);
                format!("({l}) {op}{matching} ({r})")
            }
            9 => {
                let v = self.vector(depth - 1, sub);
                match self.rng.int(0, 3) {
                    0 => format!("clamp({v}, {}, {})", self.number(), self.number()),
                    1 => format!("clamp_min({v}, {})", self.number()),
                    2 => format!("clamp_max({v}, {})", self.number()),
                    _ => format!("label_replace({v}, \"x\", \"$1\", \"{}\", \"(.+)\")", self.pick(LABELS)),
                }
            }
            10 if sub => {
                let (range, step) = SUBQUERIES[self.rng.int(0, SUBQUERIES.len() as i64 - 1) as usize];
                let f = self.pick(&["avg_over_time", "max_over_time", "min_over_time", "count_over_time", "rate"]);
                format!("{f}(({})[{range}:{step}])", self.vector(depth - 1, false))
            }
            11 => format!(
                "histogram_quantile({}, sum by (le{}) (rate(http_request_duration_seconds_bucket[5m])))",
                self.pick(&["0.5", "0.9", "0.99"]),
                self.pick(&["", ", job", ", instance"])
            ),
            _ => format!("{} offset {}", self.pick(GAUGES), self.pick(&["5m", "1h", "-2m"])),
        }
    }
}

/// `n` random queries from `seed`.
pub fn queries(seed: u64, n: usize) -> Vec<String> {
    let mut rng = Lcg::new(seed);
    let mut g = Gen { rng: &mut rng };
    (0..n).map(|_| g.vector(3, true)).collect()
}
