//! Shared helpers for Tidemark's benchmarks: loading the real capture in
//! `../shared/data` and generating synthetic series.
#![deny(missing_docs)]

pub mod capture;
pub mod compare;
pub mod counting_alloc;
pub mod promql_data;
