//! The cluster's chunk store: every chunk goes to R data nodes at once and is written when W of
//! them acknowledge; a read takes one replica and, if that node fails, stalls or serves a
//! corrupt block, continues from the exact byte on another. Which nodes hold a chunk is kept in
//! the metadata store (replica rows are written before the bytes are sent, so a copy is never
//! on a node without the store knowing); missing copies are left for the coordinator's repair.
//! Nodes are reached through a `Connector`: `RemoteNode`s in a cluster, in-process stores in tests.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::auth::ClusterKey;
use super::remote::{NodeTls, RemoteNode, RemoteTimeouts};
use super::{Caching, ChunkError, ChunkStore, ChunkStream, ChunkWriter};
use crate::chunk::placement::{Candidate, place, rendezvous_hash};
use crate::chunk::{ChunkDigest, ChunkId};
use crate::meta::{ClusterMeta, NodeInfo, NodeState};

/// How stale the cached node list may get before a write reloads it.
const NODE_LIST_MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct ReplicationConfig {
    pub replicas: usize,
    pub write_quorum: usize,
    /// The most bytes one chunk can hold: what a node must have room for.
    pub chunk_size: u64,
    /// A replica that sends nothing for this long is abandoned for another.
    pub stall_timeout: Duration,
}

/// From a node's row, the `ChunkStore` its copies are written and read through: a `RemoteNode`
/// at the row's address in a cluster, an in-process store in tests. Called when a node first
/// appears in the node list, and again when its address changes.
pub type Connector<S> = Box<dyn Fn(&NodeInfo) -> Result<Arc<S>, ChunkError> + Send + Sync>;

/// One data node as the store uses it.
pub struct Node<S = RemoteNode> {
    pub info: NodeInfo,
    pub client: Arc<S>,
    /// Reads in flight, to prefer the least loaded replica.
    reading: Arc<AtomicUsize>,
    /// Bytes promised to chunks sent here since the node's free space was last reported, so
    /// that writes between two health checks do not overfill it.
    reserved: Arc<AtomicU64>,
}

pub struct ReplicatedStore<S = RemoteNode> {
    meta: Arc<dyn ClusterMeta>,
    connect: Connector<S>,
    config: ReplicationConfig,
    nodes: RwLock<NodeCache<S>>,
}

/// The node list and when it was loaded.
struct NodeCache<S> {
    loaded: Option<Instant>,
    nodes: HashMap<Uuid, Arc<Node<S>>>,
}

impl ReplicatedStore<RemoteNode> {
    /// The cluster's store: every node reached over HTTP (HTTPS for `https://` nodes, trusting
    /// `tls`), signed with the cluster key.
    pub fn new(
        meta: Arc<dyn ClusterMeta>,
        key: ClusterKey,
        tls: Option<NodeTls>,
        config: ReplicationConfig,
    ) -> Self {
        let connect = move |info: &NodeInfo| {
            let client = RemoteNode::new(&info.address, key.clone())
                .map_err(|e| ChunkError::Io(std::io::Error::other(e.to_string())))?
                .with_timeouts(RemoteTimeouts {
                    stall: config.stall_timeout,
                    ..RemoteTimeouts::default()
                })
                .with_tls(tls.as_ref())
                .with_reserve(config.chunk_size);
            Ok(Arc::new(client))
        };
        ReplicatedStore::with_connector(meta, Box::new(connect), config)
    }
}

impl<S: ChunkStore> ReplicatedStore<S> {
    /// A store over the nodes in `meta`'s node list, each reached through `connect`.
    pub fn with_connector(
        meta: Arc<dyn ClusterMeta>,
        connect: Connector<S>,
        config: ReplicationConfig,
    ) -> Self {
        ReplicatedStore {
            meta,
            connect,
            config,
            nodes: RwLock::new(NodeCache {
                loaded: None,
                nodes: HashMap::new(),
            }),
        }
    }

    pub fn config(&self) -> ReplicationConfig {
        self.config
    }

