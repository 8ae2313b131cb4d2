//! The card: bytes in, bytes out.
//!
//! [`Card::transmit`] takes a command APDU and returns the response APDU (data ‖ SW1 SW2) as a
//! slice of the card's own reply buffer. On the non-crypto path (SELECT, READ BINARY, VERIFY,
//! GET DATA …) nothing is allocated: buffers are bounded and live in the card.
//!
//! State is split in two (spec/cards.md §1.1):
//! * persistent: the [`CardImage`] (files, PINs and counters, keys, life-cycle);
//! * volatile: current DF/EF, verified PINs, security environment, chaining buffer, pending
//!   GET RESPONSE data. [`Card::power_off`], [`Card::power_on`] and [`Card::reset`] clear it.

use crate::apdu::{Apdu, MAX_COMMAND_DATA, MAX_RESPONSE_DATA};
use crate::command::{
    Command, DataObject, KeyGen, KeySelector, NewFile, NewFileKind, PinRef, PinScope, SecOp, Select, SelectTarget,
    SignPadding, UnblockProof,
};
use crate::fs::{self, AccessCondition, FileBody, FileNode, MF, Path};
use crate::hex::{Bytes, Hex8, Hex16};
use crate::image::{CardImage, ProfileKind};
use crate::keys::{Algorithm, KeyMaterial, KeyObject, KeyUsage, LoadedKey, PublicKey};
use crate::profile::{self, Application};
use crate::rng::CardRng;
use crate::security::{PinObject, PinRole, Verified};
use crate::sw::Sw;
use heapless::Vec as HVec;
use rand_core::Rng;

/// Reply buffer: the largest response data plus SW1 SW2.
pub const REPLY_CAPACITY: usize = MAX_RESPONSE_DATA + 2;

/// What the last MSE SET chose.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct SecurityEnvironment {
    op: SecOp,
    key: KeySelector,
}

/// Session state: lost on power-off, power-on and reset.
#[derive(Clone, Debug)]
struct Volatile {
    df: Path,
    ef: Option<u16>,
    verified: Verified,
    se: Option<SecurityEnvironment>,
}

impl Volatile {
    fn fresh() -> Self {
        let mut df = Path::new();
        let _ = df.push(MF);
        Volatile { df, ef: None, verified: Verified::default(), se: None }
    }
}

/// A command chain being received (`CLA|10` blocks, ISO 7816-4 §5.1.1.1).
struct Chain {
    header: Option<[u8; 4]>,
    data: HVec<u8, MAX_COMMAND_DATA>,
}

/// The virtual card.
pub struct Card {
    image: CardImage,
    rng: CardRng,
    vol: Volatile,
    chain: Chain,
    /// Response data of the command being executed.
    out: HVec<u8, MAX_RESPONSE_DATA>,
    /// Response data still to be fetched with GET RESPONSE, from `pending_pos`.
    pending: HVec<u8, MAX_RESPONSE_DATA>,
    pending_pos: usize,
    reply: HVec<u8, REPLY_CAPACITY>,
    /// Parsed private keys by reference (derived from the image; dropped when keys change).
    loaded: Vec<(u8, bool, LoadedKey)>,
    backend: crate::keys::Backend,
    #[cfg(feature = "openssl")]
    fast: Vec<(u8, bool, crate::fast::FastKey)>,
    changed: bool,
}

type Result<T = ()> = core::result::Result<T, Sw>;

