//! Card profiles: every fact that differs between cards lives behind one interface,
//! [`Profile`], one implementation per card (`cns.rs`, `oberthur.rs`). The card engine
//! (`card/`), the image (`image.rs`), the personalisation (`perso.rs`) and the ATR table ask a
//! profile; none of them looks at which card it is.
//!
//! * [`ProfileKind::profile`] is the one place a [`ProfileKind`] (the image's schema tag) maps
//!   to its implementation, and [`ProfileKind::ALL`] the one list of profiles.
//! * Commands: a profile parses its own arms and hands the rest to the ISO arms of [`iso`],
//!   decoded once for every card; its hooks give those arms the card's facts (PIN references,
//!   PSO padding, GET DATA objects). A command only one card has that the engine does not
//!   model is [`Command::Own`], executed by the profile through [`Ctx`].
//! * Profiles depend on the data model (`image`, `fs`, `security`, `keys`, `perso`) and on
//!   [`Ctx`], never on the engine; they never import each other.

pub mod cns;
pub mod incrypto34;
pub mod iso;
pub mod oberthur;

use crate::apdu::{Apdu, Class, Reply};
use crate::command::{Command, DataObject, PinRef, SignPadding};
use crate::fs::{AccessCondition, Acl, FileNode};
use crate::hex::{Hex8, Hex16};
use crate::image::CardImage;
pub use crate::image::ProfileKind;
use crate::keys::{Algorithm, KeyObject, PublicKey};
use crate::perso::Personalization;
use crate::security::PinObject;
use crate::sw::Sw;
use iso7816::command::DataStream;
use iso7816::tlv::{Tag, Tlv, take_data_object};

impl ProfileKind {
    /// Every profile, in the order ATRs are recognised and names listed.
    pub const ALL: [ProfileKind; 3] = [ProfileKind::Cns, ProfileKind::Oberthur, ProfileKind::Incrypto34];

    /// The card facts of this profile: the one mapping from the image's tag to its profile.
    pub fn profile(self) -> &'static dyn Profile {
        match self {
            ProfileKind::Cns => &cns::Cns,
            ProfileKind::Oberthur => &oberthur::Oberthur,
            ProfileKind::Incrypto34 => &incrypto34::Incrypto34,
        }
    }

    /// The name images, the command line and transcripts use (`cns`, `oberthur`).
    pub fn name(self) -> &'static str {
        self.profile().name()
    }
}

impl std::str::FromStr for ProfileKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(kind) = ProfileKind::ALL.into_iter().find(|k| k.name() == s) {
            return Ok(kind);
        }
        let names: Vec<&str> = ProfileKind::ALL.iter().map(|k| k.name()).collect();
        let expected = match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(format!("unknown profile {s:?} (expected {expected})"))
    }
}

/// Which command addresses a PIN: VERIFY, CHANGE REFERENCE DATA or RESET RETRY COUNTER
/// (some cards number the same PIN differently per command, spec/cards.md §2.6).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PinOp {
    Verify,
    Change,
    Unblock,
}

/// What selecting an application by AID does on a profile.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Application {
    /// Selected; the file-system position does not change (the GP card manager).
    Other,
    /// The file-system application: the MF becomes the current DF.
    FileSystem,
}

/// What an ATR says about a card: the profile firmalab emulates for it, if any, and a label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recognised {
    pub profile: Option<ProfileKind>,
    pub label: String,
}

/// A file that holds a PIN object's secret in another form: Oberthur's AWP PUK file
/// `5011/2000`, the unblock code RESET RETRY COUNTER takes (spec/cards.md §2.6). The card
/// rewrites it whenever that PIN object gets a new value (so the code always belongs to the
/// current PUK), hosts mask what is read from it ([`Card::last_reply_secret`]), and the
/// invariant checks count its content as that PIN's secret.
///
/// [`Card::last_reply_secret`]: crate::card::Card::last_reply_secret
#[derive(Copy, Clone, Debug)]
pub struct SecretFile {
    /// Path from the MF.
    pub path: &'static [u16],
    /// Reference of the PIN object whose value it holds.
    pub pin: u8,
    /// The file's content for a value (the file keeps the size it was created with: a longer
    /// file is zero-filled after it, a shorter one holds its first bytes).
    pub encode: fn(&str) -> Vec<u8>,
}

