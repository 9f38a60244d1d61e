//! `depot generate DIR` (hidden): writes the man pages (`DIR/man/`) and
//! shell completions (`DIR/completions/`) rendered from the clap
//! definition, as ripgrep's `rg --generate` does. `cargo xtask gen` runs it
//! and compares the result with the committed files.
//!
//! It writes only below the DIR it is given.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn generate(dir: &Path) -> Result<()> {
    let write = |rel: &Path, bytes: &[u8]| -> Result<()> {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().context("a file has a parent")?)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    for (shell, name) in [
        (Shell::Bash, "depot.bash"),
        (Shell::Zsh, "_depot"),
        (Shell::Fish, "depot.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "depot", &mut out);
        write(&Path::new("completions").join(name), &out)?;
    }
    man_pages(&Cli::command(), "depot", &write)
}

fn man_pages(
    cmd: &clap::Command,
    name: &str,
    write: &dyn Fn(&Path, &[u8]) -> Result<()>,
) -> Result<()> {
    let cmd = cmd.clone().name(name.to_owned());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    write(&Path::new("man").join(format!("{name}.1")), &out)?;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), write)?;
    }
    Ok(())
}
