//! Files that hold card state and secrets: the one place firmalab reads and writes them.
//!
//! * [`read_bounded`] / [`read_text`]: only regular files (never a FIFO, a device or a
//!   directory: opened non-blocking and checked before reading), at most [`MAX_INPUT_BYTES`].
//! * [`write_private`]: atomic replacement. The new content goes to a temporary file created
//!   exclusively (`O_EXCL`, so never through a planted link) with a random name next to the
//!   real file, mode `0600`, fsynced, given the old file's mode and owner, renamed over the
//!   target, and the folder fsynced. A crash leaves the old file or the new one, never a mix
//!   (and maybe a temporary file: `0600`, or the old file's mode if the kill fell between the
//!   chmod and the rename, so never readable by anyone who cannot read the file itself);
//!   a symlinked path is written to the file it points to and stays a link. New files are
//!   `0600` (they hold PINs, PUKs and private keys); an existing file keeps its mode.
//! * [`WriteLock`]: an exclusive lock for a process that writes a file for its whole life. A
//!   second holder is refused with the first one's pid. The lock is `flock(2)` on a lock file
//!   `.NAME.lock` next to the real file (the file itself is replaced on every save, so it
//!   cannot carry the lock); the lock file holds the pid and is removed on release.
//! * [`remove_stale_temps`]: temporary files a killed writer left behind.
//!
//! Linux/Unix only, like the rest of the emulator's I/O.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest file firmalab reads: images, transcripts, scenarios, the back office.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Mode of every file firmalab creates that may hold a secret.
pub const PRIVATE_MODE: u32 = 0o600;

/// Random characters in a temporary file's name.
const TEMP_RANDOM_LEN: usize = 12;

/// Longest chain of symbolic links followed to the real file.
const MAX_LINKS: usize = 40;

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Reads a whole regular file of at most [`MAX_INPUT_BYTES`].
///
/// The file is opened non-blocking (a FIFO never hangs the open) and its type checked on the
/// open descriptor; the read stops one byte past the limit, so a file growing while it is read
/// cannot make it unbounded either.
pub fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    read_bounded_with_limit(path, MAX_INPUT_BYTES)
}

fn read_bounded_with_limit(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{} is {}: only regular files are read", path.display(), kind_of(&meta)),
        ));
    }
    let too_large = || {
        io::Error::new(
            ErrorKind::FileTooLarge,
            format!("{} is larger than {} MiB, the most firmalab reads", path.display(), limit / (1024 * 1024)),
        )
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_bounded(path)?)
        .map_err(|e| io::Error::new(ErrorKind::InvalidData, format!("{} is not UTF-8 text: {e}", path.display())))
}

/// The file `path` really names: symbolic links followed (relative ones from their own
/// folder) to a path that is not a link. The result need not exist yet.
pub fn resolve_target(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p)?;
                p = if link.is_absolute() { link } else { folder_of(&p).join(link) };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(ErrorKind::InvalidInput, format!("{}: too many levels of symbolic links", path.display())))
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn file_name_of(path: &Path) -> io::Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, format!("{} does not name a file", path.display())))
}

/// Replaces `path` atomically with `bytes` (see the module documentation): a new file gets
/// mode `0600`, an existing one keeps its mode (and owner, where the process may set it); a
/// symlinked path is written to its target.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_private_with(path, bytes, &mut |f, b| f.write_all(b))
}

