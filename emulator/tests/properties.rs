//! Properties that must hold for any input: the parser never panics and round-trips, the card
//! never panics, PIN/PUK counters never go up without the right secret, no response carries
//! private-key bytes, the image stays valid and survives a save/load round trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::apdu::Apdu;
use firmalab_emulator::invariants::{Checked, Op};
use firmalab_emulator::{ProfileKind, hex};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_and_accepted_bytes_reencode_identically(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(apdu) = Apdu::parse(&bytes) {
            let mut back = Vec::new();
            apdu.encode(&mut back);
            prop_assert_eq!(back, bytes);
        }
    }

    #[test]
    fn well_formed_apdus_parse_to_what_was_encoded(
        cla in 0u8..0xFE, ins: u8, p1: u8, p2: u8,
        data in proptest::collection::vec(any::<u8>(), 0..600),
        le in proptest::option::of(1usize..=65536),
        extended: bool,
    ) {
        let extended = extended || data.len() > 255 || le.is_some_and(|l| l > 256);
        let le = le.map(|l| if extended { l } else { l.min(256) });
        let apdu = Apdu { cla, ins, p1, p2, data: &data, le, extended: extended && !(data.is_empty() && le.is_none()) };
        let mut bytes = Vec::new();
        apdu.encode(&mut bytes);
        prop_assert_eq!(Apdu::parse(&bytes), Ok(apdu));
    }
}

/// A step of a card session: one APDU, a sequence of APDUs (a whole operation a middleware
/// sends, so a session reaches the success paths), or a power event.
#[derive(Clone, Debug)]
enum Step {
    Apdu(Vec<u8>),
    Apdus(Vec<Vec<u8>>),
    PowerCycle,
    Reset,
}

fn pin64(p: &str) -> String {
    padded(p, 64, 0xFF)
}

/// The 16-byte unblock code of the Oberthur PUK file for a PUK.
fn puk_code(puk: &str) -> String {
    let mut v = puk.as_bytes().to_vec();
    v.resize(16, 0);
    firmalab_emulator::hex::encode(&v)
}

fn hexs(b: &[u8]) -> String {
    firmalab_emulator::hex::encode(b)
}

