//! Card images on disk: the schema is strict and versioned, older versions keep loading, saves
//! are atomic, and every error names the file and the problem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::CardImage;
use firmalab_emulator::image::SCHEMA_VERSION;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn golden_images_of_every_schema_version_still_load() {
    let golden = root().join("fixtures/golden");
    if std::env::var_os("FIRMALAB_BLESS_GOLDEN").is_some() {
        let dir = golden.join(format!("v{SCHEMA_VERSION}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (src, dst) in [
            ("cns-renewable.json", "cns.json"),
            ("oberthur-renewable.json", "oberthur.json"),
            ("incrypto34-issued.json", "incrypto34.json"),
            ("twin-cns-idemia-2021.json", "cns-idemia-twin.json"),
        ] {
            if !dir.join(dst).exists() {
                std::fs::copy(fixture_path(src), dir.join(dst)).unwrap();
            }
        }
    }
    let mut seen = 0;
    for v in 1..=SCHEMA_VERSION {
        let dir = golden.join(format!("v{v}"));
        for file in json_files(&dir) {
            let image = CardImage::load(&file).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
            if v == SCHEMA_VERSION {
                let text = std::fs::read_to_string(&file).unwrap();
                assert_eq!(
                    image.to_json(),
                    text,
                    "{} no longer re-serialises identically: a schema change needs a new version",
                    file.display()
                );
            }
        }
    }
    assert!(seen >= 2, "golden files missing");
}

#[test]
fn a_version_1_image_migrates_to_version_2_and_cannot_carry_version_2_fields() {
    let v1 = std::fs::read_to_string(root().join("fixtures/golden/v1/cns.json")).unwrap();
    assert!(v1.contains("\"version\": 1,"));
    let image = CardImage::from_json(&v1).unwrap();
    assert_eq!(image.version, SCHEMA_VERSION);
    assert!(image.security_environments.is_empty());
    // Version 2 wrote the same card with only the version changed.
    let v2 = std::fs::read_to_string(root().join("fixtures/golden/v2/cns.json")).unwrap();
    let same_card = v1.replacen("\"version\": 1,", "\"version\": 2,", 1);
    assert_eq!(CardImage::from_json(&same_card).unwrap(), image, "1 → 2 changes nothing but the version");
    assert!(v2.contains("\"version\": 2,"));
    let with_se = v1.replacen(
        "\"keys\": [",
        "\"security_environments\": [{\"df\": [\"3F00\"], \"number\": \"01\", \"data\": \"830101\"}], \"keys\": [",
        1,
    );
    assert!(load_error(&with_se).contains("unknown field `security_environments` in a schema version 1 image"));
    // The same field in a version 2 image is the Incrypto34's security environment.
    let golden = CardImage::load(&root().join("fixtures/golden/v2/incrypto34.json")).unwrap();
    assert_eq!(golden.security_environments.len(), 1);
    assert_eq!(golden.security_environments[0].number.0, 0x01);
}

#[test]
fn a_version_2_image_migrates_to_version_3_as_the_convenience_card_and_cannot_carry_version_3_fields() {
    use firmalab_emulator::image::Extension;
    for (file, want) in [
        ("cns.json", vec![Extension::PendingKey, Extension::ExtendedLengthOnT0, Extension::CapabilityProbe]),
        ("oberthur.json", vec![Extension::ExtendedLengthOnT0]),
        ("incrypto34.json", vec![Extension::ExtendedLengthOnT0]),
    ] {
        let v2 = std::fs::read_to_string(root().join("fixtures/golden/v2").join(file)).unwrap();
        let image = CardImage::from_json(&v2).unwrap();
        assert_eq!(image.version, 3);
        assert_eq!(image.extensions, want, "{file}: every extension its profile can have");
        assert!(!image.tries_query_counts, "{file}");
        // Version 3 wrote the same card with the version and the extensions added.
        let v3 = std::fs::read_to_string(root().join("fixtures/golden/v3").join(file)).unwrap();
        assert_eq!(image.to_json(), v3, "{file}: migration adds only the version and the extensions");
    }
    let v2 = std::fs::read_to_string(root().join("fixtures/golden/v2/cns.json")).unwrap();
    for field in ["\"extensions\": [],", "\"tries_query_counts\": true,"] {
        let e = load_error(&v2.replacen("\"capacity\"", &format!("{field} \"capacity\""), 1));
        assert!(e.contains("in a schema version 2 image"), "{e}");
    }
    // In version 3 they are the strict twin's.
    let twin = CardImage::load(&root().join("fixtures/golden/v3/cns-idemia-twin.json")).unwrap();
    assert!(twin.extensions.is_empty() && twin.tries_query_counts);
    let v3 = std::fs::read_to_string(root().join("fixtures/golden/v3/cns.json")).unwrap();
    let e = load_error(&v3.replacen("\"capability_probe\"", "\"capability_probe\", \"pending_key\"", 1));
    assert!(e.contains("extensions[3]: pending_key listed twice"), "{e}");
    let ob = std::fs::read_to_string(root().join("fixtures/golden/v3/oberthur.json")).unwrap();
    let e = load_error(&ob.replacen("\"extended_length_on_t0\"", "\"pending_key\"", 1));
    assert!(e.contains("extensions[0]: pending_key does not exist on the oberthur profile"), "{e}");
    let e = load_error(&ob.replacen("\"extensions\"", "\"extension\"", 1));
    assert!(e.contains("unknown field `extension`"), "{e}");
}

#[test]
fn every_fixture_loads_validates_and_round_trips() {
    let files = json_files(&root().join("fixtures/cards"));
    assert!(files.len() >= 6);
    for f in files {
        let image = CardImage::load(&f).unwrap_or_else(|e| panic!("{e}"));
        image.validate().unwrap();
        assert_eq!(image.to_json(), std::fs::read_to_string(&f).unwrap(), "{}", f.display());
        assert_eq!(CardImage::from_json(&image.to_json()).unwrap(), image);
    }
}

/// A fresh, empty folder of its own, removed (with what the test wrote) when dropped.
fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("firmalab-image-test-{name}-")).tempdir().unwrap()
}

