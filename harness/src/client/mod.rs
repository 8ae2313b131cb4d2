//! Card clients: what Aruba's middleware (Bit4id `bit4ipki` / `bit4opki`) does with a card,
//! one implementation per profile, speaking the card's own APDUs through a [`Transport`].
//! Flows use only this trait; they never build APDUs.
//!
//! "The PIN" is the holder's view: on the CNS it is both user PIN objects (CNS0 `10` and
//! CNS1 `1A`, issued with the same value), on Oberthur the AWP user PIN `81`. Likewise "the
//! PUK".

pub mod cns;
pub mod guard;
pub mod incrypto34;
pub mod oberthur;

pub use guard::{SecretKind, SecretObject, SecretPolicy};

use crate::Reason;
use crate::transport::{Response, Transport, TransportError};
use crate::wire::{CardModel, Profile, Sw, hex};
use iso7816::command::CommandBuilder;
use iso7816::command::class::Class;
use iso7816::tlv::{Tag, get_data_object, take_data_object};
use rsa::RsaPublicKey;

/// The default PIN of a blank card: after a failed issuance, and what PKI Manager's reset
/// sets (spec/domain.md §1.3, §4).
pub const DEFAULT_PIN: &str = "12345";

/// Which key of the card.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// CNS0 / the AWP exchange key: TLS client authentication and decryption.
    Authentication,
    /// CNS1 / DS: the qualified signature key (nonRepudiation).
    Signature,
}

/// A certificate read from the card.
#[derive(Clone, Debug)]
pub struct CardCert {
    pub role: KeyRole,
    pub der: Vec<u8>,
    /// Where it was read, e.g. `3F00/1400/9010`.
    pub path: String,
}

/// The holder's data a CNS keeps in EF_DatiPersonali.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub issuer_code: String,
    /// `DDMMYYYY`, as the file stores dates.
    pub issue_date: String,
    pub expiry_date: String,
    pub last_name: String,
    pub first_name: String,
    pub birth_date: String,
    pub sex: String,
    pub codice_fiscale: String,
}

/// One PIN or PUK object's counter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Counter {
    pub label: String,
    /// Tries left (`None`: the card does not say, or was not asked).
    pub tries_left: Option<u8>,
    pub blocked: bool,
    /// Why the tries are not known, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Counter {
    /// `PIN CNS1 3`, `PIN CNS1 ?` …
    pub fn short(&self) -> String {
        format!("{} {}", self.label, self.tries_left.map_or("?".into(), |n| n.to_string()))
    }
}

/// What presenting a PIN or PUK gave.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PinOutcome {
    Accepted,
    Wrong { tries_left: u8 },
    Blocked,
}

/// A key generated for renewal, not yet installed.
#[derive(Clone, Debug)]
pub struct StagedKey {
    pub role: KeyRole,
    pub public: RsaPublicKey,
    /// Profile-specific handle (Oberthur: the new object index `nn`).
    pub handle: u8,
}

/// Whether the card has the commands the harness's renewal generates and installs keys with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnCardRenewal {
    Available,
    /// Why not, for the user.
    Unavailable(String),
}

