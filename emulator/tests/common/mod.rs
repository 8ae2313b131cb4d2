//! Shared helpers for the emulator's integration tests: fixture loading and a table runner
//! that prints a readable `>>` / `<<` trace when an exchange does not match.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_emulator::hex;
use firmalab_emulator::{Card, CardImage, CardRng};
use std::path::PathBuf;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cards").join(name)
}

pub fn image(name: &str) -> CardImage {
    CardImage::load(&fixture_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// A powered card on a fixture, deterministic RNG.
pub fn card(name: &str) -> Card {
    let mut c = Card::new(image(name), CardRng::insecure_deterministic(7));
    c.power_on();
    c
}

pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex in test {s:?}: {e}"))
}

/// A card with a transcript, for readable failures.
pub struct Session {
    pub card: Card,
    pub trace: Vec<String>,
}

impl Session {
    pub fn new(name: &str) -> Self {
        Session { card: card(name), trace: vec![] }
    }

    pub fn with(card: Card) -> Self {
        Session { card, trace: vec![] }
    }

    /// Sends an APDU and returns the whole response.
    pub fn send(&mut self, cmd: &[u8]) -> Vec<u8> {
        let r = self.card.transmit_vec(cmd);
        self.trace.push(format!(">> {}", hex::encode(cmd)));
        self.trace.push(format!("<< {}", hex::encode(&r)));
        r
    }

    pub fn sendh(&mut self, cmd: &str) -> Vec<u8> {
        self.send(&h(cmd))
    }

    /// Sends and checks against an expectation:
    /// * `"9000"` / `"6A82"`: exactly that SW, no data;
    /// * `"<hex> 9000"`: exactly that data and SW;
    /// * `"#16 9000"`: 16 bytes of data, then the SW;
    /// * `"62.. 9000"`: data starting with those bytes (any length), then the SW;
    /// * `"* 9000"`: any data (also none), then the SW.
    pub fn expect(&mut self, cmd: &str, want: &str) -> Vec<u8> {
        let r = self.sendh(cmd);
        if let Err(why) = matches(&r, want) {
            panic!("APDU {cmd} expected {want}: {why}\ntrace:\n{}", self.trace.join("\n"));
        }
        r[..r.len() - 2].to_vec()
    }

    /// Runs a table of (command, expectation).
    pub fn table(&mut self, rows: &[(&str, &str)]) {
        for (cmd, want) in rows {
            self.expect(cmd, want);
        }
    }
}

/// Whether a response meets an expectation (the notation of [`Session::expect`]).
pub fn matches(r: &[u8], want: &str) -> Result<(), String> {
    if r.len() < 2 {
        return Err("response shorter than a status word".into());
    }
    let (data, sw) = r.split_at(r.len() - 2);
    let parts: Vec<&str> = want.split_whitespace().collect();
    let (data_want, sw_want) = match parts.as_slice() {
        [sw] => (None, *sw),
        [d, sw] => (Some(*d), *sw),
        _ => return Err(format!("bad expectation {want:?}")),
    };
    if hex::encode(sw) != sw_want.to_uppercase() {
        return Err(format!("got SW {} with {} data bytes ({})", hex::encode(sw), data.len(), hex::encode(data)));
    }
    match data_want {
        None if data.is_empty() => Ok(()),
        None => Err(format!("expected no data, got {} bytes {}", data.len(), hex::encode(data))),
        Some("*") => Ok(()),
        Some(d) if d.starts_with('#') => {
            let n: usize = d[1..].parse().map_err(|_| format!("bad length {d}"))?;
            if data.len() == n { Ok(()) } else { Err(format!("expected {n} data bytes, got {}", data.len())) }
        }
        Some(d) if d.ends_with("..") => {
            let prefix = h(&d[..d.len() - 2]);
            if data.starts_with(&prefix) {
                Ok(())
            } else {
                Err(format!("data {} does not start with {}", hex::encode(data), &d[..d.len() - 2]))
            }
        }
        Some(d) => {
            if hex::encode(data) == d.to_uppercase() {
                Ok(())
            } else {
                Err(format!("data {} != {d}", hex::encode(data)))
            }
        }
    }
}

/// `PIN` ASCII padded with `pad` to `len`, as hex.
pub fn padded(pin: &str, len: usize, pad: u8) -> String {
    let mut v = pin.as_bytes().to_vec();
    v.resize(len, pad);
    hex::encode(&v)
}

/// The PKCS#1 v1.5 type-01 block of a SHA-256 DigestInfo, `k` bytes.
pub fn pkcs1_block(digest: &[u8], k: usize) -> Vec<u8> {
    let prefix = h("3031300d060960864801650304020105000420");
    let t: Vec<u8> = prefix.iter().chain(digest).copied().collect();
    let mut b = vec![0x00, 0x01];
    b.resize(k - t.len() - 1, 0xFF);
    b.push(0x00);
    b.extend_from_slice(&t);
    b
}

pub fn sha256_digest_info(msg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(msg).to_vec();
    let di: Vec<u8> = h("3031300d060960864801650304020105000420").into_iter().chain(d.clone()).collect();
    (d, di)
}

/// The RSA public key of key slot `reference` of a card image.
pub fn public_key(image: &CardImage, reference: u8) -> rsa::RsaPublicKey {
    use firmalab_emulator::keys::LoadedKey;
    let k = image.keys.iter().find(|k| k.reference.0 == reference).unwrap();
    match k.material.as_ref().unwrap().load().unwrap() {
        LoadedKey::Rsa(k) => k.to_public_key(),
        LoadedKey::EcP256(_) => panic!("not RSA"),
    }
}

/// The image without the certificate files of its key slots: a card on which GENERATE KEY
/// PAIR may replace a key in place (a certified slot answers 6985).
pub fn without_certificates(mut image: CardImage) -> CardImage {
    use firmalab_emulator::fs::{FileNode, lookup_mut};
    let paths: Vec<Vec<u16>> =
        image.keys.iter().filter_map(|k| k.certificate.as_ref()).map(|p| p.iter().map(|h| h.0).collect()).collect();
    for path in paths {
        let (fid, parent) = path.split_last().unwrap();
        if let Some(children) = lookup_mut(&mut image.mf, parent).and_then(FileNode::children_mut) {
            children.retain(|c| c.fid.0 != *fid);
        }
    }
    image
}
