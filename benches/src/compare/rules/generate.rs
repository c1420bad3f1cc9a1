//! The rule file of the rules-at-scale comparison: 1,000 rules in 50
//! groups of 20 over the synthetic fleet's metrics (see
//! [`super::super::load`]), shaped like the SLO and alerting rule sets of
//! the monitoring guides (`shared/rules/seed-rules.yml`):
//!
//! * 25 **SLO groups**, one per service job and route (15 s): request and
//!   error rates over 1 m and 5 m, error ratios read from those recordings,
//!   the latency histogram's bucket rates recorded once and read by three
//!   `histogram_quantile` rules, availability and error budget read from
//!   the ratios, and alerts on them with `for`, labels and templated
//!   annotations (`humanizePercentage`, `humanizeDuration`).
//! * 5 **service groups**, one per job (30 s): process, runtime, database
//!   pool, WebSocket and ML gauges aggregated per job, with alerts.
//! * 20 **node groups** (30 s): four concerns (CPU and load, memory and
//!   filesystems, network, disks) at five windows (1 m, 2 m, 5 m, 10 m,
//!   15 m), as node-mixin-style rule sets record the same signals at
//!   several windows.
//!
//! Every rule that reads a recording reads one recorded earlier in its own
//! group, so one iteration sees the values of the same timestamp. Names
//! carry their window and alerts a `window` label, so no two rules write
//! the same series.

use std::collections::BTreeMap;

/// The service jobs of the fleet (as in `load.rs`).
pub const JOBS: [&str; 5] = ["api-gateway", "video-ingestion", "ml-pipeline", "analytics-engine", "hypersdk"];
/// The routes every service serves (as in `load.rs`).
pub const ROUTES: [&str; 5] = ["/api/users", "/api/orders", "/api/search", "/api/upload", "/health"];
/// Windows of the node groups.
pub const NODE_WINDOWS: [&str; 5] = ["1m", "2m", "5m", "10m", "15m"];
/// The longest range any rule reads: the load must hold this much history
/// before the first evaluation.
pub const LONGEST_WINDOW_MS: i64 = 15 * 60_000;

/// A rule file: what `serde_norway` writes as Prometheus' format.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleFile {
    /// The groups, in evaluation-schedule order.
    pub groups: Vec<Group>,
}

