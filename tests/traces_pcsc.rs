//! Real sessions recorded through the PC/SC stack and imported as traces (issue 15): one
//! OpenSC session captured at once by pcsc-spy, by pcscd's `--apdu` log and by OpenSC's debug
//! log imports to the same commands and replays on a fresh card without divergence (and with
//! divergences on the other profile); every session of the conformance corpus
//! (`fixtures/traces/corpus.json`) is recorded and replayed the same way.
//!
//! `FIRMALAB_RECORD_TRACES=1` (set by `fixtures/traces/record.sh`) writes the recorded traces
//! and the three raw logs into `fixtures/traces/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "pcsc"))]
#[test]
fn trace_recording_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED trace recording tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::{self, PKCS11, fixture, insert, skip, text};
    use firmalab_emulator::CardRng;
    use firmalab_harness::stack::PrivateStack;
    use firmalab_harness::trace::corpus::{Corpus, Entry, Method};
    use firmalab_harness::trace::replay::{self, Options, Report};
    use firmalab_harness::trace::{self, Format, Item, Secrets, Trace};
    use firmalab_harness::transport::in_process::InProcess;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};
    use std::sync::{Mutex, MutexGuard, OnceLock};
    use std::time::Duration;

    const SPY_LIB: &str = "/usr/lib/x86_64-linux-gnu/libpcscspy.so.0";
    const PCSCLITE: &str = "/usr/lib/x86_64-linux-gnu/libpcsclite.so.1";

    /// A private pcscd that logs every APDU (`--apdu --debug`), for this test binary.
    static LOGGED: OnceLock<Result<PrivateStack, String>> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn recording() -> bool {
        std::env::var("FIRMALAB_RECORD_TRACES").is_ok_and(|v| v == "1")
    }

    fn missing_tool() -> Option<String> {
        for tool in ["opensc-tool", "pkcs15-tool", "pkcs11-tool"] {
            if Command::new(tool).arg("--help").output().is_err() {
                return Some(format!("{tool} not installed (apt-get install opensc)"));
            }
        }
        if Command::new("pcsc-spy").arg("--help").output().is_err() || !Path::new(SPY_LIB).exists() {
            return Some(format!("pcsc-spy or {SPY_LIB} not installed (apt-get install libpcsclite-dev)"));
        }
        None
    }

    fn stack(test: &str) -> Option<(&'static PrivateStack, MutexGuard<'static, ()>)> {
        if std::env::var("FIRMALAB_PCSC").is_ok_and(|v| v == "off") {
            skip(test, "FIRMALAB_PCSC=off");
            return None;
        }
        let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let s = LOGGED.get_or_init(|| match missing_tool() {
            Some(why) => Err(why),
            None => PrivateStack::start_with(&["--apdu", "--debug"]).map_err(|e| e.to_string()),
        });
        match s {
            Ok(s) => Some((s, turn)),
            Err(why) => {
                skip(test, why);
                None
            }
        }
    }

    /// What one run of a client left in each log.
    struct Logs {
        output: Output,
        spy: String,
        pcscd: String,
        opensc: String,
    }

    /// Runs a PC/SC client with pcsc-lite's logging shim in place of libpcsclite (OpenSC loads
    /// it with dlopen, so LD_PRELOAD would not do), OpenSC's debug log at `opensc_debug`, and
    /// cuts this run's part out of the private pcscd's log.
    fn run_logged(stack: &PrivateStack, dir: &Path, args: &[String], spy: bool, opensc_debug: u8) -> Logs {
        let shim = dir.join("shim");
        std::fs::create_dir_all(&shim).unwrap();
        let link = |from: &str, name: &str| {
            let to = shim.join(name);
            let _ = std::fs::remove_file(&to);
            std::os::unix::fs::symlink(from, to).unwrap();
        };
        link(SPY_LIB, "libpcsclite.so.1");
        link(PCSCLITE, "libpcsclite_nospy.so.1");
        // A regular file instead of pcsc-spy's FIFO: the shim appends to it, pcsc-spy reads it
        // afterwards, nothing to synchronise.
        let raw = shim.join("pcsc-spy");
        std::fs::write(&raw, b"").unwrap();
        let conf = dir.join("opensc.conf");
        let opensc_log = dir.join("opensc.log");
        let _ = std::fs::remove_file(&opensc_log);
        std::fs::write(
            &conf,
            format!("app default {{\n    debug = {opensc_debug};\n    debug_file = {};\n}}\n", opensc_log.display()),
        )
        .unwrap();
        // Every earlier client's end is logged first, so none of it falls into this run's part.
        let before = support::wait_clients_done(stack, 0).len();
        let mut cmd = Command::new(&args[0]);
        // A refused firmalab session (the Oberthur diagnostic) writes no support bundle into
        // the source tree.
        cmd.args(&args[1..]).env("PCSCLITE_CSOCK_NAME", stack.socket()).env("FIRMALAB_SUPPORT_BUNDLE", "off");
        if opensc_debug > 0 {
            cmd.env("OPENSC_CONF", &conf);
        }
        if spy {
            cmd.env("HOME", &shim).env("LD_LIBRARY_PATH", &shim);
        }
        let output = cmd.output().unwrap_or_else(|e| panic!("{}: {e}", args[0]));
        // pcscd logs a client's last calls as it handles them: wait until it logged its end.
        let log = support::wait_clients_done(stack, before);
        let pcscd = log.get(before..).unwrap_or_default().to_owned();
        let spy = if spy {
            let o = Command::new("pcsc-spy").arg("-n").arg(&raw).output().unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        } else {
            String::new()
        };
        let opensc = std::fs::read_to_string(&opensc_log).unwrap_or_default();
        Logs { output, spy, pcscd, opensc }
    }

    fn replay_fresh(t: &Trace, image: &str, seed: u64, secrets: &Secrets) -> Report {
        let mut card =
            InProcess::ephemeral(fixture(image), CardRng::insecure_deterministic(seed), &format!("fresh {image}"));
        replay::replay(t, &mut card, &Options { secrets: secrets.clone(), ..Options::default() }).unwrap_or_else(|e| {
            // Keep what could not be replayed for a look.
            let keep = support::scratch("unreplayable").keep().join(&t.source.file);
            t.save(&keep).unwrap();
            panic!("{}: {e} (trace kept in {})", t.source.file, keep.display())
        })
    }

    fn commands(t: &Trace) -> Vec<(String, Option<String>)> {
        t.exchanges().map(|e| (e.command.clone(), e.response.clone())).collect()
    }

    #[test]
    fn one_opensc_session_logged_three_ways_imports_to_the_same_commands_and_replays_without_divergence() {
        let test = "one_opensc_session_logged_three_ways_imports_to_the_same_commands_and_replays_without_divergence";
        let Some((stack, _turn)) = stack(test) else {
            return;
        };
        let card = insert(stack, fixture("cns-renewable.json"));
        wait_alone(stack, &card.reader);
        let dir = support::scratch("trace-three");
        let args: Vec<String> =
            ["pkcs15-tool", "--reader", &card.slot.to_string(), "--verify-pin", "--pin", "12345678"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let logs = run_logged(stack, &dir, &args, true, 3);
        assert!(logs.output.status.success(), "{}", text(&logs.output));
        card.remove();
        // The raw logs carry the PIN (OpenSC's only from debug level 8 on): imports must not.
        assert!(logs.spy.contains("31 32 33 34 35 36 37 38") && logs.pcscd.contains("31 32 33 34 35 36 37 38"));
        assert!(!logs.opensc.contains("31 32 33 34 35 36 37 38") && !logs.opensc.is_empty());
        let none = Secrets::default();
        let spy = trace::import_bytes(logs.spy.as_bytes(), "spy.log", None, &none).unwrap();
        let pcscd = trace::import_bytes(logs.pcscd.as_bytes(), "pcscd.log", None, &none).unwrap();
        let opensc = trace::import_bytes(logs.opensc.as_bytes(), "opensc.log", None, &none).unwrap();
        assert_eq!(spy.source.format, Format::PcscSpy, "detected");
        assert_eq!(pcscd.source.format, Format::Pcscd, "detected");
        assert_eq!(opensc.source.format, Format::Opensc, "detected");
        // The same exchanges, byte for byte, in the same order.
        assert!(commands(&spy).len() > 40, "{} commands", commands(&spy).len());
        assert_eq!(commands(&spy), commands(&pcscd));
        // OpenSC at debug 3 leaves the VERIFY out: a hidden command in its place.
        let mut without_verify = commands(&spy);
        let verify = without_verify.iter().position(|(c, _)| c.starts_with("0020009008")).unwrap();
        without_verify.remove(verify);
        assert_eq!(commands(&opensc), without_verify);
        let hidden: Vec<&Item> = opensc
            .events
            .iter()
            .flat_map(|e| match e {
                trace::Event::Transaction { items, .. } => items.as_slice(),
                _ => &[],
            })
            .filter(|i| matches!(i, Item::Hidden(_)))
            .collect();
        assert_eq!(hidden.len(), 1, "the VERIFY is hidden");
        // Secrets: the PIN never survives; the unknown VERIFY data is {secret1:8:FF}.
        for t in [&spy, &pcscd] {
            let json = t.to_json();
            assert!(!json.contains("3132333435363738") && !json.contains("12345678"), "PIN in the trace");
            assert_eq!(commands(t)[verify].0, "0020009008{secret1:8:FF}");
        }
        // Transactions and connections as pcsc-spy saw them.
        let c = spy.counts();
        assert!(c.transactions > 10 && c.connections >= 1, "{c:?}");
        assert_eq!(spy.atr.as_deref(), Some("3BFF1800FF8131FE55006B02091303010101434E531131808C"));
        // Replay: a fresh copy of the card gives the same answers; the other profile does not.
        let pin = Secrets::parse(&["secret1=12345678".into()]).unwrap();
        let same = replay_fresh(&spy, "cns-renewable.json", 11, &pin);
        assert_eq!((same.summary.differ, same.summary.not_sent), (0, 0), "{}", same.render(false));
        assert_eq!(same.summary.equal, same.summary.commands);
        let other = replay_fresh(&spy, "oberthur-renewable.json", 11, &pin);
        assert!(other.summary.differ > 10, "{}", other.render(false));
        assert!(!other.atr_equal());
        if recording() {
            let raw = root().join("fixtures/traces/raw");
            std::fs::create_dir_all(&raw).unwrap();
            std::fs::write(raw.join("cns-verify-pin.pcsc-spy.log"), &logs.spy).unwrap();
            std::fs::write(raw.join("cns-verify-pin.pcscd.log"), &logs.pcscd).unwrap();
            std::fs::write(raw.join("cns-verify-pin.opensc.log"), &logs.opensc).unwrap();
        }
    }

    #[test]
    fn replay_on_a_reader_needs_consent_sends_only_reads_in_a_dry_run_and_changes_the_pin_with_yes() {
        let test = "replay_on_a_reader_needs_consent_sends_only_reads_in_a_dry_run_and_changes_the_pin_with_yes";
        let Some((stack, _turn)) = stack(test) else {
            return;
        };
        let card = insert(stack, fixture("cns-renewable.json"));
        let reader = format!("reader:{}", card.reader);
        let trace = root().join("fixtures/traces/cns-pin-change.json");
        let trace = trace.to_str().unwrap();
        let run = |args: &[&str]| support::firmalab(stack, args);
        let o = run(&[
            "trace",
            "replay",
            trace,
            "--card",
            &reader,
            "--secret",
            "pin=12345678",
            "--secret",
            "new_pin=24682468",
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("pass --yes"), "{}", text(&o));
        let o = run(&["trace", "replay", trace, "--card", &reader, "--dry-run"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let t = text(&o);
        assert!(t.contains("not sent: dry run: stops at the first command that sends a secret"), "{t}");
        assert!(t.contains("dry run: ") && t.contains("0 differ"), "{t}");
        // The PIN is still the old one (a tries query first: 3 left, nothing spent).
        let select = "00A4080C0414008110";
        let o = run(&["apdu", "--reader", &card.reader, "--raw", select, "0020009A", "0020009A083132333435363738"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "9000\n63C3\n9000\n", "{}", text(&o));
        // With consent and the secrets, the recorded PIN change happens, as recorded.
        let o = run(&[
            "trace",
            "replay",
            trace,
            "--card",
            &reader,
            "--yes",
            "--secret",
            "pin=12345678",
            "--secret",
            "new_pin=24682468",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains(" 0 differ, 0 not comparable, 0 not sent"), "{}", text(&o));
        let o = run(&["apdu", "--reader", &card.reader, "--raw", select, "0020009A083234363832343638"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "9000\n9000\n", "{}", text(&o));
        card.remove();
    }

    fn substitute(arg: &str, slot: u8, reader: &str, dir: &Path) -> String {
        arg.replace("{slot}", &slot.to_string())
            .replace("{reader}", reader)
            .replace("{pkcs11}", PKCS11)
            .replace("{dir}", &dir.display().to_string())
            .replace("{firmalab}", env!("CARGO_BIN_EXE_firmalab"))
    }

    /// Waits until pcscd sees no card but ours: a card just removed from the other reader is
    /// reported present until pcscd's next poll (400 ms), and a client that scans every reader
    /// (pkcs11-tool) would talk to it.
    fn wait_alone(stack: &PrivateStack, reader: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let o = support::firmalab(stack, &["readers"]);
            let listing = String::from_utf8_lossy(&o.stdout).into_owned();
            let others_empty = listing.lines().filter(|l| !l.starts_with(reader)).all(|l| l.ends_with("(no card)"));
            if o.status.success() && others_empty {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "another card stays in a reader:\n{listing}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn record(stack: &PrivateStack, e: &Entry) -> Trace {
        // support::insert runs every card on the deterministic RNG seeded 11.
        assert_eq!(e.seed, 11, "{}: the recording cards run with seed 11", e.name);
        let card = insert(stack, fixture(&e.image));
        wait_alone(stack, &card.reader);
        let dir = support::scratch(&format!("corpus-{}", e.name));
        for (name, content) in &e.files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        let args: Vec<String> = e.run.iter().map(|a| substitute(a, card.slot, &card.reader, &dir)).collect();
        let logs = run_logged(stack, &dir, &args, e.method == Method::PcscSpy, 0);
        card.remove();
        assert_eq!(logs.output.status.code(), Some(e.exit), "{}: {:?}\n{}", e.name, args, text(&logs.output));
        let (log, format) = match e.method {
            Method::PcscSpy => (logs.spy, Format::PcscSpy),
            Method::Pcscd => (logs.pcscd, Format::Pcscd),
        };
        trace::import_bytes(log.as_bytes(), &format!("{}.{}.log", e.name, format), Some(format), &e.secrets())
            .unwrap_or_else(|err| panic!("{}: {err}", e.name))
    }

    #[test]
    fn every_corpus_session_recorded_through_pcscd_replays_on_a_fresh_card_without_divergence() {
        let test = "every_corpus_session_recorded_through_pcscd_replays_on_a_fresh_card_without_divergence";
        let Some((stack, _turn)) = stack(test) else {
            return;
        };
        let dir = root().join("fixtures/traces");
        let corpus = Corpus::load(&dir).unwrap();
        for e in &corpus.traces {
            let t = record(stack, e);
            let json = t.to_json();
            for value in e.secrets.values() {
                assert!(!json.contains(value.as_str()), "{}: a secret in clear", e.name);
                assert!(!json.contains(&trace::hex(value.as_bytes())), "{}: a secret in clear", e.name);
            }
            let r = replay_fresh(&t, &e.image, e.seed, &e.secrets());
            assert_eq!((r.summary.differ, r.summary.not_sent), (0, 0), "{}:\n{}", e.name, r.render(false));
            assert!(r.summary.commands > 0, "{}", e.name);
            if recording() {
                t.save(&e.trace_path(&dir)).unwrap();
            }
        }
    }
}
