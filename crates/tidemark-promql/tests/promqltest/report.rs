//! Classification of upstream evals (`evals.tsv`) and the summary output.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::runner::{EvalOutcome, FileOutcome};

/// Which bucket an upstream eval belongs to (see CLASSIFICATION.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Classic PromQL on float data: must pass.
    Core,
    /// Native histograms and experimental features: a later goal.
    Extended,
    /// Not parseable by promql-parser, or needs start timestamps.
    OutOfScope,
    /// Not listed in `evals.tsv` (the scripts and the table disagree).
    Unclassified,
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bucket::Core => "core",
            Bucket::Extended => "extended",
            Bucket::OutOfScope => "out-of-scope",
            Bucket::Unclassified => "unclassified",
        })
    }
}

/// `evals.tsv`: (file, 1-based eval line) → bucket.
#[derive(Debug, Default)]
pub struct Classification {
    map: HashMap<(String, usize), Bucket>,
}

impl Classification {
    /// Reads `evals.tsv` (header `file line kind bucket …`).
    pub fn load(path: &Path) -> Result<Classification, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the eval classification {}: {e}", path.display()))?;
        let mut map = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if n == 0 || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 4 {
                return Err(format!("{}:{}: expected at least 4 tab-separated columns", path.display(), n + 1));
            }
            let line_no: usize = cols[1]
                .parse()
                .map_err(|e| format!("{}:{}: bad line number {:?}: {e}", path.display(), n + 1, cols[1]))?;
            let bucket = match cols[3] {
                "core" => Bucket::Core,
                "extended" => Bucket::Extended,
                "out_of_scope" => Bucket::OutOfScope,
                other => return Err(format!("{}:{}: unknown bucket {other:?}", path.display(), n + 1)),
            };
            map.insert((cols[0].to_string(), line_no), bucket);
        }
        Ok(Classification { map })
    }

    /// The bucket of the eval at `line` of `file`.
    pub fn bucket(&self, file: &str, line: usize) -> Bucket {
        self.map.get(&(file.to_string(), line)).copied().unwrap_or(Bucket::Unclassified)
    }

    /// Number of evals of `bucket` in `file` (all files when `None`).
    pub fn count(&self, file: Option<&str>, bucket: Bucket) -> usize {
        self.map.iter().filter(|((f, _), b)| **b == bucket && file.is_none_or(|x| x == f)).count()
    }
}

/// Pass counts per bucket.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// (passed, total) for core, extended, out-of-scope, unclassified.
    pub counts: [(usize, usize); 4],
}

impl Tally {
    fn slot(b: Bucket) -> usize {
        match b {
            Bucket::Core => 0,
            Bucket::Extended => 1,
            Bucket::OutOfScope => 2,
            Bucket::Unclassified => 3,
        }
    }

    /// Records one eval.
    pub fn add(&mut self, b: Bucket, passed: bool) {
        let c = &mut self.counts[Self::slot(b)];
        c.1 += 1;
        if passed {
            c.0 += 1;
        }
    }

    /// (passed, total) of a bucket.
    pub fn get(&self, b: Bucket) -> (usize, usize) {
        self.counts[Self::slot(b)]
    }

    /// Adds another tally.
    pub fn merge(&mut self, o: &Tally) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            a.0 += b.0;
            a.1 += b.1;
        }
    }
}

/// Prints one eval failure.
pub fn print_failure(file: &str, bucket: Option<Bucket>, e: &EvalOutcome) {
    let Some(f) = &e.failure else { return };
    let tag = bucket.map(|b| format!(" [{b}]")).unwrap_or_default();
    println!("FAIL {file}:{}{tag}: {}", e.line, e.expr);
    if f.query != e.expr {
        println!("    query ({}): {}", f.variant, f.query);
    } else {
        println!("    run: {}", f.variant);
    }
    println!("    {}", f.message);
}

/// Prints script problems outside evals (always: they are harness or script bugs).
pub fn print_script_errors(file: &str, out: &FileOutcome) {
    for e in &out.script_errors {
        println!("SCRIPT {file}: {e}");
    }
}
