//! Group sync: many chunk writers made durable by one `syncfs(2)`.
//!
//! Fsyncing each small chunk file and its directory costs two journal commits and two device
//! cache flushes per chunk, which bounds small writes at a few hundred per second per disk. A
//! writer instead writes and renames its file, then asks the group: one task calls `syncfs` on
//! the store's filesystem and answers every ask that arrived before that call started, so
//! concurrent writers share one flush. `syncfs` writes back all dirty data and metadata of the
//! filesystem, the files' contents and the renames alike, and reports writeback errors (Linux
//! 5.8 and later).

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
        let (asks, mut queue) = mpsc::unbounded_channel::<oneshot::Sender<Answer>>();
        let dir = Arc::new(dir);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut waiting = vec![first];
                while let Ok(more) = queue.try_recv() {
                    waiting.push(more);
                }
                let fd = dir.clone();
                let answer =
                    match tokio::task::spawn_blocking(move || rustix::fs::syncfs(&*fd)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(errno)) => Err(Arc::new(io::Error::from(errno))),
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_asks_are_all_answered() {
        let dir = tempfile::tempdir().unwrap();
        let group = SyncGroup::start(File::open(dir.path()).unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64 {
            let group = group.clone();
            let path = dir.path().join(format!("f{i}"));
            tasks.spawn(async move {
                std::fs::write(&path, b"data").unwrap();
                group.sync().await
            });
        }
        let mut answered = 0;
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
            answered += 1;
        }
        assert_eq!(answered, 64);
    }
}
