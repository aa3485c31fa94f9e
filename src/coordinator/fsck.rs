//! `cairn admin fsck`: a full check of the cluster against the metadata store. Every replica of
//! every referenced chunk is read in full (its CRC table judged against the digest the gateway
//! recorded for the chunk, then every block against its CRC32C), every
//! node's inventory is compared with the replica rows, and objects with a chunk that no replica
//! can serve are named.

use std::sync::Arc;

use crate::chunk::ChunkId;
use crate::datanode::ChunkError;
use crate::datanode::replicated::ReplicatedStore;
use crate::meta::{ClusterMeta, NodeState};

use super::{meta, verify_replica};
use crate::gateway::gc::orphans_on;

#[derive(Debug, Default)]
pub struct FsckReport {
    pub chunks: u64,
    /// Chunks with fewer than R readable replicas on up nodes.
    pub under_replicated: u64,
    /// Replica rows whose node does not have the chunk.
    pub missing: u64,
    /// Replicas whose bytes fail their checksums or whose CRC table is not the chunk's.
    pub corrupt: u64,
    /// Chunk files on nodes that no replica row places there.
    pub orphans: u64,
    /// Chunks no replica can serve, with the object each belongs to.
    pub unreadable: Vec<(ChunkId, Option<String>)>,
}

impl FsckReport {
    pub fn clean(&self) -> bool {
        self.under_replicated == 0
            && self.missing == 0
            && self.corrupt == 0
            && self.orphans == 0
            && self.unreadable.is_empty()
    }
}

pub async fn fsck(
    cluster: &Arc<dyn ClusterMeta>,
    store: &ReplicatedStore,
) -> Result<FsckReport, ChunkError> {
    store.refresh().await?;
    let want = store.config().replicas;
    let mut report = FsckReport::default();
    let mut after = None;
    loop {
        let page = cluster.referenced_chunks(after, 500).await.map_err(meta)?;
        let Some(last) = page.last() else { break };
        after = Some(last.chunk);
        for chunk in page {
            report.chunks += 1;
            let mut readable = 0;
            let mut readable_up = 0;
            for id in &chunk.nodes {
                let Some(node) = store.node(*id).await? else {
                    report.missing += 1;
                    continue;
                };
                if node.info.state == NodeState::Down {
                    continue;
                }
                match verify_replica(&node, chunk.chunk, chunk.digest).await {
                    Ok(_) => {
                        readable += 1;
                        if node.info.state == NodeState::Up {
                            readable_up += 1;
                        }
                    }
                    Err(ChunkError::NotFound(_)) => report.missing += 1,
                    Err(ChunkError::Corrupt { .. }) => report.corrupt += 1,
                    Err(e) => {
                        tracing::warn!(chunk = %chunk.chunk, node = %id, error = %e, "replica unreachable")
                    }
                }
            }
            if readable_up < want {
                report.under_replicated += 1;
            }
            if readable == 0 {
                let owner = cluster.chunk_object(chunk.chunk).await.map_err(meta)?;
                report.unreadable.push((chunk.chunk, owner));
            }
        }
    }
    for info in cluster.nodes().await.map_err(meta)? {
        if info.state == NodeState::Down {
            continue;
        }
        if let Some(node) = store.node(info.id).await? {
            report.orphans += orphans_on(cluster, &node).await?.len() as u64;
        }
    }
    Ok(report)
}
