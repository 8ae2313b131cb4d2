//! What the CA "sends": SMS and emails written as files into an outbox folder instead of
//! going out. Emails are RFC 5322 messages (CRLF lines, `Date`, `From`, `To`, `Subject`,
//! `Message-ID`, UTF-8 text body) that any mail tool opens; SMS are a `To:` line and the text.
//!
//! They may carry half of a PIN or PUK, so the folder is created `0700` and every file `0600`
//! through `firmalab_emulator::storage`; a message never replaces an earlier one.

use crate::dates::Date;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where messages go unless `--outbox` says otherwise.
pub const DEFAULT_OUTBOX: &str = "firmalab-outbox";
/// The sender of every message.
pub const FROM: &str = "firmalab Test CA <noreply@ca.firmalab.test>";
/// The domain of Message-IDs.
pub const DOMAIN: &str = "ca.firmalab.test";

/// A point in time for a `Date:` header: a day and the seconds since its midnight (UTC).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub date: Date,
    pub seconds: u32,
}

impl Stamp {
    /// Midnight of an injected date (`--now`), or the system clock.
    pub fn at(now: Option<Date>) -> Self {
        match now {
            Some(date) => Stamp { date, seconds: 0 },
            None => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Stamp { date: Date::from_days_since_epoch((secs / 86_400) as i64), seconds: (secs % 86_400) as u32 }
            }
        }
    }

    /// RFC 5322 §3.3 date-time, e.g. `Mon, 01 Jun 2026 00:00:00 +0000`.
    pub fn rfc5322(self) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let d = self.date;
        let weekday = DAYS[self.date.days_since_epoch().rem_euclid(7) as usize];
        let month = MONTHS[usize::from(d.month.clamp(1, 12) - 1)];
        let (h, m, s) = (self.seconds / 3600, self.seconds / 60 % 60, self.seconds % 60);
        format!("{weekday}, {:02} {month} {:04} {h:02}:{m:02}:{s:02} +0000", d.day, d.year)
    }
}

/// An email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub date: Stamp,
    /// The left part of the Message-ID (made unique by the caller).
    pub id: String,
    pub body: String,
}

fn header_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

impl Email {
    /// The message as RFC 5322 text with CRLF line ends. Header values are ASCII (the subject
    /// and addresses are; anything else is dropped from them); the body is UTF-8, declared so.
    pub fn render(&self) -> String {
        let ascii = |s: &str| header_safe(s).chars().filter(char::is_ascii).collect::<String>();
        let mut m = String::new();
        for (name, value) in [
            ("Date", self.date.rfc5322()),
            ("From", FROM.to_owned()),
            ("To", ascii(&self.to)),
            ("Subject", ascii(&self.subject)),
            ("Message-ID", format!("<{}@{DOMAIN}>", ascii(&self.id).replace(['<', '>', '@', ' '], ""))),
            ("MIME-Version", "1.0".into()),
            ("Content-Type", "text/plain; charset=utf-8".into()),
            ("Content-Transfer-Encoding", "8bit".into()),
        ] {
            m.push_str(&format!("{name}: {value}\r\n"));
        }
        m.push_str("\r\n");
        for line in self.body.lines() {
            // A line of a lone "." ends a message in SMTP; none of ours needs one.
            m.push_str(line.trim_end_matches('\r'));
            m.push_str("\r\n");
        }
        m
    }
}

/// An SMS: the number and the text.
pub fn sms(to: &str, text: &str) -> String {
    format!("To: {}\n\n{text}\n", header_safe(to))
}

/// Why a message could not be delivered to the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The outbox folder could not be created.
    #[error("outbox {}: {source}", dir.display())]
    Folder { dir: PathBuf, source: std::io::Error },
    /// The message could not be written.
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Creates the outbox folder (`0700` when new).
pub fn ensure_dir(dir: &Path) -> Result<(), OutboxError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| OutboxError::Folder { dir: dir.to_owned(), source })
}

/// Writes `bytes` as `dir/stem.ext`, or `dir/stem-2.ext` … if that exists: a message never
/// replaces another. Mode `0600`, atomic.
pub fn deliver(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) -> Result<PathBuf, OutboxError> {
    ensure_dir(dir)?;
    let mut path = dir.join(format!("{stem}.{ext}"));
    let mut n = 2;
    while std::fs::symlink_metadata(&path).is_ok() {
        path = dir.join(format!("{stem}-{n}.{ext}"));
        n += 1;
    }
    firmalab_emulator::storage::write_private(&path, bytes)
        .map_err(|source| OutboxError::Write { path: path.clone(), source })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_rfc5322_with_the_right_weekday() {
        assert_eq!(Stamp { date: Date::new(2026, 6, 1), seconds: 0 }.rfc5322(), "Mon, 01 Jun 2026 00:00:00 +0000");
        assert_eq!(Stamp { date: Date::new(1970, 1, 1), seconds: 3723 }.rfc5322(), "Thu, 01 Jan 1970 01:02:03 +0000");
        assert_eq!(
            Stamp { date: Date::new(2029, 12, 31), seconds: 86_399 }.rfc5322(),
            "Mon, 31 Dec 2029 23:59:59 +0000"
        );
    }

    #[test]
    fn a_message_has_crlf_headers_a_blank_line_and_no_injected_header() {
        let m = Email {
            to: "a@example.it\r\nBcc: evil@example.com".into(),
            subject: "Prova".into(),
            date: Stamp { date: Date::new(2026, 6, 1), seconds: 0 },
            id: "x.1".into(),
            body: "riga uno\nriga è due".into(),
        }
        .render();
        assert!(m.starts_with("Date: Mon, 01 Jun 2026 00:00:00 +0000\r\nFrom: "), "{m}");
        assert!(m.contains("\r\nTo: a@example.itBcc: evil@example.com\r\n"), "{m}");
        assert!(m.contains("\r\nMessage-ID: <x.1@ca.firmalab.test>\r\n"));
        assert!(m.ends_with("\r\n\r\nriga uno\r\nriga è due\r\n"), "{m}");
        assert_eq!(m.matches("\r\nBcc:").count(), 0);
    }
}
