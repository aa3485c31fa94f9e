//! Group sync: many chunk writers made durable by one `syncfs(2)`.
//!
//! A new small chunk file costs a flush of its data and of its directory entry, and on a disk
//! whose flush takes milliseconds, one flush per file bounds small writes at a few hundred per
//! second. A writer instead writes and renames its file, then asks the group: one task calls
//! `syncfs` on the store's filesystem and answers every ask that arrived before that call
//! started, so concurrent writers share one flush. `syncfs` writes back all dirty data and
//! metadata of the filesystem, the files' contents and the renames alike, and reports writeback
//! errors (Linux 5.8 and later).

use std::fs::File;
use std::io;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// The answer to one ask: the error is shared by every ask of a failed sync.
type Answer = Result<(), Arc<io::Error>>;

/// A handle on the store's sync task; cloned by each writer. The task ends when the last handle
/// is dropped.
#[derive(Clone, Debug)]
pub struct SyncGroup {
    asks: mpsc::UnboundedSender<oneshot::Sender<Answer>>,
}

impl SyncGroup {
    /// Starts the task that syncs the filesystem holding `dir` (an open directory). Must be called
    /// within a Tokio runtime.
    pub fn start(dir: File) -> SyncGroup {
        SyncGroup::with(move || rustix::fs::syncfs(&dir).map_err(io::Error::from))
    }

    /// Starts the task with `flush` as the sync that answers each group of asks.
    fn with(flush: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> SyncGroup {
        let (asks, mut queue) = mpsc::unbounded_channel::<oneshot::Sender<Answer>>();
        let flush = Arc::new(flush);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut waiting = vec![first];
                while let Ok(more) = queue.try_recv() {
                    waiting.push(more);
                }
                let flush = flush.clone();
                let answer = match tokio::task::spawn_blocking(move || flush()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(Arc::new(err)),
                    Err(join) => Err(Arc::new(io::Error::other(join))),
                };
                if let Err(err) = &answer {
                    tracing::error!(error = %err, "syncfs failed: chunk writes are not durable");
                }
                for waiter in waiting {
                    // A writer that stopped waiting has nothing left to learn.
                    let _ = waiter.send(answer.clone());
                }
            }
        });
        SyncGroup { asks }
    }

    /// Returns once everything written to the filesystem before the call is durable.
    pub async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        let stopped = || io::Error::other("the sync task has stopped");
        self.asks.send(tx).map_err(|_| stopped())?;
        match rx.await.map_err(|_| stopped())? {
            Ok(()) => Ok(()),
            Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Asks `group` 64 times at once and returns the answers.
    async fn ask_together(group: &SyncGroup) -> Vec<io::Result<()>> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let group = group.clone();
            tasks.spawn(async move { group.sync().await });
        }
        tasks.join_all().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_asks_share_flushes() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let counted = flushes.clone();
        let group = SyncGroup::with(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            Ok(())
        });
        let answers = ask_together(&group).await;
        assert!(answers.iter().all(Result::is_ok));
        let flushes = flushes.load(Ordering::SeqCst);
        // The asks that arrive while one flush runs wait for the next, so 64 asks take at
        // least one flush and far fewer than 64.
        assert!((1..=8).contains(&flushes), "{flushes} flushes for 64 asks");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_flush_fails_every_ask_it_answers() {
        let group = SyncGroup::with(|| Err(io::Error::other("device gone")));
        for answer in ask_together(&group).await {
            let err = answer.unwrap_err();
            assert!(err.to_string().contains("device gone"), "{err}");
        }
    }

    #[tokio::test]
    async fn syncfs_of_a_real_directory_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"data").unwrap();
        let group = SyncGroup::start(File::open(dir.path()).unwrap());
        group.sync().await.unwrap();
    }
}