/// Whole operations that succeed on a fresh renewable card of the profile: signatures and
/// deciphering through MSE + PSO with each key, key generation, PIN management. Each is a
/// list of APDUs; [`operations_reach_success`] checks that their last answer is a success.
fn operations(profile_cns: bool) -> Vec<(&'static str, Vec<String>)> {
    let (digest, di) = sha256_digest_info(b"firmalab property");
    let block = hexs(&pkcs1_block(&digest, 256));
    if profile_cns {
        let pin = "0020009008".to_owned() + &padded("12345678", 8, 0xFF);
        let pin1 = "0020009A08".to_owned() + &padded("12345678", 8, 0xFF);
        vec![
            (
                "sign with CNS1 (chained PSO CDS)",
                vec![
                    "00A4080C0414008110".into(),
                    pin1.clone(),
                    "0022F30300".into(),
                    "0022F1B603830110".into(),
                    format!("102A9E9AFF{}", &block[..510]),
                    format!("002A9E9A01{}00", &block[510..]),
                ],
            ),
            (
                "sign with CNS0 through PSO DECIPHER (extended)",
                vec![
                    "00A4000C023F00".into(),
                    pin.clone(),
                    "0022F1B803830101".into(),
                    format!("002A808600010100{block}0000"),
                ],
            ),
            (
                "decipher with CNS0 (chained)",
                vec![
                    "00A4000C023F00".into(),
                    pin.clone(),
                    "0022F1B803830101".into(),
                    format!("102A8086FF00{}", &block[..508]),
                    format!("002A808602{}00", &block[508..]),
                ],
            ),
            (
                "renewal: pending CNS1 key, sign with it, commit with a certificate",
                vec![
                    "00A4080C0414008110".into(),
                    pin1.clone(),
                    "00468010020800".into(),
                    "00C000000E".into(),
                    "0022F1B603840110".into(),
                    format!("002A9E9A000100{block}0000"),
                    pin1.clone(),
                    format!("00468110C8{}", "30".repeat(200)),
                ],
            ),
            (
                "generate a pending CNS0 key",
                vec!["00A4000C023F00".into(), pin.clone(), "0046800102080000".into(), "00C000000E".into()],
            ),
            (
                "change the CNS1 PIN and back",
                vec![
                    "00A4080C0414008110".into(),
                    format!("0024009A10{}{}", padded("12345678", 8, 0xFF), padded("24682468", 8, 0xFF)),
                    format!("0024009A10{}{}", padded("24682468", 8, 0xFF), padded("12345678", 8, 0xFF)),
                ],
            ),
            (
                "unblock CNS0 with its PUK",
                vec![format!("002C009010{}{}", padded("87654321", 8, 0xFF), padded("12345678", 8, 0xFF))],
            ),
            ("read the free memory", vec!["00A4080C0412001202".into(), "00B0000004".into()]),
        ]
    } else {
        let connect =
            ["00A4040C10A000000077010303000000F100000002".to_owned(), "00A40000023F00".into(), "00A40000025011".into()];
        let verify = format!("0020008140{}", pin64("12345678"));
        let image = image("oberthur-renewable.json");
        let mut rng = firmalab_emulator::CardRng::insecure_deterministic(11);
        let cryptogram = public_key(&image, 0x01).encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"segreto").unwrap();
        let with = |extra: &[String]| connect.iter().cloned().chain(extra.iter().cloned()).collect::<Vec<String>>();
        vec![
            (
                "sign with key 02 (the card pads a DigestInfo)",
                with(&[
                    verify.clone(),
                    "00A40000029002".into(),
                    "00A40000023002".into(),
                    "002241B603800111".into(),
                    format!("002A9E9A33{}", hexs(&di)),
                ]),
            ),
            (
                "decipher with key 01 (the 8 + 248 chained split)",
                with(&[
                    verify.clone(),
                    "00A40000029002".into(),
                    "00A40000023001".into(),
                    "002241B803800111".into(),
                    format!("102A808608{}", hexs(&cryptogram[..8])),
                    format!("002A8086F8{}", hexs(&cryptogram[8..])),
                ]),
            ),
            (
                "generate a key pair into new key files, read its exponent",
                with(&[
                    verify.clone(),
                    "00A40000029002".into(),
                    "00E0000018621682021400830230038502080086082121FF21FF21FFFF".into(),
                    "00A4030000".into(),
                    "00A40000029001".into(),
                    "00E000001862168202120083021003850208008608210000FF00FF00FF".into(),
                    "00460000041003300300".into(),
                    "80B4020000".into(),
                ]),
            ),
            (
                "unblock the user PIN through the PUK file",
                with(&[
                    format!("0020008440{}", pin64("87654321")),
                    "00A40000022000".into(),
                    "00B0000010".into(),
                    "00A4030000".into(),
                    format!("002C000150{}{}", puk_code("87654321"), pin64("12345678")),
                ]),
            ),
            ("change the PUK", with(&[format!("0024008480{}{}", pin64("87654321"), pin64("11112222"))])),
            (
                "the SO redefines the user PIN",
                with(&[format!("0020000440{}", pin64("11223344")), format!("00240101420340{}", pin64("12345678"))]),
            ),
            ("list the private objects", with(&[verify.clone(), "00A40000029002".into(), "8034000040".into()])),
        ]
    }
}

/// Reads of Oberthur key files that must be refused: `6981` (a key file is no binary file)
/// or `6982`, with or without the PIN.
fn key_file_reads() -> Vec<Vec<String>> {
    let mut out = vec![];
    for verified in [false, true] {
        for key in ["3001", "3002", "1001", "1002"] {
            let df = if key.starts_with('3') { "9002" } else { "9001" };
            let mut ops = vec!["00A40000023F00".to_owned(), "00A40000025011".into()];
            if verified {
                ops.push(format!("0020008140{}", pin64("12345678")));
            }
            ops.extend([format!("00A4000002{df}"), format!("00A4000002{key}")]);
            // Every part of the file: a private key's DER has d, p, q … past its modulus.
            for offset in ["0000", "0100", "0200", "0300", "0400"] {
                let mut read = ops.clone();
                read.push(format!("00B0{offset}00"));
                out.push(read);
            }
        }
    }
    out
}

