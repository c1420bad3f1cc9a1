//! Function kernels: the arithmetic of PromQL functions, free of evaluation
//! plumbing. The evaluator (`crate::eval`) selects data and calls these.

pub(crate) mod histogram;
pub(crate) mod histogram_range;
pub(crate) mod kahan;
pub(crate) mod math;
pub(crate) mod native_histogram;
pub(crate) mod quantile;
pub(crate) mod range;
