//! Alert label and annotation templates, expanded as Prometheus expands
//! them: Go's `text/template` with `missingkey=zero`, Prometheus' function
//! table (`template/template.go`), the `$labels`/`$value` prefix and the
//! `__alert_<name>` template name of `rules/alerting.go`.
//!
//! The rendered text, and the text of every error, is meant to equal
//! Prometheus 2.42's byte for byte; `tests/template_oracle.rs` checks that
//! against `promtool test rules`.
//!
//! # Why not `gtmpl`
//!
//! The `gtmpl` crate implements Go templates over its own dynamic value
//! type. It does not give Go's output where alerts need it: its `printf`
//! documents `%g`/`%G` as not implemented, yet Go's `%g` is how every
//! float prints (`{{ $value }}` is `%v`, i.e. `1e+06`, `+Inf`) and what
//! all `humanize*` functions use (`%.4g`); its errors are its own, not
//! Go's `template: NAME:LINE:COL: executing "NAME" at <...>` text; and
//! functions receive untyped `&[Value]`, so Go's argument checks
//! (`wrong type for value; expected string; got float64`, `expected
//! string; found 1`) cannot be reproduced. Closing those gaps
//! would mean replacing its value model, printer and executor, so this
//! module has its own lexer, parser and executor for the language, small
//! enough to follow Go's source closely:
//!
//! - `lex`, `parse`: Go's `text/template/parse`, with node positions and
//!   Go's `Node.String()` for error messages;
//! - `exec`: Go's `exec.go` (pipelines, variables, `if`/`else if`/`range`/
//!   `with`/`break`/`continue`, `define`/`template`/`block`);
//! - `value`: the Go types Prometheus exposes (strings, float64, maps,
//!   `*sample`, `queryResult`, `*time.Time`, the alert data struct);
//! - `gofmt`, `gotime`: `fmt.Sprint*`, `strconv.Quote`, `time.Time.String`;
//! - `funcs`: Go's builtins and Prometheus' functions with their Go
//!   parameter types.
//!
//! Known differences from Go, all outside what alert templates do: nesting
//! is limited to 100 levels of parentheses/blocks and 100 nested
//! `{{template}}` calls (Go: 10000 and 100000); one expansion may evaluate
//! at most 10 million nodes and build at most 16 MiB; complex number
//! literals are rejected; `%x` of a float and `%#v` are not Go's; `slice`
//! of a query result copies it (Go shares the array, which only
//! `sortByLabel` on the slice could reveal); a printed
//! `*sample` inside a list shows an address no Go run would reproduce
//! either; only the `Unix`, `UnixMilli`, `UnixNano` and `String` methods
//! of `toTime`'s result are callable.

use std::collections::BTreeMap;
use std::rc::Rc;

mod exec;
mod funcs;
mod gofmt;
mod gotime;
mod lex;
mod parse;
mod value;

use value::{AlertData, Value};

/// What an alert's templates see: Prometheus' `AlertTemplateData`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateData {
    /// The alert's labels, `$labels`: the expression result's labels as
    /// Prometheus passes them, `__name__` included when the result has one
    /// (before the rule's own labels are added).
    pub labels: BTreeMap<String, String>,
    /// The configured external labels, `$externalLabels`.
    pub external_labels: BTreeMap<String, String>,
    /// The external URL, `$externalURL`; also what the `externalURL` and
    /// `pathPrefix` functions use. Empty means none: those two functions
    /// then fail as they do in Prometheus without one (as in `promtool`).
    pub external_url: String,
    /// The sample value, `$value`.
    pub value: f64,
}

/// One sample of an instant query run by the `query` template function.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    /// The series' labels, `__name__` included when present.
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

/// Runs PromQL for the `query` template function.
pub trait QueryRunner: Send + Sync {
    /// Evaluates `expr` as an instant query at `t_ms` (milliseconds since
    /// the epoch). An `Err` is shown as
    /// `error calling query: <text>`, so give the engine's own message.
    fn query(&self, expr: &str, t_ms: i64) -> Result<Vec<QuerySample>, String>;
}

