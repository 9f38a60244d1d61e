//! The command line's definition (clap derive types) and the value parsers
//! that split and check flag values; nothing else.
//!
//! clap lives only in the binary: the core never receives these types.
//! Enums the core defines (policies, kinds, stages) are parsed straight
//! into the core's own types through [`choice`], which lists the core's
//! words, so there is no mirrored enum to map. The binary renders its own
//! man pages and completions (`depot generate DIR`, hidden; `cargo xtask
//! gen` runs it).

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use depot::choice::Choice;
use depot::content::RepoKind;
use depot::formats::compress::Compression;
use depot::mirror::{Mode, Policy};
use depot::promote::dist::Stage;
use depot::promote::guard::Scope as GuardScope;
use depot::retention::prune::Scope;

impl PruneArgs {
    /// What `--source`/`--dist` select (clap makes them exclusive).
    pub fn scope(&self) -> Scope {
        match (&self.source, &self.dist, &self.project) {
            (Some(s), _, _) => Scope::Source(s.clone()),
            (None, Some(d), _) => Scope::Dist(d.clone()),
            (None, None, Some(p)) => Scope::Project(p.clone()),
            (None, None, None) => Scope::All,
        }
    }
}
use depot::snapshot::ops::MergePolicy;

pub mod build;
pub mod test;

/// Parses one of a core enum's words into the enum itself; help, man pages
/// and completions list the words with their descriptions.
pub fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        T::CHOICES
            .iter()
            .map(|(_, word, help)| PossibleValue::new(*word).help(*help)),
    )
    .try_map(|word| T::from_word(&word).ok_or_else(|| depot::choice::UnknownWord::new::<T>(&word)))
}

/// `STAGE=GUARD` of `dist create --stage`.
fn stage_guard(text: &str) -> Result<(Stage, String), String> {
    let (stage, guard) = text
        .split_once('=')
        .ok_or_else(|| format!("expected STAGE=GUARD, got `{text}`"))?;
    let stage = stage.parse::<Stage>().map_err(|e| e.to_string())?;
    if guard.is_empty() {
        return Err(format!("`{text}` names no guard (use `public` for none)"));
    }
    Ok((stage, guard.to_owned()))
}

/// `COMP=SNAP,SNAP` of `release create --component`.
fn component_sources(text: &str) -> Result<(String, Vec<String>), String> {
    let (comp, sources) = text
        .split_once('=')
        .ok_or_else(|| format!("expected COMP=SNAP,SNAP, got `{text}`"))?;
    let sources: Vec<String> = sources
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if comp.is_empty() || sources.is_empty() {
        return Err(format!("expected COMP=SNAP,SNAP, got `{text}`"));
    }
    Ok((comp.to_owned(), sources))
}