/// A client failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card answered a status word the step cannot continue with.
    #[error("{what}: card answered {sw} ({})", sw.meaning())]
    Card { what: String, sw: Sw },
    /// The card's content is not what the profile expects.
    #[error("{0}")]
    Content(String),
    /// The harness would not send it: a secret at its last try or already rejected in this
    /// run (the [`guard`]).
    #[error("{reason}: {message}")]
    Refused { reason: Reason, message: String },
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A card, as the middleware sees it.
pub trait CardClient {
    fn profile(&self) -> Profile;
    /// What the ATR says: mask, lot, whether the status query is free.
    fn model(&self) -> &CardModel;
    fn atr(&self) -> Vec<u8>;
    fn transport_name(&self) -> String;
    /// The transport underneath, for raw APDUs (scenario files).
    fn transport(&mut self) -> &mut dyn Transport;
    /// What the user allowed for secrets in this run.
    fn policy(&self) -> SecretPolicy;
    fn set_policy(&mut self, policy: SecretPolicy);
    /// Whether the card refused this PIN or PUK earlier in this run.
    fn was_rejected(&self, kind: SecretKind, value: &str) -> bool;
    /// The serial the holder sees (CNS EF_IDCarta; Oberthur CPLC IC serial in hex).
    fn serial(&mut self) -> Result<String>;
    fn certificates(&mut self) -> Result<Vec<CardCert>>;
    /// Personal data stored on the card (CNS EF_DatiPersonali), if any.
    fn holder(&mut self) -> Result<Option<Holder>>;
    /// The life-cycle byte, where the card has one.
    fn life_cycle(&mut self) -> Result<Option<u8>>;
    /// Free EEPROM bytes, where the card reports them.
    fn free_memory(&mut self) -> Result<Option<u32>>;
    /// The user PIN objects' counters (queried only where the query is free).
    fn pin_counters(&mut self) -> Result<Vec<Counter>>;
    fn puk_counters(&mut self) -> Result<Vec<Counter>>;
    /// The counter of the PIN that guards the key of `role`.
    fn signing_pin(&self, role: KeyRole) -> SecretObject;
    fn verify_pin(&mut self, pin: &str) -> Result<PinOutcome>;
    fn change_pin(&mut self, old: &str, new: &str) -> Result<PinOutcome>;
    fn change_puk(&mut self, old: &str, new: &str) -> Result<PinOutcome>;
    fn unblock_pin(&mut self, puk: &str, new_pin: &str) -> Result<PinOutcome>;
    /// PIN length rules of the card (min, max).
    fn pin_length(&self) -> (usize, usize);
    /// Longest PUK the card stores.
    fn puk_max_length(&self) -> usize;
    /// Signs a SHA-256 digest (PKCS#1 v1.5) with a key, presenting the PIN first (the
    /// signature key needs it for every signature), all in one exclusive transaction.
    /// `staged`: the renewal key instead.
    fn sign_sha256(
        &mut self,
        role: KeyRole,
        staged: Option<&StagedKey>,
        digest: &[u8; 32],
        pin: &str,
    ) -> Result<Vec<u8>>;
    /// Generates the renewal key for a role next to the current one.
    fn stage_key(&mut self, role: KeyRole, pin: &str) -> Result<StagedKey>;
    /// Installs a staged key with its certificate; the old key and certificate go.
    fn install(&mut self, staged: &StagedKey, certificate: &[u8], pin: &str) -> Result<()>;
    /// The handle of the renewal key an earlier session generated for `role` and left on the
    /// card, where the card keeps it across sessions until it is installed (the CNS: the
    /// slot's pending key); `None` where it does not. The two-phase renewal (order, then
    /// import) needs it. Nothing is sent: whether the key is there, and is the one a
    /// certificate certifies, a test signature tells.
    fn pending_handle(&self, _role: KeyRole) -> Option<u8> {
        None
    }
    /// Whether the card has the commands the renewal needs, asked without changing it (a read
    /// the card answers or refuses: never a write, never a secret). Oberthur and Incrypto34:
    /// their key generation and file commands are the public ones OpenSC's `pkcs15-init`
    /// uses, so nothing is sent. The CNS: the capability probe ([`cns`]).
    fn on_card_renewal(&mut self) -> Result<OnCardRenewal> {
        Ok(OnCardRenewal::Available)
    }
    /// Repairs what an interrupted renewal left (Oberthur: lists, containers and orphan key
    /// files, from the certificates listed; the CNS commits atomically and needs nothing).
    fn tidy(&mut self, pin: &str) -> Result<()>;
    /// PKI Manager's reset: PIN login, then back to the blank card with the default PIN 12345.
    fn reset(&mut self, pin: &str) -> Result<PinOutcome>;
    /// At the end of a session: clears what this run verified where the card has a command
    /// for it, so the token is left as found (the card is never reset). Oberthur: LOGOUT of
    /// the user PIN. CNS: none exists; the signature key consumes its PIN at every signature,
    /// and the rest lasts until the card is powered off.
    fn logout(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Opens the right client for the card's ATR, with the strict secret policy.
pub fn open(transport: Box<dyn Transport>) -> Result<Box<dyn CardClient>> {
    let atr = transport.atr();
    let model = crate::wire::atr::recognise(&atr);
    match model.profile {
        Some(Profile::Cns) => Ok(Box::new(cns::Cns::new(transport, model))),
        Some(Profile::Oberthur) => Ok(Box::new(oberthur::Oberthur::new(transport, model)?)),
        Some(Profile::Incrypto34) => Ok(Box::new(incrypto34::Incrypto34::new(transport, model))),
        None => Err(ClientError::Content(format!("unknown card (ATR {}): {}", hex::encode(&atr), model.label))),
    }
}

/// Runs `f` with the card held exclusively (one PC/SC transaction): nothing another program
/// sends can come between its commands.
pub(crate) fn atomic<R>(t: &mut dyn Transport, f: impl FnOnce(&mut dyn Transport) -> Result<R>) -> Result<R> {
    crate::transport::atomically(t, f)?
}

/// Room each short APDU of a chain is cut to fit: the header, the widest length fields
/// `iso7816`'s builder sizes a split with, and the 255 data bytes a short Lc carries. Every
/// block but the last thus carries exactly 255 bytes, as OpenSC chains.
const CHAIN_ROOM: usize = 4 + 3 + 255 + 3;

/// A command as the short APDUs that carry it, built with `iso7816`'s [`CommandBuilder`]:
/// one APDU when the data fits 255 bytes, else a chain (`CLA | 10` on every block but the
/// last, which carries `le`). `le`: expected length (256 is written `00`); `None`: no Le.
pub(crate) fn command_apdus(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u16>) -> Result<Vec<Vec<u8>>> {
    let class =
        Class::try_from(cla).map_err(|_| ClientError::Content(format!("{cla:02X} is not an ISO 7816 class byte")))?;
    if u16::try_from(data.len()).is_err() {
        return Err(ClientError::Content(format!("command data of {} bytes: more than a chain carries", data.len())));
    }
    let le = le.map_or(0, |n| n.min(256));
    Ok(CommandBuilder::new_non_extended(class, ins.into(), p1, p2, data, le, Some(CHAIN_ROOM))
        .map(CommandBuilder::serialize_to_vec)
        .collect())
}

/// Sends a command (chained when its data is longer than 255 bytes, all blocks in one
/// exclusive transaction, stopping at the first block the card refuses) and follows
/// 61xx / 6Cxx.
pub(crate) fn send(
    t: &mut dyn Transport,
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &[u8],
    le: Option<u16>,
) -> Result<Response> {
    let apdus = command_apdus(cla, ins, p1, p2, data, le)?;
    let Some((last, blocks)) = apdus.split_last() else {
        return Err(ClientError::Content("empty chain".into()));
    };
    if blocks.is_empty() {
        return Ok(t.exchange(last)?);
    }
    atomic(t, |t| {
        for block in blocks {
            let r = t.exchange(block)?;
            if !r.ok() {
                return Ok(r);
            }
        }
        Ok(t.exchange(last)?)
    })
}

/// `Ok` or a [`ClientError::Card`] naming the step.
pub(crate) fn expect_ok(r: Response, what: &str) -> Result<Vec<u8>> {
    if r.ok() || r.sw == Sw::EndOfFile { Ok(r.data) } else { Err(ClientError::Card { what: what.into(), sw: r.sw }) }
}

/// Maps a VERIFY/CHANGE/RESET answer.
pub(crate) fn pin_outcome(r: &Response, what: &str) -> Result<PinOutcome> {
    match r.sw {
        Sw::Ok => Ok(PinOutcome::Accepted),
        Sw::TriesLeft(n) => Ok(PinOutcome::Wrong { tries_left: n }),
        Sw::AuthBlocked => Ok(PinOutcome::Blocked),
        sw => Err(ClientError::Card { what: what.into(), sw }),
    }
}

/// `value` padded with `pad` to `len` bytes.
pub(crate) fn padded(value: &str, len: usize, pad: u8) -> Vec<u8> {
    let mut v = value.as_bytes().to_vec();
    v.resize(len.max(v.len()), pad);
    v
}

/// The SHA-256 DigestInfo prefix (RFC 8017 §9.2).
pub const SHA256_DIGEST_INFO: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

pub(crate) fn digest_info(digest: &[u8; 32]) -> Vec<u8> {
    let mut v = SHA256_DIGEST_INFO.to_vec();
    v.extend_from_slice(digest);
    v
}

/// The PKCS#1 v1.5 type-01 block of a DigestInfo for a `k`-byte modulus.
pub(crate) fn pkcs1_type1(digest_info: &[u8], k: usize) -> Vec<u8> {
    let mut b = vec![0x00, 0x01];
    b.resize(k.saturating_sub(digest_info.len() + 1), 0xFF);
    b.push(0x00);
    b.extend_from_slice(digest_info);
    b
}

/// Which role a certificate plays: nonRepudiation means the qualified signature key.
pub fn role_of(der: &[u8]) -> Option<KeyRole> {
    use der::Decode;
    use x509_cert::ext::pkix::KeyUsage;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let ku = cert
        .tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == crate::pki::oid::KEY_USAGE)
        .and_then(|e| KeyUsage::from_der(e.extn_value.as_bytes()).ok());
    Some(if ku.is_some_and(|k| k.non_repudiation()) { KeyRole::Signature } else { KeyRole::Authentication })
}

/// An RSA public key from modulus and exponent.
pub(crate) fn rsa_public(modulus: &[u8], exponent: &[u8]) -> Result<RsaPublicKey> {
    let n = rsa::BoxedUint::from_be_slice_vartime(modulus);
    let e = rsa::BoxedUint::from_be_slice_vartime(exponent);
    RsaPublicKey::new(n, e).map_err(|e| ClientError::Content(format!("bad public key from the card: {e}")))
}

/// Parses an ISO 7816-8 public-key template `7F49 { 81 n 82 e }` (BER-TLV, `iso7816::tlv`).
pub(crate) fn parse_public_template(data: &[u8]) -> Result<RsaPublicKey> {
    let bad =
        || ClientError::Content(format!("not a public-key template: {}", hex::encode(data.get(..16).unwrap_or(data))));
    let field = |tag: u8| get_data_object(&[Tag::from_u16(0x7F49), Tag::from_u8(tag)], data).ok_or_else(bad);
    rsa_public(field(0x81)?, field(0x82)?)
}

/// Reads a whole transparent EF with READ BINARY in chunks of `chunk` bytes.
pub(crate) fn read_all(t: &mut dyn Transport, size: usize, chunk: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let off = out.len();
        let n = (size - off).min(chunk);
        let r = send(t, 0x00, 0xB0, (off >> 8) as u8, off as u8, &[], Some(n as u16))?;
        let data = expect_ok(r, what)?;
        if data.is_empty() {
            break;
        }
        out.extend(data);
    }
    Ok(out)
}

