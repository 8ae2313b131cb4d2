//! The invariants a card must keep whatever it is sent, checked after every step. Shared by
//! the property tests and the fuzz targets, which differ only in where the steps come from.
//! No command is exempt from any of them.
//!
//! * **Replies**: every response ends in a status word ISO 7816-4 §5.6 defines; carries data
//!   only with success or a warning (`9000`, `61xx`, `62xx`, `63xx`), at most Ne bytes of it
//!   (256 for a short APDU without Le, 4096 for an extended one), within the reply buffer.
//! * **Private keys**: no response contains 8 consecutive bytes of any private component of
//!   any key the card holds or held (d, p, q, dP, dQ, qInv of an RSA key, the scalar of a
//!   P-256 key; active and pending keys). Every 8-byte window of every component is in a hash
//!   set behind a bitmap: a response costs one bit test per byte, the sets are asked only
//!   about the blocks that hit.
//! * **Image**: the image stays valid (file tree, PIN and key references, capacity): checked
//!   after every command that changed persistent state and at the end.
//! * **PIN and PUK objects**: a counter rises, a value changes or a counter falls only for a
//!   reason: the command carried that object's secret (its padded value, or the content of a
//!   file holding it, [`Profile::secret_files`]), or the
//!   secret of the PUK that unblocks it; or the card reports an administrative reset
//!   ([`Effect::CredentialsReset`]: ERASE, CREATE PIN) made with the authority verified
//!   before the command (the SO PIN for any object, a user PIN for user PINs only). A blocked
//!   PUK never rises, whatever the command.
//! * **Secret-bearing commands** (VERIFY with data, CHANGE REFERENCE DATA, RESET RETRY
//!   COUNTER; chained blocks reassembled): `9000` means the data carried the right secret of an
//!   object the command names, not blocked before, and its counter is full after; `63Cx`
//!   means exactly one counter fell, by one, to `x`, and nothing else of any PIN object
//!   changed; `6983` means nothing of any PIN object changed.
//! * at the end, an image save/load round trip gives the live state back (when the session
//!   changed it).
//!
//! Steps come as frames: `kind (1 byte) ‖ length (2 bytes, big endian) ‖ bytes`, kind `0` an
//! APDU, `1` a power cycle, `2` a warm reset; a truncated frame ends the sequence. Flow
//! transcripts become seed inputs this way (`firmalab fixtures fuzz-corpus`).

use crate::apdu::{Apdu, MAX_RESPONSE_DATA};
use crate::card::{Card, Effect, REPLY_CAPACITY};
use crate::fs::FileBody;
use crate::image::CardImage;
use crate::keys::{KeyMaterial, LoadedKey};
use crate::profile::{Ctx, PinOp, Profile};
use crate::rng::CardRng;
use crate::security::{PinObject, PinRole};
use rsa::traits::PrivateKeyParts;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

/// One step of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Apdu(Vec<u8>),
    PowerCycle,
    Reset,
}

/// Decodes framed steps (see the module documentation).
pub fn decode(mut data: &[u8]) -> Vec<Op> {
    let mut ops = vec![];
    while let [kind, hi, lo, rest @ ..] = data {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(bytes) = rest.get(..len) else { break };
        ops.push(match kind % 3 {
            0 => Op::Apdu(bytes.to_vec()),
            1 => Op::PowerCycle,
            _ => Op::Reset,
        });
        data = rest.get(len..).unwrap_or_default();
    }
    ops
}

