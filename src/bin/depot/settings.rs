//! The binary's half of settings: how to print (quiet, verbose, progress
//! bars, output format). Everything that changes what a command does —
//! flag, environment and settings-file precedence — is resolved by the
//! core's [`depot::settings::Settings`].
//!
//! It decides how to print, never what a command does.

use crate::cli::{GlobalArgs, OutputFormat};

#[derive(Debug)]
pub struct Settings {
    pub core: depot::settings::Settings,
    pub quiet: bool,
    pub verbose: u8,
    pub progress: bool,
    pub format: OutputFormat,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Self, depot::settings::SettingsError> {
        let core = depot::settings::Settings::resolve(&depot::settings::GlobalFlags {
            root: args.root.clone(),
            config: args.config.clone(),
        })?;
        let progress = !args.quiet
            && !args.no_progress
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Ok(Self {
            core,
            quiet: args.quiet,
            verbose: args.verbose,
            progress,
            format: args.output_format,
        })
    }
}
