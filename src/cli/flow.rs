//! `firmalab flow NAME`: a management flow on a card, its secrets from flags, files, standard
//! input or the terminal. Exit codes: 0 done, 1 refused, 2 bad usage, 3 card or transport
//! failure.

use super::CliResult;
use super::input::{SecretSource, confirm, new_secret, secret, serial_confirmer, text};
use clap::{Args, ValueEnum};
use firmalab_harness::backoffice::{BackOffice, DEFAULT_CDRL, DEFAULT_PATH, Store};
use firmalab_harness::bundle::{self, Bundle};
use firmalab_harness::ca::ExpiryRule;
use firmalab_harness::client::{DEFAULT_PIN, SecretPolicy};
use firmalab_harness::client_auth::Challenge;
use firmalab_harness::dates::Date;
use firmalab_harness::flows::diagnostic::Policy;
use firmalab_harness::flows::import::{self, ImportOptions};
use firmalab_harness::flows::order::{self, OrderOptions};
use firmalab_harness::flows::renewal::{self, RenewalOptions};
use firmalab_harness::flows::secrets::{self, Field, Given};
use firmalab_harness::flows::{Event, FlowReport, Outcome, Runner, diagnostic, pin, reset};
use firmalab_harness::open::{self, CardSpec, OpenOptions};
use firmalab_harness::report;
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlowName {
    Diagnostic,
    PinChange,
    PinUnblock,
    PukChange,
    Reset,
    Renewal,
    /// Aruba Key, phase 2 (Aruba Renew): install the certificates the CA issued for an order.
    Import,
    /// Aruba Key, phase 1: `firmalab ra order` (the web order), not a `flow` of its own.
    #[value(skip)]
    Order,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Expiry {
    /// 3 years from the old certificate's expiry.
    FromOldExpiry,
    /// 3 years from the new certificate's issuance.
    FromIssuance,
}

#[derive(Args, Debug)]
pub struct FlowArgs {
    pub name: FlowName,
    /// The card: an image file, or `reader:NAME` for a card in a PC/SC reader. Repeat for a
    /// renewal among several cards (the expiring one is chosen).
    #[arg(long = "card", required = true)]
    pub cards: Vec<String>,
    /// The PIN (asked, hidden, when missing and a terminal is attached). Visible to every
    /// user of the machine in /proc/PID/cmdline: scripts use --pin-file.
    #[arg(long, conflicts_with = "pin_file")]
    pub pin: Option<String>,
    /// Read the PIN from the first line of this file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    #[arg(long, conflicts_with = "puk_file")]
    pub puk: Option<String>,
    /// Read the PUK from the first line of this file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub puk_file: Option<PathBuf>,
    #[arg(long, conflicts_with = "new_pin_file")]
    pub new_pin: Option<String>,
    /// Read the new PIN from the first line of this file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub new_pin_file: Option<PathBuf>,
    #[arg(long, conflicts_with = "new_puk_file")]
    pub new_puk: Option<String>,
    /// Read the new PUK from the first line of this file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub new_puk_file: Option<PathBuf>,
    /// reset: log in with the default PIN 12345 (a blank card after a failed issuance or an
    /// interrupted reset). firmalab never sends it unless asked.
    #[arg(long, conflicts_with_all = ["pin", "pin_file"])]
    pub default_pin: bool,
    /// Send a PIN or PUK even when its object has 1 try left (a wrong one blocks it).
    #[arg(long)]
    pub allow_last_try: bool,
    /// Send only commands that read; stop before the first one that would present a secret
    /// or change the card, and print the APDUs (secrets as placeholders). Nothing changes.
    #[arg(long)]
    pub dry_run: bool,
    /// Confirms a destructive flow (reset, renewal) on a card in a reader by its serial,
    /// when no terminal is attached to type it.
    #[arg(long, value_name = "SERIAL")]
    pub confirm_serial: Option<String>,
    /// Accept the decryption-key warning and the contract conditions, confirm the holder data.
    #[arg(long)]
    pub yes: bool,
    /// import: the card serial printed on the key, as Aruba Renew asks for it (asked when a
    /// terminal is attached); it must be the card's, and on a card in a reader it also
    /// confirms the import.
    #[arg(long, value_name = "SERIAL")]
    pub serial: Option<String>,
    /// The certificate data is wrong (the renewal then stops: a new card is needed).
    #[arg(long)]
    pub holder_data_wrong: bool,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub mobile: Option<String>,
    /// The CDRL running the flow. The renewal refuses a card another CDRL issued
    /// (`IssuedByOtherCdrl`; default CDRL-ROMA-01, the CDRL of `ra enroll`'s default); the
    /// diagnostic checks it only when given.
    #[arg(long)]
    pub cdrl: Option<String>,
    /// The diagnostic's "not revoked" asks this OCSP responder (e.g. http://127.0.0.1:2560)
    /// instead of the back office.
    #[arg(long)]
    pub ocsp: Option<String>,
    /// Today, for certificates and windows (YYYY-MM-DD; default: the system clock).
    #[arg(long)]
    pub now: Option<Date>,
    /// The back-office store.
    #[arg(long, default_value = DEFAULT_PATH)]
    pub ra: PathBuf,
    /// The test CA folder (renewal; default: the test CA built into firmalab).
    #[arg(long, value_name = "DIR")]
    pub ca: Option<PathBuf>,
    /// Where the renewal writes the signed form, requests and certificates (relative to the
    /// working directory).
    #[arg(long, default_value = "firmalab-out")]
    pub out_dir: PathBuf,
    #[arg(long, value_enum, default_value = "from-old-expiry")]
    pub expiry: Expiry,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Record the APDU transcript (PINs as placeholders) to this file.
    #[arg(long)]
    pub transcript: Option<PathBuf>,
    /// Write a JUnit XML report.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a support bundle to this file: one tar with the redacted transcript, the JSON
    /// report, the card as `image show --json`, firmalab's version, the reader and ATR;
    /// personal data replaced, no PIN, PUK or private key. Without it, a flow that is refused
    /// or fails writes one in the working directory (the path is printed on stderr).
    #[arg(long, value_name = "FILE")]
    pub support_bundle: Option<PathBuf>,
    /// Write no support bundle when the flow is refused or fails (also
    /// FIRMALAB_SUPPORT_BUNDLE=off).
    #[arg(long, conflicts_with = "support_bundle")]
    pub no_support_bundle: bool,
    /// INSECURE deterministic mode for in-process cards: their RNG is seeded, and RSA-2048
    /// keys generated on them (renewal) are drawn from a public pool
    /// (fixtures/keys/rsa2048-pool.txt: anyone has their private keys).
    #[arg(long)]
    pub seed: Option<u64>,
    /// In-process cards answer with a physical token's latency (none, fast, typical, slow).
    #[arg(long, default_value = "none")]
    pub timing: firmalab_emulator::timing::Timing,
}

/// Prints each step (pool keys named as such); on a terminal, a step in progress shows its
/// elapsed time on standard error (key generation under a timing model takes seconds).
fn print_event(json: bool, pool_keys: bool) -> impl FnMut(Event<'_>) {
    let mut ticking: Option<super::progress::Step> = None;
    move |e| {
        if json {
            return;
        }
        if let Some(t) = ticking.take() {
            t.clear();
        }
        if let Some(line) = open::step_line(e, pool_keys) {
            println!("{line}");
        }
        if let Event::Begin(name) = e
            && super::progress::on_terminal()
        {
            ticking = Some(super::progress::step(format!("  …  {name}")));
        }
    }
}

/// What a support bundle needs from the run besides the report.
#[derive(Default)]
struct Context {
    /// The secrets given (never in a bundle).
    secrets: Vec<String>,
    /// The email and mobile typed.
    contacts: Vec<String>,
    /// The back office the flow used.
    back_office: Option<BackOffice>,
}

/// Writes the support bundle asked for (`--support-bundle`), or the default one when the
/// flow was refused or failed; says where on stderr. An explicit bundle that cannot be
/// written fails the command (exit 3 if the flow itself succeeded).
fn support_bundle(report: &FlowReport, a: &FlowArgs, spec: &CardSpec, ctx: &Context) -> Option<u8> {
    let off = a.no_support_bundle || std::env::var("FIRMALAB_SUPPORT_BUNDLE").is_ok_and(|v| v == "off");
    let failed = matches!(report.outcome, Outcome::Refused { .. } | Outcome::Failed { .. });
    let path = match &a.support_bundle {
        Some(p) => p.clone(),
        None if failed && !off => bundle::default_path(&report.flow),
        None => return None,
    };
    let b = Bundle {
        report,
        card: spec,
        secrets: ctx.secrets.clone(),
        contacts: ctx.contacts.clone(),
        back_office: ctx.back_office.as_ref(),
        version: env!("CARGO_PKG_VERSION"),
    };
    match bundle::write(&path, &b) {
        Ok(()) => {
            eprintln!(
                "firmalab: support bundle written to {} (attach it to the assistance request: personal data replaced, no PIN, PUK or private key)",
                path.display()
            );
            None
        }
        Err(e) => {
            eprintln!("firmalab: {e}");
            a.support_bundle.is_some().then_some(3)
        }
    }
}

/// Writes the transcript and JUnit files asked for, prints the report; the flow's exit code.
fn finish(report: &FlowReport, a: &FlowArgs) -> Result<u8, String> {
    if let Some(path) = &a.transcript {
        report.transcript.save(path).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &a.junit {
        firmalab_harness::files::write_private(path, report::junit(std::slice::from_ref(report)).as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if a.dry_run && !a.json {
        println!("APDUs of the dry run (secrets as placeholders):");
        print!("{}", report.transcript.render());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(report).map_err(|e| e.to_string())?);
    } else {
        println!("{}", report::outcome_line(report));
    }
    advise(report, a);
    Ok(report.outcome.exit_code())
}

/// Where the flow's files went, and what to do after a refusal for a date or a missing
/// back-office record (on standard error).
fn advise(report: &FlowReport, a: &FlowArgs) {
    use firmalab_harness::fixtures::{absolute, advice};
    use firmalab_harness::flows::{Outcome, StepStatus};
    if a.name == FlowName::Renewal && a.out_dir.is_dir() && !a.dry_run {
        eprintln!("renewal files (signed form, requests, certificates) in {}", absolute(&a.out_dir).display());
    }
    if matches!(a.name, FlowName::Renewal | FlowName::Reset) && a.ra.is_file() && !a.dry_run {
        eprintln!("back office: {}", absolute(&a.ra).display());
    }
    let mut refusals: Vec<firmalab_harness::Reason> = report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Refused)
        .filter_map(|s| s.detail.split(':').next().and_then(|code| code.parse().ok()))
        .collect();
    if let Outcome::Refused { reason, .. } = &report.outcome {
        refusals.push(*reason);
    }
    if let [card] = a.cards.as_slice() {
        for line in advice(&CardSpec::parse(card), &refusals, a.now.is_some(), &a.ra) {
            eprintln!("firmalab: {line}");
        }
    }
}

/// Why `firmalab flow` could not run a flow: bad usage (exit 2) or the card (exit 3).
enum Trouble {
    Usage(String),
    Card(String),
}

/// `firmalab flow NAME …`: exit 0 done, 1 refused, 2 bad usage, 3 card or transport failure.
pub fn run(a: FlowArgs) -> CliResult {
    match run_flow(&a) {
        Ok(code) => Ok(code),
        Err(Trouble::Usage(m)) => {
            eprintln!("firmalab: {m}");
            Ok(2)
        }
        Err(Trouble::Card(m)) => {
            eprintln!("firmalab: {m}");
            Ok(3)
        }
    }
}

/// Opens the card of a flow behind its gate, with the user's secret policy, dry run and
/// confirmation by serial. The secrets `given` are checked against the rules of the card
/// the ATR names before its client opens: a secret no such card could hold is bad usage,
/// and the card sees no APDU.
#[allow(clippy::too_many_arguments)]
fn open_runner<'r>(
    a: &FlowArgs,
    spec: &CardSpec,
    name: &str,
    now: Date,
    policy: SecretPolicy,
    printer: &'r mut dyn FnMut(Event<'_>),
    reader: &'r str,
    given: &[Given<'_>],
) -> Result<Runner<'r>, Trouble> {
    let options = OpenOptions { seed: a.seed, timing: a.timing, dry_run: a.dry_run, ..OpenOptions::default() };
    let card = spec.open(&options).map_err(|e| Trouble::Card(e.to_string()))?;
    secrets::check_for_atr(&card.transport.atr(), given)
        .map_err(|stop| Trouble::Usage(format!("{stop}; nothing was sent to the card")))?;
    // Aruba Renew's serial is typed for the import: it confirms it too.
    let given_serial = if a.name == FlowName::Import { a.serial.clone() } else { None };
    let confirm = serial_confirmer(a.confirm_serial.clone().or(given_serial), reader);
    let r = card.runner(name, now, printer, Some(confirm)).map_err(|e| Trouble::Card(e.to_string()))?;
    Ok(r.with_policy(policy))
}