/// Realistic commands for a profile, some with the right secrets, so sequences get past the
/// PIN checks; whole operations that reach success (CNS, Oberthur); and fully random bytes.
fn step(profile: ProfileKind) -> impl Strategy<Value = Step> {
    if profile == ProfileKind::Incrypto34 {
        // Its templates are whole commands with their secrets; sequences of them come from
        // the steps themselves.
        let templates = incrypto34_templates();
        let compound = templates.iter().map(|t| vec![t.clone()]).collect();
        return mix(templates, compound);
    }
    let profile_cns = profile == ProfileKind::Cns;
    let templates: Vec<&'static str> = if profile_cns {
        vec![
            "00A4000C023F00",
            "00A4080C0414008110",
            "00A4080C0411001101",
            "00A40800041400901000",
            "00A4080C021400",
            "00A4080C0412001202",
            "00B0000004",
            "00B00000FF",
            "00B0001000",
            "00200090083132333435363738",
            "0020009008FFFFFFFFFFFFFFFF",
            "00200090",
            "0020009A083132333435363738",
            "0020009A083939393939393939",
            "0020009A",
            "0024009A1031323334353637383837363534333231",
            "0024009A103939393939393939FFFFFFFFFFFFFFFF",
            "002C009010383736353433323131323334353637FF",
            "002C009A1039393939393939393132333435FFFFFF",
            "0022F30300",
            "0022F1B603830110",
            "0022F1B803830101",
            "0022F1B603830101",
            "0022F1B603840110",
            "002A9E9A0401020304",
            "102A9E9A02AABB",
            "00CA018300",
            "0084000008",
            "00C0000000",
            "0046001002080000",
            "0046801002080000",
            "00E000001862168002000582010183029011860900000000000000000000",
            "00E40000029011",
            "00D60000020102",
            "B0F50000",
        ]
    } else {
        vec![
            "00A4040C10A000000077010303000000F100000002",
            "00A40000023F00",
            "00A40000025011",
            "00A40000029002",
            "00A40000023002",
            "00A40000023001",
            "00A40000022000",
            "00A4030000",
            "00B0000010",
            "0020008100",
            "0020000400",
            "0020008400",
            "80CA9F7F2D",
            "VERIFY81:12345678",
            "VERIFY81:9999",
            "VERIFY84:87654321",
            "VERIFY84:1111",
            "VERIFY04:11223344",
            "002241B603800111",
            "002241B803800111",
            "802E002100",
            "8034000040",
            "00B201048D",
            "00E40200022001",
            "00DC010403AABBCC",
        ]
    };
    let templates: Vec<Vec<u8>> = templates
        .into_iter()
        .map(|t| match t.strip_prefix("VERIFY") {
            // Oberthur VERIFY with a 64-byte FF-padded value: "VERIFY<ref>:<value>".
            Some(rest) => h(&format!("002000{}40{}", &rest[..2], pin64(&rest[3..]))),
            None => h(t),
        })
        .collect();
    let mut compound: Vec<Vec<Vec<u8>>> =
        operations(profile_cns).into_iter().map(|(_, ops)| ops.iter().map(|c| h(c)).collect()).collect();
    if !profile_cns {
        compound.extend(key_file_reads().into_iter().map(|ops| ops.iter().map(|c| h(c)).collect()));
    }
    mix(templates, compound)
}

/// The Incrypto34's commands as OpenSC sends them (spec/cards.md §4.4): PINs padded with 00,
/// BS objects, the key generation into 7EAD, SCAN DF, ERASE with the SO PIN.
fn incrypto34_templates() -> Vec<Vec<u8>> {
    let pin = |p2: &str, v: &str| h(&format!("002000{p2}08{}", padded(v, 8, 0x00)));
    let (_, di) = sha256_digest_info(b"x");
    let component = |n: u8, key: &str, alg: &str| {
        let body = format!(
            "83022{n}{key}850822008{alg}0FFFFF0000860A0303FFFFFFFF00FFFFFF8B10{}8F828100{}",
            "FF".repeat(16),
            "FF".repeat(128)
        );
        h(&format!("00DA016E{:02X}{body}", body.len() / 2))
    };
    let mut v: Vec<Vec<u8>> = [
        "00A4000C023F00",
        "00A4080C025015",
        "00A40800045015503200",
        "00A4080C0450157EAD",
        "00B0000010",
        "00B2010400",
        "00B2020400",
        "00200083",
        "0022F301",
        "0022F1B603830110",
        "0022F1B803830112",
        "00DA016D0F830101860200008F06000000000000",
        "00DA016E2483020005850802038703FF000004860A000506FFFFFFFFFFFFFF8F083131313100000000",
        "00DA016E24830200068508020A870AFF000004860A0006FFFFFFFFFFFFFFFF8F083232323232323232",
        "00E000001F6F1D81020200820305FF0083027EAD85030100008609000000000000000000",
        "004600120820127EAD00100020",
        "004600100820107EAD00100020",
        "00E40000027EAD",
        "B0FC000003",
        "B0FC000103",
        "B0F50000",
        "00CA018300",
        "00E000001D621B8002001E820301FFFF83022F018501018609000000000000000000",
    ]
    .iter()
    .map(|t| h(t))
    .collect();
    v.extend([
        pin("83", "12345678"),
        pin("83", "99999999"),
        pin("81", "11223344"),
        pin("03", "12345678"),
        h(&format!("0024008310{}{}", padded("12345678", 8, 0), padded("24682468", 8, 0))),
        h(&format!("002C008310{}{}", padded("87654321", 8, 0), padded("13571357", 8, 0))),
        h(&format!("002A9E9A33{}80", hex::encode(&di))),
        component(0, "12", "C"),
        component(1, "12", "C"),
        h(&format!("9024209280{}", "FF".repeat(128))),
        h(&format!("9024219080{}", "FF".repeat(128))),
    ]);
    v
}

