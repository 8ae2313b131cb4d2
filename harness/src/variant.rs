//! Card variants: a product an issuer personalises on one of the emulator's profiles without
//! a profile of its own, told apart by hosts from its ATR alone. Personalisation data only:
//! the card engine and the profile are the same as for the base profile.
//!
//! | variant | profile | what differs |
//! | --- | --- | --- |
//! | `aruba-key` | `cns` | the Aruba Key, a USB token with an ST Incard chip (spec/domain.md §1.1): the ATR of the Aruba Incard CNS 1.1 tokens (PeculiarVentures/fortify#314), firmware 02.00 where the Aruba smart cards say 13.03 or 04.03; Bit4id's PKCS#11 module reports token label `CNS`, manufacturer `ST Incard`, model `T&S DS/2048 (LB)` |
//!
//! `firmalab image new --profile cns --variant aruba-key`, the fixture `aruba-key.json` and
//! `firmalab card --persona aruba-key` issue one. The host side recognises the key on its
//! own (`flows::order::aruba_key`), from the ATR, not from this module.

use firmalab_emulator::CardImage;
use firmalab_emulator::hex::Bytes;
use firmalab_emulator::image::ProfileKind;

/// The Aruba Incard token's ATR (spec/domain.md §1.1): historical bytes `00 6B 02 09 02 00
/// 01 11 01 "CNS" 11 31 80`: IC STMicroelectronics, mask STIncard, firmware 02.00, CNS 1.1.
pub const ARUBA_KEY_ATR: [u8; 25] = [
    0x3B, 0xFF, 0x18, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x55, 0x00, 0x6B, 0x02, 0x09, 0x02, 0x00, 0x01, 0x11, 0x01, 0x43,
    0x4E, 0x53, 0x11, 0x31, 0x80, 0x8E,
];

/// How the variant names itself in the image's description.
pub const ARUBA_KEY_DESCRIPTION: &str = "Aruba Key (USB token, ST Incard chip; Bit4id PKCS#11: token label CNS, manufacturer ST Incard, model T&S DS/2048 (LB))";

/// A card variant.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Variant {
    ArubaKey,
}

impl Variant {
    pub const ALL: [Variant; 1] = [Variant::ArubaKey];

    pub fn name(self) -> &'static str {
        match self {
            Variant::ArubaKey => "aruba-key",
        }
    }

    /// The profile the variant is personalised on.
    pub fn profile(self) -> ProfileKind {
        match self {
            Variant::ArubaKey => ProfileKind::Cns,
        }
    }

    /// Personalises an image of [`Variant::profile`] as the variant: its ATR, and its name
    /// at the head of the description.
    pub fn apply(self, image: &mut CardImage) {
        match self {
            Variant::ArubaKey => {
                image.atr = Bytes(ARUBA_KEY_ATR.to_vec());
                if !image.description.starts_with("Aruba Key") {
                    image.description = format!("{ARUBA_KEY_DESCRIPTION}: {}", image.description);
                }
            }
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Variant::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| {
            format!("{s:?} is not a card variant (known: {})", Variant::ALL.map(Variant::name).join(", "))
        })
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_aruba_key_is_a_cns_the_emulator_and_the_host_both_recognise_from_its_atr() {
        let emulated = firmalab_emulator::profile::recognise(&ARUBA_KEY_ATR);
        assert_eq!(emulated.profile, Some(ProfileKind::Cns), "{}", emulated.label);
        let host = crate::wire::atr::recognise(&ARUBA_KEY_ATR);
        assert_eq!(host.profile, Some(crate::wire::Profile::Cns));
        assert_eq!(host.lot.unwrap().name, "ST Incard CNS 1.1, Aruba token");
        let token = crate::flows::order::aruba_key(&host).unwrap();
        assert_eq!((token.label, token.manufacturer, token.model), ("CNS", "ST Incard", "T&S DS/2048 (LB)"));
        // The Aruba smart cards of the same mask are not keys.
        for card in
            ["3BFF1800FF8131FE55006B02091303010101434E531131808C", "3BFF1800FF8131FE55006B02091303010101434E531031808D"]
        {
            let m = crate::wire::atr::recognise(&crate::wire::hex::decode(card).unwrap());
            assert!(crate::flows::order::aruba_key(&m).is_none(), "{card}");
        }
        // TCK: the XOR of T0..TCK is 0 for a T=1 ATR.
        assert_eq!(ARUBA_KEY_ATR[1..].iter().fold(0u8, |a, b| a ^ b), 0);
        assert_eq!("aruba-key".parse::<Variant>(), Ok(Variant::ArubaKey));
        assert!("aruba".parse::<Variant>().unwrap_err().contains("aruba-key"));
    }
}