/// Values the dry run registers for secrets not given: never sent (the dry run stops before
/// any command carrying one), but shown as the same placeholders.
const DRY_RUN_SECRETS: [(&str, &str); 4] =
    [("pin", "10000001"), ("puk", "20000002"), ("new-pin", "30000003"), ("new-puk", "40000004")];

fn run_flow(a: &FlowArgs) -> Result<u8, Trouble> {
    use Trouble::{Card, Usage};
    let stdin_secrets = [&a.pin_file, &a.puk_file, &a.new_pin_file, &a.new_puk_file]
        .iter()
        .filter(|f| f.as_deref() == Some(Path::new("-")))
        .count();
    if stdin_secrets > 1 {
        return Err(Usage("only one secret can come from standard input (`-`); use files for the others".into()));
    }
    let now = a.now.unwrap_or_else(Date::today);
    let name = match a.name {
        FlowName::Diagnostic => "diagnostic",
        FlowName::PinChange => "pin-change",
        FlowName::PinUnblock => "pin-unblock",
        FlowName::PukChange => "puk-change",
        FlowName::Reset => "reset",
        FlowName::Renewal => "renewal",
        FlowName::Import => "import",
        FlowName::Order => "order",
    };
    let spec = match (a.name, a.cards.as_slice()) {
        (_, [one]) => CardSpec::parse(one),
        (FlowName::Renewal, many) => {
            let specs: Vec<CardSpec> = many.iter().map(|c| CardSpec::parse(c)).collect();
            let options = OpenOptions { seed: a.seed, ..OpenOptions::default() };
            let i = open::choose_for_renewal(&specs, &options, now).map_err(|e| Card(e.to_string()))?;
            eprintln!("renewing the card {} (its signature certificate expires first)", many[i]);
            specs[i].clone()
        }
        _ => return Err(Usage(format!("{name} runs on one card; {} given", a.cards.len()))),
    };
    let src = |name: &'static str| {
        let (value, file) = match name {
            "pin" => (&a.pin, &a.pin_file),
            "puk" => (&a.puk, &a.puk_file),
            "new-pin" => (&a.new_pin, &a.new_pin_file),
            _ => (&a.new_puk, &a.new_puk_file),
        };
        SecretSource { value, file, name }
    };
    // In a dry run nothing secret is sent: a missing secret is not asked for.
    let dummy = |name: &str| DRY_RUN_SECRETS.iter().find(|(n, _)| *n == name).map_or("0", |(_, v)| v).to_owned();
    let ask = |name: &'static str, prompt: &str| -> Result<String, Trouble> {
        match src(name).given().map_err(Usage)? {
            Some(v) => Ok(v),
            None if a.dry_run => Ok(dummy(name)),
            None => secret(src(name), prompt).map_err(Usage),
        }
    };
    let ask_new = |name: &'static str, what: &str| -> Result<(String, String), Trouble> {
        match src(name).given().map_err(Usage)? {
            Some(v) => Ok((v.clone(), v)),
            None if a.dry_run => Ok((dummy(name), dummy(name))),
            None => new_secret(src(name), what).map_err(Usage),
        }
    };
    // Ask for everything before touching the card.
    let pool_keys = OpenOptions { seed: a.seed, ..OpenOptions::default() }.pool_keys(&spec);
    let mut printer = print_event(a.json, pool_keys);
    let policy = SecretPolicy { allow_last_try: a.allow_last_try, virtual_card: false };
    let reader = spec.place();
    let open = |printer, given: &[Given<'_>]| open_runner(a, &spec, name, now, policy, printer, &reader, given);
    let mut ctx = Context::default();
    let report = match a.name {
        FlowName::Diagnostic => {
            let bo = Store::open_read_only(&a.ra).map_err(|e| Usage(e.to_string()))?;
            let policy = Policy { cdrl: a.cdrl.clone(), ocsp: a.ocsp.clone(), ..Policy::default() };
            let pin = src("pin").given().map_err(Usage)?;
            ctx.secrets.extend(pin.clone());
            let given: Vec<Given<'_>> = pin.iter().map(|p| Given::current(Field::Pin, p)).collect();
            let report = diagnostic::run(open(&mut printer, &given)?, &bo.data, &policy, pin.as_deref());
            ctx.back_office = Some(bo.data);
            report
        }
        FlowName::PinChange => {
            let current = ask("pin", "Current PIN: ")?;
            let (new, repeat) = ask_new("new-pin", "PIN")?;
            ctx.secrets = vec![current.clone(), new.clone(), repeat.clone()];
            let given = [Given::current(Field::Pin, &current), Given::new(Field::NewPin, &new, &repeat)];
            pin::change(open(&mut printer, &given)?, &current, &new, &repeat)
        }
        FlowName::PinUnblock => {
            let puk = ask("puk", "PUK: ")?;
            let (new, repeat) = ask_new("new-pin", "PIN")?;
            ctx.secrets = vec![puk.clone(), new.clone(), repeat.clone()];
            let given = [Given::current(Field::Puk, &puk), Given::new(Field::NewPin, &new, &repeat)];
            pin::unblock(open(&mut printer, &given)?, &puk, &new, &repeat)
        }
        FlowName::PukChange => {
            let puk = ask("puk", "Current PUK: ")?;
            let (new, repeat) = ask_new("new-puk", "PUK")?;
            ctx.secrets = vec![puk.clone(), new.clone(), repeat.clone()];
            let given = [Given::current(Field::Puk, &puk), Given::new(Field::NewPuk, &new, &repeat)];
            pin::change_puk(open(&mut printer, &given)?, &puk, &new, &repeat)
        }
        FlowName::Reset => {
            let pin = if a.default_pin {
                DEFAULT_PIN.to_owned()
            } else {
                ask("pin", "PIN (12345 after a failed issuance): ")?
            };
            ctx.secrets.push(pin.clone());
            let mut bo = Store::open(&a.ra).map_err(|e| Usage(e.to_string()))?;
            let report = reset::reset(open(&mut printer, &[Given::current(Field::Pin, &pin)])?, &pin, &mut bo);
            ctx.back_office = Some(bo.data.clone());
            report
        }
        FlowName::Renewal => {
            let ca = firmalab_harness::fixtures::test_ca(a.ca.as_deref()).map_err(|e| Usage(e.to_string()))?;
            let cdrl = a.cdrl.clone().unwrap_or_else(|| DEFAULT_CDRL.to_owned());
            let mut bo = Store::open(&a.ra).map_err(|e| Usage(e.to_string()))?;
            let yes = a.yes || a.dry_run;
            let acknowledge = confirm(
                yes,
                "The renewal deletes the decryption key: files encrypted for it can no longer be opened. Continue?",
            );
            let pin = ask("pin", "PIN: ")?;
            let email = if a.dry_run {
                a.email.clone().unwrap_or_default()
            } else {
                text(&a.email, "email", "Email: ").map_err(Usage)?
            };
            let mobile = if a.dry_run {
                a.mobile.clone().unwrap_or_default()
            } else {
                text(&a.mobile, "mobile", "Mobile: ").map_err(Usage)?
            };
            let holder_ok = !a.holder_data_wrong && confirm(yes, "Is the holder data in the certificate correct?");
            let contracts = confirm(yes, "Do you accept the contract conditions?");
            let o = RenewalOptions {
                pin,
                acknowledge_key_loss: acknowledge,
                holder_data_correct: holder_ok,
                email,
                mobile,
                accept_contracts: contracts,
                cdrl: cdrl.clone(),
                expiry: match a.expiry {
                    Expiry::FromOldExpiry => ExpiryRule::FromOldExpiry,
                    Expiry::FromIssuance => ExpiryRule::FromIssuance,
                },
                out_dir: a.out_dir.clone(),
                policy: Policy { cdrl: Some(cdrl), ocsp: a.ocsp.clone(), ..Policy::default() },
            };
            ctx.secrets.push(o.pin.clone());
            ctx.contacts = vec![o.email.clone(), o.mobile.clone()];
            let given = [Given::current(Field::Pin, &o.pin)];
            let report = renewal::run(open(&mut printer, &given)?, &ca, &mut bo, &o);
            ctx.back_office = Some(bo.data.clone());
            report
        }
        FlowName::Import => {
            let serial = match &a.serial {
                Some(s) => Some(s.clone()),
                None if a.dry_run => None,
                None => Some(text(&a.serial, "serial", "Card serial (printed on the key): ").map_err(Usage)?),
            };
            let pin = ask("pin", "PIN: ")?;
            ctx.secrets.push(pin.clone());
            let mut bo = Store::open(&a.ra).map_err(|e| Usage(e.to_string()))?;
            let o = ImportOptions { serial, pin };
            let report = import::run(open(&mut printer, &[Given::current(Field::Pin, &o.pin)])?, &mut bo, &o);
            ctx.back_office = Some(bo.data.clone());
            report
        }
        FlowName::Order => {
            let ca = firmalab_harness::fixtures::test_ca(a.ca.as_deref()).map_err(|e| Usage(e.to_string()))?;
            let mut bo = Store::open(&a.ra).map_err(|e| Usage(e.to_string()))?;
            let pin = ask("pin", "PIN: ")?;
            ctx.secrets.push(pin.clone());
            let accept_contracts =
                confirm(a.yes || a.dry_run, "Do you accept the contract conditions of the renewal order?");
            // The back office's challenge: fresh randomness, reproducible only with --seed.
            let challenge = match a.seed {
                Some(seed) => Challenge::insecure_from_seed(seed),
                None => Challenge::random().map_err(Card)?,
            };
            let o = OrderOptions {
                pin,
                accept_contracts,
                expiry: match a.expiry {
                    Expiry::FromOldExpiry => ExpiryRule::FromOldExpiry,
                    Expiry::FromIssuance => ExpiryRule::FromIssuance,
                },
                out_dir: a.out_dir.clone(),
                policy: Policy { cdrl: None, ocsp: a.ocsp.clone(), ..Policy::default() },
                challenge,
            };
            let report = order::run(open(&mut printer, &[Given::current(Field::Pin, &o.pin)])?, &ca, &mut bo, &o);
            ctx.back_office = Some(bo.data.clone());
            report
        }
    };
    let code = finish(&report, a).map_err(Usage)?;
    Ok(match support_bundle(&report, a, &spec, &ctx) {
        Some(failed) if code == 0 => failed,
        _ => code,
    })
}
