//! A hostile card over PC/SC (`firmalab card --fault`, `--mutate-answers`): unmodified OpenSC
//! against it ends with an error, never a hang; the log names each fault's APDU; the card
//! image survives every fault it injected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn firmalab_card(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firmalab")).arg("card").args(args).output().unwrap()
}

#[test]
fn a_bad_fault_spec_is_one_line_on_stderr_and_exit_2_before_any_card_starts() {
    for (args, says) in [
        (&["--persona", "cns", "--fault", "corrupt@0"][..], "whole number from 1 (the first command APDU is 1)"),
        (&["--persona", "cns", "--fault", "melt@3"][..], "unknown kind \"melt\""),
        (&["--persona", "cns", "--fault", "delay@3"][..], "delay needs its milliseconds"),
        (&["--persona", "cns", "--fault", "corrupt@3", "--fault", "drop@3"][..], "APDU 3 has two faults"),
        (&["--persona", "cns", "--fault", "corrupt@3,"][..], "empty fault"),
    ] {
        let o = firmalab_card(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("firmalab: --fault: ") && err.contains(says), "{args:?}: {err}");
        // Nothing ran: no card was announced or waited for.
        assert!(o.stdout.is_empty() && !err.contains("vpcd"), "{err}");
    }
    let o = firmalab_card(&["--persona", "cns", "--mutate-answers", "1", "--mutate-rate", "0"]);
    assert_eq!(o.status.code(), Some(2), "a rate of 0 is refused by clap: {}", String::from_utf8_lossy(&o.stderr));
}

