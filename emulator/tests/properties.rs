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

/// A step of a card session.
#[derive(Clone, Debug)]
enum Step {
    Apdu(Vec<u8>),
    PowerCycle,
    Reset,
}

/// Realistic commands for a profile, some with the right secrets, so sequences get past the
/// PIN checks; and fully random bytes.
fn step(profile: ProfileKind) -> impl Strategy<Value = Step> {
    if profile == ProfileKind::Incrypto34 {
        return mix(incrypto34_templates());
    }
    let templates: Vec<&'static str> = if profile == ProfileKind::Cns {
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
            "0020009008313233343536373 8",
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
            "002A9E9A0401020304",
            "102A9E9A02AABB",
            "00CA018300",
            "0084000008",
            "00C0000000",
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
            "80CA9F7F2D",
            "VERIFY81:12345678",
            "VERIFY81:9999",
            "VERIFY84:87654321",
            "VERIFY84:1111",
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
            Some(rest) => h(&format!("002000{}40{}", &rest[..2], padded(&rest[3..], 64, 0xFF))),
            None => h(&t.replace(' ', "")),
        })
        .collect();
    mix(templates)
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

fn mix(templates: Vec<Vec<u8>>) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::sample::select(templates).prop_map(Step::Apdu),
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
        .map(|s| match s {
            Step::Apdu(c) => Op::Apdu(c),
            Step::PowerCycle => Op::PowerCycle,
            Step::Reset => Op::Reset,
        })
        .collect();
    Checked::new(image(name), 5).run(&ops).map_err(TestCaseError::fail)
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
