//! `firmalab flow`, `ra`, `replay` and `demo`: argument handling and printing around the
//! harness's flows.

use clap::{Args, ValueEnum};
use firmalab_emulator::CardRng;
use firmalab_harness::backoffice::{DEFAULT_CDRL, DEFAULT_PATH, Store};
use firmalab_harness::ca::ExpiryRule;
use firmalab_harness::client::{self, DEFAULT_PIN, SecretPolicy};
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::Policy;
use firmalab_harness::flows::renewal::{self, RenewalOptions};
use firmalab_harness::flows::{Confirmer, Event, FlowReport, Runner, diagnostic, pin, reset};
use firmalab_harness::pki::TestCa;
use firmalab_harness::report;
use firmalab_harness::transcript::Transcript;
use firmalab_harness::transport::Transport;
use firmalab_harness::transport::gate::{Consent, Gate, Mode};
use firmalab_harness::transport::in_process::InProcess;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlowName {
    Diagnostic,
    PinChange,
    PinUnblock,
    PukChange,
    Reset,
    Renewal,
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
    /// The test CA (renewal).
    #[arg(long, default_value = "fixtures/ca")]
    pub ca: PathBuf,
    /// Where the renewal writes the signed form, requests and certificates.
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
    /// INSECURE deterministic RNG for in-process cards.
    #[arg(long)]
    pub seed: Option<u64>,
    /// In-process cards answer with a physical token's latency (none, fast, typical, slow).
    #[arg(long, default_value = "none")]
    pub timing: firmalab_emulator::timing::Timing,
}

/// Whether a card spec names a card in a PC/SC reader (someone's token, perhaps).
pub fn in_reader(spec: &str) -> bool {
    spec.starts_with("reader:")
}

/// How a flow, a scenario or a replay may treat a card.
struct Guarded {
    transport: Box<dyn Transport>,
    /// For cards in readers: writes wait for the confirmation by serial.
    consent: Option<Consent>,
}

/// Opens a card behind the gate its kind needs: a dry run stops before the first change;
/// a card in a reader takes writes only after the confirmation by its serial.
fn open_guarded(
    spec: &str,
    seed: Option<u64>,
    timing: firmalab_emulator::timing::Timing,
    dry_run: bool,
) -> Result<Guarded, String> {
    let t = open_card_timed(spec, seed, timing)?;
    Ok(if dry_run {
        Guarded { transport: Box::new(Gate::new(t, Mode::DryRun).0), consent: None }
    } else if in_reader(spec) {
        let (gate, consent) = Gate::new(t, Mode::Consent);
        Guarded { transport: Box::new(gate), consent: Some(consent) }
    } else {
        Guarded { transport: t, consent: None }
    })
}

/// Asks for the card's serial before a destructive operation on a card in a reader: typed on
/// the terminal, or `--confirm-serial` without one.
fn serial_confirmer<'a>(confirm: Option<String>, reader: &'a str) -> Confirmer<'a> {
    Box::new(move |serial: &str, what: &str| match &confirm {
        Some(given) if given == serial => Ok(()),
        Some(given) => Err(format!("--confirm-serial {given} is not this card's serial ({serial}): nothing done")),
        None if interactive() => {
            eprint!("This will {what}: card {serial} in {reader}.\nType the card's serial to confirm: ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
            if line.trim() == serial {
                Ok(())
            } else {
                Err(format!("{:?} is not the card's serial: nothing done", line.trim()))
            }
        }
        None => Err(format!(
            "this would {what} on card {serial} in {reader}: confirm with --confirm-serial {serial} (no terminal to ask on)"
        )),
    })
}

/// Opens a card: an image file (saved as it changes) or `reader:NAME`.
pub fn open_card(spec: &str, seed: Option<u64>) -> Result<Box<dyn Transport>, String> {
    open_card_timed(spec, seed, firmalab_emulator::timing::Timing::None)
}