impl Card {
    pub fn new(image: CardImage, rng: CardRng) -> Self {
        Card {
            image,
            rng,
            vol: Volatile::fresh(),
            chain: Chain { header: None, data: HVec::new() },
            out: HVec::new(),
            pending: HVec::new(),
            pending_pos: 0,
            reply: HVec::new(),
            loaded: Vec::new(),
            backend: crate::keys::Backend::default(),
            #[cfg(feature = "openssl")]
            fast: Vec::new(),
            changed: false,
        }
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

    /// Chooses the implementation of private-key operations.
    pub fn set_backend(&mut self, backend: crate::keys::Backend) {
        self.backend = backend;
    }

    pub fn rng_is_deterministic(&self) -> bool {
        self.rng.is_deterministic()
    }

    /// Whether persistent state changed since the last call (the host then saves the image
    /// before it forwards the response).
    pub fn take_changed(&mut self) -> bool {
        core::mem::take(&mut self.changed)
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

    fn clear_volatile(&mut self) {
        self.vol = Volatile::fresh();
        self.chain.header = None;
        self.chain.data.clear();
        self.pending.clear();
        self.pending_pos = 0;
    }

    /// Processes one command APDU and returns the response APDU.
    pub fn transmit(&mut self, command: &[u8]) -> &[u8] {
        self.reply.clear();
        let sw = self.process(command);
        // The reply buffer holds MAX_RESPONSE_DATA + 2: the SW always fits.
        let _ = self.reply.extend_from_slice(&sw.to_bytes());
        &self.reply
    }

    /// Convenience for hosts that want an owned response.
    pub fn transmit_vec(&mut self, command: &[u8]) -> Vec<u8> {
        self.transmit(command).to_vec()
    }

    fn process(&mut self, raw: &[u8]) -> Sw {
        self.out.clear();
        let apdu = match Apdu::parse(raw) {
            Ok(a) => a,
            Err(sw) => {
                self.abort_chain();
                return sw;
            }
        };
        if let Err(sw) = self.check_class(&apdu) {
            self.abort_chain();
            return sw;
        }
        if !(apdu.base_cla() == 0x00 && apdu.ins == 0xC0) {
            self.pending.clear();
            self.pending_pos = 0;
        }
        let header = [apdu.base_cla(), apdu.ins, apdu.p1, apdu.p2];
        if apdu.chained() {
            if self.chain.header.is_some_and(|h| h != header) {
                self.abort_chain();
                return Sw::LastCommandExpected;
            }
            if apdu.le.is_some() && !apdu.data.is_empty() {
                // A non-final block carries no Le (ISO 7816-4 §5.1.1.1).
                self.abort_chain();
                return Sw::WrongLength;
            }
            if self.chain.data.extend_from_slice(apdu.data).is_err() {
                self.abort_chain();
                return Sw::WrongLength;
            }
            self.chain.header = Some(header);
            return Sw::Ok;
        }
        match self.chain.header.take() {
            None => self.dispatch(&apdu),
            Some(h) if h != header => {
                self.chain.data.clear();
                Sw::LastCommandExpected
            }
            Some(_) => {
                let mut data = core::mem::take(&mut self.chain.data);
                let sw = if data.extend_from_slice(apdu.data).is_err() {
                    Sw::WrongLength
                } else {
                    let whole = Apdu { data: &data, extended: apdu.extended || data.len() > 255, ..apdu };
                    self.dispatch(&whole)
                };
                data.clear();
                self.chain.data = data;
                sw
            }
        }
    }

    fn abort_chain(&mut self) {
        self.chain.header = None;
        self.chain.data.clear();
    }

    fn check_class(&self, apdu: &Apdu<'_>) -> Result {
        let cla = apdu.cla;
        if cla & 0x80 == 0 && cla & 0x60 == 0 {
            // First interindustry range: b4-b3 secure messaging, b2-b1 logical channel.
            if cla & 0x0C != 0 {
                return Err(Sw::SecureMessagingNotSupported);
            }
            if cla & 0x03 != 0 {
                return Err(Sw::ChannelNotSupported);
            }
        }
        if profile::class_supported(self.image.profile, apdu.base_cla()) { Ok(()) } else { Err(Sw::ClaNotSupported) }
    }

    fn dispatch(&mut self, apdu: &Apdu<'_>) -> Sw {
        let command = match profile::parse(self.image.profile, apdu) {
            Ok(c) => c,
            Err(sw) => return sw,
        };
        let sw = match self.execute(command) {
            Ok(sw) => sw,
            Err(sw) => sw,
        };
        self.shape(sw, apdu)
    }

    /// Fits the response data to Le: all of it when it fits (or when Le is absent, the T=0
    /// case-3 quirk, spec/cards.md §1.1); `6Cxx` when a short Le is too small for a short
    /// answer; otherwise Le bytes now and the rest through `61xx` + GET RESPONSE.
    fn shape(&mut self, sw: Sw, apdu: &Apdu<'_>) -> Sw {
        if !matches!(sw, Sw::Ok | Sw::EndOfFile | Sw::MoreData(_)) {
            return sw;
        }
        let chunk = if apdu.extended { MAX_RESPONSE_DATA } else { 256 };
        let ne = apdu.le.unwrap_or(chunk).min(chunk);
        let len = self.out.len();
        if len <= ne {
            let _ = self.reply.extend_from_slice(&self.out);
            return sw;
        }
        if apdu.le.is_some() && !apdu.extended && len <= 256 {
            return Sw::WrongLe(len as u8);
        }
        let (now, later) = self.out.split_at(ne);
        let _ = self.reply.extend_from_slice(now);
        self.pending.clear();
        let _ = self.pending.extend_from_slice(later);
        self.pending_pos = 0;
        Sw::MoreData(later.len().min(256) as u8)
    }

    fn emit(&mut self, data: &[u8]) -> Result {
        self.out.extend_from_slice(data).map_err(|_| Sw::Unknown)
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
            Command::Logout { pin } => {
                // 9000 whether or not the PIN exists (OpenSC logs out 81 and 82, §2.5).
                if let Some(idx) = self.resolve_pin(pin) {
                    self.vol.verified.clear(idx);
                }
                Ok(Sw::Ok)
            }
            Command::MseRestore { se } => {
                // The CNS restores SE 03 (spec/cards.md §3.5); no other SE exists.
                if se != 0x03 {
                    return Err(Sw::ReferencedDataNotFound);
                }
                self.vol.se = None;
                Ok(Sw::Ok)
            }
            Command::MseSet { op, key } => self.mse_set(op, key),
            Command::ComputeSignature { input, padding } => self.compute_signature(input, padding),
            Command::Decipher { input, unpad } => self.decipher(input, unpad),
            Command::GetChallenge { len } => {
                self.out.resize(len, 0).map_err(|_| Sw::WrongLength)?;
                self.rng.fill_bytes(&mut self.out);
                Ok(Sw::Ok)
            }
            Command::GetData(DataObject::LifeCycle) => {
                let b = self.image.life_cycle.byte();
                self.emit(&[b])?;
                Ok(Sw::Ok)
            }
            Command::GetData(DataObject::Cplc) => {
                let cplc = self.image.cplc.as_ref().ok_or(Sw::ReferencedDataNotFound)?;
                let len = u8::try_from(cplc.0.len()).map_err(|_| Sw::Unknown)?;
                self.out.extend_from_slice(&[0x9F, 0x7F, len]).map_err(|_| Sw::Unknown)?;
                self.out.extend_from_slice(&cplc.0).map_err(|_| Sw::Unknown)?;
                Ok(Sw::Ok)
            }
            Command::GetResponse { le } => self.get_response(le),
            Command::GenerateKeyPair(spec) => self.generate_key_pair(spec),
            Command::CommitKey { key, certificate } => self.commit_key(key, certificate),
            Command::ReadPublicComponent { exponent, le } => self.read_public_component(exponent, le),
            Command::CreateFile(spec) => self.create_file(spec),
            Command::DeleteFile { fid, df } => self.delete_file(fid, df),
            Command::ListFiles { le } => self.list_files(le),
            Command::EraseCard => self.erase_card(),
        }
    }

    // ---- file system ----

    fn current_df(&self) -> Result<&FileNode> {
        current_df(&self.image, &self.vol)
    }

    fn current_ef(&self) -> Result<&FileNode> {
        current_ef(&self.image, &self.vol)
    }

    fn require(&self, ac: AccessCondition) -> Result {
        require(&self.image, &self.vol, ac)
    }

    /// Resolves a path of FIDs (2 bytes each) from `start`; every element but the last must
    /// be a DF. Returns the new DF path and the selected EF.
    fn walk_path(&self, mut df: Path, bytes: &[u8]) -> Result<(Path, Option<u16>)> {
        let mut ef = None;
        let mut pairs = bytes.chunks_exact(2).peekable();
        while let Some(pair) = pairs.next() {
            let fid = u16::from_be_bytes([pair[0], pair[1]]);
            if ef.is_some() {
                return Err(Sw::FileNotFound);
            }
            let node = fs::lookup(&self.image.mf, &df).ok_or(Sw::FileNotFound)?;
            let child = node.child(fid).ok_or(Sw::FileNotFound)?;
            if child.is_df() {
                df.push(fid).map_err(|_| Sw::FileNotFound)?;
            } else {
                ef = Some(fid);
            }
            let _ = pairs.peek();
        }
        Ok((df, ef))
    }

    fn select(&mut self, s: Select<'_>) -> Result<Sw> {
        let cur = self.vol.df.clone();
        let (df, ef) = match s.target {
            SelectTarget::Fid(fid) => self.select_fid(cur, fid)?,
            SelectTarget::Parent => {
                let mut p = cur;
                if p.len() <= 1 {
                    return Err(Sw::FileNotFound);
                }
                p.pop();
                (p, None)
            }
            SelectTarget::DfName(name) => match profile::application(self.image.profile, name) {
                Some(Application::Other) => {
                    if s.return_fcp {
                        self.emit_fci(name)?;
                    }
                    return Ok(Sw::Ok);
                }
                Some(Application::FileSystem) => (fs::path_of(&[MF]).ok_or(Sw::Unknown)?, None),
                None => (self.find_df_by_name(name).ok_or(Sw::FileNotFound)?, None),
            },
            SelectTarget::PathFromMf(path) => self.walk_path(fs::path_of(&[MF]).ok_or(Sw::Unknown)?, path)?,
            SelectTarget::PathFromCurrent(path) => self.walk_path(cur, path)?,
        };
        self.vol.df = df;
        self.vol.ef = ef;
        if s.return_fcp {
            let node = match ef {
                Some(_) => self.current_ef()?,
                None => self.current_df()?,
            };
            let fcp = profile::fcp(&self.image, node)?;
            self.emit(&fcp)?;
        }
        Ok(Sw::Ok)
    }

    /// P1 = 00 (ISO 7816-4 §7.1.1): the MF, the current DF, a child of the current DF, the
    /// parent DF, or a child of the parent DF.
    fn select_fid(&self, cur: Path, fid: u16) -> Result<(Path, Option<u16>)> {
        if fid == MF {
            return Ok((fs::path_of(&[MF]).ok_or(Sw::Unknown)?, None));
        }
        if cur.last() == Some(&fid) {
            return Ok((cur, None));
        }
        let here = fs::lookup(&self.image.mf, &cur).ok_or(Sw::Unknown)?;
        if let Some(child) = here.child(fid) {
            let mut p = cur.clone();
            return if child.is_df() {
                p.push(fid).map_err(|_| Sw::FileNotFound)?;
                Ok((p, None))
            } else {
                Ok((p, Some(fid)))
            };
        }
        if cur.len() > 1 {
            let mut parent = cur.clone();
            parent.pop();
            if parent.last() == Some(&fid) {
                return Ok((parent, None));
            }
            let pnode = fs::lookup(&self.image.mf, &parent).ok_or(Sw::Unknown)?;
            if let Some(sibling) = pnode.child(fid) {
                return if sibling.is_df() {
                    parent.push(fid).map_err(|_| Sw::FileNotFound)?;
                    Ok((parent, None))
                } else {
                    Ok((parent, Some(fid)))
                };
            }
        }
        Err(Sw::FileNotFound)
    }

    fn find_df_by_name(&self, name: &[u8]) -> Option<Path> {
        fn go(node: &FileNode, name: &[u8], path: &mut Path) -> bool {
            if path.push(node.fid.0).is_err() {
                return false;
            }
            if let FileBody::Df { aid: Some(aid), .. } = &node.body
                && aid.0 == name
            {
                return true;
            }
            for c in node.children().iter().filter(|c| c.is_df()) {
                if go(c, name, path) {
                    return true;
                }
            }
            path.pop();
            false
        }
        let mut path = Path::new();
        go(&self.image.mf, name, &mut path).then_some(path)
    }

    fn emit_fci(&mut self, aid: &[u8]) -> Result {
        let len = u8::try_from(aid.len()).map_err(|_| Sw::Unknown)?;
        self.emit(&[0x6F, len + 2, 0x84, len])?;
        self.emit(aid)
    }

    fn read_binary(&mut self, offset: usize, le: usize) -> Result<Sw> {
        let ef = current_ef(&self.image, &self.vol)?;
        require(&self.image, &self.vol, ef.acl.read)?;
        let free;
        let data: &[u8] = match &ef.body {
            FileBody::Transparent { data } => &data.0,
            FileBody::FreeMemory => {
                free = self.image.eeprom_free().to_be_bytes();
                &free
            }
            FileBody::Df { .. }
            | FileBody::Records { .. }
            | FileBody::PrivateKey { .. }
            | FileBody::PublicKey { .. } => {
                return Err(Sw::IncompatibleFile);
            }
        };
        if offset > data.len() || (offset == data.len() && !data.is_empty()) {
            return Err(Sw::OffsetOutsideFile);
        }
        let n = le.min(data.len() - offset).min(MAX_RESPONSE_DATA);
        let eof = n < le && offset + n == data.len();
        let chunk = data.get(offset..offset + n).ok_or(Sw::OffsetOutsideFile)?;
        self.out.extend_from_slice(chunk).map_err(|_| Sw::Unknown)?;
        Ok(if eof { Sw::EndOfFile } else { Sw::Ok })
    }

    fn current_ef_mut(&mut self) -> Result<&mut FileNode> {
        let fid = self.vol.ef.ok_or(Sw::NoCurrentEf)?;
        fs::lookup_mut(&mut self.image.mf, &self.vol.df).and_then(|df| df.child_mut(fid)).ok_or(Sw::NoCurrentEf)
    }

    fn update_binary(&mut self, offset: usize, bytes: &[u8]) -> Result<Sw> {
        let ac = self.current_ef()?.acl.update;
        self.require(ac)?;
        let ef = self.current_ef_mut()?;
        let FileBody::Transparent { data } = &mut ef.body else {
            return Err(Sw::IncompatibleFile);
        };
        if offset > data.0.len() {
            return Err(Sw::OffsetOutsideFile);
        }
        let target = data.0.get_mut(offset..offset + bytes.len()).ok_or(Sw::WrongLength)?;
        target.copy_from_slice(bytes);
        self.changed = true;
        Ok(Sw::Ok)
    }

    fn read_record(&mut self, record: u8, _le: usize) -> Result<Sw> {
        let ef = current_ef(&self.image, &self.vol)?;
        require(&self.image, &self.vol, ef.acl.read)?;
        let FileBody::Records { records, .. } = &ef.body else {
            return Err(Sw::IncompatibleFile);
        };
        let r = records.get(usize::from(record) - 1).ok_or(Sw::RecordNotFound)?;
        self.out.extend_from_slice(&r.0).map_err(|_| Sw::Unknown)?;
        Ok(Sw::Ok)
    }

    fn write_record(&mut self, record: Option<u8>, bytes: &[u8]) -> Result<Sw> {
        let ac = self.current_ef()?.acl.update;
        self.require(ac)?;
        let ef = self.current_ef_mut()?;
        let FileBody::Records { records, record_len, max_records } = &mut ef.body else {
            return Err(Sw::IncompatibleFile);
        };
        if bytes.len() > usize::from(*record_len) {
            return Err(Sw::WrongLength);
        }
        match record {
            Some(n) => {
                let r = records.get_mut(usize::from(n) - 1).ok_or(Sw::RecordNotFound)?;
                r.0 = bytes.to_vec();
            }
            None => {
                if records.len() >= usize::from(*max_records) {
                    return Err(Sw::NotEnoughMemory);
                }
                records.push(Bytes(bytes.to_vec()));
            }
        }
        self.changed = true;
        Ok(Sw::Ok)
    }

    fn delete_record(&mut self, record: u8) -> Result<Sw> {
        let ac = self.current_ef()?.acl.update;
        self.require(ac)?;
        let ef = self.current_ef_mut()?;
        let FileBody::Records { records, .. } = &mut ef.body else {
            return Err(Sw::IncompatibleFile);
        };
        let i = usize::from(record) - 1;
        if i >= records.len() {
            return Err(Sw::RecordNotFound);
        }
        records.remove(i);
        self.changed = true;
        Ok(Sw::Ok)
    }

    fn create_file(&mut self, spec: NewFile) -> Result<Sw> {
        let parent = self.current_df()?;
        self.require(parent.acl.create)?;
        if parent.child(spec.fid).is_some() || self.vol.df.last() == Some(&spec.fid) {
            return Err(Sw::FileExists);
        }
        let body = match spec.kind {
            NewFileKind::Df => FileBody::Df { aid: None, children: vec![] },
            NewFileKind::Transparent { size } => FileBody::Transparent { data: Bytes(vec![0; usize::from(size)]) },
            NewFileKind::Records { record_len, max_records } => {
                FileBody::Records { record_len, max_records, records: vec![] }
            }
            NewFileKind::PrivateKey { bits } => FileBody::PrivateKey { key: Hex8(spec.fid as u8), bits },
            NewFileKind::PublicKey { bits } => FileBody::PublicKey { key: Hex8(spec.fid as u8), bits },
        };
        let node = FileNode::new(spec.fid, None, spec.acl, body);
        if node.eeprom_used() > self.image.eeprom_free() {
            return Err(Sw::NotEnoughMemory);
        }
        if let NewFileKind::PrivateKey { bits } | NewFileKind::PublicKey { bits } = spec.kind {
            let key = spec.fid as u8;
            if !self.image.keys.iter().any(|k| k.reference.0 == key) {
                let pin = match spec.acl.read {
                    AccessCondition::Pin(r) => r,
                    _ => self.image.pins.iter().find(|p| p.role == PinRole::User).map_or(Hex8(0), |p| p.reference),
                };
                self.image.keys.push(KeyObject {
                    reference: Hex8(key),
                    label: String::new(),
                    algorithm: Algorithm::from_rsa_bits(usize::from(bits)).unwrap_or(Algorithm::Rsa2048),
                    usage: KeyUsage { sign: true, decipher: true },
                    pin,
                    always_authenticate: false,
                    material: None,
                    pending: None,
                    certificate: None,
                });
            }
        }
        let is_df = node.is_df();
        let df =
            fs::lookup_mut(&mut self.image.mf, &self.vol.df).and_then(FileNode::children_mut).ok_or(Sw::Unknown)?;
        df.push(node);
        if is_df {
            self.vol.df.push(spec.fid).map_err(|_| Sw::NotEnoughMemory)?;
            self.vol.ef = None;
        } else {
            self.vol.ef = Some(spec.fid);
        }
        self.changed = true;
        Ok(Sw::Ok)
    }

    fn delete_file(&mut self, fid: u16, df: Option<bool>) -> Result<Sw> {
        let parent = self.current_df()?;
        let child = parent.child(fid).ok_or(Sw::FileNotFound)?;
        if df.is_some_and(|want_df| want_df != child.is_df()) {
            return Err(Sw::FileNotFound);
        }
        self.require(parent.acl.delete)?;
        if !child.children().is_empty() {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let key = match child.body {
            FileBody::PrivateKey { key, .. } => Some(key),
            _ => None,
        };
        if let Some(children) = fs::lookup_mut(&mut self.image.mf, &self.vol.df).and_then(FileNode::children_mut) {
            children.retain(|c| c.fid.0 != fid);
        }
        if let Some(key) = key {
            self.image.keys.retain(|k| k.reference != key);
            self.forget_keys();
        }
        if self.vol.ef == Some(fid) {
            self.vol.ef = None;
        }
        self.changed = true;
        Ok(Sw::Ok)
    }

    fn list_files(&mut self, le: usize) -> Result<Sw> {
        let df = self.current_df()?;
        self.require(df.acl.read)?;
        let mut list: HVec<u8, MAX_RESPONSE_DATA> = HVec::new();
        for c in df.children().iter().take(le / 2) {
            list.extend_from_slice(&c.fid.0.to_be_bytes()).map_err(|_| Sw::Unknown)?;
        }
        self.emit(&list)?;
        Ok(Sw::Ok)
    }

    fn erase_card(&mut self) -> Result<Sw> {
        let authorised =
            self.image.pins.iter().enumerate().any(|(i, p)| p.role == PinRole::User && self.vol.verified.get(i));
        if !authorised {
            return Err(Sw::SecurityNotSatisfied);
        }
        profile::erase(&mut self.image);
        self.forget_keys();
        self.clear_volatile();
        self.changed = true;
        Ok(Sw::Ok)
    }

    // ---- PINs ----

    fn resolve_pin(&self, r: PinRef) -> Option<usize> {
        let pins = &self.image.pins;
        let in_df = |p: &PinObject, df: &[u16]| p.reference.0 == r.reference && p.home().eq(df.iter().copied());
        match r.scope {
            PinScope::Global => pins.iter().position(|p| in_df(p, &[MF])),
            PinScope::Local => (1..=self.vol.df.len()).rev().find_map(|depth| {
                let prefix = self.vol.df.get(..depth)?;
                pins.iter().position(|p| in_df(p, prefix))
            }),
            PinScope::Anywhere => pins.iter().position(|p| p.reference.0 == r.reference),
        }
    }

    fn pin_mut(&mut self, idx: usize) -> Result<&mut PinObject> {
        self.image.pins.get_mut(idx).ok_or(Sw::Unknown)
    }

    fn verify(&mut self, pin: PinRef, data: Option<&[u8]>) -> Result<Sw> {
        let idx = self.resolve_pin(pin).ok_or(Sw::ReferencedDataNotFound)?;
        let verified = self.vol.verified.get(idx);
        let p = self.pin_mut(idx)?;
        if p.blocked() {
            return Err(Sw::AuthBlocked);
        }
        let Some(data) = data else {
            return Ok(if verified { Sw::Ok } else { Sw::TriesLeft(p.tries_left) });
        };
        if data.len() != usize::from(p.pad_len) {
            return Err(Sw::WrongLength);
        }
        if p.matches_padded(data) {
            if p.tries_left != p.max_tries {
                p.succeed();
                self.changed = true;
            }
            self.vol.verified.set(idx);
            Ok(Sw::Ok)
        } else {
            let sw = p.fail();
            self.changed = true;
            self.vol.verified.clear(idx);
            Err(sw)
        }
    }

    fn change_reference_data(&mut self, pin: PinRef, data: &[u8]) -> Result<Sw> {
        let idx = self.resolve_pin(pin).ok_or(Sw::ReferencedDataNotFound)?;
        let p = self.pin_mut(idx)?;
        if p.blocked() {
            return Err(Sw::AuthBlocked);
        }
        if data.len() != 2 * usize::from(p.pad_len) {
            return Err(Sw::WrongLength);
        }
        let (old, new) = data.split_at(usize::from(p.pad_len));
        let new = p.check_new_value(new)?.to_owned();
        if !p.matches_padded(old) {
            let sw = p.fail();
            self.changed = true;
            self.vol.verified.clear(idx);
            return Err(sw);
        }
        p.value = new;
        p.succeed();
        self.changed = true;
        self.vol.verified.set(idx);
        Ok(Sw::Ok)
    }

    fn reset_retry_counter(&mut self, pin: PinRef, proof: UnblockProof<'_>, new_pin: Option<&[u8]>) -> Result<Sw> {
        let idx = self.resolve_pin(pin).ok_or(Sw::ReferencedDataNotFound)?;
        let target = self.image.pins.get(idx).ok_or(Sw::Unknown)?;
        let puk_ref = target.unblocked_by.ok_or(Sw::ConditionsNotSatisfied)?;
        let puk_idx = self
            .image
            .pins
            .iter()
            .position(|q| q.reference == puk_ref && q.df == target.df)
            .or_else(|| self.image.pins.iter().position(|q| q.reference == puk_ref))
            .ok_or(Sw::ReferencedDataNotFound)?;
        let new_value = match new_pin {
            Some(n) => Some(target.check_new_value(n)?.to_owned()),
            None => None,
        };
        let puk = self.image.pins.get(puk_idx).ok_or(Sw::Unknown)?;
        if puk.blocked() {
            return Err(Sw::AuthBlocked);
        }
        let good = match proof {
            UnblockProof::Puk(code) => {
                if code.len() != usize::from(puk.pad_len) {
                    return Err(Sw::WrongLength);
                }
                puk.matches_padded(code)
            }
            UnblockProof::PukFile { code, path } => match fs::lookup(&self.image.mf, path).map(|n| &n.body) {
                Some(FileBody::Transparent { data }) => data.0 == code,
                _ => return Err(Sw::ReferencedDataNotFound),
            },
        };
        self.changed = true;
        if !good {
            return Err(self.pin_mut(puk_idx)?.fail());
        }
        self.pin_mut(puk_idx)?.succeed();
        let p = self.pin_mut(idx)?;
        p.succeed();
        if let Some(v) = new_value {
            p.value = v;
        }
        Ok(Sw::Ok)
    }

    fn create_pin(&mut self, pin: PinRef, tries: u8, value: &[u8]) -> Result<Sw> {
        let df = self.current_df()?;
        self.require(df.acl.create)?;
        if !(1..=15).contains(&tries) {
            return Err(Sw::WrongData);
        }
        let home: Vec<Hex16> = self.vol.df.iter().map(|f| Hex16(*f)).collect();
        let role = match pin.reference & 0x7F {
            0x04 => PinRole::Puk,
            _ => PinRole::User,
        };
        // CREATE PIN is Oberthur's (the only profile whose parser emits it).
        let template = profile::oberthur::awp_pin(pin.reference, role, home, tries);
        let idx = match self.resolve_pin(pin) {
            Some(i) => i,
            None => {
                if self.image.pins.len() >= crate::security::MAX_PINS {
                    return Err(Sw::NotEnoughMemory);
                }
                self.image.pins.push(template);
                self.image.pins.len() - 1
            }
        };
        let p = self.pin_mut(idx)?;
        let v = p.check_new_value(value)?.to_owned();
        p.value = v;
        p.max_tries = tries;
        p.tries_left = tries;
        self.vol.verified.clear(idx);
        self.changed = true;
        Ok(Sw::Ok)
    }

    // ---- keys and crypto ----

    fn key_index(&self, reference: u8) -> Option<usize> {
        self.image.keys.iter().position(|k| k.reference.0 == reference)
    }

    fn pin_index(&self, reference: Hex8) -> Option<usize> {
        self.image.pins.iter().position(|p| p.reference == reference)
    }

    fn mse_set(&mut self, op: SecOp, key: KeySelector) -> Result<Sw> {
        self.vol.se = None;
        if let KeySelector::Reference(r) | KeySelector::Pending(r) = key {
            let k = self.key_index(r).and_then(|i| self.image.keys.get(i)).ok_or(Sw::ReferencedDataNotFound)?;
            if matches!(key, KeySelector::Pending(_)) && k.pending.is_none() {
                return Err(Sw::ReferencedDataNotFound);
            }
            if !usage_allows(k.usage, op) {
                return Err(Sw::WrongData);
            }
        }
        self.vol.se = Some(SecurityEnvironment { op, key });
        Ok(Sw::Ok)
    }

    /// The key a PSO uses, after every check: SE for this operation, key present, usage, PIN.
    fn key_for(&mut self, op: SecOp) -> Result<(usize, u8, bool)> {
        let se = self.vol.se.ok_or(Sw::ConditionsNotSatisfied)?;
        if se.op != op {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let pending = matches!(se.key, KeySelector::Pending(_));
        let reference = match se.key {
            KeySelector::Reference(r) | KeySelector::Pending(r) => r,
            KeySelector::CurrentEf => {
                let ef = self.current_ef().map_err(|_| Sw::ConditionsNotSatisfied)?;
                match ef.body {
                    FileBody::PrivateKey { key, .. } => {
                        self.require(ef.acl.read)?;
                        key.0
                    }
                    _ => return Err(Sw::ConditionsNotSatisfied),
                }
            }
        };
        let ki = self.key_index(reference).ok_or(Sw::ReferencedDataNotFound)?;
        let key = self.image.keys.get(ki).ok_or(Sw::Unknown)?;
        let present = if pending { key.pending.is_some() } else { key.material.is_some() };
        if !present {
            return Err(Sw::ReferencedDataNotFound);
        }
        if !usage_allows(key.usage, op) {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let pin = self.pin_index(key.pin).ok_or(Sw::ReferencedDataNotFound)?;
        if !self.vol.verified.get(pin) {
            return Err(Sw::SecurityNotSatisfied);
        }
        Ok((ki, reference, pending))
    }

    /// Drops every parsed key (the key material changed).
    fn forget_keys(&mut self) {
        self.loaded.clear();
        #[cfg(feature = "openssl")]
        self.fast.clear();
    }

    #[cfg(feature = "openssl")]
    fn fast_key(&mut self, ki: usize, reference: u8, pending: bool) -> Result<usize> {
        if let Some(i) = self.fast.iter().position(|(r, p, _)| *r == reference && *p == pending) {
            return Ok(i);
        }
        let slot = self.image.keys.get(ki).ok_or(Sw::ReferencedDataNotFound)?;
        let material = if pending { slot.pending.as_ref() } else { slot.material.as_ref() };
        let key = crate::fast::FastKey::load(material.ok_or(Sw::ReferencedDataNotFound)?)?;
        self.fast.push((reference, pending, key));
        Ok(self.fast.len() - 1)
    }

    fn loaded_key(&mut self, ki: usize, reference: u8, pending: bool) -> Result<usize> {
        if let Some(i) = self.loaded.iter().position(|(r, p, _)| *r == reference && *p == pending) {
            return Ok(i);
        }
        let slot = self.image.keys.get(ki).ok_or(Sw::ReferencedDataNotFound)?;
        let material = if pending { slot.pending.as_ref() } else { slot.material.as_ref() };
        let key = material.ok_or(Sw::ReferencedDataNotFound)?.load()?;
        self.loaded.push((reference, pending, key));
        Ok(self.loaded.len() - 1)
    }

    /// After a private-key operation with an always-authenticate key, its PIN must be
    /// presented again.
    fn consume_authentication(&mut self, ki: usize) {
        if let Some(k) = self.image.keys.get(ki)
            && k.always_authenticate
            && let Some(p) = self.pin_index(k.pin)
        {
            self.vol.verified.clear(p);
        }
    }

    fn compute_signature(&mut self, input: &[u8], padding: SignPadding) -> Result<Sw> {
        let (ki, reference, pending) = self.key_for(SecOp::Sign)?;
        #[cfg(feature = "openssl")]
        if self.backend == crate::keys::Backend::OpenSsl {
            use crate::fast::FastKey;
            let fi = self.fast_key(ki, reference, pending)?;
            let (_, _, key) = self.fast.get(fi).ok_or(Sw::Unknown)?;
            let sig = match (key, padding) {
                (FastKey::EcP256(_), _) => key.ecdsa_sign_prehash(input)?,
                (FastKey::Rsa(_), SignPadding::Raw) => key.rsa_raw(input)?,
                (FastKey::Rsa(_), SignPadding::Pkcs1) => key.rsa_sign_digest_info(input)?,
            };
            self.consume_authentication(ki);
            self.emit(&sig)?;
            return Ok(Sw::Ok);
        }
        let li = self.loaded_key(ki, reference, pending)?;
        let (_, _, key) = self.loaded.get(li).ok_or(Sw::Unknown)?;
        let sig = match (key, padding) {
            (LoadedKey::EcP256(_), _) => key.ecdsa_sign_prehash(input)?,
            (LoadedKey::Rsa(_), SignPadding::Raw) => key.rsa_raw(input, &mut self.rng)?,
            (LoadedKey::Rsa(_), SignPadding::Pkcs1) => key.rsa_sign_digest_info(input, &mut self.rng)?,
        };
        self.consume_authentication(ki);
        self.emit(&sig)?;
        Ok(Sw::Ok)
    }

    fn decipher(&mut self, input: &[u8], unpad: bool) -> Result<Sw> {
        let (ki, reference, pending) = self.key_for(SecOp::Decipher)?;
        #[cfg(feature = "openssl")]
        if self.backend == crate::keys::Backend::OpenSsl {
            let fi = self.fast_key(ki, reference, pending)?;
            let (_, _, key) = self.fast.get(fi).ok_or(Sw::Unknown)?;
            let plain = if unpad { key.rsa_decrypt_pkcs1(input)? } else { key.rsa_raw(input)? };
            self.consume_authentication(ki);
            self.emit(&plain)?;
            return Ok(Sw::Ok);
        }
        let li = self.loaded_key(ki, reference, pending)?;
        let (_, _, key) = self.loaded.get(li).ok_or(Sw::Unknown)?;
        let plain =
            if unpad { key.rsa_decrypt_pkcs1(input, &mut self.rng)? } else { key.rsa_raw(input, &mut self.rng)? };
        self.consume_authentication(ki);
        self.emit(&plain)?;
        Ok(Sw::Ok)
    }

    fn get_response(&mut self, le: usize) -> Result<Sw> {
        let rest = self.pending.get(self.pending_pos..).unwrap_or(&[]);
        if rest.is_empty() {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let n = le.min(rest.len());
        let chunk = rest.get(..n).ok_or(Sw::Unknown)?;
        self.out.extend_from_slice(chunk).map_err(|_| Sw::Unknown)?;
        self.pending_pos += n;
        let left = self.pending.len() - self.pending_pos;
        if left == 0 {
            self.pending.clear();
            self.pending_pos = 0;
            Ok(Sw::Ok)
        } else {
            Ok(Sw::MoreData(left.min(256) as u8))
        }
    }

    fn find_file(&self, fid: u16, private: bool) -> Option<Path> {
        fn go(node: &FileNode, fid: u16, private: bool, path: &mut Path) -> bool {
            if path.push(node.fid.0).is_err() {
                return false;
            }
            let hit = node.fid.0 == fid
                && matches!(
                    (&node.body, private),
                    (FileBody::PrivateKey { .. }, true) | (FileBody::PublicKey { .. }, false)
                );
            if hit || node.children().iter().any(|c| go(c, fid, private, path)) {
                return true;
            }
            path.pop();
            false
        }
        let mut path = Path::new();
        go(&self.image.mf, fid, private, &mut path).then_some(path)
    }

    fn generate_key_pair(&mut self, spec: KeyGen) -> Result<Sw> {
        let (reference, algorithm) = match spec {
            KeyGen::Slot { key, algorithm, .. } => (key, algorithm),
            KeyGen::Files { public, private } => {
                let prv_path = self.find_file(private, true).ok_or(Sw::FileNotFound)?;
                let pub_path = self.find_file(public, false).ok_or(Sw::FileNotFound)?;
                let prv = fs::lookup(&self.image.mf, &prv_path).ok_or(Sw::FileNotFound)?;
                let publ = fs::lookup(&self.image.mf, &pub_path).ok_or(Sw::FileNotFound)?;
                self.require(prv.acl.update)?;
                match (&prv.body, &publ.body) {
                    (FileBody::PrivateKey { key, bits }, FileBody::PublicKey { key: pk, .. }) if key == pk => {
                        let alg = Algorithm::from_rsa_bits(usize::from(*bits)).ok_or(Sw::WrongData)?;
                        (key.0, alg)
                    }
                    _ => return Err(Sw::WrongData),
                }
            }
        };
        let ki = self.key_index(reference).ok_or(Sw::ReferencedDataNotFound)?;
        let slot = self.image.keys.get(ki).ok_or(Sw::Unknown)?;
        let pin = self.pin_index(slot.pin).ok_or(Sw::ReferencedDataNotFound)?;
        if !self.vol.verified.get(pin) {
            return Err(Sw::SecurityNotSatisfied);
        }
        if algorithm == Algorithm::EcP256 && !self.image.capabilities.p256 {
            return Err(Sw::WrongData);
        }
        let pending = matches!(spec, KeyGen::Slot { pending: true, .. });
        if pending && algorithm != slot.algorithm {
            // A renewal keeps the slot's algorithm.
            return Err(Sw::WrongData);
        }
        let old = match (pending, &slot.material, &slot.pending) {
            (false, Some(_), _) | (true, _, Some(_)) => slot.algorithm.eeprom_bytes(),
            _ => 0,
        };
        if algorithm.eeprom_bytes().saturating_sub(old) > self.image.eeprom_free() {
            return Err(Sw::NotEnoughMemory);
        }
        let material = KeyMaterial::generate(algorithm, &mut self.rng)?;
        let public = material.load()?.public();
        let slot = self.image.keys.get_mut(ki).ok_or(Sw::Unknown)?;
        if pending {
            slot.pending = Some(material);
        } else {
            slot.algorithm = algorithm;
            slot.material = Some(material);
        }
        self.forget_keys();
        self.changed = true;
        match (spec, public) {
            (KeyGen::Files { .. }, PublicKey::Rsa { modulus, .. }) => self.emit(&modulus)?,
            (_, public) => self.emit_public_template(&public)?,
        }
        Ok(Sw::Ok)
    }

    /// Makes the pending key of a slot its key and writes the slot's certificate EF, in one
    /// step: before it the old key and certificate are in use, after it the new ones.
    fn commit_key(&mut self, reference: u8, certificate: &[u8]) -> Result<Sw> {
        let ki = self.key_index(reference).ok_or(Sw::ReferencedDataNotFound)?;
        let slot = self.image.keys.get(ki).ok_or(Sw::Unknown)?;
        let pin = self.pin_index(slot.pin).ok_or(Sw::ReferencedDataNotFound)?;
        if !self.vol.verified.get(pin) {
            return Err(Sw::SecurityNotSatisfied);
        }
        if slot.pending.is_none() {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let path: Vec<u16> = slot.certificate.as_ref().ok_or(Sw::ReferencedDataNotFound)?.iter().map(|h| h.0).collect();
        let (parent, fid) = match path.split_last() {
            Some((fid, parent)) if !parent.is_empty() => (parent, *fid),
            _ => return Err(Sw::ReferencedDataNotFound),
        };
        let pin_ref = slot.pin;
        let old_len = fs::lookup(&self.image.mf, &path).map_or(0, FileNode::size);
        let grow = u32::try_from(certificate.len().saturating_sub(old_len)).unwrap_or(u32::MAX);
        if grow > self.image.eeprom_free() {
            return Err(Sw::NotEnoughMemory);
        }
        let dir =
            fs::lookup_mut(&mut self.image.mf, parent).and_then(FileNode::children_mut).ok_or(Sw::FileNotFound)?;
        let data = Bytes(certificate.to_vec());
        match dir.iter_mut().find(|c| c.fid.0 == fid) {
            Some(FileNode { body: FileBody::Transparent { data: d }, .. }) => *d = data,
            Some(_) => return Err(Sw::IncompatibleFile),
            None => dir.push(FileNode::new(
                fid,
                None,
                fs::Acl {
                    read: AccessCondition::Always,
                    update: AccessCondition::Pin(pin_ref),
                    create: AccessCondition::Never,
                    delete: AccessCondition::Never,
                },
                FileBody::Transparent { data },
            )),
        }
        let slot = self.image.keys.get_mut(ki).ok_or(Sw::Unknown)?;
        slot.material = slot.pending.take();
        self.forget_keys();
        self.changed = true;
        Ok(Sw::Ok)
    }

    /// ISO 7816-8 public-key template `7F49 { 81 n, 82 e }` or `7F49 { 86 point }`.
    fn emit_public_template(&mut self, public: &PublicKey) -> Result {
        let mut inner: HVec<u8, 600> = HVec::new();
        let mut put = |tag: u8, v: &[u8]| -> Result {
            inner.push(tag).map_err(|_| Sw::Unknown)?;
            ber_len(&mut inner, v.len())?;
            inner.extend_from_slice(v).map_err(|_| Sw::Unknown)
        };
        match public {
            PublicKey::Rsa { modulus, exponent } => {
                put(0x81, modulus)?;
                put(0x82, exponent)?;
            }
            PublicKey::EcP256 { point } => put(0x86, point)?,
        }
        self.emit(&[0x7F, 0x49])?;
        let mut len: HVec<u8, 3> = HVec::new();
        ber_len(&mut len, inner.len())?;
        self.emit(&len)?;
        self.emit(&inner)
    }

    fn read_public_component(&mut self, exponent: bool, _le: usize) -> Result<Sw> {
        let ef = self.current_ef()?;
        let FileBody::PublicKey { key, .. } = ef.body else {
            return Err(Sw::IncompatibleFile);
        };
        self.require(ef.acl.read)?;
        let ki = self.key_index(key.0).ok_or(Sw::ReferencedDataNotFound)?;
        let li = self.loaded_key(ki, key.0, false)?;
        let (_, _, loaded) = self.loaded.get(li).ok_or(Sw::Unknown)?;
        match loaded.public() {
            PublicKey::Rsa { modulus, exponent: e } => {
                let v = if exponent { e } else { modulus };
                self.emit(&v)?;
                Ok(Sw::Ok)
            }
            PublicKey::EcP256 { .. } => Err(Sw::IncompatibleFile),
        }
    }

    /// Whether a profile is the one given (for hosts).
    pub fn profile(&self) -> ProfileKind {
        self.image.profile
    }
}

fn current_df<'a>(image: &'a CardImage, vol: &Volatile) -> Result<&'a FileNode> {
    fs::lookup(&image.mf, &vol.df).ok_or(Sw::Unknown)
}

fn current_ef<'a>(image: &'a CardImage, vol: &Volatile) -> Result<&'a FileNode> {
    let fid = vol.ef.ok_or(Sw::NoCurrentEf)?;
    current_df(image, vol)?.child(fid).ok_or(Sw::NoCurrentEf)
}

/// Whether an access condition is met in this session.
fn require(image: &CardImage, vol: &Volatile, ac: AccessCondition) -> Result {
    let ok = match ac {
        AccessCondition::Always => true,
        AccessCondition::Never => false,
        AccessCondition::Pin(r) => image.pins.iter().enumerate().any(|(i, p)| p.reference == r && vol.verified.get(i)),
    };
    if ok { Ok(()) } else { Err(Sw::SecurityNotSatisfied) }
}

fn usage_allows(usage: KeyUsage, op: SecOp) -> bool {
    match op {
        SecOp::Sign => usage.sign,
        SecOp::Decipher => usage.decipher,
    }
}

fn ber_len<const N: usize>(out: &mut HVec<u8, N>, len: usize) -> Result {
    let bytes: &[u8] = match len {
        0..=0x7F => &[len as u8],
        0x80..=0xFF => &[0x81, len as u8],
        _ => &[0x82, (len >> 8) as u8, len as u8],
    };
    out.extend_from_slice(bytes).map_err(|_| Sw::Unknown)
}
