//! The PKCS#15 application of an issued Incrypto34, as `pkcs15-init` lays it out on a blank
//! card (`pkcs15.profile` + `incrypto34.profile`), in DER; and the TokenInfo serial.

use super::objects::label_of;
use super::{
    AID_PKCS15, ATR, DF_PKCS15, EF_AODF, EF_CDF, EF_DIR, EF_INIT, EF_ODF, EF_PRKDF, EF_PUKDF, EF_TOKEN_INFO, KEY_AUTH,
    KEY_SIGN, PIN_LEN, PIN_SO, PIN_USER, PUK_USER, TOKEN_LABEL, open_acl,
};
use crate::fs::{AccessCondition, Acl, FileBody, FileNode, MF};
use crate::hex::{Bytes, Hex8, Hex16};
use crate::image::{Capabilities, CardImage, ProfileKind, SCHEMA_NAME, SCHEMA_VERSION, SecurityEnvironmentObject};
use crate::keys::{KeyObject, KeyUsage};
use crate::perso::{KeySet, Personalization};
use crate::security::{Charset, PinObject, PinRole};
use iso7816::tlv::{Tag, take_data_object};

/// A DER TLV with a one-byte tag.
fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    match value.len() {
        n @ 0..=0x7F => v.push(n as u8),
        n @ 0x80..=0xFF => v.extend([0x81, n as u8]),
        n => v.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend_from_slice(value);
    v
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn der_int(n: u32) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(3);
    let mut v = bytes[start..].to_vec();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

/// A PKCS#15 Path: `SEQUENCE { OCTET STRING path }`.
fn der_path(path: &[u16]) -> Vec<u8> {
    let bytes: Vec<u8> = path.iter().flat_map(|f| f.to_be_bytes()).collect();
    der(0x30, &der(0x04, &bytes))
}

/// `serialNumber` of a TokenInfo: the OCTET STRING after the version.
pub(super) fn token_info_serial(data: &[u8]) -> Option<&[u8]> {
    let (tag, mut body, _) = take_data_object(data)?;
    if tag != Tag::from_u8(0x30) {
        return None;
    }
    while !body.is_empty() {
        let (tag, value, rest) = take_data_object(body)?;
        if tag == Tag::from_u8(0x04) {
            return Some(value);
        }
        body = rest;
    }
    None
}

fn ef(fid: u16, name: &str, acl: Acl, data: Vec<u8>) -> FileNode {
    FileNode::new(fid, Some(name), acl, FileBody::Transparent { data: Bytes(data) })
}

fn acl(read: AccessCondition, update: AccessCondition, delete: AccessCondition) -> Acl {
    Acl { read, update, create: AccessCondition::Never, delete }
}

fn pin_object(
    reference: u8,
    role: PinRole,
    value: &str,
    tries: u8,
    unblocked_by: Option<u8>,
    min_len: u8,
) -> PinObject {
    let mut p = PinObject {
        reference: Hex8(reference),
        label: String::new(),
        role,
        df: vec![Hex16(MF), Hex16(DF_PKCS15)],
        value: value.into(),
        charset: Charset::Ascii,
        min_len,
        max_len: PIN_LEN,
        pad_len: PIN_LEN,
        pad_byte: Hex8(0x00),
        max_tries: tries,
        tries_left: tries,
        unblocked_by: unblocked_by.map(Hex8),
    };
    p.label = label_of(&p);
    p
}

/// An AODF PIN entry as `pkcs15-init` writes it: label, flags private + modifiable, authId,
/// PinAttributes { flags, ascii-numeric, min, stored 8, max 8, reference, pad `00`, path }.
fn aodf_pin(label: &str, auth_id: u8, flags: &[u8], reference: u8, min_len: u8) -> Vec<u8> {
    der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[der(0x0C, label.as_bytes()), der(0x03, &[0x06, 0xC0])])),
            der(0x30, &der(0x04, &[auth_id])),
            der(
                0xA1,
                &der(
                    0x30,
                    &cat(&[
                        der(0x03, flags),
                        der(0x0A, &[0x01]),
                        der_int(u32::from(min_len)),
                        der_int(u32::from(PIN_LEN)),
                        der_int(u32::from(PIN_LEN)),
                        der(0x80, &[reference]),
                        der(0x04, &[0x00]),
                        der_path(&[MF, DF_PKCS15]),
                    ]),
                ),
            ),
        ]),
    )
}

/// `data` padded with zeros to `size` (a PKCS#15 directory file is created bigger than its
/// content; parsers stop at the first `00`).
fn padded(mut data: Vec<u8>, size: usize) -> Vec<u8> {
    if data.len() < size {
        data.resize(size, 0);
    }
    data
}

/// DER `RSAPublicKey`.
fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if v.first().is_some_and(|b| b & 0x80 != 0) { vec![0] } else { vec![] };
        body.extend(v);
        der(0x02, &body)
    };
    der(0x30, &cat(&[int(modulus), int(exponent)]))
}

