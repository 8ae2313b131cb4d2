//! firmalab in another project's `cargo test`, through the real PC/SC stack: a test starts a
//! private pcscd (its own mount namespace, vsmartcard's vpcd readers) with a virtual CNS card
//! in it, runs a program that talks PC/SC through the `pcsc` crate and OpenSC's PKCS#11
//! module against it, and tears everything down when the lab is dropped. The machine's own
//! pcscd, if any, is never touched.
//!
//! Needs, on Debian or Ubuntu: `apt-get install pcscd vsmartcard-vpcd libpcsclite-dev
//! pkg-config opensc openssl`, root (the mount namespace), and `--features pcsc`. Where any
//! of it is missing the test prints `SKIPPED …` with the reason and passes, unless
//! `FIRMALAB_PCSC_REQUIRED=1` (CI), which makes it fail.
//!
//! Run here: `cargo test --features pcsc --example pcsc_lab` (also part of
//! `cargo test --features pcsc`), or `cargo run --features pcsc --example pcsc_lab`.
//!
//! pcsc-lite reads `PCSCLITE_CSOCK_NAME` once per process, so the program under test runs as
//! a child process of the test, pointed at the lab's pcscd by [`PcscLab::command`]. In your
//! project that child is your own binary (`env!("CARGO_BIN_EXE_yourapp")` in an integration
//! test); here it is this example itself, re-run with `FIRMALAB_EXAMPLE_READER` set.

use firmalab_harness::lab::{OPENSC_PKCS11, PcscLab};
use std::error::Error;
use std::process::Output;

/// Set for the child: the reader the program under test talks to.
const READER_VAR: &str = "FIRMALAB_EXAMPLE_READER";

/// The program under test: reads the CNS serial (EF_IDCarta) through the `pcsc` crate.
#[cfg(feature = "pcsc")]
fn read_serial(reader_part: &str) -> Result<String, Box<dyn Error>> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User)?;
    let mut names = [0u8; 2048];
    let reader = ctx
        .list_readers(&mut names)?
        .find(|r| r.to_string_lossy().contains(reader_part))
        .ok_or_else(|| format!("no reader {reader_part:?}"))?
        .to_owned();
    let card = ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)?;
    let mut answer = [0u8; 258];
    let select = card.transmit(&[0x00, 0xA4, 0x08, 0x0C, 0x04, 0x10, 0x00, 0x10, 0x03], &mut answer)?;
    if select != [0x90, 0x00] {
        return Err(format!("SELECT EF_IDCarta answered {select:02X?}").into());
    }
    let read = card.transmit(&[0x00, 0xB0, 0x00, 0x00, 0x10], &mut answer)?;
    match read.split_last_chunk::<2>() {
        Some((data, [0x90, 0x00])) => Ok(String::from_utf8(data.to_vec())?),
        _ => Err(format!("READ BINARY answered {read:02X?}").into()),
    }
}

#[cfg(not(feature = "pcsc"))]
fn read_serial(_reader_part: &str) -> Result<String, Box<dyn Error>> {
    Err("built without --features pcsc".into())
}

/// What the lab run shows: the program's output, `pkcs11-tool --list-slots`, and a signature
/// made through OpenSC's PKCS#11 module and checked by `openssl`.
struct Seen {
    program: Output,
    slots: Output,
    signature: Output,
    verified: Output,
}

/// Starts the lab with the CNS persona, then the program under test (`program`, with
/// `program_args`) and OpenSC against it.
fn run_in_lab(
    lab: &mut PcscLab,
    program: &std::path::Path,
    program_args: &[&str],
    dir: &std::path::Path,
) -> Result<Seen, Box<dyn Error>> {
    let reader = lab.insert_persona("cns")?;
    let program = lab.command(program).args(program_args).env(READER_VAR, &reader).output()?;
    let slots = lab.command("pkcs11-tool").args(["--module", OPENSC_PKCS11, "--list-slots"]).output()?;
    let (msg, sig, cert, key) = (dir.join("msg"), dir.join("sig"), dir.join("cert.der"), dir.join("key.pem"));
    std::fs::write(&msg, b"Modulo di rinnovo")?;
    let path = |p: &std::path::Path| p.display().to_string();
    let signature = lab
        .command("pkcs11-tool")
        .args(["--module", OPENSC_PKCS11, "--token-label", "MARIO ROSSI (PIN CNS1)", "--login", "--pin"])
        .args(["12345678", "--sign", "-m", "SHA256-RSA-PKCS", "-i", &path(&msg), "-o", &path(&sig)])
        .output()?;
    // The signature certificate, read through the same module, gives openssl the public key.
    lab.command("pkcs11-tool")
        .args(["--module", OPENSC_PKCS11, "--token-label", "MARIO ROSSI (PIN CNS1)", "--read-object"])
        .args(["--type", "cert", "--label", "CNS1", "-o", &path(&cert)])
        .output()?;
    let openssl = |args: &[&str]| std::process::Command::new("openssl").args(args).output();
    openssl(&["x509", "-inform", "DER", "-in", &path(&cert), "-pubkey", "-noout", "-out", &path(&key)])?;
    let verified = openssl(&["dgst", "-sha256", "-verify", &path(&key), "-signature", &path(&sig), &path(&msg)])?;
    Ok(Seen { program, slots, signature, verified })
}