    /// Reloads the node list from the metadata store.
    pub async fn refresh(&self) -> Result<(), ChunkError> {
        let infos = self.meta.nodes().await.map_err(meta_error)?;
        let mut guard = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::with_capacity(infos.len());
        for info in infos {
            let node = match guard.nodes.get(&info.id) {
                Some(old) if old.info.address == info.address => Arc::new(Node {
                    reserved: if old.info.last_seen == info.last_seen {
                        old.reserved.clone()
                    } else {
                        Arc::new(AtomicU64::new(0))
                    },
                    info: info.clone(),
                    client: old.client.clone(),
                    reading: old.reading.clone(),
                }),
                _ => Arc::new(Node {
                    client: (self.connect)(&info)?,
                    info: info.clone(),
                    reading: Arc::new(AtomicUsize::new(0)),
                    reserved: Arc::new(AtomicU64::new(0)),
                }),
            };
            next.insert(info.id, node);
        }
        *guard = NodeCache {
            loaded: Some(Instant::now()),
            nodes: next,
        };
        Ok(())
    }

    async fn fresh_nodes(&self) -> Result<HashMap<Uuid, Arc<Node<S>>>, ChunkError> {
        let stale = {
            let guard = self.nodes.read().unwrap_or_else(|e| e.into_inner());
            guard
                .loaded
                .is_none_or(|at| at.elapsed() > NODE_LIST_MAX_AGE)
        };
        if stale {
            self.refresh().await?;
        }
        Ok(self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .clone())
    }

    /// The node with this id, as last loaded.
    pub async fn node(&self, id: Uuid) -> Result<Option<Arc<Node<S>>>, ChunkError> {
        Ok(self.fresh_nodes().await?.get(&id).cloned())
    }

    /// Nodes that may receive new chunks: up, with room for a whole chunk.
    pub fn writable(
        &self,
        nodes: &HashMap<Uuid, Arc<Node<S>>>,
    ) -> Vec<(Uuid, Option<String>, u64)> {
        nodes
            .values()
            .filter(|n| n.info.state == NodeState::Up)
            .filter_map(|n| {
                let free = n
                    .info
                    .free
                    .unwrap_or(u64::MAX / 2)
                    .saturating_sub(n.reserved.load(Ordering::Relaxed));
                (free >= self.config.chunk_size).then(|| (n.info.id, n.info.zone.clone(), free))
            })
            .collect()
    }

    /// Up to `count` nodes for new copies of `chunk`, excluding `exclude`.
    pub async fn targets(
        &self,
        chunk: ChunkId,
        count: usize,
        exclude: &[Uuid],
    ) -> Result<Vec<Arc<Node<S>>>, ChunkError> {
        let nodes = self.fresh_nodes().await?;
        let writable = self.writable(&nodes);
        let candidates: Vec<Candidate<'_>> = writable
            .iter()
            .filter(|(id, _, _)| !exclude.contains(id))
            .map(|(id, zone, free)| Candidate {
                id: *id,
                zone: zone.as_deref(),
                free: *free,
            })
            .collect();
        Ok(place(chunk, &candidates, count)
            .into_iter()
            .filter_map(|id| nodes.get(&id).cloned())
            .collect())
    }

    /// Replicas of `chunk` to read from, best first (see `read_order`).
    async fn readable(&self, chunk: ChunkId) -> Result<Vec<Arc<Node<S>>>, ChunkError> {
        let holders = self.meta.replicas(chunk).await.map_err(meta_error)?;
        let nodes = self.fresh_nodes().await?;
        let readable: Vec<Arc<Node<S>>> = holders
            .iter()
            .filter_map(|id| nodes.get(id).cloned())
            .filter(|n| n.info.state != NodeState::Down)
            .collect();
        let order = read_order(
            chunk,
            readable
                .iter()
                .map(|n| (n.info.id, n.info.state, n.reading.load(Ordering::Relaxed))),
        );
        Ok(order.into_iter().map(|i| readable[i].clone()).collect())
    }
}