/// One issued key: its objects in the PrKDF, PuKDF and CDF, its files, its BS object.
struct IssuedKey {
    prkdf: Vec<u8>,
    pukdf: Vec<u8>,
    cdf: Vec<u8>,
    files: Vec<FileNode>,
    key: KeyObject,
}

fn issued_key(
    reference: u8,
    index: u16,
    ks: &KeySet,
    qualified: bool,
    user: AccessCondition,
) -> Result<IssuedKey, String> {
    let bits = ks
        .algorithm
        .rsa_bits()
        .filter(|b| *b <= 1024)
        .ok_or_else(|| format!("a {:?} key: an incrypto34 holds RSA keys of 512 to 1024 bits", ks.algorithm))?;
    let app = [MF, DF_PKCS15];
    let (public_fid, cert_fid) = (0x3003 + index, 0x3104 + index);
    let label = der(0x0C, ks.info.label.as_bytes());
    let id = der(0x04, &ks.info.id);
    let modulus_length = der_int(bits as u32);
    // sign, signRecover (+ nonRepudiation for the qualified key); the driver refuses keys
    // that also decipher.
    let usage: &[u8] = if qualified { &[0x06, 0x30, 0x40] } else { &[0x04, 0x30] };
    let prkdf = der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[label.clone(), der(0x03, &[0x06, 0xC0]), der(0x04, &[0x01])])),
            // sensitive, alwaysSensitive, neverExtractable, local; the key's reference.
            der(0x30, &cat(&[id.clone(), der(0x03, usage), der(0x03, &[0x03, 0xB8]), der_int(u32::from(reference))])),
            der(0xA0, &der(0x30, &ks.info.subject)),
            der(0xA1, &der(0x30, &cat(&[der_path(&app), modulus_length.clone()]))),
        ]),
    );
    let pukdf = der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[label.clone(), der(0x03, &[0x06, 0x40])])),
            // verify, verifyRecover; not native; reference 0.
            der(0x30, &cat(&[id.clone(), der(0x03, &[0x00, 0x03]), der(0x01, &[0x00]), der_int(0)])),
            der(0xA1, &der(0x30, &cat(&[der_path(&[MF, DF_PKCS15, public_fid]), modulus_length]))),
        ]),
    );
    let cdf = der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[label, der(0x03, &[0x06, 0x40])])),
            der(0x30, &id),
            der(0xA1, &der(0x30, &der_path(&[MF, DF_PKCS15, cert_fid]))),
        ]),
    );
    let always = AccessCondition::Always;
    let files = vec![
        ef(public_fid, &format!("{} public key", ks.info.label), acl(always, user, user), {
            rsa_public_key(&ks.info.modulus, &ks.info.exponent)
        }),
        ef(cert_fid, &format!("{} certificate", ks.info.label), acl(always, user, user), ks.certificate.clone()),
    ];
    let key = KeyObject {
        reference: Hex8(reference),
        label: ks.info.label.clone(),
        algorithm: ks.algorithm,
        usage: KeyUsage { sign: true, decipher: false },
        pin: Hex8(PIN_USER),
        always_authenticate: false,
        material: Some(ks.material.clone()),
        pending: None,
        certificate: Some(vec![Hex16(MF), Hex16(DF_PKCS15), Hex16(cert_fid)]),
    };
    Ok(IssuedKey { prkdf, pukdf, cdf, files, key })
}