/// [`open_card`] with a latency model for in-process cards.
pub fn open_card_timed(
    spec: &str,
    seed: Option<u64>,
    timing: firmalab_emulator::timing::Timing,
) -> Result<Box<dyn Transport>, String> {
    if let Some(reader) = spec.strip_prefix("reader:") {
        return open_reader(reader);
    }
    let rng = match seed {
        Some(s) => CardRng::insecure_deterministic(s),
        None => CardRng::from_os()?,
    };
    Ok(Box::new(InProcess::open(spec, rng)?.with_timing(timing)))
}

#[cfg(feature = "pcsc")]
fn open_reader(reader: &str) -> Result<Box<dyn Transport>, String> {
    let t = firmalab_harness::transport::pcsc::PcscTransport::connect(reader, std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    Ok(Box::new(t))
}

#[cfg(not(feature = "pcsc"))]
fn open_reader(_reader: &str) -> Result<Box<dyn Transport>, String> {
    Err("reader:NAME needs PC/SC support: rebuild with `--features pcsc`".into())
}

fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// A secret from the first line of a file, or of standard input for `-`.
pub fn read_secret_file(path: &Path, name: &str) -> Result<String, String> {
    use std::io::BufRead;
    let mut line = String::new();
    if path == Path::new("-") {
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("--{name}-file -: {e}"))?;
    } else {
        let meta = std::fs::metadata(path).map_err(|e| format!("--{name}-file {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("--{name}-file {}: not a regular file", path.display()));
        }
        if meta.len() > 4096 {
            return Err(format!("--{name}-file {}: {} bytes, not a {name}", path.display(), meta.len()));
        }
        let f = std::fs::File::open(path).map_err(|e| format!("--{name}-file {}: {e}", path.display()))?;
        std::io::BufReader::new(f)
            .read_line(&mut line)
            .map_err(|e| format!("--{name}-file {}: {e}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!("firmalab: warning: {} is readable by other users (chmod 600 it)", path.display());
            }
        }
    }
    let value = line.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err(format!("--{name}-file {}: empty first line", path.display()));
    }
    Ok(value)
}

/// Where each secret comes from: a flag, a file, or (missing) the terminal.
struct SecretSource<'a> {
    value: &'a Option<String>,
    file: &'a Option<PathBuf>,
    /// The flag's name without dashes: `pin`, `new-pin` …
    name: &'a str,
}

