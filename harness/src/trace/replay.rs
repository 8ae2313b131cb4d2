//! Replaying a trace against a card (in-process or in a reader) with a verdict per command.
//!
//! Each recorded command is sent as recorded (placeholders filled from the secrets given);
//! resets and power cycles the session went through are done again before the next command.
//! The answer is compared with the recorded one: equal; differs (status word, length, data); or
//! not comparable when the command's answer varies by nature (signatures and other private-key
//! operations, challenges, generated keys: [`super::classify`]) and its status word and length
//! match.
//!
//! On a reader (a physical token, `physical`): a secret-bearing command is sent only with its
//! secret given; a secret the card refuses stops the replay (no further try is spent); a command
//! whose recorded answer was a refused secret is not sent (it would spend a try); commands that
//! change the card need `allow_changes` (the user's consent). A dry run sends read-only commands
//! only and stops at the first other one.

use super::classify::{Compare, Effect, Kind, classify, secret_refused};
use super::{Event, Item, Secrets, Template, Trace};
use crate::transport::Transport;
use serde::Serialize;

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub secrets: Secrets,
    /// Send read-only commands only; stop at the first other one.
    pub dry_run: bool,
    /// The card is in a reader (possibly someone's qualified signature token).
    pub physical: bool,
    /// The user agreed to commands that change the card (physical cards only).
    pub allow_changes: bool,
    /// Which of the trace's readers to replay when it used several.
    pub reader: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    Equal,
    Differs {
        how: Vec<String>,
    },
    NotComparable {
        why: String,
    },
    /// Not sent: a dry run, a hidden command, a safety rule.
    NotSent {
        why: String,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct CommandResult {
    /// 1-based position among the replayed commands.
    pub index: usize,
    pub line: usize,
    pub connection: u32,
    /// Number of the transaction within the trace, when inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<usize>,
    pub name: &'static str,
    pub effect: Effect,
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub commands: usize,
    pub equal: usize,
    pub differ: usize,
    pub not_comparable: usize,
    pub not_sent: usize,
    pub resets: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub card: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader_in_trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub atr_recorded: Option<String>,
    pub atr_card: String,
    pub dry_run: bool,
    pub results: Vec<CommandResult>,
    pub summary: Summary,
    /// Why the replay stopped before the end (a dry run's first changing command, a refused
    /// secret, a transport failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The card or transport failed (exit code 3).
    pub transport_failed: bool,
}

impl Report {
    pub fn atr_equal(&self) -> bool {
        self.atr_recorded.as_ref().is_none_or(|a| a.eq_ignore_ascii_case(&self.atr_card))
    }

    /// Text report: one line per command that was not equal (all with `all`), then the summary.
    pub fn render(&self, all: bool) -> String {
        let mut out = String::new();
        match &self.atr_recorded {
            Some(a) if self.atr_equal() => out.push_str(&format!("ATR as recorded ({a})\n")),
            Some(a) => out.push_str(&format!("ATR differs: recorded {a}, the card's {}\n", self.atr_card)),
            None => out.push_str(&format!("ATR not in the log; the card's {}\n", self.atr_card)),
        }
        for r in &self.results {
            let tx = r.transaction.map_or(String::new(), |t| format!(" t{t}"));
            let head = format!("#{:<4} line {:<6} c{}{tx:<5} {:<30}", r.index, r.line, r.connection, r.name);
            match &r.verdict {
                Verdict::Equal if all => out.push_str(&format!("{head} equal\n")),
                Verdict::Equal => {}
                Verdict::Differs { how } => {
                    out.push_str(&format!("{head} DIFFERS: {}\n", how.join("; ")));
                    out.push_str(&format!("      > {}\n", short(&r.command)));
                    if let Some(e) = &r.expected {
                        out.push_str(&format!("      recorded < {}\n", short(e)));
                    }
                    if let Some(g) = &r.got {
                        out.push_str(&format!("      card     < {}\n", short(g)));
                    }
                }
                Verdict::NotComparable { why } => out.push_str(&format!("{head} not comparable: {why}\n")),
                Verdict::NotSent { why } if r.command.is_empty() => out.push_str(&format!("{head} not sent: {why}\n")),
                Verdict::NotSent { why } => {
                    out.push_str(&format!("{head} not sent: {why}\n      > {}\n", short(&r.command)))
                }
            }
        }
        let s = &self.summary;
        out.push_str(&format!(
            "{}{} commands: {} equal, {} differ, {} not comparable, {} not sent ({} card resets replayed)\n",
            if self.dry_run { "dry run: " } else { "" },
            s.commands,
            s.equal,
            s.differ,
            s.not_comparable,
            s.not_sent,
            s.resets
        ));
        if let Some(why) = &self.stopped {
            out.push_str(&format!("stopped: {why}\n"));
        }
        out
    }
}

fn short(h: &str) -> String {
    if h.chars().count() <= 120 {
        h.to_owned()
    } else {
        let head: String = h.chars().take(100).collect();
        format!("{head}… ({} hex digits)", h.len())
    }
}

/// One command to replay, in order.
struct Step<'a> {
    connection: u32,
    transaction: Option<usize>,
    item: &'a Item,
    /// Resets to do before it (the session's resets since the previous command).
    reset_before: bool,
}

