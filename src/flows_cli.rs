//! `firmalab flow`, `ra`, `replay` and `demo`: argument handling and printing around the
//! harness's flows.

use clap::{Args, ValueEnum};
use firmalab_emulator::CardRng;
use firmalab_harness::backoffice::{DEFAULT_CDRL, DEFAULT_PATH, Store};
use firmalab_harness::ca::ExpiryRule;
use firmalab_harness::client;
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::Policy;
use firmalab_harness::flows::renewal::{self, RenewalOptions};
use firmalab_harness::flows::{Event, FlowReport, Runner, diagnostic, pin, reset};
use firmalab_harness::pki::TestCa;
use firmalab_harness::report;
use firmalab_harness::transcript::Transcript;
use firmalab_harness::transport::Transport;
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
    /// The PIN (asked, hidden, when missing and a terminal is attached).
    #[arg(long)]
    pub pin: Option<String>,
    #[arg(long)]
    pub puk: Option<String>,
    #[arg(long)]
    pub new_pin: Option<String>,
    #[arg(long)]
    pub new_puk: Option<String>,
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

/// A secret from its flag, or asked without echo on a terminal.
fn secret(flag: &Option<String>, name: &str, prompt: &str) -> Result<String, String> {
    if let Some(v) = flag {
        return Ok(v.clone());
    }
    if !interactive() {
        return Err(format!("--{name} is required (no terminal to ask on)"));
    }
    rpassword::prompt_password(prompt).map_err(|e| format!("reading the {name}: {e}"))
}

