//! Tidemark's PromQL engine: the whole PromQL language with Prometheus 3.x
//! semantics, evaluated over any [`SeriesSource`] (Tidemark's own
//! [`tidemark_storage::Db`], or [`MemStorage`] in tests).
//!
//! Queries are parsed with the `promql-parser` crate; matcher regexes are
//! compiled by us, anchored and with `.` matching newlines, as Prometheus does.
//!
//! ```
//! use tidemark_promql::{Engine, MemStorage, Value};
//! use tidemark_storage::Labels;
//!
//! let storage = MemStorage::new();
//! for (code, n) in [("200", 90.0), ("500", 10.0)] {
//!     let l = Labels::new([("__name__", "requests_total"), ("code", code)]).unwrap();
//!     storage.add(&l, 0, 0.0);
//!     storage.add(&l, 60_000, n);
//! }
//! let engine = Engine::default();
//! let q = r#"sum(increase(requests_total{code=~"5.."}[2m])) / sum(increase(requests_total[2m]))"#;
//! let result = engine.instant_query(&storage, q, 60_000).unwrap();
//! let Value::Vector(v) = result.value else { panic!() };
//! assert!((v[0].v - 0.1).abs() < 1e-12);
//! ```

pub mod annotations;
mod engine;
mod error;
mod eval;
mod format;
mod functions;
pub mod go_fmt;
pub mod limits;
mod parse;
mod position;
pub mod regex_compat;
mod storage;
mod value;

pub use annotations::{Annotation, AnnotationKind, Annotations, Position};
pub use engine::{CancellationToken, ConcurrencyStats, Engine, EngineOptions, QueryOptions, QueryResult, QueryStats};
pub use error::{Error, ParseError};
pub use limits::{LimitError, LimitKind, QueryLimits};
pub use parse::{extract_selectors, parse, parse_metric_selector};
pub use storage::{MemStorage, SelectedSeries, SeriesSource, WindowSelection};
pub use value::{HistogramPoint, RangeSeries, Value, VectorSample};

/// The parser's syntax tree, re-exported so callers can inspect or rewrite queries.
pub use promql_parser::parser::Expr;