/// Every fact of one card. The engine executes typed commands and asks the profile whatever
/// the card decides; a hook with a default is a rule most cards share (overriding it is how
/// a card differs).
pub trait Profile: Sync {
    // ---- identity ----

    fn kind(&self) -> ProfileKind;
    /// The name in images and on the command line.
    fn name(&self) -> &'static str;
    /// The ATR of a card personalised without an explicit one.
    fn default_atr(&self) -> &'static [u8];
    /// What this profile's OpenSC driver makes of an ATR: `Some` when it claims the card
    /// (`profile: None` for a relative it recognises but firmalab does not emulate).
    fn recognise(&self, atr: &[u8]) -> Option<Recognised>;

    // ---- command layer ----

    /// The base class bytes (chaining bit removed) the card answers; others get `6E00`.
    fn classes(&self) -> &'static [u8];
    /// Reads a class byte: base class and chaining, or the status word refusing it. The
    /// default is the ISO rule ([`Class::iso`]) and [`Profile::classes`]; a card whose
    /// proprietary class has b5 set without meaning chaining overrides it.
    fn class(&self, cla: u8) -> Result<Class, Sw> {
        let class = Class::iso(cla)?;
        if self.classes().contains(&class.base) { Ok(class) } else { Err(Sw::ClaNotSupported) }
    }
    /// Decodes an APDU whose class is already its base class: the profile's own arms, then
    /// [`iso::parse`] for everything else. The error is the status word to answer.
    fn parse<'a>(&self, apdu: &Apdu<'a>) -> Result<Command<'a>, Sw>;
    /// The PIN a P2 names in an ISO PIN command (`6A86` when it names none).
    fn pin_ref(&self, p2: u8, op: PinOp) -> Result<PinRef, Sw>;
    /// Who pads PSO input: [`SignPadding::Raw`] (the host sends the full block, and the
    /// decipher input carries an ISO padding indicator) or [`SignPadding::Pkcs1`] (the card pads
    /// and unpads).
    fn pso_padding(&self) -> SignPadding;
    /// The GET DATA object at `class P1 P2`, if the card has one there (else `6A88`).
    fn data_object(&self, cla: u8, p1: u8, p2: u8) -> Option<DataObject>;
    /// Executes a [`Command::Own`] this profile's parser produced.
    fn execute_own(&self, _ctx: &mut dyn Ctx, _apdu: &Apdu<'_>) -> Result<Sw, Sw> {
        Err(Sw::InsNotSupported)
    }

    // ---- files ----

    /// The FCP SELECT returns for a file (P2 = `00`/`04`).
    fn fcp(&self, image: &CardImage, node: &FileNode) -> Result<Fcp, Sw>;
    /// The applications the card answers to by AID, besides DFs that carry a name.
    fn application(&self, _aid: &[u8]) -> Option<Application> {
        None
    }
    /// The FCI of an [`Application::Other`] selected with P2 asking for it: ISO 7816-4 §5.3.3
    /// `6F { 84 AID }`.
    fn fci(&self, aid: &[u8], reply: &mut Reply) -> Result<(), Sw> {
        reply.tlv(Tag::from_u8(0x6F), Tlv::new(DF_NAME, aid))
    }

    // ---- PINs ----

    /// What a PIN or PUK object of this card holds: charset, lengths, padding. Images and
    /// `image new` are checked against it.
    fn pin_rule(&self) -> crate::image::PinRule;
    /// The status word of a wrong PIN or PUK that leaves `tries_left` tries, and of the
    /// status query (VERIFY without data) of a PIN not verified (ISO `63Cx`).
    fn wrong_secret(&self, tries_left: u8) -> Sw {
        Sw::TriesLeft(tries_left)
    }
    /// The PIN object CREATE PIN defines when `reference` does not exist yet in the current
    /// DF `home`, after checking `tries` (`6A80`). Cards without CREATE PIN never parse it.
    fn new_pin(&self, _reference: u8, _tries: u8, _home: Vec<Hex16>) -> Result<PinObject, Sw> {
        Err(Sw::InsNotSupported)
    }
    /// Files that hold a PIN object's secret in another form (the Oberthur AWP PUK file).
    fn secret_files(&self) -> &'static [SecretFile] {
        &[]
    }

    // ---- security environment and keys ----

    /// MSE RESTORE of security environment `se` in the session's current DF: `Ok` when the
    /// card has it there (else `6A88`).
    fn restore_se(&self, _ctx: &dyn Ctx, _se: u8) -> Result<(), Sw> {
        Err(Sw::ReferencedDataNotFound)
    }
    /// The key object a new key EF (`fid`, `bits`, `acl`) brings with it when its key
    /// reference is new. Cards whose parser creates no key EFs never ask.
    fn key_file_object(&self, _image: &CardImage, _fid: u16, _bits: u16, _acl: Acl) -> Result<KeyObject, Sw> {
        Err(Sw::WrongData)
    }
    /// The answer to GENERATE KEY PAIR, given the new public key.
    fn keygen_reply(&self, public: &PublicKey, reply: &mut Reply) -> Result<(), Sw>;
    /// Access rules of a certificate EF a key commit creates, the key's PIN being `pin`.
    fn certificate_acl(&self, _pin: Hex8) -> Result<Acl, Sw> {
        Err(Sw::ConditionsNotSatisfied)
    }

    // ---- administration ----

    /// The card's ERASE: who may (`6982` otherwise) and what goes; the card then forgets the
    /// session.
    fn erase(&self, _ctx: &mut dyn Ctx) -> Result<(), Sw> {
        Err(Sw::InsNotSupported)
    }
    /// Where the card keeps its serial, as hosts show it.
    fn serial(&self, image: &CardImage) -> Option<String>;
    /// Rules of an image of this profile beyond the generic ones (`image.rs`).
    fn validate(&self, _image: &CardImage) -> Result<(), String> {
        Ok(())
    }
    /// The card an issuer personalises: file tree, PINs and keys in this card's layout.
    fn personalize(&self, p: &Personalization) -> Result<CardImage, String>;
    /// The algorithm of the keys an issuer generates for this card (RSA-2048 unless the
    /// chip cannot hold them).
    fn key_algorithm(&self) -> Algorithm {
        Algorithm::Rsa2048
    }
}

