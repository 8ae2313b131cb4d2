//! What the benchmarks measure, shared by `firmalab bench` and the criterion benches: a card
//! ready to sign through the full APDU path, the bare crypto call on the same key, per-APDU
//! overhead, and `openssl speed` as the machine's yardstick, measured in the same run.

use crate::fixtures::{FixtureError, builtin};
use crate::transport::TransportError;
use firmalab_emulator::keys::{Backend, LoadedKey};
use firmalab_emulator::{Card, CardRng};
use std::time::{Duration, Instant};

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    /// The card refused a step of its set-up (`{0}` says which).
    #[error("{0}")]
    Setup(&'static str),
    /// The key could not be loaded for the bare crypto call (`{0}`: the status word).
    #[error("{0}")]
    Key(String),
    #[error("an operation failed")]
    OperationFailed,
    #[error("openssl speed: {0}")]
    OpensslSpeed(std::io::Error),
    #[error("unexpected openssl speed output:\n{0}")]
    OpensslOutput(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    /// The card refused a command of the PC/SC signature sequence.
    #[error(
        "the card answered {sw} ({}) to {command}: the signature sequence is not timed (nothing more was sent)",
        sw.meaning()
    )]
    SequenceRefused { sw: crate::wire::Sw, command: String },
    #[error("a response without a status word")]
    NoStatusWord,
    /// Built without the `pcsc` feature.
    #[error("PC/SC needs `--features pcsc`")]
    NoPcsc,
}

/// A constant command APDU written in hex.
fn apdu(hexed: &str) -> Vec<u8> {
    crate::wire::hex::decode(hexed).unwrap_or_default()
}

/// The signature algorithms measured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Alg {
    Rsa2048,
    P256,
}

/// A CNS card ready to sign: each signature is VERIFY (the key is always-authenticate for
/// RSA), MSE SET, PSO COMPUTE DIGITAL SIGNATURE, as a middleware sends them.
pub struct SigningCard {
    pub card: Card,
    commands: Vec<Vec<u8>>,
}

impl SigningCard {
    pub fn new(alg: Alg, backend: Backend) -> Result<Self, BenchError> {
        let mut image = builtin("cns-renewable")?;
        image.capabilities.p256 = alg == Alg::P256;
        if alg == Alg::P256 {
            // GENERATE replaces a key only when no certificate is installed for it (6985).
            let dir = firmalab_emulator::fs::lookup_mut(&mut image.mf, &[0x3F00, 0x1100]);
            if let Some(children) = dir.and_then(firmalab_emulator::fs::FileNode::children_mut) {
                children.retain(|f| f.fid.0 != 0x1101);
            }
        }
        let mut card = Card::new(image, CardRng::insecure_deterministic(9));
        card.set_backend(backend);
        card.power_on();
        let ok = |r: &[u8]| r.ends_with(&[0x90, 0x00]) || r.get(r.len().saturating_sub(2)) == Some(&0x61);
        let commands = match alg {
            Alg::Rsa2048 => {
                if !ok(card.transmit(&apdu("00A4080C0414008110"))) {
                    return Err(BenchError::Setup("select of the key DF failed"));
                }
                vec![apdu("0020009A083132333435363738"), apdu("0022F1B603830110"), rsa_pso_command()]
            }
            Alg::P256 => {
                if !ok(card.transmit(&apdu("00200090083132333435363738")))
                    || !ok(card.transmit(&apdu("004600010A06082A8648CE3D03010700")))
                {
                    return Err(BenchError::Setup("P-256 key generation failed"));
                }
                let mut pso = apdu("002A9E9A20");
                pso.extend([0x5Au8; 32]);
                pso.push(0);
                vec![apdu("00200090083132333435363738"), apdu("0022F1B603830101"), pso]
            }
        };
        let mut s = SigningCard { card, commands };
        if !s.sign() {
            return Err(BenchError::Setup("the card did not sign"));
        }
        Ok(s)
    }

