//! `cargo xtask gen [--check]`: renders shell completions (completions/)
//! and man pages (man/) by running `depot generate DIR` (the binary owns
//! its clap definition). With `--check`, fails when the committed files
//! differ from what the definition renders (CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const DIRS: [&str; 2] = ["completions", "man"];

/// Every file under `dir`'s generated folders, by path relative to `dir`.
fn files(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for sub in DIRS {
        for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten() {
            let entry = entry?;
            let rel = Path::new(sub).join(entry.file_name());
            files.insert(rel, std::fs::read(entry.path())?);
        }
    }
    Ok(files)
}

fn render(repo: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let out = tempfile::tempdir()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo)
        .args(["run", "--quiet", "--bin", "depot", "--", "generate"])
        .arg(out.path())
        .status()
        .context("cannot run `cargo run --bin depot`")?;
    if !status.success() {
        bail!("`depot generate` failed ({status})");
    }
    files(out.path())
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
    let rendered = render(&repo)?;
    let committed = files(&repo)?;
    let mut stale = Vec::new();
    for (rel, bytes) in &rendered {
        if committed.get(rel) != Some(bytes) {
            stale.push(rel.display().to_string());
            if !check {
                let path = repo.join(rel);
                std::fs::create_dir_all(path.parent().context("a parent")?)?;
                std::fs::write(&path, bytes)?;
            }
        }
    }
    for rel in committed.keys().filter(|rel| !rendered.contains_key(*rel)) {
        stale.push(format!("{} (no longer generated)", rel.display()));
        if !check {
            std::fs::remove_file(repo.join(rel))?;
        }
    }
    if check && !stale.is_empty() {
        bail!(
            "completions/man pages are stale: {}\nrun `cargo xtask gen` and commit the result",
            stale.join(", ")
        );
    }
    Ok(())
}