fn load_error(text: &str) -> String {
    // A folder per call: tests run in parallel, and two edits may have the same length.
    let dir = tmp("errors");
    let file = dir.path().join(format!("bad-{}.json", text.len()));
    std::fs::write(&file, text).unwrap();
    let Err(e) = CardImage::load(&file) else { panic!("accepted an image that should be rejected") };
    let e = e.to_string();
    assert!(e.contains(&file.display().to_string()), "error names the file: {e}");
    e
}

#[test]
fn load_errors_name_the_file_and_the_problem() {
    let good = std::fs::read_to_string(fixture_path("cns-renewable.json")).unwrap();
    assert!(load_error("{").contains("not valid JSON"));
    assert!(load_error("[]").contains("not a JSON object"));
    assert!(load_error("{\"version\": 1}").contains("not a card image"));
    assert!(load_error(&good.replacen("\"version\": 3", "\"version\": 99", 1)).contains("newer than this firmalab"));
    assert!(
        load_error(&good.replacen("\"capacity\"", "\"colour\": 1, \"capacity\"", 1)).contains("unknown field `colour`")
    );
    assert!(
        load_error(&good.replacen("\"profile\": \"cns\"", "\"profile\": \"gemalto\"", 1))
            .contains("unknown variant `gemalto`")
    );
    assert!(load_error(&good.replacen("\"tries_left\": 3", "\"tries_left\": 9", 1)).contains("tries_left > max_tries"));
    assert!(load_error(&good.replacen("\"atr\": \"3B", "\"atr\": \"3G", 1)).contains("not a hex digit"));
    let missing = CardImage::load(Path::new("/nonexistent/card.json")).unwrap_err().to_string();
    assert!(missing.contains("/nonexistent/card.json"));
}

#[test]
fn save_replaces_atomically_and_a_failed_save_keeps_the_old_file() {
    // Empty and its own: a folder named after the process id alone kept an earlier run's
    // files (its `sub` made this test fail under cargo-mutants, which reuses process ids).
    let tmp = tmp("save");
    let dir = tmp.path();
    let file = dir.join("card.json");
    let mut image = image("cns-renewable.json");
    image.save(&file).unwrap();
    image.description = "changed".into();
    image.save(&file).unwrap();
    assert_eq!(CardImage::load(&file).unwrap().description, "changed");
    let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    // Saving where the temporary file cannot be created fails cleanly.
    let target_is_dir = dir.join("sub");
    std::fs::create_dir_all(target_is_dir.join("x")).unwrap();
    let e = image.save(&target_is_dir).unwrap_err().to_string();
    assert!(e.contains("cannot save"), "{e}");
    assert!(target_is_dir.join("x").exists(), "the existing entry is untouched");
}

