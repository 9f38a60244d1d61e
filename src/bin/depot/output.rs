//! What depot prints: data on stdout (text tables or JSON), diagnostics on
//! stderr (`error: …`, `Caused by:`, `hint:`), and the exit code.
//!
//! It owns stdout, stderr and the mapping of error kinds to exit codes; the
//! library never prints.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::OutputFormat;
use serde::Serialize;

use crate::exit;
use crate::settings::Settings;

pub fn init_logging(settings: &Settings) {
    let default = if settings.quiet {
        "error"
    } else {
        match settings.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("depot={default},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Writes to stdout; a closed pipe (`depot … | head`) ends depot quietly.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(i32::from(exit::FAILURE));
    }
}

pub fn json<T: Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("output types serialise");
    text.push('\n');
    print(&text);
}

/// Renders `rows` as left-aligned columns under `headers`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Prints `value` as JSON, or `text()` as text.
pub fn render<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce() -> String) {
    match format {
        OutputFormat::Json => json(value),
        OutputFormat::Text => print(&text()),
    }
}

/// The documented exit code of each kind of failure.
fn code(kind: depot::ErrorKind) -> u8 {
    match kind {
        depot::ErrorKind::Failure => exit::FAILURE,
        depot::ErrorKind::Usage => exit::USAGE,
        depot::ErrorKind::Refused => exit::REFUSED,
        depot::ErrorKind::Pending => exit::PENDING,
    }
}

/// The first core error in the chain decides; anything else (a settings
/// file that cannot be read, a failed runtime) is a failure.
fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(depot::error_kind)
        .map_or(exit::FAILURE, code)
}

fn hint(err: &anyhow::Error) -> Option<&'static str> {
    for cause in err.chain() {
        if depot::error_kind(cause) == Some(depot::ErrorKind::Refused) {
            return Some("wait for the other command to finish, then run this one again");
        }
        if let Some(depot::mirror::MirrorError::Signature { .. }) = cause.downcast_ref() {
            return Some(
                "check that --keyring holds upstream's signing key; the mirror's previous state is unchanged",
            );
        }
        if let Some(depot::mirror::MirrorError::Downloads { first, .. }) = cause.downcast_ref()
            && matches!(
                **first,
                depot::http::FetchError::Network { .. } | depot::http::FetchError::Status { .. }
            )
        {
            return Some("run the update again: verified files are kept and not downloaded twice");
        }
    }
    None
}

/// Prints `error: …`, its causes and a hint; returns the exit code.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    let mut text = format!("error: {err}\n");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("  Caused by: {cause}\n"));
    }
    if let Some(h) = hint(err) {
        text.push_str(&format!("hint: {h}\n"));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
    ExitCode::from(exit_code(err))
}

/// Human-readable byte count.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_core_error_in_a_chain_decides_the_exit_code() {
        let busy = depot::lock::LockError::Busy {
            kind: "mirror",
            name: "m".into(),
            holder: None,
        };
        let err = anyhow::Error::new(depot::mirror::MirrorError::Lock(busy)).context("updating");
        assert_eq!(super::exit_code(&err), 3);
        assert_eq!(super::exit_code(&anyhow::anyhow!("foreign")), 1);
        for (kind, want) in [
            (depot::ErrorKind::Failure, 1),
            (depot::ErrorKind::Usage, 2),
            (depot::ErrorKind::Refused, 3),
            (depot::ErrorKind::Pending, 4),
        ] {
            assert_eq!(super::code(kind), want);
        }
    }

    #[test]
    fn table_aligns_columns() {
        let t = super::table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
