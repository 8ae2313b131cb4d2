//! `firmalab demo`, the first command a newcomer runs: copies of three fixture cards in a
//! folder, and in-process what Aruba Enroll, Aruba Sign and Bit4id PKI Manager do with them —
//! enrolment, diagnostic, renewal of a CNS and an Oberthur card, the CDRL's authorisation, PIN
//! unblock with the PUK, reset — every step shown as it runs.

use crate::Error;
use crate::backoffice::Store;
use crate::ca::ExpiryRule;
use crate::client;
use crate::fixtures::REFERENCE_DATE;
use crate::flows::diagnostic::{self, Policy};
use crate::flows::renewal::{self, RenewalOptions};
use crate::flows::{Event, Runner, pin, reset};
use crate::open::{CardSpec, OpenOptions};
use crate::report;
use std::path::{Path, PathBuf};

/// Where the demo works unless told: `firmalab-demo-PID` in the temporary folder.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("firmalab-demo-{}", std::process::id()))
}

/// The fixture cards the demo copies, with their holders' contacts.
const CARDS: [(&str, &str, &str); 3] = [
    ("cns-renewable", "mario.rossi@example.it", "+393330000001"),
    ("oberthur-renewable", "giulia.bianchi@example.it", "+393330000002"),
    ("cns-pin-blocked", "luca.verdi@example.it", "+393330000003"),
];

/// Runs the demo in `dir` (created if needed; the cards, back office `ra.json` and signed
/// forms stay there), at the fixtures' reference date. The cards generate their renewal keys
/// for real from the OS RNG (the step shows how long it took), unless `seed` puts them in
/// deterministic mode: then the keys come from the public pool and the step says so. Every
/// line goes to `out` as it happens.
pub fn run(dir: &Path, seed: Option<u64>, out: &mut dyn FnMut(&str)) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let now = REFERENCE_DATE;
    let mut cards = vec![];
    for (name, ..) in CARDS {
        let image = crate::fixtures::builtin(name)?;
        let path = dir.join(format!("{name}.json"));
        image.save(&path)?;
        cards.push(path);
    }
    let ca = crate::fixtures::builtin_ca()?;
    let ra = dir.join("ra.json");
    let mut bo = Store::open(&ra)?;
    let options = OpenOptions { seed, ..OpenOptions::default() };
    let pool = seed.is_some();
    let open = |i: usize| CardSpec::Image(cards[i].clone()).transport(&options);
    out(&format!("firmalab demo: three virtual cards in {} (reference date {now})", dir.display()));
    out(&match seed {
        None => {
            "keys generated on the cards for real (OS RNG); --seed N makes the run reproducible with public pool keys\n"
                .to_owned()
        }
        Some(s) => format!(
            "deterministic mode (--seed {s}): the cards' RNG is seeded and their new keys come from the public pool\n"
        ),
    });
    for (i, (_, email, mobile)) in CARDS.iter().enumerate() {
        let mut c = client::open(open(i)?)?;
        out(&renewal::enroll(c.as_mut(), &mut bo, "CDRL-ROMA-01", email, mobile, now)?);
    }
    let banner = |out: &mut dyn FnMut(&str), t: &str| out(&format!("\n== {t}"));
    banner(out, "diagnostic of the CNS card (firmalab flow diagnostic)");
    let r = {
        let mut steps = step_printer(out, pool);
        diagnostic::run(
            Runner::open(open(0)?, "diagnostic", now, &mut steps)?,
            &bo.data,
            &Policy::default(),
            Some("12345678"),
        )
    };
    out(&report::outcome_line(&r));
    let options = |email: &str, mobile: &str| RenewalOptions {
        pin: "12345678".into(),
        acknowledge_key_loss: true,
        holder_data_correct: true,
        email: email.into(),
        mobile: mobile.into(),
        accept_contracts: true,
        cdrl: "CDRL-ROMA-01".into(),
        expiry: ExpiryRule::FromOldExpiry,
        out_dir: dir.join("out"),
        policy: Policy::default(),
    };
    let mut practices = vec![];
    for (i, label) in [(0, "CNS"), (1, "Oberthur")] {
        let (_, email, mobile) = CARDS[i];
        banner(out, &format!("renewal of the {label} card (firmalab flow renewal)"));
        let r = {
            let mut steps = step_printer(out, pool);
            renewal::run(Runner::open(open(i)?, "renewal", now, &mut steps)?, &ca, &mut bo, &options(email, mobile))
        };
        out(&report::outcome_line(&r));
        if let Some(p) = r.details["practice"].as_str() {
            practices.push(p.to_owned());
        }
    }
    banner(out, "the CDRL authorises after payment (firmalab ra authorize)");
    for p in &practices {
        out(&renewal::authorize(&mut bo, p, now)?);
    }
    banner(out, "PIN unblock with the PUK on the blocked card (firmalab flow pin-unblock)");
    let r = {
        let mut steps = step_printer(out, pool);
        pin::unblock(Runner::open(open(2)?, "pin-unblock", now, &mut steps)?, "87654321", "13572468", "13572468")
    };
    out(&report::outcome_line(&r));
    banner(out, "reset of the renewed CNS card with PKI Manager (firmalab flow reset)");
    let r = {
        let mut steps = step_printer(out, pool);
        reset::reset(Runner::open(open(0)?, "reset", now, &mut steps)?, "12345678", &mut bo)
    };
    out(&report::outcome_line(&r));
    out(&format!("\ncards, back office (ra.json) and the signed renewal forms are in {}", dir.display()));
    out(&format!(
        "look at them with: firmalab image show {}   firmalab ra show --ra {}",
        cards[1].display(),
        ra.display()
    ));
    Ok(())
}

/// A flow reporter that writes each step as its line ([`crate::open::step_line`]: pool keys
/// are named as such).
fn step_printer<'a>(out: &'a mut dyn FnMut(&str), pool: bool) -> impl FnMut(Event<'_>) + 'a {
    move |e| {
        if let Some(line) = crate::open::step_line(e, pool) {
            out(&line);
        }
    }
}
