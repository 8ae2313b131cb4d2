//! The ISO 7816-4/-8 command arms every profile shares, decoded once. A profile's
//! [`Profile::parse`] matches its own arms first (what differs: proprietary commands, other
//! encodings, commands it lacks) and hands everything else to [`parse`]; the facts an ISO arm
//! needs from the card (how P2 names a PIN, who pads a signature, which GET DATA objects
//! exist) come from the profile's hooks.

use super::{PinOp, Profile};
use crate::apdu::Apdu;
use crate::command::{Command, KeySelector, SecOp, Select, SelectTarget, SignPadding, UnblockProof};
use crate::sw::Sw;
use iso7816::tlv::{Tag, take_data_object};

/// Decodes the ISO arms (class already reduced to its base by the card).
pub fn parse<'a>(profile: &dyn Profile, apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    match (apdu.cla, apdu.ins) {
        (0x00, 0xA4) => select(apdu),
        (0x00, 0xB0) => {
            no_data(apdu)?;
            Ok(Command::ReadBinary { offset: binary_offset(apdu)?, le: apdu.le.unwrap_or(256) })
        }
        (0x00, 0xD6) => {
            if apdu.data.is_empty() {
                return Err(Sw::WrongLength);
            }
            Ok(Command::UpdateBinary { offset: binary_offset(apdu)?, data: apdu.data })
        }
        (0x00, 0xB2) => {
            no_data(apdu)?;
            Ok(Command::ReadRecord { record: record_number(apdu)?, le: apdu.le.unwrap_or(256) })
        }
        (0x00, 0xDC) => {
            if apdu.data.is_empty() {
                return Err(Sw::WrongLength);
            }
            Ok(Command::UpdateRecord { record: record_number(apdu)?, data: apdu.data })
        }
        (0x00, 0xE2) => {
            p1p2_zero(apdu)?;
            if apdu.data.is_empty() {
                return Err(Sw::WrongLength);
            }
            Ok(Command::AppendRecord { data: apdu.data })
        }
        (0x00, 0x20) => {
            if apdu.p1 != 0 {
                return Err(Sw::WrongP1P2);
            }
            let data = if apdu.data.is_empty() { None } else { Some(apdu.data) };
            Ok(Command::Verify { pin: profile.pin_ref(apdu.p2, PinOp::Verify)?, data })
        }
        (0x00, 0x24) => {
            if apdu.p1 != 0 {
                return Err(Sw::WrongP1P2);
            }
            Ok(Command::ChangeReferenceData { pin: profile.pin_ref(apdu.p2, PinOp::Change)?, data: apdu.data })
        }
        (0x00, 0x2C) => reset_retry_counter(profile, apdu),
        (0x00, 0x22) => mse(apdu),
        (0x00, 0x2A) => pso(apdu, profile.pso_padding()),
        (0x00, 0x84) => {
            no_data(apdu)?;
            p1p2_zero(apdu)?;
            match apdu.le {
                Some(len) if len <= 256 => Ok(Command::GetChallenge { len }),
                _ => Err(Sw::WrongLength),
            }
        }
        (0x00 | 0x80, 0xCA) => {
            no_data(apdu)?;
            profile.data_object(apdu.cla, apdu.p1, apdu.p2).map(Command::GetData).ok_or(Sw::ReferencedDataNotFound)
        }
        (0x00, 0xC0) => {
            no_data(apdu)?;
            p1p2_zero(apdu)?;
            Ok(Command::GetResponse { le: apdu.le.unwrap_or(256) })
        }
        _ => Err(Sw::InsNotSupported),
    }
}

pub fn no_data(apdu: &Apdu<'_>) -> Result<(), Sw> {
    if apdu.data.is_empty() { Ok(()) } else { Err(Sw::WrongLength) }
}

pub fn p1p2_zero(apdu: &Apdu<'_>) -> Result<(), Sw> {
    if (apdu.p1, apdu.p2) == (0, 0) { Ok(()) } else { Err(Sw::WrongP1P2) }
}

pub fn fid_of(data: &[u8]) -> Result<u16, Sw> {
    match *data {
        [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(Sw::WrongLength),
    }
}

/// SELECT (ISO 7816-4 §11.1.1).
fn select<'a>(apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    let return_fcp = match apdu.p2 & 0xFC {
        0x00 | 0x04 => true,
        0x0C => false,
        _ => return Err(Sw::WrongP1P2),
    };
    let occurrence = apdu.p2 & 0x03;
    if occurrence != 0 && apdu.p1 != 0x04 {
        return Err(Sw::WrongP1P2);
    }
    let target = match apdu.p1 {
        0x00 => {
            if apdu.data.is_empty() {
                SelectTarget::Fid(crate::fs::MF)
            } else {
                SelectTarget::Fid(fid_of(apdu.data)?)
            }
        }
        0x03 => {
            no_data(apdu)?;
            SelectTarget::Parent
        }
        0x04 => {
            if apdu.data.is_empty() || apdu.data.len() > 16 {
                return Err(Sw::WrongLength);
            }
            if occurrence != 0 {
                // "next occurrence": no card here has two DFs with one name.
                return Err(Sw::FileNotFound);
            }
            SelectTarget::DfName(apdu.data)
        }
        0x08 | 0x09 => {
            if apdu.data.is_empty() || !apdu.data.len().is_multiple_of(2) {
                return Err(Sw::WrongLength);
            }
            if apdu.p1 == 0x08 { SelectTarget::PathFromMf(apdu.data) } else { SelectTarget::PathFromCurrent(apdu.data) }
        }
        _ => return Err(Sw::WrongP1P2),
    };
    Ok(Command::Select(Select { target, return_fcp }))
}

