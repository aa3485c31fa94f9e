//! The cluster's metadata store: PostgreSQL, shared by any number of gateways. It keeps the
//! SQLite store's tables and semantics; what SQLite gets from its single write lock, this store
//! gets from row locks and a transaction-scoped advisory lock per object key: every transaction
//! that changes a key's object takes the key's lock first, so conditional writes are checked
//! race-free and concurrent overwrites queue every loser's chunks for GC. Only those locks and
//! the statements over arrays (one round trip where SQLite loops) are here; the rest is `sql.rs`.

use std::collections::HashSet;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row, Transaction};
use time::OffsetDateTime;

use super::rows::{
    chunk_col, digest_col, ms, object_row, parse_chunk, parse_uuid, row_limit, take_prefixed,
    u32_col, u64_col, uuid_col,
};
use super::sql::{Dialect, SqlMeta, listing_page};
use super::{
    ChunkReplicas, DeleteBucket, ListStart, MetaError, MetaResult, ObjectMeta, Part, WriteCondition,
};
use crate::chunk::{ChunkId, ChunkRef};

/// Connections per gateway: several gateways share one server, whose default
/// `max_connections` is 100.
const MAX_CONNECTIONS: u32 = 10;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub type PostgresMeta = SqlMeta<Postgres>;

impl PostgresMeta {
    /// Connects to the database a `postgres://` URL names and migrates it (sqlx serializes
    /// concurrent migrations from several gateways with an advisory lock).
    pub async fn open(url: &str) -> MetaResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqlMeta { pool, writer: () })
    }
}

impl Dialect for Postgres {
    /// Object writes are transactions of their own: the key's lock orders them.
    type Writer = ();

    /// FOR UPDATE: storing a part, completing and aborting the upload take turns.
    const LOCK_UPLOAD: &'static str = "SELECT 1 FROM uploads WHERE id = $1 FOR UPDATE";
    /// FOR KEY SHARE holds the bucket against a concurrent `delete_bucket` until the
    /// transaction ends, so that a write racing the deletion sees `NoSuchBucket` rather than a
    /// foreign-key violation.
    const HOLD_BUCKET: &'static str = "SELECT 1 FROM buckets WHERE name = $1 FOR KEY SHARE";
    /// FOR UPDATE waits for the parts being stored into these uploads.
    const BUCKET_UPLOADS: &'static str = "SELECT id FROM uploads WHERE bucket = $1 FOR UPDATE";

