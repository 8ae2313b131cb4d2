//! The file machinery every card image, back office, transcript and scenario goes through
//! (`firmalab_emulator::storage`): exclusive locks, atomic private writes, bounded reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::CardImage;
use firmalab_emulator::image::ImageFile;
use firmalab_emulator::storage::{self, MAX_INPUT_BYTES, WriteLock};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(fixture_path(name), &p).unwrap();
    p
}

#[test]
fn lock_rule_a_second_writer_is_refused_at_once_and_the_lock_goes_with_its_holder() {
    let dir = scratch();
    let img = copy_fixture(dir.path(), "cns-renewable.json");
    let before = std::fs::read(&img).unwrap();
    let (first, _) = ImageFile::open(&img).unwrap();
    let lock_file = dir.path().join(".cns-renewable.json.lock");
    assert_eq!(std::fs::read_to_string(&lock_file).unwrap().trim(), std::process::id().to_string(), "the pid");

    let started = Instant::now();
    let e = ImageFile::open(&img).unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(2), "refused at once, not after waiting");
    assert!(e.contains(&img.display().to_string()) && e.contains("already open for writing in this process"), "{e}");
    // Another name for the same file (a symlink) is the same lock.
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("cns-renewable.json", &link).unwrap();
    assert!(ImageFile::open(&link).is_err(), "a symlink to a locked image is locked too");
    assert_eq!(std::fs::read(&img).unwrap(), before, "the image is untouched");

    drop(first);
    assert!(!lock_file.exists(), "the lock file goes with the lock");
    let (again, _) = ImageFile::open(&link).unwrap();
    drop(again);
}

#[test]
fn lock_rule_a_lock_file_left_by_a_killed_process_does_not_block() {
    let dir = scratch();
    let img = copy_fixture(dir.path(), "cns-renewable.json");
    // What kill -9 leaves: the lock file with a dead pid, but no lock on it.
    std::fs::write(dir.path().join(".cns-renewable.json.lock"), "999999\n").unwrap();
    let (file, _) = ImageFile::open(&img).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".cns-renewable.json.lock")).unwrap().trim(),
        std::process::id().to_string()
    );
    drop(file);
}

#[test]
fn lock_rule_a_planted_symlink_as_lock_file_is_refused_not_followed() {
    let dir = scratch();
    let img = copy_fixture(dir.path(), "cns-renewable.json");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(".cns-renewable.json.lock")).unwrap();
    let e = WriteLock::acquire(&img).unwrap_err().to_string();
    assert!(e.contains("lock file"), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn save_rule_temp_files_are_exclusive_random_private_and_next_to_the_real_file() {
    let dir = scratch();
    let target = dir.path().join("card.json");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    // Links planted at the names an older firmalab used are never followed.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    for n in 0..4 {
        std::os::unix::fs::symlink(&victim, dir.path().join(format!(".card.json.{}.{n}.tmp", std::process::id())))
            .unwrap();
    }
    let mut seen = vec![];
    for _ in 0..2 {
        storage::write_private_with(&target, b"new", &mut |f, bytes| {
            use std::io::Write;
            use std::os::unix::fs::MetadataExt;
            assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o600, "0600 while the secrets are written");
            let temps: Vec<String> = names(dir.path())
                .into_iter()
                .filter(|n| storage::is_temp_of("card.json", n) && !n.contains(&std::process::id().to_string()))
                .collect();
            assert_eq!(temps.len(), 1, "{temps:?}");
            seen.push(temps[0].clone());
            f.write_all(bytes)
        })
        .unwrap();
    }
    assert_ne!(seen[0], seen[1], "a random name each time");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    assert_eq!(mode(&target), 0o640, "the existing mode is kept");
}

