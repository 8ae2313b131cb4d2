//! The Incrypto34's BS objects (spec/cards.md §4.4, `pkcs15-incrypto34.c`): PINs, key
//! components and security environments created in the current DF by PUT DATA OCI/SECI,
//! CHANGE KEY DATA, GENERATE KEY into a record EF, and SCAN DF.

use super::{ALGO_PIN, CLASS_KEY, CLASS_PIN, PIN_LEN, descriptor};
use crate::fs::{AccessCondition, FileBody};
use crate::hex::{Bytes, Hex8, Hex16};
use crate::image::SecurityEnvironmentObject;
use crate::keys::{Algorithm, KeyObject, KeyUsage, PublicKey};
use crate::profile::Ctx;
use crate::security::{Charset, MAX_PINS, MAX_TRIES, PinObject, PinRole};
use crate::sw::Sw;

/// The card's TLVs in OCI/SECI data are simple TLVs: one tag byte, one length byte (a
/// 128-byte key component has length `82`, which is not BER).
fn simple_tlvs(mut data: &[u8]) -> Result<Vec<(u8, &[u8])>, Sw> {
    let mut out = vec![];
    while let [tag, len, rest @ ..] = data {
        let len = usize::from(*len);
        let value = rest.get(..len).ok_or(Sw::WrongData)?;
        out.push((*tag, value));
        data = rest.get(len..).ok_or(Sw::WrongData)?;
    }
    if data.is_empty() { Ok(out) } else { Err(Sw::WrongData) }
}

fn field<'a>(tlvs: &[(u8, &'a [u8])], tag: u8) -> Result<&'a [u8], Sw> {
    tlvs.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v).ok_or(Sw::WrongData)
}

fn home(ctx: &dyn Ctx) -> Vec<Hex16> {
    ctx.current_path().iter().map(|f| Hex16(*f)).collect()
}

/// PUT DATA OCI: a PIN (`83 00 ref`) or key component (`83 2n kk`) object in the current DF,
/// under the DF's create condition; `6A89` when it exists already.
pub(super) fn put_oci(ctx: &mut dyn Ctx, data: &[u8]) -> Result<Sw, Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.acl.create)?;
    let tlvs = simple_tlvs(data)?;
    match *field(&tlvs, 0x83)? {
        [CLASS_PIN, reference] => put_pin(ctx, &tlvs, reference),
        [class, key] if class & 0xF0 == CLASS_KEY => put_key_component(ctx, &tlvs, class & 0x0F, key),
        _ => Err(Sw::WrongData),
    }
}

/// A PIN BS object (`pkcs15-incrypto34.c` `incrypto34_store_pin`): `85` options, flags,
/// algorithm `87`, error counter (the tries), use counter, DEK, ARA, minimum length; `86`
/// access: use, change, unblock (the PUK's reference, `FF` none); `8F` the value padded.
fn put_pin(ctx: &mut dyn Ctx, tlvs: &[(u8, &[u8])], reference: u8) -> Result<Sw, Sw> {
    let [_options, _flags, algorithm, errcount, _usecount, _dek, _ara, min_len] = *field(tlvs, 0x85)? else {
        return Err(Sw::WrongData);
    };
    let [_use, _change, unblock, ..] = *field(tlvs, 0x86)? else {
        return Err(Sw::WrongData);
    };
    let tries = errcount & 0x0F;
    if algorithm != ALGO_PIN || reference == 0 || reference > 0x7F || !(1..=MAX_TRIES).contains(&tries) {
        return Err(Sw::WrongData);
    }
    let df = home(ctx);
    let image = ctx.image();
    if image.pins.iter().any(|p| p.reference.0 == reference && p.df == df) {
        return Err(Sw::FileExists);
    }
    if image.pins.len() >= MAX_PINS || image.eeprom_free() < 32 {
        return Err(Sw::NotEnoughMemory);
    }
    let unblocked_by = (unblock != 0xFF && unblock != 0x00 && unblock != reference).then_some(Hex8(unblock));
    let is_puk = image.pins.iter().any(|p| p.df == df && p.unblocked_by == Some(Hex8(reference)));
    let mut pin = PinObject {
        reference: Hex8(reference),
        label: String::new(),
        role: if is_puk { PinRole::Puk } else { PinRole::User },
        df: df.clone(),
        value: String::new(),
        charset: Charset::Ascii,
        min_len: min_len.clamp(4, PIN_LEN),
        max_len: PIN_LEN,
        pad_len: PIN_LEN,
        pad_byte: Hex8(0x00),
        max_tries: tries,
        tries_left: tries,
        unblocked_by,
    };
    pin.value = pin.check_new_value(field(tlvs, 0x8F)?)?.to_owned();
    pin.label = label_of(&pin);
    let image = ctx.image_mut();
    // The unblocking code named here is a PUK (pkcs15-init creates it just before).
    if let Some(puk) = image.pins.iter_mut().find(|p| Some(p.reference) == unblocked_by && p.df == df) {
        puk.role = PinRole::Puk;
        puk.label = label_of(puk);
    }
    image.pins.push(pin);
    Ok(Sw::Ok)
}

