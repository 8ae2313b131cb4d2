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
}

impl CardRng {
    /// Seeded from the operating system.
    pub fn from_os() -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no OS randomness: {e}"))?;
        Ok(CardRng { inner: ChaCha20Rng::from_seed(seed), deterministic: false })
    }

    /// INSECURE: seeded from `seed`, for reproducible tests.
    pub fn insecure_deterministic(seed: u64) -> Self {
        CardRng { inner: ChaCha20Rng::seed_from_u64(seed), deterministic: true }
    }

    pub fn is_deterministic(&self) -> bool {
        self.deterministic
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
