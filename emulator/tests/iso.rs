//! ISO 7816 behaviours every profile shares (spec/cards.md §1.1, §1.2, §1.4): ONE table, run
//! against every profile's fixture card. The seven length cases short and extended, malformed
//! lengths, command chaining (`CLA|10`) with an interleaved command (`6883`), `61xx` + GET
//! RESPONSE, `6Cxx`, class errors, unknown instructions, and power events that clear the
//! session but not the card.
//!
//! Rows are `(command, expectation)` in the notation of `common::Session::expect`, with
//! `{placeholders}` filled from the card under test (see [`Under`]); `{event}` is a power
//! event, and a group that uses it runs once per event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::fs::{FileBody, lookup};
use firmalab_emulator::{Card, ProfileKind, hex};

const ISO: &[(&str, &[(&str, &str)])] = &[
    (
        "the seven length cases, short and extended",
        &[
            ("00A4000C", "9000"),                       // case 1: SELECT MF (no data)
            ("00A4080C04{path}", "9000"),               // case 3 short
            ("00B0000010", "{ef16} 9000"),              // case 2 short
            ("00B00000000010", "{ef16} 9000"),          // case 2 extended
            ("00B0000000", "{ef} 6282"),                // Le 00 = 256: what there is, end of file
            ("00A4000C", "9000"),                       //
            ("00A4080C000004{path}", "9000"),           // case 3 extended
            ("00B0000010", "{ef16} 9000"),              //
            ("00A4080004{path}00", "{fcp} 9000"),       // case 4 short
            ("00A40800000004{path}0000", "{fcp} 9000"), // case 4 extended
            ("00A4080004{path}", "{fcp} 9000"),         // T=0 case 4 without Le: the FCP anyway
            ("00A4000C00", "9000"),                     // T=0 case 1 with P3 = 00
        ],
    ),
    (
        "malformed lengths answer 6700",
        &[
            ("00A400", "6700"),             // shorter than a header
            ("00A4080C05{path}", "6700"),   // Lc longer than the data
            ("00A4080C03{path}", "6700"),   // Lc shorter than the data
            ("00A4080C0004{path}", "6700"), // extended Lc cut short
            ("00D600000000000000", "6700"), // case 4 extended with an empty body
            ("00B0000000000000", "6700"),   // extended Le with a trailing byte
        ],
    ),
    (
        "command chaining: blocks are joined, an interleaved command ends the chain with 6883",
        &[
            ("10A4080C02{fid1}", "9000"),
            ("00A4080C02{fid2}", "9000"), // last block: the joined path selects the EF
            ("00B0000010", "{ef16} 9000"),
            ("10A4080C02{fid1}", "9000"),
            ("00B0000010", "6883"),         // another command in the middle of the chain
            ("00A4080C02{fid2}", "6A82"),   // the chain is gone: a path of one FID from the MF
            ("10A4080C02{fid1}00", "6700"), // a non-final block carries no Le
            ("00A4080C02{fid2}", "6A82"),   // and starts no chain
            ("00B0000010", "{ef16} 9000"),  // refused commands changed nothing selected
            ("10A4080C02{fid1}", "9000"),
            ("10A4000C02{fid1}", "6883"), // a block of another command
            ("00A4080C02{fid2}", "6A82"), // ended the chain
            ("10A4080C02{fid1}", "9000"),
            ("00A400", "6700"), // so does a malformed APDU
            ("00A4080C02{fid2}", "6A82"),
            ("10A4080C02{fid1}", "9000"),
            ("{foreign}A4000C", "6E00"), // and a class the card refuses
            ("00A4080C02{fid2}", "6A82"),
        ],
    ),
    (
        "answers longer than Le: 61xx and GET RESPONSE (extended Le), 6Cxx (short Le)",
        &[
            ("00C0000000", "6985"), // nothing to fetch
            ("00A40800000004{path}0005", "{fcp5} 61{rest_len}"),
            ("00C0000000", "{fcp_rest} 9000"),
            ("00C0000000", "6985"), // all fetched
            ("00A40800000004{path}0005", "{fcp5} 61{rest_len}"),
            ("00C0000001", "{fcp_rest1} 61{rest_len_1}"), // in pieces
            ("00C0000000", "{fcp_rest_after1} 9000"),
            ("00A40800000004{path}0005", "{fcp5} 61{rest_len}"),
            ("00A4000C", "9000"), // any other command drops what was pending
            ("00C0000000", "6985"),
            ("00A4080004{path}05", "6C{fcp_len}"), // short Le too small: the exact length
            ("00A4080004{path}{fcp_len}", "{fcp} 9000"),
            ("00C0000000", "6985"),
        ],
    ),
    (
        "class errors",
        &[
            ("{foreign}A4000C", "6E00"), // a proprietary class this card does not have
            ("40A4000C", "6E00"),        // further interindustry class
            ("FFA40000", "6E00"),        // invalid class (ISO 7816-3)
            ("0CA4000C", "6882"),        // secure messaging
            ("04A4000C", "6882"),
            ("01A4000C", "6881"), // logical channel 1
            ("03A4000C", "6881"),
            ("00A4000C", "9000"),
        ],
    ),
    (
        "unknown instructions answer 6D00",
        &[("00FF0000", "6D00"), ("0012000000", "6D00"), ("00F50000", "6D00"), ("0004000000", "6D00")],
    ),
    (
        "power events ({event}) clear the session, not the card",
        &[
            ("{wrong_pin}", "63C2"),
            ("{event}", "-"),
            ("{pin_status}", "63C2"), // the counter is persistent
            ("{verify}", "9000"),
            ("{pin_status}", "9000"),
            ("00A4080C04{path}", "9000"),
            ("{event}", "-"),
            ("{pin_status}", "63C3"), // no longer verified
            ("00B0000010", "6986"),   // the MF is current, no EF
            ("10A4080C02{fid1}", "9000"),
            ("{event}", "-"),
            ("00A4080C02{fid2}", "6A82"), // the chain is gone
            ("00A40800000004{path}0005", "{fcp5} 61{rest_len}"),
            ("{event}", "-"),
            ("00C0000000", "6985"), // nothing pending
        ],
    ),
];