/// Reads in flight by which a chunk's preferred replica may exceed another replica before reads
/// of that chunk go to the other.
const READ_AFFINITY_SLACK: usize = 8;

/// The order in which to try the replicas `(node, state, reads in flight)` of `chunk`, as
/// indices: up nodes before draining ones; among them the chunk's preferred node (the highest
/// rendezvous hash, the same on every gateway) first unless it has `READ_AFFINITY_SLACK` more
/// reads in flight than another. Reads of one chunk so stay on the one node whose page cache
/// holds it, while the preference spreads different chunks over all nodes.
fn read_order(
    chunk: ChunkId,
    replicas: impl Iterator<Item = (Uuid, NodeState, usize)>,
) -> Vec<usize> {
    // (draining, preference) per replica, lower first: the preference is the reverse hash.
    let replicas: Vec<((bool, Reverse<u64>), usize)> = replicas
        .map(|(node, state, reading)| {
            let rank = (
                state != NodeState::Up,
                Reverse(rendezvous_hash(chunk, node)),
            );
            (rank, reading)
        })
        .collect();
    let preferred = (0..replicas.len()).min_by_key(|&i| replicas[i].0);
    let mut order: Vec<usize> = (0..replicas.len()).collect();
    order.sort_by_key(|&i| {
        let ((draining, preference), reading) = replicas[i];
        let slack = if Some(i) == preferred {
            0
        } else {
            READ_AFFINITY_SLACK
        };
        (draining, reading + slack, preference)
    });
    order
}

/// How the copy of `chunk` on `node` is written, beside copies on `others`: kept in the page
/// cache if `node` is the chunk's preferred replica among them (the one `read_order` tries
/// first), dropped behind otherwise, as reads will not come to it while the other serves them.
pub fn caching_for(chunk: ChunkId, node: Uuid, others: impl IntoIterator<Item = Uuid>) -> Caching {
    let mine = rendezvous_hash(chunk, node);
    if others
        .into_iter()
        .filter(|other| *other != node)
        .all(|other| rendezvous_hash(chunk, other) < mine)
    {
        Caching::Keep
    } else {
        Caching::DropBehind
    }
}

/// A metadata store out of reach (failing over, restarting) makes chunk storage unavailable for
/// now, as lost nodes do: a retryable 503, not an I/O failure's 500.
fn meta_error(e: crate::meta::MetaError) -> ChunkError {
    if e.is_unavailable() {
        return ChunkError::Unavailable(format!("metadata store: {e}"));
    }
    ChunkError::Io(std::io::Error::other(e))
}

/// Bytes being written to every target of a chunk at once.
struct ReplicatedWriter {
    meta: Arc<dyn ClusterMeta>,
    chunk: ChunkId,
    write_quorum: usize,
    /// The least time copies still committing are waited for once W have committed.
    stall: Duration,
    writers: Vec<(Uuid, Box<dyn ChunkWriter>)>,
    failed: Vec<Uuid>,
}

impl ReplicatedWriter {
    fn check_quorum(&self) -> Result<(), ChunkError> {
        if self.writers.len() < self.write_quorum {
            return Err(ChunkError::Unavailable(format!(
                "only {} of the {} copies needed for chunk {} could be written",
                self.writers.len(),
                self.write_quorum,
                self.chunk
            )));
        }
        Ok(())
    }

    /// Forgets the replica rows of copies that failed: repair will make them elsewhere.
    async fn forget_failed(&mut self) {
        for node in self.failed.drain(..) {
            if let Err(e) = self.meta.remove_replica(self.chunk, node).await {
                tracing::warn!(chunk = %self.chunk, error = %e, "could not forget a failed copy");
            }
        }
    }
}