/// Encodes steps as frames.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = vec![];
    for op in ops {
        let (kind, bytes): (u8, &[u8]) = match op {
            Op::Apdu(b) => (0, b),
            Op::PowerCycle => (1, &[]),
            Op::Reset => (2, &[]),
        };
        out.push(kind);
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

// ---- replies ----

/// Whether `sw1 sw2` is a status word ISO 7816-4 §5.6 (tables 5 and 6) defines.
pub fn valid_sw(sw1: u8, sw2: u8) -> bool {
    match sw1 {
        0x90 => sw2 == 0x00,
        0x61 | 0x6C => true,
        0x62 => sw2 == 0x00 || (0x02..=0x86).contains(&sw2),
        0x63 => matches!(sw2, 0x00 | 0x81 | 0x82) || sw2 & 0xF0 == 0xC0,
        0x64 => matches!(sw2, 0x00..=0x80),
        0x65 => matches!(sw2, 0x00 | 0x81),
        0x66 => sw2 == 0x00,
        0x67 | 0x6B | 0x6D | 0x6E | 0x6F => sw2 == 0x00,
        0x68 => matches!(sw2, 0x00 | 0x81..=0x84),
        0x69 => matches!(sw2, 0x00 | 0x81..=0x88),
        0x6A => matches!(sw2, 0x00 | 0x80..=0x8A),
        _ => false,
    }
}

/// The reply rules for one command and its response.
pub fn check_reply(cmd: &[u8], resp: &[u8]) -> Result<(), String> {
    let Some((data, &[sw1, sw2])) = resp.split_last_chunk::<2>() else {
        return Err(format!("response of {} bytes to {cmd:02X?}", resp.len()));
    };
    if resp.len() > REPLY_CAPACITY {
        return Err(format!("response of {} bytes to {cmd:02X?}", resp.len()));
    }
    if !valid_sw(sw1, sw2) {
        return Err(format!("status word {sw1:02X}{sw2:02X} is not an ISO 7816-4 one, to {cmd:02X?}"));
    }
    if data.is_empty() {
        return Ok(());
    }
    if !matches!(sw1, 0x90 | 0x61 | 0x62 | 0x63) {
        return Err(format!("{} data bytes with {sw1:02X}{sw2:02X} to {cmd:02X?}", data.len()));
    }
    let ne = match Apdu::parse(cmd) {
        Ok(a) if a.extended => a.le.unwrap_or(MAX_RESPONSE_DATA).min(MAX_RESPONSE_DATA),
        Ok(a) => a.le.unwrap_or(256).min(256),
        Err(_) => 0,
    };
    if data.len() > ne {
        return Err(format!("{} data bytes where Ne is {ne}, to {cmd:02X?}", data.len()));
    }
    Ok(())
}

// ---- private-key windows ----

/// Length of the windows of private components the responses are scanned for.
pub const WINDOW: usize = 8;

/// A hasher for values that are already random (windows of private key components).
#[derive(Default)]
struct Scramble(u64);

impl Hasher for Scramble {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type WindowSet = HashSet<u64, BuildHasherDefault<Scramble>>;

fn window(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Every private component of a key, big endian without leading zeros.
pub fn private_components(material: &KeyMaterial) -> Vec<Vec<u8>> {
    match material.load() {
        Ok(LoadedKey::Rsa(k)) => {
            let mut out = vec![k.d().to_be_bytes_trimmed_vartime().to_vec()];
            out.extend(k.primes().iter().map(|p| p.to_be_bytes_trimmed_vartime().to_vec()));
            out.extend(k.dp().map(|v| v.to_be_bytes_trimmed_vartime().to_vec()));
            out.extend(k.dq().map(|v| v.to_be_bytes_trimmed_vartime().to_vec()));
            out.extend(k.qinv().map(|v| v.retrieve().to_be_bytes_trimmed_vartime().to_vec()));
            out
        }
        Ok(LoadedKey::EcP256(k)) => vec![k.to_bytes().to_vec()],
        Err(_) => vec![],
    }
}

/// A fast fingerprint of some bytes (not cryptographic): what the window cache is keyed by.
fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = Scramble(bytes.len() as u64);
    for c in bytes.chunks(8) {
        let mut w = [0u8; 8];
        if let Some(d) = w.get_mut(..c.len()) {
            d.copy_from_slice(c);
        }
        h.write_u64(u64::from_le_bytes(w));
    }
    h.finish()
}

fn material_bytes(m: &KeyMaterial) -> &[u8] {
    match m {
        KeyMaterial::Rsa { pkcs1 } => &pkcs1.0,
        KeyMaterial::EcP256 { scalar } => &scalar.0,
    }
}

/// Bits of the bitmap in front of the window sets: 2^20 bits, so even with several keys under
/// one percent of the windows of a response hit it.
const FILTER_BITS: u32 = 20;
/// 64-bit words of the bitmap.
const FILTER_WORDS: usize = 1 << (FILTER_BITS - 6);

type Filter = [u64; FILTER_WORDS];

fn filter_bit(v: u64) -> usize {
    (v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_BITS)) as usize
}

fn set_bit(filter: &mut Filter, v: u64) {
    let bit = filter_bit(v);
    filter[(bit >> 6) % FILTER_WORDS] |= 1 << (bit & 63);
}

fn test_bit(filter: &Filter, v: u64) -> u64 {
    let bit = filter_bit(v);
    filter[(bit >> 6) % FILTER_WORDS] >> (bit & 63) & 1
}

/// One key's private components: every 8-byte window.
struct KeyWindows {
    id: u64,
    set: WindowSet,
}

/// A process-wide cache: fuzz runs see the same fixture and pool keys again and again.
fn cached<T: Clone>(cache: &Mutex<Vec<(u64, T)>>, id: u64, kept: usize, make: impl FnOnce() -> T) -> T {
    if let Ok(c) = cache.lock()
        && let Some((_, v)) = c.iter().find(|(k, _)| *k == id)
    {
        return v.clone();
    }
    let v = make();
    if let Ok(mut c) = cache.lock() {
        if c.len() >= kept {
            c.remove(0);
        }
        c.push((id, v.clone()));
    }
    v
}

/// The windows of one key's private components, computed once per key material (parsing an
/// RSA key is the expensive part).
fn key_windows(material: &KeyMaterial) -> Arc<KeyWindows> {
    static CACHE: Mutex<Vec<(u64, Arc<KeyWindows>)>> = Mutex::new(Vec::new());
    let id = fingerprint(material_bytes(material));
    cached(&CACHE, id, 256, || {
        let mut set = WindowSet::default();
        for c in private_components(material) {
            set.extend(c.windows(WINDOW).filter_map(window));
        }
        Arc::new(KeyWindows { id, set })
    })
}

/// The bitmap of a set of keys, built once per set.
fn keys_filter(keys: &[Arc<KeyWindows>]) -> Arc<Filter> {
    static CACHE: Mutex<Vec<(u64, Arc<Filter>)>> = Mutex::new(Vec::new());
    let mut id = Scramble(keys.len() as u64);
    keys.iter().for_each(|k| id.write_u64(k.id));
    cached(&CACHE, id.finish(), 64, || {
        let mut filter: Box<Filter> =
            vec![0u64; FILTER_WORDS].into_boxed_slice().try_into().unwrap_or_else(|_| Box::new([0; FILTER_WORDS]));
        for k in keys {
            k.set.iter().for_each(|v| set_bit(&mut filter, *v));
        }
        Arc::from(filter)
    })
}

/// The private key material of an image, fingerprinted: what tells the scan to learn keys.
fn keys_fingerprint(image: &CardImage) -> u64 {
    let mut h = Scramble(0);
    for k in &image.keys {
        for m in [&k.material, &k.pending] {
            h.write_u64(m.as_ref().map_or(0, |m| fingerprint(material_bytes(m))));
        }
    }
    h.finish()
}

/// The private components every key of the card ever had, as 8-byte windows: one shared set
/// per key, behind one bitmap of all their windows. A response goes through the bitmap 8
/// bytes at a time with one test per block (cheap, also under the fuzzers' compare tracing);
/// only a block whose windows hit the bitmap is looked up in the sets.
pub struct SecretScan {
    keys: Vec<Arc<KeyWindows>>,
    filter: Arc<Filter>,
}

impl Default for SecretScan {
    fn default() -> Self {
        SecretScan { keys: vec![], filter: keys_filter(&[]) }
    }
}

impl SecretScan {
    /// Learns the keys of an image (they stay known when the card later drops them).
    pub fn learn(&mut self, image: &CardImage) {
        let before = self.keys.len();
        for k in &image.keys {
            for m in [&k.material, &k.pending].into_iter().flatten() {
                let w = key_windows(m);
                if !self.keys.iter().any(|k| Arc::ptr_eq(k, &w)) {
                    self.keys.push(w);
                }
            }
        }
        if self.keys.len() != before {
            self.filter = keys_filter(&self.keys);
        }
    }

    /// The offset of the first private-component window in `bytes`, if any.
    pub fn find(&self, bytes: &[u8]) -> Option<usize> {
        let filter: &Filter = &self.filter;
        // The window ending at each byte, rolled one byte at a time (the first 7 are partial
        // windows: a hit on them only costs the exact look-up).
        let mut v = 0u64;
        for (block, chunk) in bytes.chunks(8).enumerate() {
            let mut hit = 0u64;
            for b in chunk {
                v = v << 8 | u64::from(*b);
                hit |= test_bit(filter, v);
            }
            if hit != 0 {
                let end = (block * 8 + chunk.len()).min(bytes.len());
                let first = (block * 8).saturating_sub(WINDOW - 1);
                let exact = bytes
                    .get(first..end)
                    .unwrap_or_default()
                    .windows(WINDOW)
                    .position(|w| window(w).is_some_and(|v| self.keys.iter().any(|k| k.set.contains(&v))));
                if let Some(at) = exact {
                    return Some(first + at);
                }
            }
        }
        None
    }
}

// ---- PIN and PUK objects ----

/// A secret-bearing command as the card received it (chains reassembled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretCommand {
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
}

