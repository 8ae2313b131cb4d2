//! `firmalab trace`: import real PC/SC logs, show and replay the traces.

use clap::Subcommand;
use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::trace::replay::{self, Options};
use firmalab_harness::trace::{self, Event, Format, Item, Secrets, Trace};
use firmalab_harness::transport::Transport;
use firmalab_harness::transport::in_process::InProcess;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum TraceCmd {
    /// Import a pcsc-spy, pcscd (--apdu) or OpenSC debug log as a firmalab trace: every command
    /// with the card's answer, grouped by connection and transaction, secrets as placeholders.
    Import {
        file: PathBuf,
        /// The log's format (detected when omitted): pcsc-spy, pcscd, opensc.
        #[arg(long)]
        format: Option<Format>,
        /// Write the trace here (default: print it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A secret the session used, NAME=VALUE (or NAME=hex:…): its placeholders get this name.
        /// Unknown secrets become {secretN:len:pad}. Repeatable.
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// Replace an existing --out file.
        #[arg(long)]
        force: bool,
    },
    /// Replay a trace against a card image (in-process, not saved) or reader:NAME, with a
    /// verdict per command: equal, differs, not comparable. Exit 0 when nothing differs, 1 when
    /// something does, 2 bad usage, 3 card or transport failure.
    Replay(ReplayArgs),
    /// Print a trace: connections, transactions, commands with what each does.
    Show { file: PathBuf },
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    pub file: PathBuf,
    /// A card image (a copy is used: the file is not changed unless --save) or reader:NAME.
    #[arg(long)]
    pub card: String,
    /// A secret the trace's placeholders need, NAME=VALUE or NAME=hex:…. Repeatable. Visible in
    /// /proc/PID/cmdline: for a real token's PIN use --secret-file.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// NAME=FILE: the secret NAME is the first line of FILE (`-`: standard input), as
    /// `flow --pin-file`. Repeatable.
    #[arg(long = "secret-file", value_name = "NAME=FILE")]
    pub secret_files: Vec<String>,
    /// INSECURE deterministic RNG for an in-process card.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print what would be sent; send only read-only commands and stop at the first other one.
    #[arg(long)]
    pub dry_run: bool,
    /// On a reader: agree to the commands that change the card, send a PIN or use a key.
    #[arg(long)]
    pub yes: bool,
    /// Save the image after the replay (what the replayed commands changed).
    #[arg(long)]
    pub save: bool,
    /// Which of the trace's readers to replay when the session used several.
    #[arg(long)]
    pub trace_reader: Option<String>,
    /// Every command's verdict, not only those that are not equal.
    #[arg(long)]
    pub all: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Whether a file is a firmalab trace (so `firmalab replay` hands it here).
pub fn is_trace(path: &Path) -> bool {
    trace::read_bounded(path).is_ok_and(|b| {
        let head = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
        head.contains(&format!("\"{}\"", trace::SCHEMA_NAME))
    })
}

pub fn run(cmd: TraceCmd) -> Result<u8, String> {
    match cmd {
        TraceCmd::Import { file, format, out, secrets, force } => {
            let given = Secrets::parse(&secrets)?;
            let t = trace::import(&file, format, &given)?;
            match out {
                Some(out) => {
                    if out.exists() && !force {
                        return Err(format!("{} exists; pass --force to replace it", out.display()));
                    }
                    t.save(&out)?;
                    print!("{}", summary(&t));
                    println!("written to {}", out.display());
                }
                None => print!("{}", t.to_json()),
            }
            Ok(0)
        }
        TraceCmd::Show { file } => {
            let t = Trace::load(&file)?;
            print!("{}", summary(&t));
            print!("{}", show(&t));
            Ok(0)
        }
        TraceCmd::Replay(a) => replay_cmd(&a),
    }
}

/// `firmalab replay TRACE …` for a trace file.
pub fn replay_from_replay(
    file: &Path,
    card: &str,
    secrets: &[String],
    secret_files: &[String],
    seed: Option<u64>,
    dry_run: bool,
) -> Result<u8, String> {
    replay_cmd(&ReplayArgs {
        file: file.to_owned(),
        card: card.to_owned(),
        secrets: secrets.to_vec(),
        secret_files: secret_files.to_vec(),
        seed,
        dry_run,
        yes: false,
        save: false,
        trace_reader: None,
        all: false,
        json: false,
    })
}

fn replay_cmd(a: &ReplayArgs) -> Result<u8, String> {
    let t = Trace::load(&a.file)?;
    let mut given = a.secrets.clone();
    for s in &a.secret_files {
        let Some((name, path)) = s.split_once('=') else {
            eprintln!("firmalab: --secret-file {s:?}: expected NAME=FILE");
            return Ok(2);
        };
        let value = super::input::read_secret_file(Path::new(path), name)?;
        given.push(format!("{name}={value}"));
    }
    let secrets = match Secrets::parse(&given) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("firmalab: {e}");
            return Ok(2);
        }
    };
    let physical = a.card.starts_with("reader:");
    let mut card: Box<dyn Transport> = if physical {
        if a.save {
            eprintln!("firmalab: --save is for card images");
            return Ok(2);
        }
        match firmalab_harness::open::CardSpec::parse(&a.card)
            .transport(&firmalab_harness::open::OpenOptions::default())
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("firmalab: {e}");
                return Ok(3);
            }
        }
    } else {
        let rng = match a.seed {
            Some(s) => CardRng::insecure_deterministic(s),
            None => CardRng::from_os()?,
        };
        let path = PathBuf::from(&a.card);
        if a.save && !a.dry_run {
            Box::new(InProcess::open(&path, rng).map_err(|e| e.to_string())?)
        } else {
            let image = CardImage::load(&path).map_err(|e| e.to_string())?;
            Box::new(InProcess::ephemeral(image, rng, &path.display().to_string()))
        }
    };
    let opts = Options { secrets, dry_run: a.dry_run, physical, allow_changes: a.yes, reader: a.trace_reader.clone() };
    let report = match replay::replay(&t, card.as_mut(), &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("firmalab: {e}");
            return Ok(2);
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        println!(
            "replay of {} ({}, {} commands) on {}{}",
            a.file.display(),
            t.source.format,
            report.results.len(),
            report.card,
            report.reader_in_trace.as_ref().map(|r| format!(" (the trace's reader {r})")).unwrap_or_default()
        );
        // A dry run shows every command: what would be sent.
        print!("{}", report.render(a.all || a.dry_run));
    }
    Ok(if report.transport_failed {
        3
    } else if report.summary.differ > 0 {
        1
    } else {
        0
    })
}