/// What profile hooks and [`Command::Own`] handlers may use of the card: its image, the
/// session (current DF/EF, verified PINs, access conditions), the key backend and the reply.
/// The card implements it; profiles never see the engine.
pub trait Ctx {
    fn image(&self) -> &CardImage;
    /// The image for writing: the card counts as changed (its host saves it) and forgets the
    /// keys it parsed.
    fn image_mut(&mut self) -> &mut CardImage;
    /// The current DF's path from the MF (the MF's FID first).
    fn current_path(&self) -> &[u16];
    fn current_df(&self) -> Result<&FileNode, Sw>;
    /// `6986` when no EF is selected.
    fn current_ef(&self) -> Result<&FileNode, Sw>;
    /// `6982` unless the access condition is met in this session.
    fn require(&self, ac: AccessCondition) -> Result<(), Sw>;
    /// Whether PIN object `index` of the image is verified in this session.
    fn pin_verified(&self, index: usize) -> bool;
    /// The public half of key `reference`, from the key backend (`6A88` when absent).
    fn public_key(&mut self, reference: u8) -> Result<PublicKey, Sw>;
    /// Generates a key pair of `algorithm` into key object `reference` (`6A88` when absent),
    /// within the card's EEPROM and capabilities, and reports a key generation; the public
    /// half for the answer. Whether the session may do it is the caller's check.
    fn generate_key(&mut self, reference: u8, algorithm: Algorithm) -> Result<PublicKey, Sw>;
    /// Where a file listing in progress stands (an index into the current DF's children):
    /// session state, gone with every power event.
    fn listing(&mut self) -> &mut u16;
    fn reply(&mut self) -> &mut Reply;
}

