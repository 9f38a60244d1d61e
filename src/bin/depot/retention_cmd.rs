//! `depot prune`, `depot gc`, `depot check`: options → one core call
//! ([`depot::retention`]) → rendering.

use anyhow::Result;
use depot::retention::{check, gc, prune};
use depot::root::Root;

use crate::cli::PruneArgs;
use crate::output::{bytes, render, table};
use crate::settings::Settings;

pub fn prune(args: &PruneArgs, root: &Root, settings: &Settings) -> Result<()> {
    let opts = prune::PruneOptions {
        scope: args.scope(),
        keep_last: args.keep_last,
        keep_days: args.keep_days,
        keep_released: args.keep_released,
        dry_run: args.dry_run,
        now: settings.core.now,
    };
    let report = prune::prune(root, &opts)?;
    render(settings.format, &report, || {
        let verb = if report.dry_run {
            "would drop"
        } else {
            "dropped"
        };
        let kind = |k: prune::Kind| {
            serde_json::to_value(k)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let mut rows: Vec<Vec<String>> = report
            .dropped
            .iter()
            .map(|d| vec![verb.to_owned(), kind(d.kind), d.name.clone(), String::new()])
            .collect();
        rows.extend(report.kept.iter().map(|d| {
            vec![
                "keep".to_owned(),
                kind(d.kind),
                d.name.clone(),
                d.kept_because.join("; "),
            ]
        }));
        let mut text = String::new();
        for f in &report.finished {
            text.push_str(&format!("finished the interrupted drop of {f}\n"));
        }
        if !rows.is_empty() {
            text.push_str(&table(&["ACTION", "KIND", "NAME", "WHY KEPT"], &rows));
        }
        text.push_str(&format!(
            "{} {}, {} kept; {} {} ({} blobs) once `depot gc` runs\n",
            verb,
            report.dropped.len(),
            report.kept.len(),
            if report.dry_run {
                "would free"
            } else {
                "frees"
            },
            bytes(report.bytes),
            report.blobs,
        ));
        text
    });
    Ok(())
}

pub fn gc(dry_run: bool, root: &Root, settings: &Settings) -> Result<()> {
    let report = gc::gc(
        root,
        &gc::GcOptions {
            dry_run,
            now: settings.core.now,
        },
    )?;
    render(settings.format, &report, || {
        let mut text = String::new();
        for f in &report.finished_drops {
            text.push_str(&format!("finished the interrupted drop of {f}\n"));
        }
        text.push_str(&format!(
            "{} {} blobs, {} shared package files ({} generations), {} catalogs, {} rpm-verified entries, {} temp files: {} freed{}; {} blobs kept\n",
            if report.dry_run { "would delete" } else { "deleted" },
            report.blobs,
            report.shared_files,
            report.generations,
            report.catalogs,
            report.rpm_verified_entries,
            report.temp_files,
            bytes(report.bytes),
            match report.bytes_still_published {
                0 => String::new(),
                n => format!(" ({} more still held by published versions)", bytes(n)),
            },
            report.kept_blobs,
        ));
        text
    });
    Ok(())
}

pub fn check(full: bool, root: &Root, settings: &Settings) -> Result<()> {
    let report = check::check(root, check::CheckOptions { full })?;
    render(settings.format, &report, || {
        let mut text = String::new();
        for p in &report.problems {
            text.push_str(&format!(
                "{}: {}: {}\n",
                p.kind.label(),
                p.subject,
                p.detail
            ));
        }
        for v in &report.interrupted_drops {
            text.push_str(&format!(
                "interrupted drop: {v}: its tree is aside; the next prune or gc finishes it\n"
            ));
        }
        text.push_str(&format!(
            "checked {} manifests, {} versions ({} package files){}: {} problem{}\n",
            report.manifests,
            report.versions,
            report.package_files,
            if report.full {
                format!(", {} blobs hashed", report.blobs_hashed)
            } else {
                String::new()
            },
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" },
        ));
        text
    });
    Ok(report.result()?)
}
