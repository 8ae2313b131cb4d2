//! Heap allocations per APDU with a counting allocator (the goal on the non-crypto path is
//! zero), and on the signature path for comparison. `cargo bench --bench allocations`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use firmalab_emulator::{Card, CardRng, hex};
use firmalab_harness::bench::{Alg, SigningCard};
use firmalab_harness::fixtures::builtin;

fn per_apdu(card: &mut Card, cmd: &[u8], n: u64) -> f64 {
    card.transmit(cmd);
    let info = allocation_counter::measure(|| {
        for _ in 0..n {
            std::hint::black_box(card.transmit(cmd));
        }
    });
    info.count_total as f64 / n as f64
}

fn main() {
    let mut card = Card::new(builtin("cns-renewable").expect("fixture"), CardRng::insecure_deterministic(3));
    card.power_on();
    println!("heap allocations per APDU (in-process card)");
    for (name, cmd) in [
        ("SELECT by path", "00A4080C0411001101"),
        ("READ BINARY 256 bytes", "00B0000000"),
        ("VERIFY status query", "00200090"),
        ("VERIFY with the PIN", "00200090083132333435363738"),
        ("GET CHALLENGE 32", "0084000020"),
    ] {
        println!("  {name:<28} {:.2}", per_apdu(&mut card, &hex::decode(cmd).expect("hex"), 10_000));
    }
    let mut signing = SigningCard::new(Alg::Rsa2048, firmalab_emulator::keys::Backend::RustCrypto).expect("card");
    let info = allocation_counter::measure(|| {
        for _ in 0..20 {
            signing.sign();
        }
    });
    println!(
        "  {:<28} {:.1} (RSA arithmetic allocates)",
        "RSA-2048 signature (3 APDUs)",
        info.count_total as f64 / 20.0
    );
}