impl SecretSource<'_> {
    fn given(&self) -> Result<Option<String>, String> {
        match (self.value, self.file) {
            (Some(v), _) => Ok(Some(v.clone())),
            (None, Some(f)) => read_secret_file(f, self.name).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// A secret from its flag or file, or asked without echo on a terminal.
fn secret(src: SecretSource<'_>, prompt: &str) -> Result<String, String> {
    if let Some(v) = src.given()? {
        return Ok(v);
    }
    if !interactive() {
        return Err(format!(
            "--{0} is required (or --{0}-file FILE, `-` for standard input: no terminal to ask on)",
            src.name
        ));
    }
    rpassword::prompt_password(prompt).map_err(|e| format!("reading the {}: {e}", src.name))
}

/// A new secret: from its flag or file, or asked twice (new, repeat).
fn new_secret(src: SecretSource<'_>, what: &str) -> Result<(String, String), String> {
    if let Some(v) = src.given()? {
        return Ok((v.clone(), v));
    }
    let name = src.name;
    let ask = |prompt: &str| secret(SecretSource { value: &None, file: &None, name }, prompt);
    let new = ask(&format!("New {what}: "))?;
    let repeat = ask(&format!("Repeat the new {what}: "))?;
    Ok((new, repeat))
}

fn text(flag: &Option<String>, name: &str, prompt: &str) -> Result<String, String> {
    if let Some(v) = flag {
        return Ok(v.clone());
    }
    if !interactive() {
        return Err(format!("--{name} is required (no terminal to ask on)"));
    }
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(line.trim().to_owned())
}

fn confirm(yes: bool, question: &str) -> bool {
    if yes {
        return true;
    }
    if !interactive() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "s" | "S" | "yes" | "si" | "sì")
}

fn print_event(json: bool) -> impl FnMut(Event<'_>) {
    move |e| {
        if !json && let Some(line) = report::step_line(e) {
            println!("{line}");
        }
    }
}

fn finish(report: &FlowReport, a: &FlowArgs) -> Result<u8, String> {
    if let Some(path) = &a.transcript {
        report.transcript.save(path)?;
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
    Ok(report.outcome.exit_code())
}

/// Why `firmalab flow` could not run a flow: bad usage (exit 2) or the card (exit 3).
enum Trouble {
    Usage(String),
    Card(String),
}

/// `firmalab flow NAME …`: exit 0 done, 1 refused, 2 bad usage, 3 card or transport failure.
pub fn flow(a: FlowArgs) -> Result<u8, String> {
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
/// confirmation by serial.
fn open_runner<'r>(
    a: &FlowArgs,
    spec: &str,
    reader_name: &'r str,
    name: &str,
    now: Date,
    policy: SecretPolicy,
    printer: &'r mut dyn FnMut(Event<'_>),
) -> Result<Runner<'r>, Trouble> {
    let g = open_guarded(spec, a.seed, a.timing, a.dry_run).map_err(Trouble::Card)?;
    let mut r = Runner::open(g.transport, name, now, printer).map_err(Trouble::Card)?.with_policy(policy);
    if a.dry_run {
        r = r.dry_run();
    }
    if let Some(consent) = g.consent {
        r = r.confirming(consent, serial_confirmer(a.confirm_serial.clone(), reader_name));
    }
    Ok(r)
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
    };
    let spec = match (a.name, a.cards.as_slice()) {
        (_, [one]) => one.clone(),
        (FlowName::Renewal, many) => {
            let mut clients = many
                .iter()
                .map(|c| open_card(c, a.seed).and_then(|t| client::open(t).map_err(|e| e.to_string())))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Card)?;
            let i = renewal::choose(&mut clients, now).map_err(Card)?;
            drop(clients);
            eprintln!("renewing the card {} (its signature certificate expires first)", many[i]);
            many[i].clone()
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
    let json = a.json;
    let mut printer = print_event(json);
    let policy = SecretPolicy { allow_last_try: a.allow_last_try, virtual_card: false };
    let reader_name = spec.strip_prefix("reader:").unwrap_or(&spec).to_owned();
    let open = |printer| open_runner(a, &spec, &reader_name, name, now, policy, printer);
    let report = match a.name {
        FlowName::Diagnostic => {
            let bo = Store::open_read_only(&a.ra).map_err(Usage)?;
            let policy = Policy { cdrl: a.cdrl.clone(), ocsp: a.ocsp.clone(), ..Policy::default() };
            let pin = src("pin").given().map_err(Usage)?;
            diagnostic::run(open(&mut printer)?, &bo.data, &policy, pin.as_deref())
        }
        FlowName::PinChange => {
            let current = ask("pin", "Current PIN: ")?;
            let (new, repeat) = ask_new("new-pin", "PIN")?;
            pin::change(open(&mut printer)?, &current, &new, &repeat)
        }
        FlowName::PinUnblock => {
            let puk = ask("puk", "PUK: ")?;
            let (new, repeat) = ask_new("new-pin", "PIN")?;
            pin::unblock(open(&mut printer)?, &puk, &new, &repeat)
        }
        FlowName::PukChange => {
            let puk = ask("puk", "Current PUK: ")?;
            let (new, repeat) = ask_new("new-puk", "PUK")?;
            pin::change_puk(open(&mut printer)?, &puk, &new, &repeat)
        }
        FlowName::Reset => {
            let pin = if a.default_pin {
                DEFAULT_PIN.to_owned()
            } else {
                ask("pin", "PIN (12345 after a failed issuance): ")?
            };
            let mut bo = Store::open(&a.ra).map_err(Usage)?;
            reset::reset(open(&mut printer)?, &pin, &mut bo)
        }
        FlowName::Renewal => {
            let ca = TestCa::load(&a.ca).map_err(Usage)?;
            let cdrl = a.cdrl.clone().unwrap_or_else(|| DEFAULT_CDRL.to_owned());
            let mut bo = Store::open(&a.ra).map_err(Usage)?;
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
            renewal::run(open(&mut printer)?, &ca, &mut bo, &o)
        }
    };
    finish(&report, a).map_err(Usage)
}