/// One group.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Group {
    /// Group name (unique in the file).
    pub name: String,
    /// Evaluation interval (`15s`, `30s`).
    pub interval: String,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// One recording or alerting rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rule {
    /// Recorded metric name (recording rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alert name (alerting rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The PromQL.
    pub expr: String,
    /// `for` (alerting rules).
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Extra labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Templated annotations (alerting rules).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    fn record(name: &str, expr: impl Into<String>) -> Rule {
        Rule {
            record: Some(name.into()),
            alert: None,
            expr: expr.into(),
            for_: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn alert(name: &str, expr: impl Into<String>, for_: &str, severity: &str) -> Rule {
        let mut labels = BTreeMap::new();
        labels.insert("severity".to_string(), severity.to_string());
        Rule {
            record: None,
            alert: Some(name.into()),
            expr: expr.into(),
            for_: Some(for_.into()),
            labels,
            annotations: BTreeMap::new(),
        }
    }

    fn label(mut self, name: &str, value: &str) -> Rule {
        self.labels.insert(name.into(), value.into());
        self
    }

    fn annotate(mut self, summary: &str, description: &str) -> Rule {
        self.annotations.insert("summary".into(), summary.into());
        self.annotations.insert("description".into(), description.into());
        self
    }

    /// Whether this is a recording rule.
    pub fn is_recording(&self) -> bool {
        self.record.is_some()
    }
}

impl RuleFile {
    /// The 50 groups of 20 rules.
    pub fn at_scale() -> RuleFile {
        let mut groups = Vec::with_capacity(50);
        for job in JOBS {
            for route in ROUTES {
                groups.push(slo_group(job, route));
            }
        }
        for job in JOBS {
            groups.push(service_group(job));
        }
        for w in NODE_WINDOWS {
            groups.push(node_cpu_group(w));
            groups.push(node_memory_filesystem_group(w));
            groups.push(node_network_group(w));
            groups.push(node_disk_group(w));
        }
        RuleFile { groups }
    }

    /// Rules in all groups.
    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }

    /// The file as YAML.
    pub fn to_yaml(&self) -> String {
        // Serialising plain strings and maps cannot fail.
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Every recorded metric name, with its group.
    pub fn recorded_names(&self) -> Vec<(String, String)> {
        self.groups
            .iter()
            .flat_map(|g| g.rules.iter().filter_map(move |r| r.record.clone().map(|n| (g.name.clone(), n))))
            .collect()
    }
}

fn slug(route: &str) -> String {
    let s = route.trim_start_matches('/').replace('/', "-");
    if s.is_empty() {
        "root".into()
    } else {
        s
    }
}

/// One service route's SLO rules.
fn slo_group(job: &str, route: &str) -> Group {
    let sel = format!(r#"job="{job}",route="{route}""#);
    let rate =
        |w: &str, extra: &str| format!(r#"sum by (job, route) (rate(http_requests_total{{{sel}{extra}}}[{w}]))"#);
    let mut rules = Vec::with_capacity(20);
    for w in ["1m", "5m"] {
        rules.push(Rule::record(&format!("job_route:http_requests:rate{w}"), rate(w, "")));
        rules.push(Rule::record(&format!("job_route:http_errors:rate{w}"), rate(w, r#",status=~"5..""#)));
        rules.push(Rule::record(
            &format!("job_route:http_error_ratio:rate{w}"),
            format!("job_route:http_errors:rate{w}{{{sel}}} / job_route:http_requests:rate{w}{{{sel}}}"),
        ));
    }
    rules.push(Rule::record(
        "job_route_method:http_requests:rate5m",
        format!("sum by (job, route, method) (rate(http_requests_total{{{sel}}}[5m]))"),
    ));
    rules.push(Rule::record(
        "instance_route:http_requests:rate5m",
        format!("sum by (instance, job, route) (rate(http_requests_total{{{sel}}}[5m]))"),
    ));
    rules.push(Rule::record(
        "job_route_le:http_request_duration_seconds_bucket:rate5m",
        format!("sum by (job, route, le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m]))"),
    ));
    for (q, name) in [("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99")] {
        rules.push(Rule::record(
            &format!("job_route:http_request_duration_seconds:{name}_5m"),
            format!("histogram_quantile({q}, job_route_le:http_request_duration_seconds_bucket:rate5m{{{sel}}})"),
        ));
    }
    rules.push(Rule::record(
        "job_route:http_request_duration_seconds:mean5m",
        format!(
            "sum by (job, route) (rate(http_request_duration_seconds_sum{{{sel}}}[5m]))\n/\nsum by (job, route) (rate(http_request_duration_seconds_count{{{sel}}}[5m]))"
        ),
    ));
    rules.push(Rule::record(
        "job_route:sli_availability:ratio_rate5m",
        format!("1 - job_route:http_error_ratio:rate5m{{{sel}}}"),
    ));
    rules.push(Rule::record(
        "job_route:slo_error_budget_remaining:ratio",
        format!("1 - ((1 - job_route:sli_availability:ratio_rate5m{{{sel}}}) / (1 - 0.999))"),
    ));
    rules.push(
        Rule::alert(
            "HTTPErrorRateHigh",
            format!("job_route:http_error_ratio:rate5m{{{sel}}} > 0.05"),
            "5m",
            "critical",
        )
        .label("team", "platform")
        .annotate(
            "High error rate on {{ $labels.job }} {{ $labels.route }}",
            "{{ $value | humanizePercentage }} of requests to {{ $labels.route }} fail (SLO: 5%)",
        ),
    );
    rules.push(
        Rule::alert(
            "HTTPLatencyP99High",
            format!("job_route:http_request_duration_seconds:p99_5m{{{sel}}} > 2.5"),
            "5m",
            "warning",
        )
        .annotate("Slow responses on {{ $labels.route }}", "P99 latency is {{ $value | humanizeDuration }}"),
    );
    rules.push(
        Rule::alert(
            "SLOErrorBudgetFastBurn",
            format!(
                "job_route:http_error_ratio:rate1m{{{sel}}} > (14.4 * (1 - 0.999))\nand\njob_route:http_error_ratio:rate5m{{{sel}}} > (14.4 * (1 - 0.999))"
            ),
            "2m",
            "critical",
        )
        .label("burn_rate", "fast")
        .label("alert_type", "slo_burn_rate")
        .annotate(
            "{{ $labels.job }} burns its error budget fast",
            "Error ratio {{ $value | humanizePercentage }} is 14.4× the budget; {{ with query \"vector(1)\" }}{{ . | first | value }}{{ end }} window(s) agree",
        ),
    );
    rules.push(
        Rule::alert("HTTPTrafficLow", format!("job_route:http_requests:rate5m{{{sel}}} < 1"), "10m", "info")
            .annotate("Little traffic on {{ $labels.route }}", "{{ $value | humanize }} requests/s"),
    );
    rules.push(
        Rule::alert(
            "InstanceHTTPErrorsHigh",
            format!(
                r#"sum by (instance, job, route) (rate(http_requests_total{{{sel},status=~"5.."}}[5m]))
/
instance_route:http_requests:rate5m{{{sel}}} > 0.9"#
            ),
            "5m",
            "warning",
        )
        .annotate(
            "{{ $labels.instance }} fails most requests",
            "{{ $labels.instance }} ({{ $labels.job }}) answers {{ $value | humanizePercentage }} of {{ $labels.route }} with 5xx",
        ),
    );
    // As SLO generators (Sloth, Pyrra) do, every rule carries its SLO's
    // name, so the 25 groups' rules are told apart by their labels too.
    let slo = format!("{job}-{}", slug(route));
    let rules = rules.into_iter().map(|r| r.label("slo", &slo)).collect();
    Group { name: format!("slo-{slo}"), interval: "15s".into(), rules }
}

/// One service job's resource rules.
fn service_group(job: &str) -> Group {
    let j = format!(r#"job="{job}""#);
    let rules = vec![
        Rule::record("instance:process_cpu:rate5m", format!("rate(process_cpu_seconds_total{{{j}}}[5m])")),
        Rule::record("job:process_cpu:rate5m", format!("sum by (job) (instance:process_cpu:rate5m{{{j}}})")),
        Rule::record(
            "job:process_resident_memory_bytes:sum",
            format!("sum by (job) (process_resident_memory_bytes{{{j}}})"),
        ),
        Rule::record(
            "job:process_resident_memory_bytes:max",
            format!("max by (job) (process_resident_memory_bytes{{{j}}})"),
        ),
        Rule::record("job:go_goroutines:avg", format!("avg by (job) (go_goroutines{{{j}}})")),
        Rule::record(
            "instance:db_pool_utilisation:ratio",
            format!(
                r#"sum by (instance, job, pool) (db_pool_connections{{{j},state="active"}})
/
sum by (instance, job, pool) (db_pool_connections{{{j}}})"#
            ),
        ),
        Rule::record(
            "job:db_pool_utilisation:max",
            format!("max by (job, pool) (instance:db_pool_utilisation:ratio{{{j}}})"),
        ),
        Rule::record(
            "job:db_replication_lag_seconds:max",
            format!("max by (job) (max_over_time(db_replication_lag_seconds{{{j}}}[5m]))"),
        ),
        Rule::record(
            "instance:websocket_efficiency:ratio_rate5m",
            format!(
                "1 - (rate(websocket_batches_sent_total{{{j}}}[5m]) /\n     rate(websocket_messages_total{{{j}}}[5m]))"
            ),
        ),
        Rule::record(
            "job:websocket_active_connections:sum",
            format!("sum by (job) (websocket_active_connections{{{j}}})"),
        ),
        Rule::record("job:ml_tasks_queued:sum", format!("sum by (job) (ml_tasks_queued{{{j}}})")),
        Rule::record(
            "job:ml_model_accuracy_score:avg",
            format!("avg by (job) (avg_over_time(ml_model_accuracy_score{{{j}}}[5m]))"),
        ),
        Rule::record("job:up:ratio", format!("avg by (job) (up{{{j}}})")),
        Rule::record("job:http_requests:rate5m", format!("sum by (job) (rate(http_requests_total{{{j}}}[5m]))")),
        Rule::alert("ProcessMemoryHigh", format!("process_resident_memory_bytes{{{j}}} > 5e8"), "5m", "warning")
            .annotate(
                "{{ $labels.instance }} uses much memory",
                "{{ $labels.instance }} uses {{ $value | humanize1024 }}B",
            ),
        Rule::alert("DatabaseReplicationLag", format!("db_replication_lag_seconds{{{j}}} > 5e6"), "5m", "critical")
            .annotate("High database replication lag", "Replication lag is {{ $value | humanizeDuration }}"),
        Rule::alert("MLQueueBacklog", format!("ml_tasks_queued{{{j}}} > 1e8"), "10m", "warning").annotate(
            "ML processing queue backlog",
            "{{ $value | humanize }} tasks in queue on {{ $labels.instance }}",
        ),
        Rule::alert("DBPoolSaturated", format!("job:db_pool_utilisation:max{{{j}}} > 0.9"), "5m", "warning")
            .annotate("{{ $labels.pool }} pool nearly full", "{{ $value | humanizePercentage }} of connections in use"),
        Rule::alert("InstanceDown", format!("up{{{j}}} == 0"), "1m", "critical")
            .annotate("{{ $labels.instance }} is down", "{{ $labels.job }} target {{ $labels.instance }} is down"),
        Rule::alert("ModelAccuracyLow", format!("job:ml_model_accuracy_score:avg{{{j}}} < 0.5"), "15m", "warning")
            .annotate("Model accuracy dropped", "Mean accuracy is {{ $value | humanizePercentage }}"),
    ];
    let rules = rules.into_iter().map(|r| r.label("service", job)).collect();
    Group { name: format!("service-{job}"), interval: "30s".into(), rules }
}

fn node_cpu_group(w: &str) -> Group {
    let n = r#"job="node""#;
    let mut rules = vec![Rule::record(
        &format!("instance_mode:node_cpu_seconds:rate{w}"),
        format!("sum by (instance, job, mode) (rate(node_cpu_seconds_total{{{n}}}[{w}]))"),
    )];
    rules.push(Rule::record(
        &format!("instance:node_cpu_utilisation:rate{w}"),
        format!(r#"1 - avg by (instance, job) (rate(node_cpu_seconds_total{{{n},mode="idle"}}[{w}]))"#),
    ));
    for mode in ["iowait", "system", "user", "steal"] {
        rules.push(Rule::record(
            &format!("instance:node_cpu_{mode}:rate{w}"),
            format!(r#"avg by (instance, job) (rate(node_cpu_seconds_total{{{n},mode="{mode}"}}[{w}]))"#),
        ));
    }
    for (agg, name) in [("avg", "avg"), ("max", "max")] {
        rules.push(Rule::record(
            &format!("job:node_cpu_utilisation:{name}_rate{w}"),
            format!("{agg} by (job) (instance:node_cpu_utilisation:rate{w})"),
        ));
    }
    rules.push(Rule::record(
        &format!("job:node_cpu_utilisation:p90_rate{w}"),
        format!("quantile by (job) (0.9, instance:node_cpu_utilisation:rate{w})"),
    ));
    for load in ["1", "5"] {
        rules.push(Rule::record(
            &format!("instance:node_load{load}_per_cpu:ratio{w}"),
            format!(
                r#"avg_over_time(node_load{load}{{{n}}}[{w}])
/ on (instance, job)
count by (instance, job) (node_cpu_seconds_total{{{n},mode="idle"}})"#
            ),
        ));
    }
    for c in ["context_switches", "intr", "forks"] {
        rules.push(Rule::record(&format!("instance:node_{c}:rate{w}"), format!("rate(node_{c}_total{{{n}}}[{w}])")));
    }
    rules.push(Rule::record(
        &format!("instance:node_procs_running:max{w}"),
        format!("max_over_time(node_procs_running{{{n}}}[{w}])"),
    ));
    rules.push(Rule::record(
        &format!("job:node_cpu_saturated_instances:count{w}"),
        format!("count by (job) (instance:node_cpu_utilisation:rate{w} > 0.9)"),
    ));
    rules.push(
        Rule::alert("NodeCPUHigh", format!("instance:node_cpu_utilisation:rate{w} > 0.9"), "10m", "warning")
            .label("window", w)
            .annotate("CPU busy on {{ $labels.instance }}", "CPU utilisation is {{ $value | humanizePercentage }}"),
    );
    rules.push(
        Rule::alert("NodeLoadHigh", format!("instance:node_load1_per_cpu:ratio{w} > 2"), "15m", "warning")
            .label("window", w)
            .annotate("Load high on {{ $labels.instance }}", "Load per CPU is {{ $value | printf \"%.2f\" }}"),
    );
    rules.push(
        Rule::alert("NodeCPUIOWaitHigh", format!("instance:node_cpu_iowait:rate{w} > 1000"), "10m", "info")
            .label("window", w)
            .annotate("IO wait on {{ $labels.instance }}", "{{ $value | humanize }} s/s waiting on IO"),
    );
    rules.push(
        Rule::alert(
            "NodeTemperatureHigh",
            format!("max by (instance, job) (max_over_time(node_hwmon_temp_celsius{{{n}}}[{w}])) > 1e8"),
            "5m",
            "critical",
        )
        .label("window", w)
        .annotate("{{ $labels.instance }} runs hot", "Hottest sensor at {{ $value | humanize }}°C"),
    );
    Group { name: format!("node-cpu-{w}"), interval: "30s".into(), rules }
}

fn node_memory_filesystem_group(w: &str) -> Group {
    let n = r#"job="node""#;
    let fs = r#"job="node",fstype!="tmpfs""#;
    let mut rules = Vec::with_capacity(20);
    for (name, metric) in
        [("available", "MemAvailable"), ("free", "MemFree"), ("cached", "Cached"), ("dirty", "Dirty"), ("slab", "Slab")]
    {
        rules.push(Rule::record(
            &format!("instance:node_memory_{name}_bytes:avg{w}"),
            format!("avg_over_time(node_memory_{metric}_bytes{{{n}}}[{w}])"),
        ));
    }
    rules.push(Rule::record(
        &format!("instance:node_memory_utilisation:ratio{w}"),
        format!(
            "1 - (instance:node_memory_available_bytes:avg{w} / on (instance, job) node_memory_MemTotal_bytes{{{n}}})"
        ),
    ));
    rules.push(Rule::record(
        &format!("instance:node_memory_swap_used:ratio{w}"),
        format!(
            "1 - (avg_over_time(node_memory_SwapFree_bytes{{{n}}}[{w}]) / on (instance, job) node_memory_SwapTotal_bytes{{{n}}})"
        ),
    ));
    rules.push(Rule::record(
        &format!("job:node_memory_utilisation:avg{w}"),
        format!("avg by (job) (instance:node_memory_utilisation:ratio{w})"),
    ));
    rules.push(Rule::record(
        &format!("job:node_memory_available_bytes:sum{w}"),
        format!("sum by (job) (instance:node_memory_available_bytes:avg{w})"),
    ));
    rules.push(Rule::record(
        &format!("instance_mountpoint:node_filesystem_avail:ratio{w}"),
        format!(
            "avg_over_time(node_filesystem_avail_bytes{{{fs}}}[{w}])\n/ on (instance, job, device, fstype, mountpoint)\nnode_filesystem_size_bytes{{{fs}}}"
        ),
    ));
    rules.push(Rule::record(
        &format!("instance_mountpoint:node_filesystem_avail_bytes:predict4h{w}"),
        format!("predict_linear(node_filesystem_avail_bytes{{{fs}}}[{w}], 4 * 3600)"),
    ));
    rules.push(Rule::record(
        &format!("instance_mountpoint:node_filesystem_used_bytes:max{w}"),
        format!(
            "max_over_time(node_filesystem_size_bytes{{{fs}}}[{w}]) - min_over_time(node_filesystem_free_bytes{{{fs}}}[{w}])"
        ),
    ));
    rules.push(Rule::record(
        &format!("job:node_filesystem_avail:min_ratio{w}"),
        format!("min by (job, mountpoint) (instance_mountpoint:node_filesystem_avail:ratio{w})"),
    ));
    rules.push(Rule::record(
        &format!("job:node_filesystem_filling_up:count{w}"),
        format!("count by (job) (instance_mountpoint:node_filesystem_avail_bytes:predict4h{w} < 0)"),
    ));
    rules.push(Rule::record(
        &format!("instance:node_memory_page_tables_bytes:max{w}"),
        format!("max_over_time(node_memory_PageTables_bytes{{{n}}}[{w}])"),
    ));
    rules.push(Rule::record(
        &format!("instance:node_filefd_allocated:avg{w}"),
        format!("avg_over_time(node_filefd_allocated{{{n}}}[{w}])"),
    ));
    rules.push(
        Rule::alert("NodeMemoryHigh", format!("instance:node_memory_utilisation:ratio{w} > 0.95"), "15m", "warning")
            .label("window", w)
            .annotate(
                "Memory nearly full on {{ $labels.instance }}",
                "{{ $value | humanizePercentage }} of memory in use",
            ),
    );
    rules.push(
        Rule::alert(
            "NodeFilesystemAlmostFull",
            format!("instance_mountpoint:node_filesystem_avail:ratio{w} < 0.05"),
            "30m",
            "critical",
        )
        .label("window", w)
        .annotate(
            "{{ $labels.mountpoint }} on {{ $labels.instance }} almost full",
            "Only {{ $value | humanizePercentage }} left on {{ $labels.device }}",
        ),
    );
    rules.push(
        Rule::alert(
            "NodeFilesystemFillingUp",
            format!(
                "instance_mountpoint:node_filesystem_avail_bytes:predict4h{w} < 0\nand\ninstance_mountpoint:node_filesystem_avail:ratio{w} < 0.4"
            ),
            "1h",
            "warning",
        )
        .label("window", w)
        .annotate(
            "{{ $labels.mountpoint }} fills up",
            "{{ $labels.device }} on {{ $labels.instance }} is predicted to be full within 4 hours",
        ),
    );
    rules.push(
        Rule::alert("NodeSwapping", format!("instance:node_memory_swap_used:ratio{w} > 0.99"), "10m", "info")
            .label("window", w)
            .annotate("{{ $labels.instance }} swaps", "{{ $value | humanizePercentage }} of swap in use"),
    );
    Group { name: format!("node-memory-filesystem-{w}"), interval: "30s".into(), rules }
}

/// The node exporter's network counters (as in `load.rs`).
const NETWORK_COUNTERS: [&str; 8] = [
    "receive_bytes",
    "transmit_bytes",
    "receive_packets",
    "transmit_packets",
    "receive_errs",
    "transmit_errs",
    "receive_drop",
    "transmit_drop",
];

fn node_network_group(w: &str) -> Group {
    let sel = r#"job="node",device!="lo""#;
    let mut rules = Vec::with_capacity(20);
    for c in NETWORK_COUNTERS {
        rules.push(Rule::record(
            &format!("instance:node_network_{c}_excluding_lo:rate{w}"),
            format!("sum by (instance, job) (rate(node_network_{c}_total{{{sel}}}[{w}]))"),
        ));
    }
    for c in ["receive_bytes", "transmit_bytes", "receive_errs", "transmit_errs"] {
        rules.push(Rule::record(
            &format!("job:node_network_{c}_excluding_lo:sum_rate{w}"),
            format!("sum by (job) (instance:node_network_{c}_excluding_lo:rate{w})"),
        ));
    }
    for dir in ["receive", "transmit"] {
        rules.push(Rule::record(
            &format!("instance:node_network_{dir}_error_ratio:rate{w}"),
            format!(
                "instance:node_network_{dir}_errs_excluding_lo:rate{w}\n/\ninstance:node_network_{dir}_packets_excluding_lo:rate{w}"
            ),
        ));
    }
    rules.push(Rule::record(
        &format!("instance:node_network_bytes_excluding_lo:rate{w}"),
        format!(
            "instance:node_network_receive_bytes_excluding_lo:rate{w}\n+\ninstance:node_network_transmit_bytes_excluding_lo:rate{w}"
        ),
    ));
    rules.push(Rule::record(
        &format!("job:node_network_bytes_excluding_lo:topk_ratio{w}"),
        format!(
            "max by (job) (instance:node_network_bytes_excluding_lo:rate{w})\n/\navg by (job) (instance:node_network_bytes_excluding_lo:rate{w})"
        ),
    ));
    for dir in ["receive", "transmit"] {
        rules.push(
            Rule::alert(
                &format!("NodeNetwork{}Errs", if dir == "receive" { "Receive" } else { "Transmit" }),
                format!("instance:node_network_{dir}_error_ratio:rate{w} > 1"),
                "1h",
                "warning",
            )
            .label("window", w)
            .annotate(
                &format!("{{{{ $labels.instance }}}} sees {dir} errors"),
                "{{ $labels.instance }} has {{ $value | humanizePercentage }} errors per packet",
            ),
        );
    }
    rules.push(
        Rule::alert(
            "NodeNetworkDropping",
            format!("instance:node_network_receive_drop_excluding_lo:rate{w} > 1e4"),
            "15m",
            "warning",
        )
        .label("window", w)
        .annotate("{{ $labels.instance }} drops packets", "{{ $value | humanize }} packets/s dropped"),
    );
    rules.push(
        Rule::alert(
            "NodeNetworkSaturated",
            format!("instance:node_network_bytes_excluding_lo:rate{w} > 1.25e9"),
            "5m",
            "warning",
        )
        .label("window", w)
        .annotate("{{ $labels.instance }} link saturated", "{{ $value | humanize1024 }}B/s through eth0"),
    );
    Group { name: format!("node-network-{w}"), interval: "30s".into(), rules }
}

/// The node exporter's disk counters (as in `load.rs`).
const DISK_COUNTERS: [&str; 5] =
    ["reads_completed", "writes_completed", "read_bytes", "written_bytes", "io_time_seconds"];

fn node_disk_group(w: &str) -> Group {
    let n = r#"job="node""#;
    let mut rules = Vec::with_capacity(20);
    for c in DISK_COUNTERS {
        rules.push(Rule::record(
            &format!("instance_device:node_disk_{c}:rate{w}"),
            format!("rate(node_disk_{c}_total{{{n}}}[{w}])"),
        ));
    }
    for c in DISK_COUNTERS {
        rules.push(Rule::record(
            &format!("instance:node_disk_{c}:sum_rate{w}"),
            format!("sum by (instance, job) (instance_device:node_disk_{c}:rate{w})"),
        ));
    }
    rules.push(Rule::record(
        &format!("job:node_disk_io_time_seconds:max_rate{w}"),
        format!("max by (job) (instance_device:node_disk_io_time_seconds:rate{w})"),
    ));
    rules.push(Rule::record(
        &format!("instance_device:node_disk_bytes_per_io:ratio{w}"),
        format!(
            "(instance_device:node_disk_read_bytes:rate{w} + instance_device:node_disk_written_bytes:rate{w})\n/\n(instance_device:node_disk_reads_completed:rate{w} + instance_device:node_disk_writes_completed:rate{w})"
        ),
    ));
    rules.push(Rule::record(
        &format!("job:node_disk_written_bytes:sum_rate{w}"),
        format!("sum by (job) (instance:node_disk_written_bytes:sum_rate{w})"),
    ));
    rules.push(Rule::record(
        &format!("job:node_disk_read_bytes:sum_rate{w}"),
        format!("sum by (job) (instance:node_disk_read_bytes:sum_rate{w})"),
    ));
    rules.push(Rule::record(
        &format!("instance:node_disk_busy_devices:count{w}"),
        format!("count by (instance, job) (instance_device:node_disk_io_time_seconds:rate{w} > 0.5)"),
    ));
    rules.push(Rule::record(
        &format!("job:node_disk_busy_devices:sum{w}"),
        format!("sum by (job) (instance:node_disk_busy_devices:count{w})"),
    ));
    rules.push(Rule::record(&format!("instance:up:avg{w}"), format!("avg_over_time(up{{{n}}}[{w}])")));
    rules.push(
        Rule::alert(
            "NodeDiskIOSaturated",
            format!("instance_device:node_disk_io_time_seconds:rate{w} > 50"),
            "30m",
            "warning",
        )
        .label("window", w)
        .annotate(
            "{{ $labels.device }} on {{ $labels.instance }} is busy",
            "{{ $labels.device }} spends {{ $value | humanizePercentage }} of its time on IO",
        ),
    );
    rules.push(
        Rule::alert("NodeDiskWritesHigh", format!("instance:node_disk_written_bytes:sum_rate{w} > 5e8"), "15m", "info")
            .label("window", w)
            .annotate("{{ $labels.instance }} writes a lot", "{{ $value | humanize1024 }}B/s written"),
    );
    rules.push(
        Rule::alert("NodeExporterDown", format!("instance:up:avg{w} < 1"), "5m", "critical")
            .label("window", w)
            .annotate(
                "node_exporter on {{ $labels.instance }} missed scrapes",
                "Up {{ $value | humanizePercentage }} of the time",
            ),
    );
    Group { name: format!("node-disk-{w}"), interval: "30s".into(), rules }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fifty_groups_of_twenty() {
        let f = RuleFile::at_scale();
        assert_eq!(f.groups.len(), 50);
        for g in &f.groups {
            assert_eq!(g.rules.len(), 20, "group {}", g.name);
        }
        assert_eq!(f.rule_count(), 1000);
        let names: HashSet<&str> = f.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names.len(), 50, "group names are unique");
        let alerts = f.groups.iter().flat_map(|g| &g.rules).filter(|r| !r.is_recording()).count();
        assert!((150..=400).contains(&alerts), "a realistic share of alerting rules: {alerts}");
    }

    /// A rule reading a recorded name reads one recorded earlier in its own
    /// group, never a later one or another group's.
    #[test]
    fn recordings_are_read_in_their_own_group_after_being_written() {
        let f = RuleFile::at_scale();
        let all: HashSet<String> = f.recorded_names().into_iter().map(|(_, n)| n).collect();
        let mut reads = 0;
        for g in &f.groups {
            let mut earlier: HashSet<&str> = HashSet::new();
            for r in &g.rules {
                for name in all.iter().filter(|n| mentions(&r.expr, n)) {
                    assert!(
                        earlier.contains(name.as_str()),
                        "{}: `{}` reads {name} before or outside its group",
                        g.name,
                        r.expr
                    );
                    reads += 1;
                }
                if let Some(n) = &r.record {
                    earlier.insert(n);
                }
            }
        }
        assert!(reads >= 200, "rules read rules: {reads}");
    }

    /// Whether `expr` names the metric `name` (not merely a longer name
    /// that starts with it).
    fn mentions(expr: &str, name: &str) -> bool {
        expr.match_indices(name).any(|(i, _)| {
            let before = expr[..i].chars().next_back();
            let after = expr[i + name.len()..].chars().next();
            let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            !ident(before) && !ident(after)
        })
    }

    /// No two rules share a name and labels (promtool's lint), so no two
    /// write the same series.
    #[test]
    fn no_two_rules_write_the_same_series() {
        let f = RuleFile::at_scale();
        let mut seen = HashSet::new();
        for g in &f.groups {
            for r in &g.rules {
                let name = r.record.as_ref().or(r.alert.as_ref()).expect("a rule is recording or alerting");
                let key = format!("{name}{:?}", r.labels);
                assert!(seen.insert(key.clone()), "{key} written twice");
            }
        }
    }

    /// promtool, the oracle, accepts the file (names, PromQL, templates).
    #[test]
    fn promtool_check_rules_accepts_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rules-at-scale.yml");
        std::fs::write(&path, RuleFile::at_scale().to_yaml()).expect("write");
        let out = tidemark_testkit::promtool([
            std::ffi::OsStr::new("check"),
            std::ffi::OsStr::new("rules"),
            path.as_os_str(),
        ])
        .expect("promtool runs");
        assert!(out.success(), "promtool check rules failed:\n{}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("SUCCESS: 1000 rules found"), "{}", out.stdout);
    }
}
