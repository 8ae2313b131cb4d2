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

/// `openssl speed` on this machine now: (RSA-2048 signs/s, ECDSA P-256 signs/s).
pub fn openssl_speed(seconds: u32) -> Result<(f64, f64), BenchError> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "rsa2048", "ecdsap256"])
        .output()
        .map_err(BenchError::OpensslSpeed)?;
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

/// What `firmalab bench` measures.
#[derive(Clone, Debug, Default)]
pub struct TableOptions {
    /// Seconds per figure (at least 1).
    pub seconds: u64,
    /// Also time the PC/SC round trip to the card in this reader.
    pub reader: Option<String>,
    /// The reader's card may receive the signature sequence, which sends the PIN 12345678
    /// (`--virtual-card`, `--accept-secret-risk`).
    pub secrets_allowed: bool,
}

/// `firmalab bench`: one table, every figure next to its yardstick (`openssl speed`) measured
/// in the same run. Each line goes to `line` as soon as it is measured.
pub fn table(o: &TableOptions, line: &mut dyn FnMut(String)) -> Result<(), BenchError> {
    let time = Duration::from_secs(o.seconds.max(1));
    let (ossl_rsa, ossl_ec) = openssl_speed(u32::try_from(o.seconds.max(1)).unwrap_or(1))?;
    line(format!("{:<58} {:>12} {:>16}", "", "per second", "vs openssl speed"));
    line(format!("{:<58} {:>12.0} {:>16}", "openssl speed rsa2048 (sign)", ossl_rsa, "1.00×"));
    line(format!("{:<58} {:>12.0} {:>16}", "openssl speed ecdsap256 (sign)", ossl_ec, "1.00×"));
    for (backend, name) in backends() {
        for (alg, label, yard) in [(Alg::Rsa2048, "RSA-2048", ossl_rsa), (Alg::P256, "ECDSA P-256", ossl_ec)] {
            let mut card = SigningCard::new(alg, backend)?;
            let through = rate(|| card.sign(), time)?;
            let bare = rate(bare_signer(alg, backend)?, time)?;
            line(format!("{:<58} {:>12.0} {:>15.2}×", format!("{label} {name}, bare crypto call"), bare, bare / yard));
            line(format!(
                "{:<58} {:>12.0} {:>15.2}×   (APDU path / bare: {:.2}×)",
                format!("{label} {name}, VERIFY+MSE+PSO through the card"),
                through,
                through / yard,
                through / bare
            ));
        }
    }
    for (what, ns) in apdu_ns(time)? {
        line(format!("{:<58} {:>12.0} {:>16}", format!("APDU {what} (in-process, {ns:.0} ns each)"), 1e9 / ns, ""));
    }
    match &o.reader {
        Some(r) => {
            for l in pcsc_round_trip(r, o.secrets_allowed)? {
                line(format!("{:<58} {l}", "PC/SC round trip"));
            }
        }
        None => line(format!(
            "{:<58} not measured: give --reader \"Virtual PCD 00 00\" with a card running",
            "PC/SC round trip"
        )),
    }
    Ok(())
}

/// The PC/SC round trip to the card in `reader`: SELECT, the read sequence, and (only when
/// `secrets_allowed`) the signature sequence, each as a median per APDU.
#[cfg(feature = "pcsc")]
pub fn pcsc_round_trip(reader: &str, secrets_allowed: bool) -> Result<Vec<String>, BenchError> {
    use crate::console::time_on;
    use crate::transport::pcsc::PcscTransport;
    let mut t = PcscTransport::connect(reader, Duration::from_secs(5))?;
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

/// The PC/SC round trip needs the `pcsc` feature.
#[cfg(not(feature = "pcsc"))]
pub fn pcsc_round_trip(_reader: &str, _secrets_allowed: bool) -> Result<Vec<String>, BenchError> {
    Err(BenchError::NoPcsc)
}