/// A template that cannot be parsed or fails while running. `Display`
/// is Prometheus' error text, so an alert's annotation reads
/// `format!("<error expanding template: {e}>")` exactly as Prometheus'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Expansion could not parse the template:
    /// `error parsing template __alert_X: template: __alert_X:1: ...`.
    #[error("error parsing template {name}: {message}")]
    Parse {
        /// The template's name (`__alert_<alert>`).
        name: String,
        /// Go's parse error (`template: NAME:LINE: ...`).
        message: String,
    },
    /// Expansion failed while running:
    /// `error executing template __alert_X: template: __alert_X:1:52: executing ...`.
    #[error("error executing template {name}: {message}")]
    Exec {
        /// The template's name.
        name: String,
        /// Go's execution error (`template: NAME:LINE:COL: executing ...`).
        message: String,
    },
    /// [`check_alert_template`] found a syntax error; `Display` is Go's
    /// parse error alone, as `promtool check rules` prints it.
    #[error("{message}")]
    Check {
        /// The template's name.
        name: String,
        /// Go's parse error (`template: NAME:LINE: ...`).
        message: String,
    },
}

impl TemplateError {
    /// Go's error text without Prometheus' `error ... template NAME: ` prefix.
    pub fn go_message(&self) -> &str {
        match self {
            TemplateError::Parse { message, .. }
            | TemplateError::Exec { message, .. }
            | TemplateError::Check { message, .. } => message,
        }
    }
}

/// The variables `rules/alerting.go` defines before every alert template.
const DEFS: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn has_func(name: &str) -> bool {
    funcs::lookup(name).is_some()
}

/// An alert template parsed once, to be expanded for many alerts and
/// evaluations: the same text as [`expand_alert_template`] gives, without
/// parsing again each time (Prometheus parses at every expansion; the
/// result is the same).
///
/// ```
/// use tidemark_rules::{AlertTemplate, TemplateData};
///
/// let t = AlertTemplate::parse("HighLatency", "p99 is {{ $value | humanizeDuration }}").unwrap();
/// let data = TemplateData { value: 0.25, ..TemplateData::default() };
/// assert_eq!(t.expand(&data, 0, None).unwrap(), "p99 is 250ms");
/// ```
#[derive(Debug, Clone)]
pub struct AlertTemplate {
    name: String,
    full: String,
    parsed: parse::Parsed,
}

impl AlertTemplate {
    /// Parses `text` as the template of alert `alert_name`; the error is
    /// what [`check_alert_template`] reports.
    pub fn parse(alert_name: &str, text: &str) -> Result<AlertTemplate, TemplateError> {
        let name = format!("__alert_{alert_name}");
        let full = format!("{DEFS}{text}");
        match parse::parse(&name, &full, &has_func) {
            Ok(parsed) => Ok(AlertTemplate { name, full, parsed }),
            Err(message) => Err(TemplateError::Check { name, message }),
        }
    }

    /// Expands the template as [`expand_alert_template`] does.
    pub fn expand(
        &self,
        data: &TemplateData,
        t_ms: i64,
        query: Option<&dyn QueryRunner>,
    ) -> Result<String, TemplateError> {
        let url = (!data.external_url.is_empty()).then_some(data.external_url.as_str());
        self.expand_with_url(data, t_ms, query, url)
    }

    /// Expands the template as [`expand_alert_template_with_url`] does.
    pub fn expand_with_url(
        &self,
        data: &TemplateData,
        t_ms: i64,
        query: Option<&dyn QueryRunner>,
        function_url: Option<&str>,
    ) -> Result<String, TemplateError> {
        run(&self.name, &self.full, &self.parsed, data, t_ms, query, function_url)
    }
}

fn run(
    name: &str,
    full: &str,
    parsed: &parse::Parsed,
    data: &TemplateData,
    t_ms: i64,
    query: Option<&dyn QueryRunner>,
    function_url: Option<&str>,
) -> Result<String, TemplateError> {
    let root = Value::Data(Rc::new(AlertData {
        labels: Value::string_map(&data.labels),
        external_labels: Value::string_map(&data.external_labels),
        external_url: Rc::from(data.external_url.as_str()),
        value: data.value,
    }));
    let env = funcs::Env { query, t_ms, external_url: function_url };
    exec::execute(parsed, full, name, root, &env)
        .map_err(|message| TemplateError::Exec { name: name.to_string(), message })
}

