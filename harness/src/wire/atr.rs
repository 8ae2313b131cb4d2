//! What an ATR says about a card: the profile the harness has a client for, the mask and lot,
//! whether the lot is still supported, and whether its PIN status query is free.
//!
//! Recognition follows OpenSC 0.23 (spec/cards.md §2.1: the exact Oberthur table; §3.1: the
//! CNS structural rule over the 15 historical bytes). The lot table follows spec/domain.md
//! §1.1: the Aruba ST Incard CNS 1.0 lots (they carry RSA-2048 keys although OpenSC 0.23
//! registers RSA-1024 only for CNS 1.0), ST Incard CNS 1.1, the IDEMIA 2021 CNS, Oberthur
//! AuthentIC; old masks (Incrypto34) and unknown lots are obsolete.

use serde::Serialize;

/// The card families the harness has a client for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Italian CNS (OpenSC `itacns`).
    Cns,
    /// Oberthur AuthentIC v2 / CosmopolIC with the AWP layout (OpenSC `oberthur`).
    Oberthur,
    /// Incard Incrypto34 with an on-card PKCS#15 application (OpenSC `incrypto34`).
    Incrypto34,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Cns => "cns",
            Profile::Oberthur => "oberthur",
            Profile::Incrypto34 => "incrypto34",
        }
    }
}

/// The historical bytes of a CNS ATR that matter (spec/domain.md §1.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CnsBytes {
    /// H3: IC manufacturer (ISO 7816-6 registry: 02 STMicroelectronics, 05 Infineon).
    pub ic: u8,
    /// H4: mask (card OS) manufacturer (09 STIncard, 05 IDEMIA/Oberthur, 08 Siemens …).
    pub mask: u8,
    /// H5 H6: firmware major, minor.
    pub firmware: (u8, u8),
    /// H13: CNS specification version, `0x10` = 1.0, `0x11` = 1.1.
    pub version: u8,
}

pub const IC_ST: u8 = 0x02;
pub const IC_INFINEON: u8 = 0x05;
pub const MASK_IDEMIA: u8 = 0x05;
pub const MASK_SIEMENS: u8 = 0x08;
pub const MASK_STINCARD: u8 = 0x09;

impl CnsBytes {
    /// OpenSC's IDEMIA 2021 rule: Infineon IC, IDEMIA mask, firmware major ≥ 32.
    pub fn idemia_2021(&self) -> bool {
        self.ic == IC_INFINEON && self.mask == MASK_IDEMIA && self.firmware.0 >= 0x20
    }

    pub fn mask_name(&self) -> &'static str {
        const MASKS: [&str; 14] = [
            "?",
            "Kaitech",
            "Gemplus",
            "Ghirlanda",
            "Giesecke & Devrient",
            "IDEMIA (Oberthur)",
            "Orga",
            "Axalto",
            "Siemens",
            "STIncard",
            "GEP",
            "EPS Corp",
            "Athena",
            "Gemalto",
        ];
        MASKS.get(usize::from(self.mask)).copied().unwrap_or("unknown")
    }

    pub fn ic_name(&self) -> &'static str {
        match self.ic {
            IC_ST => "STMicroelectronics",
            IC_INFINEON => "Infineon",
            _ => "unknown IC",
        }
    }
}

/// Whether a lot is still sold and renewable.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "why", rename_all = "snake_case")]
pub enum LotStatus {
    Current,
    Obsolete(&'static str),
}

/// A known card lot.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lot {
    pub name: &'static str,
    pub status: LotStatus,
    /// Key size the lot's keys must have (renewal generates RSA-2048).
    pub min_key_bits: usize,
}

/// What the harness knows about a card from its ATR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardModel {
    pub profile: Option<Profile>,
    /// One line for `firmalab readers` and the diagnostic.
    pub label: String,
    /// The lot, when it is in the table.
    pub lot: Option<Lot>,
    /// The CNS historical bytes, for CNS cards.
    pub cns: Option<CnsBytes>,
    /// Whether `VERIFY` without data reports the tries left without counting as an attempt.
    /// `false` for masks the harness has no evidence for: some cards count the query as a
    /// failed verification (spec/domain.md §1.3), so the harness does not send it to them.
    pub tries_query_free: bool,
}