impl SecretCommand {
    /// VERIFY with data, CHANGE REFERENCE DATA (P1 = `00`), RESET RETRY COUNTER: the commands
    /// that present a PIN or PUK (Oberthur's CREATE PIN, `24` with P1 = `01`, presents none).
    fn new(apdu: &Apdu<'_>, data: &[u8]) -> Option<Self> {
        let bearing = match apdu.ins {
            0x20 => !data.is_empty(),
            0x24 => apdu.p1 == 0x00,
            0x2C => true,
            _ => false,
        };
        bearing.then(|| SecretCommand { ins: apdu.ins, p1: apdu.p1, p2: apdu.p2, data: data.to_vec() })
    }

    fn op(&self) -> PinOp {
        match self.ins {
            0x20 => PinOp::Verify,
            0x24 => PinOp::Change,
            _ => PinOp::Unblock,
        }
    }
}

/// What the PIN rules need to know about the card before or after a command.
#[derive(Clone, Debug, Default)]
pub struct PinState {
    pub pins: Vec<PinObject>,
    /// Per PIN object: verified in the session.
    pub verified: Vec<bool>,
    /// Per PIN object: each file holding its secret, as (content, what the profile says it
    /// holds for the object's value, fitted to the file's size).
    pub files: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
}

fn padded(p: &PinObject) -> Vec<u8> {
    let mut v = p.value.as_bytes().to_vec();
    v.resize(usize::from(p.pad_len).max(v.len()), p.pad_byte.0);
    v
}

impl PinState {
    /// The state of `card` now.
    pub fn of(card: &Card) -> Self {
        let image = card.image();
        let profile = image.profile.profile();
        let files: Vec<Vec<(Vec<u8>, Vec<u8>)>> = image
            .pins
            .iter()
            .map(|p| {
                let mut out = vec![];
                for s in profile.secret_files().iter().filter(|s| s.pin == p.reference.0) {
                    if let Some(FileBody::Transparent { data }) = crate::fs::lookup(&image.mf, s.path).map(|n| &n.body)
                    {
                        let mut want = (s.encode)(&p.value);
                        want.resize(data.0.len(), 0);
                        out.push((data.0.clone(), want));
                    }
                }
                out
            })
            .collect();
        let verified = (0..image.pins.len()).map(|i| Ctx::pin_verified(card, i)).collect();
        PinState { pins: image.pins.clone(), verified, files }
    }

