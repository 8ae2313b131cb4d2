//! Strict real-card twins: cards personalised as a genuine token is, with nothing of firmalab's
//! convenience card (card image `extensions` empty), so a flow that would need a command the
//! real mask lacks fails on the twin as it would on the token, and a harness bug shows.
//!
//! | twin | profile | what makes it the genuine card |
//! | --- | --- | --- |
//! | `cns-incard-1.0` | `cns` | the genuine Aruba Incard ATR (CNS 1.0, "Aruba Digital Signature", spec/cards.md §3.1) with RSA-2048 keys as the real cards hold; no pending-key renewal commands (GENERATE `P1 = 80/81`, MSE tag `84`: `6A86`/`6A80`), no capability probe (`6A88`) |
//! | `cns-idemia-2021` | `cns` | the IDEMIA 2021 CNS ATR (OpenSC #2763) and its layout (one PIN `10` and PUK `11` for both keys, signature certificate `1400/9001/2002`, key `02` in `1400/9002`); its PIN status query (VERIFY without data) **counts as a failed attempt**; no pending key, no probe |
//! | `oberthur-authentic` | `oberthur` | the AuthentIC ATR, T=0 only: an extended-length APDU answers `6700` |
//!
//! `firmalab image new --twin NAME`, the fixtures `twin-*.json` and `--persona twin-…` issue
//! them. The host never learns a card is a twin from this module: it asks the card (the
//! capability probe, `client::Capabilities`) and reads its ATR, as it would a real token.

use firmalab_emulator::CardImage;
use firmalab_emulator::image::ProfileKind;

/// The genuine Aruba Incard CNS 1.0 ATR ("Aruba Digital Signature", pcsc-tools list,
/// spec/cards.md §3.1): IC STMicroelectronics, mask STIncard, firmware 13.03, CNS 1.0.
pub const INCARD_CNS_1_0_ATR: [u8; 25] = [
    0x3B, 0xFF, 0x18, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x55, 0x00, 0x6B, 0x02, 0x09, 0x13, 0x03, 0x01, 0x01, 0x01, 0x43,
    0x4E, 0x53, 0x10, 0x31, 0x80, 0x8D,
];

/// An IDEMIA 2021 CNS ATR (OpenSC issue #2763, spec/domain.md §1.1): IC Infineon, mask
/// IDEMIA, firmware 20.00, CNS 1.0.
pub const IDEMIA_CNS_2021_ATR: [u8; 25] = [
    0x3B, 0xFF, 0x18, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x00, 0x6B, 0x05, 0x05, 0x20, 0x00, 0x01, 0x21, 0x01, 0x43,
    0x4E, 0x53, 0x10, 0x31, 0x80, 0x79,
];

/// The Oberthur AuthentIC ATR OpenSC's table lists first for the AWP cards (spec/cards.md
/// §2.1), T=0 only.
pub const OBERTHUR_ATR: [u8; 18] =
    [0x3B, 0x7D, 0x18, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x02, 0x00, 0x82, 0x90, 0x00];

/// A strict real-card twin.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Twin {
    CnsIncard10,
    CnsIdemia2021,
    OberthurAuthentic,
}

impl Twin {
    pub const ALL: [Twin; 3] = [Twin::CnsIncard10, Twin::CnsIdemia2021, Twin::OberthurAuthentic];

    pub fn name(self) -> &'static str {
        match self {
            Twin::CnsIncard10 => "cns-incard-1.0",
            Twin::CnsIdemia2021 => "cns-idemia-2021",
            Twin::OberthurAuthentic => "oberthur-authentic",
        }
    }

    pub fn profile(self) -> ProfileKind {
        match self {
            Twin::CnsIncard10 | Twin::CnsIdemia2021 => ProfileKind::Cns,
            Twin::OberthurAuthentic => ProfileKind::Oberthur,
        }
    }

    /// The genuine card's ATR (given at personalisation: it decides the CNS layout).
    pub fn atr(self) -> &'static [u8] {
        match self {
            Twin::CnsIncard10 => &INCARD_CNS_1_0_ATR,
            Twin::CnsIdemia2021 => &IDEMIA_CNS_2021_ATR,
            Twin::OberthurAuthentic => &OBERTHUR_ATR,
        }
    }

    /// Whether the mask counts the PIN status query as a failed attempt.
    pub fn tries_query_counts(self) -> bool {
        self == Twin::CnsIdemia2021
    }

    /// What the image's description starts with.
    pub fn description(self) -> &'static str {
        match self {
            Twin::CnsIncard10 => {
                "strict twin of a genuine Aruba Incard CNS 1.0 (ATR 'Aruba Digital Signature', RSA-2048 keys; no pending-key renewal commands)"
            }
            Twin::CnsIdemia2021 => {
                "strict twin of an IDEMIA 2021 CNS (one PIN 10 for both keys; the PIN status query counts as a failed attempt; no pending-key renewal commands)"
            }
            Twin::OberthurAuthentic => {
                "strict twin of an Oberthur AuthentIC v2 AWP token (T=0 only: extended-length APDUs refused)"
            }
        }
    }

    /// Makes an image personalised with [`Twin::atr`] the twin: no extensions, the mask's
    /// status-query behaviour, its name at the head of the description.
    pub fn apply(self, image: &mut CardImage) {
        image.atr = firmalab_emulator::hex::Bytes(self.atr().to_vec());
        image.extensions.clear();
        image.tries_query_counts = self.tries_query_counts();
        if !image.description.starts_with("strict twin") {
            image.description = format!("{}: {}", self.description(), image.description);
        }
    }
}

impl std::str::FromStr for Twin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Twin::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("{s:?} is not a twin (known: {})", Twin::ALL.map(Twin::name).join(", ")))
    }
}

impl std::fmt::Display for Twin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn twins_atrs_are_the_genuine_ones_and_both_sides_recognise_them() {
        for t in Twin::ALL {
            let emulated = firmalab_emulator::profile::recognise(t.atr());
            assert_eq!(emulated.profile, Some(t.profile()), "{t}: {}", emulated.label);
            let host = crate::wire::atr::recognise(t.atr());
            assert_eq!(host.profile.map(|p| p.name()), Some(t.profile().name()), "{t}");
            assert!(host.lot.is_some(), "{t}: a known lot");
            assert_eq!(t.name().parse::<Twin>(), Ok(t));
        }
        // A T=1 ATR's TCK makes T0..TCK XOR to zero.
        for atr in [&INCARD_CNS_1_0_ATR[..], &IDEMIA_CNS_2021_ATR[..]] {
            assert_eq!(atr[1..].iter().fold(0u8, |a, b| a ^ b), 0);
        }
        assert_eq!(
            crate::wire::hex::encode(&INCARD_CNS_1_0_ATR),
            "3BFF1800FF8131FE55006B02091303010101434E531031808D",
            "spec/cards.md §3.1"
        );
        assert!(crate::wire::atr::recognise(&IDEMIA_CNS_2021_ATR).cns.unwrap().idemia_2021());
        assert!(!crate::wire::atr::recognise(&IDEMIA_CNS_2021_ATR).tries_query_free);
        assert!(firmalab_emulator::image::offers_only_t0(&OBERTHUR_ATR));
        assert!(!firmalab_emulator::image::offers_only_t0(&INCARD_CNS_1_0_ATR));
        assert!("cns".parse::<Twin>().unwrap_err().contains("cns-incard-1.0"));
    }
}
