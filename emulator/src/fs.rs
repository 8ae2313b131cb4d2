//! The ISO 7816-4 file system: MF / DF / EF as a tree of [`FileNode`]s, access conditions,
//! paths, and the modelled EEPROM capacity.
//!
//! The tree is the persistent state itself (it is what a card image stores); navigation walks
//! it from the MF by FID path, which needs no allocation: a [`Path`] is a bounded vector.

use crate::hex::{Bytes, Hex8, Hex16};
use heapless::Vec as HVec;
use serde::{Deserialize, Serialize};

/// Deepest DF nesting a card may have (MF counts as 1). The deepest real path is
/// `3F00/5011/9002/30nn` (Oberthur) or `3F00/1400/8110/8010` (CNS): 4 levels.
pub const MAX_DEPTH: usize = 8;

/// Bytes of EEPROM a file header (FCP, ACL, tree links) costs, on top of its content.
pub const FILE_OVERHEAD: u32 = 32;

/// FID of the master file.
pub const MF: u16 = 0x3F00;

/// A DF path from the MF, the MF's FID first.
pub type Path = HVec<u16, MAX_DEPTH>;

/// Who may perform an operation on a file (ISO 7816-4 §9, security attributes).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AccessCondition {
    /// Always allowed.
    Always,
    /// Never allowed.
    Never,
    /// Allowed once the PIN with this reference is verified in the current session.
    Pin(Hex8),
}

/// The access conditions of a file.
///
/// For an EF: `read` = READ BINARY / READ RECORD (for a key file: use in a crypto operation),
/// `update` = UPDATE BINARY / RECORD (for a key file: key generation into it). For a DF:
/// `read` = LIST FILES, `create` = CREATE FILE under it (and PIN definition), `delete` =
/// DELETE FILE of its children.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    pub read: AccessCondition,
    pub update: AccessCondition,
    pub create: AccessCondition,
    pub delete: AccessCondition,
}

impl Acl {
    /// Everything allowed, nothing deletable.
    pub const fn open_read_only() -> Self {
        Acl {
            read: AccessCondition::Always,
            update: AccessCondition::Never,
            create: AccessCondition::Never,
            delete: AccessCondition::Never,
        }
    }
}

/// One file of the tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNode {
    pub fid: Hex16,
    /// What the file is, for people reading an image (`EF_IDCarta`); not used by the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub acl: Acl,
    pub body: FileBody,
}

/// What a file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FileBody {
    /// A dedicated file, optionally with a DF name (AID).
    Df {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aid: Option<Bytes>,
        children: Vec<FileNode>,
    },
    /// A transparent EF; its size is fixed at creation and is `data.len()`.
    Transparent { data: Bytes },
    /// A linear record EF (Oberthur linear-variable), records of at most `record_len` bytes.
    Records { record_len: u8, max_records: u8, records: Vec<Bytes> },
    /// An RSA private-key EF (Oberthur type 14); the key lives in the key store under `key`.
    PrivateKey { key: Hex8, bits: u16 },
    /// An RSA public-key EF (Oberthur type 12) showing the public half of key `key`.
    PublicKey { key: Hex8, bits: u16 },
    /// EF_MemoriaResidua (CNS `3F00/1200/1202`): 4 bytes, big endian, the free EEPROM bytes,
    /// computed when read.
    FreeMemory,
}

impl FileNode {
    pub fn new(fid: u16, name: Option<&str>, acl: Acl, body: FileBody) -> Self {
        FileNode { fid: Hex16(fid), name: name.map(str::to_owned), acl, body }
    }

    pub fn is_df(&self) -> bool {
        matches!(self.body, FileBody::Df { .. })
    }

    pub fn children(&self) -> &[FileNode] {
        match &self.body {
            FileBody::Df { children, .. } => children,
            _ => &[],
        }
    }

    pub fn children_mut(&mut self) -> Option<&mut Vec<FileNode>> {
        match &mut self.body {
            FileBody::Df { children, .. } => Some(children),
            _ => None,
        }
    }

    pub fn child(&self, fid: u16) -> Option<&FileNode> {
        self.children().iter().find(|c| c.fid.0 == fid)
    }