    /// One signature through the APDU path; whether every answer was 9000.
    pub fn sign(&mut self) -> bool {
        let mut all = true;
        for c in &self.commands {
            all &= self.card.transmit(c).ends_with(&[0x90, 0x00]);
        }
        all
    }
}

/// The bare crypto call on the same key the card uses.
pub fn bare_signer(alg: Alg, backend: Backend) -> Result<Box<dyn FnMut() -> bool>, BenchError> {
    let sc = SigningCard::new(alg, backend)?;
    let slot = if alg == Alg::Rsa2048 { 0x10 } else { 0x01 };
    let material = sc
        .card
        .image()
        .keys
        .iter()
        .find(|k| k.reference.0 == slot)
        .and_then(|k| k.material.clone())
        .ok_or(BenchError::Setup("no key"))?;
    let block: Vec<u8> = sc.commands[2][7..7 + 256.min(sc.commands[2].len().saturating_sub(9))].to_vec();
    let hash = [0x5Au8; 32];
    match backend {
        Backend::RustCrypto => {
            let key = material.load().map_err(|sw| BenchError::Key(sw.to_string()))?;
            let mut rng = CardRng::insecure_deterministic(1);
            Ok(match (alg, key) {
                (Alg::Rsa2048, k @ LoadedKey::Rsa(_)) => Box::new(move || k.rsa_raw(&block, &mut rng).is_ok()),
                (_, k) => Box::new(move || k.ecdsa_sign_prehash(&hash).is_ok()),
            })
        }
        #[cfg(feature = "openssl")]
        Backend::OpenSsl => {
            let key =
                firmalab_emulator::fast::FastKey::load(&material).map_err(|sw| BenchError::Key(sw.to_string()))?;
            Ok(match alg {
                Alg::Rsa2048 => Box::new(move || key.rsa_raw(&block).is_ok()),
                Alg::P256 => Box::new(move || key.ecdsa_sign_prehash(&hash).is_ok()),
            })
        }
    }
}

/// Operations per second of `f` over about `time`.
pub fn rate(mut f: impl FnMut() -> bool, time: Duration) -> Result<f64, BenchError> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time || n < 3 {
        if !f() {
            return Err(BenchError::OperationFailed);
        }
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Nanoseconds per APDU of a non-crypto command sequence (SELECT, READ BINARY of 256 bytes,
/// VERIFY status query), on the in-process card.
pub fn apdu_ns(time: Duration) -> Result<Vec<(String, f64)>, BenchError> {
    let mut card = Card::new(builtin("cns-renewable")?, CardRng::insecure_deterministic(3));
    card.power_on();
    let mut out = vec![];
    for (name, cmds) in [
        ("SELECT by path", vec!["00A4080C0411001101"]),
        ("READ BINARY 256", vec!["00B0000000"]),
        ("VERIFY status query", vec!["00200090"]),
    ] {
        let cmds: Vec<Vec<u8>> = cmds.iter().map(|c| apdu(c)).collect();
        let ops = rate(|| cmds.iter().all(|c| card.transmit(c).len() >= 2), time)?;
        out.push((name.to_owned(), 1e9 / ops));
    }
    Ok(out)
}

/// `openssl speed` on this machine now: (RSA-2048 signs/s, ECDSA P-256 signs/s); with
/// `processes` > 1, `openssl speed -multi N`, the total of N processes signing at once.
/// `-elapsed`: per second of wall-clock time, as firmalab's own figures are (by default
/// `openssl speed` divides by its CPU time, which on a busy machine is a fraction of the
/// time that passed, and so reports up to twice what a caller gets).
pub fn openssl_speed(seconds: u32, processes: usize) -> Result<(f64, f64), BenchError> {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["speed", "-elapsed", "-seconds", &seconds.to_string()]);
    if processes > 1 {
        cmd.args(["-multi", &processes.to_string()]);
    }
    let out = cmd.args(["rsa2048", "ecdsap256"]).output().map_err(BenchError::OpensslSpeed)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str, col: usize| -> Option<f64> {
        text.lines().find(|l| l.trim_start().starts_with(prefix))?.split_whitespace().nth(col)?.parse().ok()
    };
    // "rsa 2048 bits 0.000609s 0.000018s 1642.0 56298.3" / "256 bits ecdsa (nistp256) 0.0000s 0.0001s 36432.1 11904.2"
    let rsa = field("rsa 2048", 5).ok_or_else(|| BenchError::OpensslOutput(text.to_string()))?;
    let ec = text
        .lines()
        .find(|l| l.contains("ecdsa (nistp256)"))
        .and_then(|l| l.split_whitespace().nth(6))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| BenchError::OpensslOutput(text.to_string()))?;
    Ok((rsa, ec))
}

