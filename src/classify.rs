//! Which kind a failure is: the first core error in a chain of causes
//! decides, by its own `kind()`. This sits at the top of the library (it
//! names every module's error type), so that the modules themselves need
//! only [`crate::error::ErrorKind`], at the bottom.

use crate::error::ErrorKind;
use crate::{
    build, choice, formats, lock, mirror, names, packages, promote, repo, retention, root,
    settings, snapshot, store, testreq, train,
};

/// Classifies any of the core's errors; `None` for foreign error types.
///
/// The binary walks a chain of causes and stops at the first error this
/// classifies: each type decides its own kind, delegating to the error it
/// wraps where that one decides (a busy lock inside a mirror update).
pub fn error_kind(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    macro_rules! classify {
        ($($t:ty),+ $(,)?) => {
            $(
                if let Some(e) = err.downcast_ref::<$t>() {
                    return Some(e.kind());
                }
            )+
        };
    }
    classify!(
        lock::LockError,
        store::StoreError,
        names::InvalidName,
        choice::UnknownWord,
        formats::compress::UnknownCompression,
        packages::query::QueryError,
        root::RootError,
        settings::SettingsError,
        mirror::MirrorError,
        snapshot::SnapshotError,
        snapshot::ops::Unsatisfiable,
        repo::RepoError,
        build::BuildError,
        promote::guard::GuardError,
        promote::dist::DistError,
        promote::dist::BadVersionRef,
        promote::dist::SubmitError,
        promote::PublishError,
        promote::push::PushError,
        promote::serve::ServeError,
        testreq::RequestError,
        testreq::QueueError,
        testreq::ResultsError,
        testreq::swift::AuthError,
        testreq::poll::NotPassed,
        testreq::worker::WorkerError,
        testreq::plan::PlanError,
        testreq::ops::PollError,
        retention::RetentionError,
        train::TrainError,
        train::FileError,
        train::StepError,
    );
    None
}

#[cfg(test)]
mod tests {
    //! Every variant of every error that reaches the binary, with the kind
    //! (and so the exit code) it must have. A new variant fails to compile
    //! in its type's `kind()` until it is given one; this table then says
    //! which.

    use std::path::PathBuf;

    use crate::digest::Sha256Digest;
    use crate::error::ErrorKind::{self, *};
    use crate::formats::apt::AptFormatError;
    use crate::formats::rpm::RpmFormatError;
    use crate::http::FetchError;
    use crate::lock::LockError;
    use crate::mirror::{MirrorError, SignedIndex};
    use crate::packages::pkgset::PackageSetError;
    use crate::pool::PoolError;
    use crate::promote::PublishError;
    use crate::promote::dist::{BadVersionRef, DistError, SubmitError};
    use crate::promote::guard::GuardError;
    use crate::promote::serve::ServeError;
    use crate::repo::RepoError;
    use crate::signing::SigningError;
    use crate::snapshot::SnapshotError;
    use crate::store::{FormatError, ObjectKind, StoreError};
    use crate::testreq::plan::PlanError;
    use crate::testreq::poll::NotPassed;
    use crate::testreq::swift::AuthError;
    use crate::testreq::worker::WorkerError;
    use crate::testreq::{QueueError, RequestError, ResultsError};

