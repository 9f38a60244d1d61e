//! The embedded queue: a spool directory (`spool/` in the data root, or
//! `--spool DIR`), for running depot's test loop on one machine without a
//! broker.
//!
//! ```text
//! SPOOL/debci-noble-amd64/20261122T102435.123456789Z-4242-0-a1b2c3   one request
//! SPOOL/debci-noble-amd64/.tmp-XXXX                                  being written
//! SPOOL/rejected/debci-noble-amd64/ID                                malformed, kept
//! ```
//!
//! Each request is one file holding exactly the AMQP message body, written
//! to a temp file, synced and renamed, so a reader never sees half a
//! request. Ids sort by submission time, so the oldest file is the next.
//!
//! A worker claims a request with an exclusive `flock` on its file and
//! deletes the file only after the result is stored. Another worker skips
//! a locked file; if the claiming worker dies, the kernel drops the lock and
//! the request is there for the next worker, like an unacknowledged AMQP
//! message. The lock fd is close-on-exec, so the test command (which may
//! outlive a killed worker) never holds it.

use std::fs::{File, TryLockError};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::queue::{Queue, QueueError, Submitted, Taken, new_id};
use super::request::{QueueKind, Request};

#[derive(Debug, Clone)]
pub struct SpoolQueue {
    dir: PathBuf,
}

/// A claimed spool file: the lock lives as long as this handle.
#[derive(Debug)]
pub struct SpoolHandle {
    path: PathBuf,
    _lock: File,
}

impl SpoolQueue {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> QueueError {
        let path = path.to_owned();
        move |source| QueueError::Spool {
            path,
            action,
            source,
        }
    }

    /// Every queue directory in the spool (names that parse as queues).
    pub fn queues(&self) -> Result<Vec<String>, QueueError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::err(&self.dir, "list")(e)),
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| QueueKind::parse_queue_name(n).is_some())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The ids waiting in `queue`, oldest first (claimed ones included).
    pub fn pending(&self, queue: &str) -> Result<Vec<String>, QueueError> {
        let dir = self.dir.join(queue);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::err(&dir, "list")(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn try_claim(&self, queue: &str, id: &str) -> Result<Option<Taken<SpoolHandle>>, QueueError> {
        let path = self.dir.join(queue).join(id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            // Another worker finished it between listing and opening.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::err(&path, "open")(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(Self::err(&path, "lock")(e)),
        }
        // A worker that acked it unlinked it while we waited for the lock.
        let meta = file.metadata().map_err(Self::err(&path, "stat"))?;
        if meta.nlink() == 0 {
            return Ok(None);
        }
        let mut body = Vec::new();
        file.read_to_end(&mut body)
            .map_err(Self::err(&path, "read"))?;
        Ok(Some(Taken {
            queue: queue.to_owned(),
            id: id.to_owned(),
            body,
            handle: SpoolHandle { path, _lock: file },
        }))
    }
}

impl Queue for SpoolQueue {
    type Handle = SpoolHandle;

    async fn submit(&mut self, requests: &[Request]) -> Result<Vec<Submitted>, QueueError> {
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            let queue = r.queue();
            let id = new_id();
            let body = r.body();
            let path = self.dir.join(&queue).join(&id);
            crate::fsutil::write_atomic(&path, &body).map_err(Self::err(&path, "write"))?;
            out.push(Submitted {
                queue,
                id,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(out)
    }

    async fn take(&mut self, queues: &[String]) -> Result<Option<Taken<SpoolHandle>>, QueueError> {
        let mut waiting: Vec<(String, String)> = Vec::new();
        for q in queues {
            waiting.extend(self.pending(q)?.into_iter().map(|id| (id, q.clone())));
        }
        // Oldest first across queues: ids start with the submission time.
        waiting.sort();
        for (id, queue) in waiting {
            if let Some(t) = self.try_claim(&queue, &id)? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    async fn ack(&mut self, taken: Taken<SpoolHandle>) -> Result<(), QueueError> {
        let path = &taken.handle.path;
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::err(path, "remove")(e)),
        }
    }

    async fn reject(&mut self, taken: Taken<SpoolHandle>) -> Result<(), QueueError> {
        let dir = self.dir.join("rejected").join(&taken.queue);
        std::fs::create_dir_all(&dir).map_err(Self::err(&dir, "create"))?;
        let to = dir.join(&taken.id);
        std::fs::rename(&taken.handle.path, &to)
            .map_err(Self::err(&taken.handle.path, "move aside"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(arch: &str) -> Request {
        Request {
            package: "hello".into(),
            release: "noble".into(),
            arch: arch.into(),
            kind: QueueKind::Default,
            params: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_claimed_request_is_invisible_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = SpoolQueue::new(dir.path());
        let mut b = SpoolQueue::new(dir.path());
        a.submit(&[request("amd64")]).await.unwrap();
        let queues = a.queues().unwrap();
        assert_eq!(queues, vec!["debci-noble-amd64"]);
        let taken = a.take(&queues).await.unwrap().unwrap();
        assert_eq!(taken.body, b"hello\n{}");
        assert!(b.take(&queues).await.unwrap().is_none());
        // Dropping without ack is what a dying worker does.
        drop(taken);
        let again = b.take(&queues).await.unwrap().unwrap();
        b.ack(again).await.unwrap();
        assert!(a.take(&queues).await.unwrap().is_none());
        assert!(a.pending("debci-noble-amd64").unwrap().is_empty());
    }

    #[tokio::test]
    async fn oldest_first_across_queues_and_rejects_are_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = SpoolQueue::new(dir.path());
        let first = q.submit(&[request("arm64")]).await.unwrap();
        q.submit(&[request("amd64")]).await.unwrap();
        let queues = q.queues().unwrap();
        let t = q.take(&queues).await.unwrap().unwrap();
        assert_eq!(t.id, first[0].id);
        let id = t.id.clone();
        q.reject(t).await.unwrap();
        assert!(
            dir.path()
                .join("rejected/debci-noble-arm64")
                .join(id)
                .is_file()
        );
        assert_eq!(q.queues().unwrap().len(), 2);
    }
}