#[derive(Debug, Parser)]
#[command(
    name = "depot",
    version,
    about = "Mirror, snapshot and publish apt and rpm repositories",
    long_about = "depot mirrors apt and rpm repositories into a content-addressed pool, takes \
immutable snapshots of them and publishes snapshots as signed repositories that apt and dnf \
consume.\n\n\
Exit codes: 0 success; 1 the operation failed; 2 usage error; 3 refused (object busy, or a \
promotion gate); \
4 still pending (test results not there yet); 130 interrupted.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more (repeat for debug output); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never draw progress bars
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Format of what is printed on stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Define and update mirrors of upstream repositories
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// Take, inspect and compare immutable snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Local repositories of CI-built packages
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Merge snapshots into integrated releases
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Publish a snapshot or release as a new signed version of a distribution
    Publish(PublishArgs),
    /// Configure and inspect distributions: versions, stages, guards
    #[command(subcommand)]
    Dist(DistCommand),
    /// Content guards: who may read a stage
    #[command(subcommand)]
    Guard(GuardCommand),
    /// Serve the publish root over HTTP(S), enforcing each stage's guard, and CI build repositories
    #[command(
        long_about = "Serve the publish root over HTTP(S), enforcing each stage's guard, and CI build repositories.\n\n\
Build repositories: POST /api/binaries/PROJECT/REF/SHA1/DISTRO/VERSION/ARCH/[flavors/FLAVOR/] \
uploads a package (token of a guard with --scope upload); after --quiet-time without uploads \
the build is published, signed with --sign-key, at /r/PROJECT/REF/SHA1/DISTRO/VERSION/; \
GET /api/search/ and /api/repos/…/repo answer queries. See README for the whole API."
    )]
    Serve {
        /// Address to listen on (port 0: any free port)
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Serve HTTPS with this certificate chain (PEM); x509 guards need it
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Private key (PEM) of --tls-cert
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Key (id, fingerprint or uid) signing build repositories [default: the settings file's sign-key]
        #[arg(long, value_name = "KEYID")]
        sign_key: Option<String>,
        /// Time since a build's last upload before it is published [default: 30s]
        #[arg(long, value_name = "DUR", value_parser = test::parse_duration)]
        quiet_time: Option<std::time::Duration>,
        /// URL receiving each build state as a JSON POST (repeatable)
        #[arg(long = "webhook", value_name = "URL")]
        webhooks: Vec<String>,
        /// Close a connection on which no byte moved for this long; also the longest a TLS handshake or a request's headers may take [default: 30s]
        #[arg(long, value_name = "DUR", value_parser = test::parse_duration)]
        idle_timeout: Option<std::time::Duration>,
        /// Connections served at once; more wait in the listen backlog [default: the open-file limit less 256]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: Option<u32>,
    },
    /// Point a stage of a distribution at a version (atomic, audited)
    Promote {
        dist: String,
        /// The version (YYYYMMDDTHHMMSSZ) the stage should serve
        #[arg(id = "target_version", value_name = "VERSION")]
        version: String,
        /// The stage to move
        #[arg(long, value_parser = choice::<Stage>())]
        to: Stage,
        /// Show what would change, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Refuse (exit 3) unless every test recorded for the version passed
        #[arg(long)]
        require_tests: bool,
    },
    /// Submit, run and poll autopkgtest-style test requests
    #[command(subcommand)]
    Test(test::TestCommand),
    /// CI build repositories (ceph's chacra and shaman): upload, list, latest
    #[command(subcommand)]
    Build(build::BuildCommand),
    /// Run the nightly release train of a YAML file, resumably
    #[command(subcommand)]
    Train(TrainCommand),
    /// Drop old snapshots, releases and published versions by retention rules
    #[command(
        long_about = "Drop old snapshots, releases and published versions by retention rules.\n\n\
Per group (the snapshots of one source, the releases of one name, the versions of one \
distribution) a candidate is kept if it is among the newest --keep-last, younger than \
--keep-days, served by a stage (or, for a snapshot or release, the source of what a stage \
serves), or among the newest --keep-released versions ever promoted to release (all of them \
when --keep-released is not given). CI builds are kept per ref, a SHA1 (all its distros) at a \
time, by the time of its first upload, as chacra's purge_rotation; a SHA1 with a build being \
published is kept. Only names in depot's timestamp form \
(NAME-YYYYMMDDTHHMMSSZ, version YYYYMMDDTHHMMSSZ) are candidates: a name a person chose is \
never pruned. Dropped versions are renamed aside, audited, then deleted. Run `depot gc` \
afterwards to free the space."
    )]
    Prune(PruneArgs),
    /// Delete pool blobs, catalogs, cache entries and temp files nothing references
    #[command(
        long_about = "Delete pool blobs, catalogs, cache entries and temp files nothing references.\n\n\
Safe while other depot commands run: gc takes the pool's lock exclusively, so it waits for \
running mirror updates, repo adds, snapshot and release creations and publishes, and those \
started meanwhile wait for it.\n\n\
Published package files that no remaining version of their distribution lists (a version \
dropped by `dist drop` or `prune`) are deleted from the distribution's shared generation \
too, each distribution under its lock."
    )]
    Gc {
        /// Report what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify the data root and published versions; change nothing (exit 1 on any problem)
    Check {
        /// Also hash every pool blob and every published package file
        #[arg(long)]
        full: bool,
    },
    /// Write man pages and shell completions under DIR (for `cargo xtask gen`)
    #[command(hide = true)]
    Generate {
        /// Receives man/ and completions/
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Define a new mirror
    Create(MirrorCreateArgs),
    /// Fetch and verify upstream's current state into the pool
    Update(MirrorUpdateArgs),
    /// List mirrors
    List,
    /// Show a mirror's definition and last update
    Show { name: String },
    /// Change a mirror's definition
    Edit(MirrorEditArgs),
    /// Delete a mirror (its snapshots are kept)
    Drop { name: String },
}

#[derive(Debug, Args)]
pub struct MirrorCreateArgs {
    /// Name of the mirror
    pub name: String,
    /// Repository URL (http://, https:// or file://)
    pub url: String,
    #[arg(long, value_parser = choice::<RepoKind>())]
    pub kind: RepoKind,
    /// apt: suite (under dists/), or a flat repository's directory ending in `/`
    #[arg(long)]
    pub suite: Option<String>,
    /// Component to mirror (repeatable) [default: all in Release]
    #[arg(long = "component", value_name = "C")]
    pub components: Vec<String>,
    /// Architecture to mirror (repeatable) [default: all in Release]
    #[arg(long = "arch", value_name = "A")]
    pub architectures: Vec<String>,
    /// Keyring that upstream signatures must verify against
    #[arg(long, value_name = "FILE", required_unless_present = "no_verify")]
    pub keyring: Option<PathBuf>,
    /// Do not check upstream signatures (checksums are still checked)
    #[arg(long, conflicts_with = "keyring")]
    pub no_verify: bool,
    /// When package files are downloaded
    #[arg(long, value_parser = choice::<Policy>(), default_value = "immediate")]
    pub policy: Policy,
    /// What happens to packages upstream dropped
    #[arg(long, value_parser = choice::<Mode>(), default_value = "mirror")]
    pub mode: Mode,
    /// Also mirror source packages (Sources and the files they name)
    #[arg(long)]
    pub with_sources: bool,
    /// Also mirror installer packages (debian-installer udebs)
    #[arg(long)]
    pub with_udebs: bool,
    /// Mirror only the packages matching this query (aptly syntax)
    #[arg(long, value_name = "QUERY")]
    pub filter: Option<String>,
    /// With --filter: also every dependency of what it selects
    #[arg(long, requires = "filter")]
    pub with_deps: bool,
    /// Client certificate (PEM) for an upstream behind an x509 guard
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// CA bundle (PEM) to trust for the upstream's TLS certificate
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// rpm: also check each package's own signature (header and payload
    /// digest, as `rpm -K`) against --keyring
    #[arg(long, requires = "keyring")]
    pub verify_packages: bool,
}

#[derive(Debug, Args)]
pub struct MirrorUpdateArgs {
    /// Mirrors to update
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Update every mirror
    #[arg(long)]
    pub all: bool,
    /// Parallel package downloads per mirror [default: the settings file's
    /// `concurrency`, else 8]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
}

#[derive(Debug, Args)]
pub struct MirrorEditArgs {
    pub name: String,
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub suite: Option<String>,
    /// Replace the component list (repeatable)
    #[arg(long = "component", value_name = "C")]
    pub components: Vec<String>,
    /// Replace the architecture list (repeatable)
    #[arg(long = "arch", value_name = "A")]
    pub architectures: Vec<String>,
    #[arg(long, value_name = "FILE", conflicts_with = "no_verify")]
    pub keyring: Option<PathBuf>,
    #[arg(long)]
    pub no_verify: bool,
    #[arg(long, value_parser = choice::<Policy>())]
    pub policy: Option<Policy>,
    #[arg(long, value_parser = choice::<Mode>())]
    pub mode: Option<Mode>,
    #[arg(long, value_name = "BOOL")]
    pub with_sources: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    pub with_udebs: Option<bool>,
    /// rpm: check each package's own signature against the keyring
    #[arg(long, value_name = "BOOL")]
    pub verify_packages: Option<bool>,
    /// Mirror only the packages matching this query ('' removes the filter)
    #[arg(long, value_name = "QUERY")]
    pub filter: Option<String>,
    /// With the filter: also every dependency of what it selects
    #[arg(long, value_name = "BOOL")]
    pub with_deps: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a mirror's last update, or of a local repo
    Create {
        /// Name [default: MIRROR-YYYYMMDDTHHMMSSZ (or REPO-…), UTC]
        name: Option<String>,
        #[arg(long, required_unless_present = "repo", conflicts_with = "repo")]
        mirror: Option<String>,
        #[arg(long)]
        repo: Option<String>,
    },
    /// List snapshots, oldest first
    List {
        /// Only snapshots of this mirror
        #[arg(long, value_name = "MIRROR")]
        source: Option<String>,
    },
    /// Show a snapshot
    Show {
        name: String,
        /// Also list every package
        #[arg(long)]
        packages: bool,
    },
    /// Packages added, removed and changed from A to B
    Diff { a: String, b: String },
    /// Delete a snapshot (published versions are not affected)
    Drop { name: String },
    /// New snapshot DEST with the packages of SRC that match QUERY
    Filter {
        src: String,
        dest: String,
        /// aptly query, e.g. 'Priority (required) | nginx (>= 1.2)'
        query: String,
        /// Also take every dependency (Depends, Pre-Depends; rpm Requires), until closed
        #[arg(long)]
        with_deps: bool,
    },
    /// List the packages of a snapshot (or release) matching QUERY
    Search { name: String, query: String },
    /// Report every dependency nothing in the snapshot satisfies (exit 1 if any)
    Verify { name: String },
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create an empty local repo
    Create {
        name: String,
        #[arg(long, value_parser = choice::<RepoKind>())]
        kind: RepoKind,
        /// Component its packages are published in
        #[arg(long, default_value = "main")]
        component: String,
        /// Architectures of its indices (repeatable) [default: those of its packages]
        #[arg(long = "arch", value_name = "A")]
        architectures: Vec<String>,
    },
    /// Add package files (.deb or .rpm): headers read, checked and pooled
    Add {
        name: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Replace a package of the same name, version and arch with other content
        #[arg(long)]
        replace: bool,
    },
    /// Remove the packages matching QUERY
    Remove { name: String, query: String },
    /// List local repos
    List,
    /// Show a repo and its packages
    Show { name: String },
    /// Delete a repo (its snapshots are kept)
    Drop { name: String },
}

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Create a guard: client certificates from a CA, or bearer tokens
    Create {
        name: String,
        /// CA bundle (PEM) client certificates must chain to
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "token_file",
            conflicts_with = "token_file"
        )]
        x509_ca: Option<PathBuf>,
        /// With --x509-ca: the certificate subject must match this regex
        #[arg(long, value_name = "REGEX", requires = "x509_ca")]
        subject: Option<String>,
        /// File of accepted tokens, one per line (stored hashed)
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// With --token-file: what its tokens may do [default: read]
        #[arg(long, value_parser = choice::<GuardScope>(), requires = "token_file")]
        scope: Option<GuardScope>,
    },
    /// List guards
    List,
    /// Show a guard (never its tokens)
    Show { name: String },
    /// Delete a guard
    Drop { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DistCommand {
    /// Configure a distribution: the guard of each stage, the test gate
    Create {
        dist: String,
        /// Guard of a stage, STAGE=GUARD (repeatable; `public` means no guard)
        /// [default: dev=dev, release=release]
        #[arg(long = "stage", value_name = "STAGE=GUARD", value_parser = stage_guard)]
        stages: Vec<(Stage, String)>,
        /// Promotion to release requires passing tests
        #[arg(long)]
        require_tests: bool,
        /// Publish root [default: public/ in the data root]
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// List distributions with the versions their stages serve
    List,
    /// Show a distribution's versions, sources and stages
    Show { dist: String },
    /// Push stages to S3-compatible object storage (PREFIX/DIST/STAGE/ in the bucket)
    #[command(
        long_about = "Push stages to S3-compatible object storage: PREFIX/DIST/STAGE/ in the \
bucket becomes what the stage serves.\n\n\
Only objects the bucket lacks are uploaded (each object's SHA-256 is kept in its metadata and \
in the push manifest PREFIX/DIST/STAGE/.depot-push.json.zst): packages first, then by-hash indices, \
then indices, and Release/InRelease (rpm: repomd.xml and its .asc) last. An object no longer \
part of the stage is deleted by a later push once --delete-after has passed since it left. \
What the bucket holds is what the last complete push recorded in the manifest; the bucket is \
listed instead on the first push, after a push that did not finish, and with --verify (use it \
when something other than depot may change or expire objects under the prefix). \
A killed push completes when run again; a second push of the same stage at the same time \
exits 3.\n\n\
Credentials and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, \
AWS_REGION (or AWS_DEFAULT_REGION), else the profile AWS_PROFILE (default `default`) of \
~/.aws/credentials and ~/.aws/config; the endpoint from --endpoint, else AWS_ENDPOINT_URL_S3 \
or AWS_ENDPOINT_URL, else AWS's own. Requests are signed with SigV4."
    )]
    Push(DistPushArgs),
    /// Drop a published version (refused, exit 3, while a stage serves it)
    Drop {
        dist: String,
        /// The version (YYYYMMDDTHHMMSSZ) to drop
        #[arg(id = "target_version", value_name = "VERSION")]
        version: String,
    },
}

