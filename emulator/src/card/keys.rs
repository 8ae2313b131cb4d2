//! The key room: MANAGE SECURITY ENVIRONMENT, PSO COMPUTE DIGITAL SIGNATURE and DECIPHER
//! (ISO 7816-8), GENERATE KEY PAIR and the renewal commit. Private-key operations go through
//! one key-backend interface ([`PrivateKey`]) whatever computes them; which environments exist,
//! the key-generation answer and a committed certificate's access rules are the profile's.

use super::{Card, Effect, Result, SecurityEnvironment};
use crate::command::{KeyGen, KeySelector, SecOp, SignPadding};
use crate::fs::{self, FileBody, FileNode, Path};
use crate::hex::Bytes;
use crate::image::CardImage;
use crate::keys::{Algorithm, Backend, KeyMaterial, KeyUsage, PrivateKey, PublicKey};
use crate::sw::Sw;

/// Private keys parsed into the backend, by reference and pending flag (derived from the
/// image; dropped whenever key material may have changed).
#[derive(Default)]
pub(super) struct KeyCache {
    backend: Backend,
    loaded: Vec<(u8, bool, Box<dyn PrivateKey>)>,
}

impl KeyCache {
    pub(super) fn set_backend(&mut self, backend: Backend) {
        if backend != self.backend {
            self.backend = backend;
            self.forget();
        }
    }

    pub(super) fn backend(&self) -> Backend {
        self.backend
    }

    pub(super) fn forget(&mut self) {
        self.loaded.clear();
    }

    /// The key of slot `ki` (its active or its pending material), parsed once.
    pub(super) fn get(
        &mut self,
        image: &CardImage,
        ki: usize,
        reference: u8,
        pending: bool,
    ) -> Result<&dyn PrivateKey> {
        let i = match self.loaded.iter().position(|(r, p, _)| *r == reference && *p == pending) {
            Some(i) => i,
            None => {
                let slot = image.keys.get(ki).ok_or(Sw::ReferencedDataNotFound)?;
                let material = if pending { slot.pending.as_ref() } else { slot.material.as_ref() };
                let key = self.backend.load(material.ok_or(Sw::ReferencedDataNotFound)?)?;
                self.loaded.push((reference, pending, key));
                self.loaded.len() - 1
            }
        };
        self.loaded.get(i).map(|(_, _, k)| k.as_ref()).ok_or(Sw::Unknown)
    }
}

fn usage_allows(usage: KeyUsage, op: SecOp) -> bool {
    match op {
        SecOp::Sign => usage.sign,
        SecOp::Decipher => usage.decipher,
    }
}

impl Card {
    pub(super) fn key_index(&self, reference: u8) -> Option<usize> {
        self.image.keys.iter().position(|k| k.reference.0 == reference)
    }

    /// Whether PIN `reference` (as a key names it) is verified in this session.
    fn key_pin_verified(&self, reference: crate::hex::Hex8) -> Result {
        let pin = self.pin_index(reference).ok_or(Sw::ReferencedDataNotFound)?;
        if self.vol.verified.get(pin) { Ok(()) } else { Err(Sw::SecurityNotSatisfied) }
    }

    /// MSE RESTORE: back to an environment the card has (the profile's), nothing chosen.
    pub(super) fn mse_restore(&mut self, se: u8) -> Result<Sw> {
        let profile = self.profile;
        profile.restore_se(&*self, se)?;
        self.vol.se = None;
        Ok(Sw::Ok)
    }

