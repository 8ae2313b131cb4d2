//! Traces without the PC/SC stack: the committed conformance corpus (`fixtures/traces/`) replays
//! on fresh in-process copies of its fixture cards with no divergence, the real logs in
//! `fixtures/traces/raw/` (one OpenSC session as pcsc-spy, pcscd and OpenSC logged it) import to
//! the same commands, bad input is refused with its line, and a replay on a reader keeps the
//! physical-token rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::trace::classify::{Effect, classify, data_field};
use firmalab_harness::trace::corpus::Corpus;
use firmalab_harness::trace::replay::{self, Options, Report, Verdict};
use firmalab_harness::trace::{self, Format, Item, MAX_INPUT, Secrets, Template, Trace};
use firmalab_harness::transport::in_process::InProcess;
use firmalab_harness::transport::{Transport, TransportError};
use proptest::prelude::*;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_dir() -> PathBuf {
    root().join("fixtures/traces")
}

fn image(name: &str) -> CardImage {
    CardImage::load(&root().join("fixtures/cards").join(name)).unwrap()
}

fn fresh(name: &str, seed: u64) -> InProcess {
    InProcess::ephemeral(image(name), CardRng::insecure_deterministic(seed), name)
}

fn raw(name: &str) -> String {
    std::fs::read_to_string(corpus_dir().join("raw").join(name)).unwrap()
}

