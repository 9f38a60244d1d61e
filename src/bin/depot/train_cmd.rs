//! `depot train …`: parse → one core call → render. The run's outcome
//! (failed, blocked, pending) comes back from the core as an error kind
//! after the report is printed.

use anyhow::Result;
use depot::root::Root;
use depot::train::{self, Journal};

use crate::cli::TrainCommand;
use crate::output::{render, table};
use crate::progress::CliReporter;
use crate::settings::Settings;

pub async fn run(cmd: TrainCommand, root: &Root, settings: &Settings) -> Result<()> {
    let reporter = CliReporter::new(settings.progress);
    match cmd {
        TrainCommand::Run {
            file,
            dry_run: true,
        } => {
            let plan = train::dry_run(root, &settings.core, &file)?;
            render(settings.format, &plan, || {
                let rows: Vec<Vec<String>> = plan
                    .steps
                    .iter()
                    .map(|s| vec![s.id.clone(), s.makes.clone(), s.after.join(", ")])
                    .collect();
                format!(
                    "train {} run {} (dry run: nothing written)\n{}",
                    plan.train,
                    plan.run,
                    table(&["STEP", "MAKES", "AFTER"], &rows)
                )
            });
            Ok(())
        }
        TrainCommand::Run {
            file,
            dry_run: false,
        } => {
            let journal = train::start(root, &settings.core, &file, &reporter).await?;
            report(settings, &journal)
        }
        TrainCommand::Resume { file, run } => {
            let journal =
                train::resume(root, &settings.core, &file, run.as_deref(), &reporter).await?;
            report(settings, &journal)
        }
        TrainCommand::Status { file, run } => {
            let journal = train::status(root, &file, run.as_deref())?;
            render(settings.format, &journal, || steps_text(&journal));
            Ok(())
        }
        TrainCommand::List { file } => {
            let runs = train::list(root, &file)?;
            render(settings.format, &runs, || {
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.run.clone(),
                            r.outcome.map_or("unfinished", |o| o.word()).to_owned(),
                            format!("{}/{}", r.done, r.steps),
                            r.failed.to_string(),
                            r.blocked.to_string(),
                            r.waiting.to_string(),
                        ]
                    })
                    .collect();
                table(
                    &["RUN", "OUTCOME", "DONE", "FAILED", "BLOCKED", "WAITING"],
                    &rows,
                )
            });
            Ok(())
        }
    }
}

fn steps_text(j: &Journal) -> String {
    let rows: Vec<Vec<String>> = j
        .steps
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.state.word().to_owned(),
                s.duration_ms
                    .map_or(String::new(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
                s.detail(),
            ]
        })
        .collect();
    format!(
        "train {} run {}\n{}",
        j.train,
        j.run,
        table(&["STEP", "STATE", "TIME", "DETAIL"], &rows)
    )
}

/// Prints the final report, then returns the run's outcome (exit 1 or 4
/// through the error's kind).
fn report(settings: &Settings, journal: &Journal) -> Result<()> {
    render(settings.format, journal, || steps_text(journal));
    journal.result()?;
    Ok(())
}