/// PSO COMPUTE DIGITAL SIGNATURE (extended APDU) on the PKCS#1 block of a fixed SHA-256
/// digest, as OpenSC pads it for the CNS.
pub fn rsa_pso_command() -> Vec<u8> {
    let mut di = crate::client::SHA256_DIGEST_INFO.to_vec();
    di.extend_from_slice(&[0x5Au8; 32]);
    let mut block = vec![0x00, 0x01];
    block.resize(256 - di.len() - 1, 0xFF);
    block.push(0);
    block.extend(di);
    let mut pso = vec![0x00, 0x2A, 0x9E, 0x9A, 0x00, 0x01, 0x00];
    pso.extend(block);
    pso.extend([0, 0]);
    pso
}

/// Every backend compiled in.
pub fn backends() -> Vec<(Backend, &'static str)> {
    vec![
        (Backend::RustCrypto, "rustcrypto"),
        #[cfg(feature = "openssl")]
        (Backend::OpenSsl, "openssl"),
    ]
}

/// Read-only APDUs timed over PC/SC on any card (no PIN): SELECT the CNS key DF, MSE SET,
/// SELECT the signature certificate, READ BINARY 255 bytes.
pub const PCSC_READ_SEQUENCE: [&str; 4] =
    ["00A4080C0414008110", "0022F1B603830110", "00A4080C0414009010", "00B00000FF"];

/// The CNS signature sequence (SELECT key DF, VERIFY `12345678`, MSE SET, PSO) as hex, after
/// sending it once and checking every answer: a PIN the card refuses is sent once, never
/// dozens of times. Only for cards the user declared virtual or whose risk they accepted.
pub fn pcsc_signature_sequence(t: &mut dyn crate::transport::Transport) -> Result<Vec<String>, BenchError> {
    use crate::wire::Sw;
    let commands = vec![
        "00A4080C0414008110".to_owned(),
        "0020009A083132333435363738".to_owned(),
        "0022F1B603830110".to_owned(),
        crate::wire::hex::encode(&rsa_pso_command()),
    ];
    for c in &commands {
        let bytes = apdu(c);
        let r = t.transmit_raw(&bytes)?;
        match Sw::of_response(&r) {
            Some(Sw::Ok | Sw::MoreData(_)) => {}
            Some(sw) => {
                return Err(BenchError::SequenceRefused { sw, command: crate::wire::apdu::describe(&bytes) });
            }
            None => return Err(BenchError::NoStatusWord),
        }
    }
    Ok(commands)
}

/// The median and the spread (min–max) of a figure over the rounds of one run.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many rounds.
    pub n: usize,
}

impl Spread {
    /// Of the values measured (NaN for none).
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Spread { median: f64::NAN, min: f64::NAN, max: f64::NAN, n };
        }
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Spread { median, min: v[0], max: v[n - 1], n }
    }

    /// Whether every round is below (`Less`) or above (`Greater`) `x`; `Equal` when the spread
    /// includes it, so the run does not tell the two apart.
    pub fn against(&self, x: f64) -> std::cmp::Ordering {
        if self.max < x {
            std::cmp::Ordering::Less
        } else if self.min > x {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }
}

