//! The card's random number generator.
//!
//! Normally a ChaCha20 generator seeded from the operating system. In **deterministic mode**
//! it is seeded from a number the caller gives, so GET CHALLENGE, RSA blinding and on-card key
//! generation replay byte for byte. Deterministic mode is INSECURE: use it only in tests,
//! fuzzing and transcripts, never for a card that protects anything.

use core::convert::Infallible;
use rand_chacha::ChaCha20Rng;
use rand_core::{SeedableRng, TryCryptoRng, TryRng};

/// The card RNG.
pub struct CardRng {
    inner: ChaCha20Rng,
    deterministic: bool,
    /// Deterministic mode: the key-pool entries already drawn (bit `i`: entry `i`), so one
    /// card never gets the same pool key twice (a renewal's two keys differ).
    pool_drawn: u64,
}

impl CardRng {
    /// Seeded from the operating system.
    pub fn from_os() -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no OS randomness: {e}"))?;
        Ok(CardRng { inner: ChaCha20Rng::from_seed(seed), deterministic: false, pool_drawn: 0 })
    }

    /// INSECURE: seeded from `seed`, for reproducible tests.
    pub fn insecure_deterministic(seed: u64) -> Self {
        CardRng { inner: ChaCha20Rng::seed_from_u64(seed), deterministic: true, pool_drawn: 0 }
    }

    pub fn is_deterministic(&self) -> bool {
        self.deterministic
    }

    /// Deterministic mode: which of the `len` pool keys to hand out next, chosen by the seeded
    /// stream among those this generator has not drawn yet (all again once every one of the
    /// first 64 was drawn).
    pub(crate) fn draw_from_pool(&mut self, len: usize) -> usize {
        use rand_core::Rng;
        let len = len.clamp(1, 64);
        let mask = if len == 64 { u64::MAX } else { (1u64 << len) - 1 };
        if self.pool_drawn & mask == mask {
            self.pool_drawn = 0;
        }
        let mut pick = self.next_u32() as usize % len;
        while self.pool_drawn & (1 << pick) != 0 {
            pick = (pick + 1) % len;
        }
        self.pool_drawn |= 1 << pick;
        pick
    }
}

impl TryRng for CardRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.inner.try_next_u32()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.inner.try_next_u64()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.inner.try_fill_bytes(dst)
    }
}

impl TryCryptoRng for CardRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_draws_never_repeat_until_the_pool_is_spent() {
        for seed in 0..64 {
            let mut rng = CardRng::insecure_deterministic(seed);
            let mut seen: Vec<usize> = (0..32).map(|_| rng.draw_from_pool(32)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..32).collect::<Vec<_>>(), "seed {seed}: 32 draws, 32 different keys");
            assert!(rng.draw_from_pool(32) < 32, "then the pool starts over");
        }
    }
}