    pub(super) fn mse_set(&mut self, op: SecOp, key: KeySelector) -> Result<Sw> {
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
        self.key_pin_verified(key.pin)?;
        Ok((ki, reference, pending))
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

    pub(super) fn compute_signature(&mut self, input: &[u8], padding: SignPadding) -> Result<Sw> {
        let (ki, reference, pending) = self.key_for(SecOp::Sign)?;
        let sig = self.keys.get(&self.image, ki, reference, pending)?.sign(input, padding, &mut self.rng)?;
        self.consume_authentication(ki);
        self.effect = Effect::PrivateKeyOperation;
        self.reply.push(&sig)?;
        Ok(Sw::Ok)
    }

    pub(super) fn decipher(&mut self, input: &[u8], unpad: bool) -> Result<Sw> {
        let (ki, reference, pending) = self.key_for(SecOp::Decipher)?;
        let plain = self.keys.get(&self.image, ki, reference, pending)?.decipher(input, unpad, &mut self.rng)?;
        self.consume_authentication(ki);
        self.effect = Effect::PrivateKeyOperation;
        self.reply.push(&plain)?;
        Ok(Sw::Ok)
    }

    /// The key EF `fid` anywhere in the tree, private or public.
    fn find_key_file(&self, fid: u16, private: bool) -> Option<Path> {
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

    pub(super) fn generate_key_pair(&mut self, spec: KeyGen) -> Result<Sw> {
        let (reference, algorithm) = match spec {
            KeyGen::Slot { key, algorithm, .. } => (key, algorithm),
            KeyGen::Files { public, private } => {
                let prv_path = self.find_key_file(private, true).ok_or(Sw::FileNotFound)?;
                let pub_path = self.find_key_file(public, false).ok_or(Sw::FileNotFound)?;
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
        let pending = matches!(spec, KeyGen::Slot { pending: true, .. });
        let slot = self.image.keys.get(ki).ok_or(Sw::Unknown)?;
        self.key_pin_verified(slot.pin)?;
        // A slot whose certificate is installed is not regenerated in place: the card would
        // hold a key its certificate does not certify. That is `6985` (conditions of use not
        // satisfied: ISO 7816-4's answer when an object's state forbids the operation, as
        // cards answer a GENERATE on a key that is in use); a renewal generates the pending
        // key (`P1 = 80`) and commits it with its certificate (`P1 = 81`), and a card erased
        // of its certificates may be regenerated. (A chip that knows nothing of certificates,
        // the Incrypto34, generates through `Ctx::generate_key`.)
        let certified = slot.certificate.as_ref().is_some_and(|path| {
            let path: Vec<u16> = path.iter().map(|h| h.0).collect();
            fs::lookup(&self.image.mf, &path).is_some()
        });
        if !pending && certified {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let public = self.generate_into(ki, algorithm, pending)?;
        self.profile.keygen_reply(&public, &mut self.reply)?;
        Ok(Sw::Ok)
    }

    /// Generates a key pair into slot `ki` (as its pending key for a renewal), within the
    /// card's capabilities and its EEPROM; the public half for the answer. The caller has
    /// checked that the session may (the slot's PIN, and no installed certificate).
    pub(super) fn generate_into(&mut self, ki: usize, algorithm: Algorithm, pending: bool) -> Result<PublicKey> {
        let slot = self.image.keys.get(ki).ok_or(Sw::Unknown)?;
        if algorithm == Algorithm::EcP256 && !self.image.capabilities.p256 {
            return Err(Sw::WrongData);
        }
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
        let public = self.keys.backend().load(&material)?.public()?;
        let slot = self.image.keys.get_mut(ki).ok_or(Sw::Unknown)?;
        if pending {
            slot.pending = Some(material);
        } else {
            slot.algorithm = algorithm;
            slot.material = Some(material);
        }
        self.keys.forget();
        self.changed = true;
        self.effect = Effect::KeyGeneration;
        Ok(public)
    }

    /// Makes the pending key of a slot its key and writes the slot's certificate EF, in one
    /// step: before it the old key and certificate are in use, after it the new ones.
    pub(super) fn commit_key(&mut self, reference: u8, certificate: &[u8]) -> Result<Sw> {
        let ki = self.key_index(reference).ok_or(Sw::ReferencedDataNotFound)?;
        let slot = self.image.keys.get(ki).ok_or(Sw::Unknown)?;
        self.key_pin_verified(slot.pin)?;
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
        let profile = self.profile;
        let dir =
            fs::lookup_mut(&mut self.image.mf, parent).and_then(FileNode::children_mut).ok_or(Sw::FileNotFound)?;
        let data = Bytes(certificate.to_vec());
        match dir.iter_mut().find(|c| c.fid.0 == fid) {
            Some(FileNode { body: FileBody::Transparent { data: d }, .. }) => *d = data,
            Some(_) => return Err(Sw::IncompatibleFile),
            None => {
                dir.push(FileNode::new(fid, None, profile.certificate_acl(pin_ref)?, FileBody::Transparent { data }))
            }
        }
        let slot = self.image.keys.get_mut(ki).ok_or(Sw::Unknown)?;
        slot.material = slot.pending.take();
        self.keys.forget();
        self.changed = true;
        Ok(Sw::Ok)
    }
}
