//! The `depot` command: parse → resolve settings → one core call → render.
//!
//! It owns the async runtime, the interrupt and the process's exit code;
//! everything else is a call into the library.

mod build_cmd;
mod cli;
mod commands;
mod generate;
mod output;
mod progress;
mod retention_cmd;
mod settings;
mod test_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

/// Documented exit codes (see `depot --help`).
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const PENDING: u8 = 4;
    pub const INTERRUPTED: u8 = 130;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Generate { dir } = &cli.command {
        return match generate::generate(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => output::report_error(&e),
        };
    }
    let settings = match settings::Settings::resolve(&cli.global) {
        Ok(s) => s,
        Err(e) => return output::report_error(&e.into()),
    };
    output::init_logging(&settings);
    // Commands that fetch, serve or run tests get worker threads; the
    // rest work on local files and start faster on the current thread.
    let mut builder = match cli.command {
        Command::Mirror(_)
        | Command::Publish(_)
        | Command::Serve { .. }
        | Command::Promote { .. }
        | Command::Test(_)
        | Command::Train(_)
        | Command::Build(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return output::report_error(
                &anyhow::Error::new(e).context("cannot start the async runtime"),
            );
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli.command, &settings) => Some(result),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match result {
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(e)) => output::report_error(&e),
        None => {
            eprintln!("interrupted");
            ExitCode::from(exit::INTERRUPTED)
        }
    }
}