fn mix(templates: Vec<Vec<u8>>, compound: Vec<Vec<Vec<u8>>>) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::sample::select(templates).prop_map(Step::Apdu),
        3 => proptest::sample::select(compound).prop_map(Step::Apdus),
        3 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Step::Apdu),
        2 => (proptest::sample::select(vec![0x00u8, 0x10, 0x80, 0x90, 0xB0]), any::<u8>(), any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(c, i, p1, p2, d)| {
                let mut v = vec![c, i, p1, p2];
                if !d.is_empty() { v.push(d.len() as u8); v.extend(d); }
                Step::Apdu(v)
            }),
        1 => Just(Step::PowerCycle),
        1 => Just(Step::Reset),
    ]
}

fn run_session(name: &str, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let ops: Vec<Op> = steps
        .into_iter()
        .flat_map(|s| match s {
            Step::Apdu(c) => vec![Op::Apdu(c)],
            Step::Apdus(cs) => cs.into_iter().map(Op::Apdu).collect(),
            Step::PowerCycle => vec![Op::PowerCycle],
            Step::Reset => vec![Op::Reset],
        })
        .collect();
    Checked::new(image(name), 5).run(&ops).map_err(TestCaseError::fail)
}

#[test]
fn operations_reach_success_on_a_fresh_card_and_keep_every_invariant() {
    for (cns, fixture) in [(true, "cns-renewable.json"), (false, "oberthur-renewable.json")] {
        for (name, ops) in operations(cns) {
            let mut checked = Checked::new(image(fixture), 5);
            let mut last = vec![];
            for c in &ops {
                last = checked.exchange(&h(c)).unwrap_or_else(|v| panic!("{fixture}: {name}: {v}"));
            }
            let sw = &last[last.len() - 2..];
            assert!(sw == [0x90, 0x00] || sw[0] == 0x61, "{fixture}: {name}: ended in {sw:02X?}");
            assert!(
                last.len() > 2 || name.contains("PIN") || name.contains("PUK") || name.contains("commit"),
                "{name}: no data"
            );
        }
    }
}

#[test]
fn key_files_are_never_read_whatever_the_session() {
    for ops in key_file_reads() {
        let mut checked = Checked::new(image("oberthur-renewable.json"), 5);
        let mut last = vec![];
        for c in &ops {
            last = checked.exchange(&h(c)).unwrap_or_else(|v| panic!("{ops:?}: {v}"));
        }
        assert!(last == h("6981") || last == h("6982"), "{ops:?}: {}", firmalab_emulator::hex::encode(&last));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn cns_sessions_keep_every_invariant(steps in proptest::collection::vec(step(ProfileKind::Cns), 1..48)) {
        run_session("cns-renewable.json", steps)?;
    }

    #[test]
    fn cns_blocked_card_sessions_keep_every_invariant(steps in proptest::collection::vec(step(ProfileKind::Cns), 1..32)) {
        run_session("cns-pin-blocked.json", steps)?;
    }

    #[test]
    fn oberthur_sessions_keep_every_invariant(steps in proptest::collection::vec(step(ProfileKind::Oberthur), 1..48)) {
        run_session("oberthur-renewable.json", steps)?;
    }

    #[test]
    fn incrypto34_sessions_keep_every_invariant(steps in proptest::collection::vec(step(ProfileKind::Incrypto34), 1..48)) {
        run_session("incrypto34-issued.json", steps)?;
    }

    #[test]
    fn incrypto34_blank_card_sessions_keep_every_invariant(steps in proptest::collection::vec(step(ProfileKind::Incrypto34), 1..32)) {
        run_session("incrypto34-blank.json", steps)?;
    }
}