    async fn begin_write(pool: &PgPool) -> MetaResult<Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    /// A transaction-scoped advisory lock on the key. Bucket names cannot contain '/', so the
    /// joined string names one key; a hash collision only makes two keys wait for each other.
    async fn lock_key(conn: &mut PgConnection, bucket: &str, key: &str) -> MetaResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
            .bind(bucket)
            .bind(key)
            .execute(conn)
            .await?;
        Ok(())
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn collect_owners(
        conn: &mut PgConnection,
        owners: &[String],
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        if owners.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "WITH gone AS (DELETE FROM chunks WHERE owner = ANY($1) \
             RETURNING chunk_id, owner, byte_offset, size, digest) \
             INSERT INTO gc_queue (chunk_id, due_ms, owner, byte_offset, size, digest) \
             SELECT chunk_id, $2, owner, byte_offset, size, digest FROM gone \
             ON CONFLICT (chunk_id) DO UPDATE SET due_ms = EXCLUDED.due_ms, \
             owner = EXCLUDED.owner, byte_offset = EXCLUDED.byte_offset, size = EXCLUDED.size, \
             digest = EXCLUDED.digest",
        )
        .bind(owners)
        .bind(ms(gc_due))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn insert_chunks(
        conn: &mut PgConnection,
        owner: &str,
        chunks: &[ChunkRef],
    ) -> MetaResult<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let offsets: Vec<i64> = chunks.iter().map(|c| c.offset as i64).collect();
        let sizes: Vec<i64> = chunks.iter().map(|c| c.size as i64).collect();
        let ids: Vec<String> = chunks.iter().map(|c| c.chunk.to_string()).collect();
        let digests: Vec<Option<Vec<u8>>> = chunks
            .iter()
            .map(|c| c.digest.map(|d| d.0.to_vec()))
            .collect();
        let queued: Option<String> =
            sqlx::query_scalar("SELECT chunk_id FROM gc_queue WHERE chunk_id = ANY($1) LIMIT 1")
                .bind(&ids)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(id) = queued {
            return Err(MetaError::ChunkCollected(parse_chunk(&id)?));
        }
        sqlx::query(
            "INSERT INTO chunks (owner, byte_offset, size, chunk_id, digest) \
             SELECT $1, o, s, c, d FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], \
             $5::bytea[]) AS t (o, s, c, d)",
        )
        .bind(owner)
        .bind(offsets)
        .bind(sizes)
        .bind(ids)
        .bind(digests)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn claim_replicas(
        conn: &mut PgConnection,
        chunks: &[ChunkRef],
        at: OffsetDateTime,
    ) -> MetaResult<()> {
        let ids: Vec<String> = chunks.iter().map(|c| c.chunk.to_string()).collect();
        // A row the coordinator is forgetting is locked by its delete: this waits for it and
        // then skips the row, gone.
        let rows = sqlx::query(
            "UPDATE replicas SET created_ms = $1 WHERE chunk_id = ANY($2) RETURNING chunk_id",
        )
        .bind(ms(at))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let mut claimed = HashSet::with_capacity(rows.len());
        for row in &rows {
            claimed.insert(chunk_col(row, "chunk_id")?);
        }
        match chunks.iter().find(|c| !claimed.contains(&c.chunk)) {
            Some(c) => Err(MetaError::ChunkCollected(c.chunk)),
            None => Ok(()),
        }
    }

