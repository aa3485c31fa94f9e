//! The cluster's metadata store: PostgreSQL, shared by any number of gateways. It keeps the
//! SQLite store's tables and semantics; what SQLite gets from its single write lock, this store
//! gets from row locks and a transaction-scoped advisory lock per object key: every transaction
//! that changes a key's object takes the key's lock first, so conditional writes are checked
//! race-free and concurrent overwrites queue every loser's chunks for GC.

use std::collections::HashSet;
use std::ops::Range;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{
    OBJECT_COLUMNS, bucket_row, check_etag, chunk_col, chunk_ref_row, headers_json, key_row,
    list_seek, ms, node_row, object_path_row, object_row, parse_chunk, parse_uuid, part_range_row,
    part_row, row_limit, take_prefixed, u32_col, u64_col, upload_row, uuid_col,
};
use super::{
    AccessKey, Bucket, ChunkReplicas, ClusterMeta, DeleteBucket, ListStart, MetaError, MetaResult,
    MetaStore, NodeInfo, NodeState, ObjectMeta, Part, PartRange, Upload, WriteCondition,
    prefix_successor,
};
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::chunk::{ChunkId, ChunkRef};

/// Connections per gateway: several gateways share one server, whose default
/// `max_connections` is 100.
const MAX_CONNECTIONS: u32 = 10;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresMeta {
    pool: PgPool,
}

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
        Ok(PostgresMeta { pool })
    }
}

/// Serializes the transactions that change one key's object, until this transaction ends. It
/// must come first in the transaction: under READ COMMITTED every later statement then sees
/// what the previous holder committed. Bucket names cannot contain '/', so the joined string
/// names one key; a hash collision only makes two keys wait for each other.
async fn lock_key(conn: &mut PgConnection, bucket: &str, key: &str) -> MetaResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
        .bind(bucket)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks an upload's row so that storing a part, completing and aborting the upload take turns;