/// Recognises an ATR the way OpenSC 0.23 would (spec/cards.md §2.1 exact table, §3.1 CNS
/// structural rule), asking every profile.
pub fn recognise(atr: &[u8]) -> Recognised {
    ProfileKind::ALL
        .iter()
        .find_map(|k| k.profile().recognise(atr))
        .unwrap_or_else(|| Recognised { profile: None, label: "unknown card".into() })
}

impl Personalization {
    /// The image of a freshly personalised card, in the layout of its profile, checked
    /// (image rules, EEPROM capacity).
    pub fn build(&self) -> Result<CardImage, String> {
        let image = self.profile.profile().personalize(self)?;
        image.validate()?;
        if image.eeprom_used() > image.capacity {
            return Err(format!(
                "the personalisation needs {} bytes of EEPROM, the card has {}",
                image.eeprom_used(),
                image.capacity
            ));
        }
        Ok(image)
    }
}

// ---- shared encodings: FCP templates (ISO 7816-4 §5.3.3) and public keys (ISO 7816-8) ----

/// Longest FCP template a profile produces (DF with a 16-byte AID and a 9-byte ACL).
pub const FCP_MAX: usize = 64;

/// An FCP being built, on the stack.
pub type Fcp = heapless::Vec<u8, FCP_MAX>;

/// FCP template (ISO 7816-4 §5.3.3, table 12).
pub const FCP: Tag = Tag::from_u8(0x62);
/// Number of data bytes in the file.
pub const FILE_SIZE: Tag = Tag::from_u8(0x80);
/// Number of bytes the file occupies.
pub const TOTAL_SIZE: Tag = Tag::from_u8(0x81);
pub const DESCRIPTOR: Tag = Tag::from_u8(0x82);
pub const FILE_ID: Tag = Tag::from_u8(0x83);
pub const DF_NAME: Tag = Tag::from_u8(0x84);
/// Proprietary information.
pub const PROPRIETARY: Tag = Tag::from_u8(0x85);
/// Security attributes in proprietary format.
pub const SECURITY: Tag = Tag::from_u8(0x86);

/// Appends a TLV to an FCP being built.
pub(crate) fn tlv<S: DataStream<Fcp>>(out: &mut Fcp, tag: Tag, value: S) -> Result<(), Sw> {
    Ok(Tlv::new(tag, value).to_writer(out)?)
}

/// Wraps TLVs in the `62 L` FCP template.
pub(crate) fn template(inner: &Fcp) -> Result<Fcp, Sw> {
    let mut out = Fcp::new();
    tlv(&mut out, FCP, inner.as_slice())?;
    Ok(out)
}

/// Visits the TLVs inside a `62 L` FCP template (CREATE FILE data): `6A80` when it is not
/// exactly one template of well-formed TLVs.
pub(crate) fn fcp_fields(data: &[u8], mut f: impl FnMut(Tag, &[u8]) -> Result<(), Sw>) -> Result<(), Sw> {
    let mut inner = match take_data_object(data) {
        Some((FCP, inner, [])) => inner,
        _ => return Err(Sw::WrongData),
    };
    while !inner.is_empty() {
        let (tag, value, rest) = take_data_object(inner).ok_or(Sw::WrongData)?;
        f(tag, value)?;
        inner = rest;
    }
    Ok(())
}

