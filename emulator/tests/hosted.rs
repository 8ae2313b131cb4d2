//! A card in a host (`HostedCard`: the vpcd client, the in-process transport, `firmalab apdu`):
//! a failed save rolls the card back before it answers, and a stop request is honoured within
//! a second whatever the vpcd connection is doing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::vpcd::{self, HostedCard, ImageStore};
use firmalab_emulator::{Card, CardImage, CardRng};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PIN: &str = "3132333435363738"; // 12345678
const NEW: &str = "3837363534333231"; // 87654321

fn change_pin() -> Vec<u8> {
    h(&format!("0024009010{PIN}{NEW}"))
}

fn pin_cns0(image: &CardImage) -> (String, u8) {
    let p = image.pins.iter().find(|p| p.label == "PIN CNS0").unwrap();
    (p.value.clone(), p.tries_left)
}

/// A store that fails while `fail` is set and keeps what it saved.
struct Flaky {
    fail: Arc<AtomicBool>,
    saved: Arc<Mutex<Vec<CardImage>>>,
}

impl ImageStore for Flaky {
    fn save(&mut self, image: &CardImage) -> Result<(), String> {
        if self.fail.load(Ordering::Relaxed) {
            return Err("injected: no space left on device".into());
        }
        self.saved.lock().unwrap().push(image.clone());
        Ok(())
    }
}

#[test]
fn save_failure_rule_a_failed_save_rolls_the_card_back_and_6581_means_nothing_changed() {
    let fail = Arc::new(AtomicBool::new(false));
    let saved = Arc::new(Mutex::new(vec![]));
    let store = Flaky { fail: fail.clone(), saved: saved.clone() };
    let mut host = HostedCard::persisted(card("cns-renewable.json"), Box::new(store));

    // A wrong PIN is saved (tries 3 → 2): that is now the last saved state.
    assert_eq!(host.transmit(&h("00200090083131313131313131")), (h("63C2"), None));
    assert_eq!(saved.lock().unwrap().len(), 1);

    fail.store(true, Ordering::Relaxed);
    let (response, why) = host.transmit(&change_pin());
    assert_eq!(response, h("6581"));
    assert!(why.unwrap().contains("injected: no space left on device"));
    assert_eq!(pin_cns0(host.card.image()), ("12345678".into(), 2), "back to the last saved state");
    // Still failing: a wrong PIN is not counted either (6581, nothing changed)…
    assert_eq!(host.transmit(&h(&format!("0020009008{NEW}"))).0, h("6581"));
    assert_eq!(pin_cns0(host.card.image()), ("12345678".into(), 2));
    // Even the right PIN changes the card here (its counter goes back to 3): 6581 as well.
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))).0, h("6581"));
    assert_eq!(pin_cns0(host.card.image()), ("12345678".into(), 2));

    fail.store(false, Ordering::Relaxed);
    assert_eq!(host.transmit(&h(&format!("0020009008{NEW}"))), (h("63C1"), None), "the new PIN never took");
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))), (h("9000"), None), "the old one is in force");
    assert_eq!(host.transmit(&change_pin()), (h("9000"), None));
    let last = saved.lock().unwrap().last().cloned().unwrap();
    assert_eq!(pin_cns0(&last).0, "87654321", "the change is saved once the store works");
    assert_eq!(host.card.image(), &last);
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says why a test cannot run here; in CI (CI=true) that is a failure.
fn skip(test: &str, why: &str) {
    if ci() {
        panic!("{test}: needs root and tmpfs, required in CI (CI=true), but {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(kib: u32) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem; returns the filler file (remove it to free the space).
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[test]
fn save_failure_rule_on_a_full_tmpfs_the_card_rolls_back_and_the_image_is_untouched() {
    let test = "save_failure_rule_on_a_full_tmpfs_the_card_rolls_back_and_the_image_is_untouched";
    let fs = match Tmpfs::mount(256) {
        Ok(fs) => fs,
        Err(why) => return skip(test, &why),
    };
    let img = fs.path().join("card.json");
    std::fs::copy(fixture_path("cns-renewable.json"), &img).unwrap();
    let before = std::fs::read(&img).unwrap();
    let mut host = HostedCard::open(&img, CardRng::insecure_deterministic(3)).unwrap();
    host.card.power_on();
    let filler = fs.fill();

    let (response, why) = host.transmit(&change_pin());
    assert_eq!(response, h("6581"), "memory failure");
    let why = why.unwrap();
    assert!(why.contains("cannot save") && why.contains("back to its last saved state"), "{why}");
    assert_eq!(std::fs::read(&img).unwrap(), before, "the image on disk is untouched");
    assert_eq!(pin_cns0(host.card.image()), ("12345678".into(), 3), "and so is the card");
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))).0, h("9000"), "the old PIN is in force");
    let mut left: Vec<_> = std::fs::read_dir(fs.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, [".card.json.lock", "card.json", "filler"], "no temporary file left behind");

    // Space again: the same change goes through and is on disk.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(host.transmit(&change_pin()), (h("9000"), None));
    assert_eq!(pin_cns0(&CardImage::load(&img).unwrap()).0, "87654321");
}