/// Expands an alert template as `rules/alerting.go` does (defs prefix,
/// name `__alert_<alert>`), at evaluation time `t_ms`; `query` runs the
/// `query` function (without one, `query` fails as with a nil query
/// function).
///
/// ```
/// use std::collections::BTreeMap;
/// use tidemark_rules::{expand_alert_template, TemplateData};
///
/// let data = TemplateData {
///     labels: BTreeMap::from([("instance".to_string(), "db-1:9100".to_string())]),
///     value: 0.9512,
///     ..TemplateData::default()
/// };
/// let text = "{{ $labels.instance | stripPort }} at {{ $value | humanizePercentage }}";
/// assert_eq!(expand_alert_template("DiskFull", text, &data, 0, None).unwrap(), "db-1 at 95.12%");
///
/// let err = expand_alert_template("DiskFull", "{{ humanize \"x\" }}", &data, 0, None).unwrap_err();
/// assert_eq!(
///     format!("<error expanding template: {err}>"),
///     "<error expanding template: error executing template __alert_DiskFull: template: __alert_DiskFull:1:115: \
///      executing \"__alert_DiskFull\" at <humanize \"x\">: error calling humanize: \
///      strconv.ParseFloat: parsing \"x\": invalid syntax>"
/// );
/// ```
pub fn expand_alert_template(
    alert_name: &str,
    text: &str,
    data: &TemplateData,
    t_ms: i64,
    query: Option<&dyn QueryRunner>,
) -> Result<String, TemplateError> {
    let url = (!data.external_url.is_empty()).then_some(data.external_url.as_str());
    expand_alert_template_with_url(alert_name, text, data, t_ms, query, url)
}

/// [`expand_alert_template`] with the URL that the `externalURL` and
/// `pathPrefix` functions see given apart from `$externalURL`. Prometheus
/// takes them from two places (the rule's external URL string, and the
/// rule manager's parsed URL); `promtool test rules` sets only the first,
/// so its `externalURL`/`pathPrefix` fail as with `None` here.
///
/// ```
/// use std::collections::BTreeMap;
/// use tidemark_rules::{expand_alert_template_with_url, QueryRunner, QuerySample, TemplateData};
///
/// struct Up;
/// impl QueryRunner for Up {
///     fn query(&self, _expr: &str, _t_ms: i64) -> Result<Vec<QuerySample>, String> {
///         Ok(vec![QuerySample { labels: BTreeMap::from([("job".into(), "api".into())]), value: 0.0 }])
///     }
/// }
///
/// let data = TemplateData { external_url: "http://prom:9090/p".into(), ..TemplateData::default() };
/// let text = r#"{{ range query "up == 0" }}{{ .Labels.job }} down, see {{ pathPrefix }}/alerts{{ end }}"#;
/// let out = expand_alert_template_with_url("Down", text, &data, 0, Some(&Up), Some("http://prom:9090/p"));
/// assert_eq!(out.unwrap(), "api down, see /p/alerts");
/// // As in `promtool test rules`: no URL for the functions.
/// let err = expand_alert_template_with_url("Down", "{{ pathPrefix }}", &data, 0, None, None).unwrap_err();
/// assert!(err.to_string().ends_with("error calling pathPrefix: runtime error: invalid memory address or nil pointer dereference"));
/// ```
pub fn expand_alert_template_with_url(
    alert_name: &str,
    text: &str,
    data: &TemplateData,
    t_ms: i64,
    query: Option<&dyn QueryRunner>,
    function_url: Option<&str>,
) -> Result<String, TemplateError> {
    let name = format!("__alert_{alert_name}");
    let full = format!("{DEFS}{text}");
    let parsed = parse::parse(&name, &full, &has_func)
        .map_err(|message| TemplateError::Parse { name: name.clone(), message })?;
    run(&name, &full, &parsed, data, t_ms, query, function_url)
}

/// Parses an alert template without running it, as `promtool check rules`
/// does, so rule files can be rejected before they are loaded.
///
/// ```
/// use tidemark_rules::check_alert_template;
///
/// assert!(check_alert_template("X", "{{ $value | humanize }}").is_ok());
/// let err = check_alert_template("X", "{{ nope }}").unwrap_err();
/// assert_eq!(err.to_string(), "template: __alert_X:1: function \"nope\" not defined");
/// ```
pub fn check_alert_template(alert_name: &str, text: &str) -> Result<(), TemplateError> {
    let name = format!("__alert_{alert_name}");
    let full = format!("{DEFS}{text}");
    parse::parse(&name, &full, &has_func).map(|_| ()).map_err(|message| TemplateError::Check { name, message })
}