#[test]
fn concurrent_saves_in_one_process_never_collide() {
    let tmp = tmp("concurrent");
    let dir = tmp.path().to_path_buf();
    let image = image("cns-renewable.json");
    std::thread::scope(|s| {
        for t in 0..4 {
            let (dir, image) = (&dir, &image);
            s.spawn(move || {
                for i in 0..25 {
                    let mut img = image.clone();
                    img.description = format!("{t}-{i}");
                    img.save(&dir.join("same.json")).unwrap();
                }
            });
        }
    });
    CardImage::load(&dir.join("same.json")).unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
}

/// The fixture as JSON, changed by `edit`, and the loader's one-line error for it.
fn rejected(fixture: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path(fixture)).unwrap()).unwrap();
    edit(&mut v);
    let e = load_error(&serde_json::to_string_pretty(&v).unwrap());
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

#[test]
fn image_rule_pins_must_be_values_the_profile_allows() {
    for (value, why) in [
        ("", "pins[2] (PIN CNS1).value: empty; the rule is 5 to 8 digits"),
        ("1", "pins[2] (PIN CNS1).value: 1 characters; the rule is 5 to 8 digits"),
        ("1234", "pins[2] (PIN CNS1).value: 4 characters; the rule is 5 to 8 digits"),
        ("12a45678", "pins[2] (PIN CNS1).value: has characters other than digits"),
        ("123456789", "pins[2] (PIN CNS1).value: 9 characters"),
    ] {
        let e = rejected("cns-renewable.json", |v| v["pins"][2]["value"] = value.into());
        assert!(e.contains(why), "{value:?}: {e}");
    }
    let e = rejected("cns-renewable.json", |v| v["pins"][1]["min_len"] = 0.into());
    assert!(e.contains("pins[1] (PUK CNS0).min_len: 0, a cns card's PIN objects have 5"), "{e}");
    let e = rejected("cns-renewable.json", |v| v["pins"][0]["charset"] = "ascii".into());
    assert!(e.contains("pins[0] (PIN CNS0).charset"), "{e}");
    let e = rejected("oberthur-renewable.json", |v| v["pins"][1]["value"] = "123".into());
    assert!(e.contains("pins[1] (SCM).value: 3 characters; the rule is 4 to 64 printable ASCII characters"), "{e}");
    let e = rejected("oberthur-renewable.json", |v| v["pins"][1]["value"] = "1234\u{7}".into());
    assert!(e.contains("pins[1] (SCM).value: has characters other than printable ASCII"), "{e}");
}

#[test]
fn image_rule_key_bytes_must_be_a_key_of_the_slots_algorithm() {
    let e = rejected("cns-renewable.json", |v| v["keys"][0]["material"]["pkcs1"] = "3003020100".into());
    assert!(e.contains("keys[0] (") && e.contains(".material: not an RSA private key"), "{e}");
    // A real key with one byte of its private exponent changed: well-formed DER, wrong numbers.
    let e = rejected("cns-renewable.json", |v| {
        let hex = v["keys"][1]["material"]["pkcs1"].as_str().unwrap().to_owned();
        let mut bytes = firmalab_emulator::hex::decode(&hex).unwrap();
        let at = bytes.len() - 400;
        bytes[at] ^= 0x01;
        v["keys"][1]["material"]["pkcs1"] = firmalab_emulator::hex::encode(&bytes).into();
    });
    assert!(e.contains("keys[1] (") && e.contains(".material: not an RSA private key"), "{e}");
    let e = rejected("cns-renewable.json", |v| {
        v["keys"][0]["material"] = serde_json::json!({"kind": "ec_p256", "scalar": "01".repeat(32)});
    });
    assert!(e.contains("keys[0] (") && e.contains(".material: a P-256 scalar in an RSA slot"), "{e}");
    let e = rejected("cns-renewable.json", |v| {
        v["capabilities"]["p256"] = true.into();
        v["keys"][0]["algorithm"] = "ec_p256".into();
        v["keys"][0]["material"] = serde_json::json!({"kind": "ec_p256", "scalar": "00".repeat(32)});
    });
    assert!(e.contains(".material: not a P-256 private scalar"), "{e}");
}