/// Header lines: source, counts, secrets.
fn summary(t: &Trace) -> String {
    let c = t.counts();
    let mut out = format!(
        "{} log {} ({} lines): {} commands in {} connections, {} transactions{}\n",
        t.source.format,
        t.source.file,
        t.source.lines,
        c.exchanges,
        c.connections,
        c.transactions,
        if c.hidden > 0 { format!("; {} commands hidden by the log", c.hidden) } else { String::new() }
    );
    let readers: Vec<String> = t.readers().into_iter().map(|r| r.unwrap_or_else(|| "(unnamed)".into())).collect();
    out.push_str(&format!("readers: {}\n", readers.join(", ")));
    if let Some(a) = &t.atr {
        out.push_str(&format!("ATR: {a}\n"));
    }
    for s in &t.secrets {
        out.push_str(&format!(
            "secret {} in {} (line {}){}\n",
            s.placeholder,
            s.command,
            s.line,
            if s.named { "" } else { ": give it to replay with --secret" }
        ));
    }
    out
}

/// The whole trace, one line per event or command.
fn show(t: &Trace) -> String {
    let mut out = String::new();
    let mut tx = 0;
    for e in &t.events {
        match e {
            Event::Connect { connection, line, reader, protocol } => out.push_str(&format!(
                "line {line}: connection {connection} to {} {}\n",
                reader.as_deref().unwrap_or("(reader not logged)"),
                protocol.as_deref().unwrap_or("")
            )),
            Event::Transaction { connection, line, items, end } => {
                tx += 1;
                out.push_str(&format!("line {line}: c{connection} transaction {tx}\n"));
                items_lines(items, &mut out);
                if let Some(d) = end {
                    out.push_str(&format!("  end ({d:?})\n"));
                }
            }
            Event::Exchanges { connection, line, items } => {
                out.push_str(&format!("line {line}: c{connection} outside any transaction\n"));
                items_lines(items, &mut out);
            }
            Event::Reconnect { connection, line, init } => {
                out.push_str(&format!("line {line}: c{connection} reconnect ({init:?})\n"))
            }
            Event::Disconnect { connection, line, disposition } => {
                out.push_str(&format!("line {line}: c{connection} disconnect ({disposition:?})\n"))
            }
            Event::Card { line, reader, event } => out.push_str(&format!(
                "line {line}: card {event:?}{}\n",
                reader.as_ref().map(|r| format!(" in {r}")).unwrap_or_default()
            )),
        }
    }
    out
}

fn items_lines(items: &[Item], out: &mut String) {
    for i in items {
        match i {
            Item::Apdu(e) => {
                let shape = trace::Template::parse(&e.command)
                    .map(|t| t.masked().into_iter().map(|b| b.unwrap_or(0)).collect::<Vec<u8>>());
                let kind = shape.map(|s| trace::classify::classify(&s));
                let (name, effect) = kind.map_or(("?", "?"), |k| (k.name, k.effect.describe()));
                out.push_str(&format!("  {:<6} {name} ({effect})\n    > {}\n", e.line, e.command));
                match (&e.response, &e.error) {
                    (Some(r), _) => out.push_str(&format!("    < {r}\n")),
                    (None, Some(err)) => out.push_str(&format!("    < (no answer: {err})\n")),
                    (None, None) => out.push_str("    < (no answer)\n"),
                }
            }
            Item::Hidden(h) => out.push_str(&format!("  {:<6} hidden: {}\n", h.line, h.what)),
        }
    }
}