/// A FID or size field of CREATE FILE data as u16.
pub(crate) fn be16(v: &[u8]) -> Result<u16, Sw> {
    match *v {
        [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
        [lo] => Ok(u16::from(lo)),
        _ => Err(Sw::WrongData),
    }
}

/// ISO 7816-8 public-key template `7F49 { 81 n, 82 e }` or `7F49 { 86 point }`.
pub fn public_key_template(public: &PublicKey, reply: &mut Reply) -> Result<(), Sw> {
    // iso7816 0.2.2 checks the wrong byte of a two-byte tag when serialising it (a debug
    // assertion fires for 7F49), so the tag's first byte is written here and the rest is a
    // one-byte-tag TLV: same bytes.
    reply.push(&[0x7F])?;
    let tag = Tag::from_u8(0x49);
    match public {
        PublicKey::Rsa { modulus, exponent } => reply.tlv(
            tag,
            (Tlv::new(Tag::from_u8(0x81), modulus.as_slice()), Tlv::new(Tag::from_u8(0x82), exponent.as_slice())),
        ),
        PublicKey::EcP256 { point } => reply.tlv(tag, Tlv::new(Tag::from_u8(0x86), point.as_slice())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_registered_once_under_its_own_name_and_atr() {
        for kind in ProfileKind::ALL {
            let p = kind.profile();
            assert_eq!(p.kind(), kind, "ProfileKind::profile maps {} to another profile", kind.name());
            assert_eq!(kind.name().parse::<ProfileKind>(), Ok(kind));
            assert_eq!(recognise(p.default_atr()).profile, Some(kind), "{} does not recognise its ATR", kind.name());
            assert!(!p.classes().is_empty());
        }
        let names: Vec<&str> = ProfileKind::ALL.iter().map(|k| k.name()).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique);
        assert_eq!(
            "gemalto".parse::<ProfileKind>(),
            Err("unknown profile \"gemalto\" (expected cns, oberthur or incrypto34)".into())
        );
    }

    #[test]
    fn the_iso_class_rule_and_a_profile_s_classes_decide_together() {
        let cns = ProfileKind::Cns.profile();
        assert_eq!(cns.class(0x10), Ok(Class { base: 0x00, chained: true }));
        assert_eq!(cns.class(0xB0), Ok(Class { base: 0xB0, chained: false }));
        assert_eq!(cns.class(0x80), Err(Sw::ClaNotSupported));
        assert_eq!(cns.class(0x0C), Err(Sw::SecureMessagingNotSupported));
        let oberthur = ProfileKind::Oberthur.profile();
        assert_eq!(oberthur.class(0x90), Ok(Class { base: 0x80, chained: true }));
        assert_eq!(oberthur.class(0xB0), Err(Sw::ClaNotSupported));
    }

    #[test]
    fn fcp_fields_walk_one_template_of_ber_tlvs() {
        let mut seen = vec![];
        let ok = fcp_fields(&[0x62, 0x07, 0x80, 0x02, 0x00, 0x05, 0x82, 0x01, 0x01], |t, v| {
            seen.push((t, v.to_vec()));
            Ok(())
        });
        assert_eq!(ok, Ok(()));
        assert_eq!(seen, vec![(FILE_SIZE, vec![0x00, 0x05]), (DESCRIPTOR, vec![0x01])]);
        for bad in
            [&[0x62, 0x03, 0x80, 0x02, 0x00][..], &[0x62, 0x01, 0x80, 0x00], &[0x6F, 0x00], &[0x62, 0x00, 0x00], &[]]
        {
            assert_eq!(fcp_fields(bad, |_, _| Ok(())), Err(Sw::WrongData), "{bad:02X?}");
        }
    }

    #[test]
    fn public_key_template_is_the_iso_7816_8_encoding() {
        let mut reply = Reply::new();
        let public = PublicKey::Rsa { modulus: vec![0xAB; 256], exponent: vec![1, 0, 1] };
        assert_eq!(public_key_template(&public, &mut reply), Ok(()));
        let r = reply.as_slice();
        assert_eq!(&r[..9], &[0x7F, 0x49, 0x82, 0x01, 0x09, 0x81, 0x82, 0x01, 0x00]);
        assert_eq!(&r[r.len() - 5..], &[0x82, 0x03, 0x01, 0x00, 0x01]);
        let mut reply = Reply::new();
        assert_eq!(public_key_template(&PublicKey::EcP256 { point: vec![4; 65] }, &mut reply), Ok(()));
        assert_eq!(&reply.as_slice()[..5], &[0x7F, 0x49, 0x43, 0x86, 0x41]);
    }
}
