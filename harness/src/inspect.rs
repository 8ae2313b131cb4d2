//! What `firmalab image show` prints: a card image summarised for people (and as JSON).

use crate::dates::Date;
use der::Decode;
use der::referenced::OwnedToRef;
use firmalab_emulator::fs::{FileBody, FileNode, display_path};
use firmalab_emulator::image::CardImage;
use firmalab_emulator::profile::cns;
use serde::Serialize;
use x509_cert::Certificate;

#[derive(Debug, Serialize)]
pub struct PinSummary {
    pub reference: String,
    pub label: String,
    pub role: String,
    pub tries_left: u8,
    pub max_tries: u8,
    pub blocked: bool,
}

#[derive(Debug, Serialize)]
pub struct KeySummary {
    pub reference: String,
    pub label: String,
    pub algorithm: String,
    pub present: bool,
    pub always_authenticate: bool,
}

#[derive(Debug, Serialize)]
pub struct CertSummary {
    pub path: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// The key on the card whose public key the certificate certifies (its reference);
    /// `None` when no key matches (a twin's stand-in keys, a certificate left behind).
    pub key: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImageSummary {
    pub profile: String,
    pub description: String,
    pub atr: String,
    pub serial: Option<String>,
    pub life_cycle: String,
    pub holder: Option<String>,
    pub eeprom_used: u32,
    pub eeprom_capacity: u32,
    /// firmalab's extensions the card has (none on a strict twin of a genuine token).
    pub extensions: Vec<&'static str>,
    /// The PIN status query counts as a failed attempt on this card.
    pub tries_query_counts: bool,
    pub pins: Vec<PinSummary>,
    pub keys: Vec<KeySummary>,
    pub certificates: Vec<CertSummary>,
}

/// Certificates found on a card: every EF whose content parses as X.509 (CNS EFs, Oberthur
/// `20nn` files), with its path.
pub fn certificates(image: &CardImage) -> Vec<(Vec<u16>, Certificate)> {
    fn go(node: &FileNode, path: &mut Vec<u16>, out: &mut Vec<(Vec<u16>, Certificate)>) {
        path.push(node.fid.0);
        if let FileBody::Transparent { data } = &node.body
            && data.0.first() == Some(&0x30)
            && let Ok(cert) = Certificate::from_der(&data.0)
        {
            out.push((path.clone(), cert));
        }
        for c in node.children() {
            go(c, path, out);
        }
        path.pop();
    }
    let mut out = Vec::new();
    go(&image.mf, &mut Vec::new(), &mut out);
    out
}

fn time(t: &x509_cert::time::Time) -> String {
    Date::from_der(&t.to_date_time()).to_string()
}

/// Summarises an image.
pub fn summarize(image: &CardImage) -> ImageSummary {
    let holder = firmalab_emulator::fs::lookup(&image.mf, &[0x3F00, 0x1100, 0x1102])
        .and_then(|n| match &n.body {
            FileBody::Transparent { data } => cns::decode_dati_personali(&data.0),
            _ => None,
        })
        .map(|h| format!("{} {} ({})", h.first_name, h.last_name, h.codice_fiscale));
    ImageSummary {
        profile: image.profile.name().into(),
        description: image.description.clone(),
        atr: firmalab_emulator::hex::encode(&image.atr.0),
        serial: image.serial(),
        life_cycle: format!("{:?}", image.life_cycle).to_lowercase(),
        holder,
        eeprom_used: image.eeprom_used(),
        eeprom_capacity: image.capacity,
        extensions: image.extensions.iter().map(|e| e.name()).collect(),
        tries_query_counts: image.tries_query_counts,
        pins: image
            .pins
            .iter()
            .map(|p| PinSummary {
                reference: p.reference.to_string(),
                label: p.label.clone(),
                role: format!("{:?}", p.role).to_lowercase(),
                tries_left: p.tries_left,
                max_tries: p.max_tries,
                blocked: p.blocked(),
            })
            .collect(),
        keys: image
            .keys
            .iter()
            .map(|k| KeySummary {
                reference: k.reference.to_string(),
                label: k.label.clone(),
                algorithm: format!("{:?}", k.algorithm).to_lowercase(),
                present: k.material.is_some(),
                always_authenticate: k.always_authenticate,
            })
            .collect(),
        certificates: certificates(image)
            .into_iter()
            .map(|(path, c)| {
                let tbs = c.tbs_certificate();
                let key =
                    rsa::RsaPublicKey::try_from(tbs.subject_public_key_info().owned_to_ref()).ok().and_then(|p| {
                        let modulus = rsa::traits::PublicKeyParts::n(&p).to_be_bytes_trimmed_vartime().to_vec();
                        image
                            .keys
                            .iter()
                            .find(|k| k.material.as_ref().is_some_and(|m| public_modulus(m) == Some(modulus.clone())))
                    });
                CertSummary {
                    path: display_path(&path),
                    subject: tbs.subject().to_string(),
                    issuer: tbs.issuer().to_string(),
                    serial: tbs.serial_number().to_string(),
                    not_before: time(&tbs.validity().not_before),
                    not_after: time(&tbs.validity().not_after),
                    key: key.map(|k| k.reference.to_string()),
                }
            })
            .collect(),
    }
}

/// The RSA modulus of a key, if it is an RSA key that loads.
fn public_modulus(m: &firmalab_emulator::keys::KeyMaterial) -> Option<Vec<u8>> {
    match m.load().ok()?.public() {
        firmalab_emulator::keys::PublicKey::Rsa { modulus, .. } => Some(modulus),
        _ => None,
    }
}

/// The human rendering.
pub fn render(s: &ImageSummary) -> String {
    let mut o = String::new();
    let mut line = |t: String| {
        o.push_str(&t);
        o.push('\n');
    };
    line(format!("profile      {}", s.profile));
    line(format!("description  {}", s.description));
    line(format!("ATR          {}", s.atr));
    line(format!("serial       {}", s.serial.as_deref().unwrap_or("(unreadable)")));
    line(format!("life-cycle   {}", s.life_cycle));
    line(format!("holder       {}", s.holder.as_deref().unwrap_or("(none)")));
    line(format!("EEPROM       {} of {} bytes used", s.eeprom_used, s.eeprom_capacity));
    line(format!(
        "extensions   {}",
        if s.extensions.is_empty() {
            "none: a strict twin of the genuine card".to_owned()
        } else {
            s.extensions.join(", ")
        }
    ));
    if s.tries_query_counts {
        line("status query counts as a failed attempt (VERIFY without data costs a try)".into());
    }
    line("PINs".into());
    for p in &s.pins {
        let state =
            if p.blocked { "BLOCKED".to_owned() } else { format!("{}/{} tries left", p.tries_left, p.max_tries) };
        line(format!("  {}  {:<10} {:<4} {}", p.reference, p.label, p.role, state));
    }
    line("keys".into());
    for k in &s.keys {
        let present = if k.present { "present" } else { "EMPTY" };
        let aa = if k.always_authenticate { ", PIN per signature" } else { "" };
        line(format!("  {}  {:<28} {} {}{}", k.reference, k.label, k.algorithm, present, aa));
    }
    line("certificates".into());
    if s.certificates.is_empty() {
        line("  (none)".into());
    }
    for c in &s.certificates {
        line(format!("  {}  {}", c.path, c.subject));
        line(format!("      valid {} .. {}, serial {}", c.not_before, c.not_after, c.serial));
        match &c.key {
            Some(k) => line(format!("      key {k}")),
            None if !s.keys.is_empty() => {
                line("      NO KEY ON THE CARD MATCHES IT (a captured twin's stand-in keys, or a leftover)".into())
            }
            None => {}
        }
    }
    o
}
