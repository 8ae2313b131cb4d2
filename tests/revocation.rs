//! Revocation as relying software sees it, checked by OpenSSL: `openssl ocsp` serves the index
//! `firmalab ra ocsp-index` writes and `openssl ocsp -url` asks it; `openssl verify -crl_check`
//! reads the CRL `firmalab ra crl` writes.
//!
//! OpenSSL 3.0's responder listens on every interface (`-port N` takes no address), so each
//! responder runs in a private network namespace that has only a loopback interface, on an
//! ephemeral port it reports; clients join that namespace (`nsenter`). Needs root, util-linux
//! (`unshare`, `nsenter`) and iproute2 (`ip`). Without `openssl` or those the tests print
//! `SKIPPED …` and pass, except with `CI=true`, where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::client::{self, KeyRole};
use firmalab_harness::transport::in_process::InProcess;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, firmalab, out as text, root, s};

/// 2026-06-01 12:00 UTC, the fixtures' reference date, for `openssl verify -attime`.
const AT: &str = "1780315200";

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints why a test cannot run, or fails in CI.
fn skip(test: &str, why: &str) {
    if ci() {
        panic!("{test}: required in CI (CI=true), but {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn openssl_missing() -> Option<String> {
    (!have("openssl", "version")).then(|| "openssl not installed (apt-get install openssl)".to_owned())
}

fn netns_missing() -> Option<String> {
    if let Some(m) = openssl_missing() {
        return Some(m);
    }
    for (tool, pkg) in [("unshare", "util-linux"), ("nsenter", "util-linux"), ("ip", "iproute2")] {
        if !have(tool, "-V") {
            return Some(format!("{tool} not installed ({pkg})"));
        }
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")));
    if root != Some(true) {
        return Some("a private network namespace for the OCSP responder needs root".into());
    }
    None
}

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-revocation-{name}"))
}

/// A fixture copy enrolled in a fresh back office; returns (image, ra, signature cert PEM).
fn enrolled_card(dir: &Path, fixture: &str) -> (PathBuf, PathBuf, PathBuf) {
    let img = dir.join(fixture);
    std::fs::copy(root().join("fixtures/cards").join(fixture), &img).unwrap();
    let ra = dir.join("ra.json");
    ok(firmalab(&[
        "ra",
        "enroll",
        "--ra",
        s(&ra),
        "--card",
        s(&img),
        "--email",
        "m@example.it",
        "--mobile",
        "+393330000001",
        "--now",
        "2026-06-01",
    ]));
    let pem = dir.join("sign.pem");
    cert_pem(&img, KeyRole::Signature, &pem);
    (img, ra, pem)
}

/// Reads a certificate off the card (through its APDUs) and writes it as PEM.
fn cert_pem(img: &Path, role: KeyRole, out: &Path) {
    let image = CardImage::load(img).unwrap();
    let mut c = client::open(Box::new(InProcess::ephemeral(image, CardRng::insecure_deterministic(1), "t"))).unwrap();
    let der = c.certificates().unwrap().into_iter().find(|x| x.role == role).unwrap().der;
    let path_der = out.with_extension("der");
    std::fs::write(&path_der, der).unwrap();
    ok(Command::new("openssl").args(["x509", "-inform", "DER", "-in", s(&path_der), "-out", s(out)]).output().unwrap());
}

fn serial_of(pem: &Path) -> String {
    let o = ok(Command::new("openssl").args(["x509", "-noout", "-serial", "-in", s(pem)]).output().unwrap());
    o.trim().trim_start_matches("serial=").to_owned()
}

/// `openssl ocsp` serving `dir` (written by `ra ocsp-index`) in its own network namespace.
struct Responder {
    child: Child,
    port: u16,
}

impl Responder {
    fn start(dir: &Path) -> Responder {
        let f = |n: &str| s(&dir.join(n)).to_owned();
        let script = format!(
            "ip link set lo up && exec openssl ocsp -index '{}' -port 0 -rsigner '{}' -rkey '{}' -CA '{}' -ignore_err",
            f("index.txt"),
            f("ocsp.pem"),
            f("ocsp.key.pem"),
            f("ca.pem")
        );
        let mut child = Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Readiness: the responder prints "ACCEPT [::]:PORT" once it listens. Both streams
        // are read on threads; the wait is bounded.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seen = vec![];
        let port = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = line.split_whitespace().nth(1).filter(|_| line.starts_with("ACCEPT"))
                        && let Some(port) = p.rsplit(':').next().and_then(|x| x.parse::<u16>().ok())
                    {
                        break port;
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("openssl ocsp did not start listening within 20 s: {seen:?}");
                }
            }
        };
        Responder { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs a command inside the responder's network namespace.
    fn run(&self, cmd: &str, args: &[&str]) -> Output {
        let ns = format!("--net=/proc/{}/ns/net", self.child.id());
        // A refused diagnostic writes no support bundle into the source tree.
        Command::new("nsenter")
            .arg(ns)
            .arg("--")
            .arg(cmd)
            .args(args)
            .current_dir(root())
            .env("FIRMALAB_SUPPORT_BUNDLE", "off")
            .output()
            .unwrap()
    }

    /// `openssl ocsp -url`: the status line and reason of `cert`.
    fn ask(&self, dir: &Path, cert: &Path) -> String {
        let o = self.run(
            "openssl",
            &[
                "ocsp",
                "-url",
                &self.url(),
                "-issuer",
                s(&dir.join("ca.pem")),
                "-CAfile",
                s(&dir.join("chain.pem")),
                "-cert",
                s(cert),
            ],
        );
        let t = text(&o);
        assert!(o.status.success() && t.contains("Response verify OK"), "openssl ocsp: {t}");
        t
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ocsp_index(ra: &Path, dir: &Path) {
    ok(firmalab(&["ra", "ocsp-index", "--ra", s(ra), "--out", s(dir), "--now", "2026-06-01"]));
}

fn diagnostic(r: &Responder, img: &Path, ra: &Path, ocsp: bool) -> Output {
    let bin = env!("CARGO_BIN_EXE_firmalab");
    let mut args =
        vec!["flow", "diagnostic", "--card", s(img), "--pin", "12345678", "--now", "2026-06-01", "--ra", s(ra)];
    let url = r.url();
    if ocsp {
        args.extend(["--ocsp", url.as_str()]);
    }
    r.run(bin, &args)
}

#[test]
fn ocsp_responder_says_good_hold_good_revoked_as_the_back_office_changes_and_the_diagnostic_asks_it() {
    let test = "ocsp_responder_says_good_hold_good_revoked";
    if let Some(why) = netns_missing() {
        return skip(test, &why);
    }
    let dir = scratch("ocsp");
    let (img, ra, sign) = enrolled_card(&dir, "cns-renewable.json");
    let serial = serial_of(&sign);
    // The certificate tells relying software where to ask.
    let aia = ok(Command::new("openssl").args(["x509", "-noout", "-ocsp_uri", "-in", s(&sign)]).output().unwrap());
    assert_eq!(aia.trim(), "http://127.0.0.1:2560");
    let idx = dir.join("ocsp");
    let ra_s = s(&ra).to_owned();
    let change = |what: &str| {
        let o = firmalab(&["ra", what, "--ra", &ra_s, "--cert", &serial, "--now", "2026-06-01"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    };

    ocsp_index(&ra, &idx);
    let r = Responder::start(&idx);
    assert!(r.ask(&idx, &sign).contains("sign.pem: good"));
    let o = diagnostic(&r, &img, &ra, true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    drop(r);

    change("suspend");
    ocsp_index(&ra, &idx);
    let r = Responder::start(&idx);
    let t = r.ask(&idx, &sign);
    assert!(t.contains("sign.pem: revoked") && t.contains("Reason: certificateHold"), "{t}");
    let o = diagnostic(&r, &img, &ra, true);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("CertRevoked"), "{}", text(&o));

    // Reactivated in the back office while the responder still serves the old index: the
    // diagnostic with --ocsp believes the responder, without it the back office.
    change("reactivate");
    assert_eq!(diagnostic(&r, &img, &ra, true).status.code(), Some(1), "--ocsp asks the responder");
    assert_eq!(diagnostic(&r, &img, &ra, false).status.code(), Some(0), "without --ocsp: the back office");
    drop(r);
    ocsp_index(&ra, &idx);
    let r = Responder::start(&idx);
    assert!(r.ask(&idx, &sign).contains("sign.pem: good"));
    assert_eq!(diagnostic(&r, &img, &ra, true).status.code(), Some(0));
    drop(r);

    let o = firmalab(&[
        "ra",
        "revoke",
        "--ra",
        &ra_s,
        "--card",
        "6010000000000101",
        "--reason",
        "key-compromise",
        "--now",
        "2026-06-01",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    ocsp_index(&ra, &idx);
    let r = Responder::start(&idx);
    let t = r.ask(&idx, &sign);
    assert!(t.contains("sign.pem: revoked") && t.contains("Reason: keyCompromise"), "{t}");
    assert!(t.contains("Revocation Time: Jun  1 00:00:00 2026 GMT"), "{t}");
    assert!(text(&diagnostic(&r, &img, &ra, true)).contains("CertRevoked"));
    // The responder key is private; the index lists both certificates.
    assert_eq!(std::fs::metadata(idx.join("ocsp.key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(idx.join("index.txt")).unwrap().lines().count(), 2);
}

#[test]
fn openssl_verify_with_the_crl_refuses_a_revoked_or_suspended_certificate() {
    let test = "openssl_verify_with_the_crl_refuses_a_revoked_or_suspended_certificate";
    if let Some(why) = openssl_missing() {
        return skip(test, &why);
    }
    let dir = scratch("crl");
    let (_img, ra, sign) = enrolled_card(&dir, "oberthur-renewable.json");
    let serial = serial_of(&sign);
    // A folder that does not exist yet: `ra crl` creates it.
    let crl = dir.join("crl").join("ca.crl.pem");
    let chain = root().join("fixtures/ca/chain.pem");
    let verify = || {
        let o = Command::new("openssl")
            .args(["verify", "-crl_check", "-attime", AT, "-CAfile", s(&chain), "-CRLfile", s(&crl), s(&sign)])
            .output()
            .unwrap();
        (o.status.success(), text(&o))
    };
    let write_crl = || ok(firmalab(&["ra", "crl", "--ra", s(&ra), "--out", s(&crl), "--now", "2026-06-01"]));
    let crl_text = || ok(Command::new("openssl").args(["crl", "-noout", "-text", "-in", s(&crl)]).output().unwrap());
    let ra_do = |args: &[&str]| {
        let mut a = vec!["ra"];
        a.extend_from_slice(args);
        a.extend(["--ra", s(&ra), "--now", "2026-06-01"]);
        ok(firmalab(&a))
    };

    write_crl();
    let (good, t) = verify();
    assert!(good && t.contains(": OK"), "{t}");
    let cdp = ok(Command::new("openssl")
        .args(["x509", "-noout", "-ext", "crlDistributionPoints", "-in", s(&sign)])
        .output()
        .unwrap());
    assert!(cdp.contains("URI:http://127.0.0.1:2561/firmalab-test-ca.crl"), "{cdp}");

    ra_do(&["suspend", "--cert", &serial]);
    write_crl();
    let (good, t) = verify();
    assert!(!good && t.contains("certificate revoked"), "a suspended certificate: {t}");
    assert!(crl_text().contains("Certificate Hold"));

    ra_do(&["reactivate", "--cert", &serial]);
    write_crl();
    assert!(verify().0, "reactivated: {}", verify().1);

    ra_do(&["revoke", "--card", "1a2b3c4d", "--reason", "key-compromise"]);
    write_crl();
    let (good, t) = verify();
    assert!(!good && t.contains("certificate revoked"), "{t}");
    let c = crl_text();
    assert!(c.contains("Key Compromise") && c.contains("X509v3 CRL Number: \n                4"), "{c}");
    assert!(c.contains("Issuer: C = IT, L = Arezzo"), "{c}");
}

#[test]
fn image_new_writes_the_given_revocation_urls_into_the_certificates() {
    let test = "image_new_writes_the_given_revocation_urls_into_the_certificates";
    if let Some(why) = openssl_missing() {
        return skip(test, &why);
    }
    let dir = scratch("urls");
    let img = dir.join("card.json");
    ok(firmalab(&[
        "image",
        "new",
        "--profile",
        "cns",
        "--out",
        s(&img),
        "--seed",
        "urls",
        "--now",
        "2026-06-01",
        "--ocsp-url",
        "http://127.0.0.1:9/ocsp",
        "--crl-url",
        "http://127.0.0.1:9/ca.crl",
    ]));
    let pem = dir.join("auth.pem");
    cert_pem(&img, KeyRole::Authentication, &pem);
    let t = ok(Command::new("openssl").args(["x509", "-noout", "-text", "-in", s(&pem)]).output().unwrap());
    assert!(t.contains("OCSP - URI:http://127.0.0.1:9/ocsp") && t.contains("URI:http://127.0.0.1:9/ca.crl"), "{t}");
    let o =
        firmalab(&["image", "new", "--profile", "cns", "--out", s(&dir.join("x.json")), "--ocsp-url", "https://x/"]);
    assert!(!o.status.success() && text(&o).contains("http://"), "{}", text(&o));
}