    pub fn child_mut(&mut self, fid: u16) -> Option<&mut FileNode> {
        self.children_mut()?.iter_mut().find(|c| c.fid.0 == fid)
    }

    /// Content size as the FCP reports it.
    pub fn size(&self) -> usize {
        match &self.body {
            FileBody::Df { .. } => 0,
            FileBody::Transparent { data } => data.0.len(),
            FileBody::Records { record_len, max_records, .. } => usize::from(*record_len) * usize::from(*max_records),
            FileBody::PrivateKey { bits, .. } | FileBody::PublicKey { bits, .. } => usize::from(*bits) / 8,
            FileBody::FreeMemory => 4,
        }
    }

    /// EEPROM bytes this file and everything under it occupy (key material is counted by the
    /// key store, not here).
    pub fn eeprom_used(&self) -> u32 {
        let own = FILE_OVERHEAD
            + match &self.body {
                FileBody::PrivateKey { .. } | FileBody::PublicKey { .. } => 0,
                _ => u32::try_from(self.size()).unwrap_or(u32::MAX),
            };
        self.children().iter().fold(own, |acc, c| acc.saturating_add(c.eeprom_used()))
    }

    /// Visits every node (depth first).
    pub fn walk(&self, f: &mut impl FnMut(&FileNode)) {
        f(self);
        for c in self.children() {
            c.walk(f);
        }
    }
}

/// The node at `path` (MF first), if every element exists.
pub fn lookup<'a>(mf: &'a FileNode, path: &[u16]) -> Option<&'a FileNode> {
    let (first, rest) = path.split_first()?;
    if *first != mf.fid.0 {
        return None;
    }
    rest.iter().try_fold(mf, |node, fid| node.child(*fid))
}

/// Mutable [`lookup`].
pub fn lookup_mut<'a>(mf: &'a mut FileNode, path: &[u16]) -> Option<&'a mut FileNode> {
    let (first, rest) = path.split_first()?;
    if *first != mf.fid.0 {
        return None;
    }
    let mut node = mf;
    for fid in rest {
        node = node.child_mut(*fid)?;
    }
    Some(node)
}

/// Builds a path from a slice; `None` when it is deeper than [`MAX_DEPTH`].
pub fn path_of(fids: &[u16]) -> Option<Path> {
    Path::from_slice(fids).ok()
}

/// Writes a path as `3F00/1400/9010`.
pub fn display_path(path: &[u16]) -> String {
    path.iter().map(|f| format!("{f:04X}")).collect::<Vec<_>>().join("/")
}

/// Parses `3F00/1400/9010` or `3F0014009010`.
pub fn parse_path(s: &str) -> Result<Vec<u16>, String> {
    let digits: String = s.chars().filter(|c| *c != '/').collect();
    let bytes = crate::hex::decode(&digits)?;
    if bytes.is_empty() || bytes.len() % 2 != 0 {
        return Err(format!("{s:?} is not a path of 2-byte file IDs"));
    }
    Ok(bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> FileNode {
        let ef = FileNode::new(0x1003, None, Acl::open_read_only(), FileBody::Transparent { data: Bytes(vec![0; 16]) });
        let df = FileNode::new(0x1000, None, Acl::open_read_only(), FileBody::Df { aid: None, children: vec![ef] });
        FileNode::new(MF, None, Acl::open_read_only(), FileBody::Df { aid: None, children: vec![df] })
    }

    #[test]
    fn lookup_walks_paths_from_the_mf_only() {
        let mf = tree();
        assert_eq!(lookup(&mf, &[0x3F00, 0x1000, 0x1003]).map(|n| n.size()), Some(16));
        assert!(lookup(&mf, &[0x1000, 0x1003]).is_none());
        assert!(lookup(&mf, &[0x3F00, 0x1003]).is_none());
        assert_eq!(mf.eeprom_used(), 3 * FILE_OVERHEAD + 16);
        assert_eq!(parse_path("3F00/1000"), Ok(vec![0x3F00, 0x1000]));
        assert_eq!(display_path(&[0x3F00, 0x1000]), "3F00/1000");
    }
}