/// A ratio with its spread as a column: `1.02× (0.95–1.10)`.
pub fn ratio_text(r: &Spread) -> String {
    format!("{:.2}× ({:.2}–{:.2})", r.median, r.min, r.max)
}

/// What a ratio of two rates measured in the same rounds supports, and nothing more: a
/// difference only when every round agrees on its side of 1.
pub fn verdict(r: &Spread, slower: &str, faster: &str) -> String {
    match r.against(1.0) {
        std::cmp::Ordering::Equal => "no difference resolved: the spread includes 1.00×".to_owned(),
        std::cmp::Ordering::Less => format!("{slower} in every round (median {:.0} % less)", (1.0 - r.median) * 100.0),
        std::cmp::Ordering::Greater => {
            format!("{faster} in every round (median {:.0} % more)", (r.median - 1.0) * 100.0)
        }
    }
}

/// Round trips through a transport: each command sent `n` times after `n / 10` warm-up
/// rounds, every exchange timed. The one measurement of PC/SC round trips in firmalab
/// (`firmalab bench --reader`, `firmalab apdu --reader --repeat`).
#[derive(Clone, Debug, PartialEq)]
pub struct RoundTrips {
    /// Exchanges timed.
    pub samples: usize,
    pub median_us: f64,
    pub p10_us: f64,
    pub p90_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

impl std::fmt::Display for RoundTrips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} round trips: median {:.1} µs (p10 {:.1}, p90 {:.1}, min {:.1}, max {:.1})",
            self.samples, self.median_us, self.p10_us, self.p90_us, self.min_us, self.max_us
        )
    }
}

