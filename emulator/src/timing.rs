//! Card latency models, so middleware benchmarks see a physical token's time instead of the
//! emulator's microseconds. Published figures for smart cards and tokens: an RSA-2048 signature
//! takes 60 to 680 ms on the card, key generation seconds to tens of seconds; a plain APDU a few
//! milliseconds over USB CCID. Default: no delay (as fast as possible).

use std::time::Duration;

/// A latency model.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Timing {
    /// No added delay.
    None,
    /// A fast recent chip: 2 ms per APDU, RSA-2048 private operation 60 ms, key generation 2 s.
    Fast,
    /// A typical Aruba-era token: 5 ms per APDU, private operation 250 ms, key generation 10 s.
    Typical,
    /// An old, slow card: 10 ms per APDU, private operation 680 ms, key generation 30 s.
    Slow,
}

impl std::str::FromStr for Timing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Timing::None),
            "fast" => Ok(Timing::Fast),
            "typical" => Ok(Timing::Typical),
            "slow" => Ok(Timing::Slow),
            other => Err(format!("unknown timing model {other:?} (none, fast, typical, slow)")),
        }
    }
}

impl Timing {
    fn figures(self) -> (u64, u64, u64) {
        // (per APDU, private-key operation, key generation) in milliseconds
        match self {
            Timing::None => (0, 0, 0),
            Timing::Fast => (2, 60, 2_000),
            Timing::Typical => (5, 250, 10_000),
            Timing::Slow => (10, 680, 30_000),
        }
    }

    /// How long a physical card would have taken for this command, given its answer.
    pub fn delay(self, command: &[u8], response: &[u8]) -> Duration {
        let (apdu, private_op, keygen) = self.figures();
        // Success: 9000, or 61xx (more data to fetch) for a long answer.
        let ok = matches!(response.get(response.len().saturating_sub(2)), Some(0x90 | 0x61));
        let extra = match command.get(1) {
            // PSO (signature, decipher) that produced a result; chained blocks are quick.
            Some(0x2A) if ok && command.first().is_some_and(|c| c & 0x10 == 0) => private_op,
            // GENERATE KEY PAIR (not the CNS commit, which only writes).
            Some(0x46) if ok && command.get(2) != Some(&0x81) => keygen,
            _ => 0,
        };
        Duration::from_millis(apdu + extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_command() {
        let t = Timing::Typical;
        assert_eq!(t.delay(&[0x00, 0xA4, 0, 0], &[0x90, 0x00]), Duration::from_millis(5));
        assert_eq!(t.delay(&[0x00, 0x2A, 0x9E, 0x9A, 1, 0], &[0xAB, 0x90, 0x00]), Duration::from_millis(255));
        assert_eq!(t.delay(&[0x10, 0x2A, 0x9E, 0x9A, 1, 0], &[0x90, 0x00]), Duration::from_millis(5));
        assert_eq!(t.delay(&[0x00, 0x46, 0x80, 0x10, 2, 8, 0], &[0x61, 0x0E]), Duration::from_millis(10_005));
        assert_eq!(Timing::None.delay(&[0x00, 0x46, 0, 0x10], &[0x90, 0x00]), Duration::ZERO);
        assert!("medium".parse::<Timing>().is_err());
    }
}
