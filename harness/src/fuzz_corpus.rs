//! Seed corpora for the fuzz targets, from the real flows: every flow runs in deterministic
//! mode on the fixture cards, and its transcript (placeholders filled with the fixtures'
//! secrets) becomes a framed step sequence for the card targets, so the fuzzer starts past the
//! PIN checks. The commands seed the parser target; fixture images, transcripts and scenario
//! files seed the loaders.

use crate::Error;
use crate::backoffice::Store;
use crate::ca::ExpiryRule;
use crate::client;
use crate::fixtures::{BUILTIN, REFERENCE_DATE, builtin, builtin_ca};
use crate::flows::diagnostic::{self, Policy};
use crate::flows::renewal::{self, RenewalOptions};
use crate::flows::{Event, FlowReport, Runner, pin, reset};
use crate::transcript::fill;
use crate::transport::in_process::InProcess;
use firmalab_emulator::invariants::{Op, encode};
use firmalab_emulator::{CardImage, CardRng};
use std::path::Path;

/// The secrets the flows below use.
pub const SECRETS: [(&str, &str); 5] = [
    ("pin", "12345678"),
    ("puk", "87654321"),
    ("new_pin", "24682468"),
    ("new_puk", "11112222"),
    ("default_pin", "12345"),
];

/// The new PIN the unblock flow sets (the other flows' new PIN is 24682468).
pub const UNBLOCK_NEW_PIN: &str = "13571357";

/// The flows, with what they need, for snapshots and corpora.
pub const FLOWS: [&str; 6] = ["diagnostic", "pin-change", "pin-unblock", "puk-change", "reset", "renewal"];

fn transport(image: CardImage, rng: CardRng) -> Box<InProcess> {
    Box::new(InProcess::ephemeral(image, rng, "fixture"))
}

/// Runs a flow in deterministic mode on an in-process copy of `image`, with the fixtures'
/// secrets, at the reference date, after enrolling the card in a fresh back office.
pub fn deterministic_flow(name: &str, image: CardImage) -> Result<FlowReport, Error> {
    fixture_flow(name, image, || CardRng::insecure_deterministic(42))
}

/// [`deterministic_flow`] with the card RNG of your choice (the OS RNG generates real keys).
pub fn fixture_flow(name: &str, image: CardImage, rng: impl Fn() -> CardRng) -> Result<FlowReport, Error> {
    let mut sink = |_: Event<'_>| {};
    let ca = builtin_ca()?;
    let mut bo = Store::in_memory();
    let mut c = client::open(transport(image.clone(), rng()))?;
    let _ = renewal::enroll(c.as_mut(), &mut bo, "CDRL-ROMA-01", "h@example.it", "+390000000000", REFERENCE_DATE);
    let r = Runner::open(transport(image, rng()), name, REFERENCE_DATE, &mut sink)?;
    Ok(match name {
        "diagnostic" => diagnostic::run(r, &bo.data, &Policy::default(), Some("12345678")),
        "pin-change" => pin::change(r, "12345678", "24682468", "24682468"),
        "pin-unblock" => pin::unblock(r, "87654321", UNBLOCK_NEW_PIN, UNBLOCK_NEW_PIN),
        "puk-change" => pin::change_puk(r, "87654321", "11112222", "11112222"),
        "reset" => reset::reset(r, "12345678", &mut bo),
        "renewal" => {
            // The renewal's output files go to a folder of this call's own, removed after it.
            static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let out_dir = std::env::temp_dir().join(format!("firmalab-deterministic-{}-{n}", std::process::id()));
            let report = renewal::run(
                r,
                &ca,
                &mut bo,
                &RenewalOptions {
                    pin: "12345678".into(),
                    acknowledge_key_loss: true,
                    holder_data_correct: true,
                    email: "h@example.it".into(),
                    mobile: "+390000000000".into(),
                    accept_contracts: true,
                    cdrl: "CDRL-ROMA-01".into(),
                    expiry: ExpiryRule::FromOldExpiry,
                    out_dir: out_dir.clone(),
                    policy: Policy::default(),
                },
            );
            let _ = std::fs::remove_dir_all(&out_dir);
            report
        }
        other => return Err(Error::UnknownFlow(other.to_owned())),
    })
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    std::fs::write(dir.join(name), bytes).map_err(Error::io(dir.join(name)))
}

/// Writes the seed corpora under `out/<target>/`; returns how many files.
pub fn write(out: &Path) -> Result<usize, Error> {
    let secrets_for = |flow: &str| -> Vec<(String, String)> {
        SECRETS
            .iter()
            .map(|(k, v)| {
                (k.to_string(), if flow == "pin-unblock" && *k == "new_pin" { UNBLOCK_NEW_PIN } else { v }.to_string())
            })
            .collect()
    };
    let mut n = 0;
    for (fixture, target) in [
        ("cns-renewable", "card_cns"),
        ("oberthur-renewable", "card_oberthur"),
        ("incrypto34-issued", "card_incrypto34"),
        ("cns-pin-blocked", "card_cns"),
    ] {
        for flow in FLOWS {
            if (fixture == "cns-pin-blocked") != (flow == "pin-unblock") {
                continue;
            }
            let report = deterministic_flow(flow, builtin(fixture)?)?;
            let secrets = secrets_for(flow);
            let mut ops = vec![];
            for step in &report.transcript.steps {
                for e in &step.exchanges {
                    // Secret data the transcript masks (not placeholders) cannot be filled back.
                    let Ok(cmd) = fill(&e.command, &secrets) else { continue };
                    put(&out.join("apdu_parser"), &format!("{fixture}-{flow}-{}", ops.len()), &cmd)?;
                    ops.push(Op::Apdu(cmd));
                    n += 1;
                }
            }
            put(&out.join(target), &format!("{fixture}-{flow}"), &encode(&ops))?;
            let mut with_power = ops.clone();
            with_power.insert(ops.len() / 2, Op::PowerCycle);
            put(&out.join(target), &format!("{fixture}-{flow}-power-cycle"), &encode(&with_power))?;
            let json = serde_json::to_vec_pretty(&report.transcript)?;
            put(&out.join("transcript_scenario"), &format!("{fixture}-{flow}.json"), &json)?;
            n += 3;
        }
    }
    for (name, text) in BUILTIN {
        put(&out.join("image_loader"), name, text.as_bytes())?;
        n += 1;
    }
    for (name, text) in [
        ("cns-basics.json", include_str!("../../fixtures/scenarios/cns-basics.json")),
        ("oberthur-basics.json", include_str!("../../fixtures/scenarios/oberthur-basics.json")),
    ] {
        put(&out.join("transcript_scenario"), name, text.as_bytes())?;
        n += 1;
    }
    Ok(n)
}
