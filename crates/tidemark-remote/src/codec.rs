//! Encoding requests for the wire, and the 2.0 symbol table.
//!
//! Both protocol versions send a protobuf message compressed with snappy's
//! *block* format (not the framed/stream format). These helpers are what
//! the forwarder, the tests and the benchmarks use to build bodies; the
//! receiver's decoding side lives in [`crate::receive`].
//!
//! ```
//! use tidemark_remote::codec::{encode_v2, SymbolTable};
//! use tidemark_remote::proto::v2;
//!
//! let mut symbols = SymbolTable::new();
//! let series = symbols.series(
//!     &[("__name__", "up"), ("job", "api")],
//!     vec![v2::Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
//! );
//! let request = symbols.into_request(vec![series]);
//! assert_eq!(request.symbols, ["", "__name__", "up", "job", "api"]);
//! let body = encode_v2(&request); // ready to POST
//! assert!(!body.is_empty());
//! ```

use std::collections::HashMap;

use prost::Message;

use crate::proto::{v1, v2};

/// Encodes a 1.0 request: protobuf, then snappy block compression.
pub fn encode_v1(req: &v1::WriteRequest) -> Vec<u8> {
    compress(&req.encode_to_vec())
}

/// Encodes a 2.0 request: protobuf, then snappy block compression.
pub fn encode_v2(req: &v2::Request) -> Vec<u8> {
    compress(&req.encode_to_vec())
}

/// Snappy block compression of `raw`.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    // Only fails for inputs over snappy's 4 GiB-ish maximum, which no
    // request reaches (bodies are limited far below that).
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_else(|e| panic!("snappy cannot compress {} bytes: {e}", raw.len()))
}

/// Interns strings for a 2.0 request: entry 0 is always the empty string, as
/// the protocol requires, and each distinct string is stored once.
#[derive(Debug, Clone)]
pub struct SymbolTable {
    symbols: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for SymbolTable {
    fn default() -> SymbolTable {
        SymbolTable::new()
    }
}

impl SymbolTable {
    /// A table holding only the empty string (reference 0).
    pub fn new() -> SymbolTable {
        SymbolTable { symbols: vec![String::new()], index: HashMap::from([(String::new(), 0)]) }
    }

    /// The reference of `s`, adding it if new.
    pub fn symbolize(&mut self, s: &str) -> u32 {
        if let Some(&r) = self.index.get(s) {
            return r;
        }
        let r = u32::try_from(self.symbols.len()).unwrap_or(u32::MAX);
        self.symbols.push(s.to_owned());
        self.index.insert(s.to_owned(), r);
        r
    }

    /// The `labels_refs` of `labels`: (name, value) reference pairs, in the
    /// order given (senders must give them sorted by name).
    pub fn labels_refs<N: AsRef<str>, V: AsRef<str>>(&mut self, labels: &[(N, V)]) -> Vec<u32> {
        let mut refs = Vec::with_capacity(labels.len() * 2);
        for (n, v) in labels {
            refs.push(self.symbolize(n.as_ref()));
            refs.push(self.symbolize(v.as_ref()));
        }
        refs
    }

    /// A series with `labels` (sorted by name) and float `samples`.
    pub fn series<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        labels: &[(N, V)],
        samples: Vec<v2::Sample>,
    ) -> v2::TimeSeries {
        v2::TimeSeries { labels_refs: self.labels_refs(labels), samples, ..Default::default() }
    }

    /// Metadata for a series, interning `help` and `unit`.
    pub fn metadata(&mut self, kind: crate::proto::MetricType, help: &str, unit: &str) -> v2::Metadata {
        v2::Metadata { r#type: kind as i32, help_ref: self.symbolize(help), unit_ref: self.symbolize(unit) }
    }

    /// The symbols so far, in reference order.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// Finishes a request made of `timeseries` built with this table.
    pub fn into_request(self, timeseries: Vec<v2::TimeSeries>) -> v2::Request {
        v2::Request { symbols: self.symbols, timeseries }
    }
}
