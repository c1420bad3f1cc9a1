//! Parse errors carry the parser's message, the position where the query
//! stops making sense and, for common mistakes, a hint with the valid form.

use proptest::prelude::*;
use tidemark_promql::{parse, ParseError, Position};

/// Parses `query`, expecting failure.
fn error(query: &str) -> ParseError {
    match parse(query) {
        Ok(e) => panic!("{query:?} parsed as {e}"),
        Err(e) => e,
    }
}

/// The `line:col` of the error `query` fails with.
fn at(query: &str) -> String {
    error(query).position.map_or_else(|| "none".to_string(), |p| p.to_string())
}

/// The valid queries of the seed list (`seed-queries.md`), all of which must parse.
const SEED_QUERIES: &[&str] = &[
    r#"sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) * 100"#,
    r#"sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05"#,
    r#"sum(rate(http_requests_total[5m])) by (job)"#,
    r#"rate(http_requests_total[5m])"#,
    r#"( sum(rate(http_requests_total{job="api-gateway",code!~"5.."}[5m])) / sum(rate(http_requests_total{job="api-gateway"}[5m])) ) * 100"#,
    r#"sum(rate(http_requests_total{job="api-gateway"}[5m]))"#,
    r#"sum(rate(http_requests_total{job="api-gateway",code=~"5.."}[5m])) / sum(rate(http_requests_total{job="api-gateway"}[5m])) * 100"#,
    r#"rate(websocket_messages_total[5m]) / rate(websocket_batches_sent_total[5m])"#,
    r#"(1 - (rate(websocket_batches_sent_total[5m]) / rate(websocket_messages_total[5m]))) * 100"#,
    r#"rate(websocket_compression_savings_bytes[5m])"#,
    r#"rate(graphql_request_duration_seconds_count[5m])"#,
    r#"rate(graphql_errors_total[5m])"#,
    r#"rate(cdn_cache_hits_total[5m]) / (rate(cdn_cache_hits_total[5m]) + rate(cdn_cache_misses_total[5m]))"#,
    r#"rate(cdn_bandwidth_saved_bytes[5m])"#,
    r#"rate(ml_load_balancer_requests_total[5m])"#,
    r#"sum by (pool) (rate(db_read_write_split_total[5m]))"#,
    r#"rate(hypersdk_jobs_completed_total[5m]) * 3600"#,
    r#"( rate(hypersdk_jobs_completed_total[5m]) / (rate(hypersdk_jobs_completed_total[5m]) + rate(hypersdk_jobs_failed_total[5m])) ) * 100"#,
    r#"sum by (provider) (hypersdk_provider_jobs_total)"#,
    r#"rate(hypersdk_http_errors_total[5m]) / rate(hypersdk_http_requests_total[5m]) > 0.05"#,
    r#"( sum(rate(video_processing_total{status="success"}[5m])) / sum(rate(video_processing_total[5m])) ) * 100"#,
    r#"rate(video_processing_batches_total[5m])"#,
    r#"rate(kube_pod_container_status_restarts_total[5m])"#,
    r#"increase(kube_pod_container_status_restarts_total[1h]) > 5"#,
    r#"rate(socketio_disconnect_total[5m]) > 10"#,
    r#"histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{job="api-gateway"}[5m])) by (le))"#,
    r#"histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) > 0.5"#,
    r#"histogram_quantile(0.95, rate(graphql_request_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(db_query_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(ml_task_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(cdn_response_time_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(hypersdk_job_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.99, rate(hypersdk_http_response_time_seconds_bucket[5m])) * 1000"#,
    r#"histogram_quantile(0.95, rate(hypersdk_http_response_time_seconds_bucket[5m])) > 1"#,
    r#"histogram_quantile(0.99, sum(rate(ml_inference_duration_seconds_bucket{job="ml-pipeline"}[5m])) by (le))"#,
    r#"rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])"#,
    r#"rate(hypersdk_job_duration_seconds_sum[5m]) / rate(hypersdk_job_duration_seconds_count[5m])"#,
    r#"avg by (provider) (rate(hypersdk_job_duration_seconds_sum[5m]) / rate(hypersdk_job_duration_seconds_count[5m]))"#,
    r#"sum(rate(container_cpu_usage_seconds_total[5m])) by (pod)"#,
    r#"avg(rate(container_cpu_usage_seconds_total[5m])) by (deployment)"#,
    r#"container_memory_working_set_bytes / container_spec_memory_limit_bytes * 100"#,
    r#"container_memory_working_set_bytes / container_spec_memory_limit_bytes > 0.9"#,
    r#"rate(container_network_receive_bytes_total[5m])"#,
    r#"100 - (avg by(instance) (irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)"#,
    r#"( (node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / node_memory_MemTotal_bytes ) * 100"#,
    r#"( (node_filesystem_size_bytes - node_filesystem_avail_bytes) / node_filesystem_size_bytes ) * 100"#,
    r#"( kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes ) * 100"#,
    r#"db_pool_connections{pool="write", state="active"} / (db_pool_connections{pool="write", state="active"} + db_pool_connections{pool="write", state="idle"})"#,
    r#"websocket_active_connections{supports_batching="true"}"#,
    r#"kube_node_status_condition{condition="Ready",status="true"}"#,
    r#"up{job=~"api-gateway|video-ingestion|ml-pipeline|analytics-engine"}"#,
    r#"up{job="hypersdk"} == 0"#,
    r#"avg(nvidia_gpu_utilization_gpu{job="ml-pipeline"})"#,
    r#"avg(ml_model_accuracy_score{job="ml-pipeline"}) * 100"#,
    r#"hypersdk_memory_bytes > 2147483648"#,
    r#"db_replication_lag_seconds > 5"#,
    r#"ml_tasks_queued > 100"#,
    r#"socketio_connected_clients"#,
    r#"sli:platform_availability:rate5m < 0.99"#,
    r#"( (1 - sli:platform_availability:rate5m) / (1 - 0.999) ) > 14.4"#,
    r#"1 - ( (1 - sli:platform_availability:rate5m) / (1 - 0.999) )"#,
    r#"sli:platform_availability:rate5m * 100"#,
    r#"hypersdk:job_success_rate"#,
];

