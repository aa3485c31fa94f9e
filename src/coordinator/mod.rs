//! The coordinator: background jobs that keep the cluster converging, run by one gateway at a
//! time (whoever holds the lease in the metadata store; another takes over when it lapses).
//! Each round: health checks mark nodes up or down; repair copies every chunk below R live
//! replicas (and off draining nodes) and trims extra copies; garbage collection deletes chunks
//! of deleted objects and of writes that never committed, and orphan files on nodes; a periodic
//! scrub reads every replica to find rot before a client does.

pub mod fsck;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use uuid::Uuid;

use crate::chunk::placement::{Candidate, place};
use crate::chunk::{ChunkDigest, ChunkId};
use crate::datanode::replicated::{Node, ReplicatedStore, caching_for};
use crate::datanode::{Caching, ChunkError, ChunkStore};
use crate::gateway::{Gateway, gc, now};
use crate::meta::{ChunkReplicas, ClusterMeta, NodeState};

const LEASE: &str = "coordinator";
/// Referenced chunks examined per metadata round trip.
const PAGE: usize = 500;

#[derive(Clone, Copy, Debug)]
pub struct CoordinatorConfig {
    /// Pause between rounds.
    pub interval: Duration,
    /// A node that has not answered a health check for this long is down.
    pub node_timeout: Duration,
    /// Chunk copies made at once by repair.
    pub repair_concurrency: usize,
    /// How often every replica is read in full; None disables scrubbing.
    pub scrub_interval: Option<Duration>,
    /// Chunks written this long ago but still in no object or part belong to writes that
    /// died before their commit; younger ones may belong to an upload still streaming.
    pub abandon_after: Duration,
    /// Multipart uploads left incomplete for longer than this are aborted.
    pub upload_expiry: Duration,
}

pub struct Coordinator {
    gateway: Arc<Gateway>,
    cluster: Arc<dyn ClusterMeta>,
    store: Arc<ReplicatedStore>,
    config: CoordinatorConfig,
    holder: String,
    last_scrub: Option<Instant>,
    /// Whether this gateway holds the lease now.
    leader: Arc<AtomicBool>,
}

