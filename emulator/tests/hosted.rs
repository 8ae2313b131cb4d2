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

/// A host on the renewable CNS card whose store fails while the returned flag is set; the
/// store's saves are in the returned list.
fn flaky_host(fixture: &str) -> (HostedCard, Arc<AtomicBool>, Arc<Mutex<Vec<CardImage>>>) {
    let fail = Arc::new(AtomicBool::new(false));
    let saved = Arc::new(Mutex::new(vec![]));
    let store = Flaky { fail: fail.clone(), saved: saved.clone() };
    (HostedCard::persisted(card(fixture), Box::new(store)), fail, saved)
}

#[test]
fn anti_tearing_rule_every_presented_secret_is_saved_before_the_answer() {
    let (mut host, _fail, saved) = flaky_host("cns-renewable.json");
    let saves = || saved.lock().unwrap().len();
    // Reads, selects and status queries write nothing.
    for c in ["00A4080C0410001003", "00B0000010", "00200090", "00CA018300"] {
        assert!(host.transmit(&h(c)).0.ends_with(&[0x90, 0x00]) || c == "00200090", "{c}");
    }
    assert_eq!(saves(), 0, "nothing saved for commands that write nothing");
    // The right PIN with a full counter changes nothing, and is a write all the same: the card
    // wrote its counter before comparing.
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))), (h("9000"), None));
    assert_eq!(saves(), 1);
    assert_eq!(host.transmit(&h(&format!("0020009008{NEW}"))), (h("63C2"), None));
    assert_eq!(saves(), 2);
    // A length error is refused before any comparison: no write.
    assert_eq!(host.transmit(&h("002000900431323334")).0, h("6700"));
    assert_eq!(saves(), 2);
}

#[test]
fn pin_oracle_rule_on_a_failing_store_right_and_wrong_pins_both_get_6581() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let (mut host, fail, _) = flaky_host(fixture);
        let (verify, right, wrong, status): (&str, String, String, &str) = if fixture.starts_with("cns") {
            ("0020009008", PIN.into(), NEW.into(), "00200090")
        } else {
            host.transmit(&h("00A40000025011"));
            ("0020008140", padded("12345678", 64, 0xFF), padded("87654321", 64, 0xFF), "0020008100")
        };
        let before = host.card.image().clone();
        fail.store(true, Ordering::Relaxed);
        // Counter full: the right PIN changes no byte of the image, yet it cannot be told
        // apart from a wrong one. As many tries as you like, never an answer.
        for _ in 0..5 {
            assert_eq!(host.transmit(&h(&format!("{verify}{right}"))).0, h("6581"), "{fixture}");
            assert_eq!(host.transmit(&h(&format!("{verify}{wrong}"))).0, h("6581"), "{fixture}");
        }
        assert_eq!(host.card.image(), &before, "{fixture}: nothing changed");
        assert_eq!(host.transmit(&h(status)).0, h("63C3"), "{fixture}: not verified, no try spent");
        fail.store(false, Ordering::Relaxed);
        assert_eq!(host.transmit(&h(&format!("{verify}{right}"))), (h("9000"), None), "{fixture}");
    }
}

