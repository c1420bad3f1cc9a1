//! Element-wise functions of an instant vector: math, trigonometry, clamping,
//! rounding, and the date functions.

/// A function applied to each sample value independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MathFunction {
    Abs,
}

impl MathFunction {
    /// The function called `name`, if it is element-wise.
    pub(crate) fn from_name(name: &str) -> Option<MathFunction> {
        match name {
            "abs" => Some(MathFunction::Abs),
            _ => None,
        }
    }

    /// Applies the function to `v`. `args` are the scalar arguments at this
    /// step after the vector (`clamp(v, min, max)` → `[min, max]`,
    /// `round(v, to)` → `[to]`). `None` drops the sample (as `clamp` does
    /// when `min > max`).
    pub(crate) fn apply(self, v: f64, args: &[f64]) -> Option<f64> {
        let _ = args;
        match self {
            MathFunction::Abs => Some(v.abs()),
        }
    }
}