/// `firmalab replay`'s options.
pub struct ReplayArgs {
    pub file: PathBuf,
    pub card: String,
    pub secrets: Vec<String>,
    pub secret_files: Vec<String>,
    pub seed: Option<u64>,
    pub dry_run: bool,
    pub confirm_serial: Option<String>,
}

fn name_value(s: &str, flag: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{flag} {s:?}: expected NAME=VALUE"))
}

/// `firmalab replay`.
pub fn replay(a: ReplayArgs) -> Result<u8, String> {
    use firmalab_harness::transcript::{Replayed, fill, placeholder_names, replay_until};
    use firmalab_harness::wire::apdu::{Effect, effect};
    let t = Transcript::load(&a.file)?;
    let mut secrets: Vec<(String, String)> =
        a.secrets.iter().map(|s| name_value(s, "--secret")).collect::<Result<_, _>>()?;
    for s in &a.secret_files {
        let (name, path) = name_value(s, "--secret-file")?;
        let value = read_secret_file(Path::new(&path), &name)?;
        secrets.push((name, value));
    }
    if a.dry_run {
        // Commands carrying a secret are never sent in a dry run: missing values are not needed.
        for name in placeholder_names(&t) {
            if !secrets.iter().any(|(n, _)| *n == name) {
                secrets.push((name, "0".into()));
            }
        }
    }
    let g = open_guarded(&a.card, a.seed, firmalab_emulator::timing::Timing::None, a.dry_run)?;
    let mut client_holder = None;
    let mut transport = g.transport;
    if let Some(consent) = &g.consent {
        let model = firmalab_harness::wire::atr::recognise(&transport.atr());
        let writes = t.steps.iter().flat_map(|s| &s.exchanges).any(|e| {
            fill(&e.command, &secrets).is_ok_and(|c| effect(model.profile, model.tries_query_free, &c) == Effect::Write)
        });
        if writes {
            let mut c = client::open(transport).map_err(|e| e.to_string())?;
            let serial = c.serial().map_err(|e| e.to_string())?;
            let reader = a.card.trim_start_matches("reader:");
            let mut ask = serial_confirmer(a.confirm_serial.clone(), reader);
            ask(&serial, &format!("replay {} (it writes to the card)", a.file.display()))
                .map_err(|e| format!("not confirmed: {e}"))?;
            consent.confirm();
            client_holder = Some(c);
            transport = Box::new(NoTransport);
        }
    }
    let target: &mut dyn Transport = match client_holder.as_mut() {
        Some(c) => c.transport(),
        None => transport.as_mut(),
    };
    match replay_until(&t, target, &secrets)? {
        Replayed::Matched(n) => {
            println!(
                "replay of {} ({} on {}): {n} exchanges, every response as recorded (masks: signatures, challenges, generated keys by length)",
                a.file.display(),
                t.flow,
                t.profile
            );
            Ok(0)
        }
        Replayed::Diverged(d) => {
            println!("replay of {}: first divergence in step {} at exchange {}", a.file.display(), d.step, d.index + 1);
            println!("  > {}", d.command);
            println!("  expected < {}", d.expected);
            println!("  got      < {}", d.got);
            Ok(1)
        }
        Replayed::Stopped { replayed, step, index, why } => {
            println!("dry run of the replay of {} (secrets as placeholders):", a.file.display());
            let mut shown = 0;
            'all: for s in &t.steps {
                for (i, e) in s.exchanges.iter().enumerate() {
                    if e.not_sent {
                        continue;
                    }
                    if s.name == step && i == index {
                        println!("> {}\n< (not sent: {why})", e.command);
                        break 'all;
                    }
                    println!("> {}\n< {}", e.command, e.response);
                    shown += 1;
                }
            }
            debug_assert_eq!(shown, replayed);
            println!(
                "dry run: {replayed} read-only exchanges replayed; stopped before {why}; nothing that changes the card was sent"
            );
            Ok(0)
        }
    }
}