#[test]
fn rollback_rule_the_session_is_as_before_the_failed_command() {
    let (mut host, fail, _) = flaky_host("cns-renewable.json");
    // A session: DF 1400 selected, PIN CNS0 verified, a security environment set.
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))), (h("9000"), None));
    assert_eq!(host.transmit(&h("00A4080C0414008110")).0, h("9000"));
    assert_eq!(host.transmit(&h("0022F1B803830101")).0, h("9000"));
    fail.store(true, Ordering::Relaxed);
    // The change fails to save: undone, and the session it ran in is intact (a card whose
    // EEPROM write fails stays powered: its RAM is not lost).
    let (response, why) = host.transmit(&change_pin());
    assert_eq!(response, h("6581"));
    assert!(why.unwrap().contains("as before the command"));
    // ERASE would reset the session: it fails to save, and the session stays as well.
    assert_eq!(host.transmit(&h("B0F50000")).0, h("6581"));
    fail.store(false, Ordering::Relaxed);
    assert_eq!(host.transmit(&h("00200090")).0, h("9000"), "PIN CNS0 still verified");
    assert_eq!(host.transmit(&h("00200090")).0, h("9000"));
    // Still in DF 8110: CNS1's PIN (in 1400) is found from here, and the environment holds.
    assert_eq!(host.transmit(&h("0020009A")).0, h("63C3"));
    let (digest, _) = sha256_digest_info(b"dopo il guasto");
    let block = firmalab_emulator::hex::encode(&pkcs1_block(&digest, 256));
    assert_eq!(host.transmit(&h(&format!("102A8086FF00{}", &block[..508]))).0, h("9000"));
    let r = host.transmit(&h(&format!("002A808602{}00", &block[508..]))).0;
    assert_eq!(r.len(), 258, "the environment of before the failure deciphers: {}", r.len());
    assert_eq!(pin_cns0(host.card.image()), ("12345678".into(), 3), "the change never happened");
}

#[test]
fn rollback_rule_a_failed_verify_leaves_the_pin_unverified() {
    let (mut host, fail, _) = flaky_host("cns-renewable.json");
    fail.store(true, Ordering::Relaxed);
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))).0, h("6581"));
    fail.store(false, Ordering::Relaxed);
    assert_eq!(host.transmit(&h("00200090")).0, h("63C3"));
    assert_eq!(host.transmit(&h("B0F50000")).0, h("6982"), "no PIN verified: no erase");
}

#[cfg(feature = "openssl")]
#[test]
fn rollback_rule_keeps_the_crypto_backend() {
    use firmalab_emulator::keys::Backend;
    let (mut host, fail, _) = flaky_host("cns-renewable.json");
    host.card.set_backend(Backend::OpenSsl);
    fail.store(true, Ordering::Relaxed);
    assert_eq!(host.transmit(&change_pin()).0, h("6581"));
    assert_eq!(host.card.backend(), Backend::OpenSsl);
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
    // A presented PIN is a write too (anti-tearing): on the full disk, 6581 for the right one.
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))).0, h("6581"), "no answer without a save");
    assert_eq!(host.transmit(&h("00200090")).0, h("63C3"), "not verified, no try spent");
    let mut left: Vec<_> = std::fs::read_dir(fs.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, [".card.json.lock", "card.json", "filler"], "no temporary file left behind");

    // Space again: the old PIN is in force, and the same change goes through and is on disk.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(host.transmit(&h(&format!("0020009008{PIN}"))), (h("9000"), None), "the old PIN is in force");
    assert_eq!(host.transmit(&change_pin()), (h("9000"), None));
    assert_eq!(pin_cns0(&CardImage::load(&img).unwrap()).0, "87654321");
}

/// A vpcd stand-in: accepts the card's connection and hands the socket to the test.
fn fake_vpcd() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

/// A loopback address where nothing listens, nor can start listening while the returned
/// socket lives (bound without SO_REUSEADDR, never listening): a card pointed at it keeps
/// waiting for vpcd. A listener dropped at once would free its port for another test's
/// `fake_vpcd`, which would then accept this card instead of its own.
fn silent_vpcd() -> (socket2::Socket, String) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap().to_string();
    (s, addr)
}

/// A card thread: its result and the instant it returned.
type CardThread = std::thread::JoinHandle<(std::io::Result<()>, Instant)>;

/// Runs a card on `addr` in a thread; returns the stop flag and the thread.
fn serve(addr: String) -> (Arc<AtomicBool>, CardThread) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        let mut host =
            HostedCard::ephemeral(Card::new(image("cns-renewable.json"), CardRng::insecure_deterministic(1)));
        (vpcd::serve(&mut host, &addr, &flag, &mut |_| {}), Instant::now())
    });
    (stop, t)
}