#[test]
fn image_rule_an_rsa_keys_crt_values_must_follow_from_its_primes() {
    // dP, dQ, qInv are the last three INTEGERs of an RSA-2048 PKCS#1 key (~131 bytes each):
    // a byte changed in each. The rsa crate recomputes them and would sign correctly; OpenSSL
    // signs with them, and a faulty CRT signature gives away a prime.
    for (what, from_end) in [("qInv", 1), ("dQ", 140), ("dP", 275)] {
        let e = rejected("cns-renewable.json", |v| {
            let hex = v["keys"][1]["material"]["pkcs1"].as_str().unwrap().to_owned();
            let mut bytes = firmalab_emulator::hex::decode(&hex).unwrap();
            let at = bytes.len() - from_end;
            bytes[at] ^= 0x01;
            v["keys"][1]["material"]["pkcs1"] = firmalab_emulator::hex::encode(&bytes).into();
        });
        assert!(e.contains("keys[1] (") && e.contains("CRT values"), "{what}: {e}");
    }
}

#[test]
fn image_rule_sibling_fids_are_unique_and_3f00_is_only_the_mf() {
    let e = rejected("cns-renewable.json", |v| {
        let children = v["mf"]["body"]["children"].as_array_mut().unwrap();
        let first = children[0].clone();
        children.push(first);
    });
    assert!(e.contains("mf.body.children[") && e.contains("].fid: 1000 appears twice under 3F00"), "{e}");
    let e = rejected("cns-renewable.json", |v| {
        v["mf"]["body"]["children"][0]["body"]["children"][0]["fid"] = "3F00".into()
    });
    assert!(
        e.contains("mf.body.children[0].body.children[0].fid: 3F00 under 3F00/1000; 3F00 is the MF's own FID"),
        "{e}"
    );
}

#[test]
fn image_rule_records_fit_record_len_and_max_records() {
    let records = |v: &mut serde_json::Value| -> serde_json::Value {
        v["mf"]["body"]["children"][0]["body"]["children"][2]["body"].clone()
    };
    let e = rejected("oberthur-renewable.json", |v| {
        let mut body = records(v);
        body["records"][1] = "00".repeat(142).into();
        v["mf"]["body"]["children"][0]["body"]["children"][2]["body"] = body;
    });
    assert!(
        e.contains("mf.body.children[0].body.children[2].body.records[1] (3F00/5011/3000): 142 bytes, longer than record_len 141"),
        "{e}"
    );
    let e = rejected("oberthur-renewable.json", |v| {
        let mut body = records(v);
        let one = body["records"][0].clone();
        for _ in 0..3 {
            body["records"].as_array_mut().unwrap().push(one.clone());
        }
        v["mf"]["body"]["children"][0]["body"]["children"][2]["body"] = body;
    });
    assert!(e.contains("body.records (3F00/5011/3000): 5 records, more than max_records 4"), "{e}");
}

#[test]
fn image_rule_files_fit_the_cards_capacity() {
    let e = rejected("cns-renewable.json", |v| v["capacity"] = 4096.into());
    assert!(e.contains("capacity: files, keys and PINs need") && e.contains("more than the card's 4096"), "{e}");
    // 64 000 bytes fit a file but not the 64 KiB card next to everything else.
    let e = rejected("cns-renewable.json", |v| {
        v["mf"]["body"]["children"][0]["body"]["children"][0]["body"]["data"] = "00".repeat(64_000).into();
    });
    assert!(e.contains("more than the card's 65536"), "{e}");
    let e = rejected("cns-renewable.json", |v| {
        v["capacity"] = 100_000_000.into();
        v["mf"]["body"]["children"][0]["body"]["children"][0]["body"]["data"] = "00".repeat(70_000).into();
    });
    assert!(e.contains("mf.body.children[0].body.children[0].body.data (3F00/1000/1002): 70000 bytes"), "{e}");
}

#[test]
fn image_rule_duplicate_json_keys_are_rejected_with_their_path() {
    let good = std::fs::read_to_string(fixture_path("cns-renewable.json")).unwrap();
    let e = load_error(&good.replacen("\"capacity\": 65536", "\"capacity\": 65536,\n  \"capacity\": 999999", 1));
    assert!(e.contains("capacity: key \"capacity\" appears twice in one object"), "{e}");
    let e =
        load_error(&good.replacen("\"value\": \"12345678\"", "\"value\": \"99999999\", \"value\": \"12345678\"", 1));
    assert!(e.contains("pins[0].value: key \"value\" appears twice"), "{e}");
}

#[test]
fn image_rule_every_fixture_and_golden_image_follows_every_rule() {
    for dir in ["fixtures/cards", "fixtures/golden/v1", "fixtures/golden/v2", "fixtures/golden/v3"] {
        for f in json_files(&root().join(dir)) {
            CardImage::load(&f).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