/// Picks the reader to replay, and lists the trace's commands for it.
fn plan<'a>(trace: &'a Trace, wanted: Option<&str>) -> Result<(Option<String>, Vec<Step<'a>>), String> {
    let readers = trace.readers();
    let chosen: Option<String> = match (wanted, readers.as_slice()) {
        (Some(w), _) => {
            let hits: Vec<&Option<String>> =
                readers.iter().filter(|r| r.as_deref().is_some_and(|r| r == w || r.contains(w))).collect();
            match hits.as_slice() {
                [one] => (*one).clone(),
                _ => {
                    return Err(format!(
                        "the trace has no single reader matching {w:?}; its readers: {}",
                        list(&readers)
                    ));
                }
            }
        }
        (None, [one]) => one.clone(),
        (None, []) => None,
        (None, _) => {
            return Err(format!(
                "the trace sent commands to several readers ({}): choose one with --trace-reader",
                list(&readers)
            ));
        }
    };
    let conns = trace.readers_of_connections();
    let reader_of = |c: u32| conns.iter().find(|(n, _)| *n == c).and_then(|(_, r)| r.clone());
    let mine = |c: u32| chosen.is_none() || reader_of(c).is_none() || reader_of(c) == chosen;
    let mut steps = Vec::new();
    let mut reset = false;
    let mut tx_no = 0;
    for e in &trace.events {
        match e {
            Event::Transaction { connection, items, end, .. } if mine(*connection) => {
                tx_no += 1;
                for item in items {
                    steps.push(Step { connection: *connection, transaction: Some(tx_no), item, reset_before: reset });
                    reset = false;
                }
                reset |= end.is_some_and(|d| d.resets());
            }
            Event::Transaction { .. } => tx_no += 1,
            Event::Exchanges { connection, items, .. } if mine(*connection) => {
                for item in items {
                    steps.push(Step { connection: *connection, transaction: None, item, reset_before: reset });
                    reset = false;
                }
            }
            Event::Reconnect { connection, init, .. } if mine(*connection) => reset |= init.resets(),
            Event::Disconnect { connection, disposition, .. } if mine(*connection) => reset |= disposition.resets(),
            Event::Card { reader, event, .. } if reader.is_none() || chosen.is_none() || *reader == chosen => {
                use super::CardEvent::*;
                reset |= matches!(event, Reset | PowerOff | Removed);
            }
            _ => {}
        }
    }
    Ok((chosen, steps))
}

fn list(readers: &[Option<String>]) -> String {
    readers.iter().map(|r| r.clone().unwrap_or_else(|| "(unnamed)".into())).collect::<Vec<_>>().join(", ")
}

/// The bytes a template stands for, secrets as zeros (to classify and measure it).
fn shape(t: &Template) -> Vec<u8> {
    t.masked().into_iter().map(|b| b.unwrap_or(0)).collect()
}