    /// The forms of PIN object `i`'s secret the card accepts: its padded value, and the
    /// content of each file holding it.
    pub fn forms(&self, i: usize) -> Vec<Vec<u8>> {
        let files = self.files.get(i).into_iter().flatten().map(|(c, _)| c.clone());
        self.pins.get(i).map(padded).into_iter().chain(files).collect()
    }

    /// The PUK object that unblocks PIN object `i` (in its DF first).
    fn puk_of(&self, i: usize) -> Option<usize> {
        let p = self.pins.get(i)?;
        let r = p.unblocked_by?;
        self.pins
            .iter()
            .position(|q| q.reference == r && q.df == p.df)
            .or_else(|| self.pins.iter().position(|q| q.reference == r))
    }

    /// Whether `data` contains one of the forms of PIN object `i`'s secret.
    fn carried(&self, i: usize, data: &[u8]) -> bool {
        self.forms(i).iter().any(|f| !f.is_empty() && data.windows(f.len()).any(|w| w == f.as_slice()))
    }

    fn authority(&self, role: PinRole) -> bool {
        self.pins.iter().zip(&self.verified).any(|(p, v)| *v && p.role == role)
    }
}

/// Whether the files holding secrets still have the content `state` saw.
fn files_unchanged(image: &CardImage, state: &PinState) -> bool {
    let profile = image.profile.profile();
    let mut seen = state.files.iter().flatten();
    for p in &state.pins {
        for f in profile.secret_files().iter().filter(|f| f.pin == p.reference.0) {
            if let Some(FileBody::Transparent { data }) = crate::fs::lookup(&image.mf, f.path).map(|n| &n.body)
                && seen.next().is_none_or(|(content, _)| *content != data.0)
            {
                return false;
            }
        }
    }
    seen.next().is_none()
}