fn show(what: &str, o: &Output) {
    println!("== {what} (exit {})", o.status.code().unwrap_or(-1));
    print!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(reader) = std::env::var(READER_VAR) {
        // The child: the program under test, in the lab's PC/SC stack.
        println!("serial {}", read_serial(&reader)?);
        return Ok(());
    }
    let mut lab = PcscLab::start()?;
    let dir = std::env::temp_dir().join(format!("firmalab-example-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let seen = run_in_lab(&mut lab, &std::env::current_exe()?, &[], &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let seen = seen?;
    show("the program under test (pcsc crate)", &seen.program);
    show("pkcs11-tool --list-slots (OpenSC's PKCS#11 module)", &seen.slots);
    show("pkcs11-tool --sign", &seen.signature);
    show("openssl dgst -verify", &seen.verified);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmalab_harness::lab::LabError;
    use std::io::Write;

    /// Says why the test cannot run (on stderr, which libtest does not capture when written
    /// directly); an error instead when the stack is required.
    fn skip(test: &str, why: &str) -> Result<(), Box<dyn Error>> {
        if firmalab_harness::lab::required() {
            return Err(format!("{test}: the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but {why}").into());
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        Ok(())
    }

    /// The child half of the lab test below: the program under test. It runs only when the
    /// lab starts it (with `--ignored` and the reader in `FIRMALAB_EXAMPLE_READER`).
    #[test]
    #[ignore = "the program under test: the lab test runs it inside its private PC/SC stack"]
    fn program_under_test() -> Result<(), Box<dyn Error>> {
        let reader = std::env::var(READER_VAR)?;
        println!("serial {}", read_serial(&reader)?);
        Ok(())
    }

    #[test]
    fn a_pcsc_program_and_opensc_pkcs11_use_the_virtual_card_in_a_private_stack() -> Result<(), Box<dyn Error>> {
        let name = "a_pcsc_program_and_opensc_pkcs11_use_the_virtual_card_in_a_private_stack";
        if !cfg!(feature = "pcsc") {
            return skip(name, "built without --features pcsc (the pcsc crate needs libpcsclite-dev)");
        }
        if std::env::var("FIRMALAB_PCSC").is_ok_and(|v| v == "off") {
            return skip(name, "FIRMALAB_PCSC=off");
        }
        for tool in ["pkcs11-tool", "openssl"] {
            if std::process::Command::new(tool).arg("--help").output().is_err() {
                return skip(name, &format!("{tool} not installed (apt-get install opensc openssl)"));
            }
        }
        let mut lab = match PcscLab::start() {
            Ok(lab) => lab,
            Err(LabError::Unavailable(why)) => return skip(name, &why),
            Err(e) => return Err(e.into()),
        };
        let dir = std::env::temp_dir().join(format!("firmalab-example-lab-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let args = ["--exact", "tests::program_under_test", "--ignored", "--nocapture", "--test-threads", "1"];
        let seen = run_in_lab(&mut lab, &std::env::current_exe()?, &args, &dir);
        drop(lab);
        let _ = std::fs::remove_dir_all(&dir);
        let seen = seen?;
        let text = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(text(&seen.program).contains("serial 6010000000000101"), "{}", text(&seen.program));
        assert!(text(&seen.slots).contains("MARIO ROSSI (PIN CNS1)"), "{}", text(&seen.slots));
        assert!(seen.signature.status.success(), "{}", text(&seen.signature));
        assert_eq!(String::from_utf8_lossy(&seen.verified.stdout).trim(), "Verified OK", "{}", text(&seen.verified));
        Ok(())
    }
}