pub(super) fn label_of(p: &PinObject) -> String {
    let what = match p.role {
        PinRole::Puk => "PUK",
        PinRole::So => "SO PIN",
        PinRole::User => "PIN",
    };
    format!("{what} {:02X}", p.reference.0)
}

/// What an OCI algorithm byte lets a key do: `88`/`8C`/`C8`/`CC` sign, `08`/`0C` decipher.
fn usage_of(algorithm: u8) -> Result<KeyUsage, Sw> {
    match algorithm {
        0x88 | 0x8C | 0xC8 | 0xCC => Ok(KeyUsage { sign: true, decipher: false }),
        0x08 | 0x0C => Ok(KeyUsage { sign: false, decipher: true }),
        _ => Err(Sw::WrongData),
    }
}

/// A key component (`incrypto34_store_key_component`): component 0, the modulus, creates the
/// key object (its size is the modulus's; its PIN the `86` use condition, a PIN of the
/// card); component 1, the private exponent, completes it. The values themselves are loaded
/// by CHANGE KEY DATA or made by GENERATE KEY.
fn put_key_component(ctx: &mut dyn Ctx, tlvs: &[(u8, &[u8])], component: u8, key: u8) -> Result<Sw, Sw> {
    let [_options, _flags, algorithm, ..] = *field(tlvs, 0x85)? else {
        return Err(Sw::WrongData);
    };
    let [use_ac, ..] = *field(tlvs, 0x86)? else {
        return Err(Sw::WrongData);
    };
    let value = match field(tlvs, 0x8F)? {
        [n, 0x00, value @ ..] if usize::from(*n) == value.len() + 1 => value,
        _ => return Err(Sw::WrongData),
    };
    let usage = usage_of(algorithm)?;
    let existing = ctx.image().keys.iter().find(|k| k.reference.0 == key);
    match (component, existing) {
        (0, Some(_)) => Err(Sw::FileExists),
        (0, None) => {
            let algorithm = Algorithm::from_rsa_bits(value.len() * 8)
                .filter(|a| a.rsa_bits().is_some_and(|b| b <= 1024))
                .ok_or(Sw::WrongData)?;
            // The key's PIN must be one of the card's (a key usable by anyone is not modelled).
            if !ctx.image().pins.iter().any(|p| p.reference.0 == use_ac) {
                return Err(Sw::ReferencedDataNotFound);
            }
            if ctx.image().eeprom_free() < algorithm.eeprom_bytes() {
                return Err(Sw::NotEnoughMemory);
            }
            ctx.image_mut().keys.push(KeyObject {
                reference: Hex8(key),
                label: format!("RSA key {key:02X}"),
                algorithm,
                usage,
                pin: Hex8(use_ac),
                always_authenticate: false,
                material: None,
                pending: None,
                certificate: None,
            });
            Ok(Sw::Ok)
        }
        (1, None) => Err(Sw::ReferencedDataNotFound),
        (1, Some(k)) if k.material.is_some() => Err(Sw::FileExists),
        (1, Some(k)) if k.algorithm.rsa_bits() != Some(value.len() * 8) || k.usage != usage => Err(Sw::WrongData),
        (1, Some(_)) => Ok(Sw::Ok),
        _ => Err(Sw::WrongData),
    }
}

/// PUT DATA SECI (`incrypto34_create_sec_env`): `83 01 se` and the rest of the template, kept
/// as it came; `6A89` when the DF has that environment.
pub(super) fn put_seci(ctx: &mut dyn Ctx, data: &[u8]) -> Result<Sw, Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.acl.create)?;
    if data.len() > 255 {
        // One short APDU's worth: a chained template is longer than any environment.
        return Err(Sw::WrongLength);
    }
    let tlvs = simple_tlvs(data)?;
    let [number] = *field(&tlvs, 0x83)? else {
        return Err(Sw::WrongData);
    };
    let df = home(ctx);
    let image = ctx.image();
    if image.security_environments.iter().any(|e| e.df == df && e.number.0 == number) {
        return Err(Sw::FileExists);
    }
    if image.eeprom_free() < 8 + data.len() as u32 {
        return Err(Sw::NotEnoughMemory);
    }
    ctx.image_mut().security_environments.push(SecurityEnvironmentObject {
        df,
        number: Hex8(number),
        data: Bytes(data.to_vec()),
    });
    Ok(Sw::Ok)
}

