//! The card: bytes in, bytes out.
//!
//! [`Card::transmit`] takes a command APDU and returns the response APDU (data ‖ SW1 SW2) as a
//! slice of the card's own reply buffer. On the non-crypto path (SELECT, READ BINARY, VERIFY,
//! GET DATA …) nothing is allocated: buffers are bounded and live in the card.
//!
//! The engine holds no card fact: everything a card decides is asked of its
//! [`Profile`]. It is one `impl Card` in four rooms:
//! * `apdu_layer.rs`: class, command chaining, GET RESPONSE, Le shaping, parsing by the profile;
//! * `files.rs`: SELECT, binary and record files, CREATE/DELETE FILE;
//! * `pins.rs`: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, CREATE PIN, LOGOUT, ERASE;
//! * `keys.rs`: security environment, signatures, decipher, key generation and commit, behind
//!   one key-backend interface ([`PrivateKey`](crate::keys::PrivateKey)).
//!
//! State is split in two (spec/cards.md §1.1):
//! * persistent: the [`CardImage`] (files, PINs and counters, keys, life-cycle);
//! * volatile: one `Volatile` value (current DF/EF, verified PINs, security environment,
//!   chaining buffer, pending GET RESPONSE data), replaced whole by [`Card::power_off`],
//!   [`Card::power_on`] and [`Card::reset`].

mod apdu_layer;
mod files;
mod keys;
mod pins;

use crate::apdu::{MAX_RESPONSE_DATA, Reply};
use crate::command::{Command, DataObject, KeySelector, SecOp};
use crate::fs::{AccessCondition, FileNode, MF, Path};
use crate::image::{CardImage, ProfileKind};
use crate::keys::{Algorithm, Backend, PublicKey};
use crate::profile::{Ctx, Profile};
use crate::rng::CardRng;
use crate::security::Verified;
use crate::sw::Sw;
use heapless::Vec as HVec;
use rand_core::Rng;

/// Reply buffer: the largest response data plus SW1 SW2.
pub const REPLY_CAPACITY: usize = MAX_RESPONSE_DATA + 2;

type Result<T = ()> = core::result::Result<T, Sw>;

/// What the last MSE SET chose.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct SecurityEnvironment {
    op: SecOp,
    key: KeySelector,
}

/// The part of the session a command can change that outlives it: what [`Card::restore`]
/// puts back after a command whose writes failed.
#[derive(Clone)]
struct Session {
    df: Path,
    ef: Option<u16>,
    verified: Verified,
    se: Option<SecurityEnvironment>,
}

/// Session state: everything a power-off, power-on or warm reset forgets, in one value.
struct Volatile {
    df: Path,
    ef: Option<u16>,
    verified: Verified,
    se: Option<SecurityEnvironment>,
    chain: apdu_layer::Chain,
    pending: apdu_layer::Pending,
    /// Where a file listing in progress stands (`Ctx::listing`).
    listing: u16,
}

impl Volatile {
    /// A fresh session: the MF selected, nothing verified, no environment, no chain, nothing
    /// to fetch.
    fn fresh() -> Self {
        let mut df = Path::new();
        let _ = df.push(MF);
        Volatile {
            df,
            ef: None,
            verified: Verified::default(),
            se: None,
            chain: apdu_layer::Chain::default(),
            pending: apdu_layer::Pending::default(),
            listing: 0,
        }
    }

    fn session(&self) -> Session {
        Session { df: self.df.clone(), ef: self.ef, verified: self.verified, se: self.se }
    }
}

/// What the last command made the card do besides answering: what a latency model charges
/// (`timing.rs`) and what the invariant checks allow (`invariants.rs`). Set only when the
/// command succeeded.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the answer.
    #[default]
    None,
    /// A private-key operation (PSO COMPUTE DIGITAL SIGNATURE, PSO DECIPHER).
    PrivateKeyOperation,
    /// An on-card key generation.
    KeyGeneration,
    /// PIN counters restored by an administrative command rather than by presenting that PIN
    /// or its PUK: ERASE, CREATE PIN, an unblock with the code of a PUK file.
    CredentialsReset,
}

/// The virtual card.
pub struct Card {
    profile: &'static dyn Profile,
    image: CardImage,
    rng: CardRng,
    vol: Volatile,
    /// Response data of the command being executed.
    reply: Reply,
    /// The response APDU handed out by [`Card::transmit`].
    wire: HVec<u8, REPLY_CAPACITY>,
    keys: keys::KeyCache,
    changed: bool,
    effect: Effect,
    /// Whether the last response's data came from a secret file.
    secret_reply: bool,
    /// The session as it was when the last command arrived.
    before: Session,
}