    fn io() -> std::io::Error {
        std::io::Error::other("boom")
    }
    fn s(t: &str) -> String {
        t.to_owned()
    }
    fn p() -> PathBuf {
        PathBuf::from("/x")
    }
    fn busy() -> LockError {
        LockError::Busy {
            kind: "mirror",
            name: s("m"),
            holder: None,
        }
    }
    fn not_found() -> StoreError {
        StoreError::NotFound {
            kind: ObjectKind::Mirror,
            name: s("m"),
        }
    }
    fn pool() -> PoolError {
        PoolError::SizeMismatch {
            expected: 1,
            actual: 2,
        }
    }
    fn fetch() -> FetchError {
        FetchError::Status {
            url: s("u"),
            status: 500,
        }
    }
    fn signing() -> SigningError {
        SigningError::NoSecretKey { key: s("k") }
    }
    fn name() -> crate::names::InvalidName {
        crate::names::validate("mirror", "../x").unwrap_err()
    }
    fn query() -> crate::packages::query::QueryError {
        crate::packages::query::Query::parse("Name (").unwrap_err()
    }
    /// What `guard create --subject '('` fails with.
    #[allow(clippy::invalid_regex)]
    fn unclosed_group() -> regex::Error {
        regex::Regex::new("(").unwrap_err()
    }
    fn reqwest() -> reqwest::Error {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .build()
            .unwrap()
            .get("not a url")
            .build()
            .unwrap_err()
    }
    fn lapin() -> Box<lapin::Error> {
        Box::new(lapin::Error::from(lapin::ErrorKind::ChannelsLimitReached))
    }
    fn invalid() -> RequestError {
        RequestError::Invalid {
            field: "package",
            value: s("X"),
            why: "no",
        }
    }
    fn results() -> ResultsError {
        ResultsError::InvalidUrl {
            url: s("u"),
            why: "no",
        }
    }
    fn mirror_busy() -> MirrorError {
        MirrorError::Lock(busy())
    }

