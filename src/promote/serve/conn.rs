//! What keeps `depot serve` answering when clients misbehave: a bound on
//! connections held at once, a watchdog closing connections on which no
//! byte moves, the lingering close, and opening a requested file so that
//! it cannot resolve outside the folder it is served from.
//!
//! The rules, in the order a connection meets them:
//! - at most [`Limits::max_connections`] connections are served at once;
//!   past that, serve stops accepting and new clients wait in the kernel's
//!   listen backlog until one ends (as nginx does with `worker_connections`);
//! - a TLS handshake must end within the idle timeout;
//! - a request's headers must arrive within the idle timeout (hyper's
//!   header read timer, which also closes idle keep-alive connections);
//! - a connection on which no byte is read or written for the idle timeout
//!   is closed, which ends slow readers and stalled uploads too;
//! - headers over hyper's buffer (~400 KiB) or over 100 fields get 431.
//!
//! Each connection holds one file descriptor, plus one while it streams a
//! file over 256 KiB. serve raises its soft open-file limit to the hard one
//! at start, and by default serves as many connections as that leaves room
//! for, less [`RESERVED_FDS`].

use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Descriptors kept back from connections: the listener, the data root's
/// files, and files opened while answering.
pub const RESERVED_FDS: usize = 256;

/// How many clients serve holds at once and how long it waits on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time a connection may go without a byte moving either way,
    /// and longest a TLS handshake or a request's headers may take.
    pub idle_timeout: Duration,
    /// Connections served at once; `None`: what the open-file limit allows.
    pub max_connections: Option<usize>,
}

impl Limits {
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

    /// The number of connections to serve: the given one, or what the
    /// open-file limit allows once raised to its hard value.
    pub(super) fn connections(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| raise_fd_limit().saturating_sub(RESERVED_FDS).max(1))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
        }
    }
}

/// Connections the kernel completes and queues while serve is busy
/// accepting others (capped by `net.core.somaxconn`). tokio's default of
/// 1,024 overflows in a burst of new clients, and each SYN dropped then
/// costs its client a one-second retransmission.
const BACKLOG: u32 = 4096;

/// Binds the listening socket, with [`BACKLOG`].
pub(super) fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does
/// for every program) and returns the limit in force.
fn raise_fd_limit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A connection's socket, failing a read or write with `TimedOut` once no
/// byte has moved either way for `idle`. A long download or upload is fine
/// as long as it moves; a client that stops reading what it asked for, or
/// stops sending what it announced, is let go.
pub(super) struct Watchdog<T> {
    io: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    timed_out: bool,
}

impl<T> Watchdog<T> {
    pub(super) fn new(io: T, idle: Duration) -> Self {
        let last = Instant::now();
        Self {
            io,
            idle,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + idle)),
            timed_out: false,
        }
    }

    /// Whether the connection was let go for going idle.
    pub(super) fn timed_out(&self) -> bool {
        self.timed_out
    }

    pub(super) fn into_inner(self) -> T {
        self.io
    }

    /// After the inner socket answered: ready means progress. The timer
    /// is moved only when it fires early (bytes moved since it was set),
    /// not on every poll, which keeps the timer wheel out of each read and
    /// write.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<R>) -> Poll<std::io::Result<R>> {
        if let Poll::Ready(r) = poll {
            self.last = Instant::now();
            return Poll::Ready(Ok(r));
        }
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let deadline = self.last + self.idle;
            if deadline <= Instant::now() {
                self.timed_out = true;
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no byte moved for the idle timeout",
                )));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watchdog<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        self.watch(cx, poll).map(|r| r.and_then(|inner| inner))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watchdog<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll).map(|r| r.and_then(|inner| inner))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll).map(|r| r.and_then(|inner| inner))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll).map(|r| r.and_then(|inner| inner))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, poll).map(|r| r.and_then(|inner| inner))
    }
}