/// returns false when the upload does not exist (any more).
async fn lock_upload(conn: &mut PgConnection, upload_id: &str) -> MetaResult<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM uploads WHERE id = $1 FOR UPDATE")
        .bind(upload_id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Whether a bucket exists, holding it (FOR KEY SHARE) against a concurrent `delete_bucket`
/// until the transaction ends, so that a write racing the deletion sees `NoSuchBucket` rather
/// than a foreign-key violation.
async fn hold_bucket(conn: &mut PgConnection, bucket: &str) -> MetaResult<bool> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM buckets WHERE name = $1 FOR KEY SHARE")
            .bind(bucket)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Moves every chunk of the given owners to the GC queue.
async fn collect_owners(
    conn: &mut PgConnection,
    owners: &[String],
    gc_due: OffsetDateTime,
) -> MetaResult<()> {
    if owners.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH gone AS (DELETE FROM chunks WHERE owner = ANY($1) RETURNING chunk_id) \
         INSERT INTO gc_queue (chunk_id, due_ms) SELECT chunk_id, $2 FROM gone \
         ON CONFLICT (chunk_id) DO UPDATE SET due_ms = EXCLUDED.due_ms",
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
    let queued: Option<String> =
        sqlx::query_scalar("SELECT chunk_id FROM gc_queue WHERE chunk_id = ANY($1) LIMIT 1")
            .bind(&ids)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(id) = queued {
        return Err(MetaError::ChunkCollected(parse_chunk(&id)?));
    }
    sqlx::query(
        "INSERT INTO chunks (owner, byte_offset, size, chunk_id) \
         SELECT $1, o, s, c FROM UNNEST($2::bigint[], $3::bigint[], $4::text[]) AS t (o, s, c)",
    )
    .bind(owner)
    .bind(offsets)
    .bind(sizes)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Evaluates a conditional write against the key's current object; the caller holds the key's
/// lock, so no other writer can change the object before the transaction commits.
async fn check_condition(
    conn: &mut PgConnection,
    bucket: &str,
    key: &str,
    condition: &WriteCondition,
) -> MetaResult<()> {
    if *condition == WriteCondition::Always {
        return Ok(());
    }
    let etag: Option<String> =
        sqlx::query_scalar("SELECT etag FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .fetch_optional(conn)
            .await?;
    check_etag(condition, etag.as_deref())
}

/// Removes the visible object of a key, if any, queueing its chunks; returns whether one existed.
async fn remove_object(
    conn: &mut PgConnection,
    bucket: &str,
    key: &str,
    gc_due: OffsetDateTime,
) -> MetaResult<bool> {
    let old: Option<String> =
        sqlx::query_scalar("DELETE FROM objects WHERE bucket = $1 AND key = $2 RETURNING id")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(old) = old else { return Ok(false) };
    sqlx::query("DELETE FROM object_parts WHERE object_id = $1")
        .bind(&old)
        .execute(&mut *conn)
        .await?;
    collect_owners(conn, &[old], gc_due).await?;
    Ok(true)
}

async fn insert_object(conn: &mut PgConnection, o: &ObjectMeta) -> MetaResult<()> {
    if !hold_bucket(&mut *conn, &o.bucket).await? {
        return Err(MetaError::NoSuchBucket);
    }
    sqlx::query(
        "INSERT INTO objects (bucket, key, id, size, etag, last_modified_ms, headers, \
         checksum_algorithm, checksum_value, checksum_type, parts_count, inline_data) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&o.bucket)
    .bind(&o.key)
    .bind(o.id.to_string())
    .bind(o.size as i64)
    .bind(&o.etag)
    .bind(ms(o.last_modified))
    .bind(headers_json(&o.headers))
    .bind(o.checksum.as_ref().map(|c| c.algorithm.as_str()))
    .bind(o.checksum.as_ref().map(Checksum::to_base64))
    .bind(o.checksum_type.as_str())
    .bind(o.parts_count.map(i64::from))
    .bind(o.inline.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes an upload and its remaining parts, queueing their chunks; the caller holds the
/// upload's row lock, so no part can be stored meanwhile.
async fn drop_upload(
    conn: &mut PgConnection,
    upload_id: &str,
    gc_due: OffsetDateTime,
) -> MetaResult<bool> {
    let owners: Vec<String> =
        sqlx::query_scalar("DELETE FROM upload_parts WHERE upload_id = $1 RETURNING owner")
            .bind(upload_id)
            .fetch_all(&mut *conn)
            .await?;
    collect_owners(&mut *conn, &owners, gc_due).await?;
    let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(upload_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Hands the listed parts' chunks to the object, shifted to each part's place in it, and
/// records where each part lies. Fails with `PartChanged` for the first part that is no longer
/// stored with the same owner (replaced or completed meanwhile, or listed twice).
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
    // Completing is metadata only: the chunks change owner and offset, the data stays put.
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

#[async_trait]
impl MetaStore for PostgresMeta {
    async fn setting(&self, name: &str) -> MetaResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_setting(&self, name: &str, value: &str) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_key(&self, key: &AccessKey) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO access_keys (id, secret, name, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.id)
        .bind(&key.secret)
        .bind(&key.name)
        .bind(ms(key.created))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn key(&self, id: &str) -> MetaResult<Option<AccessKey>> {
        let row = sqlx::query("SELECT * FROM access_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| key_row(&r)).transpose()
    }

    async fn list_keys(&self) -> MetaResult<Vec<AccessKey>> {
        let rows = sqlx::query("SELECT * FROM access_keys ORDER BY created_ms, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_row).collect()
    }

    async fn delete_key(&self, id: &str) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM access_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<bool> {
        let done = sqlx::query(
            "INSERT INTO buckets (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&bucket.name)
        .bind(ms(bucket.created))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn bucket(&self, name: &str) -> MetaResult<Option<Bucket>> {
        let row = sqlx::query("SELECT name, created_ms FROM buckets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| bucket_row(&r)).transpose()
    }

    async fn list_buckets(&self) -> MetaResult<Vec<Bucket>> {
        let rows = sqlx::query("SELECT name, created_ms FROM buckets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(bucket_row).collect()
    }

    async fn delete_bucket(&self, name: &str, gc_due: OffsetDateTime) -> MetaResult<DeleteBucket> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE waits for writers holding the bucket (FOR KEY SHARE) to commit, so the
        // emptiness check below sees their objects and uploads.
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM buckets WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Ok(DeleteBucket::NoSuchBucket);
        }
        let busy: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM objects WHERE bucket = $1 LIMIT 1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if busy.is_some() {
            return Ok(DeleteBucket::NotEmpty);
        }
        let uploads: Vec<String> =
            sqlx::query_scalar("SELECT id FROM uploads WHERE bucket = $1 FOR UPDATE")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
        for id in &uploads {
            drop_upload(&mut tx, id, gc_due).await?;
        }
        sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DeleteBucket::Deleted)
    }

    async fn object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectMeta>> {
        let row = sqlx::query("SELECT * FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| object_row(&r)).transpose()
    }

    async fn put_object(
        &self,
        object: &ObjectMeta,
        chunks: &[ChunkRef],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        let mut tx = self.pool.begin().await?;
        lock_key(&mut tx, &object.bucket, &object.key).await?;
        check_condition(&mut tx, &object.bucket, &object.key, condition).await?;
        remove_object(&mut tx, &object.bucket, &object.key, gc_due).await?;
        insert_object(&mut tx, object).await?;
        insert_chunks(&mut tx, &object.id.to_string(), chunks).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        let mut tx = self.pool.begin().await?;
        lock_key(&mut tx, bucket, key).await?;
        let existed = remove_object(&mut tx, bucket, key, gc_due).await?;
        tx.commit().await?;
        Ok(existed)
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ObjectMeta>> {
        let (from, inclusive) = list_seek(prefix, &start);
        // The prefix's end bounds the index scan, so a page under a small prefix stops there.
        let end = prefix_successor(prefix);
        let lower = if inclusive { ">=" } else { ">" };
        let (upper, limit_param) = if end.is_some() {
            ("AND key < $3", "$4")
        } else {
            ("", "$3")
        };
        // Not `*`: a listing leaves out the inline bytes of small objects.
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND key {lower} $2 {upper} \
             ORDER BY key LIMIT {limit_param}"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(bucket).bind(from);
        if let Some(end) = end {
            query = query.bind(end);
        }
        let rows = query.bind(row_limit(limit)).fetch_all(&self.pool).await?;
        take_prefixed(&rows, prefix, object_row, |o| &o.key)
    }

    async fn chunks(
        &self,
        owner: Uuid,
        range: Range<u64>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkRef>> {
        // The first chunk is the last one starting at or before range.start; the rest follow.
        // Both lookups walk the (owner, byte_offset) primary key.
        let rows = sqlx::query(
            "SELECT byte_offset, size, chunk_id FROM chunks WHERE owner = $1 AND byte_offset < $3 \
             AND byte_offset >= COALESCE((SELECT MAX(byte_offset) FROM chunks \
             WHERE owner = $1 AND byte_offset <= $2), 0) \
             ORDER BY byte_offset LIMIT $4",
        )
        .bind(owner.to_string())
        .bind(range.start as i64)
        .bind(range.end as i64)
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(chunk_ref_row).collect()
    }

    async fn object_part(&self, object_id: Uuid, number: u32) -> MetaResult<Option<PartRange>> {
        let row = sqlx::query(
            "SELECT byte_offset, size FROM object_parts WHERE object_id = $1 AND number = $2",
        )
        .bind(object_id.to_string())
        .bind(i64::from(number))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| part_range_row(&r, number)).transpose()
    }

    async fn create_upload(&self, upload: &Upload) -> MetaResult<()> {
        let mut tx = self.pool.begin().await?;
        if !hold_bucket(&mut tx, &upload.bucket).await? {
            return Err(MetaError::NoSuchBucket);
        }
        sqlx::query(
            "INSERT INTO uploads (id, bucket, key, initiated_ms, headers, checksum_algorithm, \
             checksum_type) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&upload.id)
        .bind(&upload.bucket)
        .bind(&upload.key)
        .bind(ms(upload.initiated))
        .bind(headers_json(&upload.headers))
        .bind(upload.checksum_algorithm.map(ChecksumAlgorithm::as_str))
        .bind(upload.checksum_type.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> MetaResult<Option<Upload>> {
        let row = sqlx::query("SELECT * FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| upload_row(&r)).transpose()
    }

    async fn put_part(
        &self,
        upload_id: &str,
        part: &Part,
        chunks: &[ChunkRef],
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        let mut tx = self.pool.begin().await?;
        if !lock_upload(&mut tx, upload_id).await? {
            return Err(MetaError::NoSuchUpload);
        }
        let old: Option<String> = sqlx::query_scalar(
            "DELETE FROM upload_parts WHERE upload_id = $1 AND number = $2 RETURNING owner",
        )
        .bind(upload_id)
        .bind(i64::from(part.number))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(old) = old {
            collect_owners(&mut tx, &[old], gc_due).await?;
        }
        let owner = part.owner.to_string();
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, number, owner, size, etag, last_modified_ms, \
             checksum_algorithm, checksum_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(upload_id)
        .bind(i64::from(part.number))
        .bind(&owner)
        .bind(part.size as i64)
        .bind(&part.etag)
        .bind(ms(part.last_modified))
        .bind(part.checksum.as_ref().map(|c| c.algorithm.as_str()))
        .bind(part.checksum.as_ref().map(Checksum::to_base64))
        .execute(&mut *tx)
        .await?;
        insert_chunks(&mut tx, &owner, chunks).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> MetaResult<Vec<Part>> {
        let rows = sqlx::query(
            "SELECT * FROM upload_parts WHERE upload_id = $1 AND number > $2 ORDER BY number LIMIT $3",
        )
        .bind(upload_id)
        .bind(i64::from(after))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(part_row).collect()
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        object: &ObjectMeta,
        parts: &[Part],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        let mut tx = self.pool.begin().await?;
        // Key first, then upload: the same order as put_object (key) and put_part (upload),
        // so two transactions never wait for each other in a cycle.
        lock_key(&mut tx, &object.bucket, &object.key).await?;
        if !lock_upload(&mut tx, upload_id).await? {
            return Err(MetaError::NoSuchUpload);
        }
        check_condition(&mut tx, &object.bucket, &object.key, condition).await?;
        remove_object(&mut tx, &object.bucket, &object.key, gc_due).await?;
        insert_object(&mut tx, object).await?;
        move_parts(&mut tx, upload_id, &object.id.to_string(), parts).await?;
        drop_upload(&mut tx, upload_id, gc_due).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn abort_upload(&self, upload_id: &str, gc_due: OffsetDateTime) -> MetaResult<bool> {
        let mut tx = self.pool.begin().await?;
        if !lock_upload(&mut tx, upload_id).await? {
            return Ok(false);
        }
        let existed = drop_upload(&mut tx, upload_id, gc_due).await?;
        tx.commit().await?;
        Ok(existed)
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> MetaResult<Vec<Upload>> {
        let rows = sqlx::query(
            "SELECT * FROM uploads WHERE bucket = $1 AND key >= $2 \
             AND (key > $3 OR (key = $3 AND id > $4)) ORDER BY key, id LIMIT $5",
        )
        .bind(bucket)
        .bind(prefix)
        .bind(key_marker)
        .bind(upload_id_marker)
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        take_prefixed(&rows, prefix, upload_row, |u| &u.key)
    }

    async fn uploads_initiated_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> MetaResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM uploads WHERE initiated_ms < $1 ORDER BY initiated_ms LIMIT $2",
        )
        .bind(ms(before))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn gc_due(&self, now: OffsetDateTime, limit: usize) -> MetaResult<Vec<ChunkId>> {
        let rows = sqlx::query(
            "SELECT chunk_id FROM gc_queue g WHERE due_ms <= $1 AND NOT EXISTS \
             (SELECT 1 FROM chunks c WHERE c.chunk_id = g.chunk_id) ORDER BY due_ms LIMIT $2",
        )
        .bind(ms(now))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| chunk_col(r, "chunk_id")).collect()
    }

    async fn gc_done(&self, chunks: &[ChunkId]) -> MetaResult<()> {
        let ids: Vec<String> = chunks.iter().map(ChunkId::to_string).collect();
        sqlx::query("DELETE FROM gc_queue WHERE chunk_id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn known_chunks(&self, chunks: &[ChunkId]) -> MetaResult<Vec<ChunkId>> {
        let ids: Vec<String> = chunks.iter().map(ChunkId::to_string).collect();
        let rows = sqlx::query(
            "SELECT chunk_id FROM chunks WHERE chunk_id = ANY($1) \
             UNION SELECT chunk_id FROM gc_queue WHERE chunk_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
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
}

#[async_trait]
impl ClusterMeta for PostgresMeta {
    async fn add_node(&self, node: &NodeInfo) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO nodes (id, address, zone, state, capacity, used, free, last_seen_ms, \
             added_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, zone = EXCLUDED.zone",
        )
        .bind(node.id.to_string())
        .bind(&node.address)
        .bind(&node.zone)
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
        let rows = sqlx::query("SELECT * FROM nodes ORDER BY added_ms, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(node_row).collect()
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
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_node_state(&self, id: Uuid, state: NodeState) -> MetaResult<bool> {
        let done = sqlx::query("UPDATE nodes SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_node(&self, id: Uuid) -> MetaResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM replicas WHERE node_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
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
        .bind(chunk.to_string())
        .bind(node.to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_replica(&self, chunk: ChunkId, node: Uuid) -> MetaResult<()> {
        sqlx::query("DELETE FROM replicas WHERE chunk_id = $1 AND node_id = $2")
            .bind(chunk.to_string())
            .bind(node.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn replicas(&self, chunk: ChunkId) -> MetaResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT node_id FROM replicas WHERE chunk_id = $1 ORDER BY node_id")
            .bind(chunk.to_string())
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
        .bind(node.to_string())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
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
        // One round trip per page rather than one per chunk: the replicas come as an array.
        let rows = sqlx::query(
            "SELECT c.chunk_id, c.size, ARRAY(SELECT r.node_id FROM replicas r \
             WHERE r.chunk_id = c.chunk_id ORDER BY r.node_id) AS nodes \
             FROM chunks c WHERE c.chunk_id > $1 ORDER BY c.chunk_id LIMIT $2",
        )
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let nodes: Vec<String> = row.try_get("nodes")?;
                Ok(ChunkReplicas {
                    chunk: chunk_col(row, "chunk_id")?,
                    size: u64_col(row, "size")?,
                    nodes: nodes
                        .iter()
                        .map(|n| parse_uuid("node_id", n))
                        .collect::<MetaResult<_>>()?,
                })
            })
            .collect()
    }

    async fn chunk_object(&self, chunk: ChunkId) -> MetaResult<Option<String>> {
        let row = sqlx::query(
            "SELECT o.bucket, o.key FROM chunks c JOIN objects o ON o.id = c.owner \
             WHERE c.chunk_id = $1",
        )
        .bind(chunk.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| object_path_row(&r)).transpose()
    }

    async fn queue_abandoned_chunks(
        &self,
        before: OffsetDateTime,
        gc_due: OffsetDateTime,
    ) -> MetaResult<u64> {
        let done = sqlx::query(
            "INSERT INTO gc_queue (chunk_id, due_ms) SELECT DISTINCT r.chunk_id, $1::bigint \
             FROM replicas r WHERE r.created_ms < $2 \
             AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.chunk_id = r.chunk_id) \
             ON CONFLICT (chunk_id) DO NOTHING",
        )
        .bind(ms(gc_due))
        .bind(ms(before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
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
        Ok(done.rows_affected() > 0)
    }
}