impl Card {
    pub fn new(image: CardImage, rng: CardRng) -> Self {
        let vol = Volatile::fresh();
        Card {
            profile: image.profile.profile(),
            image,
            rng,
            before: vol.session(),
            vol,
            reply: Reply::new(),
            wire: HVec::new(),
            keys: keys::KeyCache::default(),
            changed: false,
            effect: Effect::None,
            secret_reply: false,
        }
    }

    /// Undoes the last command after its writes failed: `image` (the last saved state, from
    /// before that command) becomes the card's persistent state again, and the session is put
    /// back as it was before the command. The RNG and the crypto backend stay.
    ///
    /// This is what a card does when an EEPROM write fails: its anti-tearing journal restores
    /// the old content, the command answers `6581` and has no effect, and the card stays
    /// powered, so its RAM (selected DF and EF, verified PINs, security environment) keeps
    /// what it held before the command, never what the failed command set (a PIN a failed
    /// VERIFY presented is not verified). A command chain in progress and response data not
    /// yet fetched are gone (the failed command ended them). Hosts call this when their save
    /// fails ([`HostedCard`](crate::vpcd::HostedCard)).
    pub fn restore(&mut self, image: CardImage) {
        self.profile = image.profile.profile();
        self.image = image;
        self.keys.forget();
        let Session { df, ef, verified, se } = self.before.clone();
        let mut vol = Volatile::fresh();
        // The DF and EF of the session exist in the image of before the command; checked all
        // the same, so a caller's other image cannot leave the card in a missing DF.
        if let Some(node) = crate::fs::lookup(&self.image.mf, &df)
            && node.is_df()
        {
            vol.ef = ef.filter(|f| node.child(*f).is_some_and(|c| !c.is_df()));
            vol.df = df;
        }
        vol.verified = verified;
        vol.se = se;
        self.vol = vol;
        self.before = self.vol.session();
        self.reply.clear();
        self.wire.clear();
        self.changed = false;
        self.effect = Effect::None;
        self.secret_reply = false;
    }

    /// The persistent state.
    pub fn image(&self) -> &CardImage {
        &self.image
    }

    pub fn into_image(self) -> CardImage {
        self.image
    }

    pub fn atr(&self) -> &[u8] {
        &self.image.atr.0
    }

    /// Which profile the card is (for hosts).
    pub fn profile(&self) -> ProfileKind {
        self.image.profile
    }

    /// Chooses the implementation of private-key operations.
    pub fn set_backend(&mut self, backend: Backend) {
        self.keys.set_backend(backend);
    }

    /// The implementation of private-key operations in use.
    pub fn backend(&self) -> Backend {
        self.keys.backend()
    }

    pub fn rng_is_deterministic(&self) -> bool {
        self.rng.is_deterministic()
    }

    /// Whether persistent state changed since the last call (the host then saves the image
    /// before it forwards the response).
    pub fn take_changed(&mut self) -> bool {
        core::mem::take(&mut self.changed)
    }

    /// What the last [`Card::transmit`] made the card do besides answering.
    pub fn last_effect(&self) -> Effect {
        self.effect
    }

    /// Whether the data of the last response is secret: read from a file the profile says
    /// holds a secret ([`Profile::secret_files`]: Oberthur's PUK file), directly or through
    /// GET RESPONSE. Hosts mask such data in logs.
    pub fn last_reply_secret(&self) -> bool {
        self.secret_reply
    }

    /// Power off: all volatile state is lost.
    pub fn power_off(&mut self) {
        self.clear_volatile();
    }

    /// Power on: the card starts with the MF selected and nothing verified.
    pub fn power_on(&mut self) {
        self.clear_volatile();
    }

    /// Warm reset: same effect as a power cycle on the security state.
    pub fn reset(&mut self) {
        self.clear_volatile();
    }

    /// The one place volatile state is reset.
    fn clear_volatile(&mut self) {
        self.vol = Volatile::fresh();
    }

    /// The status word a genuine mask answers to a command only firmalab's convenience card
    /// has, when this card lacks that [`Extension`](crate::image::Extension).
    fn missing_extension(&self, command: &Command<'_>) -> Option<Sw> {
        use crate::command::KeyGen;
        use crate::image::Extension;
        let has = |e| self.image.has(e);
        match command {
            Command::GenerateKeyPair(KeyGen::Slot { pending: true, .. }) | Command::CommitKey { .. }
                if !has(Extension::PendingKey) =>
            {
                Some(Sw::WrongP1P2)
            }
            Command::MseSet { key: KeySelector::Pending(_), .. } if !has(Extension::PendingKey) => Some(Sw::WrongData),
            Command::GetData(DataObject::Extensions) if !has(Extension::CapabilityProbe) => {
                Some(Sw::ReferencedDataNotFound)
            }
            _ => None,
        }
    }