#[derive(Debug, Args)]
pub struct DistPushArgs {
    pub dist: String,
    /// Stage to push: dev, release or a VERSION (repeatable) [default: every stage that
    /// serves a version]
    #[arg(long = "stage", value_name = "STAGE")]
    pub stages: Vec<depot::promote::push::StageRef>,
    /// Bucket and prefix: s3://BUCKET/PREFIX
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub to: depot::promote::push::s3::S3Url,
    /// S3 endpoint URL (SeaweedFS, MinIO, Ceph RGW…) [default: $AWS_ENDPOINT_URL_S3, else
    /// $AWS_ENDPOINT_URL, else AWS's regional endpoint]
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Path-style requests (ENDPOINT/BUCKET/KEY) instead of virtual-hosted ones
    /// (automatic for an IP address or localhost)
    #[arg(long)]
    pub path_style: bool,
    /// Delete an object that left the stage only this long after it left (e.g. 30m, 1h, 2d)
    #[arg(long, value_name = "DUR", value_parser = test::parse_duration, default_value = "1h")]
    pub delete_after: std::time::Duration,
    /// Parallel requests
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// List the bucket and repair it (restore what is missing or changed, delete keys the
    /// stage does not have once --delete-after has passed), even when the push manifest
    /// could be trusted
    #[arg(long)]
    pub verify: bool,
    /// Compare with the bucket and report what would be uploaded and deleted; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// List what would be dropped and the bytes it would free; drop nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only the snapshots and releases of this source (mirror, repo or release name)
    #[arg(long, value_name = "S", conflicts_with = "dist")]
    pub source: Option<String>,
    /// Only the published versions of this distribution
    #[arg(long, value_name = "D", conflicts_with = "project")]
    pub dist: Option<String>,
    /// Only the CI builds of this project (kept per ref, by SHA1)
    #[arg(long, value_name = "P", conflicts_with = "source")]
    pub project: Option<String>,
    /// Keep the newest N of each group
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep anything younger than D days
    #[arg(long, value_name = "D")]
    pub keep_days: Option<u32>,
    /// Keep the newest N versions ever promoted to release [default: all]
    #[arg(long, value_name = "N")]
    pub keep_released: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Merge snapshots (or releases) into an immutable integrated release
    Create {
        name: String,
        /// Sources in priority order; their components are kept
        #[arg(long = "from", value_name = "SNAP", num_args = 1..)]
        from: Vec<String>,
        /// Which version of each package to keep
        #[arg(long, value_parser = choice::<MergePolicy>(), default_value = "latest")]
        policy: MergePolicy,
        /// Put all packages of these sources into component COMP (repeatable)
        #[arg(long = "component", value_name = "COMP=SNAP,SNAP", value_parser = component_sources)]
        components: Vec<(String, Vec<String>)>,
    },
    /// List releases, oldest first
    List,
    /// Show a release and its sources
    Show {
        name: String,
        /// Also list every package
        #[arg(long)]
        packages: bool,
    },
    /// Packages added, removed and changed from A to B
    Diff { a: String, b: String },
    /// Delete a release (published versions are not affected)
    Drop { name: String },
    /// Report every dependency nothing in the release satisfies (exit 1 if any)
    Verify { name: String },
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Snapshot or release to publish
    #[arg(value_name = "RELEASE|SNAPSHOT")]
    pub snapshot: String,
    /// Distribution: DIR/DIST/VERSION/ is written and DIR/DIST/dev switched to it
    #[arg(long)]
    pub dist: String,
    /// GnuPG key (id, fingerprint or user id) that signs the Release
    #[arg(long, value_name = "KEYID", required_unless_present = "skip_signing")]
    pub sign_key: Option<String>,
    /// Publish unsigned (apt then needs [trusted=yes])
    #[arg(long, conflicts_with = "sign_key")]
    pub skip_signing: bool,
    /// Suite name in dists/ [default: the upstream codename]
    #[arg(long)]
    pub suite: Option<String>,
    /// Compressed index formats, comma-separated (gz, xz, zst) [default: apt gz,xz; rpm gz]
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(Compression))]
    pub compress: Vec<Compression>,
    /// Publish root [default: public/ in the data root]
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Name of the new version [default: the UTC time of the publish]; refused if it exists
    #[arg(long, value_name = "VERSION")]
    pub as_version: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Subcommand)]