#[async_trait]
impl ChunkWriter for ReplicatedWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), ChunkError> {
        let writes = self.writers.iter_mut().map(|(_, w)| w.write(data.clone()));
        let results = join_all(writes).await;
        let mut kept = Vec::with_capacity(self.writers.len());
        for ((node, writer), result) in self.writers.drain(..).zip(results) {
            match result {
                Ok(()) => kept.push((node, writer)),
                Err(e) => {
                    tracing::warn!(chunk = %self.chunk, %node, error = %e, "a copy failed while writing");
                    self.failed.push(node);
                }
            }
        }
        self.writers = kept;
        self.check_quorum()
    }

    /// Once W copies committed, the others get as long again as those took (at least the stall
    /// timeout): a node cut off after the last byte went into its socket never answers, and
    /// would otherwise hold an acknowledged write for the whole commit timeout. A copy given up
    /// loses its row; should the node commit it after all, the file is an orphan for collection
    /// to remove, and repair makes the missing copy.
    async fn commit(mut self: Box<Self>) -> Result<u64, ChunkError> {
        let started = tokio::time::Instant::now();
        let mut pending: Vec<Uuid> = self.writers.iter().map(|(node, _)| *node).collect();
        let mut commits: FuturesUnordered<_> = std::mem::take(&mut self.writers)
            .into_iter()
            .map(|(node, w)| async move { (node, w.commit().await) })
            .collect();
        let mut size = None;
        let mut written = 0;
        let mut deadline = None;
        loop {
            let next = match deadline {
                None => commits.next().await,
                // Past the deadline the copies still pending are given up.
                Some(at) => tokio::time::timeout_at(at, commits.next())
                    .await
                    .ok()
                    .flatten(),
            };
            let Some((node, result)) = next else { break };
            pending.retain(|n| *n != node);
            match result {
                Ok(n) => {
                    written += 1;
                    size = Some(n);
                    if written == self.write_quorum {
                        let grace = started.elapsed().max(self.stall);
                        deadline = Some(tokio::time::Instant::now() + grace);
                    }
                }
                Err(e) => {
                    tracing::warn!(chunk = %self.chunk, %node, error = %e, "a copy failed to commit");
                    self.failed.push(node);
                }
            }
        }
        drop(commits);
        for node in pending {
            tracing::warn!(chunk = %self.chunk, %node, "a copy failed to commit in time; left for repair");
            self.failed.push(node);
        }
        self.forget_failed().await;
        match size {
            Some(n) if written >= self.write_quorum => Ok(n),
            _ => Err(ChunkError::Unavailable(format!(
                "only {written} of the {} copies needed for chunk {} were written",
                self.write_quorum, self.chunk
            ))),
        }
    }
}

impl Drop for ReplicatedWriter {
    fn drop(&mut self) {
        // Uncommitted copies: their writers abort on drop; their rows are those of an abandoned
        // write, which the coordinator forgets after `--abandon-after`, its files then orphans.
        if !self.failed.is_empty() {
            let meta = self.meta.clone();
            let chunk = self.chunk;
            let failed = std::mem::take(&mut self.failed);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    for node in failed {
                        let _ = meta.remove_replica(chunk, node).await;
                    }
                });
            }
        }
    }
}

