//! Input types shared by the fuzz targets and the seed generator
//! (`examples/make_seeds.rs`), which needs them to pick useful seeds, and
//! the reference checksum the targets frame their records with.

/// CRC32-C (Castagnoli), bit by bit: small and obviously right, and
/// independent of the implementation under test.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

pub mod model {
    //! The `model` target's input: a sequence of database operations.

    use arbitrary::Arbitrary;
    use tidemark_storage::histogram::{CounterResetHint, Histogram, HistogramValue, Span, CUSTOM_BUCKETS_SCHEMA};
    use tidemark_storage::{stale_nan, STALE_NAN_BITS};

    #[derive(Debug, Arbitrary)]
    pub enum Val {
        Small(i8),
        Bits(u64),
        Stale,
        /// A quiet NaN with this payload.
        Nan(u32),
    }

    impl Val {
        pub fn bits(&self) -> u64 {
            match self {
                Val::Small(v) => f64::from(*v).to_bits(),
                Val::Bits(b) => *b,
                Val::Stale => stale_nan().to_bits(),
                Val::Nan(p) => 0x7ff8_0000_0000_0000 | u64::from(*p),
            }
        }
    }

    /// A native histogram to append, built by [`HistSpec::build`] so that it
    /// is always valid: bucket layouts change from one append to the next
    /// (buckets appear and disappear), counts go up and down (counter
    /// resets), and the kind, schema and hint vary.
    #[derive(Debug, Clone, Copy, Arbitrary)]
    pub struct HistSpec {
        /// Float counts instead of integer ones.
        pub float: bool,
        /// Picks the schema (one of six exponential ones, or custom buckets).
        pub schema: u8,
        /// Which of eight positive buckets are populated (a bit each).
        pub layout: u8,
        /// Drives the counts and the sum.
        pub base: u16,
        /// The counter reset hint (low two bits).
        pub hint: u8,
        /// A staleness marker (an empty histogram whose sum is the stale NaN).
        pub stale: bool,
    }

    /// Upper bounds of the custom-bucket histograms [`HistSpec`] builds.
    pub const CUSTOM_BOUNDS: [f64; 7] = [0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 50.0];

    impl HistSpec {
        /// The histogram this describes.
        pub fn build(&self) -> HistogramValue {
            const SCHEMAS: [i32; 7] = [0, 1, 3, -1, 8, -4, CUSTOM_BUCKETS_SCHEMA];
            let schema = SCHEMAS[usize::from(self.schema) % SCHEMAS.len()];
            let custom = schema == CUSTOM_BUCKETS_SCHEMA;
            let hint = CounterResetHint::from_code(self.hint % 4).unwrap_or_default();
            let base = u64::from(self.base);
            // Bucket i of eight: index i - 2 (exponential) or i (custom, the
            // last one being the +Inf bucket).
            let first = if custom { 0 } else { -2 };
            let pos: Vec<(i32, u64)> = (0..8)
                .filter(|i| self.layout & (1 << i) != 0)
                .map(|i| (first + i, (base >> i) + u64::from(i as u32 % 3)))
                .collect();
            // Negative buckets (exponential only) when `base` is odd.
            let neg: Vec<(i32, u64)> =
                if !custom && base % 2 == 1 { vec![(0, base % 5), (1, 1 + base % 3)] } else { Vec::new() };
            let zero_count = if custom { 0 } else { base % 7 };
            let (pos, neg, zero_count) = if self.stale { (Vec::new(), Vec::new(), 0) } else { (pos, neg, zero_count) };
            let count = zero_count + pos.iter().map(|b| b.1).sum::<u64>() + neg.iter().map(|b| b.1).sum::<u64>();
            let sum = if self.stale { f64::from_bits(STALE_NAN_BITS) } else { base as f64 * 1.5 - 7.0 };
            let spans = |b: &[(i32, u64)]| {
                let mut out: Vec<Span> = Vec::new();
                let mut next = 0i32;
                for &(i, _) in b {
                    match out.last_mut() {
                        Some(sp) if i == next => sp.length += 1,
                        _ => out.push(Span { offset: i - next, length: 1 }),
                    }
                    next = i + 1;
                }
                out
            };
            let deltas = |b: &[(i32, u64)]| {
                let mut prev = 0i64;
                b.iter()
                    .map(|&(_, c)| {
                        let d = c as i64 - prev;
                        prev = c as i64;
                        d
                    })
                    .collect::<Vec<i64>>()
            };
            let h = Histogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold: if custom { 0.0 } else { 0.001 },
                zero_count,
                count,
                sum,
                positive_spans: spans(&pos),
                negative_spans: spans(&neg),
                positive_buckets: deltas(&pos),
                negative_buckets: deltas(&neg),
                custom_values: if custom { CUSTOM_BOUNDS.to_vec() } else { Vec::new() },
            };
            if self.float {
                let mut f = h.to_float();
                // Non-integer counts, still consistent.
                for c in f.positive_buckets.iter_mut().chain(f.negative_buckets.iter_mut()) {
                    *c *= 0.5;
                }
                f.zero_count *= 0.5;
                f.count *= 0.5;
                HistogramValue::Float(f)
            } else {
                HistogramValue::Integer(h)
            }
        }
    }

    #[derive(Debug, Arbitrary)]
    pub enum Op {
        /// Append to series `s` at `cursor + 10 * dt`; the cursor follows
        /// positive steps, so negative ones go back in time.
        Append {
            s: u8,
            dt: i16,
            v: Val,
        },
        /// Append a native histogram to series `s` at `cursor + 10 * dt`
        /// (the same series and time line as floats).
        AppendHistogram {
            s: u8,
            dt: i16,
            h: HistSpec,
        },
        /// Re-append a committed sample: the same value or another one.
        Duplicate {
            s: u8,
            nth: u8,
            same: bool,
        },
        Commit,
        Rollback,
        PersistHead,
        FlushHead,
        Compact,
        Retention,
        Reopen,
        Crash,
        Query {
            s: Option<u8>,
            from: i16,
            len: u16,
        },
    }

    /// Most operations one input runs.
    pub const MAX_OPS: usize = 64;

    /// Decoded by [`Input::from_bytes`], not by `Arbitrary` for the
    /// whole struct: `arbitrary` ends a collection on a continuation byte,
    /// so random bytes would give two operations on average.
    #[derive(Debug)]
    pub struct Input {
        pub out_of_order: bool,
        pub ops: Vec<Op>,
    }

    impl Input {
        /// The first byte's low bit enables the out-of-order window; the
        /// rest is read as operations until it runs out (at most [`MAX_OPS`]).
        pub fn from_bytes(data: &[u8]) -> Input {
            let mut u = arbitrary::Unstructured::new(data);
            let out_of_order = u.arbitrary::<bool>().unwrap_or(false);
            let mut ops = Vec::new();
            while !u.is_empty() && ops.len() < MAX_OPS {
                match Op::arbitrary(&mut u) {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            Input { out_of_order, ops }
        }
    }
}
