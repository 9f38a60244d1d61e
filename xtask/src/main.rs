//! `cargo xtask gen [--check]`: renders shell completions (completions/)
//! and man pages (man/) from depot's clap definition. With `--check`, fails
//! when the committed files differ from what the definition renders (CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;

fn render() -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = depot::cli::Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "depot", &mut out);
        let name = match shell {
            Shell::Bash => "depot.bash",
            Shell::Zsh => "_depot",
            _ => "depot.fish",
        };
        files.insert(Path::new("completions").join(name), out);
    }
    let cmd = depot::cli::Cli::command();
    man_pages(&cmd, "depot", &mut files)?;
    Ok(files)
}

fn man_pages(
    cmd: &clap::Command,
    name: &str,
    files: &mut BTreeMap<PathBuf, Vec<u8>>,
) -> Result<()> {
    let cmd = cmd.clone().name(name.to_owned());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    files.insert(Path::new("man").join(format!("{name}.1")), out);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), files)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen"] => false,
        ["gen", "--check"] => true,
        _ => bail!("usage: cargo xtask gen [--check]"),
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = render()?;
    let mut stale = Vec::new();
    for (rel, bytes) in &files {
        let path = repo.join(rel);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            if check {
                stale.push(rel.display().to_string());
            } else {
                std::fs::create_dir_all(path.parent().context("a parent")?)?;
                std::fs::write(&path, bytes)?;
            }
        }
    }
    for dir in ["completions", "man"] {
        for entry in std::fs::read_dir(repo.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let rel = Path::new(dir).join(entry.file_name());
            if !files.contains_key(&rel) {
                if check {
                    stale.push(format!("{} (no longer generated)", rel.display()));
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "completions/man pages are stale: {}\nrun `cargo xtask gen` and commit the result",
            stale.join(", ")
        );
    }
    Ok(())
}
