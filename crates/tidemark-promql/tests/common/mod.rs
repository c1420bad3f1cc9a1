//! Helpers shared by the integration tests that generate their own data.

/// A small deterministic generator (xorshift), so the tests need no crate
/// and a failure replays exactly.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 pseudo-random bits (the seed must not be zero).
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
