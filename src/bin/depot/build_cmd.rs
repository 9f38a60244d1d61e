//! `depot build …`: parse → one core call → render.

use anyhow::Result;
use depot::build::{self, BuildInfo, BuildKey, DistroSpec, client};
use depot::root::Root;

use crate::cli::build::BuildCommand;
use crate::output::{render, table};
use crate::settings::Settings;

fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn rows(builds: &[BuildInfo]) -> String {
    let rows: Vec<Vec<String>> = builds
        .iter()
        .map(|b| {
            vec![
                b.key.project.clone(),
                b.key.reference.clone(),
                b.key.sha1.clone(),
                format!("{}/{}", b.key.distro, b.key.distro_version),
                b.key.flavor.clone(),
                b.status.to_string(),
                b.packages.to_string(),
                time(b.last_upload),
            ]
        })
        .collect();
    table(
        &[
            "PROJECT",
            "REF",
            "SHA1",
            "DISTRO",
            "FLAVOR",
            "STATUS",
            "PACKAGES",
            "LAST UPLOAD",
        ],
        &rows,
    )
}

/// `DISTRO/VERSION` (the parser checked the shape).
fn split(distro: &str) -> Result<DistroSpec> {
    Ok(distro.parse::<DistroSpec>()?)
}

pub async fn run(cmd: BuildCommand, root: &Root, settings: &Settings) -> Result<()> {
    match cmd {
        BuildCommand::Upload(a) => {
            let d = split(&a.distro)?;
            let key = BuildKey::new(
                &a.project,
                &a.reference,
                &a.sha1,
                &d.distro,
                &d.version,
                a.flavor.as_deref(),
            )?;
            let target = match (&a.server, &a.token_file) {
                (Some(url), Some(file)) => client::Target::server(url, file)?,
                _ => client::Target::Local(root.clone()),
            };
            let opts = client::UploadOptions {
                key,
                arch: a.arch,
                files: a.files,
                force: a.force,
                extra: a
                    .extra
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            };
            let done = client::upload(&target, &settings.core.distros(), &opts).await?;
            render(settings.format, &done, || {
                done.iter()
                    .map(|s| {
                        format!(
                            "{} {}: {} ({})\n",
                            s.build,
                            s.file,
                            s.package,
                            serde_json::to_value(s.outcome)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        )
                    })
                    .collect()
            });
        }
        BuildCommand::List(a) => {
            let q = build::Query {
                project: a.project,
                reference: a.reference,
                sha1: a.sha1,
                distros: a.distros.iter().map(|d| split(d)).collect::<Result<_>>()?,
                flavor: a.flavor,
                status: a
                    .status
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(|e: String| anyhow::anyhow!(e))?,
            };
            let found = build::search(root, &q)?;
            render(settings.format, &found, || rows(&found));
        }
        BuildCommand::Show(a) => {
            let d = split(&a.distro)?;
            let key = BuildKey::new(
                &a.project,
                &a.reference,
                &a.sha1,
                &d.distro,
                &d.version,
                a.flavor.as_deref(),
            )?;
            let b = build::show(root, &key)?;
            render(settings.format, &b, || {
                let mut s = format!(
                    "Build:    {}\nStatus:   {}\nRepo:     /{}\nArchs:    {}\nPackages: {}\n",
                    b.info.key,
                    b.info.status,
                    b.info.repo_path,
                    b.info.archs.join(" "),
                    b.info.packages
                );
                if let Some(e) = &b.info.error {
                    s.push_str(&format!("Error:    {e}\n"));
                }
                for (k, v) in &b.info.extra {
                    s.push_str(&format!(
                        "Extra:    {k}={}\n",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    ));
                }
                s.push_str("History:\n");
                for t in &b.info.history {
                    s.push_str(&format!("  {} {}\n", time(t.time), t.status));
                }
                s.push_str("Files:\n");
                for f in &b.files {
                    s.push_str(&format!("  {f}\n"));
                }
                s
            });
        }
        BuildCommand::Latest(a) => {
            let distros = a
                .distros
                .iter()
                .map(|d| split(d))
                .collect::<Result<Vec<_>>>()?;
            let l = build::latest(
                root,
                &a.project,
                &a.reference,
                &distros,
                a.flavor.as_deref(),
            )?;
            render(settings.format, &l, || format!("{}\n", l.sha1));
        }
    }
    Ok(())
}