/// Sends every command `n` times (after `n / 10`, at least one, warm-up rounds) and times each
/// exchange, the card's answer included.
pub fn round_trips(
    t: &mut dyn crate::transport::Transport,
    commands: &[Vec<u8>],
    n: usize,
) -> Result<RoundTrips, BenchError> {
    let warmup = (n / 10).max(1);
    let mut samples = Vec::with_capacity(n * commands.len());
    for round in 0..warmup + n {
        for c in commands {
            let start = Instant::now();
            t.transmit_raw(c)?;
            if round >= warmup {
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    if samples.is_empty() {
        return Err(BenchError::Setup("nothing to time"));
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(RoundTrips {
        samples: samples.len(),
        median_us: at(0.5),
        p10_us: at(0.1),
        p90_us: at(0.9),
        min_us: samples[0],
        max_us: samples[samples.len() - 1],
    })
}

/// `firmalab apdu --reader R --repeat N`: the APDUs (hex) sent `n` times to the card in
/// `reader`, measured by [`round_trips`]; one line.
#[cfg(feature = "pcsc")]
pub fn repeat_on_reader(reader: &str, apdus: &[String], n: usize) -> Result<String, BenchError> {
    use crate::transport::Transport;
    let commands = apdus.iter().map(|a| crate::console::parse_apdu_arg(a)).collect::<Result<Vec<_>, _>>()?;
    let mut t = crate::transport::pcsc::PcscTransport::connect(reader, Duration::from_secs(5))?;
    Ok(format!("{} through {}", round_trips(&mut t, &commands, n)?, t.name()))
}

/// `firmalab apdu --reader --repeat` needs the `pcsc` feature.
#[cfg(not(feature = "pcsc"))]
pub fn repeat_on_reader(_reader: &str, _apdus: &[String], _n: usize) -> Result<String, BenchError> {
    Err(BenchError::NoPcsc)
}

/// What `firmalab bench` measures.
#[derive(Clone, Debug)]
pub struct TableOptions {
    /// Seconds per figure in each round (at least 1).
    pub seconds: u64,
    /// Rounds (at least 1; 5 by default): every figure is measured once per round, the
    /// figures of a round one after the other, the order of the bare call and the card
    /// alternating from round to round.
    pub rounds: usize,
    /// Also time the PC/SC round trip to the card in this reader.
    pub reader: Option<String>,
    /// The zero-work card (`firmalab card --echo`) in this reader, measured in the same
    /// rounds as the floor of the PC/SC round trip.
    pub echo_reader: Option<String>,
    /// The reader's card may receive the signature sequence, which sends the PIN 12345678
    /// (`--virtual-card`, `--accept-secret-risk`).
    pub secrets_allowed: bool,
    /// Also N cards signing at once on N threads, next to `openssl speed -multi N` (1: not
    /// measured).
    pub threads: usize,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions { seconds: 1, rounds: 5, reader: None, echo_reader: None, secrets_allowed: false, threads: 1 }
    }
}

/// The machine a run was made on, for the record: CPU model and count, OS, OpenSSL, load.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|o| o.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
        .unwrap_or_else(|| std::env::consts::OS.into());
    let openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cpus} CPUs, {os}, {openssl}; load average {}", load())
}

/// The 1, 5 and 15-minute load averages (`/proc/loadavg`).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// One row of the table: its rate in each round.
struct Row {
    label: String,
    rates: Vec<f64>,
    /// The `openssl speed` row it is compared to (index), if any.
    yardstick: Option<usize>,
}

/// The PC/SC figures of each round: median microseconds per APDU.
#[derive(Default)]
struct PcscRounds {
    echo: Vec<f64>,
    select: Vec<f64>,
    read: Vec<f64>,
    sign: Vec<f64>,
}

/// `firmalab bench`: every figure measured once per round, in `o.rounds` rounds, next to
/// `openssl speed` measured in the same rounds; each row and each ratio shown as its median
/// and spread (min–max) over the rounds, and a difference claimed only when every round
/// agrees. `progress` hears each round as it starts; each line of the table goes to `line`.
pub fn table(o: &TableOptions, progress: &mut dyn FnMut(&str), line: &mut dyn FnMut(String)) -> Result<(), BenchError> {
    let seconds = o.seconds.max(1);
    let time = Duration::from_secs(seconds);
    let rounds = o.rounds.max(1);
    let threads = o.threads.max(1);
    let mut rows: Vec<Row> = vec![
        Row { label: "openssl speed -elapsed rsa2048 (sign)".into(), rates: vec![], yardstick: None },
        Row { label: "openssl speed -elapsed ecdsap256 (sign)".into(), rates: vec![], yardstick: None },
    ];
    // (backend, alg, bare row, card row)
    let mut pairs = vec![];
    for (backend, name) in backends() {
        for (alg, label, yard) in [(Alg::Rsa2048, "RSA-2048", 0), (Alg::P256, "ECDSA P-256", 1)] {
            rows.push(Row { label: format!("{label} {name}, bare crypto call"), rates: vec![], yardstick: Some(yard) });
            rows.push(Row {
                label: format!("{label} {name}, VERIFY+MSE+PSO through the card"),
                rates: vec![],
                yardstick: Some(yard),
            });
            pairs.push((backend, alg, rows.len() - 2, rows.len() - 1));
        }
    }
    // N cards on N threads, with the last backend (OpenSSL when compiled in), next to -multi N.
    let mut parallel = vec![];
    if threads > 1 {
        let (backend, name) = *backends().last().ok_or(BenchError::Setup("no backend"))?;
        let first = rows.len();
        rows.push(Row { label: format!("openssl speed -multi {threads} rsa2048"), rates: vec![], yardstick: None });
        rows.push(Row { label: format!("openssl speed -multi {threads} ecdsap256"), rates: vec![], yardstick: None });
        for (alg, label, yard) in [(Alg::Rsa2048, "RSA-2048", first), (Alg::P256, "ECDSA P-256", first + 1)] {
            rows.push(Row {
                label: format!("{label} {name}, {threads} cards on {threads} threads"),
                rates: vec![],
                yardstick: Some(yard),
            });
            let single = pairs.iter().find(|p| p.0 == backend && p.1 == alg).map_or(0, |p| p.3);
            parallel.push((backend, alg, rows.len() - 1, single));
        }
    }
    let mut apdu_rows: Vec<(String, Vec<f64>)> = vec![];
    let mut pcsc = PcscRounds::default();
    for round in 0..rounds {
        progress(&format!("round {}/{rounds}", round + 1));
        // First, so a card that refuses the signature sequence stops the run at once.
        if let Some(reader) = &o.reader {
            pcsc_round(reader, o.echo_reader.as_deref(), o.secrets_allowed, round, &mut pcsc)?;
        }
        let secs = u32::try_from(seconds).unwrap_or(1);
        let (rsa, ec) = openssl_speed(secs, 1)?;
        rows[0].rates.push(rsa);
        rows[1].rates.push(ec);
        for &(backend, alg, bare_row, card_row) in &pairs {
            let mut card = SigningCard::new(alg, backend)?;
            let bare = bare_signer(alg, backend)?;
            // Alternate the order, so a drift within the round does not favour one side.
            if round.is_multiple_of(2) {
                rows[bare_row].rates.push(rate(bare, time)?);
                rows[card_row].rates.push(rate(|| card.sign(), time)?);
            } else {
                rows[card_row].rates.push(rate(|| card.sign(), time)?);
                rows[bare_row].rates.push(rate(bare, time)?);
            }
        }
        if threads > 1 {
            let first = rows.len() - 4;
            let (rsa, ec) = openssl_speed(secs, threads)?;
            rows[first].rates.push(rsa);
            rows[first + 1].rates.push(ec);
            for &(backend, alg, row, _) in &parallel {
                rows[row].rates.push(parallel_rate(alg, backend, threads, time)?);
            }
        }
        for (i, (what, ns)) in apdu_ns(time / 3)?.into_iter().enumerate() {
            if apdu_rows.len() <= i {
                apdu_rows.push((what, vec![]));
            }
            apdu_rows[i].1.push(ns);
        }
    }
    let yard_of = |r: &Row| r.yardstick.map(|y| &rows[y].rates);
    let per_round = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
    line(format!(
        "{rounds} rounds, {seconds} s per figure per round, interleaved (openssl speed, bare call, through the card; bare/card order alternating)"
    ));
    line(String::new());
    line(format!(
        "{:<58} {:>10} {:>19} {:>28}",
        "signatures per second", "median", "min–max", "vs openssl speed, same round"
    ));
    for r in &rows {
        let s = Spread::of(&r.rates);
        let vs = match yard_of(r) {
            Some(y) => ratio_text(&Spread::of(&per_round(&r.rates, y))),
            None => String::new(),
        };
        line(format!("{:<58} {:>10.0} {:>19} {:>28}", r.label, s.median, format!("{:.0}–{:.0}", s.min, s.max), vs));
    }
    line(String::new());
    line(format!(
        "{:<58} {:>26}   what the spread supports",
        "through the card / bare call, same round", "median (min–max)"
    ));
    for &(_, _, bare_row, card_row) in &pairs {
        let r = Spread::of(&per_round(&rows[card_row].rates, &rows[bare_row].rates));
        let label = rows[card_row].label.replace(", VERIFY+MSE+PSO through the card", "");
        line(format!(
            "{:<58} {:>26}   {}",
            label,
            ratio_text(&r),
            verdict(&r, "the APDU path is slower", "the APDU path measured faster (noise: it does strictly more)")
        ));
    }
    for &(_, _, row, single) in &parallel {
        let r = Spread::of(&per_round(&rows[row].rates, &rows[single].rates));
        line(format!(
            "{:<58} {:>26}   scaling over {threads} threads",
            format!("{}: / 1 card", rows[row].label),
            ratio_text(&r)
        ));
    }
    if threads > 1 {
        let first = rows.len() - 4;
        for (multi, single) in [(first, 0), (first + 1, 1)] {
            let r = Spread::of(&per_round(&rows[multi].rates, &rows[single].rates));
            line(format!(
                "{:<58} {:>26}   scaling over {threads} processes",
                format!("{}: / 1 process", rows[multi].label),
                ratio_text(&r)
            ));
        }
    }
    line(String::new());
    line(format!("{:<58} {:>10} {:>19}", "in-process APDU, ns each (no crypto)", "median", "min–max"));
    for (what, ns) in &apdu_rows {
        let s = Spread::of(ns);
        line(format!("{:<58} {:>10.0} {:>19}", what, s.median, format!("{:.0}–{:.0}", s.min, s.max)));
    }
    line(String::new());
    match &o.reader {
        Some(reader) => pcsc_lines(reader, o.echo_reader.as_deref(), o.secrets_allowed, &pcsc, line),
        None => line(format!(
            "{:<58} not measured: give --reader \"Virtual PCD 00 00\" with a card running (and --echo-reader with `firmalab card --echo`)",
            "PC/SC round trip"
        )),
    }
    Ok(())
}

/// Signatures per second of `threads` cards signing at once, one per thread.
fn parallel_rate(alg: Alg, backend: Backend, threads: usize, time: Duration) -> Result<f64, BenchError> {
    let cards = (0..threads).map(|_| SigningCard::new(alg, backend)).collect::<Result<Vec<_>, _>>()?;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let workers: Vec<_> = cards
        .into_iter()
        .map(|mut card| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < time {
                    if !card.sign() {
                        return None;
                    }
                    n += 1;
                }
                Some((n, start.elapsed()))
            })
        })
        .collect();
    let mut total = 0.0;
    for w in workers {
        let (n, took) = w.join().ok().flatten().ok_or(BenchError::OperationFailed)?;
        total += n as f64 / took.as_secs_f64();
    }
    Ok(total)
}