const OBERTHUR_ATRS: [&[u8]; 6] = [
    &[0x3B, 0x7D, 0x18, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x01, 0x00, 0x82, 0x90, 0x00],
    &[0x3B, 0x7D, 0x18, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x02, 0x00, 0x82, 0x90, 0x00],
    &[0x3B, 0x7D, 0x11, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x01, 0x00, 0x82, 0x90, 0x00],
    &[0x3B, 0x7D, 0x11, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x02, 0x00, 0x82, 0x90, 0x00],
    &[0x3B, 0x7B, 0x18, 0x00, 0x00, 0x00, 0x31, 0xC0, 0x64, 0x77, 0xE3, 0x03, 0x00, 0x82, 0x90, 0x00],
    &[
        0x3B, 0xFB, 0x11, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x00, 0x31, 0xC0, 0x64, 0x77, 0xE9, 0x10, 0x00, 0x00,
        0x90, 0x00, 0x6A,
    ],
];

/// The Incard Incrypto34 historical bytes ("DSD" instead of "CNS"; spec/domain.md §1.1).
const INCRYPTO34_HIST: [u8; 15] =
    [0x00, 0x6B, 0x02, 0x09, 0x02, 0x00, 0x01, 0x01, 0x01, 0x44, 0x53, 0x44, 0x10, 0x31, 0x80];

/// The CNS lots the harness knows, by (IC, mask, firmware, CNS version). The two CNS 1.0
/// entries are the genuine Aruba Incard ATRs of spec/cards.md §3.1 (pcsc-tools list); the
/// CNS 1.1 ones the ATR of spec/cards.md §3.1 (firmware 13.03) and the Aruba Incard token of
/// spec/domain.md §1.1 (firmware 02.00, PeculiarVentures/fortify#314).
/// A CNS lot's key: IC, mask, firmware (major, minor), CNS version.
type LotKey = (u8, u8, (u8, u8), u8);

const CNS_LOTS: [(LotKey, Lot); 4] = [
    (
        (IC_ST, MASK_STINCARD, (0x13, 0x03), 0x10),
        Lot { name: "ST Incard CNS 1.0, Aruba Digital Signature", status: LotStatus::Current, min_key_bits: 2048 },
    ),
    (
        (IC_ST, MASK_STINCARD, (0x04, 0x03), 0x10),
        Lot { name: "ST Incard CNS 1.0, Aruba PEC", status: LotStatus::Current, min_key_bits: 2048 },
    ),
    (
        (IC_ST, MASK_STINCARD, (0x13, 0x03), 0x11),
        Lot { name: "ST Incard CNS 1.1", status: LotStatus::Current, min_key_bits: 2048 },
    ),
    (
        (IC_ST, MASK_STINCARD, (0x02, 0x00), 0x11),
        Lot { name: "ST Incard CNS 1.1, Aruba token", status: LotStatus::Current, min_key_bits: 2048 },
    ),
];

const IDEMIA_2021: Lot = Lot { name: "IDEMIA CNS 2021", status: LotStatus::Current, min_key_bits: 2048 };
const OBERTHUR: Lot =
    Lot { name: "Oberthur AuthentIC v2 / CosmopolIC (AWP)", status: LotStatus::Current, min_key_bits: 2048 };
const INCRYPTO34: Lot = Lot {
    name: "Incard Incrypto34",
    status: LotStatus::Obsolete("old mask: RSA-1024 at most, no longer supported by OpenSC"),
    min_key_bits: 2048,
};

