//! Card latency models, so middleware benchmarks see a physical token's time instead of the
//! emulator's microseconds. Published figures for smart cards and tokens: an RSA-2048 signature
//! takes 60 to 680 ms on the card, key generation seconds to tens of seconds; a plain APDU a few
//! milliseconds over USB CCID. Default: no delay (as fast as possible).

use crate::card::Effect;
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

    /// How long a physical card would have taken for a command, given what the card did
    /// ([`Card::last_effect`](crate::card::Card::last_effect)): a private-key operation or a
    /// key generation on top of the per-APDU time.
    pub fn delay(self, effect: Effect) -> Duration {
        let (apdu, private_op, keygen) = self.figures();
        let extra = match effect {
            Effect::PrivateKeyOperation => private_op,
            Effect::KeyGeneration => keygen,
            Effect::None | Effect::CredentialsReset => 0,
        };
        Duration::from_millis(apdu + extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_what_the_card_did() {
        let t = Timing::Typical;
        assert_eq!(t.delay(Effect::None), Duration::from_millis(5));
        assert_eq!(t.delay(Effect::CredentialsReset), Duration::from_millis(5));
        assert_eq!(t.delay(Effect::PrivateKeyOperation), Duration::from_millis(255));
        assert_eq!(t.delay(Effect::KeyGeneration), Duration::from_millis(10_005));
        assert_eq!(Timing::Slow.delay(Effect::PrivateKeyOperation), Duration::from_millis(690));
        assert_eq!(Timing::None.delay(Effect::KeyGeneration), Duration::ZERO);
        assert!("medium".parse::<Timing>().is_err());
        assert_eq!("fast".parse::<Timing>(), Ok(Timing::Fast));
    }
}
