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
    out.extend_from_slice(&[tag, len])
        .map_err(|_| Sw::Unknown)?;
    out.extend_from_slice(value).map_err(|_| Sw::Unknown)
}

/// Wraps TLVs in the `62 L` FCP template.
pub(crate) fn template(inner: &Fcp) -> Result<Fcp, Sw> {
    let mut out = Fcp::new();
    tlv(&mut out, 0x62, inner)?;
    Ok(out)
}

/// Iterates the TLVs inside a `62 L` FCP template (CREATE FILE data).
pub(crate) fn fcp_fields(
    data: &[u8],
    mut f: impl FnMut(u8, &[u8]) -> Result<(), Sw>,
) -> Result<(), Sw> {
    match data {
        [0x62, len, inner @ ..] if usize::from(*len) == inner.len() => {
            crate::command::simple_tlv(inner, &mut f)
        }
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