#[test]
fn every_valid_seed_query_parses() {
    for q in SEED_QUERIES {
        assert!(parse(q).is_ok(), "{q}: {:?}", parse(q).err());
    }
}

#[test]
fn grouping_after_histogram_quantile_is_rejected_at_by_with_le_keeping_hint() {
    let q = "topk(10, histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) by (route))";
    let e = error(q);
    assert_eq!(e.message, "invalid promql query");
    assert_eq!(e.position, Some(Position { line: 1, column: 83 }));
    assert_eq!(&q[82..84], "by");
    assert_eq!(
        e.hint.as_deref(),
        Some("topk(10, histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket[5m]))))")
    );
    assert!(parse(e.hint.as_deref().unwrap()).is_ok());
}

#[test]
fn grouping_after_function_call_is_rejected_at_by_with_sum_hint() {
    let q = "increase(socketio_disconnect_total[5m]) by (reason)";
    let e = error(q);
    assert_eq!(e.position, Some(Position { line: 1, column: 41 }));
    assert_eq!(e.hint.as_deref(), Some("sum by (reason) (increase(socketio_disconnect_total[5m]))"));
    assert_eq!(
        e.to_string(),
        "1:41: parse error: invalid promql query (did you mean: sum by (reason) (increase(socketio_disconnect_total[5m])))"
    );
}

#[test]
fn grouping_hint_covers_without_nesting_and_several_mistakes() {
    assert_eq!(error("rate(x[5m]) without (a, b)").hint.as_deref(), Some("sum without (a, b) (rate(x[5m]))"));
    assert_eq!(error("sum(a) / rate(x[5m]) by (a)").hint.as_deref(), Some("sum(a) / sum by (a) (rate(x[5m]))"));
    assert_eq!(
        error("histogram_quantile(0.9, rate(b[1m])) without (le, pod)").hint.as_deref(),
        Some("histogram_quantile(0.9, sum without (pod) (rate(b[1m])))")
    );
    assert_eq!(
        error("histogram_quantile(0.9, rate(b[1m])) by (le, pod)").hint.as_deref(),
        Some("histogram_quantile(0.9, sum by (le, pod) (rate(b[1m])))")
    );
    assert_eq!(
        error("rate(a[1m]) by (x) + irate(b[1m]) by (x)").hint.as_deref(),
        Some("sum by (x) (rate(a[1m])) + sum by (x) (irate(b[1m]))")
    );
}