/// Stands in for a transport moved into a client.
struct NoTransport;

impl Transport for NoTransport {
    fn transmit_raw(&mut self, _: &[u8]) -> Result<Vec<u8>, firmalab_harness::transport::TransportError> {
        Err(firmalab_harness::transport::TransportError::Other("no transport".into()))
    }
    fn atr(&self) -> Vec<u8> {
        vec![]
    }
    fn name(&self) -> String {
        String::new()
    }
    fn reset(&mut self) -> Result<(), firmalab_harness::transport::TransportError> {
        Ok(())
    }
}

/// `firmalab demo`: the first command a newcomer runs.
pub fn demo(dir: Option<PathBuf>) -> Result<(), String> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("firmalab-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let now = REFERENCE_DATE;
    let mut cards = vec![];
    for name in ["cns-renewable", "oberthur-renewable", "cns-pin-blocked"] {
        let image = firmalab_harness::fixtures::builtin(name)?;
        let path = dir.join(format!("{name}.json"));
        image.save(&path).map_err(|e| e.to_string())?;
        cards.push(path);
    }
    let ca = firmalab_harness::fixtures::builtin_ca()?;
    let ra = dir.join("ra.json");
    let mut bo = Store::open(&ra)?;
    let path = |i: usize| cards[i].display().to_string();
    let open = |i: usize| open_card(&path(i), Some(7));
    println!("firmalab demo: three virtual cards in {} (reference date {now})\n", dir.display());
    for (i, (email, mobile)) in [
        ("mario.rossi@example.it", "+393330000001"),
        ("giulia.bianchi@example.it", "+393330000002"),
        ("luca.verdi@example.it", "+393330000003"),
    ]
    .iter()
    .enumerate()
    {
        let mut c = client::open(open(i)?).map_err(|e| e.to_string())?;
        println!("{}", renewal::enroll(c.as_mut(), &mut bo, "CDRL-ROMA-01", email, mobile, now)?);
    }
    let mut printer = print_event(false);
    let banner = |t: &str| println!("\n== {t}");
    banner("diagnostic of the CNS card (firmalab flow diagnostic)");
    let r = diagnostic::run(
        Runner::open(open(0)?, "diagnostic", now, &mut printer)?,
        &bo.data,
        &Policy::default(),
        Some("12345678"),
    );
    println!("{}", report::outcome_line(&r));
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
    for (i, label, email, mobile) in [
        (0, "CNS", "mario.rossi@example.it", "+393330000001"),
        (1, "Oberthur", "giulia.bianchi@example.it", "+393330000002"),
    ] {
        banner(&format!("renewal of the {label} card (firmalab flow renewal)"));
        let r =
            renewal::run(Runner::open(open(i)?, "renewal", now, &mut printer)?, &ca, &mut bo, &options(email, mobile));
        println!("{}", report::outcome_line(&r));
        if let Some(p) = r.details["practice"].as_str() {
            practices.push(p.to_owned());
        }
    }
    banner("the CDRL authorises after payment (firmalab ra authorize)");
    for p in &practices {
        println!("{}", renewal::authorize(&mut bo, p, now)?);
    }
    banner("PIN unblock with the PUK on the blocked card (firmalab flow pin-unblock)");
    let r = pin::unblock(Runner::open(open(2)?, "pin-unblock", now, &mut printer)?, "87654321", "13572468", "13572468");
    println!("{}", report::outcome_line(&r));
    banner("reset of the renewed CNS card with PKI Manager (firmalab flow reset)");
    let r = reset::reset(Runner::open(open(0)?, "reset", now, &mut printer)?, "12345678", &mut bo);
    println!("{}", report::outcome_line(&r));
    println!("\ncards, back office (ra.json) and the signed renewal forms are in {}", dir.display());
    println!("look at them with: firmalab image show {}   firmalab ra show --ra {}", path(1), ra.display());
    Ok(())
}

