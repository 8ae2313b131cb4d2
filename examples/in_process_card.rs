//! firmalab in another project's `cargo test`, in-process: a virtual CNS card in a plain unit
//! test, APDUs in, answers out, no PC/SC and no system library.
//!
//! To copy into your project:
//!
//! ```toml
//! [dev-dependencies]
//! firmalab-harness = { git = "…firmalab…" }    # or a path; brings the emulator along
//! firmalab-emulator = { git = "…firmalab…" }
//! ```
//!
//! Run here: `cargo test --example in_process_card` (also part of `cargo test`), or
//! `cargo run --example in_process_card` to see the exchanges.

use firmalab_emulator::hex;

/// An APDU written in hex (a constant of the test).
fn apdu(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_default()
}

/// What your code would do with a card: read the CNS serial from EF_IDCarta (3F00/1000/1003).
fn read_serial(card: &mut firmalab_emulator::Card) -> Result<String, String> {
    let sw = card.transmit(&apdu("00A4080C0410001003")).to_vec();
    if sw != [0x90, 0x00] {
        return Err(format!("SELECT EF_IDCarta: {}", hex::encode(&sw)));
    }
    let answer = card.transmit(&apdu("00B0000010")).to_vec();
    match answer.split_last_chunk::<2>() {
        Some((data, [0x90, 0x00])) => String::from_utf8(data.to_vec()).map_err(|e| e.to_string()),
        _ => Err(format!("READ BINARY: {}", hex::encode(&answer))),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut card = firmalab_harness::persona("cns")?;
    println!("ATR {}", hex::encode(card.atr()));
    println!("serial {}", read_serial(&mut card)?);
    for command in ["00200090083132333435363738", "00CA018300"] {
        let answer = card.transmit(&apdu(command)).to_vec();
        println!("> {command}\n< {}", hex::encode(&answer));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmalab_harness::persona;

    type Result = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn the_cns_persona_reads_its_serial_from_ef_idcarta() -> Result {
        let mut card = persona("cns")?;
        assert_eq!(read_serial(&mut card)?, "6010000000000101");
        Ok(())
    }

    #[test]
    fn a_wrong_pin_costs_a_try_and_the_right_one_restores_the_counter() -> Result {
        let mut card = persona("cns")?;
        assert_eq!(card.transmit(&apdu("00200090083131313131313131")), [0x63, 0xC2], "wrong PIN: 2 tries left");
        assert_eq!(card.transmit(&apdu("00200090")), [0x63, 0xC2], "status query");
        assert_eq!(card.transmit(&apdu("00200090083132333435363738")), [0x90, 0x00]);
        assert_eq!(card.transmit(&apdu("00200090")), [0x90, 0x00], "verified, counter full again");
        Ok(())
    }

    #[test]
    fn a_blocked_card_refuses_the_pin_and_names_why() -> Result {
        let mut card = persona("cns-pin-blocked")?;
        assert_eq!(card.transmit(&apdu("00200090083132333435363738")), [0x69, 0x83], "authentication blocked");
        Ok(())
    }

    #[test]
    fn a_malformed_apdu_gets_a_status_word_not_a_panic() -> Result {
        let mut card = persona("oberthur")?;
        assert_eq!(card.transmit(&[0x00, 0xA4]), [0x67, 0x00], "wrong length");
        Ok(())
    }
}
