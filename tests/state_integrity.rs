//! Card state that cannot be lost, shared, leaked or forged, as a user meets it on the command
//! line (issue 10): one writer per image and back office, saves that roll back, private and
//! atomic files, bounded input, images no card could be refused, prompt stops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{command, copy_fixture, s, stderr};

/// Every run here has a time limit: a hang (a lock never released, a prompt) fails the test
/// instead of stalling the suite.
fn firmalab(args: &[&str]) -> Output {
    run_within(args, Duration::from_secs(120))
}

/// Runs firmalab and fails the test if it has not exited within `limit` (a hang).
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("firmalab {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Starts firmalab and leaves it running; only its standard error is kept.
fn spawn(args: &[&str]) -> Child {
    command(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// A refusal: non-zero exit, one `firmalab: ` line on stderr containing `want`.
fn assert_refused(o: &Output, want: &str) {
    let e = stderr(o);
    assert!(!o.status.success(), "should fail: {e}");
    assert!(e.starts_with("firmalab: ") && e.lines().count() == 1 && e.contains(want), "want {want:?} in: {e}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A loopback port nothing listens on (a card pointed at it keeps waiting for vpcd), nor can
/// start listening while the returned socket lives: bound without SO_REUSEADDR, never
/// listening. A listener dropped at once would free its port for another test's listener,
/// which would then accept the wrong card.
fn free_port() -> (socket2::Socket, String) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap().to_string();
    (s, addr)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

/// Waits for a child asked to stop (by [`sigterm`], which returns once the signal is sent) to
/// exit; fails the test when the child was seen still running more than `limit` after that.
/// The time is read before each look at the child: a look delayed by this process being
/// descheduled on a busy machine proves nothing against the child and is not counted.
fn exits_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        let waited = started.elapsed();
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if waited > limit {
            let _ = child.kill();
            panic!("still running {waited:?} after the request to stop (limit {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `pid` holds the lock of the image `img` (its lock file carries the pid).
fn wait_for_lock(img: &Path, pid: u32) {
    let lock = img.parent().unwrap().join(format!(".{}.lock", img.file_name().unwrap().to_string_lossy()));
    let started = Instant::now();
    while std::fs::read_to_string(&lock).map(|t| t.trim().to_owned()).ok() != Some(pid.to_string()) {
        assert!(started.elapsed() < Duration::from_secs(20), "{pid} never locked {}", img.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

const WRONG_PIN: &str = "00200090083131313131313131";
const RIGHT_PIN: &str = "00200090083132333435363738";

#[test]
fn lock_rule_a_second_process_is_refused_naming_the_holder_pid_and_the_image_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy_fixture("cns-renewable.json", dir.path());
    let before = std::fs::read(&img).unwrap();
    let (_silent, port) = free_port();
    let mut holder = spawn(&["card", "--image", s(&img), "--vpcd", &port]);
    wait_for_lock(&img, holder.id());
    let held = format!("in use by process {}", holder.id());

    assert_refused(&firmalab(&["apdu", "--image", s(&img), WRONG_PIN]), &held);
    let (_silent2, port2) = free_port();
    assert_refused(&firmalab(&["card", "--image", s(&img), "--vpcd", &port2]), &held);
    assert_refused(&firmalab(&["image", "new", "--profile", "cns", "--out", s(&img), "--force", "--seed", "x"]), &held);
    let flow = firmalab(&[
        "flow",
        "pin-change",
        "--card",
        s(&img),
        "--pin",
        "12345678",
        "--new-pin",
        "11223344",
        "--ra",
        s(&dir.path().join("ra.json")),
    ]);
    assert_eq!(flow.status.code(), Some(3), "a card that cannot be opened: {}", stderr(&flow));
    assert!(stderr(&flow).contains(&held), "{}", stderr(&flow));
    assert_eq!(std::fs::read(&img).unwrap(), before, "the image is untouched");
    // Reading takes no lock.
    let show = firmalab(&["image", "show", s(&img)]);
    assert!(show.status.success(), "{}", stderr(&show));

    sigterm(&holder);
    assert!(exits_within(&mut holder, Duration::from_secs(2)).success());
    let o = firmalab(&["apdu", "--raw", "--image", s(&img), WRONG_PIN]);
    assert!(o.status.success(), "free again once the holder is gone: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "63C2\n");
}

#[test]
fn lock_rule_ra_commands_lock_the_back_office() {
    let dir = tempfile::tempdir().unwrap();
    let ra = dir.path().join("ra.json");
    let img = copy_fixture("cns-renewable.json", dir.path());
    let store = firmalab_harness::backoffice::Store::open(&ra).unwrap();
    store.save().unwrap();
    let held = format!("in use by process {}", std::process::id());
    assert_refused(&firmalab(&["ra", "authorize", "P-000001", "--ra", s(&ra)]), &held);
    assert_refused(
        &firmalab(&[
            "ra",
            "enroll",
            "--card",
            s(&img),
            "--email",
            "a@example.it",
            "--mobile",
            "+393330000333",
            "--ra",
            s(&ra),
        ]),
        &held,
    );
    let show = firmalab(&["ra", "show", "--ra", s(&ra)]);
    assert!(show.status.success(), "ra show only reads: {}", stderr(&show));
    drop(store);
    let o = firmalab(&[
        "ra",
        "enroll",
        "--card",
        s(&img),
        "--email",
        "a@example.it",
        "--mobile",
        "+393330000333",
        "--ra",
        s(&ra),
        "--now",
        "2026-06-01",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn skip(test: &str, why: &str) {
    if ci() {
        panic!("{test}: needs root and tmpfs, required in CI (CI=true), but {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(kib: u32) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn save_failure_rule_apdu_on_a_full_filesystem_answers_6581_and_changes_nothing() {
    let test = "save_failure_rule_apdu_on_a_full_filesystem_answers_6581_and_changes_nothing";
    let fs = match Tmpfs::mount(256) {
        Ok(fs) => fs,
        Err(why) => return skip(test, &why),
    };
    let img = copy_fixture("cns-renewable.json", fs.0.path());
    let before = std::fs::read(&img).unwrap();
    let filler = fs.0.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
    drop(f);
    // CHANGE REFERENCE DATA, then VERIFY with the new PIN: never sent, the save failed first.
    let change = "00240090103132333435363738".to_owned() + "3131323233333434";
    let o = firmalab(&["apdu", "--raw", "--image", s(&img), &change, "00200090083131323233333434"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "6581\n", "memory failure, and nothing after it");
    assert_refused(&o, "cannot save");
    assert!(stderr(&o).contains("back to its last saved state"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&img).unwrap(), before, "the image is untouched");
    let mut left: Vec<_> = std::fs::read_dir(fs.0.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["cns-renewable.json", "filler"], "no temporary or lock file left");
    std::fs::remove_file(&filler).unwrap();
    let o = firmalab(&["apdu", "--raw", "--image", s(&img), RIGHT_PIN]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "9000\n", "the old PIN is the one in force");
}

#[test]
fn save_rule_kill_9_during_saves_leaves_a_loadable_image_and_no_temp_file_wider_than_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy_fixture("cns-renewable.json", dir.path());
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o640)).unwrap();
    // Every command changes the counter, so every one is a save.
    let apdus: Vec<&str> = (0..300).map(|i| if i % 2 == 0 { WRONG_PIN } else { RIGHT_PIN }).collect();
    let mut args = vec!["apdu", "--raw", "--image", s(&img)];
    args.extend(&apdus);
    let mut temps_seen = 0;
    for round in 0..12u64 {
        let mut child = spawn(&args);
        std::thread::sleep(Duration::from_millis(40 + (round * 37) % 120));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        firmalab_emulator::CardImage::load(&img).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(mode(&img), 0o640, "round {round}: the image keeps its mode");
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if firmalab_emulator::storage::is_temp_of("cns-renewable.json", &name) {
                temps_seen += 1;
                // 0600 from creation; in the instant between taking the image's own mode and the
                // rename, that mode. Never readable by anyone who cannot read the image.
                let m = mode(&e.path());
                assert!(m == 0o600 || m == 0o640, "round {round}: a leftover {name} is {m:o}, wider than the image");
            }
        }
    }
    // The next process to open the image removes what the killed ones left.
    let o = firmalab(&["apdu", "--raw", "--image", s(&img), RIGHT_PIN]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.retain(|n| n != ".cns-renewable.json.lock"); // a killed holder's lock file: harmless, unlocked
    assert_eq!(left, ["cns-renewable.json"], "({temps_seen} temporary files seen after kills)");
}

#[test]
fn mode_rule_images_back_office_transcripts_and_renewal_outputs_are_created_0600() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.json");
    let o = firmalab(&["image", "new", "--profile", "cns", "--out", s(&new), "--seed", "mode", "--now", "2026-06-01"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&new), 0o600, "image new");

    let img = copy_fixture("cns-renewable.json", dir.path());
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = firmalab(&["apdu", "--image", s(&img), WRONG_PIN]);
    assert!(o.status.success());
    assert_eq!(mode(&img), 0o600, "a 0600 image stays 0600 after a save");

    let ra = dir.path().join("ra.json");
    let out = dir.path().join("out");
    let (t, j) = (dir.path().join("t.json"), dir.path().join("j.xml"));
    let o = firmalab(&[
        "ra",
        "enroll",
        "--card",
        s(&img),
        "--email",
        "m@example.it",
        "--mobile",
        "+393330000001",
        "--ra",
        s(&ra),
        "--now",
        "2026-06-01",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&ra), 0o600, "back office");
    let o = firmalab(&[
        "flow",
        "renewal",
        "--card",
        s(&img),
        "--pin",
        "12345678",
        "--email",
        "m@example.it",
        "--mobile",
        "+393330000001",
        "--yes",
        "--now",
        "2026-06-01",
        "--seed",
        "5",
        "--ra",
        s(&ra),
        "--out-dir",
        s(&out),
        "--transcript",
        s(&t),
        "--junit",
        s(&j),
    ]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert_eq!((mode(&t), mode(&j), mode(&ra), mode(&img)), (0o600, 0o600, 0o600, 0o600));
    let outputs: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!outputs.is_empty());
    for p in outputs {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

#[test]
fn pin_rule_image_new_refuses_pins_no_card_could_hold() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("card.json");
    for (profile, flag, value, why) in [
        ("cns", "--pin", "", "--pin: empty; the rule is 5 to 8 digits (cns card)"),
        ("cns", "--pin", "1", "--pin: 1 characters; the rule is 5 to 8 digits"),
        ("cns", "--pin", "12a45", "--pin: has characters other than digits"),
        ("cns", "--puk", "123456789", "--puk: 9 characters; the rule is 5 to 8 digits"),
        ("oberthur", "--pin", "abcd", "--pin: has characters other than digits; the rule is 4 to 64 digits"),
        ("oberthur", "--puk", "123", "--puk: 3 characters"),
    ] {
        let o = firmalab(&["image", "new", "--profile", profile, "--out", s(&out), flag, value, "--seed", "x"]);
        assert_refused(&o, why);
        if value.len() >= 3 {
            assert!(!stderr(&o).contains(value), "the refused secret is not echoed: {}", stderr(&o));
        }
        assert!(!out.exists(), "nothing written for {flag} {value:?}");
    }
}

#[test]
fn input_rule_only_regular_files_up_to_16_mib_for_images_transcripts_scenarios_and_back_office() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let big = dir.path().join("big.json");
    std::fs::File::create(&big).unwrap().set_len(16 * 1024 * 1024 + 1).unwrap();
    let img = copy_fixture("cns-renewable.json", dir.path());
    let limit = Duration::from_secs(10);
    for (args, want) in [
        (vec!["image", "show", "/dev/zero"], "a character device: only regular files are read"),
        (vec!["image", "show", s(&fifo)], "a FIFO: only regular files are read"),
        (vec!["image", "show", s(&big)], "larger than 16 MiB"),
        (vec!["apdu", "--image", s(&fifo), WRONG_PIN], "a FIFO"),
        (vec!["replay", s(&fifo), "--card", s(&img)], "transcript"),
        (vec!["replay", "/dev/zero", "--card", s(&img)], "a character device"),
        (vec!["scenario", s(&big), "--card", s(&img)], "larger than 16 MiB"),
        (vec!["scenario", s(&fifo), "--card", s(&img)], "a FIFO"),
        (vec!["ra", "show", "--ra", "/dev/zero"], "a character device"),
        (vec!["ra", "show", "--ra", s(&big)], "larger than 16 MiB"),
    ] {
        let o = run_within(&args, limit);
        assert_refused(&o, want);
    }
}

#[test]
fn stop_rule_sigterm_with_half_a_vpcd_frame_pending_exits_within_a_second() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut card = spawn(&["card", "--persona", "cns", "--vpcd", &addr]);
    let (mut vpcd, _) = listener.accept().unwrap();
    // Power on, then a length prefix announcing 5 bytes and only 2 of them.
    vpcd.write_all(&[0x00, 0x01, 0x01, 0x00, 0x05, 0x00, 0xA4]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&card);
    let status = exits_within(&mut card, Duration::from_secs(1));
    assert!(status.success(), "a clean stop: {status:?}");
    drop(vpcd);
}

#[test]
fn startup_rule_every_vpcd_address_is_checked_before_any_card_starts() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy_fixture("cns-renewable.json", dir.path());
    let (_silent, good) = free_port();
    for (vpcd, want) in [
        (["--vpcd", good.as_str(), "--vpcd", "nonsense"], "vpcd address \"nonsense\""),
        (["--vpcd", good.as_str(), "--vpcd", "127.0.0.1:0"], "port 0"),
        (["--vpcd", good.as_str(), "--vpcd", good.as_str()], "given to two cards"),
    ] {
        let mut args = vec!["card", "--image", s(&img), "--persona", "oberthur"];
        args.extend(vpcd);
        let o = run_within(&args, Duration::from_secs(10));
        assert_refused(&o, want);
        assert!(!stderr(&o).contains("waiting for vpcd"), "no card started: {}", stderr(&o));
    }
}
