//! The cluster's half of the SQL metadata store, written once for SQLite and PostgreSQL: data
//! nodes, which nodes hold each chunk, and the coordinator's lease. Only listing the referenced
//! chunks with their replicas differs by dialect (see `Dialect::referenced_chunks`).

use async_trait::async_trait;
use sqlx::{Encode, Executor, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{chunk_col, ms, node_row, object_path_row, row_limit, u64_col, uuid_col};
use super::sql::{Dialect, SqlMeta};
use super::{ChunkReplicas, ClusterMeta, MetaResult, NodeInfo, NodeState};
use crate::chunk::ChunkId;

// The bounds of `SqlMeta`'s other impls (see sql.rs), which Rust makes every impl repeat.
#[async_trait]
impl<D> ClusterMeta for SqlMeta<D>
where
    D: Dialect,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'t> &'t str: Encode<'t, D> + Type<D>,
    for<'t> Option<&'t str>: Encode<'t, D> + Type<D>,
    for<'t> Option<&'t [u8]>: Encode<'t, D> + Type<D>,
    for<'t> i64: Encode<'t, D> + Type<D>,
    for<'t> Option<i64>: Encode<'t, D> + Type<D>,
{
    async fn add_node(&self, node: &NodeInfo) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO nodes (id, address, zone, state, capacity, used, free, last_seen_ms, \
             added_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, zone = EXCLUDED.zone",
        )
        .bind(node.id.to_string().as_str())
        .bind(node.address.as_str())
        .bind(node.zone.as_deref())
        .bind(node.state.as_str())
        .bind(node.capacity.map(|c| c as i64))
        .bind(node.used as i64)
        .bind(node.free.map(|f| f as i64))
        .bind(node.last_seen.map(ms))
        .bind(ms(node.added))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn nodes(&self) -> MetaResult<Vec<NodeInfo>> {
        let sql = "SELECT * FROM nodes ORDER BY added_ms, id";
        self.all(sql, node_row).await
    }

    async fn node_seen(
        &self,
        id: Uuid,
        capacity: Option<u64>,
        used: u64,
        free: Option<u64>,
        seen: OffsetDateTime,
    ) -> MetaResult<()> {
        sqlx::query(
            "UPDATE nodes SET capacity = $1, used = $2, free = $3, last_seen_ms = $4, \
             state = CASE WHEN state = 'draining' THEN state ELSE 'up' END WHERE id = $5",
        )
        .bind(capacity.map(|c| c as i64))
        .bind(used as i64)
        .bind(free.map(|f| f as i64))
        .bind(ms(seen))
        .bind(id.to_string().as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_node_state(&self, id: Uuid, state: NodeState) -> MetaResult<bool> {
        let done = sqlx::query("UPDATE nodes SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(id.to_string().as_str())
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&done) > 0)
    }

    async fn remove_node(&self, id: Uuid) -> MetaResult<bool> {
        let id = id.to_string();
        let mut tx = D::begin_write(&self.pool).await?;
        sqlx::query("DELETE FROM replicas WHERE node_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(D::rows_affected(&done) > 0)
    }

    async fn replica_counts(&self) -> MetaResult<Vec<(Uuid, u64)>> {
        let rows = sqlx::query(
            "SELECT node_id, COUNT(*) AS n FROM replicas GROUP BY node_id ORDER BY node_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((uuid_col(r, "node_id")?, u64_col(r, "n")?)))
            .collect()
    }

    async fn add_replica(&self, chunk: ChunkId, node: Uuid, now: OffsetDateTime) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO replicas (chunk_id, node_id, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (chunk_id, node_id) DO NOTHING",
        )
        .bind(chunk.to_string().as_str())
        .bind(node.to_string().as_str())
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_replica(&self, chunk: ChunkId, node: Uuid) -> MetaResult<()> {
        sqlx::query("DELETE FROM replicas WHERE chunk_id = $1 AND node_id = $2")
            .bind(chunk.to_string().as_str())
            .bind(node.to_string().as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn replicas(&self, chunk: ChunkId) -> MetaResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT node_id FROM replicas WHERE chunk_id = $1 ORDER BY node_id")
            .bind(chunk.to_string().as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| uuid_col(r, "node_id")).collect()
    }

    async fn node_chunks(
        &self,
        node: Uuid,
        after: Option<ChunkId>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkId>> {
        let rows = sqlx::query(
            "SELECT chunk_id FROM replicas WHERE node_id = $1 AND chunk_id > $2 \
             ORDER BY chunk_id LIMIT $3",
        )
        .bind(node.to_string().as_str())
        .bind(after.map(|a| a.to_string()).unwrap_or_default().as_str())
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| chunk_col(r, "chunk_id")).collect()
    }

    async fn referenced_chunks(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkReplicas>> {
        D::referenced_chunks(self, after, limit).await
    }

    async fn chunk_object(&self, chunk: ChunkId) -> MetaResult<Option<String>> {
        let row = sqlx::query(
            "SELECT o.bucket, o.key FROM chunks c JOIN objects o ON o.id = c.owner \
             WHERE c.chunk_id = $1",
        )
        .bind(chunk.to_string().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| object_path_row(&r)).transpose()
    }

    async fn forget_abandoned_chunks(&self, before: OffsetDateTime) -> MetaResult<u64> {
        // The age test is on the row itself, which the commit's claim rewrites: PostgreSQL
        // re-checks it when this delete waits for a commit holding the row, whereas the NOT
        // EXISTS tests keep this statement's snapshot. SQLite runs the two one after the other.
        let done = sqlx::query(
            "DELETE FROM replicas WHERE created_ms < $1 \
             AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.chunk_id = replicas.chunk_id) \
             AND NOT EXISTS (SELECT 1 FROM gc_queue g WHERE g.chunk_id = replicas.chunk_id)",
        )
        .bind(ms(before))
        .execute(&self.pool)
        .await?;
        Ok(D::rows_affected(&done))
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> MetaResult<bool> {
        // One statement, so two gateways racing for an expired lease cannot both win.
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
             expires_ms = EXCLUDED.expires_ms \
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(ms(until))
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(D::rows_affected(&done) > 0)
    }
}
