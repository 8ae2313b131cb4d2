//! `firmalab completions bash|zsh|fish`: the shell completion script on standard output.

use super::CliResult;
use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Writes the completion script of `cmd` (the whole command line) for the shell asked.
pub fn run(a: CompletionsArgs, cmd: &mut clap::Command) -> CliResult {
    clap_complete::generate(a.shell, cmd, "firmalab", &mut std::io::stdout());
    Ok(0)
}