/// Closes a connection the way Apache's lingering close does: hyper may
/// end one with the request unread (431 for an oversized header, a
/// refused upload), and closing a socket with unread data resets it,
/// which can destroy the answer before the client reads it. So the write
/// side is shut first, and what the client still sends is read and
/// dropped (for at most 2 s and 64 MiB) until it closes. A connection let
/// go for idling has nothing in flight to protect and is closed at once:
/// lingering on thousands of them would hold their memory for nothing.
pub(super) async fn linger_close(mut socket: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = socket.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        // Allocated once there is something to drop.
        if socket.readable().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut left: usize = 64 << 20;
        while let Ok(n @ 1..) = socket.read(&mut buf).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// Why a file could not be opened for an answer.
pub(super) enum OpenError {
    /// Missing, not a regular file, or resolving outside its folder
    /// (through `..` in a symlink, or a symlink to an absolute path): 404.
    NotFound,
    /// Anything else (out of descriptors, permissions): 503.
    Unavailable(std::io::Error),
}

/// Opens `rest` (a clean relative path) inside `dir` for reading, refusing
/// any resolution that leaves `dir`: `openat2` with `RESOLVE_BENEATH`, so a
/// symlink planted in a published tree cannot expose the rest of the
/// machine. On kernels without `openat2` (before 5.6), the opened file's
/// real path is checked instead.
pub(super) fn open_beneath(dir: &Path, rest: &Path) -> Result<Opened, OpenError> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let classify = |e: Errno| match e {
        Errno::NOENT | Errno::NOTDIR | Errno::XDEV | Errno::LOOP | Errno::ISDIR => {
            OpenError::NotFound
        }
        e => OpenError::Unavailable(e.into()),
    };
    let base = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(classify)?;
    let opened: Result<OwnedFd, Errno> = rustix::fs::openat2(
        &base,
        rest,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    );
    let fd = match opened {
        Err(Errno::NOSYS) => return open_checked(dir, rest),
        other => other.map_err(classify)?,
    };
    regular(std::fs::File::from(fd))
}

/// An opened regular file and its metadata.
pub(super) type Opened = (std::fs::File, std::fs::Metadata);

fn regular(file: std::fs::File) -> Result<Opened, OpenError> {
    match file.metadata() {
        Ok(m) if m.is_file() => Ok((file, m)),
        Ok(_) => Err(OpenError::NotFound),
        Err(e) => Err(OpenError::Unavailable(e)),
    }
}

/// [`open_beneath`] without `openat2`: resolves the path, then opens it
/// only if it is still inside `dir`'s real path.
fn open_checked(dir: &Path, rest: &Path) -> Result<Opened, OpenError> {
    let not_found = |_| OpenError::NotFound;
    let real_dir = dir.canonicalize().map_err(not_found)?;
    let real = dir.join(rest).canonicalize().map_err(not_found)?;
    if !real.starts_with(&real_dir) {
        return Err(OpenError::NotFound);
    }
    regular(std::fs::File::open(&real).map_err(OpenError::Unavailable)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_out_of_the_folder_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let served = d.path().join("served");
        std::fs::create_dir_all(served.join("sub")).unwrap();
        std::fs::write(d.path().join("secret"), "secret").unwrap();
        std::fs::write(served.join("sub/file"), "ok").unwrap();
        std::os::unix::fs::symlink("../secret", served.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", served.join("abs")).unwrap();
        std::os::unix::fs::symlink("sub/file", served.join("inside")).unwrap();
        std::os::unix::fs::symlink("..", served.join("sub/parent")).unwrap();

        let read = |p: &str| {
            open_beneath(&served, Path::new(p))
                .map(|(f, _)| std::io::read_to_string(f).unwrap())
                .ok()
        };
        assert_eq!(read("sub/file").as_deref(), Some("ok"));
        assert_eq!(read("inside").as_deref(), Some("ok"));
        assert_eq!(read("sub/parent/sub/file").as_deref(), Some("ok"));
        assert_eq!(read("up"), None);
        assert_eq!(read("abs"), None);
        assert_eq!(read("sub"), None, "a folder is not a file");
        assert_eq!(read("missing"), None);
        for check in [
            open_checked(&served, Path::new("up")).is_err(),
            open_checked(&served, Path::new("abs")).is_err(),
            open_checked(&served, Path::new("inside")).is_ok(),
        ] {
            assert!(check);
        }
    }
}