/// A vpcd stand-in: accepts the card's connection and hands the socket to the test.
fn fake_vpcd() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

/// Runs a card on `addr` in a thread; returns the stop flag and the thread.
fn serve(addr: String) -> (Arc<AtomicBool>, std::thread::JoinHandle<std::io::Result<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        let mut host =
            HostedCard::ephemeral(Card::new(image("cns-renewable.json"), CardRng::insecure_deterministic(1)));
        vpcd::serve(&mut host, &addr, &flag, &mut |_| {})
    });
    (stop, t)
}

fn stops_within_a_second(stop: &AtomicBool, t: std::thread::JoinHandle<std::io::Result<()>>) {
    let asked = Instant::now();
    stop.store(true, Ordering::Relaxed);
    while !t.is_finished() {
        assert!(asked.elapsed() < Duration::from_secs(1), "the card did not stop within a second");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.join().unwrap().unwrap();
}

#[test]
fn stop_rule_honoured_within_a_second_with_half_a_vpcd_frame_pending() {
    // Half of the length prefix, then half of a payload: vpcd never sends the rest.
    for partial in [&[0x00u8][..], &[0x00, 0x05, 0x00, 0xA4][..]] {
        let (listener, addr) = fake_vpcd();
        let (stop, t) = serve(addr);
        let (mut vpcd, _) = listener.accept().unwrap();
        // A whole ATR request first: the card answers, so it is in its read loop.
        vpcd.write_all(&[0x00, 0x01, 0x04]).unwrap();
        let mut len = [0u8; 2];
        std::io::Read::read_exact(&mut vpcd, &mut len).unwrap();
        let mut atr = vec![0u8; usize::from(u16::from_be_bytes(len))];
        std::io::Read::read_exact(&mut vpcd, &mut atr).unwrap();
        assert_eq!(atr, image("cns-renewable.json").atr.0);
        vpcd.write_all(partial).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stops_within_a_second(&stop, t);
        drop(vpcd);
    }
}

#[test]
fn stop_rule_honoured_within_a_second_while_waiting_for_vpcd() {
    let (listener, addr) = fake_vpcd();
    drop(listener); // nothing listens: the card keeps retrying
    let (stop, t) = serve(addr);
    std::thread::sleep(Duration::from_millis(300));
    stops_within_a_second(&stop, t);
}

#[test]
fn startup_rule_vpcd_addresses_are_checked_before_use() {
    for bad in ["bad", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "host.invalid:35963"] {
        let e = vpcd::check_address(bad).unwrap_err();
        assert!(e.contains(bad), "{e}");
    }
    assert_eq!(vpcd::check_address("127.0.0.1:35963").unwrap().len(), 1);
}