/// Offset of READ/UPDATE BINARY: 15 bits of P1-P2. Short EF identifiers (P1 b8 = 1) are not
/// supported by these cards.
fn binary_offset(apdu: &Apdu<'_>) -> Result<usize, Sw> {
    if apdu.p1 & 0x80 != 0 {
        return Err(Sw::WrongP1P2);
    }
    Ok(usize::from(apdu.p1) << 8 | usize::from(apdu.p2))
}

/// Record commands address by absolute record number in P1 (P2 = `04`).
pub fn record_number(apdu: &Apdu<'_>) -> Result<u8, Sw> {
    if apdu.p2 != 0x04 || apdu.p1 == 0 {
        return Err(Sw::WrongP1P2);
    }
    Ok(apdu.p1)
}

/// RESET RETRY COUNTER (ISO 7816-4 §11.5.10): P1 = `00` unblock code ‖ new PIN, both padded
/// to the same length; P1 = `01` the unblock code only (the PIN is kept).
fn reset_retry_counter<'a>(profile: &dyn Profile, apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    let pin = profile.pin_ref(apdu.p2, PinOp::Unblock)?;
    match apdu.p1 {
        0x00 => {
            if apdu.data.is_empty() || !apdu.data.len().is_multiple_of(2) {
                return Err(Sw::WrongLength);
            }
            let (puk, new) = apdu.data.split_at(apdu.data.len() / 2);
            Ok(Command::ResetRetryCounter { pin, proof: UnblockProof::Puk(puk), new_pin: Some(new) })
        }
        0x01 => Ok(Command::ResetRetryCounter { pin, proof: UnblockProof::Puk(apdu.data), new_pin: None }),
        _ => Err(Sw::WrongP1P2),
    }
}

/// MANAGE SECURITY ENVIRONMENT (ISO 7816-8 §11.4): RESTORE (`F3 se`, no data; OpenSC sends
/// it as case 1 or case 2 with Le = 00, spec/cards.md §3.5, §4.4) and SET (`F1`/`41`, CRT
/// `B6`/`B8` with the key reference `83 01 kk`, or `84 01 kk` for the pending key of a slot).
fn mse<'a>(apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    match apdu.p1 {
        0xF3 => {
            no_data(apdu)?;
            Ok(Command::MseRestore { se: apdu.p2 })
        }
        0xF1 | 0x41 => {
            let op = mse_op(apdu.p2)?;
            let mut key = None;
            let mut rest = apdu.data;
            while !rest.is_empty() {
                let (tag, value, tail) = take_data_object(rest).ok_or(Sw::WrongData)?;
                key = Some(match value {
                    [kk] if tag == Tag::from_u8(0x83) => KeySelector::Reference(*kk),
                    [kk] if tag == Tag::from_u8(0x84) => KeySelector::Pending(*kk),
                    _ => return Err(Sw::WrongData),
                });
                rest = tail;
            }
            Ok(Command::MseSet { op, key: key.ok_or(Sw::WrongData)? })
        }
        _ => Err(Sw::WrongP1P2),
    }
}

/// The CRT tag of MSE SET P2.
pub fn mse_op(p2: u8) -> Result<SecOp, Sw> {
    match p2 {
        0xB6 => Ok(SecOp::Sign),
        0xB8 => Ok(SecOp::Decipher),
        _ => Err(Sw::WrongP1P2),
    }
}

/// PSO (ISO 7816-8 §11): `9E 9A` compute digital signature, `80 86` decipher.
fn pso<'a>(apdu: &Apdu<'a>, padding: SignPadding) -> Result<Command<'a>, Sw> {
    // A card that signs raw blocks receives an ISO padding indicator `00` before the
    // cryptogram and returns the raw block (CNS); one that pads receives the bare cryptogram
    // and removes the padding itself (Oberthur).
    let decipher_indicator = padding == SignPadding::Raw;
    match (apdu.p1, apdu.p2) {
        (0x9E, 0x9A) => {
            if apdu.data.is_empty() {
                return Err(Sw::WrongLength);
            }
            Ok(Command::ComputeSignature { input: apdu.data, padding })
        }
        (0x80, 0x86) => {
            let input = if decipher_indicator {
                match apdu.data.split_first() {
                    Some((0x00, rest)) if !rest.is_empty() => rest,
                    Some(_) => return Err(Sw::WrongData),
                    None => return Err(Sw::WrongLength),
                }
            } else {
                apdu.data
            };
            if input.is_empty() {
                return Err(Sw::WrongLength);
            }
            Ok(Command::Decipher { input, unpad: !decipher_indicator })
        }
        _ => Err(Sw::WrongP1P2),
    }
}