#[cfg(not(feature = "pcsc"))]
#[test]
fn hostile_card_pcsc_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED hostile card tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::*;
    use firmalab_emulator::CardImage;
    use firmalab_harness::stack::PrivateStack;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitStatus, Stdio};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Longest a client may take against a hostile card before the test calls it a hang.
    const HANG: Duration = Duration::from_secs(30);

    /// When each slot's last card left (pcsc.md §3: wait more than a second before the next).
    static LEFT: Mutex<[Option<Instant>; 2]> = Mutex::new([None, None]);

    /// OpenSC limited to the drivers of the Italian cards. With OpenSC's default driver list
    /// the first ~40 APDUs to a CNS are other drivers' probes, refused whatever they carry, so
    /// a fault at a low APDU number would hit a probe OpenSC rightly ignores.
    fn italian_drivers(dir: &Path) -> PathBuf {
        let conf = dir.join("opensc.conf");
        std::fs::write(&conf, "app default { card_drivers = itacns, oberthur; }\n").unwrap();
        conf
    }

    /// `firmalab card` as its own process in one of the stack's readers.
    struct HostileCard {
        child: Option<Child>,
        slot: u8,
        reader: String,
        log: PathBuf,
    }

    impl HostileCard {
        fn start(stack: &PrivateStack, dir: &Path, card: &[&str], hostile: &[&str]) -> Self {
            let slot = {
                let left = LEFT.lock().unwrap();
                let slot = if left[0] <= left[1] { 0 } else { 1 };
                if let Some(t) = left[usize::from(slot)] {
                    std::thread::sleep((t + Duration::from_millis(1200)).saturating_duration_since(Instant::now()));
                    wait_reader_empty(stack, slot);
                }
                slot
            };
            let log = dir.join(format!("card-{slot}-{}.log", std::process::id()));
            let addr = stack.vpcd_addr(slot);
            let child = Command::new(env!("CARGO_BIN_EXE_firmalab"))
                .arg("card")
                .args(card)
                .args(["--vpcd", &addr, "--seed", "5"])
                .args(hostile)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut c = HostileCard { child: Some(child), slot, reader: PrivateStack::reader(slot), log };
            c.wait_present(stack);
            c
        }

        fn wait_present(&mut self, stack: &PrivateStack) {
            let o = firmalab(stack, &["readers", "--wait", &self.reader, "--timeout", "10"]);
            assert!(
                o.status.success(),
                "card never appeared in {}: {}\ncard log:\n{}",
                self.reader,
                text(&o),
                self.log()
            );
        }

        /// Waits until the card, removed by a fault, is back in its reader.
        fn wait_back(&mut self, stack: &PrivateStack) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.log().matches("inserted in the vpcd reader").count() < 2 {
                assert!(Instant::now() < deadline, "the card never came back:\n{}", self.log());
                std::thread::sleep(Duration::from_millis(50));
            }
            self.wait_present(stack);
        }

        fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        /// The lines naming injected faults.
        fn faults(&self) -> Vec<String> {
            self.log().lines().filter(|l| l.contains("] FAULT ")).map(|l| l.to_owned()).collect()
        }

        /// Stops the card as Ctrl-C would; returns its whole log.
        fn stop(mut self) -> String {
            self.end();
            self.log()
        }

        fn end(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                let deadline = Instant::now() + Duration::from_secs(5);
                while child.try_wait().unwrap().is_none() {
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        panic!("firmalab card did not stop within 5 s of SIGTERM");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                LEFT.lock().unwrap()[usize::from(self.slot)] = Some(Instant::now());
            }
        }
    }

    impl Drop for HostileCard {
        fn drop(&mut self) {
            self.end();
        }
    }

    struct Ran {
        status: ExitStatus,
        out: String,
        took: Duration,
    }

    /// Runs a PC/SC client against the stack, killed (and the test failed) after [`HANG`].
    fn guarded(stack: &PrivateStack, dir: &Path, conf: Option<&Path>, program: &str, args: &[&str]) -> Ran {
        let out = dir.join("client.out");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("PCSCLITE_CSOCK_NAME", stack.socket())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.join("client.err")).unwrap());
        if let Some(conf) = conf {
            cmd.env("OPENSC_CONF", conf);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > HANG {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{program} {args:?} still running after {HANG:?} against a hostile card: a hang");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        let out = format!(
            "{}{}",
            std::fs::read_to_string(out).unwrap_or_default(),
            std::fs::read_to_string(dir.join("client.err")).unwrap_or_default()
        );
        Ran { status, out, took }
    }

    /// An error exit: a status code other than 0, not a signal (a crash).
    fn failed_cleanly(r: &Ran) -> bool {
        matches!(r.status.code(), Some(c) if c != 0)
    }

    #[test]
    fn corrupt_at_5_makes_pkcs15_tool_dump_fail_cleanly_and_the_log_names_apdu_5() {
        let test = "corrupt_at_5_makes_pkcs15_tool_dump_fail_cleanly_and_the_log_names_apdu_5";
        let Some((stack, _turn)) = stack(test) else { return };
        let dir = scratch("corrupt5");
        let conf = italian_drivers(&dir);
        let card = HostileCard::start(stack, &dir, &["--persona", "cns"], &["--fault", "corrupt@5"]);
        let r = card.slot.to_string();
        let ran = guarded(stack, &dir, Some(&conf), "pkcs15-tool", &["-r", &r, "-D"]);
        assert!(failed_cleanly(&ran), "{:?}: {}", ran.status, ran.out);
        assert!(ran.out.contains("PKCS#15 binding failed"), "{}", ran.out);
        let faults = card.faults();
        assert_eq!(faults.len(), 1, "{faults:?}");
        // APDU 5 of this session is READ BINARY of EF_IDCarta (the serial, after the CNS
        // driver's selects): its answer went out with every byte XOR 5A.
        assert!(
            faults[0].ends_with(
                "FAULT corrupt@5: APDU 5 (00B0000010) answered 363031303030303030303030303130319000 \
                 with every byte XOR 5A: 6C6A6B6A6A6A6A6A6A6A6A6A6A6B6A6BCA5A"
            ),
            "{faults:?}"
        );
        let log = card.stop();
        assert!(log.contains("hostile card: corrupt@5 (command APDUs counted from 1"), "{log}");
    }

    #[test]
    fn opensc_tools_against_every_fault_kind_end_with_an_error_not_a_hang() {
        let test = "opensc_tools_against_every_fault_kind_end_with_an_error_not_a_hang";
        let Some((stack, _turn)) = stack(test) else { return };
        let dir = scratch("faults");
        let conf = italian_drivers(&dir);
        for fault in ["cut-before@5", "cut-after@5", "drop@5", "garbage@5"] {
            let mut card = HostileCard::start(stack, &dir, &["--persona", "cns"], &["--fault", fault]);
            let r = card.slot.to_string();
            let ran = guarded(stack, &dir, Some(&conf), "pkcs15-tool", &["-r", &r, "-D"]);
            assert!(failed_cleanly(&ran), "{fault}: {:?}: {}", ran.status, ran.out);
            let faults = card.faults();
            assert!(faults.len() == 1 && faults[0].contains(&format!("FAULT {fault}: ")), "{fault}: {faults:?}");
            assert!(faults[0].contains("APDU 5 (00B0000010)"), "{faults:?}");
            if fault == "cut-before@5" {
                assert!(faults[0].contains("not executed; the card leaves the reader"), "{faults:?}");
                // The card comes back as a token put back in, and works.
                card.wait_back(stack);
                let again = guarded(stack, &dir, Some(&conf), "pkcs15-tool", &["-r", &r, "--list-certificates"]);
                assert!(again.status.success(), "after the cut: {}", again.out);
                assert!(again.out.contains("X.509 Certificate [CNS1]"), "{}", again.out);
            }
            card.stop();
        }
        // opensc-tool sending raw APDUs (OpenSC's CNS driver sends nothing before them).
        let card = HostileCard::start(stack, &dir, &["--persona", "cns"], &["--fault", "drop@2"]);
        let r = card.slot.to_string();
        let ran = guarded(
            stack,
            &dir,
            Some(&conf),
            "opensc-tool",
            &["-r", &r, "-s", "00A4080C0410001003", "-s", "00B0000010"],
        );
        assert!(failed_cleanly(&ran) || ran.out.contains("Transmit failed"), "{:?}: {}", ran.status, ran.out);
        assert!(!ran.out.contains("36 30 31 30"), "the dropped answer never arrived: {}", ran.out);
        let faults = card.faults();
        assert!(faults.len() == 1 && faults[0].contains("FAULT drop@2: APDU 2 (00B0000010) executed"), "{faults:?}");
        card.stop();
        // A delayed answer is only late: the dump succeeds, no sooner than the delay.
        let card = HostileCard::start(stack, &dir, &["--persona", "cns"], &["--fault", "delay@5:400"]);
        let ran = guarded(stack, &dir, Some(&conf), "pkcs15-tool", &["-r", &card.slot.to_string(), "-D"]);
        assert!(ran.status.success() && ran.out.contains("Serial number  : 6010000000000101"), "{}", ran.out);
        assert!(ran.took >= Duration::from_millis(400), "answer 5 held 400 ms, the dump took {:?}", ran.took);
        assert!(card.faults().iter().any(|f| f.contains("FAULT delay@5:400: APDU 5")), "{:?}", card.faults());
        card.stop();
    }

    #[test]
    fn mutated_answers_are_the_same_for_the_same_seed_and_opensc_never_hangs_on_them() {
        let test = "mutated_answers_are_the_same_for_the_same_seed_and_opensc_never_hangs_on_them";
        let Some((stack, _turn)) = stack(test) else { return };
        let dir = scratch("mutate");
        let run = |seed: &str| {
            let card = HostileCard::start(
                stack,
                &dir,
                &["--persona", "cns"],
                &["--mutate-answers", seed, "--mutate-rate", "25"],
            );
            // Default OpenSC configuration: its probes are mutated too.
            let ran = guarded(stack, &dir, None, "pkcs15-tool", &["-r", &card.slot.to_string(), "-D"]);
            assert!(ran.status.code().is_some(), "pkcs15-tool crashed: {:?}: {}", ran.status, ran.out);
            let faults: Vec<String> = card.faults();
            card.stop();
            faults
        };
        let first = run("7");
        assert!(first.len() >= 3, "a quarter of the answers mutated: {first:?}");
        assert!(first.iter().all(|f| f.contains("FAULT mutated answer: APDU ")), "{first:?}");
        assert_eq!(run("7"), first, "the same seed, the same mutations at the same APDUs");
        assert_ne!(run("8"), first, "another seed, other mutations");
    }

    fn pin_tries(image: &CardImage, reference: u8) -> u8 {
        image.pins.iter().find(|p| p.reference.0 == reference).unwrap().tries_left
    }

    #[test]
    fn a_fault_never_damages_the_card_image_and_a_cut_before_leaves_it_as_it_was() {
        let test = "a_fault_never_damages_the_card_image_and_a_cut_before_leaves_it_as_it_was";
        let Some((stack, _turn)) = stack(test) else { return };
        let dir = scratch("image");
        let path = dir.join("card.json");
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards/cns-renewable.json");
        std::fs::copy(&fixture, &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let image = path.to_str().unwrap();
        // A wrong CNS0 PIN after selecting EF_IDCarta: APDU 2 writes the try counter.
        let wrong_pin = ["00A4080C0410001003", "00200090083131313131313131"];
        let send = |card: &HostileCard| {
            let mut args = vec!["apdu", "--reader", card.reader.as_str()];
            args.extend(wrong_pin);
            firmalab(stack, &args)
        };
        for (fault, tries_after) in [("cut-before@2", 3), ("cut-after@2", 2), ("drop@2", 1), ("corrupt@2", 0)] {
            let card = HostileCard::start(stack, &dir, &["--image", image], &["--fault", fault]);
            let o = send(&card);
            let faults = card.faults();
            assert!(faults.len() == 1 && faults[0].contains(&format!("FAULT {fault}: ")), "{fault}: {faults:?}");
            assert!(faults[0].contains("0020009008****************"), "the PIN is never logged: {faults:?}");
            if fault == "corrupt@2" {
                // 63C0 XOR 5A: the client sees a status word no card sends.
                assert!(text(&o).contains("399A"), "{}", text(&o));
            } else {
                assert!(!o.status.success(), "{fault}: the client saw the card go: {}", text(&o));
            }
            card.stop();
            let saved = CardImage::load(&path).unwrap_or_else(|e| panic!("{fault}: the image no longer loads: {e}"));
            saved.validate().unwrap();
            assert_eq!(pin_tries(&saved, 0x10), tries_after, "{fault}: CNS0 tries left");
            if fault == "cut-before@2" {
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    before,
                    "a cut before the VERIFY leaves the image byte for byte"
                );
            }
            let o = firmalab(stack, &["image", "show", image]);
            assert!(o.status.success(), "{}", text(&o));
        }
    }
}