#[test]
fn no_hint_when_grouping_follows_an_aggregation_or_the_rewrite_would_not_parse() {
    assert_eq!(error("sum(x) by (a) by (b)").hint, None);
    assert_eq!(error("x and (y) by (a)").hint, None);
    assert_eq!(error("rate(x[5m]) by (a) +").hint, None);
    assert_eq!(error("foo bar").hint, None);
}

#[test]
fn lexer_errors_point_at_the_offending_character() {
    assert_eq!(at("foo $ bar"), "1:5");
    assert_eq!(at("x}"), "1:2");
    assert_eq!(at("sum(rate(x[5m])))"), "1:17");
    assert_eq!(at("x[5m:1m:1m]"), "1:8");
    assert_eq!(at("x[-5m]"), "1:3");
    assert_eq!(at("x[5x]"), "1:3");
    // Columns count characters, not bytes.
    assert_eq!(at("\"é\" + é"), "1:7");
    assert_eq!(error("foo $ bar").message, "unexpected character: '$'");
}

#[test]
fn unclosed_things_point_at_where_they_were_opened() {
    assert_eq!(at("sum("), "1:4");
    assert_eq!(at("sum(rate(x[5m])"), "1:4");
    assert_eq!(at("(1 + (2)"), "1:1");
    assert_eq!(at("foo{a=\"b\""), "1:4");
    assert_eq!(at("foo[5m"), "1:4");
    assert_eq!(at("x + \"abc"), "1:5");
    assert_eq!(error("sum(").message, "unclosed left parenthesis");
}

#[test]
fn syntax_errors_point_at_the_first_token_that_cannot_continue() {
    assert_eq!(at("foo bar"), "1:5");
    assert_eq!(at("sum(x) by (a) by (b)"), "1:15");
    assert_eq!(at("sum without(a) (x) without (b)"), "1:20");
    assert_eq!(at("x @ foo"), "1:5");
    assert_eq!(at("a + on(b) group_left c + d bool"), "1:28");
    // At the end of the text when more was expected.
    assert_eq!(at("1 +"), "1:4");
    assert_eq!(at("a and"), "1:6");
    assert_eq!(at("x offset"), "1:9");
    assert_eq!(at("x @ start"), "1:10");
}

#[test]
fn label_matcher_errors_point_into_the_selector() {
    assert_eq!(at("foo{a=b}"), "1:7");
    assert_eq!(at("foo{a}"), "1:6");
    assert_eq!(at("foo{a==\"b\"}"), "1:6");
    assert_eq!(error("foo{a=b}").message, "unexpected identifier 'b' in label matching, expected string");
}

#[test]
fn semantic_errors_point_at_the_innermost_offending_expression() {
    assert_eq!(at("1 > 2"), "1:1");
    assert_eq!(error("1 > 2").message, "comparisons between scalars must use BOOL modifier");
    assert_eq!(at("x + (1 > 2)"), "1:6");
    assert_eq!(at("nosuchfn(x)"), "1:1");
    assert_eq!(at("sum(x) + nosuchfn(x)"), "1:10");
    assert_eq!(at("abs(rate(x[5m], 1))"), "1:5");
    assert_eq!(at("x + -\"a\""), "1:5");
    assert_eq!(at("x + sum(x) offset 5m"), "1:5");
    assert_eq!(at("x + 1 + bool 2"), "1:1");
    assert_eq!(at("y + x[1m][1m]"), "1:5");
    assert_eq!(at("rate(x[5m],)"), "1:12");
    assert_eq!(at("1 and 2"), "1:1");
    assert_eq!(at("{}"), "1:1");
    assert_eq!(at("x{a=~\"(\"}"), "1:1");
}