    fn mirror() -> Vec<(MirrorError, ErrorKind)> {
        use MirrorError as E;
        let m = s("m");
        vec![
            (
                E::SomeFailed {
                    failed: vec![s("a")],
                    total: 2,
                },
                Failure,
            ),
            (E::InvalidName(name()), Usage),
            (E::Query(query()), Usage),
            (
                E::Filter {
                    mirror: m.clone(),
                    source: PackageSetError::MixedKinds,
                },
                Failure,
            ),
            (E::InvalidDefinition(s("no suite")), Usage),
            (E::Store(not_found()), Failure),
            (
                E::ReadDef {
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
            (mirror_busy(), Refused),
            (
                E::Index {
                    mirror: m.clone(),
                    source: crate::content::IndexError::Utf8(Sha256Digest::of(b"")),
                },
                Failure,
            ),
            (
                E::Fetch {
                    mirror: m.clone(),
                    what: s("Release"),
                    source: Box::new(fetch()),
                },
                Failure,
            ),
            (
                E::Signature {
                    mirror: m.clone(),
                    url: s("u"),
                    source: signing(),
                },
                Failure,
            ),
            (
                E::Unsigned {
                    mirror: m.clone(),
                    url: s("u"),
                },
                Failure,
            ),
            (
                E::Malformed {
                    mirror: m.clone(),
                    url: s("u"),
                    source: Box::new(AptFormatError::EmptyRelease),
                },
                Failure,
            ),
            (
                E::Upstream {
                    mirror: m.clone(),
                    problem: s("p"),
                },
                Failure,
            ),
            (
                E::UpstreamUrl {
                    mirror: m.clone(),
                    what: "location href",
                    value: s("https:[x"),
                    base: s("http://h/"),
                    source: None,
                },
                Failure,
            ),
            (
                E::IndexMismatch {
                    mirror: m.clone(),
                    subject: s("Packages"),
                    signed: SignedIndex::Release,
                    source: Box::new(pool()),
                },
                Failure,
            ),
            (
                E::Decompress {
                    mirror: m.clone(),
                    url: s("u"),
                    source: io(),
                },
                Failure,
            ),
            (
                E::Downloads {
                    mirror: m.clone(),
                    failed: 1,
                    total: 2,
                    first: Box::new(fetch()),
                },
                Failure,
            ),
            (
                E::PackageCheck {
                    mirror: m.clone(),
                    package: s("a.rpm"),
                    source: Box::new(crate::mirror::rpm_verify::PackageCheckError::Unsigned),
                },
                Failure,
            ),
            (
                E::Pool {
                    mirror: m,
                    source: pool(),
                },
                Failure,
            ),
        ]
    }

    fn snapshot() -> Vec<(SnapshotError, ErrorKind)> {
        use SnapshotError as E;
        vec![
            (E::InvalidName(name()), Usage),
            (E::Store(not_found()), Failure),
            (E::Query(query()), Usage),
            (
                E::Packages {
                    what: "snapshot",
                    name: s("s"),
                    source: Box::new(PackageSetError::MixedKinds),
                },
                Failure,
            ),
            (E::Invalid(s("give --mirror or --repo")), Usage),
            (
                E::Repo {
                    repo: s("r"),
                    source: Box::new(RepoError::Store(not_found())),
                },
                Failure,
            ),
            (E::NeverUpdated(s("m")), Failure),
            (E::Lock(busy()), Refused),
            (
                E::Served {
                    what: "snapshot",
                    name: s("s"),
                    by: s("d dev"),
                },
                Refused,
            ),
            (E::Mirror(mirror_busy()), Refused),
            (
                E::Index {
                    snapshot: s("s"),
                    source: pool(),
                },
                Failure,
            ),
            (
                E::MalformedRpm {
                    snapshot: s("s"),
                    source: RpmFormatError::NoRecord("primary"),
                },
                Failure,
            ),
            (
                E::Malformed {
                    snapshot: s("s"),
                    source: AptFormatError::EmptyRelease,
                },
                Failure,
            ),
        ]
    }

    fn repo() -> Vec<(RepoError, ErrorKind)> {
        use RepoError as E;
        vec![
            (E::InvalidName(name()), Usage),
            (E::Query(query()), Usage),
            (E::Lock(busy()), Refused),
            (E::Store(not_found()), Failure),
            (
                E::Io {
                    what: "read",
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
            (
                E::BadPackage {
                    path: p(),
                    problem: s("truncated"),
                },
                Failure,
            ),
            (
                E::BadRpm {
                    path: p(),
                    problem: s("truncated"),
                },
                Failure,
            ),
            (
                E::WrongKind {
                    repo: s("r"),
                    path: p(),
                    found: "rpm",
                    kind: crate::content::RepoKind::Apt,
                },
                Failure,
            ),
            (
                E::Conflict {
                    repo: s("r"),
                    name: s("a"),
                    version: s("1"),
                    arch: s("all"),
                    path: p(),
                },
                Failure,
            ),
            (
                E::Pool {
                    repo: s("r"),
                    source: pool(),
                },
                Failure,
            ),
        ]
    }

    fn build() -> Vec<(crate::build::BuildError, ErrorKind)> {
        use crate::build::{BuildError as E, Status};
        let b = || s("ceph/main/abc/ubuntu/jammy/default");
        vec![
            (E::InvalidName(name()), Usage),
            (E::Lock(busy()), Refused),
            (E::Store(not_found()), Failure),
            (E::LatestIsReserved, Usage),
            (E::LatestNeedsScope, Usage),
            (
                E::UnknownDistro {
                    distro: s("gentoo"),
                },
                Usage,
            ),
            (
                E::Package {
                    build: b(),
                    source: Box::new(RepoError::BadPackage {
                        path: p(),
                        problem: s("truncated"),
                    }),
                },
                Failure,
            ),
            (
                E::WrongArch {
                    build: b(),
                    file: s("f.deb"),
                    found: s("amd64"),
                    arch: s("arm64"),
                },
                Failure,
            ),
            (
                E::Conflict {
                    build: b(),
                    file: s("f.deb"),
                },
                Failure,
            ),
            (
                E::Pool {
                    build: b(),
                    source: PoolError::Io {
                        path: p(),
                        source: io(),
                    },
                },
                Failure,
            ),
            (
                E::Io {
                    what: "read",
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
            (E::NotFound { build: b() }, Failure),
            (
                E::NoneReady {
                    project: s("ceph"),
                    reference: s("main"),
                    distros: s("ubuntu/jammy"),
                },
                Failure,
            ),
            (
                E::NotReady {
                    build: b(),
                    status: Status::Queued,
                },
                Pending,
            ),
            (E::DistroSpec(s("ubuntu")), Usage),
            (
                E::Server {
                    url: s("http://x/"),
                    status: 403,
                    message: s(""),
                },
                Failure,
            ),
        ]
    }

    fn guard() -> Vec<(GuardError, ErrorKind)> {
        use GuardError as E;
        vec![
            (E::InvalidName(name()), Usage),
            (E::Reserved, Usage),
            (E::Store(not_found()), Failure),
            (E::NoCertificate { path: p() }, Failure),
            (E::NoToken { path: p() }, Failure),
            (E::Subject(unclosed_group()), Usage),
            (
                E::Io {
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
        ]
    }

    fn dist() -> Vec<(DistError, ErrorKind)> {
        use DistError as E;
        vec![
            (E::InvalidName(name()), Usage),
            (E::Lock(busy()), Refused),
            (E::Store(not_found()), Failure),
            (
                E::NoVersion {
                    dist: s("d"),
                    version: s("v"),
                },
                Failure,
            ),
            (
                E::Gate {
                    dist: s("d"),
                    version: s("v"),
                    problems: vec![],
                },
                Refused,
            ),
            (
                E::Poll {
                    dist: s("d"),
                    version: s("v"),
                    source: Box::new(results()),
                },
                Failure,
            ),
            (E::Config(s("no guard `g`")), Usage),
            (
                E::Served {
                    dist: s("d"),
                    version: s("v"),
                    stage: "dev",
                },
                Refused,
            ),
            (
                E::Io {
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
        ]
    }

    fn publish() -> Vec<(PublishError, ErrorKind)> {
        use PublishError as E;
        let d = s("d");
        vec![
            (E::InvalidName(name()), Usage),
            (E::Snapshot(SnapshotError::Store(not_found())), Failure),
            (E::Snapshot(SnapshotError::Query(query())), Usage),
            (E::Lock(busy()), Refused),
            (E::InvalidSuite(s("../x")), Usage),
            (
                E::Io {
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
            (
                E::Index {
                    dist: d.clone(),
                    source: crate::packages::catalog::CatalogError::TooLarge {
                        index: Sha256Digest::of(b""),
                    },
                },
                Failure,
            ),
            (
                E::Pool {
                    dist: d.clone(),
                    source: pool(),
                },
                Failure,
            ),
            (
                E::Fetch {
                    dist: d.clone(),
                    source: Box::new(fetch()),
                },
                Failure,
            ),
            (
                E::Malformed {
                    dist: d.clone(),
                    source: AptFormatError::EmptyRelease,
                },
                Failure,
            ),
            (
                E::MalformedRpm {
                    dist: d.clone(),
                    source: RpmFormatError::NoRecord("primary"),
                },
                Failure,
            ),
            (
                E::Conflict {
                    dist: d.clone(),
                    path: s("pool/a"),
                },
                Failure,
            ),
            (
                E::Record {
                    dist: d.clone(),
                    source: Box::new(DistError::Lock(busy())),
                },
                Failure,
            ),
            (
                E::Signing {
                    dist: d.clone(),
                    source: signing(),
                },
                Failure,
            ),
            (
                E::VersionExists {
                    dist: d,
                    version: s("v"),
                    from: s("s"),
                },
                Failure,
            ),
        ]
    }

    fn testreq() -> Vec<(Box<dyn std::error::Error + Send + Sync>, ErrorKind)> {
        let queue = |e: QueueError| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) };
        let b = s("amqp://h/");
        vec![
            (Box::new(invalid()), Usage),
            (Box::new(RequestError::Combination("both")), Usage),
            (
                Box::new(RequestError::Malformed {
                    queue: s("q"),
                    why: s("w"),
                }),
                Usage,
            ),
            (
                queue(QueueError::InvalidBroker {
                    url: s("x"),
                    why: "no",
                }),
                Usage,
            ),
            (
                queue(QueueError::Connect {
                    broker: b.clone(),
                    source: lapin(),
                }),
                Failure,
            ),
            (
                queue(QueueError::ConnectTimeout { broker: b.clone() }),
                Failure,
            ),
            (
                queue(QueueError::Amqp {
                    broker: b.clone(),
                    action: "declare",
                    queue: s("q"),
                    source: lapin(),
                }),
                Failure,
            ),
            (
                queue(QueueError::Nacked {
                    broker: b.clone(),
                    queue: s("q"),
                    id: s("i"),
                }),
                Failure,
            ),
            (
                queue(QueueError::Unroutable {
                    broker: b,
                    queue: s("q"),
                    id: s("i"),
                }),
                Failure,
            ),
            (
                queue(QueueError::Spool {
                    path: p(),
                    action: "write",
                    source: io(),
                }),
                Failure,
            ),
            (Box::new(results()), Usage),
            (
                Box::new(ResultsError::Network {
                    method: "GET",
                    url: s("u"),
                    source: reqwest(),
                }),
                Failure,
            ),
            (
                Box::new(ResultsError::Status {
                    method: "PUT",
                    url: s("u"),
                    status: 500,
                }),
                Failure,
            ),
            (
                Box::new(ResultsError::Auth {
                    url: s("u"),
                    source: AuthError::Incomplete {
                        set: "ST_AUTH",
                        missing: "ST_KEY",
                    },
                }),
                Usage,
            ),
            (
                Box::new(ResultsError::Auth {
                    url: s("u"),
                    source: AuthError::Refused {
                        url: s("a"),
                        status: 401,
                    },
                }),
                Failure,
            ),
            (Box::new(ResultsError::NoCredentials { url: s("u") }), Usage),
            (
                Box::new(AuthError::InvalidUrl {
                    var: "ST_AUTH",
                    value: s("x"),
                }),
                Usage,
            ),
            (Box::new(AuthError::Insecure { url: s("u") }), Usage),
            (
                Box::new(AuthError::Network {
                    url: s("u"),
                    source: reqwest(),
                }),
                Failure,
            ),
            (
                Box::new(AuthError::Malformed {
                    url: s("u"),
                    what: "X-Auth-Token",
                }),
                Failure,
            ),
            (
                Box::new(ResultsError::Io {
                    path: p(),
                    source: io(),
                }),
                Failure,
            ),
            (Box::new(ResultsError::Client(reqwest())), Failure),
            (
                Box::new(ResultsError::Unending {
                    url: s("u"),
                    pages: 1000,
                    seconds: 600,
                }),
                Failure,
            ),
            (
                Box::new(NotPassed::Failed {
                    package: s("a"),
                    failed: 1,
                    total: 1,
                }),
                Failure,
            ),
            (
                Box::new(NotPassed::Pending {
                    package: s("a"),
                    pending: 1,
                    total: 1,
                }),
                Pending,
            ),
            (
                Box::new(WorkerError::Queue(QueueError::ConnectTimeout {
                    broker: s("b"),
                })),
                Failure,
            ),
            (
                Box::new(WorkerError::Upload {
                    package: s("a"),
                    release: s("r"),
                    arch: s("x"),
                    source: ResultsError::Status {
                        method: "PUT",
                        url: s("u"),
                        status: 503,
                    },
                }),
                Failure,
            ),
            (Box::new(WorkerError::Results(results())), Usage),
            (Box::new(WorkerError::Request(invalid())), Usage),
            (
                Box::new(WorkerError::Spawn {
                    command: s("c"),
                    source: io(),
                }),
                Failure,
            ),
            (
                Box::new(WorkerError::Store {
                    package: s("a"),
                    release: s("r"),
                    arch: s("x"),
                    path: p(),
                    source: io(),
                }),
                Failure,
            ),
            (Box::new(WorkerError::Scratch(io())), Failure),
            (
                Box::new(PlanError::Snapshot(SnapshotError::NeverUpdated(s("m")))),
                Failure,
            ),
            (Box::new(PlanError::Request(invalid())), Usage),
            (
                Box::new(PlanError::NotApt {
                    what: "snapshot",
                    name: s("s"),
                }),
                Usage,
            ),
            (
                Box::new(crate::testreq::ops::PollError::Request(invalid())),
                Usage,
            ),
            (
                Box::new(crate::testreq::ops::PollError::Results(
                    ResultsError::Status {
                        method: "GET",
                        url: s("u"),
                        status: 502,
                    },
                )),
                Failure,
            ),
            (
                Box::new(SubmitError::Dist(DistError::Lock(busy()))),
                Refused,
            ),
            (Box::new(SubmitError::Request(invalid())), Usage),
            (
                Box::new(SubmitError::Queue(QueueError::ConnectTimeout {
                    broker: s("b"),
                })),
                Failure,
            ),
        ]
    }

    fn others() -> Vec<(Box<dyn std::error::Error + Send + Sync>, ErrorKind)> {
        let yaml = || FormatError::Yaml(serde_norway::from_str::<u8>("x").unwrap_err());
        vec![
            (Box::new(busy()), Refused),
            (
                Box::new(LockError::Io {
                    path: p(),
                    source: io(),
                }),
                Failure,
            ),
            (Box::new(not_found()), Failure),
            (
                Box::new(StoreError::Exists {
                    kind: ObjectKind::Snapshot,
                    name: s("s"),
                }),
                Failure,
            ),
            (
                Box::new(StoreError::Corrupt {
                    kind: ObjectKind::Guard,
                    name: s("g"),
                    path: p(),
                    source: yaml(),
                }),
                Failure,
            ),
            (
                Box::new(StoreError::Encode {
                    kind: ObjectKind::Guard,
                    name: s("g"),
                    source: yaml(),
                }),
                Failure,
            ),
            (
                Box::new(StoreError::Io {
                    path: p(),
                    source: io(),
                }),
                Failure,
            ),
            (Box::new(name()), Usage),
            (Box::new(query()), Usage),
            (
                Box::new(
                    "lz4"
                        .parse::<crate::formats::compress::Compression>()
                        .unwrap_err(),
                ),
                Usage,
            ),
            (
                Box::new("prod".parse::<crate::promote::dist::Stage>().unwrap_err()),
                Usage,
            ),
            (Box::new(BadVersionRef(s("x"))), Usage),
            (
                Box::new(crate::snapshot::ops::require_satisfied("s", &[dep()]).unwrap_err()),
                Failure,
            ),
            (
                Box::new(crate::root::RootError {
                    path: p(),
                    source: io(),
                }),
                Failure,
            ),
            (
                Box::new(ServeError::Bind {
                    addr: "127.0.0.1:1".parse().unwrap(),
                    source: io(),
                }),
                Failure,
            ),
            (
                Box::new(ServeError::TlsFile {
                    path: p(),
                    source: rustls_pki_types::pem::Error::Base64Decode(s("x")),
                }),
                Failure,
            ),
            (
                Box::new(ServeError::Tls(rustls::Error::General(s("x")))),
                Failure,
            ),
            (
                Box::new(ServeError::Verifier(
                    rustls::server::VerifierBuilderError::NoRootAnchors,
                )),
                Failure,
            ),
            (Box::new(crate::settings::SettingsError::NoRoot), Failure),
            (
                Box::new(crate::settings::SettingsError::Compress(
                    "lz4"
                        .parse::<crate::formats::compress::Compression>()
                        .unwrap_err(),
                )),
                Usage,
            ),
            (
                Box::new(crate::settings::SettingsError::Broker(
                    QueueError::InvalidBroker {
                        url: s("x"),
                        why: "no",
                    },
                )),
                Usage,
            ),
        ]
    }

    fn train() -> Vec<(Box<dyn std::error::Error + Send + Sync>, ErrorKind)> {
        use crate::train::file::FileError;
        use crate::train::{StepError, TrainError};
        let (t, r) = (s("nightly"), s("20261201T020000Z"));
        let dv = || (s("d"), s("v"));
        vec![
            (
                Box::new(TrainError::File(FileError::Invalid {
                    path: p(),
                    place: s("mirrors[0]"),
                    problem: s("unknown key"),
                })),
                Usage,
            ),
            (
                Box::new(FileError::Read {
                    path: p(),
                    source: io(),
                }),
                Usage,
            ),
            (
                Box::new(FileError::Parse {
                    path: p(),
                    source: serde_norway::from_str::<u8>("x").unwrap_err(),
                }),
                Usage,
            ),
            (Box::new(TrainError::Store(not_found())), Failure),
            (Box::new(TrainError::Lock(busy())), Refused),
            (
                Box::new(TrainError::RunExists {
                    train: t.clone(),
                    run: r.clone(),
                }),
                Failure,
            ),
            (Box::new(TrainError::NoRun { train: t.clone() }), Failure),
            (
                Box::new(TrainError::StepsFailed {
                    train: t.clone(),
                    run: r.clone(),
                    failed: vec![s("mirror:a")],
                    blocked: vec![],
                }),
                Failure,
            ),
            (
                Box::new(TrainError::Pending {
                    train: t,
                    run: r,
                    waiting: vec![s("tests:d")],
                }),
                Pending,
            ),
            (
                Box::new(StepError::NotOurs {
                    what: "snapshot",
                    name: s("a"),
                    origin: s("mirror b"),
                }),
                Failure,
            ),
            (
                Box::new({
                    let (dist, version) = dv();
                    StepError::TestsFailed { dist, version }
                }),
                Failure,
            ),
            (
                Box::new({
                    let (dist, version) = dv();
                    StepError::NoTests { dist, version }
                }),
                Failure,
            ),
            (
                Box::new({
                    let (dist, version) = dv();
                    StepError::TestsTimedOut {
                        dist,
                        version,
                        timeout: s("6h"),
                    }
                }),
                Failure,
            ),
        ]
    }

    fn retention() -> Vec<(crate::retention::RetentionError, ErrorKind)> {
        use crate::retention::RetentionError as E;
        vec![
            (E::Lock(busy()), Refused),
            (E::Store(not_found()), Failure),
            (E::Dist(DistError::Config(s("x"))), Usage),
            (E::Snapshot(Box::new(SnapshotError::Query(query()))), Usage),
            (E::Usage(s("give --source or --dist, not both")), Usage),
            (
                E::Unknowable {
                    subject: s("mirror m"),
                    source: Box::new(io()),
                },
                Failure,
            ),
            (
                E::Io {
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
            (E::Problems { count: 2 }, Failure),
        ]
    }

    fn dep() -> crate::packages::pkgset::Unsatisfied {
        crate::packages::pkgset::Unsatisfied {
            package: s("a"),
            version: s("1"),
            arch: s("all"),
            dependency: s("b"),
        }
    }

    fn push() -> Vec<(crate::promote::push::PushError, ErrorKind)> {
        use crate::promote::push::PushError as P;
        let denied = |status| (s("PUT"), s("s3://b/k"), status, s("Code"), s("message"));
        vec![
            (P::InvalidName(name()), Usage),
            (P::Dist(DistError::Config(s("x"))), Usage),
            (P::Lock(busy()), Refused),
            (
                P::Target {
                    url: s("u"),
                    problem: s("p"),
                },
                Usage,
            ),
            (
                P::Endpoint {
                    url: s("u"),
                    problem: s("p"),
                },
                Usage,
            ),
            (
                P::NoStage {
                    dist: s("d"),
                    stage: s("release"),
                },
                Failure,
            ),
            (
                P::NoCredentials {
                    profile: s("default"),
                    files: s("f"),
                },
                Failure,
            ),
            {
                let (_, object, status, code, message) = denied(403);
                (
                    P::Denied {
                        method: "PUT",
                        object,
                        status,
                        code,
                        message,
                    },
                    Failure,
                )
            },
            {
                let (_, object, status, code, message) = denied(500);
                (
                    P::Status {
                        method: "PUT",
                        object,
                        status,
                        code,
                        message,
                    },
                    Failure,
                )
            },
            (
                P::Network {
                    method: "GET",
                    object: s("o"),
                    source: reqwest(),
                },
                Failure,
            ),
            (P::Client(reqwest()), Failure),
            (
                P::Listing {
                    object: s("o"),
                    problem: s("p"),
                },
                Failure,
            ),
            (
                P::Manifest {
                    object: s("o"),
                    source: serde_json::from_str::<u8>("x").unwrap_err(),
                },
                Failure,
            ),
            (
                P::Io {
                    path: p(),
                    source: io(),
                },
                Failure,
            ),
        ]
    }

    fn check<E: std::error::Error + 'static>(cases: Vec<(E, ErrorKind)>) -> usize {
        let n = cases.len();
        for (err, want) in cases {
            assert_eq!(super::error_kind(&err), Some(want), "{err:?}");
        }
        n
    }

    #[test]
    fn every_error_variant_has_its_exit_code() {
        let walked = check(mirror())
            + check(snapshot())
            + check(repo())
            + check(guard())
            + check(build())
            + check(dist())
            + check(publish())
            + check(push())
            + check(retention());
        let mut boxed = 0;
        for (err, want) in testreq().into_iter().chain(others()).chain(train()) {
            let err: &(dyn std::error::Error + 'static) = &*err;
            assert_eq!(super::error_kind(err), Some(want), "{err:?}");
            boxed += 1;
        }
        assert!(walked + boxed > 100, "{walked} + {boxed}");
    }
}