    async fn move_parts(
        conn: &mut PgConnection,
        upload_id: &str,
        object_id: &str,
        parts: &[Part],
    ) -> MetaResult<()> {
        let mut numbers = Vec::with_capacity(parts.len());
        let mut owners = Vec::with_capacity(parts.len());
        let mut offsets = Vec::with_capacity(parts.len());
        let mut sizes = Vec::with_capacity(parts.len());
        let mut offset = 0u64;
        for part in parts {
            numbers.push(i64::from(part.number));
            owners.push(part.owner.to_string());
            offsets.push(offset as i64);
            sizes.push(part.size as i64);
            offset += part.size;
        }
        let rows = sqlx::query(
            "DELETE FROM upload_parts p USING UNNEST($2::bigint[], $3::text[]) AS w (number, owner) \
             WHERE p.upload_id = $1 AND p.number = w.number AND p.owner = w.owner \
             RETURNING p.number, p.owner",
        )
        .bind(upload_id)
        .bind(&numbers)
        .bind(&owners)
        .fetch_all(&mut *conn)
        .await?;
        let mut moved = HashSet::with_capacity(rows.len());
        for row in &rows {
            moved.insert((u32_col(row, "number")?, uuid_col(row, "owner")?));
        }
        for part in parts {
            if !moved.remove(&(part.number, part.owner)) {
                return Err(MetaError::PartChanged(part.number));
            }
        }
        sqlx::query(
            "UPDATE chunks c SET owner = $1, byte_offset = c.byte_offset + w.shift \
             FROM UNNEST($2::text[], $3::bigint[]) AS w (owner, shift) WHERE c.owner = w.owner",
        )
        .bind(object_id)
        .bind(&owners)
        .bind(&offsets)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO object_parts (object_id, number, byte_offset, size) \
             SELECT $1, n, o, s FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[]) AS w (n, o, s)",
        )
        .bind(object_id)
        .bind(&numbers)
        .bind(&offsets)
        .bind(&sizes)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn put_object(
        store: &PostgresMeta,
        object: &ObjectMeta,
        chunks: &[ChunkRef],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        let mut tx = Self::begin_write(&store.pool).await?;
        Self::lock_key(&mut tx, &object.bucket, &object.key).await?;
        PostgresMeta::write_object(&mut tx, object, chunks, condition, gc_due).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_object(
        store: &PostgresMeta,
        bucket: &str,
        key: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        let mut tx = Self::begin_write(&store.pool).await?;
        Self::lock_key(&mut tx, bucket, key).await?;
        let existed = PostgresMeta::remove_object(&mut tx, bucket, key, gc_due).await?;
        tx.commit().await?;
        Ok(existed)
    }

    async fn delete_bucket(
        store: &PostgresMeta,
        name: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<DeleteBucket> {
        let mut tx = Self::begin_write(&store.pool).await?;
        // FOR UPDATE waits for writers holding the bucket (FOR KEY SHARE) to commit, so the
        // emptiness check that follows sees their objects and uploads.
        let found = sqlx::query("SELECT 1 FROM buckets WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(DeleteBucket::NoSuchBucket);
        }
        let deleted = PostgresMeta::drop_bucket(&mut tx, name, gc_due).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn abort_upload(
        store: &PostgresMeta,
        upload_id: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        let mut tx = Self::begin_write(&store.pool).await?;
        // The upload's row lock first, so that no part is stored while its parts are dropped.
        let found = sqlx::query(Self::LOCK_UPLOAD)
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(false);
        }
        let existed = PostgresMeta::drop_upload(&mut tx, upload_id, gc_due).await?;
        tx.commit().await?;
        Ok(existed)
    }

    async fn list_objects(
        pool: &PgPool,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ObjectMeta>> {
        let page = listing_page(prefix, &start);
        let mut query = sqlx::query(AssertSqlSafe(page.sql))
            .bind(bucket)
            .bind(page.from);
        if let Some(end) = page.end {
            query = query.bind(end);
        }
        let rows = query.bind(row_limit(limit)).fetch_all(pool).await?;
        take_prefixed(&rows, prefix, object_row, |o| &o.key)
    }

    async fn gc_done(pool: &PgPool, chunks: &[ChunkId]) -> MetaResult<()> {
        let ids: Vec<String> = chunks.iter().map(ChunkId::to_string).collect();
        sqlx::query("DELETE FROM gc_queue WHERE chunk_id = ANY($1)")
            .bind(ids)
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn known_chunks(pool: &PgPool, chunks: &[ChunkId]) -> MetaResult<Vec<ChunkId>> {
        let ids: Vec<String> = chunks.iter().map(ChunkId::to_string).collect();
        let rows = sqlx::query(
            "SELECT chunk_id FROM chunks WHERE chunk_id = ANY($1) \
             UNION SELECT chunk_id FROM gc_queue WHERE chunk_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(pool)
        .await?;
        let mut found = HashSet::with_capacity(rows.len());
        for row in &rows {
            found.insert(chunk_col(row, "chunk_id")?);
        }
        // In the order asked, as the SQLite store answers.
        Ok(chunks
            .iter()
            .filter(|c| found.contains(c))
            .copied()
            .collect())
    }

    async fn referenced_chunks(
        store: &PostgresMeta,
        after: Option<ChunkId>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkReplicas>> {
        // One round trip per page rather than one per chunk: the replicas come as an array.
        let rows = sqlx::query(
            "SELECT c.chunk_id, c.size, c.digest, ARRAY(SELECT r.node_id FROM replicas r \
             WHERE r.chunk_id = c.chunk_id ORDER BY r.node_id) AS nodes \
             FROM chunks c WHERE c.chunk_id > $1 ORDER BY c.chunk_id LIMIT $2",
        )
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(row_limit(limit))
        .fetch_all(&store.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let nodes: Vec<String> = row.try_get("nodes")?;
                Ok(ChunkReplicas {
                    chunk: chunk_col(row, "chunk_id")?,
                    size: u64_col(row, "size")?,
                    digest: digest_col(row)?,
                    nodes: nodes
                        .iter()
                        .map(|n| parse_uuid("node_id", n))
                        .collect::<MetaResult<_>>()?,
                })
            })
            .collect()
    }
}
