//! Card profiles: everything that differs between the CNS and the Oberthur card lives in one
//! module each (ATR, how APDU bytes map to commands, FCP encoding, file layout, erase).

pub mod cns;
pub mod oberthur;

use crate::apdu::Apdu;
use crate::command::Command;
use crate::fs::FileNode;
use crate::image::{CardImage, ProfileKind};
use crate::sw::Sw;

/// Longest FCP template either profile produces (DF with a 16-byte AID and a 9-byte ACL).
pub const FCP_MAX: usize = 64;

/// An FCP being built, on the stack.
pub type Fcp = heapless::Vec<u8, FCP_MAX>;

/// Decodes an APDU for the profile.
pub fn parse<'a>(profile: ProfileKind, apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    match profile {
        ProfileKind::Cns => cns::parse(apdu),
        ProfileKind::Oberthur => oberthur::parse(apdu),
    }
}

/// The FCP the profile returns on SELECT.
pub fn fcp(image: &CardImage, node: &FileNode) -> Result<Fcp, Sw> {
    match image.profile {
        ProfileKind::Cns => cns::fcp(node),
        ProfileKind::Oberthur => oberthur::fcp(node, image.eeprom_free()),
    }
}

/// Whether the profile accepts this class byte (chaining bit removed).
pub fn class_supported(profile: ProfileKind, cla: u8) -> bool {
    match profile {
        ProfileKind::Cns => matches!(cla, 0x00 | 0xB0),
        ProfileKind::Oberthur => matches!(cla, 0x00 | 0x80),
    }
}

/// Appends a TLV with a 1-byte tag and a short length.
pub(crate) fn tlv(out: &mut Fcp, tag: u8, value: &[u8]) -> Result<(), Sw> {
    let len = u8::try_from(value.len()).map_err(|_| Sw::Unknown)?;
    out.extend_from_slice(&[tag, len]).map_err(|_| Sw::Unknown)?;
    out.extend_from_slice(value).map_err(|_| Sw::Unknown)
}

/// Wraps TLVs in the `62 L` FCP template.
pub(crate) fn template(inner: &Fcp) -> Result<Fcp, Sw> {
    let mut out = Fcp::new();
    tlv(&mut out, 0x62, inner)?;
    Ok(out)
}

/// Iterates the TLVs inside a `62 L` FCP template (CREATE FILE data).
pub(crate) fn fcp_fields(data: &[u8], mut f: impl FnMut(u8, &[u8]) -> Result<(), Sw>) -> Result<(), Sw> {
    match data {
        [0x62, len, inner @ ..] if usize::from(*len) == inner.len() => crate::command::simple_tlv(inner, &mut f),
        _ => Err(Sw::WrongData),
    }
}

/// The FIDs of a CREATE FILE / FCP field as u16.
pub(crate) fn be16(v: &[u8]) -> Result<u16, Sw> {
    match *v {
        [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
        [lo] => Ok(u16::from(lo)),
        _ => Err(Sw::WrongData),
    }
}

/// What selecting an application by AID does on this profile.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Application {
    /// Selected; the file-system position does not change (the GP card manager).
    Other,
    /// The file-system application: the MF becomes the current DF.
    FileSystem,
}

/// The applications a profile answers to by AID, besides DFs that carry a name.
pub fn application(profile: ProfileKind, aid: &[u8]) -> Option<Application> {
    match profile {
        ProfileKind::Cns => None,
        ProfileKind::Oberthur if aid == oberthur::AID_CARD_MANAGER => Some(Application::Other),
        ProfileKind::Oberthur if aid == oberthur::AID_AUTHENTIC => Some(Application::FileSystem),
        ProfileKind::Oberthur => None,
    }
}

/// The profile's ERASE (only the CNS parser emits it).
pub fn erase(image: &mut CardImage) {
    match image.profile {
        ProfileKind::Cns => cns::erase(image),
        ProfileKind::Oberthur => {}
    }
}

/// What an ATR says about a card: the profile firmalab emulates for it, if any, and a label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recognised {
    pub profile: Option<ProfileKind>,
    pub label: String,
}

/// Recognises an ATR the way OpenSC 0.23 would (spec/cards.md §2.1 exact table, §3.1 CNS
/// structural rule).
pub fn recognise(atr: &[u8]) -> Recognised {
    const OBERTHUR: [&[u8]; 6] = [
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
    if OBERTHUR.contains(&atr) {
        return Recognised {
            profile: Some(ProfileKind::Oberthur),
            label: "Oberthur AuthentIC v2 / CosmopolIC (OpenSC oberthur)".into(),
        };
    }
    if let Some(hist) = cns_historical_bytes(atr) {
        const MASKS: [&str; 14] = [
            "?",
            "Kaitech",
            "Gemplus",
            "Ghirlanda",
            "Giesecke & Devrient",
            "Oberthur/IDEMIA",
            "Orga",
            "Axalto",
            "Siemens",
            "STIncard",
            "GEP",
            "EPS Corp",
            "Athena",
            "Gemalto",
        ];
        let mask = MASKS.get(usize::from(hist[3])).copied().unwrap_or("unknown");
        if hist[6..15] == [0x01, hist[7], hist[8], 0x43, 0x4E, 0x53, hist[12], 0x31, 0x80] {
            let v = hist[12];
            let rsa = if v >= 0x11 { "RSA-1024/2048" } else { "RSA-1024 only in OpenSC 0.23" };
            return Recognised {
                profile: Some(ProfileKind::Cns),
                label: format!("Italian CNS {}.{} (mask {mask}; {rsa}; OpenSC itacns)", v >> 4, v & 0x0F),
            };
        }
        if hist[6..15] == [0x02, 0x49, 0x54, 0x49, 0x44, 0x20, 0x20, 0x31, 0x80] {
            return Recognised { profile: None, label: "Italian CIE v2 (not emulated)".into() };
        }
    }
    Recognised { profile: None, label: "unknown card".into() }
}

/// The 15 historical bytes of an ATR shaped like the CNS ones (`card-itacns.c` rule), if any.
fn cns_historical_bytes(atr: &[u8]) -> Option<[u8; 15]> {
    let (&ts, rest) = atr.split_first()?;
    let (&t0, mut rest) = rest.split_first()?;
    if ts != 0x3B || t0 & 0x8F != 0x8F {
        return None;
    }
    let skip = |y: u8, rest: &mut &[u8]| -> Option<()> {
        let n = (y & 0x70).count_ones() as usize; // TA, TB, TC present bits
        *rest = rest.get(n..)?;
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
    rest = r;
    if td2 != 0x31 {
        return None;
    }
    rest = rest.get(2..)?; // TA3, TB3
    let hist: [u8; 15] = rest.get(..15)?.try_into().ok()?;
    (hist[0] == 0x00 && hist[1] == 0x6B).then_some(hist)
}