/// The key object `key` and whether the session may change it: a live key (one with material)
/// only under its PIN; a key object still waiting for its values always (`pkcs15-init`
/// fills it right after creating it).
fn key_for_change(ctx: &dyn Ctx, key: u8) -> Result<(Algorithm, bool), Sw> {
    let k = ctx.image().keys.iter().find(|k| k.reference.0 == key).ok_or(Sw::ReferencedDataNotFound)?;
    let live = k.material.is_some();
    if live {
        ctx.require(AccessCondition::Pin(k.pin))?;
    }
    Ok((k.algorithm, live))
}

/// CHANGE KEY DATA: a component's value, modulus length. `pkcs15-init --generate-key` loads
/// `FF` placeholders before GENERATE KEY: the key object then has no usable key until the
/// card generates one. Loading a real key from outside is not modelled (`6A81`).
pub(super) fn change_key_data(ctx: &mut dyn Ctx, component: u8, key: u8, data: &[u8]) -> Result<Sw, Sw> {
    let (algorithm, live) = key_for_change(ctx, key)?;
    if Some(data.len() * 8) != algorithm.rsa_bits() {
        return Err(Sw::WrongLength);
    }
    if component > 1 {
        return Err(Sw::WrongP1P2);
    }
    if !data.iter().all(|b| *b == 0xFF) {
        return Err(Sw::FunctionNotSupported);
    }
    if live && let Some(k) = ctx.image_mut().keys.iter_mut().find(|k| k.reference.0 == key) {
        k.material = None;
    }
    Ok(Sw::Ok)
}

/// A record of the key-generation file: tag, length, length − 1, `00`, value
/// (`incrypto34_extract_pubkey`).
fn pubkey_record(tag: u8, value: &[u8]) -> Result<Vec<u8>, Sw> {
    let n = u8::try_from(value.len() + 2).map_err(|_| Sw::WrongLength)?;
    let mut r = vec![tag, n, n - 1, 0x00];
    r.extend_from_slice(value);
    Ok(r)
}

/// GENERATE KEY: a new key pair in BS object `key` (its size), the public key written to the
/// record EF `file` of the current DF (record 1 `10` modulus, record 2 `11` exponent), no
/// response data.
pub(super) fn generate_key(ctx: &mut dyn Ctx, key: u8, file: u16) -> Result<Sw, Sw> {
    let (algorithm, _) = key_for_change(ctx, key)?;
    let target = ctx.current_df()?.child(file).ok_or(Sw::FileNotFound)?;
    let FileBody::Records { record_len, max_records, .. } = target.body else {
        return Err(Sw::IncompatibleFile);
    };
    ctx.require(target.acl.update)?;
    let k = algorithm.rsa_bits().unwrap_or(0) / 8;
    if usize::from(record_len) < k + 4 || max_records < 2 {
        return Err(Sw::NotEnoughMemory);
    }
    let PublicKey::Rsa { modulus, exponent } = ctx.generate_key(key, algorithm)? else {
        return Err(Sw::Unknown);
    };
    let records = vec![Bytes(pubkey_record(0x10, &modulus)?), Bytes(pubkey_record(0x11, &exponent)?)];
    let path: Vec<u16> = ctx.current_path().to_vec();
    let node = crate::fs::lookup_mut(&mut ctx.image_mut().mf, &path).and_then(|df| df.child_mut(file));
    match node.map(|n| &mut n.body) {
        Some(FileBody::Records { records: r, .. }) => *r = records,
        _ => return Err(Sw::Unknown),
    }
    Ok(Sw::Ok)
}

/// SCAN DF: type and FID of the current DF's first (or next) child; `6A82` past the last.
pub(super) fn scan_df(ctx: &mut dyn Ctx, first: bool) -> Result<Sw, Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.acl.read)?;
    let index = if first { 0 } else { usize::from(*ctx.listing()) };
    let entry = {
        let df = ctx.current_df()?;
        let child = df.children().get(index).ok_or(Sw::FileNotFound)?;
        let [hi, lo] = child.fid.0.to_be_bytes();
        [descriptor(child), hi, lo]
    };
    *ctx.listing() = u16::try_from(index + 1).unwrap_or(u16::MAX);
    ctx.reply().push(&entry)?;
    Ok(Sw::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tlvs_take_one_byte_lengths_even_above_7f() {
        let mut data = vec![0x83, 0x02, 0x20, 0x10, 0x8F, 0x82, 0x81, 0x00];
        data.extend([0xAB; 0x80]);
        let t = simple_tlvs(&data).unwrap_or_default();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].1.len(), 0x82);
        assert_eq!(simple_tlvs(&[0x83, 0x03, 0x00]), Err(Sw::WrongData));
    }
}