#[command(
    long_about = "Run a release train: one YAML file naming the mirrors and repos to sync, the \
releases to merge, the distributions to publish, the tests to request and the promotions to make \
(README § Trains; examples/nightly.yaml). Each run has one RUN id (the UTC time it started): \
snapshots SOURCE-RUN, releases NAME-RUN, versions RUN. Its journal is trains/NAME/RUN.json in the \
data root.\n\n\
Exit codes of run and resume: 0 every step done; 1 a step failed (the failed and blocked steps are \
listed); 2 the file is invalid (nothing ran); 3 this train is already running; 4 only test gates \
are pending (resume later)."
)]
pub enum TrainCommand {
    /// Start a new run of the train in FILE
    Run {
        /// The train file (YAML)
        file: PathBuf,
        /// Check the file against the data root and print the plan; write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Continue RUN, else the newest unfinished run: done steps are kept, the rest run again
    Resume {
        /// The train file (YAML)
        file: PathBuf,
        /// The run id (YYYYMMDDTHHMMSSZ) [default: the newest unfinished run]
        run: Option<String>,
    },
    /// Show the steps of RUN (default: the newest run) and their state
    Status {
        /// The train file (YAML)
        file: PathBuf,
        /// The run id [default: the newest run]
        run: Option<String>,
    },
    /// List the runs of the train
    List {
        /// The train file (YAML)
        file: PathBuf,
    },
}
