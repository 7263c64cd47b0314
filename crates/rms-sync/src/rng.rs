//! The core's only randomness: [`Rng`], a seeded SplitMix64, so a run replays from its seed.

/// SplitMix64: a small, seeded, reproducible generator. rms-sync draws its jitter from it so a run
/// replays exactly from its seed (no thread RNG).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose draws are a function of `seed` alone.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next draw, uniform over all of `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// `base` plus or minus up to `percent` of it.
    pub fn jitter(&mut self, base: u64, percent: u64) -> u64 {
        let spread = base * percent / 100;
        base - spread + self.below(2 * spread + 1)
    }
}