/// What the table needs to know about a profile's fixture card.
///
/// A command may be several APDUs joined by `|` (the expectation is the last one's): a card
/// whose PINs live in an application DF is sent the SELECT its middleware sends first.
struct Under {
    profile: ProfileKind,
    fixture: &'static str,
    /// A transparent EF readable without a PIN, as two FIDs from the MF.
    fids: [&'static str; 2],
    /// A class byte the card does not answer.
    foreign_class: u8,
    /// VERIFY with the holder PIN, with a wrong one, and without data (status query).
    verify: String,
    wrong_pin: String,
    pin_status: &'static str,
}

fn every_profile() -> Vec<Under> {
    vec![
        Under {
            profile: ProfileKind::Cns,
            fixture: "cns-renewable.json",
            fids: ["1000", "1003"], // EF_IDCarta
            foreign_class: 0x80,
            verify: format!("0020009008{}", padded("12345678", 8, 0xFF)),
            wrong_pin: format!("0020009008{}", padded("99999999", 8, 0xFF)),
            pin_status: "00200090",
        },
        Under {
            profile: ProfileKind::Oberthur,
            fixture: "oberthur-renewable.json",
            fids: ["5011", "1000"], // AWP token info
            foreign_class: 0xB0,
            verify: format!("0020008140{}", padded("12345678", 64, 0xFF)),
            wrong_pin: format!("0020008140{}", padded("99999999", 64, 0xFF)),
            pin_status: "0020008100",
        },
        Under {
            profile: ProfileKind::Incrypto34,
            fixture: "incrypto34-issued.json",
            fids: ["5015", "5032"], // EF.TokenInfo
            foreign_class: 0x80,
            // The user PIN is a BS object of DF 5015, found from there (`80 | ref`).
            verify: format!("00A4080C025015|0020008308{}", padded("12345678", 8, 0x00)),
            wrong_pin: format!("00A4080C025015|0020008308{}", padded("99999999", 8, 0x00)),
            pin_status: "00A4080C025015|00200083",
        },
    ]
}

/// A power event, named.
type Event = (&'static str, fn(&mut Card));

const EVENTS: [Event; 3] = [
    ("power off and on", |c| {
        c.power_off();
        c.power_on();
    }),
    ("power on", |c| c.power_on()),
    ("warm reset", |c| c.reset()),
];

fn placeholders(u: &Under) -> Vec<(String, String)> {
    let image = image(u.fixture);
    let path: Vec<u16> =
        [0x3F00].into_iter().chain(u.fids.iter().map(|f| u16::from_str_radix(f, 16).unwrap())).collect();
    let Some(FileBody::Transparent { data }) = lookup(&image.mf, &path).map(|n| &n.body) else {
        panic!("{}: no transparent EF at {path:04X?}", u.fixture)
    };
    assert!(data.0.len() >= 16, "the table reads 16 bytes of the EF");
    // The card's own FCP for the EF: the rows check that every way of asking gives the same.
    let mut s = Session::new(u.fixture);
    let fcp = s.expect(&format!("00A4080004{}{}00", u.fids[0], u.fids[1]), "62.. 9000");
    assert!(fcp.len() > 6 && fcp.len() < 256);
    let byte = |n: usize| format!("{n:02X}");
    let mut v: Vec<(&str, String)> = vec![
        ("path", format!("{}{}", u.fids[0], u.fids[1])),
        ("fid1", u.fids[0].into()),
        ("fid2", u.fids[1].into()),
        ("ef", hex::encode(&data.0)),
        ("ef16", hex::encode(&data.0[..16])),
        ("fcp", hex::encode(&fcp)),
        ("fcp_len", byte(fcp.len())),
        ("fcp5", hex::encode(&fcp[..5])),
        ("fcp_rest", hex::encode(&fcp[5..])),
        ("rest_len", byte(fcp.len() - 5)),
        ("fcp_rest1", hex::encode(&fcp[5..6])),
        ("rest_len_1", byte(fcp.len() - 6)),
        ("fcp_rest_after1", hex::encode(&fcp[6..])),
        ("foreign", byte(usize::from(u.foreign_class))),
        ("verify", u.verify.clone()),
        ("wrong_pin", u.wrong_pin.clone()),
        ("pin_status", u.pin_status.into()),
    ];
    v.sort_by_key(|(k, _)| std::cmp::Reverse(k.len())); // longest names first: fcp_rest1 before fcp_rest
    v.into_iter().map(|(k, val)| (format!("{{{k}}}"), val)).collect()
}

fn fill(s: &str, values: &[(String, String)]) -> String {
    values.iter().fold(s.to_owned(), |acc, (k, v)| acc.replace(k, v))
}

#[test]
fn the_iso_table_holds_on_every_profile() {
    let profiles = every_profile();
    let covered: Vec<ProfileKind> = profiles.iter().map(|u| u.profile).collect();
    assert_eq!(covered, ProfileKind::ALL, "every profile runs the ISO table: add it to every_profile()");
    for u in &profiles {
        assert_eq!(image(u.fixture).profile, u.profile, "{} is a {} card", u.fixture, u.profile.name());
        let values = placeholders(u);
        for (what, rows) in ISO {
            let per_event = rows.iter().any(|(c, _)| *c == "{event}");
            let events: &[Event] = if per_event { &EVENTS } else { &EVENTS[..1] };
            for (event_name, event) in events {
                let what = what.replace("{event}", event_name);
                let mut s = Session::new(u.fixture);
                for (cmd, want) in *rows {
                    if *cmd == "{event}" {
                        event(&mut s.card);
                        s.trace.push(format!("-- {event_name}"));
                        continue;
                    }
                    let (cmd, want) = (fill(cmd, &values), fill(want, &values));
                    assert!(!cmd.contains('{') && !want.contains('{'), "unfilled placeholder in {cmd} / {want}");
                    let mut apdus = cmd.split('|').peekable();
                    let mut r = vec![];
                    while let Some(apdu) = apdus.next() {
                        r = s.sendh(apdu);
                        if apdus.peek().is_some() && r != [0x90, 0x00] {
                            panic!("{} card: {apdu} (before {cmd}) answered {}", u.profile.name(), hex::encode(&r));
                        }
                    }
                    if let Err(why) = matches(&r, &want) {
                        panic!(
                            "{} card, {what}: {cmd} expected {want}: {why}\ntrace:\n{}",
                            u.profile.name(),
                            s.trace.join("\n")
                        );
                    }
                }
            }
        }
    }
}