    /// Executes a parsed command: one arm per variant, no catch-all.
    fn execute(&mut self, command: Command<'_>) -> Result<Sw> {
        match command {
            Command::Select(s) => self.select(s),
            Command::ReadBinary { offset, le } => self.read_binary(offset, le),
            Command::UpdateBinary { offset, data } => self.update_binary(offset, data),
            Command::ReadRecord { record, le } => self.read_record(record, le),
            Command::UpdateRecord { record, data } => self.write_record(Some(record), data),
            Command::AppendRecord { data } => self.write_record(None, data),
            Command::DeleteRecord { record } => self.delete_record(record),
            Command::Verify { pin, data } => self.verify(pin, data),
            Command::ChangeReferenceData { pin, data } => self.change_reference_data(pin, data),
            Command::ResetRetryCounter { pin, proof, new_pin } => self.reset_retry_counter(pin, proof, new_pin),
            Command::CreatePin { pin, tries, value } => self.create_pin(pin, tries, value),
            Command::Logout { pin } => self.logout(pin),
            Command::MseRestore { se } => self.mse_restore(se),
            Command::MseSet { op, key } => self.mse_set(op, key),
            Command::ComputeSignature { input, padding } => self.compute_signature(input, padding),
            Command::Decipher { input, unpad } => self.decipher(input, unpad),
            Command::GetChallenge { len } => {
                let rng = &mut self.rng;
                self.reply.fill(len, |buf| rng.fill_bytes(buf))?;
                Ok(Sw::Ok)
            }
            Command::GetData(DataObject::LifeCycle) => {
                self.reply.push(&[self.image.life_cycle.byte()])?;
                Ok(Sw::Ok)
            }
            Command::GetData(DataObject::Cplc) => {
                let cplc = self.image.cplc.as_ref().ok_or(Sw::ReferencedDataNotFound)?;
                // GlobalPlatform tag 9F7F, written by hand for the reason given in
                // `profile::public_key_template`.
                self.reply.push(&[0x9F, 0x7F, u8::try_from(cplc.0.len())?])?;
                self.reply.push(&cplc.0)?;
                Ok(Sw::Ok)
            }
            Command::GetData(DataObject::Extensions) => {
                let bits = self.image.extensions.iter().fold(0u8, |b, e| b | e.bit());
                self.reply.push(&crate::image::PROBE_MAGIC)?;
                self.reply.push(&[0x01, bits])?;
                Ok(Sw::Ok)
            }
            Command::GetResponse { le } => self.get_response(le),
            Command::GenerateKeyPair(spec) => self.generate_key_pair(spec),
            Command::CommitKey { key, certificate } => self.commit_key(key, certificate),
            Command::CreateFile(spec) => self.create_file(spec),
            Command::DeleteFile { fid, df } => self.delete_file(fid, df),
            Command::EraseCard => self.erase_card(),
            Command::Own(apdu) => {
                let profile = self.profile;
                profile.execute_own(self, &apdu)
            }
        }
    }
}

/// The rooms' view of the card for profile hooks and own commands.
impl Ctx for Card {
    fn image(&self) -> &CardImage {
        &self.image
    }

    fn image_mut(&mut self) -> &mut CardImage {
        self.changed = true;
        self.keys.forget();
        &mut self.image
    }

    fn current_path(&self) -> &[u16] {
        &self.vol.df
    }

    fn current_df(&self) -> Result<&FileNode> {
        files::current_df(&self.image, &self.vol)
    }

    fn current_ef(&self) -> Result<&FileNode> {
        files::current_ef(&self.image, &self.vol)
    }

    fn require(&self, ac: AccessCondition) -> Result {
        files::require(&self.image, &self.vol, ac)
    }

    fn pin_verified(&self, index: usize) -> bool {
        self.vol.verified.get(index)
    }

    fn public_key(&mut self, reference: u8) -> Result<PublicKey> {
        let ki = self.key_index(reference).ok_or(Sw::ReferencedDataNotFound)?;
        self.keys.get(&self.image, ki, reference, false)?.public()
    }

    fn generate_key(&mut self, reference: u8, algorithm: Algorithm) -> Result<PublicKey> {
        let ki = self.key_index(reference).ok_or(Sw::ReferencedDataNotFound)?;
        self.generate_into(ki, algorithm, false)
    }

    fn listing(&mut self) -> &mut u16 {
        &mut self.vol.listing
    }

    fn reply(&mut self) -> &mut Reply {
        &mut self.reply
    }
}
