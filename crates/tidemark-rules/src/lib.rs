//! Recording and alerting rules for Tidemark, as Prometheus evaluates them.
//!
//! Rule files in Prometheus' format are loaded and checked, each group is
//! evaluated on its own schedule against the database with the PromQL
//! engine, recorded samples and the `ALERTS` series are appended to the
//! database, and alerts are sent to Alertmanager. Storage and the engine
//! know nothing of rules; the `tidemark` facade and server wire this crate
//! to flags, reloads and HTTP routes.
#![deny(missing_docs)]

pub mod check;
pub mod file;
mod model;

pub use file::{
    expand_globs, load_rule_file, load_rule_files, parse_duration, parse_rule_text, DurationError, RuleFileError,
    RuleFileErrorKind, RuleFileErrors, RuleRef,
};
pub use model::{GroupSpec, RuleKind, RuleSpec};