/// Recognises an ATR.
pub fn recognise(atr: &[u8]) -> CardModel {
    if OBERTHUR_ATRS.contains(&atr) {
        return CardModel {
            profile: Some(Profile::Oberthur),
            label: "Oberthur AuthentIC v2 / CosmopolIC (OpenSC oberthur)".into(),
            lot: Some(OBERTHUR),
            cns: None,
            // OpenSC's driver sends the status query at every bind and before every VERIFY
            // (spec/cards.md §2.5): the card answers 63Cx without counting it.
            tries_query_free: true,
        };
    }
    let unknown =
        |label: &str| CardModel { profile: None, label: label.into(), lot: None, cns: None, tries_query_free: false };
    let Some(hist) = historical_bytes(atr) else { return unknown("unknown card") };
    if hist == INCRYPTO34_HIST {
        // The harness has a client for it (diagnostic, PIN flows); the lot is obsolete for a
        // renewal. No evidence that its mask answers the status query for free.
        return CardModel {
            profile: Some(Profile::Incrypto34),
            lot: Some(INCRYPTO34),
            ..unknown("Incard Incrypto34 (not a CNS: OpenSC incrypto34)")
        };
    }
    if hist[6..15] == [0x02, b'I', b'T', b'I', b'D', 0x20, 0x20, 0x31, 0x80] {
        return unknown("Italian CIE v2 (not a signature card)");
    }
    if hist[9..12] != *b"CNS" {
        return unknown("unknown card");
    }
    let b = CnsBytes { ic: hist[2], mask: hist[3], firmware: (hist[4], hist[5]), version: hist[12] };
    let lot = if b.idemia_2021() {
        Some(IDEMIA_2021)
    } else {
        CNS_LOTS.iter().find(|(k, _)| *k == (b.ic, b.mask, b.firmware, b.version)).map(|(_, l)| *l)
    };
    let rsa = if b.version >= 0x11 || b.idemia_2021() { "RSA-1024/2048" } else { "RSA-1024 only in OpenSC 0.23" };
    let label =
        format!("Italian CNS {}.{} (mask {}; {rsa}; OpenSC itacns)", b.version >> 4, b.version & 0x0F, b.mask_name());
    CardModel {
        profile: Some(Profile::Cns),
        label,
        lot,
        cns: Some(b),
        // The ST Incard masks answer the status query with 63Cx (as firmalab's card models
        // them); for other masks the harness has no evidence and does not risk it.
        tries_query_free: b.mask == MASK_STINCARD,
    }
}

/// The 15 historical bytes of an ATR shaped like the CNS ones (OpenSC `card-itacns.c`
/// rule: TD1 present with T=1, TD2 = 31, 15 historical bytes starting `00 6B`).
fn historical_bytes(atr: &[u8]) -> Option<[u8; 15]> {
    let (&ts, rest) = atr.split_first()?;
    let (&t0, mut rest) = rest.split_first()?;
    if ts != 0x3B || t0 & 0x8F != 0x8F {
        return None;
    }
    let skip = |y: u8, rest: &mut &[u8]| -> Option<()> {
        *rest = rest.get((y & 0x70).count_ones() as usize..)?;
        Some(())
    };
    skip(t0, &mut rest)?;
    let (&td1, r) = rest.split_first()?;
    rest = r;
    if td1 & 0x8F != 0x81 {
        return None;
    }
    skip(td1, &mut rest)?;
    let (&td2, r) = rest.split_first()?;
    if td2 != 0x31 {
        return None;
    }
    let hist: [u8; 15] = r.get(2..17)?.try_into().ok()?; // after TA3, TB3
    (hist[0] == 0x00 && hist[1] == 0x6B).then_some(hist)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::hex::decode;

    fn model(atr: &str) -> CardModel {
        recognise(&decode(atr).unwrap())
    }

    #[test]
    fn genuine_aruba_incard_cns_1_0_atrs_are_current_lots() {
        for atr in [
            "3BFF1800FF8131FE55006B02091303010101434E531031808D",
            "3BFF960000 8131FE55006B02090403010101434E53103180EB",
        ] {
            let m = model(atr);
            assert_eq!(m.profile, Some(Profile::Cns), "{atr}");
            assert_eq!(m.lot.unwrap().status, LotStatus::Current, "{atr}");
            assert!(m.label.starts_with("Italian CNS 1.0 (mask STIncard"), "{}", m.label);
            assert!(m.tries_query_free);
        }
    }

    #[test]
    fn idemia_2021_unknown_lots_incrypto34_and_oberthur() {
        let idemia = model("3BFF18000081 31FE45006B05052000012101434E53103180 79");
        assert_eq!(idemia.lot.unwrap().name, "IDEMIA CNS 2021");
        assert!(idemia.cns.unwrap().idemia_2021());
        assert!(!idemia.tries_query_free, "no evidence the IDEMIA mask answers the query for free");
        let other_lot = model("3BFF1800FF8131FE55006B02090503010101434E531131808A");
        assert_eq!((other_lot.profile, other_lot.lot), (Some(Profile::Cns), None));
        let incrypto = model("3bff1800ff8131fe55006b02090200010101445344103180 92");
        assert_eq!(incrypto.profile, Some(Profile::Incrypto34));
        assert!(!incrypto.tries_query_free);
        assert!(matches!(incrypto.lot.unwrap().status, LotStatus::Obsolete(_)));
        let ob = model("3B7D180000003180718E6477E30200829000");
        assert_eq!(ob.profile, Some(Profile::Oberthur));
        assert_eq!(model("3B8A800176706963632D746F79210A").profile, None);
    }
}