#[test]
fn save_rule_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file() {
    let dir = scratch();
    let target = dir.path().join("card.json");
    std::fs::write(&target, "old").unwrap();
    let e = storage::write_private_with(&target, b"new", &mut |_, _| {
        Err(std::io::Error::new(ErrorKind::StorageFull, "no space left on device"))
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageFull);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
    assert_eq!(names(dir.path()), ["card.json"]);
}

#[test]
fn save_rule_a_symlinked_image_is_written_to_its_target_and_stays_a_link() {
    let dir = scratch();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let real = copy_fixture(&dir.path().join("real"), "cns-renewable.json");
    let link = dir.path().join("card.json");
    std::os::unix::fs::symlink("real/cns-renewable.json", &link).unwrap();
    let (mut file, mut image) = ImageFile::open(&link).unwrap();
    image.description = "saved through the link".into();
    file.save(&image).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(CardImage::load(&real).unwrap().description, "saved through the link");
    assert_eq!(names(dir.path()), ["card.json", "real"], "lock and temporary files live next to the real file");
    assert_eq!(names(&dir.path().join("real")), [".cns-renewable.json.lock", "cns-renewable.json"]);
    drop(file);
    assert_eq!(names(&dir.path().join("real")), ["cns-renewable.json"]);
}

#[test]
fn save_rule_stale_temp_files_of_the_image_are_removed_when_it_is_opened() {
    let dir = scratch();
    let img = copy_fixture(dir.path(), "cns-renewable.json");
    for stale in [".cns-renewable.json.AbCdEf012345.tmp", ".cns-renewable.json.4242.7.tmp"] {
        std::fs::write(dir.path().join(stale), "PIN 12345678").unwrap();
    }
    // Not this image's: another image's temp file, and an image whose name extends this one.
    for other in [".other.json.AbCdEf012345.tmp", ".cns-renewable.json.x.AbCdEf012345.tmp"] {
        std::fs::write(dir.path().join(other), "").unwrap();
    }
    let (file, _) = ImageFile::open(&img).unwrap();
    assert_eq!(
        names(dir.path()),
        [
            ".cns-renewable.json.lock",
            ".cns-renewable.json.x.AbCdEf012345.tmp",
            ".other.json.AbCdEf012345.tmp",
            "cns-renewable.json"
        ]
    );
    drop(file);
}

#[test]
fn mode_rule_new_files_are_0600_and_existing_modes_are_kept() {
    let dir = scratch();
    let fresh = dir.path().join("fresh.json");
    image("cns-renewable.json").save(&fresh).unwrap();
    assert_eq!(mode(&fresh), 0o600);
    let shared = dir.path().join("shared.json");
    std::fs::write(&shared, "x").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    image("cns-renewable.json").save(&shared).unwrap();
    assert_eq!(mode(&shared), 0o644, "a mode the owner chose is kept");
    let private = copy_fixture(dir.path(), "cns-expired.json");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (mut file, image) = ImageFile::open(&private).unwrap();
    file.save(&image).unwrap();
    assert_eq!(mode(&private), 0o600, "a 0600 image stays 0600 after a save");
}

#[test]
fn input_rule_only_regular_files_are_read() {
    let dir = scratch();
    let e = CardImage::load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("a character device") && e.contains("only regular files"), "{e}");
    let e = CardImage::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("a directory"), "{e}");
    let fifo = dir.path().join("fifo.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || tx.send(CardImage::load(&f).map(|_| ()).map_err(|e| e.to_string())));
    let e = rx.recv_timeout(Duration::from_secs(5)).expect("reading a FIFO must not hang").unwrap_err();
    assert!(e.contains("a FIFO"), "{e}");
}

#[test]
fn input_rule_files_over_16_mib_are_refused_with_a_clear_error() {
    let dir = scratch();
    let big = dir.path().join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_INPUT_BYTES + 1).unwrap(); // sparse: nothing is really written
    let e = CardImage::load(&big).unwrap_err().to_string();
    assert!(e.contains("larger than 16 MiB"), "{e}");
    f.set_len(MAX_INPUT_BYTES).unwrap();
    let e = storage::read_bounded(&big).map(|b| b.len());
    assert_eq!(e.unwrap() as u64, MAX_INPUT_BYTES, "16 MiB exactly is read");
}
