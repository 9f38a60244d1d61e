//! `depot test …`: autopkgtest-style test requests (clap definitions only).
//!
//! Definitions only: no value here is acted on; `test_cmd.rs` passes them to
//! the core.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use depot::promote::dist::VersionRef;
use depot::testreq::QueueKind;

use super::choice;

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Queue a test request per architecture (autopkgtest-cloud format)
    Submit(Box<SubmitArgs>),
    /// Report test results for triggers; exit 0 passed, 1 failed, 4 pending
    Poll(Box<PollArgs>),
    /// Run queued requests with COMMAND and store results (file:// or Swift)
    Worker(Box<WorkerArgs>),
    /// Tests to request for what changed between two apt snapshots or releases
    Plan(Box<PlanArgs>),
}

/// Where requests go: a RabbitMQ broker or a spool directory.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// RabbitMQ broker, amqp://USER:PASSWORD@HOST[:PORT]/VHOST [default:
    /// $DEPOT_BROKER, else the settings file's `broker`, else the spool]
    #[arg(long, value_name = "URL", conflicts_with = "spool")]
    pub broker: Option<String>,
    /// Spool directory of the embedded queue [default: spool/ in the data root]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Source package whose tests run
    pub package: String,
    /// Record the request against a published version, DIST/VERSION, for
    /// `depot promote --require-tests`
    #[arg(long = "for", value_name = "DIST/VERSION", value_parser = clap::value_parser!(VersionRef))]
    pub for_version: Option<VersionRef>,
    /// Where the recorded test's results will be polled [default: results/ in the data root]
    #[arg(long, value_name = "URL", requires = "for_version")]
    pub results: Option<String>,
    #[arg(long, value_name = "R")]
    pub release: String,
    /// Architecture (repeatable: one request each)
    #[arg(long = "arch", value_name = "A", required = true)]
    pub archs: Vec<String>,
    /// Package version the test is for, SRCPKG/VERSION (repeatable)
    #[arg(long = "trigger", value_name = "SRC/VER")]
    pub triggers: Vec<String>,
    /// PPA to add to the testbed, USER/PPA (repeatable; the last names the results container)
    #[arg(long = "ppa", value_name = "USER/PPA")]
    pub ppas: Vec<String>,
    /// Environment variable for the test, K=V (repeatable)
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Take the tests from a git repository (and branch)
    #[arg(long, num_args = 1..=2, value_names = ["URL", "BRANCH"])]
    pub test_git: Option<Vec<String>>,
    /// Build the package from a git repository, URL[#REF]
    #[arg(long, value_name = "URL")]
    pub build_git: Option<String>,
    /// Take the tests from a bzr branch
    #[arg(long, value_name = "URL")]
    pub test_bzr: Option<String>,
    /// Install everything from -proposed, not only the triggers
    #[arg(long)]
    pub all_proposed: bool,
    /// Run only this test of the package
    #[arg(long, value_name = "T")]
    pub testname: Option<String>,
    /// Store results privately for this Swift user
    #[arg(long, value_name = "U")]
    pub swiftuser: Option<String>,
    /// Who else may read private results (repeatable; needs --swiftuser)
    #[arg(long = "readable-by", value_name = "USER")]
    pub readable_by: Vec<String>,
    /// Who asked, recorded in the request
    #[arg(long, value_name = "NAME")]
    pub requester: Option<String>,
    #[arg(long, value_parser = choice::<QueueKind>(), default_value = "default")]
    pub queue_kind: QueueKind,
    #[command(flatten)]
    pub queue: QueueArgs,
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// Source package whose results are read
    pub package: String,
    #[arg(long, value_name = "R")]
    pub release: String,
    /// Architecture (repeatable)
    #[arg(long = "arch", value_name = "A", required = true)]
    pub archs: Vec<String>,
    /// Trigger to report on, SRC/VER (repeatable) [default: every trigger found]
    #[arg(long = "trigger", value_name = "SRC/VER")]
    pub triggers: Vec<String>,
    /// PPAs the requests named (the last one names the results container)
    #[arg(long = "ppa", value_name = "USER/PPA")]
    pub ppas: Vec<String>,
    /// Read private results (requests submitted with --swiftuser)
    #[arg(long)]
    pub private: bool,
    /// file://DIR, a Swift account http(s)://HOST/v1/AUTH_ACCOUNT (anonymous),
    /// or swift+https://HOST/v1/AUTH_ACCOUNT (authenticated from ST_AUTH,
    /// ST_USER, ST_KEY or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,
    /// OS_PROJECT_NAME, OS_*_DOMAIN_NAME) [default: $DEPOT_RESULTS, else
    /// file://DATA_ROOT/results]
    #[arg(long, value_name = "URL")]
    pub results: Option<String>,
    /// Poll until nothing is pending (or --timeout passes)
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (e.g. 90s, 30m, 2h)
    #[arg(long, value_name = "DUR", requires = "wait", value_parser = parse_duration, default_value = "1h")]
    pub timeout: Duration,
    /// Time between polls while waiting
    #[arg(long, value_name = "DUR", requires = "wait", value_parser = parse_duration, default_value = "30s")]
    pub interval: Duration,
    /// Parallel result downloads
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Where results are stored: file://DIR, or a Swift account
    /// swift+https://HOST/v1/AUTH_ACCOUNT (swift+http:// to loopback only),
    /// authenticated from ST_AUTH, ST_USER, ST_KEY, else OS_AUTH_URL,
    /// OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_USER_DOMAIN_NAME,
    /// OS_PROJECT_DOMAIN_NAME [default: $DEPOT_RESULTS, else
    /// file://DATA_ROOT/results]
    #[arg(long, value_name = "URL")]
    pub results: Option<String>,
    /// Run at most one request, then exit
    #[arg(long)]
    pub once: bool,
    /// Take requests for this release only (required with --broker)
    #[arg(long, value_name = "R")]
    pub release: Option<String>,
    /// Take requests for these architectures only (required with --broker)
    #[arg(long = "arch", value_name = "A")]
    pub archs: Vec<String>,
    /// Seconds between looks at empty queues
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "5s")]
    pub interval: Duration,
    /// The test runner; the request is in DEPOT_TEST_* variables, its output
    /// directory in DEPOT_TEST_OUTPUT
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The snapshot or release before the change
    pub from: String,
    /// The snapshot or release after the change
    pub to: String,
    /// Release named in the requests [default: TO's codename, else its suite]
    #[arg(long, value_name = "R")]
    pub release: Option<String>,
    /// Only these architectures (repeatable) [default: all of TO's]
    #[arg(long = "arch", value_name = "A")]
    pub archs: Vec<String>,
    /// Queue the planned requests
    #[arg(long)]
    pub submit: bool,
    #[arg(long, value_parser = choice::<QueueKind>(), default_value = "default", requires = "submit")]
    pub queue_kind: QueueKind,
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// `90`, `90s`, `15m`, `2h`, `1d` ([`depot::duration::parse`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    depot::duration::parse(text)
}
