//! What the benchmarks measure, shared by `firmalab bench` and the criterion benches: a card
//! ready to sign through the full APDU path, the bare crypto call on the same key, per-APDU
//! overhead, and `openssl speed` as the machine's yardstick, measured in the same run.

use crate::fixtures::builtin;
use firmalab_emulator::keys::{Backend, LoadedKey};
use firmalab_emulator::{Card, CardRng, hex};
use std::time::{Duration, Instant};

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
    pub fn new(alg: Alg, backend: Backend) -> Result<Self, String> {
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
                if !ok(card.transmit(&hex::decode("00A4080C0414008110")?)) {
                    return Err("select of the key DF failed".into());
                }
                vec![hex::decode("0020009A083132333435363738")?, hex::decode("0022F1B603830110")?, rsa_pso_command()]
            }
            Alg::P256 => {
                if !ok(card.transmit(&hex::decode("00200090083132333435363738")?))
                    || !ok(card.transmit(&hex::decode("004600010A06082A8648CE3D03010700")?))
                {
                    return Err("P-256 key generation failed".into());
                }
                let mut pso = hex::decode("002A9E9A20")?;
                pso.extend([0x5Au8; 32]);
                pso.push(0);
                vec![hex::decode("00200090083132333435363738")?, hex::decode("0022F1B603830101")?, pso]
            }
        };
        let mut s = SigningCard { card, commands };
        if !s.sign() {
            return Err("the card did not sign".into());
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
pub fn bare_signer(alg: Alg, backend: Backend) -> Result<Box<dyn FnMut() -> bool>, String> {
    let sc = SigningCard::new(alg, backend)?;
    let slot = if alg == Alg::Rsa2048 { 0x10 } else { 0x01 };
    let material =
        sc.card.image().keys.iter().find(|k| k.reference.0 == slot).and_then(|k| k.material.clone()).ok_or("no key")?;
    let block: Vec<u8> = sc.commands[2][7..7 + 256.min(sc.commands[2].len().saturating_sub(9))].to_vec();
    let hash = [0x5Au8; 32];
    match backend {
        Backend::RustCrypto => {
            let key = material.load().map_err(|sw| sw.to_string())?;
            let mut rng = CardRng::insecure_deterministic(1);
            Ok(match (alg, key) {
                (Alg::Rsa2048, k @ LoadedKey::Rsa(_)) => Box::new(move || k.rsa_raw(&block, &mut rng).is_ok()),
                (_, k) => Box::new(move || k.ecdsa_sign_prehash(&hash).is_ok()),
            })
        }
        #[cfg(feature = "openssl")]
        Backend::OpenSsl => {
            let key = firmalab_emulator::fast::FastKey::load(&material).map_err(|sw| sw.to_string())?;
            Ok(match alg {
                Alg::Rsa2048 => Box::new(move || key.rsa_raw(&block).is_ok()),
                Alg::P256 => Box::new(move || key.ecdsa_sign_prehash(&hash).is_ok()),
            })
        }
    }
}

/// Operations per second of `f` over about `time`.
pub fn rate(mut f: impl FnMut() -> bool, time: Duration) -> Result<f64, String> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time || n < 3 {
        if !f() {
            return Err("an operation failed".into());
        }
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Nanoseconds per APDU of a non-crypto command sequence (SELECT, READ BINARY of 256 bytes,
/// VERIFY status query), on the in-process card.
pub fn apdu_ns(time: Duration) -> Result<Vec<(String, f64)>, String> {
    let mut card = Card::new(builtin("cns-renewable")?, CardRng::insecure_deterministic(3));
    card.power_on();
    let mut out = vec![];
    for (name, cmds) in [
        ("SELECT by path", vec!["00A4080C0411001101"]),
        ("READ BINARY 256", vec!["00B0000000"]),
        ("VERIFY status query", vec!["00200090"]),
    ] {
        let cmds: Vec<Vec<u8>> = cmds.iter().map(|c| hex::decode(c)).collect::<Result<_, _>>()?;
        let ops = rate(|| cmds.iter().all(|c| card.transmit(c).len() >= 2), time)?;
        out.push((name.to_owned(), 1e9 / ops));
    }
    Ok(out)
}

/// `openssl speed` on this machine now: (RSA-2048 signs/s, ECDSA P-256 signs/s).
pub fn openssl_speed(seconds: u32) -> Result<(f64, f64), String> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "rsa2048", "ecdsap256"])
        .output()
        .map_err(|e| format!("openssl speed: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str, col: usize| -> Option<f64> {
        text.lines().find(|l| l.trim_start().starts_with(prefix))?.split_whitespace().nth(col)?.parse().ok()
    };
    // "rsa 2048 bits 0.000609s 0.000018s 1642.0 56298.3" / "256 bits ecdsa (nistp256) 0.0000s 0.0001s 36432.1 11904.2"
    let rsa = field("rsa 2048", 5).ok_or_else(|| format!("unexpected openssl speed output:\n{text}"))?;
    let ec = text
        .lines()
        .find(|l| l.contains("ecdsa (nistp256)"))
        .and_then(|l| l.split_whitespace().nth(6))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected openssl speed output:\n{text}"))?;
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
pub fn pcsc_signature_sequence(t: &mut dyn crate::transport::Transport) -> Result<Vec<String>, String> {
    use crate::wire::Sw;
    let commands = vec![
        "00A4080C0414008110".to_owned(),
        "0020009A083132333435363738".to_owned(),
        "0022F1B603830110".to_owned(),
        crate::wire::hex::encode(&rsa_pso_command()),
    ];
    for c in &commands {
        let bytes = crate::wire::hex::decode(c)?;
        let r = t.transmit_raw(&bytes).map_err(|e| e.to_string())?;
        match Sw::of_response(&r) {
            Some(Sw::Ok | Sw::MoreData(_)) => {}
            Some(sw) => {
                return Err(format!(
                    "the card answered {sw} ({}) to {}: the signature sequence is not timed (nothing more was sent)",
                    sw.meaning(),
                    crate::wire::apdu::describe(&bytes)
                ));
            }
            None => return Err("a response without a status word".into()),
        }
    }
    Ok(commands)
}