#[async_trait]
impl<S: ChunkStore> ChunkStore for ReplicatedStore<S> {
    /// `caching` is decided here, per copy (see `caching_for`): one copy is kept, the others
    /// are dropped behind.
    async fn create(
        &self,
        id: ChunkId,
        _caching: Caching,
    ) -> Result<Box<dyn ChunkWriter>, ChunkError> {
        // Every writable node in placement order: when one of the first R cannot take the
        // chunk (it died since its last health check), the next one stands in.
        let mut ranked = self.targets(id, usize::MAX, &[]).await?;
        if ranked.len() < self.config.write_quorum {
            // Nodes may have been added or come back since the list was loaded.
            self.refresh().await?;
            ranked = self.targets(id, usize::MAX, &[]).await?;
        }
        let mut writer = ReplicatedWriter {
            meta: self.meta.clone(),
            chunk: id,
            write_quorum: self.config.write_quorum,
            stall: self.config.stall_timeout,
            writers: Vec::new(),
            failed: Vec::new(),
        };
        let mut candidates = ranked.iter();
        while writer.writers.len() < self.config.replicas {
            let wanted = self.config.replicas - writer.writers.len();
            let batch: Vec<&Arc<Node<S>>> = candidates.by_ref().take(wanted).collect();
            if batch.is_empty() {
                break;
            }
            let now = time::OffsetDateTime::now_utc();
            for node in &batch {
                node.reserved
                    .fetch_add(self.config.chunk_size, Ordering::Relaxed);
                // The intent first: a copy never exists on a node the store does not know of.
                self.meta
                    .add_replica(id, node.info.id, now)
                    .await
                    .map_err(meta_error)?;
            }
            // The copies of this batch and those already started are the chunk's replicas.
            let copies: Vec<Uuid> = (writer.writers.iter().map(|(node, _)| *node))
                .chain(batch.iter().map(|n| n.info.id))
                .collect();
            let opened = join_all(batch.iter().map(|n| {
                let caching = caching_for(id, n.info.id, copies.iter().copied());
                n.client.create(id, caching)
            }))
            .await;
            for (node, result) in batch.iter().zip(opened) {
                match result {
                    Ok(w) => writer.writers.push((node.info.id, w)),
                    Err(e) => {
                        tracing::warn!(chunk = %id, node = %node.info.id, error = %e, "could not start a copy");
                        writer.failed.push(node.info.id);
                    }
                }
            }
            writer.forget_failed().await;
        }
        if writer.writers.len() < self.config.write_quorum {
            return Err(ChunkError::Unavailable(format!(
                "{} data nodes took chunk {id}, {} needed",
                writer.writers.len(),
                self.config.write_quorum
            )));
        }
        Ok(Box::new(writer))
    }