/// The rules on PIN objects for one command: `before` and `after` the command, the command's
/// bytes (the whole chain for a chained command), the secret-bearing command it was if any,
/// its status word, and what the card reported doing.
pub fn check_pins(
    profile: &dyn Profile,
    before: &PinState,
    after_state: &PinState,
    cmd: &[u8],
    secret: Option<&SecretCommand>,
    sw: u16,
    effect: Effect,
) -> Result<(), String> {
    let after = after_state.pins.as_slice();
    let administrative = effect == Effect::CredentialsReset;
    let officer = before.authority(PinRole::So);
    let holder = before.authority(PinRole::User);
    for (i, (b, a)) in before.pins.iter().zip(after).enumerate() {
        if a.value != b.value
            && let Some((content, want)) = after_state.files.get(i).into_iter().flatten().find(|(c, w)| c != w)
        {
            return Err(format!(
                "{} changed on {cmd:02X?} but a file holding it was not rewritten ({content:02X?} instead of {want:02X?})",
                b.label
            ));
        }
        let changed = a.value != b.value || a.tries_left != b.tries_left || a.max_tries != b.max_tries;
        if !changed {
            continue;
        }
        if b.role == PinRole::Puk && b.blocked() && a.tries_left > 0 {
            return Err(format!("blocked {} revived ({} tries) by {cmd:02X?}", b.label, a.tries_left));
        }
        let own = before.carried(i, cmd);
        let by_puk = before.puk_of(i).is_some_and(|k| before.carried(k, cmd));
        let authorised = administrative && (officer || (holder && b.role == PinRole::User));
        let fell_by_one = a.tries_left + 1 == b.tries_left && a.value == b.value && a.max_tries == b.max_tries;
        let wrong_try = fell_by_one && secret.is_some() && sw & 0xFFF0 == 0x63C0;
        if !(own || by_puk || authorised || wrong_try) {
            return Err(format!(
                "{}: tries {}→{}, value {} by {cmd:02X?} without its secret, its PUK's or an authority",
                b.label,
                b.tries_left,
                a.tries_left,
                if a.value == b.value { "kept" } else { "changed" }
            ));
        }
    }
    // Only an erase removes PIN objects (the Incrypto34's ERASE takes the whole PKCS#15
    // application with them): under the security officer's authority, or on a card that has
    // no security officer yet (a blank card being personalised).
    let no_officer = !before.pins.iter().any(|p| p.role == PinRole::So);
    if after.len() < before.pins.len() && !(administrative && (officer || no_officer)) {
        return Err(format!("a PIN object disappeared on {cmd:02X?}"));
    }
    let Some(s) = secret else { return Ok(()) };
    let pairs = || before.pins.iter().zip(after).enumerate();
    // The objects whose right secret the command carried, as the card must have compared it:
    // VERIFY data is the whole padded secret, CHANGE data starts with it, RESET RETRY COUNTER
    // data starts with the secret of the PUK that unblocks the PIN it names.
    let named = profile.pin_ref(s.p2, s.op()).ok().map(|r| r.reference);
    let proved: Vec<usize> = pairs()
        .filter(|(i, (b, _))| {
            if named != Some(b.reference.0) || (s.ins != 0x2C && b.blocked()) {
                return false;
            }
            let forms = |k: usize| before.forms(k);
            match s.ins {
                0x20 => forms(*i).contains(&s.data),
                0x24 => forms(*i).iter().any(|f| s.data.starts_with(f)),
                _ => before.puk_of(*i).is_some_and(|k| {
                    before.pins.get(k).is_some_and(|q| !q.blocked()) && forms(k).iter().any(|f| s.data.starts_with(f))
                }),
            }
        })
        .map(|(i, _)| i)
        .collect();
    match sw {
        0x9000 if !proved.iter().any(|i| after.get(*i).is_some_and(|a| a.tries_left == a.max_tries)) => {
            return Err(format!(
                "9000 to {cmd:02X?} without the right secret of a PIN it names, or with its counter left short"
            ));
        }
        0x6983 if pairs().any(|(_, (b, a))| a != b) => {
            return Err(format!("6983 to {cmd:02X?}, yet a PIN object changed"));
        }
        sw if sw & 0xFFF0 == 0x63C0 => {
            if !proved.is_empty() {
                return Err(format!("{sw:04X} to {cmd:02X?}, which carried the right secret"));
            }
            let x = (sw & 0x0F) as u8;
            let changed: Vec<(&PinObject, &PinObject)> = pairs().filter(|(_, (b, a))| a != b).map(|(_, p)| p).collect();
            match changed.as_slice() {
                [(b, a)] if a.tries_left + 1 == b.tries_left && a.tries_left == x => {}
                _ => {
                    return Err(format!(
                        "{sw:04X} to {cmd:02X?}: {} PIN objects changed, not exactly one counter down by one to {x}",
                        changed.len()
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

// ---- the checked card ----

/// The blocks of a command chain received so far.
#[derive(Default)]
struct ChainSeen {
    header: Option<[u8; 4]>,
    data: Vec<u8>,
}

/// A card under observation.
pub struct Checked {
    pub card: Card,
    /// The PIN state after the last command (PIN objects rarely change: it is rebuilt only
    /// when they or a file holding a secret did).
    pins: PinState,
    /// The image the session started from (a session that leaves it as it was needs no
    /// save/load round trip: the fixture's own is tested).
    initial: CardImage,
    scan: SecretScan,
    keys: u64,
    chain: ChainSeen,
}

impl Checked {
    pub fn new(image: CardImage, seed: u64) -> Self {
        let mut scan = SecretScan::default();
        scan.learn(&image);
        let keys = keys_fingerprint(&image);
        let mut card = Card::new(image.clone(), CardRng::insecure_deterministic(seed));
        card.power_on();
        let pins = PinState::of(&card);
        Checked { card, pins, initial: image, scan, keys, chain: ChainSeen::default() }
    }

    /// Sends one APDU, checks every invariant, returns the response.
    pub fn exchange(&mut self, cmd: &[u8]) -> Result<Vec<u8>, String> {
        self.apdu(cmd)
    }

    /// Runs one step and checks every invariant.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        let cmd = match op {
            Op::PowerCycle => {
                self.card.power_off();
                self.card.power_on();
                self.chain = ChainSeen::default();
                return Ok(());
            }
            Op::Reset => {
                self.card.reset();
                self.chain = ChainSeen::default();
                return Ok(());
            }
            Op::Apdu(c) => c,
        };
        self.apdu(cmd).map(|_| ())
    }

    fn apdu(&mut self, cmd: &[u8]) -> Result<Vec<u8>, String> {
        let profile = self.card.profile().profile();
        self.pins.verified.clear();
        self.pins.verified.extend((0..self.pins.pins.len()).map(|i| Ctx::pin_verified(&self.card, i)));
        let resp = self.card.transmit_vec(cmd);
        check_reply(cmd, &resp)?;
        if let Some(at) = self.scan.find(&resp) {
            return Err(format!("private key bytes at offset {at} of the response to {cmd:02X?}"));
        }
        let sw = resp.len().checked_sub(2).and_then(|n| resp.get(n..)).map_or(0, |s| u16::from_be_bytes([s[0], s[1]]));
        let secret = self.secret_command(profile, cmd, sw);
        let whole = match &secret {
            Some(s) => {
                let mut v = cmd.get(..4).unwrap_or_default().to_vec();
                v.extend_from_slice(&s.data);
                v
            }
            None => cmd.to_vec(),
        };
        // The image is validated, and its keys learnt, whenever the card says its persistent
        // state changed (what a host saves); `run` validates at the end whatever happened.
        let changed = self.card.take_changed();
        let after = self.card.image();
        if changed {
            after.validate().map_err(|e| format!("image invalid after {cmd:02X?}: {e}"))?;
        }
        // PIN objects and the files holding their secrets unchanged (most commands): the state
        // after is the state before.
        let before = &self.pins;
        if self.card.image().pins == before.pins && files_unchanged(self.card.image(), before) {
            check_pins(profile, before, before, &whole, secret.as_ref(), sw, self.card.last_effect())?;
        } else {
            let after = PinState::of(&self.card);
            check_pins(profile, before, &after, &whole, secret.as_ref(), sw, self.card.last_effect())?;
            self.pins = after;
        }
        if changed || self.card.last_effect() == Effect::KeyGeneration {
            let after = self.card.image();
            let keys = keys_fingerprint(after);
            if keys != self.keys {
                self.keys = keys;
                self.scan.learn(after);
            }
        }
        Ok(resp)
    }

    /// Follows command chaining as the card does (ISO 7816-4 §5.1.1.1) and returns the
    /// secret-bearing command a final block completed, if any.
    fn secret_command(&mut self, profile: &dyn Profile, cmd: &[u8], sw: u16) -> Option<SecretCommand> {
        let Ok(apdu) = Apdu::parse(cmd) else {
            self.chain = ChainSeen::default();
            return None;
        };
        let Ok(class) = profile.class(apdu.cla) else {
            self.chain = ChainSeen::default();
            return None;
        };
        let header = [class.base, apdu.ins, apdu.p1, apdu.p2];
        if class.chained {
            if sw == 0x9000 {
                self.chain.header = Some(header);
                self.chain.data.extend_from_slice(apdu.data);
            } else {
                self.chain = ChainSeen::default();
            }
            return None;
        }
        let chain = core::mem::take(&mut self.chain);
        let apdu = Apdu { cla: class.base, ..apdu };
        if chain.header == Some(header) {
            let mut data = chain.data;
            data.extend_from_slice(apdu.data);
            SecretCommand::new(&apdu, &data)
        } else if chain.header.is_none() {
            // On a mask that counts the status query, VERIFY without data is a comparison
            // with an empty secret (`CardImage::tries_query_counts`): it may cost a try.
            let query_counts = self.card.image().tries_query_counts && apdu.ins == 0x20 && apdu.data.is_empty();
            if query_counts {
                Some(SecretCommand { ins: apdu.ins, p1: apdu.p1, p2: apdu.p2, data: vec![] })
            } else {
                SecretCommand::new(&apdu, apdu.data)
            }
        } else {
            None
        }
    }

    /// Runs every step, then checks the save/load round trip.
    pub fn run(mut self, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            self.step(op)?;
        }
        let image = self.card.into_image();
        if image == self.initial {
            return Ok(());
        }
        image.validate().map_err(|e| format!("image invalid at the end: {e}"))?;
        round_trip(&image)
    }
}

/// A fingerprint of an image's state (PINs, keys, files' content and shape, life-cycle):
/// equal images have equal fingerprints.
fn image_fingerprint(image: &CardImage) -> u64 {
    fn tree(node: &crate::fs::FileNode, h: &mut Scramble) {
        h.write_u64(u64::from(node.fid.0));
        match &node.body {
            FileBody::Transparent { data } => h.write_u64(fingerprint(&data.0)),
            FileBody::Records { records, .. } => records.iter().for_each(|r| h.write_u64(fingerprint(&r.0))),
            FileBody::Df { children, .. } => children.iter().for_each(|c| tree(c, h)),
            FileBody::PrivateKey { key, bits } | FileBody::PublicKey { key, bits } => {
                h.write_u64(u64::from(key.0) << 16 | u64::from(*bits))
            }
            FileBody::FreeMemory => h.write_u64(1),
        }
    }
    let mut h = Scramble(keys_fingerprint(image));
    for p in &image.pins {
        h.write_u64(fingerprint(p.value.as_bytes()) ^ u64::from(p.tries_left) << 8 ^ u64::from(p.max_tries));
    }
    h.write_u64(u64::from(image.life_cycle.byte()));
    tree(&image.mf, &mut h);
    h.finish()
}

/// The save/load round trip of an image. An image equal to one already seen to round-trip is
/// not saved and parsed again: fuzz runs end in the same few images over and over.
fn round_trip(image: &CardImage) -> Result<(), String> {
    static SEEN: Mutex<Vec<(u64, CardImage)>> = Mutex::new(Vec::new());
    const KEPT: usize = 512;
    let id = image_fingerprint(image);
    if SEEN.lock().is_ok_and(|seen| seen.iter().any(|(f, earlier)| *f == id && earlier == image)) {
        return Ok(());
    }
    let back = CardImage::from_json(&image.to_json()).map_err(|e| format!("saved image does not load: {e}"))?;
    if back != *image {
        return Err("image save/load round trip differs".into());
    }
    if let Ok(mut seen) = SEEN.lock() {
        if seen.len() >= KEPT {
            seen.remove(0);
        }
        seen.push((id, back));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hex::{Hex8, Hex16};
    use crate::security::Charset;

    #[test]
    fn frames_round_trip_and_truncation_ends_the_sequence() {
        let ops = vec![Op::Apdu(vec![0, 0xA4, 0, 0]), Op::PowerCycle, Op::Reset, Op::Apdu(vec![])];
        assert_eq!(decode(&encode(&ops)), ops);
        let mut bytes = encode(&ops);
        bytes.truncate(bytes.len() - 1);
        assert_eq!(decode(&[0, 0, 9, 1]), vec![]);
        assert_eq!(decode(&bytes).len(), 3);
    }

    #[test]
    fn status_words_are_those_iso_7816_4_defines() {
        for ok in [
            0x9000u16, 0x6100, 0x61FF, 0x6282, 0x63C0, 0x63CF, 0x6581, 0x6700, 0x6883, 0x6982, 0x6A88, 0x6B00, 0x6C10,
            0x6F00,
        ] {
            assert!(valid_sw((ok >> 8) as u8, ok as u8), "{ok:04X}");
        }
        for bad in [0x9001u16, 0x9100, 0x6701, 0x6A00 + 0x7F, 0x6A8B, 0x6D01, 0x0000, 0x6400 + 0x81, 0x6990, 0x6889] {
            assert!(!valid_sw((bad >> 8) as u8, bad as u8), "{bad:04X}");
        }
    }

    #[test]
    fn replies_carry_data_only_with_success_or_warnings_and_within_ne() {
        assert!(check_reply(&[0, 0xB0, 0, 0, 2], &[1, 2, 0x90, 0]).is_ok());
        assert!(check_reply(&[0, 0xB0, 0, 0, 2], &[1, 2, 3, 0x90, 0]).is_err(), "more than Le");
        assert!(check_reply(&[0, 0xB0, 0, 0, 2], &[1, 0x69, 0x82]).is_err(), "data with an error");
        assert!(check_reply(&[0, 0xB0, 0, 0, 2], &[0x90]).is_err(), "no status word");
        assert!(check_reply(&[0, 0xB0, 0, 0, 2], &[0x91, 0x00]).is_err(), "not ISO");
        assert!(check_reply(&[0, 0xA4], &[1, 0x90, 0]).is_err(), "data to an unparsable command");
        assert!(check_reply(&[0, 0xA4, 0, 0], &[vec![0; 256], vec![0x90, 0]].concat()).is_ok(), "no Le: 256 bytes");
        assert!(check_reply(&[0, 0xA4, 0, 0], &[vec![0; 257], vec![0x90, 0]].concat()).is_err());
    }

    #[test]
    fn the_scan_finds_any_8_bytes_of_a_private_component_at_any_offset() {
        let image = CardImage::from_json(include_str!("../../fixtures/cards/cns-renewable.json")).unwrap();
        let mut scan = SecretScan::default();
        scan.learn(&image);
        let material = image.keys[0].material.as_ref().unwrap();
        let components = private_components(material);
        assert_eq!(components.len(), 6, "d, p, q, dP, dQ, qInv");
        for c in &components {
            for at in [0, 3, c.len() - WINDOW] {
                let mut resp = vec![0x55; 5];
                resp.extend_from_slice(&c[at..at + WINDOW]);
                resp.extend_from_slice(&[0x90, 0x00]);
                assert_eq!(scan.find(&resp), Some(5));
                assert_eq!(scan.find(&resp[..resp.len() - 3]), None, "7 bytes are not a window");
            }
        }
        let KeyMaterial::Rsa { pkcs1 } = material else { panic!("RSA") };
        assert!(scan.find(&pkcs1.0).is_some(), "the key's DER");
        assert_eq!(scan.find(&[0u8; 300]), None);
        for at in [0, 1, 7, 8, 9, 250, 292] {
            let mut long = vec![0x33u8; 300];
            long[at..at + WINDOW].copy_from_slice(&components[1][10..10 + WINDOW]);
            assert_eq!(scan.find(&long), Some(at), "a window at {at}");
        }
    }

    fn pin(reference: u8, role: PinRole, value: &str, tries: u8, unblocked_by: Option<u8>) -> PinObject {
        PinObject {
            reference: Hex8(reference),
            label: format!("{reference:02X}"),
            role,
            df: vec![Hex16(0x3F00)],
            value: value.into(),
            charset: Charset::Digits,
            min_len: 5,
            max_len: 8,
            pad_len: 8,
            pad_byte: Hex8(0xFF),
            max_tries: 3,
            tries_left: tries,
            unblocked_by: unblocked_by.map(Hex8),
        }
    }

    fn state(pins: Vec<PinObject>, verified: Vec<bool>) -> PinState {
        let files = pins.iter().map(|_| vec![]).collect();
        PinState { pins, verified, files }
    }

    fn pins_only(pins: Vec<PinObject>) -> PinState {
        let n = pins.len();
        state(pins, vec![false; n])
    }

    fn verify(data: &[u8]) -> (Vec<u8>, SecretCommand) {
        let mut cmd = vec![0x00, 0x20, 0x00, 0x10, data.len() as u8];
        cmd.extend_from_slice(data);
        (cmd, SecretCommand { ins: 0x20, p1: 0, p2: 0x10, data: data.to_vec() })
    }

    #[test]
    fn pin_rules_accept_what_a_card_does_and_catch_what_it_must_not() {
        let cns = crate::ProfileKind::Cns.profile();
        let before = state(
            vec![pin(0x10, PinRole::User, "12345678", 2, Some(0x11)), pin(0x11, PinRole::Puk, "87654321", 3, None)],
            vec![false, false],
        );
        let after = |pin_tries: u8, puk_tries: u8| {
            let mut a = before.pins.clone();
            a[0].tries_left = pin_tries;
            a[1].tries_left = puk_tries;
            a
        };
        let (right, right_cmd) = verify(b"12345678");
        let (wrong, wrong_cmd) = verify(b"11111111");
        let check = |after: &[PinObject], cmd: &[u8], s: &SecretCommand, sw: u16, effect: Effect| {
            check_pins(cns, &before, &pins_only(after.to_vec()), cmd, Some(s), sw, effect)
        };
        // The right PIN restores its counter; a wrong one lowers it by one and says so.
        assert!(check(&after(3, 3), &right, &right_cmd, 0x9000, Effect::None).is_ok());
        assert!(check(&after(1, 3), &wrong, &wrong_cmd, 0x63C1, Effect::None).is_ok());
        // What a broken card could do.
        assert!(check(&after(3, 3), &wrong, &wrong_cmd, 0x9000, Effect::None).is_err(), "9000 to a wrong PIN");
        assert!(check(&after(2, 3), &right, &right_cmd, 0x9000, Effect::None).is_err(), "success, counter short");
        assert!(check(&after(3, 3), &wrong, &wrong_cmd, 0x63C3, Effect::None).is_err(), "a wrong PIN raised it");
        assert!(check(&after(2, 3), &wrong, &wrong_cmd, 0x63C2, Effect::None).is_err(), "rejected, not counted");
        assert!(check(&after(0, 3), &wrong, &wrong_cmd, 0x63C0, Effect::None).is_err(), "down by two");
        assert!(check(&after(1, 2), &wrong, &wrong_cmd, 0x63C1, Effect::None).is_err(), "two counters down");
        assert!(check(&after(1, 3), &wrong, &wrong_cmd, 0x6983, Effect::None).is_err(), "blocked, yet counted");
        assert!(check(&after(1, 3), &right, &right_cmd, 0x63C1, Effect::None).is_err(), "the right PIN refused");
        let status = [0x00, 0x20, 0x00, 0x10];
        assert!(
            check_pins(cns, &before, &pins_only(after(1, 3)), &status, None, 0x63C1, Effect::None).is_err(),
            "a query counted"
        );
        // Administrative resets need the authority before the command.
        let erase = [0xB0, 0xF5, 0x00, 0x00];
        assert!(
            check_pins(cns, &before, &pins_only(after(3, 3)), &erase, None, 0x9000, Effect::CredentialsReset).is_err()
        );
        let mut holder = before.clone();
        holder.verified = vec![true, false];
        assert!(
            check_pins(cns, &holder, &pins_only(after(3, 3)), &erase, None, 0x9000, Effect::CredentialsReset).is_ok()
        );
        assert!(check_pins(cns, &holder, &pins_only(after(3, 3)), &erase, None, 0x9000, Effect::None).is_err());
        let mut puk_changed = after(2, 3);
        puk_changed[1].value = "11112222".into();
        assert!(
            check_pins(cns, &holder, &pins_only(puk_changed), &erase, None, 0x9000, Effect::CredentialsReset).is_err(),
            "a user PIN does not authorise a PUK change"
        );
    }

    #[test]
    fn unblock_rules_need_the_puk_and_a_blocked_puk_stays_blocked() {
        let cns = crate::ProfileKind::Cns.profile();
        let before = state(
            vec![pin(0x10, PinRole::User, "12345678", 0, Some(0x11)), pin(0x11, PinRole::Puk, "87654321", 2, None)],
            vec![false, false],
        );
        let rrc = |puk: &[u8], new: &[u8]| {
            let data = [puk, new].concat();
            let mut cmd = vec![0x00, 0x2C, 0x00, 0x10, 16];
            cmd.extend_from_slice(&data);
            (cmd, SecretCommand { ins: 0x2C, p1: 0, p2: 0x10, data })
        };
        let mut unblocked = before.pins.clone();
        unblocked[0].tries_left = 3;
        unblocked[0].value = "24682468".into();
        unblocked[1].tries_left = 3;
        let (cmd, s) = rrc(b"87654321", b"24682468");
        assert!(check_pins(cns, &before, &pins_only(unblocked.clone()), &cmd, Some(&s), 0x9000, Effect::None).is_ok());
        let (cmd, s) = rrc(b"87654320", b"24682468");
        assert!(check_pins(cns, &before, &pins_only(unblocked.clone()), &cmd, Some(&s), 0x9000, Effect::None).is_err());
        // A blocked PUK: nothing revives it, not even an officer's reset.
        let mut blocked = before.clone();
        blocked.pins[1].tries_left = 0;
        blocked.verified = vec![false, false];
        blocked.pins.push(pin(0x04, PinRole::So, "11223344", 3, None));
        blocked.verified.push(true);
        blocked.files.push(vec![]);
        let mut revived = blocked.pins.clone();
        revived[1].tries_left = 10;
        let create = [0x00, 0x24, 0x01, 0x04];
        let e = check_pins(cns, &blocked, &pins_only(revived), &create, None, 0x9000, Effect::CredentialsReset)
            .unwrap_err();
        assert!(e.contains("blocked"), "{e}");
    }

    #[test]
    fn a_changed_secret_must_be_rewritten_in_the_files_holding_it() {
        let oberthur = crate::ProfileKind::Oberthur.profile();
        let code = |v: &str| {
            let mut c = v.as_bytes().to_vec();
            c.resize(16, 0);
            c
        };
        let mut before = pins_only(vec![pin(0x84, PinRole::Puk, "87654321", 3, None)]);
        before.files = vec![vec![(code("87654321"), code("87654321"))]];
        let data = [b"87654321".as_slice(), b"11112222"].concat();
        let cmd = [&[0x00, 0x24, 0x00, 0x84, 16][..], &data].concat();
        let s = SecretCommand { ins: 0x24, p1: 0, p2: 0x84, data };
        let mut after = before.clone();
        after.pins[0].value = "11112222".into();
        after.files = vec![vec![(code("87654321"), code("11112222"))]];
        let e = check_pins(oberthur, &before, &after, &cmd, Some(&s), 0x9000, Effect::None).unwrap_err();
        assert!(e.contains("not rewritten"), "{e}");
        after.files = vec![vec![(code("11112222"), code("11112222"))]];
        assert!(check_pins(oberthur, &before, &after, &cmd, Some(&s), 0x9000, Effect::None).is_ok());
    }
}