fn sw_of(bytes: &[Option<u8>]) -> Option<u16> {
    match bytes {
        [.., Some(a), Some(b)] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

/// Compares the card's answer with the recorded one.
fn compare(expected: &[Option<u8>], got: &[u8], kind: &Kind) -> Verdict {
    let got_o: Vec<Option<u8>> = got.iter().map(|b| Some(*b)).collect();
    let (esw, gsw) = (sw_of(expected), sw_of(&got_o));
    let (elen, glen) = (expected.len().saturating_sub(2), got.len().saturating_sub(2));
    let mut how = Vec::new();
    if esw != gsw {
        let f = |s: Option<u16>| s.map_or("none".into(), |s| format!("{s:04X}"));
        how.push(format!("status word {} recorded, {} now", f(esw), f(gsw)));
    }
    if elen != glen {
        how.push(format!("length {elen} recorded, {glen} now"));
    }
    let comparable = matches!(kind.compare, Compare::Data);
    if comparable && elen == glen {
        let diffs: Vec<usize> = (0..elen).filter(|&i| expected[i].is_some_and(|b| b != got[i])).collect();
        if let Some(first) = diffs.first() {
            how.push(format!("data: {} of {elen} bytes differ, the first at offset {first}", diffs.len()));
        }
    }
    if !how.is_empty() {
        return Verdict::Differs { how };
    }
    match kind.compare {
        // Nothing that could vary came back (a chained block's 9000).
        Compare::StatusAndLength(_) if elen == 0 => Verdict::Equal,
        Compare::StatusAndLength(why) => {
            Verdict::NotComparable { why: format!("{why}; status word and length ({glen} bytes) as recorded") }
        }
        Compare::Data if expected.iter().any(Option::is_none) => {
            Verdict::NotComparable { why: "the recorded answer holds secret bytes: the rest is as recorded".into() }
        }
        Compare::Data => Verdict::Equal,
    }
}

/// Checks that a replay may start: every secret the commands need is given (unless a dry run),
/// and on a physical card changes are consented to.
fn preflight(steps: &[Step<'_>], opts: &Options) -> Result<(), String> {
    let mut missing: Vec<String> = Vec::new();
    let mut changing: Vec<(usize, &'static str)> = Vec::new();
    for s in steps {
        let Item::Apdu(e) = s.item else { continue };
        let t = Template::parse(&e.command)?;
        let kind = classify(&shape(&t));
        if kind.effect != Effect::ReadOnly {
            changing.push((e.line, kind.name));
        }
        if let Err(names) = t.fill(&opts.secrets) {
            for n in names {
                let p = t.placeholders().find(|p| n.starts_with(&p.name)).map(|p| p.to_string()).unwrap_or_default();
                let entry = format!("{n} {p} ({} at line {})", kind.name, e.line);
                if !missing.iter().any(|m| m.starts_with(&format!("{n} "))) {
                    missing.push(entry);
                }
            }
        }
    }
    if !opts.dry_run && !missing.is_empty() {
        return Err(format!(
            "the trace needs secrets that were not given: {}; pass --secret NAME=VALUE (text, padded as the placeholder says) or NAME=hex:…, or use --dry-run",
            missing.join(", ")
        ));
    }
    if opts.physical && !opts.dry_run && !opts.allow_changes && !changing.is_empty() {
        let (line, name) = changing[0];
        return Err(format!(
            "on a reader this trace would send {} commands that change the card, spend a secret or use a private key (the first: {name} at line {line}); to send them pass --yes to `firmalab trace replay`, or --dry-run to send only the read-only ones",
            changing.len()
        ));
    }
    Ok(())
}

/// Replays a trace on a card.
pub fn replay(trace: &Trace, card: &mut dyn Transport, opts: &Options) -> Result<Report, String> {
    let (reader_in_trace, steps) = plan(trace, opts.reader.as_deref())?;
    preflight(&steps, opts)?;
    let mut report = Report {
        card: card.name(),
        reader_in_trace,
        atr_recorded: trace.atr.clone(),
        atr_card: super::hex(&card.atr()),
        dry_run: opts.dry_run,
        results: Vec::new(),
        summary: Summary::default(),
        stopped: None,
        transport_failed: false,
    };
    // What GET RESPONSE continues, per connection.
    let mut previous: Vec<(u32, Kind)> = Vec::new();
    let mut pending_reset = false;
    for (i, s) in steps.iter().enumerate() {
        pending_reset |= s.reset_before;
        let result = |verdict: Verdict, line: usize, kind: &Kind, command: String, expected, got| CommandResult {
            index: i + 1,
            line,
            connection: s.connection,
            transaction: s.transaction,
            name: kind.name,
            effect: kind.effect,
            command,
            expected,
            got,
            verdict,
        };
        let e = match s.item {
            Item::Apdu(e) => e,
            Item::Hidden(h) => {
                let kind = Kind { name: "(not in the log)", effect: Effect::Secret, compare: Compare::Data };
                let why = format!("hidden in the log: {}", h.what);
                report.results.push(result(Verdict::NotSent { why }, h.line, &kind, String::new(), None, None));
                continue;
            }
        };
        let template = Template::parse(&e.command)?;
        let mut kind = classify(&shape(&template));
        if kind.name == "GET RESPONSE"
            && let Some((_, k)) = previous.iter().find(|(c, _)| *c == s.connection)
        {
            kind = Kind { name: "GET RESPONSE", effect: Effect::ReadOnly, compare: k.compare };
        } else {
            previous.retain(|(c, _)| *c != s.connection);
            previous.push((s.connection, kind));
        }
        let expected = e.response.as_deref().map(Template::parse).transpose()?;
        let expected_text = e.response.clone();
        let recorded_refusal = expected.as_ref().and_then(|t| sw_of(&t.masked())).is_some_and(secret_refused);
        // Where the replay stops without sending: a dry run at the first command that is not a
        // read, and on a reader a secret the recording shows refused (it would spend a try).
        let stop = if opts.dry_run && kind.effect != Effect::ReadOnly {
            Some(format!("dry run: stops at the first command that {}", kind.effect.describe()))
        } else if opts.physical && kind.effect == Effect::Secret && recorded_refusal {
            Some("the recorded answer refused this secret: on a reader it would spend a try".to_owned())
        } else {
            None
        };
        if let Some(why) = stop {
            report.results.push(result(
                Verdict::NotSent { why: why.clone() },
                e.line,
                &kind,
                e.command.clone(),
                expected_text,
                None,
            ));
            report.stopped = Some(format!("{why} ({} at line {})", kind.name, e.line));
            break;
        }
        let bytes = match template.fill(&opts.secrets) {
            Ok(b) => b,
            Err(names) => {
                // Only in a dry run (preflight refuses otherwise), and only for read-only commands.
                let why = format!("needs the secrets {}", names.join(", "));
                report.results.push(result(
                    Verdict::NotSent { why },
                    e.line,
                    &kind,
                    e.command.clone(),
                    expected_text,
                    None,
                ));
                continue;
            }
        };
        if pending_reset && !opts.dry_run {
            card.reset().map_err(|e| format!("resetting the card as the session did: {e}"))?;
            report.summary.resets += 1;
        }
        pending_reset = false;
        let got = match card.transmit_raw(&bytes) {
            Ok(g) => g,
            Err(err) => {
                let why = format!("the card or reader failed: {err}");
                report.results.push(result(
                    Verdict::NotSent { why: why.clone() },
                    e.line,
                    &kind,
                    e.command.clone(),
                    expected_text,
                    None,
                ));
                report.stopped = Some(why);
                report.transport_failed = true;
                break;
            }
        };
        let verdict = match &expected {
            // Secrets given fill the recorded answer too (the Oberthur unblock code).
            Some(t) => match t.fill(&opts.secrets) {
                Ok(bytes) => compare(&bytes.into_iter().map(Some).collect::<Vec<_>>(), &got, &kind),
                Err(_) => compare(&t.masked(), &got, &kind),
            },
            None => Verdict::NotComparable {
                why: format!("no answer recorded ({})", e.error.as_deref().unwrap_or("unknown")),
            },
        };
        let refused_now = kind.effect == Effect::Secret
            && got.len() >= 2
            && secret_refused(u16::from_be_bytes([got[got.len() - 2], got[got.len() - 1]]));
        // The answer is shown with the trace's placeholders where the secrets were.
        let shown = if kind.effect == Effect::Secret { mask_like(&got, expected.as_ref()) } else { super::hex(&got) };
        report.results.push(result(verdict, e.line, &kind, e.command.clone(), expected_text, Some(shown)));
        if opts.physical && refused_now && !recorded_refusal {
            report.stopped = Some(format!(
                "the card refused the secret of {} at line {}: stopping so that no further try is spent",
                kind.name, e.line
            ));
            break;
        }
    }
    for r in &report.results {
        report.summary.commands += 1;
        match r.verdict {
            Verdict::Equal => report.summary.equal += 1,
            Verdict::Differs { .. } => report.summary.differ += 1,
            Verdict::NotComparable { .. } => report.summary.not_comparable += 1,
            Verdict::NotSent { .. } => report.summary.not_sent += 1,
        }
    }
    Ok(report)
}

/// An answer to a secret-bearing command, with its secret bytes (if the recording had any there)
/// masked again.
fn mask_like(got: &[u8], expected: Option<&Template>) -> String {
    match expected {
        Some(t) if t.len() == got.len() && t.placeholders().next().is_some() => {
            let mut out = String::new();
            let mut i = 0;
            for p in &t.0 {
                match p {
                    super::Piece::Byte(_) => {
                        out.push_str(&format!("{:02X}", got[i]));
                        i += 1;
                    }
                    super::Piece::Secret(s) => {
                        out.push_str(&s.to_string());
                        i += s.len;
                    }
                }
            }
            out
        }
        _ => super::hex(got),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CardEvent, Disposition, Exchange, Source};
    use super::*;
    use crate::transport::TransportError;

    /// A card that answers from a script and records what it was asked.
    struct Scripted {
        answers: Vec<(&'static str, &'static str)>,
        log: Vec<String>,
    }

    impl Transport for Scripted {
        fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            let c = super::super::hex(command);
            self.log.push(c.clone());
            let a = self.answers.iter().find(|(k, _)| *k == c).map_or("6D00", |(_, v)| *v);
            Ok(super::super::unhex(a).unwrap_or_default())
        }
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn name(&self) -> String {
            "scripted".into()
        }
        fn reset(&mut self) -> Result<(), TransportError> {
            self.log.push("reset".into());
            Ok(())
        }
    }

    fn apdu(line: usize, c: &str, r: &str) -> Item {
        Item::Apdu(Exchange { line, command: c.into(), response: Some(r.into()), error: None })
    }

    fn trace(events: Vec<Event>) -> Trace {
        Trace {
            schema: super::super::SCHEMA_NAME.into(),
            version: 1,
            source: Source { format: super::super::Format::Pcscd, file: "t".into(), lines: 0 },
            atr: Some("3B00".into()),
            secrets: vec![],
            events,
        }
    }

    fn tx(connection: u32, items: Vec<Item>, end: Option<Disposition>) -> Event {
        Event::Transaction { connection, line: 1, items, end }
    }

    #[test]
    fn resets_of_every_kind_happen_once_before_the_next_command_and_never_in_a_dry_run() {
        let sel = "00A4000C023F00";
        let c = |n: u32| Event::Connect { connection: n, line: 1, reader: Some("R".into()), protocol: None };
        let ex = |n: u32| Event::Exchanges { connection: n, line: 1, items: vec![apdu(1, sel, "9000")] };
        let t = trace(vec![
            c(1),
            tx(1, vec![apdu(2, sel, "9000")], Some(Disposition::Reset)),
            tx(1, vec![apdu(3, sel, "9000")], Some(Disposition::Leave)),
            Event::Reconnect { connection: 1, line: 4, init: Disposition::Unpower },
            ex(1),
            Event::Disconnect { connection: 1, line: 5, disposition: Disposition::Eject },
            c(2),
            ex(2),
            Event::Card { line: 6, reader: None, event: CardEvent::PowerOff },
            ex(2),
            Event::Card { line: 7, reader: Some("R".into()), event: CardEvent::Removed },
            Event::Card { line: 8, reader: Some("R".into()), event: CardEvent::Reset },
            ex(2),
            Event::Reconnect { connection: 2, line: 9, init: Disposition::Leave },
            Event::Disconnect { connection: 2, line: 10, disposition: Disposition::Leave },
            Event::Card { line: 11, reader: Some("R".into()), event: CardEvent::PowerOn },
            Event::Card { line: 11, reader: Some("R".into()), event: CardEvent::Inserted },
            c(3),
            ex(3),
            Event::Disconnect { connection: 3, line: 12, disposition: Disposition::Reset },
        ]);
        let mut card = Scripted { answers: vec![(sel, "9000")], log: vec![] };
        let r = replay(&t, &mut card, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let r_ = "reset";
        assert_eq!(
            card.log,
            [sel, r_, sel, r_, sel, r_, sel, r_, sel, r_, sel, sel],
            "one reset per reset, two in a row as one, none after leave, power on or at the end"
        );
        assert_eq!((r.summary.resets, r.summary.equal), (5, 7));
        assert_eq!(r.results[1].transaction, Some(2));
        let mut card = Scripted { answers: vec![(sel, "9000")], log: vec![] };
        let r =
            replay(&t, &mut card, &Options { dry_run: true, ..Options::default() }).unwrap_or_else(|e| panic!("{e}"));
        assert!(card.log.iter().all(|l| l == sel), "{:?}", card.log);
        assert_eq!(r.summary.resets, 0);
    }

    #[test]
    fn only_the_chosen_readers_commands_and_resets_are_replayed() {
        let (a, b) = ("00A4000C023F01", "00A4000C023F02");
        let t = trace(vec![
            Event::Connect { connection: 1, line: 1, reader: Some("Reader A".into()), protocol: None },
            Event::Connect { connection: 2, line: 2, reader: Some("Reader B".into()), protocol: None },
            tx(1, vec![apdu(3, a, "9000")], Some(Disposition::Reset)),
            tx(2, vec![apdu(4, b, "9000")], None),
            Event::Reconnect { connection: 1, line: 5, init: Disposition::Reset },
            Event::Card { line: 6, reader: Some("Reader A".into()), event: CardEvent::PowerOff },
            tx(1, vec![apdu(7, a, "9000")], None),
            Event::Exchanges { connection: 2, line: 8, items: vec![apdu(8, b, "9000")] },
            Event::Disconnect { connection: 1, line: 9, disposition: Disposition::Unpower },
            Event::Card { line: 10, reader: Some("Reader B".into()), event: CardEvent::Reset },
            tx(2, vec![apdu(11, b, "9000")], None),
        ]);
        let mut card = Scripted { answers: vec![(a, "9000"), (b, "9000")], log: vec![] };
        let opts = Options { reader: Some("Reader B".into()), ..Options::default() };
        let r = replay(&t, &mut card, &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(card.log, [b, b, "reset", b], "reader A's commands and resets are not replayed");
        let tx: Vec<Option<usize>> = r.results.iter().map(|c| c.transaction).collect();
        assert_eq!(tx, [Some(2), None, Some(4)], "transactions numbered over the whole trace");
        let mut card = Scripted { answers: vec![(a, "9000"), (b, "9000")], log: vec![] };
        let opts = Options { reader: Some("Reader A".into()), ..Options::default() };
        replay(&t, &mut card, &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(card.log, [a, "reset", a]);
    }

    #[test]
    fn on_a_reader_only_a_refused_secret_stops_the_replay_and_secret_answers_stay_masked() {
        let sel = "00A4000C023F00";
        let t = trace(vec![tx(
            1,
            vec![
                apdu(1, "00200081", "63C3"),
                apdu(2, sel, "9000"),
                apdu(3, "0020008108{s:8:FF}", "{s:8:FF}9000"),
                apdu(4, sel, "9000"),
            ],
            None,
        )]);
        let physical = |secret: &str| Options {
            secrets: Secrets::parse(&[format!("s={secret}")]).unwrap_or_default(),
            physical: true,
            allow_changes: true,
            ..Options::default()
        };
        // A tries query answered 63C2 differs but spends nothing: the replay goes on.
        let mut card = Scripted {
            answers: vec![("00200081", "63C2"), (sel, "9000"), ("00200081083132333435363738", "31323334353637389000")],
            log: vec![],
        };
        let r = replay(&t, &mut card, &physical("12345678")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.summary.commands, 4, "{}", r.render(true));
        assert!(r.stopped.is_none());
        assert_eq!(r.results[2].got.as_deref(), Some("{s:8:FF}9000"), "the secret echoed back is masked");
        // The same secret refused: stop before anything else is sent.
        let mut card = Scripted {
            answers: vec![("00200081", "63C3"), (sel, "9000"), ("00200081083131313131313131", "63C2")],
            log: vec![],
        };
        let r = replay(&t, &mut card, &physical("11111111")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(card.log.len(), 3);
        assert_eq!(r.results[2].got.as_deref(), Some("63C2"));
        assert!(r.stopped.as_deref().unwrap_or_default().contains("refused the secret"));
    }

    #[test]
    fn a_get_response_is_judged_like_the_command_it_continues() {
        let t = trace(vec![tx(
            1,
            vec![
                apdu(1, "002A9E9A020102", "6104"),
                apdu(2, "00C0000004", "AAAAAAAA9000"),
                apdu(3, "00B0000002", "6102"),
                apdu(4, "00C0000002", "BBBB9000"),
            ],
            None,
        )]);
        let mut card = Scripted {
            answers: vec![
                ("002A9E9A020102", "6104"),
                ("00C0000004", "CCCCCCCC9000"),
                ("00B0000002", "6102"),
                ("00C0000002", "CCCC9000"),
            ],
            log: vec![],
        };
        let r = replay(&t, &mut card, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let v: Vec<&Verdict> = r.results.iter().map(|c| &c.verdict).collect();
        assert_eq!(v[0], &Verdict::Equal, "a 61xx has no data to vary");
        assert!(matches!(v[1], Verdict::NotComparable { why } if why.contains("a signature")), "{v:?}");
        assert_eq!(v[2], &Verdict::Equal);
        assert_eq!(
            v[3],
            &Verdict::Differs { how: vec!["data: 2 of 2 bytes differ, the first at offset 0".into()] },
            "after a READ BINARY the data counts"
        );
        assert_eq!(r.summary, Summary { commands: 4, equal: 2, differ: 1, not_comparable: 1, not_sent: 0, resets: 0 });
    }

    #[test]
    fn differences_say_status_word_length_and_data() {
        let kind = classify(&[0x00, 0xB0, 0, 0, 4]);
        let e = |s: &[u8]| s.iter().map(|b| Some(*b)).collect::<Vec<_>>();
        let how = |v: Verdict| if let Verdict::Differs { how } = v { how } else { vec![] };
        assert_eq!(
            how(compare(&e(&[1, 2, 0x90, 0]), &[0x6A, 0x82], &kind)),
            ["status word 9000 recorded, 6A82 now", "length 2 recorded, 0 now"]
        );
        assert_eq!(
            how(compare(&e(&[1, 2, 3, 0x90, 0]), &[1, 9, 9, 0x90, 0], &kind)),
            ["data: 2 of 3 bytes differ, the first at offset 1"]
        );
        assert_eq!(compare(&e(&[1, 2, 0x90, 0]), &[1, 2, 0x90, 0], &kind), Verdict::Equal);
        // Unknown (secret) bytes are not compared, and say so.
        let masked = vec![Some(1), None, Some(0x90), Some(0)];
        assert!(matches!(compare(&masked, &[1, 7, 0x90, 0], &kind), Verdict::NotComparable { .. }));
        assert_eq!(
            how(compare(&masked, &[2, 7, 0x90, 0], &kind)),
            ["data: 1 of 2 bytes differ, the first at offset 0"]
        );
        assert_eq!(how(compare(&e(&[0x90]), &[0x90, 0], &kind)), ["status word none recorded, 9000 now"]);
    }

    #[test]
    fn the_text_report_lists_what_is_not_equal_and_everything_with_all() {
        let t = trace(vec![tx(1, vec![apdu(7, "00A4000C023F00", "9000"), apdu(8, "00B0000002", "01029000")], None)]);
        let mut card = Scripted { answers: vec![("00A4000C023F00", "9000"), ("00B0000002", "01039000")], log: vec![] };
        let r = replay(&t, &mut card, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let text = r.render(false);
        assert!(!text.contains("SELECT"), "{text}");
        assert!(text.contains("#2    line 8      c1 t1   READ BINARY"), "{text}");
        assert!(text.contains("DIFFERS: data: 1 of 2 bytes differ, the first at offset 1\n      > 00B0000002\n      recorded < 01029000\n      card     < 01039000\n"), "{text}");
        assert!(
            text.ends_with("2 commands: 1 equal, 1 differ, 0 not comparable, 0 not sent (0 card resets replayed)\n"),
            "{text}"
        );
        assert!(r.render(true).contains("#1    line 7      c1 t1   SELECT                         equal\n"));
        assert!(text.starts_with("ATR as recorded (3B00)\n"), "{text}");
        assert_eq!(short(&"A".repeat(130)), format!("{}… (130 hex digits)", "A".repeat(100)));
        assert_eq!(short("ABCD"), "ABCD");
    }
}
