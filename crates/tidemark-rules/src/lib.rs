//! Recording and alerting rules for Tidemark, as Prometheus evaluates them.
//!
//! Rule files in Prometheus' format are loaded and checked, each group is
//! evaluated on its own schedule against the database with the PromQL
//! engine, recorded samples and the `ALERTS` series are appended to the
//! database, and alerts are sent to Alertmanager. Storage and the engine
//! know nothing of rules; the `tidemark` facade and server wire this crate
//! to flags, reloads and HTTP routes.
#![deny(missing_docs)]

pub mod alerting;
pub mod check;
mod env;
mod error;
pub mod file;
mod group;
mod manager;
mod model;
pub mod notifier;
mod recording;
mod status;
pub mod template;
pub mod unittest;

pub use alerting::{Alert, AlertState, AlertingRule};
pub use env::{AlertSink, RuleEnv, RuleSample};
pub use error::RuleError;
pub use file::{
    expand_globs, load_rule_file, load_rule_files, parse_duration, parse_rule_text, DurationError, RuleFileError,
    RuleFileErrorKind, RuleFileErrors, RuleRef,
};
pub use group::{Group, GroupStats, Rule};
pub use manager::RuleManager;
pub use model::{GroupSpec, RuleKind, RuleSpec};
pub use notifier::{
    AlertmanagerAuth, AlertmanagerStats, Notifier, NotifierError, NotifierOptions, NotifierStats, NotifierTls,
};
pub use recording::RecordingRule;
pub use status::{RuleHealth, RuleStatus};
pub use template::{
    check_alert_template, expand_alert_template, expand_alert_template_with_url, AlertTemplate, QueryRunner,
    QuerySample, TemplateData, TemplateError,
};
