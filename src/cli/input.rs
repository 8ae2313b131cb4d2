//! What the user types: secrets from flags, files, standard input or a hidden prompt;
//! questions and the confirmation by serial on the terminal.

use firmalab_harness::flows::Confirmer;
use firmalab_harness::open::{Ask, confirm_by_serial};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Whether a terminal is attached to ask on.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// A line typed on the terminal after `prompt` (on standard error).
fn ask_line(prompt: &str) -> Result<String, String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(line)
}

/// The confirmation by serial for a card in `reader`: `--confirm-serial`, or typed on the
/// terminal when one is attached.
pub fn serial_confirmer<'a>(given: Option<String>, reader: &'a str) -> Confirmer<'a> {
    let ask: Option<Ask<'a>> = if interactive() { Some(Box::new(ask_line)) } else { None };
    confirm_by_serial(given, reader, ask)
}

/// A secret from the first line of a file, or of standard input for `-`.
pub fn read_secret_file(path: &Path, name: &str) -> Result<String, String> {
    use std::io::BufRead;
    let mut line = String::new();
    if path == Path::new("-") {
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("--{name}-file -: {e}"))?;
    } else {
        let meta = std::fs::metadata(path).map_err(|e| format!("--{name}-file {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("--{name}-file {}: not a regular file", path.display()));
        }
        if meta.len() > 4096 {
            return Err(format!("--{name}-file {}: {} bytes, not a {name}", path.display(), meta.len()));
        }
        let f = std::fs::File::open(path).map_err(|e| format!("--{name}-file {}: {e}", path.display()))?;
        std::io::BufReader::new(f)
            .read_line(&mut line)
            .map_err(|e| format!("--{name}-file {}: {e}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!("firmalab: warning: {} is readable by other users (chmod 600 it)", path.display());
            }
        }
    }
    let value = line.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err(format!("--{name}-file {}: empty first line", path.display()));
    }
    Ok(value)
}

/// Where a secret comes from: a flag, a file, or (missing) the terminal.
pub struct SecretSource<'a> {
    pub value: &'a Option<String>,
    pub file: &'a Option<PathBuf>,
    /// The flag's name without dashes: `pin`, `new-pin` …
    pub name: &'a str,
}

impl SecretSource<'_> {
    /// The secret from its flag or file, if given.
    pub fn given(&self) -> Result<Option<String>, String> {
        match (self.value, self.file) {
            (Some(v), _) => Ok(Some(v.clone())),
            (None, Some(f)) => read_secret_file(f, self.name).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// A secret from its flag or file, or asked without echo on a terminal.
pub fn secret(src: SecretSource<'_>, prompt: &str) -> Result<String, String> {
    if let Some(v) = src.given()? {
        return Ok(v);
    }
    if !interactive() {
        return Err(format!(
            "--{0} is required (or --{0}-file FILE, `-` for standard input: no terminal to ask on)",
            src.name
        ));
    }
    rpassword::prompt_password(prompt).map_err(|e| format!("reading the {}: {e}", src.name))
}

/// A new secret: from its flag or file, or asked twice (new, repeat).
pub fn new_secret(src: SecretSource<'_>, what: &str) -> Result<(String, String), String> {
    if let Some(v) = src.given()? {
        return Ok((v.clone(), v));
    }
    let name = src.name;
    let ask = |prompt: &str| secret(SecretSource { value: &None, file: &None, name }, prompt);
    let new = ask(&format!("New {what}: "))?;
    let repeat = ask(&format!("Repeat the new {what}: "))?;
    Ok((new, repeat))
}

/// A text value from its flag, or asked on the terminal.
pub fn text(flag: &Option<String>, name: &str, prompt: &str) -> Result<String, String> {
    if let Some(v) = flag {
        return Ok(v.clone());
    }
    if !interactive() {
        return Err(format!("--{name} is required (no terminal to ask on)"));
    }
    Ok(ask_line(prompt)?.trim().to_owned())
}

/// A yes/no question: `yes` answers it; without a terminal the answer is no.
pub fn confirm(yes: bool, question: &str) -> bool {
    if yes {
        return true;
    }
    if !interactive() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "s" | "S" | "yes" | "si" | "sì")
}
