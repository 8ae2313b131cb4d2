//! The file room: SELECT (ISO 7816-4 §11.1.1), READ/UPDATE BINARY, the record commands,
//! CREATE and DELETE FILE, under access conditions and the modelled EEPROM capacity. The FCP,
//! the applications selectable by AID and the key objects key EFs bring come from the
//! profile.

use super::{Card, Result, Volatile};
use crate::apdu::MAX_RESPONSE_DATA;
use crate::command::{NewFile, NewFileKind, Select, SelectTarget};
use crate::fs::{self, AccessCondition, FileBody, FileNode, MF, Path};
use crate::hex::{Bytes, Hex8};
use crate::image::CardImage;
use crate::profile::Application;
use crate::sw::Sw;

pub(super) fn current_df<'a>(image: &'a CardImage, vol: &Volatile) -> Result<&'a FileNode> {
    fs::lookup(&image.mf, &vol.df).ok_or(Sw::Unknown)
}

pub(super) fn current_ef<'a>(image: &'a CardImage, vol: &Volatile) -> Result<&'a FileNode> {
    let fid = vol.ef.ok_or(Sw::NoCurrentEf)?;
    current_df(image, vol)?.child(fid).ok_or(Sw::NoCurrentEf)
}

/// Whether an access condition is met in this session.
pub(super) fn require(image: &CardImage, vol: &Volatile, ac: AccessCondition) -> Result {
    let ok = match ac {
        AccessCondition::Always => true,
        AccessCondition::Never => false,
        AccessCondition::Pin(r) => image.pins.iter().enumerate().any(|(i, p)| p.reference == r && vol.verified.get(i)),
    };
    if ok { Ok(()) } else { Err(Sw::SecurityNotSatisfied) }
}

impl Card {
    pub(super) fn current_df(&self) -> Result<&FileNode> {
        current_df(&self.image, &self.vol)
    }

    pub(super) fn current_ef(&self) -> Result<&FileNode> {
        current_ef(&self.image, &self.vol)
    }

    pub(super) fn require(&self, ac: AccessCondition) -> Result {
        require(&self.image, &self.vol, ac)
    }

    fn current_ef_mut(&mut self) -> Result<&mut FileNode> {
        let fid = self.vol.ef.ok_or(Sw::NoCurrentEf)?;
        fs::lookup_mut(&mut self.image.mf, &self.vol.df).and_then(|df| df.child_mut(fid)).ok_or(Sw::NoCurrentEf)
    }

    /// Resolves a path of FIDs (2 bytes each) from `df`; every element but the last must be a
    /// DF. Returns the new DF path and the selected EF.
    fn walk_path(&self, mut df: Path, bytes: &[u8]) -> Result<(Path, Option<u16>)> {
        let mut ef = None;
        for pair in bytes.chunks_exact(2) {
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
        }
        Ok((df, ef))
    }

    pub(super) fn select(&mut self, s: Select<'_>) -> Result<Sw> {
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
            SelectTarget::DfName(name) => match self.profile.application(name) {
                Some(Application::Other) => {
                    if s.return_fcp {
                        self.profile.fci(name, &mut self.reply)?;
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
            let fcp = self.profile.fcp(&self.image, node)?;
            self.reply.push(&fcp)?;
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

    /// Whether the current EF is one of the profile's secret files.
    fn current_ef_secret(&self) -> bool {
        let Some(ef) = self.vol.ef else { return false };
        self.profile
            .secret_files()
            .iter()
            .any(|f| f.path.split_last().is_some_and(|(fid, df)| *fid == ef && df == self.vol.df.as_slice()))
    }

    pub(super) fn read_binary(&mut self, offset: usize, le: usize) -> Result<Sw> {
        let ef = current_ef(&self.image, &self.vol)?;
        require(&self.image, &self.vol, ef.acl.read)?;
        self.secret_reply = self.current_ef_secret();
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
        self.reply.push(data.get(offset..offset + n).ok_or(Sw::OffsetOutsideFile)?)?;
        Ok(if eof { Sw::EndOfFile } else { Sw::Ok })
    }

    pub(super) fn update_binary(&mut self, offset: usize, bytes: &[u8]) -> Result<Sw> {
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

    pub(super) fn read_record(&mut self, record: u8, _le: usize) -> Result<Sw> {
        let ef = current_ef(&self.image, &self.vol)?;
        require(&self.image, &self.vol, ef.acl.read)?;
        let FileBody::Records { records, .. } = &ef.body else {
            return Err(Sw::IncompatibleFile);
        };
        let r = records.get(usize::from(record) - 1).ok_or(Sw::RecordNotFound)?;
        self.reply.push(&r.0)?;
        Ok(Sw::Ok)
    }

    /// UPDATE RECORD (`Some(n)`) or APPEND RECORD (`None`).
    pub(super) fn write_record(&mut self, record: Option<u8>, bytes: &[u8]) -> Result<Sw> {
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

    pub(super) fn delete_record(&mut self, record: u8) -> Result<Sw> {
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

    pub(super) fn create_file(&mut self, spec: NewFile) -> Result<Sw> {
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
        if let NewFileKind::PrivateKey { bits } | NewFileKind::PublicKey { bits } = spec.kind
            && self.key_index(spec.fid as u8).is_none()
        {
            let key = self.profile.key_file_object(&self.image, spec.fid, bits, spec.acl)?;
            self.image.keys.push(key);
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

    pub(super) fn delete_file(&mut self, fid: u16, df: Option<bool>) -> Result<Sw> {
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
            self.keys.forget();
        }
        if self.vol.ef == Some(fid) {
            self.vol.ef = None;
        }
        self.changed = true;
        Ok(Sw::Ok)
    }
}