/// One round of the PC/SC figures: SELECT on the card and on the echo card (order
/// alternating), the read sequence, and the signature sequence when allowed.
#[cfg(feature = "pcsc")]
fn pcsc_round(
    reader: &str,
    echo: Option<&str>,
    secrets_allowed: bool,
    round: usize,
    out: &mut PcscRounds,
) -> Result<(), BenchError> {
    use crate::transport::pcsc::PcscTransport;
    let select = vec![apdu("00A4000C023F00")];
    let mut card = PcscTransport::connect(reader, Duration::from_secs(5))?;
    let mut echo_t = match echo {
        Some(e) => Some(PcscTransport::connect(e, Duration::from_secs(5))?),
        None => None,
    };
    let mut on_echo = |out: &mut PcscRounds| -> Result<(), BenchError> {
        if let Some(t) = echo_t.as_mut() {
            out.echo.push(round_trips(t, &select, 500)?.median_us);
        }
        Ok(())
    };
    if round % 2 == 1 {
        on_echo(out)?;
    }
    out.select.push(round_trips(&mut card, &select, 500)?.median_us);
    if round.is_multiple_of(2) {
        on_echo(out)?;
    }
    let reads: Vec<Vec<u8>> = PCSC_READ_SEQUENCE.iter().map(|s| apdu(s)).collect();
    out.read.push(round_trips(&mut card, &reads, 50)?.median_us);
    if secrets_allowed {
        let sign: Vec<Vec<u8>> = pcsc_signature_sequence(&mut card)?.iter().map(|s| apdu(s)).collect();
        out.sign.push(round_trips(&mut card, &sign, 20)?.median_us);
    }
    Ok(())
}

