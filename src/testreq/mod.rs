//! Test requests: submit autopkgtest-style requests, run them, and poll
//! their results, speaking autopkgtest-cloud's wire formats to the byte so
//! that depot can drive an existing autopkgtest-cloud deployment (RabbitMQ
//! queues in, Swift results out) or stand alone on one machine (a spool
//! directory in, a `file://` results tree out).
//!
//! # Requests
//!
//! A request asks for the tests of one source package on one release and
//! architecture. On the wire it is one AMQP message, published persistent
//! (`delivery_mode` 2) to the default exchange with the queue's name as
//! routing key. The body is the package name, a newline, and a JSON object:
//!
//! ```text
//! hello
//! {"env":["DEBUG=1"],"ppas":["user/ppa"],"submit-time":"2026-11-22 10:24:35+0000","triggers":["glibc/2.40-1"]}
//! ```
//!
//! autopkgtest-cloud's workers split at the *first* `\n` (a space there is
//! rejected), check the name against `[a-zA-Z0-9.+-]+$`, and read these
//! keys: `triggers` (list of `src/version`), `ppas` (list of `user/ppa`),
//! `env` (list of `K=V`), `test-git` (`URL` or `URL BRANCH`), `build-git`
//! (`URL[#ref]`), `test-bzr`, `all-proposed` (only its *presence* counts, so
//! depot omits it unless set), `testname`, `swiftuser`, `readable-by`
//! (string or list), `requester` and `submit-time`. depot writes the keys in
//! sorted order, as autopkgtest-web does, and leaves out empty lists.
//!
//! Queues are durable and named by kind: `debci-RELEASE-ARCH`,
//! `debci-huge-RELEASE-ARCH`, `debci-ppa-RELEASE-ARCH` and
//! `debci-upstream-RELEASE-ARCH`; release and architecture never contain a
//! dash, so the name parses back unambiguously. The embedded spool keeps
//! the same body in one file per request, `SPOOL/QUEUE/ID` (see [`spool`]).
//!
//! # Results
//!
//! Workers store each run in a Swift container named `autopkgtest-RELEASE`,
//! or `autopkgtest-RELEASE-LPUSER-PPA` when the request named PPAs (the last
//! one), prefixed with `private-` for private runs (`swiftuser`). Objects are
//! `RELEASE/ARCH/PREFIX/SRCPKG/YYYYMMDD_HHMMSS_HASH@/result.tar` (plus
//! `log.gz` and `artifacts.tar.gz`), where PREFIX is the first four letters
//! of `lib*` packages and the first letter otherwise. The trailing `@` lets
//! a client list the runs of one package with
//! `GET CONTAINER?delimiter=@&prefix=RELEASE/ARCH/PREFIX/SRCPKG/` (plain
//! text, one `…@` per line, paged with `marker`; 204 means no runs yet).
//!
//! `result.tar` holds `exitcode` (autopkgtest's: 0 and 2 pass, 8 neutral —
//! no tests ran —, 16 temporary failure of the testbed, anything else
//! fails), `testpkg-version` (`pkg version`), `duration` (seconds) and
//! `testinfo.json`, whose `custom_environment` carries
//! `ADT_TEST_TRIGGERS=src/ver src/ver…`: that is how a result is matched
//! back to the triggers it was requested for (britney's rule, see
//! [`poll`]). A `file://DIR` results URL holds the same containers and
//! objects as plain directories and files.
//!
//! # What this module owns
//!
//! Validation and encoding of requests ([`request`]), the two queues
//! ([`spool`], [`amqp`]) behind [`queue::Queue`], result archives and the
//! two result stores ([`results`], Swift's authentication in [`swift`]), polling ([`poll`]), the worker loop
//! ([`worker`]) and test planning from the differences of two snapshots or
//! releases ([`plan`]). It reads snapshots and releases through
//! [`crate::snapshot`] and never writes them.

pub mod amqp;
pub mod ops;
pub mod plan;
pub mod poll;
pub mod queue;
pub mod request;
pub mod results;
pub mod spool;
pub mod swift;
pub mod worker;

pub use poll::{PollOptions, PollReport, Status};
pub use queue::{Queue, QueueError, Submitted};
pub use request::{Params, QueueKind, Request, RequestError, RequestOptions};
pub use results::ResultsError;
