//! Every flow's APDU transcript on each profile, in deterministic mode, against an insta
//! snapshot: an unintended change to what the harness sends or the card answers shows up
//! here. Also: transcripts never hold a PIN, and replay finds the first divergence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::flows::FlowReport;
use firmalab_harness::fuzz_corpus::deterministic_flow;
use firmalab_harness::transcript::replay;
use firmalab_harness::transport::in_process::InProcess;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn card(name: &str) -> CardImage {
    CardImage::load(&root().join("fixtures/cards").join(name)).unwrap()
}

fn transport(image: CardImage) -> Box<InProcess> {
    Box::new(InProcess::ephemeral(image, CardRng::insecure_deterministic(42), "snapshot"))
}

fn flow(name: &str, image: CardImage) -> FlowReport {
    deterministic_flow(name, image).unwrap()
}

#[test]
fn flow_transcripts_match_their_snapshots_and_hold_no_secret() {
    // (flow, profile, fixture, exit code): the Incrypto34 is an obsolete lot, so its
    // diagnostic runs every check and refuses (1).
    let cases = [
        ("diagnostic", "cns", "cns-renewable.json", 0),
        ("diagnostic", "oberthur", "oberthur-renewable.json", 0),
        ("diagnostic", "incrypto34", "incrypto34-issued.json", 1),
        ("pin-change", "cns", "cns-renewable.json", 0),
        ("pin-change", "oberthur", "oberthur-renewable.json", 0),
        ("pin-change", "incrypto34", "incrypto34-issued.json", 0),
        ("pin-unblock", "cns", "cns-pin-blocked.json", 0),
        ("pin-unblock", "oberthur", "oberthur-blocked", 0),
        ("pin-unblock", "incrypto34", "incrypto34-blocked", 0),
        ("puk-change", "cns", "cns-renewable.json", 0),
        ("puk-change", "oberthur", "oberthur-renewable.json", 0),
        ("puk-change", "incrypto34", "incrypto34-issued.json", 0),
        ("reset", "cns", "cns-renewable.json", 0),
        ("reset", "oberthur", "oberthur-renewable.json", 0),
        ("renewal", "cns", "cns-renewable.json", 0),
        ("renewal", "oberthur", "oberthur-renewable.json", 0),
    ];
    for (name, profile, fixture, exit) in cases {
        let image = match fixture {
            "oberthur-blocked" => {
                let mut img = card("oberthur-renewable.json");
                img.pins[1].tries_left = 0;
                img
            }
            "incrypto34-blocked" => {
                let mut img = card("incrypto34-issued.json");
                img.pins[1].tries_left = 0;
                img
            }
            _ => card(fixture),
        };
        let report = flow(name, image);
        assert_eq!(report.outcome.exit_code(), exit, "{name} on {profile}: {:?}", report.outcome);
        let text = report.transcript.render();
        for secret in ["12345678", "87654321", "24682468", "13571357", "11112222"] {
            let hexed: String = secret.bytes().map(|b| format!("{b:02X}")).collect();
            assert!(!text.contains(&hexed), "{name}/{profile}: secret {secret} in clear");
            let json = serde_json::to_string(&report.transcript).unwrap();
            assert!(!json.contains(&hexed), "{name}/{profile}: secret {secret} in the transcript file");
        }
        insta::assert_snapshot!(format!("{name}-{profile}"), text);
    }
}

#[test]
fn replaying_a_transcript_on_the_same_card_matches_and_on_another_card_reports_the_divergence() {
    let report = flow("diagnostic", CardImage::load(&root().join("fixtures/cards/cns-renewable.json")).unwrap());
    let secrets = vec![("pin".to_owned(), "12345678".to_owned())];
    let mut same = transport(CardImage::load(&root().join("fixtures/cards/cns-renewable.json")).unwrap());
    let n = replay(&report.transcript, same.as_mut(), &secrets).unwrap().unwrap();
    assert!(n > 20, "{n} exchanges");
    // The replayed wrong-free VERIFY really reached the card with the right PIN.
    assert_eq!(same.card().image().pins[0].tries_left, 3);
    let mut other = transport(CardImage::load(&root().join("fixtures/cards/cns-expired.json")).unwrap());
    let d = replay(&report.transcript, other.as_mut(), &secrets).unwrap().unwrap_err();
    assert_eq!(d.step, "Diagnostic");
    assert_eq!(d.expected, "363031303030303030303030303130319000", "the serial differs: {d:?}");
    assert_eq!(d.got, "363031303030303030303030303130359000");
    // Without the PIN the transcript cannot be replayed, and says why.
    let e = replay(&report.transcript, same.as_mut(), &[]).unwrap_err().to_string();
    assert!(e.contains("\"pin\""), "{e}");
}

#[test]
fn the_aruba_key_order_and_import_transcripts_match_their_snapshots_and_hold_no_secret() {
    use firmalab_harness::ca::ExpiryRule;
    use firmalab_harness::client_auth::Challenge;
    use firmalab_harness::fixtures::REFERENCE_DATE;
    use firmalab_harness::flows::diagnostic::Policy;
    use firmalab_harness::flows::import::{self, ImportOptions};
    use firmalab_harness::flows::order::{self, OrderOptions};

    let mut bench = common::Bench::new("aruba-key.json");
    let mut bo = common::enrolled(&bench, "chiara@example.it", "+393330000009");
    let ca = common::ca();
    let out = common::scratch("snapshot-order");
    let o = OrderOptions {
        pin: "12345678".into(),
        accept_contracts: true,
        expiry: ExpiryRule::FromIssuance,
        out_dir: out.path().join("out"),
        policy: Policy::default(),
        challenge: Challenge::insecure_from_seed(1),
    };
    let order = common::run(&mut bench, "order", REFERENCE_DATE, |r| order::run(r, &ca, &mut bo, &o));
    let i = ImportOptions { serial: Some("6010000000000106".into()), pin: "12345678".into() };
    let import = common::run(&mut bench, "import", REFERENCE_DATE.add_days(1), |r| import::run(r, &mut bo, &i));
    for (name, report) in [("order-aruba-key", order), ("import-aruba-key", import)] {
        assert_eq!(report.outcome.exit_code(), 0, "{name}: {:?}", report.outcome);
        let text = report.transcript.render();
        let json = serde_json::to_string(&report.transcript).unwrap();
        for secret in ["12345678", "87654321"] {
            let hexed: String = secret.bytes().map(|b| format!("{b:02X}")).collect();
            assert!(!text.contains(&hexed) && !json.contains(&hexed), "{name}: {secret} in clear");
        }
        insta::assert_snapshot!(name, text);
    }
}