    async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
        expected: Option<ChunkDigest>,
    ) -> Result<ChunkStream, ChunkError> {
        let replicas = self.readable(id).await?;
        if replicas.is_empty() {
            return Err(ChunkError::Unavailable(format!(
                "no live replica of chunk {id}"
            )));
        }
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, ChunkError>>(4);
        let store = FailoverRead {
            stall: self.config.stall_timeout,
            chunk: id,
            expected,
            replicas,
            corrupt: Vec::new(),
        };
        let reporter = self.meta.clone();
        tokio::spawn(async move {
            // Corrupt copies go only when another copy served the bytes: the last copy of a
            // chunk is kept, damaged blocks and all, for repair or an operator to salvage.
            let (corrupt, served) = store.run(range, &tx).await;
            for node in corrupt.into_iter().filter(|_| served) {
                tracing::warn!(chunk = %id, node = %node.info.id, "corrupt replica; removing it for repair");
                let _ = reporter.remove_replica(id, node.info.id).await;
                let _ = node.client.delete(id).await;
            }
        });
        // The first piece is awaited here, so that a chunk no replica can serve is an error of
        // the read itself, which the caller can still answer before it starts a response.
        let first = match rx.recv().await {
            None => return Ok(Box::pin(futures_util::stream::empty())),
            Some(Err(e)) => return Err(e),
            Some(Ok(data)) => data,
        };
        let rest = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Box::pin(
            futures_util::stream::once(std::future::ready(Ok(first))).chain(rest),
        ))
    }

    async fn len(&self, id: ChunkId) -> Result<Option<u64>, ChunkError> {
        let mut last = None;
        for node in self.readable(id).await? {
            match node.client.len(id).await {
                Ok(Some(n)) => return Ok(Some(n)),
                Ok(None) => {}
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    async fn delete(&self, id: ChunkId) -> Result<(), ChunkError> {
        let nodes = self.fresh_nodes().await?;
        for node_id in self.meta.replicas(id).await.map_err(meta_error)? {
            if let Some(node) = nodes.get(&node_id)
                && let Err(e) = node.client.delete(id).await
            {
                // The node's inventory scan removes the file once it is back.
                tracing::debug!(chunk = %id, node = %node_id, error = %e, "delete deferred to orphan collection");
            }
            self.meta
                .remove_replica(id, node_id)
                .await
                .map_err(meta_error)?;
        }
        Ok(())
    }

    async fn list(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkId>, ChunkError> {
        let nodes = self.fresh_nodes().await?;
        let mut all = Vec::new();
        for node in nodes.values().filter(|n| n.info.state != NodeState::Down) {
            all.extend(node.client.list(after, limit).await?);
        }
        all.sort();
        all.dedup();
        all.truncate(limit);
        Ok(all)
    }
}

/// One read that moves to the next replica when the current one fails.
struct FailoverRead<S> {
    stall: Duration,
    chunk: ChunkId,
    expected: Option<ChunkDigest>,
    replicas: Vec<Arc<Node<S>>>,
    corrupt: Vec<Arc<Node<S>>>,
}

impl<S: ChunkStore> FailoverRead<S> {
    /// Streams `range` into `tx`; returns the replicas found corrupt, and whether the whole
    /// range was served.
    async fn run(
        mut self,
        range: Range<u64>,
        tx: &mpsc::Sender<Result<Bytes, ChunkError>>,
    ) -> (Vec<Arc<Node<S>>>, bool) {
        let mut pos = range.start;
        let mut last_error = None;
        let replicas = std::mem::take(&mut self.replicas);
        for node in replicas {
            if pos >= range.end && range.start < range.end {
                break;
            }
            node.reading.fetch_add(1, Ordering::Relaxed);
            let outcome = self.stream_from(&node, pos..range.end, &mut pos, tx).await;
            node.reading.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(()) => return (self.corrupt, true),
                Err(Stop::ClientGone) => return (self.corrupt, false),
                Err(Stop::Failed(e)) => {
                    tracing::warn!(chunk = %self.chunk, node = %node.info.id, at = pos, error = %e, "replica failed mid-read; switching");
                    if matches!(e, ChunkError::Corrupt { .. }) {
                        self.corrupt.push(node.clone());
                    }
                    last_error = Some(e);
                }
            }
        }
        let e = match last_error {
            // Every copy failed in transit (refused, stalled, cut short): the chunk is out of
            // reach for now, not damaged, so the client is told to retry (503), not a 500.
            Some(ChunkError::Io(e)) => ChunkError::Unavailable(format!(
                "no replica of chunk {} could be read; the last failed with: {e}",
                self.chunk
            )),
            Some(e) => e,
            None => {
                ChunkError::Unavailable(format!("no replica of chunk {} could be read", self.chunk))
            }
        };
        let _ = tx.send(Err(e)).await;
        (self.corrupt, false)
    }

    async fn stream_from(
        &self,
        node: &Arc<Node<S>>,
        range: Range<u64>,
        pos: &mut u64,
        tx: &mpsc::Sender<Result<Bytes, ChunkError>>,
    ) -> Result<(), Stop> {
        let read = node.client.read(self.chunk, range.clone(), self.expected);
        let mut stream = tokio::time::timeout(self.stall, read)
            .await
            .map_err(|_| Stop::Failed(stalled()))?
            .map_err(Stop::Failed)?;
        loop {
            match tokio::time::timeout(self.stall, stream.next()).await {
                Err(_) => return Err(Stop::Failed(stalled())),
                Ok(None) => {
                    return if *pos == range.end {
                        Ok(())
                    } else {
                        Err(Stop::Failed(ChunkError::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "replica ended early",
                        ))))
                    };
                }
                Ok(Some(Err(e))) => return Err(Stop::Failed(e)),
                Ok(Some(Ok(data))) => {
                    *pos += data.len() as u64;
                    if tx.send(Ok(data)).await.is_err() {
                        return Err(Stop::ClientGone);
                    }
                }
            }
        }
    }
}

enum Stop {
    Failed(ChunkError),
    ClientGone,
}

fn stalled() -> ChunkError {
    ChunkError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "replica stalled",
    ))
}

#[cfg(test)]
mod tests;
