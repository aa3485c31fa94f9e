//! Garbage collection: chunks of replaced and deleted objects, of aborted and expired uploads,
//! and of writes that died before their commit are queued in the metadata store with a due time
//! (the grace period lets reads already under way finish); a pass deletes the due ones from
//! storage and then forgets them. Orphans (chunk files no metadata row knows) are found by
//! walking the store's inventory.

use std::sync::Arc;
use std::time::Duration;

use super::{Gateway, GatewayResult, now};
use crate::chunk::ChunkId;
use crate::datanode::replicated::{Node, ReplicatedStore};
use crate::datanode::{ChunkError, ChunkStore};
use crate::meta::{ClusterMeta, MetaError, NodeState};

/// Chunk ids examined per page of a node's inventory.
const INVENTORY_PAGE: usize = 500;

impl Gateway {
    /// The embedded server's collector: every `every`, aborts uploads older than `upload_expiry`
    /// and deletes the chunks whose grace period is over. Runs until the task is aborted. (In a
    /// cluster the coordinator runs the same passes, see `collect_abandoned`.)
    pub async fn run_collector(self: Arc<Self>, every: Duration, upload_expiry: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = self.expire_uploads(upload_expiry).await {
                tracing::warn!(error = %e, "expiring incomplete uploads failed");
            }
            if let Err(e) = self.collect_garbage().await {
                tracing::warn!(error = %e, "garbage collection failed");
            }
        }
    }

    /// Aborts multipart uploads initiated longer than `max_age` ago, and forgets uploads
    /// completed that long ago (a retried completion no older than that still succeeds);
    /// returns how many uploads were aborted.
    pub async fn expire_uploads(&self, max_age: Duration) -> GatewayResult<usize> {
        self.meta.forget_completed_uploads(now() - max_age).await?;
        let mut aborted = 0;
        loop {
            let stale = self
                .meta
                .uploads_initiated_before(now() - max_age, 100)
                .await?;
            if stale.is_empty() {
                return Ok(aborted);
            }
            for id in &stale {
                if self.meta.abort_upload(id, self.gc_due()).await? {
                    tracing::info!(upload = %id, "aborted an expired multipart upload");
                    aborted += 1;
                }
            }
        }
    }

    /// Removes from storage the chunks whose grace period is over; returns how many.
    pub async fn collect_garbage(&self) -> GatewayResult<usize> {
        let mut removed = 0;
        loop {
            let due = self.meta.gc_due(now(), 1000).await?;
            if due.is_empty() {
                return Ok(removed);
            }
            let mut done = Vec::with_capacity(due.len());
            for id in &due {
                match self.store.delete(*id).await {
                    Ok(()) => done.push(*id),
                    // One chunk that cannot be deleted now must not hold up the others; it
                    // stays queued for the next pass.
                    Err(e) => {
                        tracing::warn!(chunk = %id, error = %e, "could not delete a collected chunk")
                    }
                }
            }
            if done.is_empty() {
                return Ok(removed);
            }
            self.meta.gc_done(&done).await?;
            removed += done.len();
        }
    }

    /// Deletes chunk files the metadata store does not know: writes cut off by a crash before
    /// their commit. Only safe while no write is in flight (at startup).
    pub async fn remove_orphans(&self) -> GatewayResult<usize> {
        let mut removed = 0;
        let mut after = None;
        loop {
            let page = self.store.list(after, 1000).await?;
            let Some(last) = page.last().copied() else {
                return Ok(removed);
            };
            let known = self.meta.known_chunks(&page).await?;
            for id in page.iter().filter(|id| !known.contains(id)) {
                self.store.delete(*id).await?;
                removed += 1;
            }
            after = Some(last);
        }
    }

    /// The cluster's collection pass: forgets the replica rows of writes that died before their
    /// commit on another gateway (written more than `abandon_after` ago and still in no object
    /// or part; younger ones may belong to an upload still streaming), whose files then go with
    /// the orphans (`remove_node_orphans`), then collects everything due. A write that was only
    /// slow fails at its commit, which finds its rows gone (`MetaError::ChunkCollected`).
    pub async fn collect_abandoned(
        &self,
        cluster: &dyn ClusterMeta,
        abandon_after: Duration,
    ) -> GatewayResult<usize> {
        let forgotten = cluster
            .forget_abandoned_chunks(now() - abandon_after)
            .await?;
        if forgotten > 0 {
            tracing::info!(
                replicas = forgotten,
                "forgot the replicas of writes that never committed"
            );
        }
        self.collect_garbage().await
    }
}

/// Deletes the chunk files that up nodes hold without a replica row: copies written by a write
/// or a repair that died before recording them. Returns how many were removed.
pub async fn remove_node_orphans(
    cluster: &Arc<dyn ClusterMeta>,
    store: &ReplicatedStore,
) -> Result<usize, ChunkError> {
    let mut removed = 0;
    for info in cluster.nodes().await.map_err(meta)? {
        if info.state == NodeState::Down {
            continue;
        }
        let Some(node) = store.node(info.id).await? else {
            continue;
        };
        // A node that just died is not marked down yet: skip it, do not stop the pass.
        let orphans = match orphans_on(cluster, &node).await {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(node = %info.id, error = %e, "inventory unavailable");
                continue;
            }
        };
        for id in orphans {
            if node.client.delete(id).await.is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Chunk files on `node` that the metadata store does not place there.
pub async fn orphans_on(
    cluster: &Arc<dyn ClusterMeta>,
    node: &Node,
) -> Result<Vec<ChunkId>, ChunkError> {
    let mut orphans = Vec::new();
    let mut after = None;
    loop {
        let page = node.client.list(after, INVENTORY_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(orphans);
        };
        after = Some(*last);
        for id in page {
            let holders = cluster.replicas(id).await.map_err(meta)?;
            if !holders.contains(&node.info.id) {
                orphans.push(id);
            }
        }
    }
}

fn meta(e: MetaError) -> ChunkError {
    ChunkError::Io(std::io::Error::other(e))
}
