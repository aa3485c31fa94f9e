//! Test support for the replicated store: a `ChunkStore` that wraps another and breaks at chosen
//! points (a node that refuses a chunk, a copy that fails, never answers its commit or loses its
//! bytes after acknowledging them, a replica whose read errors, stalls, ends short or finds a corrupt block at a chosen
//! byte), and a cluster of such stores over local disks and an SQLite metadata store, so that
//! quorum and failover are tested in one process. Without faults the store passes calls through.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use uuid::Uuid;

use crate::chunk::{ChunkDigest, ChunkId};
use crate::datanode::local::LocalChunkStore;
use crate::datanode::replicated::{ReplicatedStore, ReplicationConfig};
use crate::datanode::{Caching, ChunkError, ChunkStore, ChunkStream, ChunkWriter};
use crate::meta::sqlite::SqliteMeta;
use crate::meta::{ClusterMeta, NodeInfo, NodeState};

/// One way to break. Faults apply to every call made after they are injected; a byte offset is
/// counted from the start of the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `create` fails, as on a node that cannot be reached.
    Refuse,
    /// A write fails when the chunk would grow past `at` bytes.
    FailWrite { at: u64 },
    /// `commit` fails and nothing is kept.
    FailCommit,
    /// `commit` acknowledges the chunk, which is then gone (a disk that lied about a flush).
    LoseCommitted,
    /// `commit` never answers, as a node cut off after the last byte went into its socket.
    StallCommit,
    /// A read reaching byte `at` serves the bytes before it, then fails with an I/O error.
    FailRead { at: u64 },
    /// A read reaching byte `at` serves the bytes before it, then never sends again.
    StallRead { at: u64 },
    /// A read reaching byte `at` serves the bytes before it, then ends as if it were complete.
    ShortRead { at: u64 },
    /// A read reaching byte `at` serves the bytes before it, then reports a corrupt block there,
    /// as a store whose block CRC32C did not match does.
    CorruptRead { at: u64 },
}

impl Fault {
    /// The offset at which this fault breaks a read, if it is a read fault.
    fn read_offset(self) -> Option<u64> {
        match self {
            Fault::FailRead { at }
            | Fault::StallRead { at }
            | Fault::ShortRead { at }
            | Fault::CorruptRead { at } => Some(at),
            _ => None,
        }
    }
}

/// A store that breaks as its injected faults say, and remembers the ranges it was asked for.
pub struct FaultyStore {
    inner: Arc<dyn ChunkStore>,
    faults: Mutex<Vec<Fault>>,
    reads: Mutex<Vec<Range<u64>>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ChunkStore>) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fault);
    }

    /// The ranges of every read asked of this store, in order.
    pub fn reads(&self) -> Vec<Range<u64>> {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn faults(&self) -> Vec<Fault> {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn injected(what: &str) -> ChunkError {
    ChunkError::Io(std::io::Error::other(format!("injected fault: {what}")))
}

#[async_trait]
impl ChunkStore for FaultyStore {
    async fn create(
        &self,
        id: ChunkId,
        caching: Caching,
    ) -> Result<Box<dyn ChunkWriter>, ChunkError> {
        let faults = self.faults();
        if faults.contains(&Fault::Refuse) {
            return Err(injected("refused"));
        }
        let fail_at = faults.iter().find_map(|fault| match fault {
            Fault::FailWrite { at } => Some(*at),
            _ => None,
        });
        let on_commit = faults.iter().copied().find(|fault| {
            matches!(
                fault,
                Fault::FailCommit | Fault::LoseCommitted | Fault::StallCommit
            )
        });
        Ok(Box::new(FaultyWriter {
            inner: self.inner.create(id, caching).await?,
            store: self.inner.clone(),
            id,
            written: 0,
            fail_at,
            on_commit,
        }))
    }

    async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
        expected: Option<ChunkDigest>,
    ) -> Result<ChunkStream, ChunkError> {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(range.clone());
        let inner = self.inner.read(id, range.clone(), expected).await?;
        let Some((at, fault)) = self.faults().into_iter().find_map(|fault| {
            let at = fault.read_offset()?;
            range.contains(&at).then_some((at, fault))
        }) else {
            return Ok(inner);
        };
        let read = FaultyRead {
            inner,
            id,
            pos: range.start,
            at,
            fault,
        };
        Ok(Box::pin(stream::unfold(Some(read), FaultyRead::next)))
    }

    async fn len(&self, id: ChunkId) -> Result<Option<u64>, ChunkError> {
        self.inner.len(id).await
    }

    async fn delete(&self, id: ChunkId) -> Result<(), ChunkError> {
        self.inner.delete(id).await
    }

    async fn list(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkId>, ChunkError> {
        self.inner.list(after, limit).await
    }
}

struct FaultyWriter {
    inner: Box<dyn ChunkWriter>,
    store: Arc<dyn ChunkStore>,
    id: ChunkId,
    written: u64,
    fail_at: Option<u64>,
    on_commit: Option<Fault>,
}

#[async_trait]
impl ChunkWriter for FaultyWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), ChunkError> {
        self.written += data.len() as u64;
        if self.fail_at.is_some_and(|at| self.written > at) {
            return Err(injected("write failed"));
        }
        self.inner.write(data).await
    }

    async fn commit(self: Box<Self>) -> Result<u64, ChunkError> {
        match self.on_commit {
            // Dropping the inner writer discards what it was given.
            Some(Fault::FailCommit) => Err(injected("commit failed")),
            Some(Fault::LoseCommitted) => {
                let len = self.inner.commit().await?;
                self.store.delete(self.id).await?;
                Ok(len)
            }
            Some(Fault::StallCommit) => std::future::pending().await,
            _ => self.inner.commit().await,
        }
    }
}