#[test]
fn argument_type_errors_point_at_the_argument() {
    assert_eq!(at("rate(x)"), "1:6");
    assert_eq!(at("histogram_quantile(0.9, x[5m])"), "1:25");
    assert_eq!(at("label_replace(x, 1, \"a\", \"b\", \"c\")"), "1:18");
    assert_eq!(at("topk(x, y)"), "1:6");
    assert_eq!(at("sum by (a) (\"s\")"), "1:13");
    assert_eq!(at("count_values(1, x)"), "1:14");
    assert_eq!(error("rate(x)").message, "expected type matrix in call to function 'rate', got vector");
}

#[test]
fn multi_line_queries_count_lines_and_skip_comments() {
    assert_eq!(at("x\n  + \n  nosuchfn(y)"), "3:3");
    assert_eq!(at("x\n  + \n  )"), "3:3");
    assert_eq!(at("# rate ( by\nsum(x)\n  by (a) # trailing (\n  by (b)"), "4:3");
    assert_eq!(at("rate(\n  x[5m]\n) by (a)"), "3:3");
    assert_eq!(error("rate(\n  x[5m]\n) by (a)").hint.as_deref(), Some("sum by (a) (rate(\n  x[5m]\n))"));
}

#[test]
fn empty_queries_are_rejected() {
    assert_eq!(at(""), "1:1");
    assert!(error("   # only a comment").message.contains("no expression found"));
}

#[test]
fn deeply_nested_queries_do_not_overflow() {
    let unclosed = format!("{}x{}", "(".repeat(200), ")".repeat(199));
    assert_eq!(at(&unclosed), "1:1");
    let balanced = format!("{}x{} +", "(".repeat(250), ")".repeat(250));
    assert_eq!(at(&balanced), "1:504");
    // Beyond the nesting limit the error points at the first bracket too deep.
    for q in
        [format!("{}x{}", "(".repeat(3000), ")".repeat(2999)), format!("{}x{} +", "(".repeat(3000), ")".repeat(3000))]
    {
        let e = error(&q);
        assert_eq!(e.message, "query nesting depth 3000 exceeds the limit of 256");
        assert_eq!(at(&q), "1:257");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Arbitrary text never panics, and every error has a position inside the text.
    #[test]
    fn arbitrary_text_never_panics(q in "[ a-z0-9(){}\\[\\],:@+\\-*/%^=!<>\"'`#.\n~é]{0,40}") {
        if let Err(e) = parse(&q) {
            let p = e.position.expect("every error has a position");
            let lines: Vec<&str> = q.split('\n').collect();
            prop_assert!(p.line >= 1 && p.line <= lines.len());
            prop_assert!(p.column >= 1 && p.column <= lines[p.line - 1].chars().count() + 1);
        }
    }

    /// Mangled seed queries (a character dropped) never panic either.
    #[test]
    fn seed_queries_with_a_character_dropped_never_panic(i in 0usize..SEED_QUERIES.len(), cut in 0usize..200) {
        let q = SEED_QUERIES[i];
        let chars: Vec<char> = q.chars().collect();
        let cut = cut % chars.len();
        let mangled: String = chars.iter().enumerate().filter(|&(j, _)| j != cut).map(|(_, c)| c).collect();
        if let Err(e) = parse(&mangled) {
            prop_assert!(e.position.is_some());
        }
    }
}

#[test]
fn number_durations_out_of_range_are_parse_errors() {
    for q in [
        "x[NaN]",
        "x[Inf]",
        "x[77777777777777777777777777777777777777777777]",
        "x offset 1e30",
        "x offset -Inf",
        "x[5m:NaN]",
        "rate(x[0xffffffffffffffffff])",
    ] {
        let err = tidemark_promql::parse(q).unwrap_err();
        assert!(err.message.contains("out of range") || err.position.is_some(), "{q}: {err}");
    }
    // Ordinary numbers as durations still parse.
    for q in ["x[300]", "x offset 60", "x[5m:15]", "x offset -30"] {
        assert!(tidemark_promql::parse(q).is_ok(), "{q}");
    }
}