/// A blank chip when the personalisation has no key. Otherwise an issued card laid out as
/// `pkcs15-init` lays out a blank Incrypto34 (`--create-pkcs15`, `--store-pin`,
/// `--generate-key`, `--store-certificate`): EF.DIR `2F00`; in DF `5015` the ODF, TokenInfo
/// ("ARUBA INCRYPTO34", serial from hex digits), the init marker `4946`, AODF (SO PIN, user
/// PIN), PrKDF, PuKDF, CDF, public-key EFs `3003`+ and certificate EFs `3104`+; the BS
/// objects SO PIN 1, user PIN 3 with its PUK 4, security environment 1, and the holder's
/// signature key (`10`, nonRepudiation) and authentication key (`11`), both signature-only
/// as the driver requires, RSA of 512 to 1024 bits. The MF's create and delete conditions are
/// the SO PIN (an ERASE needs it).
pub fn personalize(p: &Personalization) -> Result<CardImage, String> {
    let serial = crate::hex::decode(&p.serial)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 16)
        .ok_or_else(|| format!("an incrypto34 serial is 2 to 32 hex digits, got {:?}", p.serial))?;
    let mut image = CardImage {
        schema: SCHEMA_NAME.into(),
        version: SCHEMA_VERSION,
        profile: ProfileKind::Incrypto34,
        description: p.description.clone(),
        atr: Bytes(p.atr.clone().unwrap_or_else(|| ATR.to_vec())),
        life_cycle: p.life_cycle,
        capacity: p.capacity,
        capabilities: Capabilities { p256: false },
        cplc: None,
        history: p.history.clone(),
        mf: FileNode::new(MF, Some("MF"), open_acl(), FileBody::Df { aid: None, children: vec![] }),
        pins: vec![],
        keys: vec![],
        security_environments: vec![],
        extensions: crate::image::Extension::convenience(ProfileKind::Incrypto34),
        tries_query_counts: false,
    };
    if p.auth.is_none() && p.sign.is_none() {
        // A blank chip, as the factory (or ERASE) leaves it: an open MF, nothing else, for
        // `pkcs15-init` to personalise.
        return Ok(image);
    }
    let always = AccessCondition::Always;
    let never = AccessCondition::Never;
    let so = AccessCondition::Pin(Hex8(PIN_SO));
    let user = AccessCondition::Pin(Hex8(PIN_USER));
    let app = [MF, DF_PKCS15];
    let mut keys = vec![];
    for (index, (reference, ks, qualified)) in
        [(KEY_SIGN, &p.sign, true), (KEY_AUTH, &p.auth, false)].into_iter().enumerate()
    {
        if let Some(ks) = ks {
            keys.push(issued_key(reference, index as u16, ks, qualified, user)?);
        }
    }
    let df_path = |fid: u16| der_path(&[MF, DF_PKCS15, fid]);
    let odf = cat(&[
        der(0xA8, &df_path(EF_AODF)),
        der(0xA0, &df_path(EF_PRKDF)),
        der(0xA1, &df_path(EF_PUKDF)),
        der(0xA4, &df_path(EF_CDF)),
    ]);
    // version 0, serial, manufacturer, label, tokenflags eidCompliant.
    let token_info = der(
        0x30,
        &cat(&[
            der_int(0),
            der(0x04, &serial),
            der(0x0C, b"Incard"),
            der(0x80, TOKEN_LABEL.as_bytes()),
            der(0x03, &[0x04, 0x10]),
        ]),
    );
    // soPin: local, initialized, needs-padding, soPin; user: local, initialized, needs-padding.
    let aodf = cat(&[
        aodf_pin("Security Officer PIN", 0xFF, &[0x00, 0x4D], PIN_SO, 6),
        aodf_pin("User PIN", 0x01, &[0x02, 0x4C], PIN_USER, 4),
    ]);
    let dir = der(
        0x61,
        &cat(&[der(0x4F, &AID_PKCS15), der(0x50, TOKEN_LABEL.as_bytes()), der(0x51, &[0x3F, 0x00, 0x50, 0x15])]),
    );
    let open = acl(always, always, always);
    let protected = acl(always, so, so);
    let mut files = vec![
        ef(EF_ODF, "EF.ODF", open, padded(odf, 256)),
        ef(EF_TOKEN_INFO, "EF.TokenInfo", open, token_info),
        ef(EF_INIT, "pkcs15-init marker", protected, padded(b"\x01\x06pkcs15".to_vec(), 128)),
        ef(EF_AODF, "EF.AODF", protected, padded(aodf, 256)),
        ef(EF_PRKDF, "EF.PrKDF", protected, padded(keys.iter().flat_map(|k| k.prkdf.clone()).collect(), 256)),
        ef(EF_PUKDF, "EF.PuKDF", protected, padded(keys.iter().flat_map(|k| k.pukdf.clone()).collect(), 256)),
        ef(EF_CDF, "EF.CDF", protected, padded(keys.iter().flat_map(|k| k.cdf.clone()).collect(), 512)),
    ];
    files.extend(keys.iter().flat_map(|k| k.files.clone()));
    let pkcs15 = FileNode::new(
        DF_PKCS15,
        Some("PKCS#15 application"),
        Acl { read: always, update: never, create: always, delete: always },
        FileBody::Df { aid: None, children: files },
    );
    image.mf = FileNode::new(
        MF,
        Some("MF"),
        Acl { read: always, update: never, create: so, delete: so },
        FileBody::Df { aid: None, children: vec![ef(EF_DIR, "EF.DIR", open, padded(dir, 128)), pkcs15] },
    );
    image.pins = vec![
        pin_object(PIN_SO, PinRole::So, &p.so_pin, 3, None, 6),
        pin_object(PIN_USER, PinRole::User, &p.pin, p.pin_tries, Some(PUK_USER), 4),
        pin_object(PUK_USER, PinRole::Puk, &p.puk, p.puk_tries, None, 4),
    ];
    image.keys = keys.into_iter().map(|k| k.key).collect();
    image.security_environments = vec![SecurityEnvironmentObject {
        df: app.iter().map(|f| Hex16(*f)).collect(),
        number: Hex8(0x01),
        data: Bytes(vec![0x83, 0x01, 0x01, 0x86, 0x02, 0x00, 0x00, 0x8F, 0x06, 0, 0, 0, 0, 0, 0]),
    }];
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_info_serial_is_the_octet_string_after_the_version() {
        let ti = der(0x30, &cat(&[der_int(0), der(0x04, &[0x12, 0x34]), der(0x0C, b"Incard")]));
        assert_eq!(token_info_serial(&ti), Some(&[0x12, 0x34][..]));
        assert_eq!(token_info_serial(&[0x31, 0x00]), None);
        assert_eq!(der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der_int(1024), vec![0x02, 0x02, 0x04, 0x00]);
        assert_eq!(der_int(0x80), vec![0x02, 0x02, 0x00, 0x80]);
    }
}