/// `firmalab scenario`'s options.
pub struct ScenarioArgs {
    pub files: Vec<PathBuf>,
    pub card: String,
    pub seed: Option<u64>,
    pub virtual_card: bool,
    pub accept_secret_risk: bool,
    pub allow_last_try: bool,
    pub dry_run: bool,
    pub confirm_serial: Option<String>,
}

/// `firmalab scenario FILE… --card X`: exit 0 when every step of every file passes (or a dry
/// run stopped before the first change).
pub fn scenario(a: ScenarioArgs) -> Result<u8, String> {
    use firmalab_harness::scenario::{Options, Scenario, run_with};
    use firmalab_harness::transcript::Recorder;
    let mut all = true;
    let reader = a.card.trim_start_matches("reader:").to_owned();
    for f in &a.files {
        let s = Scenario::load(f)?;
        println!("scenario {} — {}", f.display(), s.name);
        let g = open_guarded(&a.card, a.seed, firmalab_emulator::timing::Timing::None, a.dry_run)?;
        let profile =
            firmalab_harness::wire::atr::recognise(&g.transport.atr()).profile.map_or("unknown", |p| p.name());
        let recorder = Recorder::new(g.transport, "scenario", profile);
        let recording = recorder.recording.clone();
        let mut used: Vec<(String, String)> = vec![];
        for (name, value) in s.secrets() {
            if used.iter().any(|(_, v)| v == value) {
                continue;
            }
            let n = used.iter().filter(|(k, _)| k.starts_with(name)).count();
            let key = if n == 0 { name.to_owned() } else { format!("{name}{}", n + 1) };
            recording.borrow_mut().secret(&key, value);
            used.push((key, value.to_owned()));
        }
        let o = Options {
            policy: SecretPolicy { allow_last_try: a.allow_last_try, virtual_card: a.virtual_card },
            raw_secrets: !in_reader(&a.card) || a.virtual_card || a.accept_secret_risk,
            consent: g.consent.map(|c| (c, serial_confirmer(a.confirm_serial.clone(), &reader))),
        };
        let results = run_with(&s, Box::new(recorder), o)?;
        for r in &results {
            let mark = if r.dry_run {
                "-- "
            } else if r.passed {
                "ok "
            } else {
                "NO "
            };
            println!("  {mark} {:<40} {}", r.name, r.detail);
        }
        if results.iter().any(|r| r.dry_run) {
            println!("  APDUs of the dry run (secrets as placeholders):");
            for line in recording.borrow().transcript.render().lines().skip(1) {
                println!("    {line}");
            }
            println!(
                "  dry run: stopped before the first command that changes the card; nothing that changes it was sent"
            );
            continue;
        }
        let passed = results.len() == s.steps.len() && results.iter().all(|r| r.passed);
        println!("  {}", if passed { "passed" } else { "FAILED" });
        all &= passed;
    }
    Ok(if all { 0 } else { 1 })
}