fn replay_on(t: &Trace, card: &mut dyn Transport, secrets: &[&str]) -> Report {
    let secrets = Secrets::parse(&secrets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    replay::replay(t, card, &Options { secrets, ..Options::default() }).unwrap()
}

fn secrets_of(e: &firmalab_harness::trace::corpus::Entry) -> Vec<String> {
    e.secrets.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[test]
fn every_corpus_trace_replays_on_a_fresh_copy_of_its_card_with_no_divergence() {
    let corpus = Corpus::load(&corpus_dir()).unwrap();
    assert!(corpus.traces.len() >= 10);
    for e in &corpus.traces {
        let t = Trace::load(&e.trace_path(&corpus_dir())).unwrap();
        let mut card = fresh(&e.image, e.seed);
        let s = secrets_of(e);
        let r = replay_on(&t, &mut card, &s.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!((r.summary.differ, r.summary.not_sent), (0, 0), "{}:\n{}", e.name, r.render(false));
        assert!(r.summary.equal > 10, "{}: {:?}", e.name, r.summary);
        assert!(r.atr_equal(), "{}", e.name);
        // Only answers that vary by nature are left uncompared.
        for c in &r.results {
            if let Verdict::NotComparable { why } = &c.verdict {
                assert!(
                    ["PSO DECIPHER", "PSO COMPUTE DIGITAL SIGNATURE", "GET CHALLENGE", "GET RESPONSE"]
                        .contains(&c.name),
                    "{}: {} not comparable: {why}",
                    e.name,
                    c.name
                );
            }
        }
    }
}

#[test]
fn the_corpus_covers_both_profiles_and_has_no_stray_files() {
    let corpus = Corpus::load(&corpus_dir()).unwrap();
    for want in ["pkcs15-dump", "pkcs11", "sign", "pin-change", "pin-unblock"] {
        for profile in ["cns", "oberthur"] {
            assert!(
                corpus.traces.iter().any(|e| e.name.starts_with(profile) && e.name.contains(want)),
                "no {profile} {want} trace"
            );
        }
    }
    for f in std::fs::read_dir(corpus_dir()).unwrap() {
        let name = f.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".json")
            && stem != "corpus"
        {
            assert!(corpus.traces.iter().any(|e| e.name == stem), "{name} is not in corpus.json");
        }
    }
}

#[test]
fn corpus_traces_hold_no_pin_or_puk_and_every_secret_field_is_a_placeholder() {
    let corpus = Corpus::load(&corpus_dir()).unwrap();
    for e in &corpus.traces {
        let json = std::fs::read_to_string(e.trace_path(&corpus_dir())).unwrap();
        for v in e.secrets.values() {
            assert!(!json.contains(v.as_str()), "{}: {v} in clear", e.name);
            assert!(!json.contains(&trace::hex(v.as_bytes())), "{}: {v} in clear (hex)", e.name);
        }
        let t = Trace::from_json(&json).unwrap();
        let mut secret_commands = 0;
        for x in t.exchanges() {
            let tpl = Template::parse(&x.command).unwrap();
            let masked = tpl.masked();
            let shape: Vec<u8> = masked.iter().map(|b| b.unwrap_or(0)).collect();
            if classify(&shape).effect == Effect::Secret {
                secret_commands += 1;
                let data = data_field(&shape);
                let start = 5 + usize::from(shape[4] == 0 && shape.len() > 7) * 2;
                assert!(
                    masked[start..start + data.len()].iter().all(Option::is_none),
                    "{}: line {}: clear bytes in {}",
                    e.name,
                    x.line,
                    x.command
                );
            }
        }
        if !e.secrets.is_empty() {
            assert!(secret_commands > 0 || e.name.contains("objects"), "{}: no secret-bearing command", e.name);
        }
    }
}

#[test]
fn a_cns_session_replayed_on_the_oberthur_card_reports_how_each_answer_differs() {
    let t = Trace::load(&corpus_dir().join("cns-pkcs15-dump.json")).unwrap();
    let mut card = fresh("oberthur-renewable.json", 11);
    let r = replay_on(&t, &mut card, &[]);
    assert!(!r.atr_equal());
    assert!(r.summary.differ > 20, "{}", r.render(false));
    assert_eq!(r.summary.commands, t.exchanges().count(), "every command is replayed and judged");
    let how: Vec<String> = r
        .results
        .iter()
        .filter_map(|c| if let Verdict::Differs { how } = &c.verdict { Some(how.join("; ")) } else { None })
        .collect();
    assert!(how.iter().any(|h| h.starts_with("status word 9000 recorded, 6A82 now")), "{how:?}");
    assert!(r.render(false).contains("DIFFERS"));
    // And the other way round.
    let t = Trace::load(&corpus_dir().join("oberthur-pkcs15-dump.json")).unwrap();
    let r = replay_on(&t, &mut fresh("cns-renewable.json", 11), &[]);
    assert!(r.summary.differ > 20, "{}", r.render(false));
}

#[test]
fn a_data_difference_is_reported_with_its_offset() {
    // The same card with another serial answers READ BINARY of EF_IDCarta differently.
    let t = Trace::load(&corpus_dir().join("cns-pkcs15-dump.json")).unwrap();
    let json = std::fs::read_to_string(root().join("fixtures/cards/cns-renewable.json")).unwrap();
    // EF_IDCarta holds the serial 6010000000000101 in ASCII; make it …0103.
    assert_eq!(json.matches("36303130303030303030303030313031").count(), 1);
    let other =
        CardImage::from_json(&json.replace("36303130303030303030303030313031", "36303130303030303030303030313033"))
            .unwrap();
    let mut card = InProcess::ephemeral(other, CardRng::insecure_deterministic(11), "other serial");
    let r = replay_on(&t, &mut card, &[]);
    let d: Vec<&Vec<String>> = r
        .results
        .iter()
        .filter_map(|c| if let Verdict::Differs { how } = &c.verdict { Some(how) } else { None })
        .collect();
    // OpenSC reads the serial twice (card init, then the PKCS#15 emulator); nothing else differs.
    assert!(!d.is_empty(), "{}", r.render(false));
    for how in d {
        assert_eq!(how, &vec!["data: 1 of 16 bytes differ, the first at offset 15".to_string()]);
    }
}

fn three() -> (Trace, Trace, Trace) {
    let none = Secrets::default();
    let spy = trace::import_bytes(raw("cns-verify-pin.pcsc-spy.log").as_bytes(), "spy", None, &none).unwrap();
    let pcscd = trace::import_bytes(raw("cns-verify-pin.pcscd.log").as_bytes(), "pcscd", None, &none).unwrap();
    let opensc = trace::import_bytes(raw("cns-verify-pin.opensc.log").as_bytes(), "opensc", None, &none).unwrap();
    (spy, pcscd, opensc)
}

fn pairs(t: &Trace) -> Vec<(String, Option<String>)> {
    t.exchanges().map(|e| (e.command.clone(), e.response.clone())).collect()
}

#[test]
fn one_real_session_logged_by_pcsc_spy_pcscd_and_opensc_imports_to_the_same_commands() {
    let (spy, pcscd, opensc) = three();
    assert_eq!(
        (spy.source.format, pcscd.source.format, opensc.source.format),
        (Format::PcscSpy, Format::Pcscd, Format::Opensc),
        "formats detected"
    );
    assert!(pairs(&spy).len() > 40);
    assert_eq!(pairs(&spy), pairs(&pcscd));
    let mut spy_pairs = pairs(&spy);
    let verify = spy_pairs.iter().position(|(c, _)| c.starts_with("0020009008")).unwrap();
    assert_eq!(spy_pairs[verify], ("0020009008{secret1:8:FF}".to_string(), Some("9000".to_string())));
    spy_pairs.remove(verify);
    assert_eq!(pairs(&opensc), spy_pairs, "OpenSC's log lacks only the VERIFY");
    assert_eq!(opensc.counts().hidden, 1);
    // The ATR: pcsc-spy from SCardGetStatusChange, OpenSC from a driver's ATR match; pcscd logs
    // it only when it powers the card up, which this session did not need.
    assert_eq!(spy.atr.as_deref(), Some("3BFF1800FF8131FE55006B02091303010101434E531131808C"));
    assert_eq!(opensc.atr, spy.atr);
    assert_eq!(pcscd.atr, None);
    // Grouping: pcsc-spy and OpenSC both see one transaction per OpenSC lock.
    assert_eq!(spy.counts().transactions, opensc.counts().transactions);
    assert!(spy.counts().transactions > 20);
    // Connections: OpenSC's reader probe (connect, disconnect) then the session's.
    assert!(spy.counts().connections >= 2, "{:?}", spy.counts());
    // The secret: unknown at import, it is a numbered placeholder; named when given.
    assert_eq!(spy.secrets.len(), 1);
    assert_eq!(spy.secrets[0].placeholder, "{secret1:8:FF}");
    assert!(!spy.secrets[0].named);
    let named = trace::import_bytes(
        raw("cns-verify-pin.pcscd.log").as_bytes(),
        "pcscd",
        None,
        &Secrets::parse(&["pin=12345678".into()]).unwrap(),
    )
    .unwrap();
    assert!(named.to_json().contains("0020009008{pin:8:FF}"));
    for t in [&spy, &pcscd, &opensc, &named] {
        assert!(!t.to_json().contains("3132333435363738"), "the PIN survived an import");
    }
}

#[test]
fn imported_real_logs_replay_on_a_fresh_card_once_the_secret_is_given() {
    let (spy, pcscd, opensc) = three();
    for t in [&spy, &pcscd] {
        let r = replay_on(t, &mut fresh("cns-renewable.json", 11), &["secret1=12345678"]);
        assert_eq!((r.summary.differ, r.summary.not_sent), (0, 0), "{}", r.render(false));
    }
    // OpenSC's log hides the VERIFY: replayed without it, the one command is reported not sent.
    let r = replay_on(&opensc, &mut fresh("cns-renewable.json", 11), &[]);
    assert_eq!((r.summary.differ, r.summary.not_sent), (0, 1), "{}", r.render(false));
    assert!(r.render(false).contains("hidden in the log"));
    // Without the secret, a replay does not start.
    let e = replay::replay(&spy, &mut fresh("cns-renewable.json", 11), &Options::default()).unwrap_err();
    assert!(e.contains("secret1 {secret1:8:FF} (VERIFY at line"), "{e}");
}

/// Replaces the first line containing `needle` by `with` and returns its 1-based number.
fn damage(text: &str, needle: &str, from: &str, to: &str) -> (String, usize) {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let i = lines.iter().position(|l| l.contains(needle)).unwrap();
    lines[i] = lines[i].replacen(from, to, 1);
    (lines.join("\n"), i + 1)
}

#[test]
fn damaged_logs_are_refused_with_the_line_number() {
    let none = Secrets::default();
    for (file, format, needle, from, to) in [
        ("cns-verify-pin.pcsc-spy.log", Format::PcscSpy, "00 A4 04 00 07 62 76", "62 76", "6Z 76"),
        (
            "cns-verify-pin.pcsc-spy.log",
            Format::PcscSpy,
            "bSendLength 0x0000000C",
            "0x0000000C (12)",
            "0x0000000D (13)",
        ),
        ("cns-verify-pin.pcscd.log", Format::Pcscd, "APDU: 00 A4 04 00 07", "62 76", "62 7G6"),
        ("cns-verify-pin.opensc.log", Format::Opensc, "00 A4 04 00 07 62 76", "62 76", "62"),
    ] {
        let (text, line) = damage(&raw(file), needle, from, to);
        let e = trace::import_bytes(text.as_bytes(), file, Some(format), &none).unwrap_err();
        // The count check of a dump reports on the dump's last line.
        assert!(
            e.line.is_some_and(|l| (line..=line + 2).contains(&l)),
            "{file}: error at {:?}, damage at {line}: {e}",
            e.line
        );
    }
    let e = trace::import_bytes(b"hello\nworld\n", "x", None, &none).unwrap_err();
    assert!(e.to_string().contains("cannot tell the format"), "{e}");
    let e = trace::import_bytes(
        b"SCardEstablishContext\n i dwScope: x\n => ok (SCARD_S_SUCCESS [0x0])\n",
        "x",
        None,
        &none,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no APDU"), "{e}");
}

#[test]
fn inputs_larger_than_16_mib_are_refused_not_read() {
    let big = vec![b'A'; MAX_INPUT + 1];
    let e = trace::import_bytes(&big, "big", Some(Format::Pcscd), &Secrets::default()).unwrap_err();
    assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
    let tmp = tempfile::Builder::new().prefix("firmalab-trace-big-").tempdir().unwrap();
    let dir = tmp.path();
    let f = dir.join("big.log");
    std::fs::write(&f, &big).unwrap();
    let e = trace::import(&f, None, &Secrets::default()).unwrap_err();
    assert!(e.contains("larger than 16 MiB"), "{e}");
    let e = Trace::load(&f).unwrap_err();
    assert!(e.contains("larger than 16 MiB"), "{e}");
}

#[test]
fn a_trace_file_with_unknown_fields_or_bad_placeholders_is_refused() {
    let t = Trace::load(&corpus_dir().join("cns-pin-change.json")).unwrap();
    let json = t.to_json();
    assert!(Trace::from_json(&json.replacen("\"version\": 1,", "\"version\": 1, \"extra\": 1,", 1)).is_err());
    assert!(Trace::from_json(&json.replacen("{pin:8:FF}", "{pin:8}", 1)).is_err());
    assert!(Trace::from_json(&json.replacen("{pin:8:FF}", "{pin:0:FF}", 1)).is_err());
    assert!(Trace::from_json(&json.replacen("\"firmalab-trace\"", "\"firmalab-transcript\"", 1)).is_err());
    assert_eq!(Trace::from_json(&json).unwrap(), t, "round trip");
}

/// Counts what reaches the card.
struct Counting {
    inner: InProcess,
    sent: usize,
}

impl Transport for Counting {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.sent += 1;
        self.inner.transmit_raw(command)
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }
    fn name(&self) -> String {
        "reader:counting".into()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        self.inner.reset()
    }
}

fn physical(secrets: &[&str], allow_changes: bool, dry_run: bool) -> Options {
    Options {
        secrets: Secrets::parse(&secrets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap(),
        dry_run,
        physical: true,
        allow_changes,
        reader: None,
    }
}

#[test]
fn on_a_reader_changes_need_consent_and_secrets_must_be_given_before_anything_is_sent() {
    let t = Trace::load(&corpus_dir().join("cns-pin-change.json")).unwrap();
    let mut card = Counting { inner: fresh("cns-renewable.json", 11), sent: 0 };
    let e = replay::replay(&t, &mut card, &physical(&["pin=12345678", "new_pin=24682468"], false, false)).unwrap_err();
    assert!(e.contains("CHANGE REFERENCE DATA at line") && e.contains("--yes"), "{e}");
    let e = replay::replay(&t, &mut card, &physical(&["pin=12345678"], true, false)).unwrap_err();
    assert!(e.contains("new_pin {new_pin:8:FF}"), "{e}");
    assert_eq!(card.sent, 0, "nothing reached the card");
    let r = replay::replay(&t, &mut card, &physical(&["pin=12345678", "new_pin=24682468"], true, false)).unwrap();
    assert_eq!(r.summary.differ, 0, "{}", r.render(false));
    // The card now takes the new signature PIN (CNS1, VERIFY P2=9A).
    let verify = [&[0x00, 0x20, 0x00, 0x9A, 0x08][..], b"24682468"].concat();
    assert_eq!(card.inner.transmit_raw(&verify).unwrap(), [0x90, 0x00]);
}

#[test]
fn a_dry_run_sends_only_read_only_commands_stops_at_the_first_change_and_leaves_the_image_identical() {
    let tmp = tempfile::Builder::new().prefix("firmalab-trace-dry-").tempdir().unwrap();
    let dir = tmp.path();
    let img = dir.join("card.json");
    std::fs::copy(root().join("fixtures/cards/cns-renewable.json"), &img).unwrap();
    let before = std::fs::read(&img).unwrap();
    let t = Trace::load(&corpus_dir().join("cns-pin-change.json")).unwrap();
    let mut card = InProcess::open(&img, CardRng::insecure_deterministic(11)).unwrap();
    // No secrets needed for a dry run.
    let r = replay::replay(&t, &mut card, &physical(&[], false, true)).unwrap();
    assert!(r.dry_run);
    let stopped = r.stopped.clone().unwrap_or_default();
    assert!(stopped.contains("CHANGE REFERENCE DATA"), "{stopped}");
    let last = r.results.last().unwrap();
    assert!(matches!(last.verdict, Verdict::NotSent { .. }));
    assert_eq!(last.effect, Effect::Secret);
    assert!(r.results[..r.results.len() - 1].iter().all(|c| c.effect == Effect::ReadOnly));
    assert_eq!(r.summary.differ, 0, "{}", r.render(false));
    assert_eq!(r.summary.not_sent, 1);
    drop(card);
    assert_eq!(std::fs::read(&img).unwrap(), before, "image byte-identical");
}

#[test]
fn on_a_reader_a_refused_secret_stops_the_replay_after_one_try() {
    let t = Trace::load(&corpus_dir().join("cns-sign.json")).unwrap();
    let mut card = Counting { inner: fresh("cns-renewable.json", 11), sent: 0 };
    let r = replay::replay(&t, &mut card, &physical(&["pin=99999999"], true, false)).unwrap();
    assert!(r.stopped.as_deref().unwrap_or_default().contains("refused the secret"), "{}", r.render(false));
    let last = r.results.last().unwrap();
    assert_eq!(last.name, "VERIFY");
    assert!(matches!(&last.verdict, Verdict::Differs { how } if how[0].contains("63C2 now")));
    // The tries query of the signature PIN: exactly one try spent.
    assert_eq!(card.inner.transmit_raw(&[0x00, 0x20, 0x00, 0x9A]).unwrap(), [0x63, 0xC2]);
    // In-process (not a reader) the replay goes on and reports every divergence.
    let r = replay_on(&t, &mut fresh("cns-renewable.json", 11), &["pin=99999999"]);
    assert!(r.stopped.is_none() && r.summary.differ >= 2, "{}", r.render(false));
}

#[test]
fn on_a_reader_a_secret_the_recording_saw_refused_is_not_sent() {
    let log = "00000001 APDU: 00 A4 00 0C 02 3F 00\n00000002 SW: 90 00\n00000003 APDU: 00 20 00 90 08 31 31 31 31 31 31 31 31\n00000004 SW: 63 C2\n";
    let t = trace::import_bytes(log.as_bytes(), "wrong.log", None, &Secrets::default()).unwrap();
    assert_eq!(t.exchanges().nth(1).unwrap().command, "0020009008{secret1:8:FF}");
    let mut card = Counting { inner: fresh("cns-renewable.json", 11), sent: 0 };
    let r = replay::replay(&t, &mut card, &physical(&["secret1=11111111"], true, false)).unwrap();
    assert_eq!(card.sent, 1, "only the SELECT");
    assert!(r.stopped.unwrap_or_default().contains("would spend a try"));
}

#[test]
fn a_session_over_two_readers_needs_the_reader_chosen() {
    let log = "1 winscard_svc.c:361:ContextThread() Received command: CONNECT from client 1
1 winscard.c:258:SCardConnect() Attempting Connect to Reader A using protocol: 3
1 winscard_svc.c:523:ContextThread() CONNECT for client 1, rv=SCARD_S_SUCCESS
1 winscard_svc.c:361:ContextThread() Received command: CONNECT from client 2
1 winscard.c:258:SCardConnect() Attempting Connect to Reader B using protocol: 3
1 winscard_svc.c:523:ContextThread() CONNECT for client 2, rv=SCARD_S_SUCCESS
1 winscard_svc.c:361:ContextThread() Received command: TRANSMIT from client 1
00000001 APDU: 00 A4 00 0C 02 3F 00
00000002 SW: 90 00
1 winscard_svc.c:361:ContextThread() Received command: TRANSMIT from client 2
00000001 APDU: 00 A4 00 0C 02 3F 01
00000002 SW: 6A 82
";
    let t = trace::import_bytes(log.as_bytes(), "two.log", None, &Secrets::default()).unwrap();
    assert_eq!(t.readers(), vec![Some("Reader A".to_string()), Some("Reader B".to_string())]);
    let e = replay::replay(&t, &mut fresh("cns-renewable.json", 11), &Options::default()).unwrap_err();
    assert!(e.contains("several readers (Reader A, Reader B)"), "{e}");
    let opts = Options { reader: Some("B".into()), ..Options::default() };
    let r = replay::replay(&t, &mut fresh("cns-renewable.json", 11), &opts).unwrap();
    assert_eq!(r.summary.commands, 1);
    assert_eq!(r.results[0].command, "00A4000C023F01");
}

#[test]
fn resets_of_the_session_are_replayed_before_the_next_command() {
    // VERIFY, the client resets the card, then a tries query: 63C3 again only after a reset.
    let log = "00000001 APDU: 00 20 00 90 08 31 32 33 34 35 36 37 38\n00000002 SW: 90 00\n\
               00000003 winscard.c:607:SCardReconnect() Reset complete.\n\
               00000004 APDU: 00 20 00 90\n00000005 SW: 63 C3\n";
    let t = trace::import_bytes(log.as_bytes(), "reset.log", None, &Secrets::default()).unwrap();
    let r = replay_on(&t, &mut fresh("cns-renewable.json", 11), &["secret1=12345678"]);
    assert_eq!((r.summary.equal, r.summary.resets), (2, 1), "{}", r.render(true));
    let without: String = log.lines().filter(|l| !l.contains("Reset complete")).map(|l| format!("{l}\n")).collect();
    let t = trace::import_bytes(without.as_bytes(), "noreset.log", None, &Secrets::default()).unwrap();
    let r = replay_on(&t, &mut fresh("cns-renewable.json", 11), &["secret1=12345678"]);
    assert_eq!(r.summary.differ, 1, "without the reset the PIN stays verified: {}", r.render(false));
}

#[test]
fn a_log_cut_mid_command_keeps_the_command_without_an_answer() {
    let text = raw("cns-verify-pin.pcsc-spy.log");
    // Cut inside the third SCardTransmit, before its answer.
    let lines: Vec<&str> = text.lines().collect();
    let third = lines.iter().enumerate().filter(|(_, l)| **l == "SCardTransmit").nth(2).unwrap().0;
    let end = third + lines[third..].iter().position(|l| l.contains("o bRecvLength")).unwrap();
    let cut: String = lines[..end].iter().map(|l| format!("{l}\n")).collect();
    let t = trace::import_bytes(cut.as_bytes(), "cut", None, &Secrets::default()).unwrap();
    let last = t.exchanges().last().unwrap();
    assert_eq!(t.exchanges().count(), 3);
    assert!(last.response.is_none() && last.error.as_deref() == Some("no answer: the log ends"), "{last:?}");
    let r = replay_on(&t, &mut fresh("cns-renewable.json", 11), &[]);
    assert!(matches!(r.results.last().unwrap().verdict, Verdict::NotComparable { .. }));
}

#[test]
fn hidden_items_sit_where_opensc_left_them_out() {
    let (_, _, opensc) = three();
    let mut seen = 0;
    for e in &opensc.events {
        if let trace::Event::Transaction { items, .. } = e {
            for i in items {
                if let Item::Hidden(h) = i {
                    assert!(h.what.contains("debug level below 8") && h.what.contains("0 (Success)"), "{}", h.what);
                    seen += 1;
                }
            }
        }
    }
    assert_eq!(seen, 1);
}

/// Variations of a real log: lines dropped, repeated, cut or changed by one character.
fn damaged(text: &str, ops: &[(u16, u16, u8)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (a, b, c) in ops {
        if lines.is_empty() {
            break;
        }
        let i = usize::from(*a) % lines.len();
        match c % 5 {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let n = usize::from(*b) % (lines[i].len() + 1);
                let cut: String = lines[i].chars().take(n).collect();
                lines[i] = cut;
            }
            3 => {
                let mut bytes = lines[i].clone().into_bytes();
                if !bytes.is_empty() {
                    let j = usize::from(*b) % bytes.len();
                    bytes[j] = b"0 Fx(:;)|=>{}"[usize::from(*c) % 13];
                }
                lines[i] = String::from_utf8_lossy(&bytes).into_owned();
            }
            _ => {
                let j = usize::from(*b) % lines.len();
                lines.swap(i, j);
            }
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096), f in 0u8..4) {
        let format = [None, Some(Format::PcscSpy), Some(Format::Pcscd), Some(Format::Opensc)][usize::from(f)];
        let _ = trace::import_bytes(&bytes, "fuzz", format, &Secrets::default());
        let _ = Trace::from_json(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parsers_never_panic_on_damaged_real_logs(
        ops in proptest::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 1..12),
        which in 0usize..3,
    ) {
        let file = ["cns-verify-pin.pcsc-spy.log", "cns-verify-pin.pcscd.log", "cns-verify-pin.opensc.log"][which];
        let text = damaged(&raw(file), &ops);
        if let Ok(t) = trace::import_bytes(text.as_bytes(), file, None, &Secrets::default()) {
            // Whatever imports is a valid trace that replays without panicking.
            let again = Trace::from_json(&t.to_json());
            prop_assert!(again.is_ok(), "{:?}", again.err());
            let secrets = Secrets::parse(&["secret1=12345678".into()]).unwrap();
            let _ = replay::replay(&t, &mut fresh("cns-renewable.json", 11), &Options { secrets, ..Options::default() });
        }
    }

    #[test]
    fn placeholders_parse_or_are_refused_without_panic(s in "[0-9A-F{}:a-z_]{0,64}") {
        if let Ok(t) = Template::parse(&s) {
            prop_assert_eq!(Template::parse(&t.to_string()).ok(), Some(t));
        }
    }
}
