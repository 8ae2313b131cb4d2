//! `firmalab completions bash|zsh|fish`: the shell completion script on standard output.

use super::CliResult;
use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Writes the completion script of `cmd` (the whole command line) for the shell asked. A
/// reader that stops early (`| head`) ends the output quietly; any other write error is one.
pub fn run(a: CompletionsArgs, cmd: &mut clap::Command) -> CliResult {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, cmd, "firmalab", &mut script);
    match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing the completion script: {e}").into())
        }
        _ => Ok(0),
    }
}