/// `firmalab bench`: one table, every figure next to its yardstick measured in the same run.
pub fn bench(seconds: u64, reader: Option<String>, secrets_allowed: bool) -> Result<(), String> {
    use firmalab_harness::bench::{Alg, SigningCard, apdu_ns, backends, bare_signer, openssl_speed, rate};
    let time = std::time::Duration::from_secs(seconds.max(1));
    eprintln!("measuring ({}s per figure)…", time.as_secs());
    let (ossl_rsa, ossl_ec) = openssl_speed(u32::try_from(seconds.max(1)).unwrap_or(1))?;
    println!("{:<58} {:>12} {:>16}", "", "per second", "vs openssl speed");
    println!("{:<58} {:>12.0} {:>16}", "openssl speed rsa2048 (sign)", ossl_rsa, "1.00×");
    println!("{:<58} {:>12.0} {:>16}", "openssl speed ecdsap256 (sign)", ossl_ec, "1.00×");
    for (backend, name) in backends() {
        for (alg, label, yard) in [(Alg::Rsa2048, "RSA-2048", ossl_rsa), (Alg::P256, "ECDSA P-256", ossl_ec)] {
            let mut card = SigningCard::new(alg, backend)?;
            let through = rate(|| card.sign(), time)?;
            let bare = rate(bare_signer(alg, backend)?, time)?;
            println!("{:<58} {:>12.0} {:>15.2}×", format!("{label} {name}, bare crypto call"), bare, bare / yard);
            println!(
                "{:<58} {:>12.0} {:>15.2}×   (APDU path / bare: {:.2}×)",
                format!("{label} {name}, VERIFY+MSE+PSO through the card"),
                through,
                through / yard,
                through / bare
            );
        }
    }
    for (what, ns) in apdu_ns(time)? {
        println!("{:<58} {:>12.0} {:>16}", format!("APDU {what} (in-process, {ns:.0} ns each)"), 1e9 / ns, "");
    }
    match reader {
        Some(r) => {
            for line in pcsc_round_trip(&r, secrets_allowed)? {
                println!("{:<58} {line}", "PC/SC round trip");
            }
        }
        None => {
            println!("{:<58} not measured: give --reader \"Virtual PCD 00 00\" with a card running", "PC/SC round trip")
        }
    }
    Ok(())
}

#[cfg(feature = "pcsc")]
fn pcsc_round_trip(reader: &str, secrets_allowed: bool) -> Result<Vec<String>, String> {
    use firmalab_harness::bench::{PCSC_READ_SEQUENCE, pcsc_signature_sequence};
    use firmalab_harness::console::time_on;
    use firmalab_harness::transport::pcsc::PcscTransport;
    let mut t = PcscTransport::connect(reader, std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let mut out = vec![];
    let short = time_on(&mut t, &["00A4000C023F00".into()], 1000)?;
    out.push(format!("SELECT median {:.0} µs", short.median_us));
    let reads: Vec<String> = PCSC_READ_SEQUENCE.iter().map(|s| s.to_string()).collect();
    let read = time_on(&mut t, &reads, 100)?;
    out.push(format!(
        "read sequence (SELECT, MSE SET, SELECT, READ BINARY 255; no PIN) median {:.0} µs per APDU",
        read.median_us
    ));
    if !secrets_allowed {
        out.push(
            "signature sequence not measured: it sends a PIN, and on a real token a wrong one costs a try (pass --virtual-card for firmalab's card, or --accept-secret-risk)".into(),
        );
        return Ok(out);
    }
    let sign = pcsc_signature_sequence(&mut t)?;
    let sign = time_on(&mut t, &sign, 50)?;
    out.push(format!("signature sequence (4 APDUs, PIN 12345678) median {:.0} µs per APDU", sign.median_us));
    Ok(out)
}

#[cfg(not(feature = "pcsc"))]
fn pcsc_round_trip(_reader: &str, _secrets_allowed: bool) -> Result<Vec<String>, String> {
    Err("PC/SC needs `--features pcsc`".into())
}