/// The data objects inside an FCP or FCI template (`62`/`6F`, BER-TLV), in order.
pub(crate) fn fcp_fields(fcp: &[u8]) -> impl Iterator<Item = (Tag, &[u8])> {
    let mut rest = take_data_object(fcp).map_or(&[][..], |(_, inner, _)| inner);
    std::iter::from_fn(move || {
        let (tag, value, after) = take_data_object(rest)?;
        rest = after;
        Some((tag, value))
    })
}

/// The size in an FCP: tag 80 (or 81), 2 bytes.
pub(crate) fn fcp_size(fcp: &[u8]) -> Option<usize> {
    fcp_fields(fcp).find_map(|(tag, value)| {
        let size = <[u8; 2]>::try_from(value).ok()?;
        (tag == Tag::from_u8(0x80) || tag == Tag::from_u8(0x81)).then(|| usize::from(u16::from_be_bytes(size)))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::hex::{decode, encode};

    #[test]
    fn short_commands_are_one_apdu_and_long_ones_chain_in_255_byte_blocks() {
        let one = |cla, ins, p1, p2, data: &[u8], le| command_apdus(cla, ins, p1, p2, data, le).unwrap();
        assert_eq!(one(0x00, 0xA4, 0x08, 0x0C, &[0x10, 0x00], None), [decode("00A4080C021000").unwrap()]);
        assert_eq!(one(0x00, 0xB0, 0x01, 0x00, &[], Some(256)), [decode("00B0010000").unwrap()]);
        assert_eq!(one(0x80, 0xCA, 0x9F, 0x7F, &[], Some(0x2D)), [decode("80CA9F7F2D").unwrap()]);
        assert_eq!(one(0xB0, 0xF5, 0x00, 0x00, &[], None), [decode("B0F50000").unwrap()]);
        // The CNS signature block: 256 bytes, Le 256.
        let block = [0x5A; 256];
        let chain = one(0x00, 0x2A, 0x9E, 0x9A, &block, Some(256));
        assert_eq!(chain.len(), 2);
        assert_eq!(encode(&chain[0][..5]), "102A9E9AFF");
        assert_eq!(chain[0].len(), 5 + 255, "no Le on a block that is not the last");
        assert_eq!(encode(&chain[1]), "002A9E9A015A00");
        // 600 bytes without Le: 255 + 255 + 90.
        let chain = one(0x00, 0x46, 0x81, 0x10, &[1; 600], None);
        assert_eq!(
            chain.iter().map(|c| (c[0], c[4], c.len())).collect::<Vec<_>>(),
            [(0x10, 0xFF, 260), (0x10, 0xFF, 260), (0x00, 90, 95)]
        );
        assert!(command_apdus(0xFF, 0xA4, 0, 0, &[], None).is_err(), "FF is not a class");
    }

    #[test]
    fn fcp_sizes_and_public_key_templates_are_read_as_ber_tlv() {
        assert_eq!(fcp_size(&decode("620C 8202 0101 8302 1003 8002 0010").unwrap()), Some(16));
        assert_eq!(fcp_size(&decode("62 0A 81 02 0200 82 01 01 83 01 01").unwrap()), Some(512));
        assert_eq!(fcp_size(&decode("6204 82020138").unwrap()), None, "a DF has no size");
        assert_eq!(fcp_size(&decode("620A 8002 00").unwrap()), None, "truncated");
        let n = [0xC3u8; 128];
        let mut t = decode("7F49 8188 818180").unwrap();
        t.extend(n);
        t.extend(decode("8203 010001").unwrap());
        let key = parse_public_template(&t).unwrap();
        assert_eq!(rsa::traits::PublicKeyParts::n(&key).to_be_bytes_trimmed_vartime().as_ref(), &n);
        assert!(parse_public_template(&decode("7F49 03 820101").unwrap()).is_err(), "no modulus");
    }
}
