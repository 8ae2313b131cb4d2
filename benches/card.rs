//! Criterion benchmarks: signatures through the full APDU path against the bare crypto call
//! on the same key (per backend), non-crypto APDU cost, on-card key generation, whole flows,
//! and the PC/SC round trip when a reader is given. `cargo bench` (add `--features openssl`
//! for the OpenSSL backend, `--features pcsc` and FIRMALAB_BENCH_READER for PC/SC).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use firmalab_emulator::{Card, CardRng, hex};
use firmalab_harness::bench::{Alg, SigningCard, backends, bare_signer};
use firmalab_harness::fixtures::builtin;
use firmalab_harness::fuzz_corpus::{deterministic_flow, fixture_flow};
use std::hint::black_box;
use std::time::Duration;

fn signatures(c: &mut Criterion) {
    let mut g = c.benchmark_group("signature");
    g.measurement_time(Duration::from_secs(4));
    for (backend, name) in backends() {
        for (alg, label) in [(Alg::Rsa2048, "rsa2048"), (Alg::P256, "p256")] {
            let mut card = SigningCard::new(alg, backend).expect("signing card");
            g.bench_function(format!("{label}/{name}/apdu-path"), |b| b.iter(|| assert!(card.sign())));
            let mut bare = bare_signer(alg, backend).expect("bare signer");
            g.bench_function(format!("{label}/{name}/bare"), |b| b.iter(|| assert!(bare())));
        }
    }
    g.finish();
}

fn apdus(c: &mut Criterion) {
    let mut g = c.benchmark_group("apdu");
    let mut card = Card::new(builtin("cns-renewable").expect("fixture"), CardRng::insecure_deterministic(3));
    card.power_on();
    for (name, cmd) in
        [("select-by-path", "00A4080C0411001101"), ("read-binary-256", "00B0000000"), ("verify-status", "00200090")]
    {
        let cmd = hex::decode(cmd).expect("hex");
        g.bench_function(name, |b| b.iter(|| black_box(card.transmit(black_box(&cmd))).len()));
    }
    g.finish();
}

fn keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("keygen");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut card = Card::new(builtin("cns-renewable").expect("fixture"), CardRng::from_os().expect("os rng"));
    card.power_on();
    card.transmit(&hex::decode("00A4080C0414008110").expect("hex"));
    let verify = hex::decode("0020009A083132333435363738").expect("hex");
    let generate = hex::decode("00468010020800").expect("hex");
    g.bench_function("rsa2048-on-card", |b| {
        b.iter(|| {
            card.transmit(&verify);
            assert_eq!(card.transmit(&generate)[256..], [0x61, 0x0E]);
        })
    });
    g.finish();
}

fn flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("diagnostic/cns", |b| {
        b.iter(|| deterministic_flow("diagnostic", builtin("cns-renewable").expect("fixture")).expect("flow"))
    });
    g.bench_function("renewal/cns/pre-generated-keys", |b| {
        b.iter(|| deterministic_flow("renewal", builtin("cns-renewable").expect("fixture")).expect("flow"))
    });
    g.bench_function("renewal/cns/real-key-generation", |b| {
        b.iter(|| {
            fixture_flow("renewal", builtin("cns-renewable").expect("fixture"), || CardRng::from_os().expect("os rng"))
                .expect("flow")
        })
    });
    g.finish();
}

/// PC/SC round trips to the card in FIRMALAB_BENCH_READER. Without any PIN unless
/// FIRMALAB_BENCH_VIRTUAL_CARD=1 says the card is firmalab's virtual card: a real token would
/// block after a few wrong VERIFYs, and the benchmark sends dozens.
#[cfg(feature = "pcsc")]
fn pcsc(c: &mut Criterion) {
    use firmalab_harness::bench::{PCSC_READ_SEQUENCE, pcsc_signature_sequence};
    use firmalab_harness::transport::{Transport, pcsc::PcscTransport};
    let Ok(reader) = std::env::var("FIRMALAB_BENCH_READER") else {
        eprintln!(
            "SKIPPED pcsc benchmarks: set FIRMALAB_BENCH_READER to a reader with a running card (and PCSCLITE_CSOCK_NAME for a private pcscd)"
        );
        return;
    };
    let mut t = match PcscTransport::connect(&reader, Duration::from_secs(5)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIPPED pcsc benchmarks: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("pcsc");
    let select = hex::decode("00A4000C023F00").expect("hex");
    g.bench_function("select-round-trip", |b| b.iter(|| t.transmit_raw(&select).expect("transmit")));
    let reads: Vec<Vec<u8>> = PCSC_READ_SEQUENCE.iter().map(|c| hex::decode(c).expect("hex")).collect();
    g.bench_function("read-sequence-round-trips", |b| {
        b.iter(|| reads.iter().for_each(|c| drop(t.transmit_raw(c).expect("transmit"))))
    });
    if std::env::var("FIRMALAB_BENCH_VIRTUAL_CARD").is_ok_and(|v| v == "1") {
        match pcsc_signature_sequence(&mut t) {
            Ok(cmds) => {
                let cmds: Vec<Vec<u8>> = cmds.iter().map(|c| hex::decode(c).expect("hex")).collect();
                g.bench_function("rsa2048-signature-round-trips", |b| {
                    b.iter(|| cmds.iter().for_each(|c| drop(t.transmit_raw(c).expect("transmit"))))
                });
            }
            Err(e) => eprintln!("SKIPPED pcsc signature benchmark: {e}"),
        }
    } else {
        eprintln!(
            "SKIPPED pcsc signature benchmark: it sends a PIN; set FIRMALAB_BENCH_VIRTUAL_CARD=1 when the card is firmalab's virtual card"
        );
    }
    g.finish();
}

#[cfg(not(feature = "pcsc"))]
fn pcsc(_: &mut Criterion) {
    eprintln!("SKIPPED pcsc benchmarks: build with --features pcsc");
}

criterion_group!(benches, signatures, apdus, keygen, flows, pcsc);
criterion_main!(benches);