/// [`write_private`] with the content written by `write` (tests inject failures here).
pub fn write_private_with(
    path: &Path,
    bytes: &[u8],
    write: &mut dyn FnMut(&mut File, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let target = resolve_target(path)?;
    let dir = folder_of(&target);
    let name = file_name_of(&target)?;
    let existing = match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_file() => Some(m),
        Ok(m) => {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("{} is {}, not a file to replace", target.display(), kind_of(&m)),
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .rand_bytes(TEMP_RANDOM_LEN)
        .permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))
        .tempfile_in(&dir)?;
    // Exactly 0600 whatever the umask, before a byte is written.
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))?;
    write(tmp.as_file_mut(), bytes)?;
    tmp.as_file().sync_all()?;
    if let Some(old) = &existing {
        // Keep the owner where allowed (root saving someone's image), then the mode.
        if old.uid() != tmp.as_file().metadata()?.uid() || old.gid() != tmp.as_file().metadata()?.gid() {
            let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid()));
        }
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))?;
    }
    // On failure the temporary file is removed when `tmp` (or the error holding it) drops.
    tmp.persist(&target).map_err(|e| e.error)?;
    if let Ok(d) = File::open(&dir) {
        // Persist the rename. Some filesystems refuse fsync on a folder; the rename is done
        // either way, so this is not a failed save.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether `file_name` is a temporary file [`write_private`] makes (or an older firmalab
/// made: `.NAME.PID.N.tmp`) for the file called `name`.
pub fn is_temp_of(name: &str, file_name: &str) -> bool {
    let Some(rest) = file_name.strip_prefix('.').and_then(|r| r.strip_prefix(name)).and_then(|r| r.strip_prefix('.'))
    else {
        return false;
    };
    let Some(middle) = rest.strip_suffix(".tmp") else { return false };
    let random = middle.len() == TEMP_RANDOM_LEN && middle.bytes().all(|b| b.is_ascii_alphanumeric());
    let legacy = middle.split_once('.').is_some_and(|(pid, n)| {
        !pid.is_empty()
            && !n.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    random || legacy
}

/// Removes the temporary files of `path`'s real file that a killed writer left in its folder
/// (only regular files with exactly the temporary-name pattern). Call it while holding the
/// file's [`WriteLock`], so no live writer's file is taken. Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> io::Result<usize> {
    let target = resolve_target(path)?;
    let dir = folder_of(&target);
    let name = file_name_of(&target)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        if !is_temp_of(&name, &file_name.to_string_lossy()) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// An exclusive, process-lifetime lock on a file that this process writes.
///
/// Held until dropped (or the process ends, even by `kill -9`: the kernel releases `flock`
/// locks with the descriptor). Two `WriteLock`s on one file conflict even inside one process.
#[derive(Debug)]
pub struct WriteLock {
    file: File,
    lock_path: PathBuf,
    target: PathBuf,
}

/// Why a [`WriteLock`] could not be taken because someone holds it.
pub fn held_by(pid: Option<u32>) -> String {
    match pid {
        Some(p) if p == std::process::id() => "already open for writing in this process".into(),
        Some(p) => format!("in use by process {p} (another firmalab has it open for writing)"),
        None => "in use by another process (its pid is not recorded)".into(),
    }
}

impl WriteLock {
    /// Locks `path` (its real file, symlinks followed) for writing, or fails at once with
    /// [`ErrorKind::WouldBlock`] and a message naming the holder's pid.
    pub fn acquire(path: &Path) -> io::Result<WriteLock> {
        let target = resolve_target(path)?;
        let lock_path = folder_of(&target).join(format!(".{}.lock", file_name_of(&target)?));
        for _ in 0..100 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&lock_path)
                .map_err(|e| io::Error::new(e.kind(), format!("lock file {}: {e}", lock_path.display())))?;
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(io::Error::new(
                    ErrorKind::InvalidInput,
                    format!("lock file {} is {}", lock_path.display(), kind_of(&meta)),
                ));
            }
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(io::Error::new(ErrorKind::WouldBlock, held_by(read_pid(&mut file))));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(io::Error::new(e.kind(), format!("cannot lock {}: {e}", lock_path.display())));
                }
            }
            // The previous holder removes the lock file while it still holds the lock: if
            // that happened between our open and our lock, we hold a lock on a removed file.
            let same =
                std::fs::symlink_metadata(&lock_path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
            if !same {
                continue;
            }
            // The pid is for the message of whoever comes next. On a full filesystem it may not
            // fit: the lock holds all the same.
            file.set_len(0)?;
            if file.write_all(format!("{}\n", std::process::id()).as_bytes()).is_err() {
                let _ = file.set_len(0);
            }
            return Ok(WriteLock { file, lock_path, target });
        }
        Err(io::Error::new(ErrorKind::WouldBlock, format!("lock file {} keeps changing", lock_path.display())))
    }

    /// The real file the lock covers (symlinks resolved when it was taken): write there.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The lock file (`.NAME.lock` next to the real file).
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    use std::io::Seek;
    // The holder writes its pid right after locking: give it a moment.
    for _ in 0..20 {
        let mut text = String::new();
        if file.rewind().is_ok()
            && file.read_to_string(&mut text).is_ok()
            && let Ok(pid) = text.trim().parse()
        {
            return Some(pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Remove the lock file while still holding the lock (see `acquire`), and only if it is
        // still ours; the lock itself goes with the descriptor.
        if let (Ok(mine), Ok(there)) = (self.file.metadata(), std::fs::symlink_metadata(&self.lock_path))
            && mine.dev() == there.dev()
            && mine.ino() == there.ino()
        {
            let _ = std::fs::remove_file(&self.lock_path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn temp_names_are_recognised_only_for_their_own_file() {
        assert!(is_temp_of("card.json", ".card.json.AbCdEf012345.tmp"));
        assert!(is_temp_of("card.json", ".card.json.4242.0.tmp"));
        assert!(!is_temp_of("card.json", ".card.json.x.AbCdEf012345.tmp"));
        assert!(!is_temp_of("card.json", ".card.json.lock"));
        assert!(!is_temp_of("card.json", ".card.json.AbCdEf01234.tmp"));
        assert!(!is_temp_of("card.json", "card.json"));
        assert!(!is_temp_of("card", ".card.json.AbCdEf012345.tmp"));
    }

    #[test]
    fn a_file_one_byte_past_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, [b'a'; 11]).unwrap();
        assert_eq!(read_bounded_with_limit(&f, 11).unwrap().len(), 11);
        let e = read_bounded_with_limit(&f, 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FileTooLarge);
    }
}