/// The stop promise, measured by the instant the card thread itself noted on returning: the
/// time this test thread spends descheduled on a busy machine is not counted against the
/// card. A card that never returns fails after 30 s instead of hanging the suite.
fn stops_within_a_second(stop: &AtomicBool, t: CardThread) {
    let asked = Instant::now();
    stop.store(true, Ordering::Relaxed);
    while !t.is_finished() {
        assert!(asked.elapsed() < Duration::from_secs(30), "the card did not stop at all (30 s after the request)");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (r, returned) = t.join().unwrap();
    let took = returned.saturating_duration_since(asked);
    assert!(took < Duration::from_secs(1), "the card did not stop within a second: it took {took:?}");
    r.unwrap();
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
    let (_silent, addr) = silent_vpcd(); // nothing listens: the card keeps retrying
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

/// Sends one vpcd frame and, for an APDU, reads the card's answer.
fn exchange(vpcd: &mut std::net::TcpStream, payload: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut frame = (payload.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    vpcd.write_all(&frame).unwrap();
    if payload.len() == 1 && payload[0] != 0x04 {
        return vec![];
    }
    let mut len = [0u8; 2];
    vpcd.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    vpcd.read_exact(&mut answer).unwrap();
    answer
}

#[test]
fn log_rule_the_verbose_log_of_an_oberthur_puk_change_and_unblock_holds_no_secret() {
    let (listener, addr) = fake_vpcd();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let t = {
        let (flag, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut host = HostedCard::ephemeral(card("oberthur-renewable.json"));
            let r = vpcd::serve(&mut host, &addr, &flag, &mut |e| log.lock().unwrap().push(format!("{e:?}")));
            (r, Instant::now())
        })
    };
    let (mut vpcd, _) = listener.accept().unwrap();
    vpcd.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    exchange(&mut vpcd, &[0x01]);
    let pin64 = |p: &str| padded(p, 64, 0xFF);
    let code = |p: &str| {
        let mut v = p.as_bytes().to_vec();
        v.resize(16, 0);
        firmalab_emulator::hex::encode(&v)
    };
    let mut send = |c: String| exchange(&mut vpcd, &h(&c));
    assert_eq!(send("00A4040C10A000000077010303000000F100000002".into()), h("9000"));
    assert!(send("00A40000025011".into()).ends_with(&[0x90, 0x00]));
    // puk-change 87654321 → 11112222, then the unblock through the PUK file.
    assert_eq!(send(format!("0024008480{}{}", pin64("87654321"), pin64("11112222"))), h("9000"));
    assert_eq!(send(format!("0020008440{}", pin64("11112222"))), h("9000"));
    assert!(send("00A40000022000".into()).ends_with(&[0x90, 0x00]));
    let read = send("00B0000010".into());
    assert_eq!(read, [h(&code("11112222")), h("9000")].concat(), "the card answers the code");
    // A partial read is just as secret.
    assert_eq!(send("00B0000008".into()), [h(&code("11112222"))[..8].to_vec(), h("9000")].concat());
    assert!(send("00A4030000".into()).ends_with(&[0x90, 0x00]));
    assert_eq!(send(format!("002C000150{}{}", code("11112222"), pin64("24682468"))), h("9000"));
    assert_eq!(send(format!("0020008140{}", pin64("24682468"))), h("9000"));
    stops_within_a_second(&stop, t);
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("00B0000010") && log.contains(&format!("{}9000", "**".repeat(16))), "{log}");
    assert!(log.contains(&format!("{}9000", "**".repeat(8))), "{log}");
    for secret in ["87654321", "11112222", "24682468"] {
        let ascii = firmalab_emulator::hex::encode(secret.as_bytes());
        assert!(!log.contains(&ascii), "{secret} in the verbose log:\n{log}");
        assert!(!log.contains(&code(secret)), "the unblock code of {secret} in the verbose log:\n{log}");
    }
}

#[test]
fn log_rule_secret_answers_are_masked_other_answers_shown() {
    assert_eq!(vpcd::logged_response(&h("31320000009000"), true), "**********9000");
    assert_eq!(vpcd::logged_response(&h("3132009000"), false), "3132009000");
    assert_eq!(vpcd::logged_response(&h("6982"), true), "6982");
}