/// A read that breaks at byte `at`.
struct FaultyRead {
    inner: ChunkStream,
    id: ChunkId,
    /// The chunk offset of the next byte the inner stream yields.
    pos: u64,
    at: u64,
    fault: Fault,
}

impl FaultyRead {
    /// The next item, and the read to go on with (`None` once the fault struck).
    async fn next(
        state: Option<FaultyRead>,
    ) -> Option<(Result<Bytes, ChunkError>, Option<FaultyRead>)> {
        let mut read = state?;
        if read.pos == read.at {
            return read.strike().await.map(|item| (item, None));
        }
        let mut data = match read.inner.next().await? {
            Ok(data) => data,
            Err(e) => return Some((Err(e), None)),
        };
        let end = read.pos + data.len() as u64;
        if end > read.at {
            // The bytes before the fault go out now; the fault strikes on the next poll.
            data.truncate((read.at - read.pos) as usize);
        }
        read.pos += data.len() as u64;
        Some((Ok(data), Some(read)))
    }

    /// What the fault makes of the read at `at`: an error, an early end, or no answer at all.
    async fn strike(self) -> Option<Result<Bytes, ChunkError>> {
        match self.fault {
            Fault::FailRead { .. } => Some(Err(injected("read failed"))),
            Fault::CorruptRead { at } => Some(Err(ChunkError::Corrupt {
                id: self.id,
                offset: at,
            })),
            Fault::StallRead { .. } => std::future::pending().await,
            _ => None,
        }
    }
}

/// A replica that sends nothing for this long is abandoned: long enough for a loaded test
/// machine's disk, short enough to keep the stall tests fast.
pub const STALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Data nodes in this process: each a local store behind a `FaultyStore`, listed as up in an
/// SQLite metadata store, and a `ReplicatedStore` over them.
pub struct LocalCluster {
    pub meta: Arc<dyn ClusterMeta>,
    /// The nodes in the order they were added.
    pub nodes: Vec<(Uuid, Arc<FaultyStore>)>,
    pub store: ReplicatedStore<FaultyStore>,
    _dir: tempfile::TempDir,
}

impl LocalCluster {
    pub async fn start(nodes: usize, replicas: usize, write_quorum: usize) -> LocalCluster {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn ClusterMeta> = Arc::new(
            SqliteMeta::open_path(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let mut started = Vec::new();
        for i in 0..nodes {
            let local = LocalChunkStore::open(dir.path().join(format!("node-{i}")))
                .await
                .unwrap();
            let id = Uuid::new_v4();
            let now = time::OffsetDateTime::now_utc();
            meta.add_node(&NodeInfo {
                id,
                address: format!("local://node-{i}"),
                zone: None,
                state: NodeState::Up,
                capacity: None,
                used: 0,
                free: None,
                last_seen: Some(now),
                added: now,
            })
            .await
            .unwrap();
            started.push((id, Arc::new(FaultyStore::new(Arc::new(local)))));
        }
        let by_id: HashMap<Uuid, Arc<FaultyStore>> = started.iter().cloned().collect();
        let connect = move |info: &NodeInfo| {
            by_id.get(&info.id).cloned().ok_or_else(|| {
                ChunkError::Unavailable(format!("no node {} in this process", info.id))
            })
        };
        let store = ReplicatedStore::with_connector(
            meta.clone(),
            Box::new(connect),
            ReplicationConfig {
                replicas,
                write_quorum,
                chunk_size: 64 * 1024 * 1024,
                stall_timeout: STALL_TIMEOUT,
            },
        );
        LocalCluster {
            meta,
            nodes: started,
            store,
            _dir: dir,
        }
    }

    pub fn node(&self, id: Uuid) -> &Arc<FaultyStore> {
        &self.nodes.iter().find(|(node, _)| *node == id).unwrap().1
    }
}