/// A new secret: from its flag, or asked twice (new, repeat).
fn new_secret(flag: &Option<String>, name: &str, what: &str) -> Result<(String, String), String> {
    if let Some(v) = flag {
        return Ok((v.clone(), v.clone()));
    }
    let new = secret(&None, name, &format!("New {what}: "))?;
    let repeat = secret(&None, name, &format!("Repeat the new {what}: "))?;
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
        firmalab_emulator::storage::write_private(path, report::junit(std::slice::from_ref(report)).as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
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

fn run_flow(a: &FlowArgs) -> Result<u8, Trouble> {
    use Trouble::{Card, Usage};
    let open = |spec: &str| open_card_timed(spec, a.seed, a.timing).map_err(Card);
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
    // Ask for everything before touching the card.
    let json = a.json;
    let mut printer = print_event(json);
    let report = match a.name {
        FlowName::Diagnostic => {
            let bo = Store::open_read_only(&a.ra).map_err(Usage)?;
            let policy = Policy { cdrl: a.cdrl.clone(), ocsp: a.ocsp.clone(), ..Policy::default() };
            let r = Runner::open(open(&spec)?, name, now, &mut printer).map_err(Card)?;
            diagnostic::run(r, &bo.data, &policy, a.pin.as_deref())
        }
        FlowName::PinChange => {
            let current = secret(&a.pin, "pin", "Current PIN: ").map_err(Usage)?;
            let (new, repeat) = new_secret(&a.new_pin, "new-pin", "PIN").map_err(Usage)?;
            pin::change(Runner::open(open(&spec)?, name, now, &mut printer).map_err(Card)?, &current, &new, &repeat)
        }
        FlowName::PinUnblock => {
            let puk = secret(&a.puk, "puk", "PUK: ").map_err(Usage)?;
            let (new, repeat) = new_secret(&a.new_pin, "new-pin", "PIN").map_err(Usage)?;
            pin::unblock(Runner::open(open(&spec)?, name, now, &mut printer).map_err(Card)?, &puk, &new, &repeat)
        }
        FlowName::PukChange => {
            let puk = secret(&a.puk, "puk", "Current PUK: ").map_err(Usage)?;
            let (new, repeat) = new_secret(&a.new_puk, "new-puk", "PUK").map_err(Usage)?;
            pin::change_puk(Runner::open(open(&spec)?, name, now, &mut printer).map_err(Card)?, &puk, &new, &repeat)
        }
        FlowName::Reset => {
            let pin = secret(&a.pin, "pin", "PIN (12345 after a failed issuance): ").map_err(Usage)?;
            let mut bo = Store::open(&a.ra).map_err(Usage)?;
            reset::reset(Runner::open(open(&spec)?, name, now, &mut printer).map_err(Card)?, &pin, &mut bo)
        }
        FlowName::Renewal => {
            let ca = TestCa::load(&a.ca).map_err(Usage)?;
            let cdrl = a.cdrl.clone().unwrap_or_else(|| DEFAULT_CDRL.to_owned());
            let mut bo = Store::open(&a.ra).map_err(Usage)?;
            let acknowledge = confirm(
                a.yes,
                "The renewal deletes the decryption key: files encrypted for it can no longer be opened. Continue?",
            );
            let pin = secret(&a.pin, "pin", "PIN: ").map_err(Usage)?;
            let email = text(&a.email, "email", "Email: ").map_err(Usage)?;
            let mobile = text(&a.mobile, "mobile", "Mobile: ").map_err(Usage)?;
            let holder_ok = !a.holder_data_wrong && confirm(a.yes, "Is the holder data in the certificate correct?");
            let contracts = confirm(a.yes, "Do you accept the contract conditions?");
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
            renewal::run(Runner::open(open(&spec)?, name, now, &mut printer).map_err(Card)?, &ca, &mut bo, &o)
        }
    };
    finish(&report, a).map_err(Usage)
}

/// `firmalab replay`.
pub fn replay(file: &Path, card: &str, secrets: &[String], seed: Option<u64>) -> Result<u8, String> {
    let t = Transcript::load(file)?;
    let secrets: Vec<(String, String)> = secrets
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("--secret {s:?}: expected NAME=VALUE"))
        })
        .collect::<Result<_, _>>()?;
    let mut transport = open_card(card, seed)?;
    match firmalab_harness::transcript::replay(&t, transport.as_mut(), &secrets)? {
        Ok(n) => {
            println!(
                "replay of {} ({} on {}): {n} exchanges, every response as recorded (masks: signatures, challenges, generated keys by length)",
                file.display(),
                t.flow,
                t.profile
            );
            Ok(0)
        }
        Err(d) => {
            println!("replay of {}: first divergence in step {} at exchange {}", file.display(), d.step, d.index + 1);
            println!("  > {}", d.command);
            println!("  expected < {}", d.expected);
            println!("  got      < {}", d.got);
            Ok(1)
        }
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

/// `firmalab scenario FILE… --card X`: exit 0 when every step of every file passes.
pub fn scenario(files: &[PathBuf], card: &str, seed: Option<u64>) -> Result<u8, String> {
    use firmalab_harness::scenario::{Scenario, run};
    let mut all = true;
    for f in files {
        let s = Scenario::load(f)?;
        println!("scenario {} — {}", f.display(), s.name);
        let results = run(&s, open_card(card, seed)?)?;
        for r in &results {
            println!("  {} {:<40} {}", if r.passed { "ok " } else { "NO " }, r.name, r.detail);
        }
        let passed = results.len() == s.steps.len() && results.iter().all(|r| r.passed);
        println!("  {}", if passed { "passed" } else { "FAILED" });
        all &= passed;
    }
    Ok(if all { 0 } else { 1 })
}

/// `firmalab bench`: one table, every figure next to its yardstick measured in the same run.
pub fn bench(seconds: u64, reader: Option<String>) -> Result<(), String> {
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
        Some(r) => println!("{:<58} {}", "PC/SC round trip", pcsc_round_trip(&r)?),
        None => {
            println!("{:<58} not measured: give --reader \"Virtual PCD 00 00\" with a card running", "PC/SC round trip")
        }
    }
    Ok(())
}

#[cfg(feature = "pcsc")]
fn pcsc_round_trip(reader: &str) -> Result<String, String> {
    use firmalab_harness::transport::pcsc::PcscTransport;
    let mut t = PcscTransport::connect(reader, std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let short = firmalab_harness::console::time_on(&mut t, &["00A4000C023F00".into()], 1000)?;
    let sign = firmalab_harness::console::time_on(
        &mut t,
        &[
            "00A4080C0414008110".into(),
            "0020009A083132333435363738".into(),
            "0022F1B603830110".into(),
            firmalab_emulator::hex::encode(&firmalab_harness::bench::rsa_pso_command()),
        ],
        50,
    )?;
    Ok(format!(
        "SELECT median {:.0} µs; signature sequence (4 APDUs) median {:.0} µs per APDU",
        short.median_us, sign.median_us
    ))
}

#[cfg(not(feature = "pcsc"))]
fn pcsc_round_trip(_reader: &str) -> Result<String, String> {
    Err("PC/SC needs `--features pcsc`".into())
}
