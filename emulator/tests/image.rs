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
        for (src, dst) in [("cns-renewable.json", "cns.json"), ("oberthur-renewable.json", "oberthur.json")] {
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

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("firmalab-image-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_error(text: &str) -> String {
    let dir = tmp("errors");
    let file = dir.join(format!("bad-{}.json", text.len()));
    std::fs::write(&file, text).unwrap();
    let e = CardImage::load(&file).unwrap_err().to_string();
    assert!(e.contains(&file.display().to_string()), "error names the file: {e}");
    e
}

#[test]
fn load_errors_name_the_file_and_the_problem() {
    let good = std::fs::read_to_string(fixture_path("cns-renewable.json")).unwrap();
    assert!(load_error("{").contains("not valid JSON"));
    assert!(load_error("[]").contains("not a JSON object"));
    assert!(load_error("{\"version\": 1}").contains("not a card image"));
    assert!(load_error(&good.replacen("\"version\": 1", "\"version\": 99", 1)).contains("newer than this firmalab"));
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
    let dir = tmp("save");
    let file = dir.join("card.json");
    let mut image = image("cns-renewable.json");
    image.save(&file).unwrap();
    image.description = "changed".into();
    image.save(&file).unwrap();
    assert_eq!(CardImage::load(&file).unwrap().description, "changed");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
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
    let dir = tmp("concurrent");
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
