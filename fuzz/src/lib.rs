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
    use tidemark_storage::stale_nan;

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

    #[derive(Debug, Arbitrary)]
    pub enum Op {
        /// Append to series `s` at `cursor + 10 * dt`; the cursor follows
        /// positive steps, so negative ones go back in time.
        Append {
            s: u8,
            dt: i16,
            v: Val,
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
