//! PC/SC hygiene on a token shared with other programs, through a private pcscd + vpcd
//! (issue 9 items 1-3): firmalab leaves the card as it found it on exit (no reset: the card
//! log shows none, and a PIN another program verified stays verified); another program cannot
//! interleave inside a signature or a chained command; destructive flows wait for the card's
//! serial, dry runs change nothing; the PC/SC benchmark sends no PIN without the flag, and
//! with it sends a refused PIN once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "pcsc"))]
#[test]
fn pcsc_hygiene_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED pcsc hygiene tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::*;
    use firmalab_emulator::timing::Timing;
    use std::time::{Duration, Instant};

    const PIN: &str = "12345678";
    /// What the other program sends: a SELECT of an AID no card has (answered 6A82).
    const FOREIGN: &str = "00A4040005F0F1F2F3F4";

    fn status(o: &std::process::Output) -> i32 {
        o.status.code().unwrap_or(-1)
    }

    fn lines(log: &CardLog) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    /// Not a test on its own: the other PC/SC program of
    /// `a_second_client_cannot_interleave_inside_a_signature`, run as a child process of this
    /// binary (libpcsclite reads PCSCLITE_CSOCK_NAME once per process). It sends [`FOREIGN`]
    /// without transactions, as fast as the card lets it, for the given time. Without the
    /// environment variables it returns at once.
    #[test]
    fn foreign_pcsc_client() {
        let (Ok(reader), Ok(millis)) =
            (std::env::var("FIRMALAB_FOREIGN_READER"), std::env::var("FIRMALAB_FOREIGN_MILLIS"))
        else {
            return;
        };
        let mut t = firmalab_harness::transport::pcsc::PcscTransport::connect(&reader, Duration::from_secs(5))
            .expect("connect");
        let cmd = firmalab_harness::wire::hex::decode(FOREIGN).unwrap();
        let deadline = Instant::now() + Duration::from_millis(millis.parse().unwrap());
        let (mut sent, mut refused) = (0, 0);
        while Instant::now() < deadline {
            match t.transmit_unlocked(&cmd) {
                Ok(_) => sent += 1,
                Err(_) => refused += 1,
            }
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout(),
            "foreign client: {sent} sent, {refused} refused while another program held the card"
        );
    }

    #[test]
    fn firmalab_leaves_the_card_as_it_found_it_no_reset_and_a_verified_pin_stays_verified() {
        let Some((stack, _turn)) = stack("firmalab_leaves_the_card_as_it_found_it") else { return };
        let (card, log) = insert_logged(stack, fixture("cns-renewable.json"), Timing::None);
        let r = card.reader.clone();
        let ra_dir = scratch("hygiene-ra");
        let ra = ra_dir.join("ra.json");
        let runs: [Vec<&str>; 3] = [
            vec!["apdu", "--reader", &r, "00A4000C023F00"],
            vec!["readers"],
            vec!["flow", "diagnostic", "--card", "", "--pin", PIN, "--now", "2026-06-01", "--ra", ra.to_str().unwrap()],
        ];
        let reader_spec = format!("reader:{r}");
        for mut args in runs {
            if args[0] == "flow" {
                args[3] = &reader_spec;
            }
            let o = firmalab(stack, &args);
            assert!(status(&o) <= 1, "{args:?}: {}", text(&o));
        }
        // A program verifies the signature PIN and exits; firmalab runs and exits; the PIN is
        // still verified (a reset on firmalab's exit would log the first program out).
        let o = firmalab(stack, &["apdu", "--reader", &r, "00A4080C0414008110", "0020009A083132333435363738"]);
        assert!(String::from_utf8_lossy(&o.stdout).ends_with("9000  success\n"), "{}", text(&o));
        let mark = lines(&log).len();
        let o = firmalab(stack, &["apdu", "--reader", &r, "00A4000C023F00", "00B0000010"]);
        assert!(o.status.success(), "{}", text(&o));
        let o = firmalab(stack, &["apdu", "--reader", &r, "00A4080C0414008110", "0020009A"]);
        let after = lines(&log);
        if !after[mark..].iter().any(|l| l == "PowerOff") {
            assert!(
                String::from_utf8_lossy(&o.stdout).ends_with("9000  success\n"),
                "the PIN verified before firmalab ran is no longer verified: {}\ncard log: {after:?}",
                text(&o)
            );
        }
        let all = lines(&log);
        assert!(!all.iter().any(|l| l == "Reset"), "the card was reset: {all:?}");
        assert!(all.iter().filter(|l| l.starts_with("> ")).count() > 20, "{all:?}");
        card.remove();
    }

    /// End to end: another program hammering the card while firmalab signs never gets a
    /// command in between VERIFY, MSE and the chained PSO (nor anywhere a flow needs the card
    /// to itself: its selects would break the flow). pcscd makes a waiting program poll the
    /// lock, so the exact transaction boundaries are checked deterministically from pcscd's
    /// log by `firmalab_holds_one_transaction_per_signature_and_disconnects_leaving_the_card`.
    #[test]
    fn a_second_client_cannot_interleave_inside_a_signature() {
        let Some((stack, _turn)) = stack("a_second_client_cannot_interleave_inside_a_signature") else { return };
        let (card, log) = insert_logged(stack, fixture("cns-renewable.json"), Timing::Fast);
        let r = card.reader.clone();
        let other = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["with_stack::foreign_pcsc_client", "--exact", "--nocapture", "--test-threads=1"])
            .env("PCSCLITE_CSOCK_NAME", stack.socket())
            .env("FIRMALAB_FOREIGN_READER", &r)
            .env("FIRMALAB_FOREIGN_MILLIS", "6000")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let foreign = |l: &String| l.starts_with("> 00A40400");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lines(&log).iter().any(foreign) {
            assert!(Instant::now() < deadline, "the other program never reached the card");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ra_dir = scratch("interleave-ra");
        let ra = ra_dir.join("ra.json");
        let reader = format!("reader:{r}");
        // Two diagnostics: each signs once (VERIFY, MSE RESTORE, MSE SET, PSO in two chained
        // blocks) while the other program keeps sending.
        for _ in 0..2 {
            let o = firmalab(
                stack,
                &[
                    "flow",
                    "diagnostic",
                    "--card",
                    &reader,
                    "--pin",
                    PIN,
                    "--now",
                    "2026-06-01",
                    "--ra",
                    ra.to_str().unwrap(),
                    "--json",
                ],
            );
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
            assert_eq!(v["details"]["checks"][5]["status"], "pass", "{}", text(&o));
        }
        let out = other.wait_with_output().unwrap();
        // The card logs an APDU once its answer is on its way: only a stopped card's log is
        // sure to hold the last one.
        card.remove();
        let all = lines(&log);
        let mut signatures = 0;
        for (i, l) in all.iter().enumerate() {
            if l.starts_with("> 0020009A08") {
                let end = all[i..].iter().position(|x| x.starts_with("> 002A9E9A")).map(|p| i + p).unwrap();
                let inside = &all[i..=end];
                assert!(
                    inside.iter().any(|x| x.starts_with("> 102A9E9A")),
                    "the 256-byte block is chained: {inside:?}"
                );
                assert!(!inside.iter().any(foreign), "another program's command inside the signature: {inside:?}");
                signatures += 1;
            }
        }
        assert_eq!(signatures, 2, "{all:?}");
        let foreign_total = all.iter().filter(|l| foreign(l)).count();
        assert!(
            foreign_total > 10,
            "the other program was active: {foreign_total}; {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!all.iter().any(|l| l == "Reset"), "{all:?}");
    }

    /// A private pcscd like the shared one, but logging every client call and APDU
    /// (`--debug --apdu`): the record of what firmalab asked of PC/SC. Stopped on drop.
    struct DebugStack(firmalab_harness::stack::PrivateStack);

    impl Drop for DebugStack {
        fn drop(&mut self) {
            self.0.stop();
            let _ = std::fs::remove_dir_all(&self.0.dir);
        }
    }

    fn debug_stack() -> DebugStack {
        use firmalab_harness::stack::{PCSCD, PrivateStack, VPCD_DRIVER};
        let port = (0..200u16)
            .map(|i| 30_000 + ((std::process::id() as u16).wrapping_mul(7).wrapping_add(i * 2) % 1900))
            .find(|p| {
                std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok()
                    && std::net::TcpListener::bind(("0.0.0.0", *p + 1)).is_ok()
            })
            .expect("a free port pair");
        let dir = std::env::temp_dir().join(format!("firmalab-pcscd-debug-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        std::fs::write(
            dir.join("conf/vpcd"),
            format!(
                "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:{port}\nLIBPATH {VPCD_DRIVER}\nCHANNELID {port}\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("pcscd.log")).unwrap();
        let script = format!(
            "mount --bind '{}' /run/pcscd && exec {PCSCD} --foreground --debug --apdu -c '{}'",
            dir.join("run").display(),
            dir.join("conf").display()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut child = std::process::Command::new("setpriv")
                .args(["--pdeathsig", "TERM", "unshare", "--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            tx.send(child.id()).unwrap();
            let _ = child.wait();
            loop {
                std::thread::park();
            }
        });
        let pid = rx.recv().unwrap();
        let stack = PrivateStack { dir, port, pid };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stack.socket().exists() {
            assert!(Instant::now() < deadline, "debug pcscd did not start: {}", stack.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        DebugStack(stack)
    }

    /// A PC/SC call from pcscd's debug log: the client, the command, the APDU (transmits) or
    /// the disposition (disconnects).
    #[derive(Debug, Clone)]
    struct Call {
        client: String,
        command: String,
        detail: String,
    }

    fn calls(log: &str) -> Vec<Call> {
        let mut out: Vec<Call> = vec![];
        for line in log.lines() {
            if let Some(rest) = line.split("Received command: ").nth(1) {
                let mut words = rest.split(" from client ");
                let command = words.next().unwrap_or_default().trim().to_owned();
                let client = words.next().unwrap_or_default().trim().to_owned();
                out.push(Call { client, command, detail: String::new() });
            } else if let Some(apdu) = line.split("APDU: ").nth(1) {
                if let Some(c) = out.last_mut().filter(|c| c.command == "TRANSMIT" && c.detail.is_empty()) {
                    c.detail = apdu.split_whitespace().collect();
                }
            } else if let Some(d) = line.split("dwDisposition: ").nth(1)
                && let Some(c) = out.last_mut()
            {
                c.detail = d.trim().to_owned();
            }
        }
        out
    }

    /// Deterministic, from pcscd's own record of firmalab's calls: every disconnect leaves
    /// the card (disposition 0, SCARD_LEAVE_CARD; 1 would reset it), nothing reconnects, and
    /// each signature (VERIFY with the PIN, MSE RESTORE, MSE SET, both PSO blocks) runs in one
    /// transaction.
    #[test]
    fn firmalab_holds_one_transaction_per_signature_and_disconnects_leaving_the_card() {
        let Some((_shared, _turn)) = stack("firmalab_holds_one_transaction_per_signature") else { return };
        let debug = debug_stack();
        let stack = &debug.0;
        let card = insert(stack, fixture("cns-renewable.json"));
        let reader = format!("reader:{}", card.reader);
        let ra_dir = scratch("debug-ra");
        let ra = ra_dir.join("ra.json");
        let o = firmalab(
            stack,
            &[
                "flow",
                "diagnostic",
                "--card",
                &reader,
                "--pin",
                PIN,
                "--now",
                "2026-06-01",
                "--ra",
                ra.to_str().unwrap(),
            ],
        );
        assert!(text(&o).contains("test signature verifies"), "{}", text(&o));
        // pcscd logs firmalab's last calls as it handles them: wait until it logged its end.
        let all = calls(&wait_clients_done(stack, 0));
        let verify = all.iter().position(|c| c.detail.starts_with("0020009A08")).unwrap_or_else(|| panic!("{all:#?}"));
        let client = all[verify].client.clone();
        // Client numbers are socket descriptors, reused by the next process: firmalab's
        // session runs from its CMD_VERSION to the next one on that descriptor.
        let first = all[..verify].iter().rposition(|c| c.client == client && c.command == "CMD_VERSION").unwrap();
        let last = all[verify..]
            .iter()
            .position(|c| c.client == client && c.command == "CMD_VERSION")
            .map_or(all.len(), |i| verify + i);
        let mine: Vec<&Call> = all[first..last].iter().filter(|c| c.client == client).collect();
        let at = mine.iter().position(|c| c.detail.starts_with("0020009A08")).unwrap();
        let end = at + mine[at..].iter().position(|c| c.detail.starts_with("002A9E9A")).unwrap();
        let section = &mine[at..=end];
        assert!(section.iter().any(|c| c.detail.starts_with("102A9E9A")), "chained PSO: {section:#?}");
        assert!(
            !section.iter().any(|c| c.command.ends_with("_TRANSACTION")),
            "VERIFY, MSE and PSO are not in one transaction: {section:#?}"
        );
        assert!(
            mine[..at]
                .iter()
                .rev()
                .find(|c| c.command.ends_with("_TRANSACTION"))
                .is_some_and(|c| c.command == "BEGIN_TRANSACTION")
        );
        let disconnects: Vec<&&Call> = mine.iter().filter(|c| c.command == "DISCONNECT").collect();
        assert_eq!(disconnects.len(), 1, "{mine:#?}");
        assert_eq!(disconnects[0].detail, "0", "SCARD_LEAVE_CARD: {disconnects:?}");
        assert!(!all.iter().any(|c| c.command == "RECONNECT"), "{all:#?}");
        card.remove();
    }

    #[test]
    fn destructive_flows_on_a_reader_wait_for_the_serial_and_a_dry_run_changes_nothing() {
        let Some((stack, _turn)) = stack("destructive_flows_on_a_reader_wait_for_the_serial") else { return };
        let (card, log) = insert_logged(stack, fixture("cns-renewable.json"), Timing::None);
        let reader = format!("reader:{}", card.reader);
        let ra_dir = scratch("confirm-ra");
        let ra = ra_dir.join("ra.json");
        let ra = ra.to_str().unwrap();
        let cert_present = || {
            let o = firmalab(stack, &["apdu", "--reader", &card.reader, "00A4080C0414009010"]);
            String::from_utf8_lossy(&o.stdout).starts_with("9000")
        };
        let o = firmalab(stack, &["flow", "reset", "--card", &reader, "--pin", PIN, "--ra", ra]);
        assert_eq!(status(&o), 1, "{}", text(&o));
        assert!(
            text(&o).contains("NotConfirmed") && text(&o).contains("--confirm-serial 6010000000000101"),
            "{}",
            text(&o)
        );
        let o = firmalab(
            stack,
            &["flow", "reset", "--card", &reader, "--pin", PIN, "--ra", ra, "--confirm-serial", "6010000000000999"],
        );
        assert_eq!(status(&o), 1, "{}", text(&o));
        assert!(text(&o).contains("is not this card's serial"), "{}", text(&o));
        let o = firmalab(stack, &["flow", "reset", "--card", &reader, "--pin", PIN, "--ra", ra, "--dry-run"]);
        assert_eq!(status(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("(not sent: dry run)"), "{}", text(&o));
        assert!(cert_present(), "nothing erased yet");
        assert!(
            !lines(&log).iter().any(|l| l.starts_with("> 0020") && l.len() > 10),
            "no PIN sent yet: {:?}",
            lines(&log)
        );
        // A scenario that writes needs the serial too.
        let dir = scratch("confirm-scenario");
        let sc = dir.join("writes.json");
        std::fs::write(
            &sc,
            r#"{"schema":"firmalab-scenario","version":1,"name":"erase","steps":[{"step":"apdu","name":"erase","command":"B0F50000","sw":"*"}]}"#,
        )
        .unwrap();
        let o = firmalab(stack, &["scenario", sc.to_str().unwrap(), "--card", &reader]);
        assert_ne!(status(&o), 0);
        assert!(text(&o).contains("not confirmed") && text(&o).contains("--confirm-serial"), "{}", text(&o));
        assert!(cert_present());
        let o = firmalab(
            stack,
            &["flow", "reset", "--card", &reader, "--pin", PIN, "--ra", ra, "--confirm-serial", "6010000000000101"],
        );
        assert_eq!(status(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("SerialConfirmed"), "{}", text(&o));
        assert!(!cert_present(), "erased after the confirmation");
        assert!(!lines(&log).iter().any(|l| l == "Reset"));
        card.remove();
    }

    #[test]
    fn bench_reader_sends_no_pin_without_the_flag_and_a_refused_pin_only_once_with_it() {
        let Some((stack, _turn)) = stack("bench_reader_sends_no_pin_without_the_flag") else { return };
        let (card, log) = insert_logged(stack, fixture("cns-renewable.json"), Timing::None);
        let o = firmalab(stack, &["bench", "--seconds", "1", "--rounds", "1", "--reader", &card.reader]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("signature sequence not measured: it sends a PIN"), "{}", text(&o));
        let verifies = |log: &CardLog| lines(log).iter().filter(|l| l.starts_with("> 0020009A08")).count();
        assert_eq!(verifies(&log), 0, "{:?}", lines(&log));
        card.remove();
        // A card whose PIN is not the benchmark's: with --virtual-card the PIN goes out once,
        // is refused, and the benchmark stops there.
        let mut image = fixture("cns-renewable.json");
        for p in image.pins.iter_mut() {
            if p.reference.0 == 0x1A {
                p.value = "24682468".into();
            }
        }
        let (card, log) = insert_logged(stack, image, Timing::None);
        let o =
            firmalab(stack, &["bench", "--seconds", "1", "--rounds", "1", "--reader", &card.reader, "--virtual-card"]);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("63C2") && text(&o).contains("not timed"), "{}", text(&o));
        // The card logs an APDU once its answer is on its way, and the refused VERIFY may be
        // the last one: count on the stopped card's log.
        let card = card.remove();
        assert_eq!(verifies(&log), 1, "{:?}", lines(&log));
        assert_eq!(card.image().pins.iter().find(|p| p.reference.0 == 0x1A).unwrap().tries_left, 2);
    }
}