#[cfg(not(feature = "pcsc"))]
fn pcsc_round(_: &str, _: Option<&str>, _: bool, _: usize, _: &mut PcscRounds) -> Result<(), BenchError> {
    Err(BenchError::NoPcsc)
}

fn pcsc_lines(reader: &str, echo: Option<&str>, secrets_allowed: bool, p: &PcscRounds, line: &mut dyn FnMut(String)) {
    let us = |v: &[f64]| {
        let s = Spread::of(v);
        format!("{:>10.1} {:>19}", s.median, format!("{:.1}–{:.1}", s.min, s.max))
    };
    line(format!("{:<58} {:>10} {:>19}", format!("PC/SC round trip, µs per APDU ({reader})"), "median", "min–max"));
    if let Some(e) = echo {
        line(format!("{:<58} {}", format!("echo card, SELECT (9000 at once; {e})"), us(&p.echo)));
    }
    line(format!("{:<58} {}", "firmalab card, SELECT", us(&p.select)));
    line(format!("{:<58} {}", "firmalab card, read sequence (4 APDUs, no PIN)", us(&p.read)));
    if secrets_allowed {
        line(format!("{:<58} {}", "firmalab card, signature sequence (4 APDUs, PIN 12345678)", us(&p.sign)));
    } else {
        line("signature sequence not measured: it sends a PIN, and on a real token a wrong one costs a try (pass --virtual-card for firmalab's card, or --accept-secret-risk)".into());
    }
    if echo.is_some() {
        let ratio: Vec<f64> = p.select.iter().zip(&p.echo).map(|(c, e)| c / e).collect();
        let diff: Vec<f64> = p.select.iter().zip(&p.echo).map(|(c, e)| c - e).collect();
        let r = Spread::of(&ratio);
        let d = Spread::of(&diff);
        line(format!(
            "{:<58} {:>26}   {:+.1} µs per APDU ({:+.1}–{:+.1}); {}",
            "firmalab SELECT / echo floor, same round",
            ratio_text(&r),
            d.median,
            d.min,
            d.max,
            verdict(&r, "the firmalab card is faster than the floor", "the card's own work is resolved")
        ));
    } else {
        line(
            "transport floor not measured: run `firmalab card --echo` in another reader and pass --echo-reader".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_median_and_the_extremes_of_the_rounds() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0, 4.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 10.0, 5));
        assert_eq!(Spread::of(&[1.0, 4.0]).median, 2.5);
        assert!(Spread::of(&[]).median.is_nan());
    }

    #[test]
    fn a_ratio_claims_a_difference_only_when_every_round_agrees() {
        let within = Spread::of(&[0.97, 1.04, 1.37]);
        assert_eq!(verdict(&within, "slower", "faster"), "no difference resolved: the spread includes 1.00×");
        let slower = Spread::of(&[0.80, 0.90, 0.95]);
        assert_eq!(verdict(&slower, "slower", "faster"), "slower in every round (median 10 % less)");
        let faster = Spread::of(&[1.2, 1.3, 1.5]);
        assert_eq!(verdict(&faster, "slower", "faster"), "faster in every round (median 30 % more)");
        assert_eq!(ratio_text(&within), "1.04× (0.97–1.37)");
    }

    #[test]
    fn round_trips_time_every_exchange_after_the_warm_up() {
        let mut t = crate::transport::in_process::InProcess::ephemeral(
            crate::fixtures::builtin("cns").unwrap_or_else(|e| unreachable!("{e}")),
            firmalab_emulator::CardRng::insecure_deterministic(1),
            "bench",
        );
        let r = round_trips(&mut t, &[apdu("00A4000C023F00"), apdu("00B0000010")], 40)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(r.samples, 80, "2 commands × 40 rounds, the 4 warm-up rounds left out");
        assert!(r.min_us <= r.p10_us && r.p10_us <= r.median_us && r.median_us <= r.p90_us && r.p90_us <= r.max_us);
    }
}