impl Coordinator {
    pub fn new(
        gateway: Arc<Gateway>,
        cluster: Arc<dyn ClusterMeta>,
        store: Arc<ReplicatedStore>,
        config: CoordinatorConfig,
    ) -> Self {
        Coordinator {
            gateway,
            cluster,
            store,
            config,
            holder: Uuid::new_v4().to_string(),
            last_scrub: None,
            leader: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True while this gateway runs the coordinator.
    pub fn leader_flag(&self) -> Arc<AtomicBool> {
        self.leader.clone()
    }

    /// Runs rounds forever (the caller aborts the task at shutdown).
    pub async fn run(mut self) {
        let mut leader = false;
        loop {
            let lease_until = now() + self.config.interval * 3;
            match self
                .cluster
                .acquire_lease(LEASE, &self.holder, now(), lease_until)
                .await
            {
                Ok(true) => {
                    if !leader {
                        tracing::info!(holder = %self.holder, "this gateway now runs the coordinator");
                        leader = true;
                        self.leader.store(true, Ordering::Relaxed);
                    }
                    if let Err(e) = self.round().await {
                        tracing::warn!(error = %e, "coordinator round failed");
                    }
                }
                Ok(false) => {
                    leader = false;
                    self.leader.store(false, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "could not take the coordinator lease"),
            }
            tokio::time::sleep(self.config.interval).await;
        }
    }

    /// One round of every job.
    pub async fn round(&mut self) -> Result<(), ChunkError> {
        self.check_health().await?;
        self.store.refresh().await?;
        self.renew_lease().await?;
        let repaired = self.repair().await?;
        self.renew_lease().await?;
        let expired = self
            .gateway
            .expire_uploads(self.config.upload_expiry)
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?;
        let collected = self.collect_garbage().await?;
        self.renew_lease().await?;
        let orphans = gc::remove_node_orphans(&self.cluster, &self.store).await?;
        if repaired + expired + collected + orphans > 0 {
            tracing::info!(repaired, expired, collected, orphans, "coordinator round");
        }
        let scrub_due = self
            .config
            .scrub_interval
            .is_some_and(|every| self.last_scrub.is_none_or(|at| at.elapsed() >= every));
        if scrub_due {
            self.renew_lease().await?;
            let bad = self.scrub().await?;
            self.last_scrub = Some(Instant::now());
            tracing::info!(corrupt = bad, "scrub finished");
        }
        Ok(())
    }

    /// Extends the lease between jobs, so that a long round never overlaps another gateway's;
    /// a lease lost meanwhile ends the round.
    async fn renew_lease(&self) -> Result<(), ChunkError> {
        let until = now() + self.config.interval * 3;
        if self
            .cluster
            .acquire_lease(LEASE, &self.holder, now(), until)
            .await
            .map_err(meta)?
        {
            Ok(())
        } else {
            self.leader.store(false, Ordering::Relaxed);
            Err(ChunkError::Unavailable(
                "the coordinator lease passed to another gateway".into(),
            ))
        }
    }

    async fn check_health(&self) -> Result<(), ChunkError> {
        let nodes = self.cluster.nodes().await.map_err(meta)?;
        self.store.refresh().await?;
        for info in nodes {
            let Some(node) = self.store.node(info.id).await? else {
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(2), node.client.health()).await {
                Ok(Ok(h)) => {
                    self.cluster
                        .node_seen(info.id, h.capacity, h.used, h.free, now())
                        .await
                        .map_err(meta)?;
                }
                _ => {
                    let silent_for = info.last_seen.map(|t| now() - t);
                    let timed_out = silent_for.is_none_or(|d| d > self.config.node_timeout);
                    if timed_out && info.state == NodeState::Up {
                        tracing::warn!(node = %info.id, address = %info.address, "data node is down");
                        self.cluster
                            .set_node_state(info.id, NodeState::Down)
                            .await
                            .map_err(meta)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The next page of referenced chunks after `after`, which it moves past them; empty once
    /// every chunk was seen. Repair and scrub walk the chunks this way.
    async fn referenced_page(
        &self,
        after: &mut Option<ChunkId>,
    ) -> Result<Vec<ChunkReplicas>, ChunkError> {
        let page = self
            .cluster
            .referenced_chunks(*after, PAGE)
            .await
            .map_err(meta)?;
        if let Some(last) = page.last() {
            *after = Some(last.chunk);
        }
        Ok(page)
    }

    /// Brings every referenced chunk to R replicas on up nodes; returns copies made or removed.
    async fn repair(&self) -> Result<usize, ChunkError> {
        let mut changed = 0;
        let mut after = None;
        loop {
            let page = self.referenced_page(&mut after).await?;
            if page.is_empty() {
                return Ok(changed);
            }
            let jobs = futures_util::stream::iter(page.into_iter().map(|c| self.repair_chunk(c)))
                .buffer_unordered(self.config.repair_concurrency.max(1));
            let results: Vec<Result<usize, ChunkError>> = jobs.collect().await;
            for r in results {
                match r {
                    Ok(n) => changed += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "repair of a chunk failed; retrying next round")
                    }
                }
            }
        }
    }

    async fn repair_chunk(&self, chunk: ChunkReplicas) -> Result<usize, ChunkError> {
        let want = self.store.config().replicas;
        let mut live = Vec::new();
        let mut draining = Vec::new();
        for id in &chunk.nodes {
            match self.store.node(*id).await? {
                Some(n) if n.info.state == NodeState::Up => live.push(n),
                Some(n) if n.info.state == NodeState::Draining => draining.push(n),
                _ => {}
            }
        }
        let mut changed = 0;
        if live.len() < want {
            let sources: Vec<Arc<Node>> = live.iter().chain(&draining).cloned().collect();
            if sources.is_empty() {
                return Err(ChunkError::Unavailable(format!(
                    "chunk {} has no readable replica",
                    chunk.chunk
                )));
            }
            let targets = self
                .store
                .targets(chunk.chunk, want - live.len(), &chunk.nodes)
                .await?;
            for target in targets {
                let caching =
                    caching_for(chunk.chunk, target.info.id, live.iter().map(|n| n.info.id));
                let copied = copy_chunk(&self.cluster, &chunk, &sources, &target, caching);
                if copied.await? {
                    changed += 1;
                    live.push(target);
                }
            }
        }
        if live.len() >= want {
            // Copies on draining nodes and beyond R go; the placement order decides which stay.
            let mut extra: Vec<Arc<Node>> = draining;
            if live.len() > want {
                let candidates: Vec<Candidate<'_>> = live
                    .iter()
                    .map(|n| Candidate {
                        id: n.info.id,
                        zone: n.info.zone.as_deref(),
                        free: n.info.free.unwrap_or(u64::MAX / 2),
                    })
                    .collect();
                let keep = place(chunk.chunk, &candidates, want);
                extra.extend(live.iter().filter(|n| !keep.contains(&n.info.id)).cloned());
            }
            for n in extra {
                self.cluster
                    .remove_replica(chunk.chunk, n.info.id)
                    .await
                    .map_err(meta)?;
                if let Err(e) = n.client.delete(chunk.chunk).await {
                    tracing::debug!(chunk = %chunk.chunk, error = %e, "extra copy left for orphan collection");
                }
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn collect_garbage(&self) -> Result<usize, ChunkError> {
        self.gateway
            .collect_abandoned(self.cluster.as_ref(), self.config.abandon_after)
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))
    }

    /// Reads every replica of every referenced chunk on the nodes that are not down, in full
    /// and judged against the chunk's recorded digest; corrupt copies are forgotten and deleted,
    /// so the next repair replaces them. Returns how many were corrupt.
    async fn scrub(&self) -> Result<usize, ChunkError> {
        let mut corrupt = 0;
        let mut after = None;
        loop {
            let page = self.referenced_page(&mut after).await?;
            if page.is_empty() {
                return Ok(corrupt);
            }
            for chunk in page {
                let mut bad = Vec::new();
                let mut good = 0;
                for id in &chunk.nodes {
                    let Some(node) = self.store.node(*id).await? else {
                        continue;
                    };
                    if node.info.state == NodeState::Down {
                        continue;
                    }
                    match verify_replica(&node, chunk.chunk, chunk.digest).await {
                        Ok(_) => good += 1,
                        Err(ChunkError::Corrupt { .. }) => {
                            tracing::warn!(chunk = %chunk.chunk, node = %id, "scrub found a corrupt replica");
                            bad.push(node);
                        }
                        Err(_) => {}
                    }
                }
                // Without a copy just read whole and good, the damaged ones stay until repair
                // can copy a good one or an operator salvages them: most of their bytes may
                // still be all there is.
                if good == 0 {
                    continue;
                }
                for node in bad {
                    self.cluster
                        .remove_replica(chunk.chunk, node.info.id)
                        .await
                        .map_err(meta)?;
                    let _ = node.client.delete(chunk.chunk).await;
                    corrupt += 1;
                }
            }
        }
    }
}

fn meta(e: crate::meta::MetaError) -> ChunkError {
    ChunkError::Io(std::io::Error::other(e))
}

/// Reads a whole replica, which verifies every block's CRC32C (and, with the digest the gateway
/// recorded, that the replica's CRC table is the chunk's, block by block in the gateway).
pub async fn verify_replica(
    node: &Node,
    id: ChunkId,
    expected: Option<ChunkDigest>,
) -> Result<u64, ChunkError> {
    let len = node.client.len(id).await?.ok_or(ChunkError::NotFound(id))?;
    let mut stream = node.client.read(id, 0..len, expected).await?;
    let mut seen = 0u64;
    while let Some(data) = stream.next().await {
        seen += data?.len() as u64;
    }
    if seen != len {
        return Err(ChunkError::Corrupt { id, offset: seen });
    }
    Ok(len)
}

/// Copies `chunk` from the first source that can serve it (matching its recorded digest) to
/// `target`, written as `caching` says, recording the new replica first; returns whether the
/// copy was made.
async fn copy_chunk(
    cluster: &Arc<dyn ClusterMeta>,
    chunk: &ChunkReplicas,
    sources: &[Arc<Node>],
    target: &Arc<Node>,
    caching: Caching,
) -> Result<bool, ChunkError> {
    let (size, digest, chunk) = (chunk.size, chunk.digest, chunk.chunk);
    cluster
        .add_replica(chunk, target.info.id, now())
        .await
        .map_err(meta)?;
    for source in sources {
        let attempt = || async {
            let mut data = source.client.read(chunk, 0..size, digest).await?;
            let mut writer = target.client.create(chunk, caching).await?;
            while let Some(buf) = data.next().await {
                writer.write(buf?).await?;
            }
            writer.commit().await
        };
        let mut result = attempt().await;
        if matches!(&result, Err(ChunkError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists)
        {
            // The target kept a copy the store does not count (an extra copy or a corrupt one
            // whose delete failed, a copy whose commit was never acknowledged). A data node
            // never overwrites a chunk, so that copy goes and a good one takes its place.
            if target.client.delete(chunk).await.is_ok() {
                result = attempt().await;
            }
        }
        match result {
            Ok(n) if n == size => {
                tracing::info!(%chunk, from = %source.info.id, to = %target.info.id, "replica copied");
                return Ok(true);
            }
            Ok(n) => tracing::warn!(%chunk, n, size, "copied replica has the wrong size"),
            Err(e) => {
                tracing::warn!(%chunk, from = %source.info.id, error = %e, "copy failed; trying another source")
            }
        }
    }
    cluster
        .remove_replica(chunk, target.info.id)
        .await
        .map_err(meta)?;
    let _ = target.client.delete(chunk).await;
    Ok(false)
}
