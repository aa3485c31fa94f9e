//! The embedded metadata store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit
//! is durable when it returns. Write transactions start with `BEGIN IMMEDIATE`: they take the
//! write lock up front and wait for it (busy timeout) instead of failing on a lock upgrade, which
//! also lets `cairn admin` change keys while the server runs.

use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, Transaction};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::rows::{
    OBJECT_COLUMNS, ObjectJson, bucket_row, check_etag, chunk_col, chunk_ref_row, headers_json,
    key_row, list_seek, ms, node_row, object_path_row, object_row, part_range_row, part_row,
    row_limit, take_prefixed, u64_col, upload_row, uuid_col,
};
use super::{
    AccessKey, Bucket, ChunkReplicas, ClusterMeta, DeleteBucket, ListStart, MetaError, MetaResult,
    MetaStore, NodeInfo, NodeState, ObjectMeta, Part, PartRange, Upload, WriteCondition,
    prefix_successor,
};
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::chunk::{ChunkId, ChunkRef};

/// How long a writer waits for another process (e.g. `cairn admin`) holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers run in parallel in WAL mode; writers queue on the one write lock anyway.
const MAX_CONNECTIONS: u32 = 8;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteMeta {
    pool: SqlitePool,
    /// Object commits go through one task that groups those waiting into one transaction.
    commits: mpsc::Sender<Job>,
}

/// The most object commits grouped into one transaction.
const MAX_COMMIT_BATCH: usize = 128;

/// One object commit waiting for the committer.
enum Job {
    Put {
        object: Box<ObjectMeta>,
        chunks: Vec<ChunkRef>,
        condition: WriteCondition,
        gc_due: OffsetDateTime,
        reply: oneshot::Sender<MetaResult<()>>,
    },
    Delete {
        bucket: String,
        key: String,
        gc_due: OffsetDateTime,
        reply: oneshot::Sender<MetaResult<bool>>,
    },
}

/// What a job's statements returned, held until the transaction is durable.
enum Outcome {
    Put(MetaResult<()>),
    Delete(MetaResult<bool>),
}

impl Job {
    async fn run(&self, tx: &mut Transaction<'static, Sqlite>) -> Outcome {
        match self {
            Job::Put {
                object: o,
                chunks,
                condition,
                gc_due,
                ..
            } => Outcome::Put(
                async {
                    check_condition(tx, &o.bucket, &o.key, condition).await?;
                    remove_object(tx, &o.bucket, &o.key, *gc_due).await?;
                    insert_object(tx, o).await?;
                    insert_chunks(tx, &o.id.to_string(), chunks).await
                }
                .await,
            ),
            Job::Delete {
                bucket,
                key,
                gc_due,
                ..
            } => Outcome::Delete(remove_object(tx, bucket, key, *gc_due).await),
        }
    }

    fn failed(&self, why: &str) -> Outcome {
        let e = || MetaError::CommitFailed(why.to_owned());
        match self {
            Job::Put { .. } => Outcome::Put(Err(e())),
            Job::Delete { .. } => Outcome::Delete(Err(e())),
        }
    }

    fn answer(self, outcome: Outcome) {
        match (self, outcome) {
            (Job::Put { reply, .. }, Outcome::Put(r)) => {
                let _ = reply.send(r);
            }
            (Job::Delete { reply, .. }, Outcome::Delete(r)) => {
                let _ = reply.send(r);
            }
            // Outcomes are made from their own job; a mismatch drops the reply, which the
            // caller reads as a failed commit.
            _ => {}
        }
    }
}

fn committer_gone() -> MetaError {
    MetaError::CommitFailed("the metadata committer has stopped".to_owned())
}

impl SqliteMeta {
    /// Opens (creating it if missing) the database a `sqlite://PATH` URL names and migrates it.
    pub async fn open(url: &str) -> MetaResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        Self::open_with(options).await
    }

    pub async fn open_path(path: &Path) -> MetaResult<Self> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_with(options: SqliteConnectOptions) -> MetaResult<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let (commits, queue) = mpsc::channel(MAX_COMMIT_BATCH * 4);
        tokio::spawn(run_committer(pool.clone(), queue));
        Ok(SqliteMeta { pool, commits })
    }

    async fn write(&self) -> MetaResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Group commit: SQLite has one writer and every commit waits for an fsync, so object commits
/// that arrive together share one transaction (and one fsync). Each runs inside its own
/// savepoint, so one that fails (a precondition, a vanished bucket) leaves the others intact,
/// exactly as if they had committed one after another in arrival order. Nobody is answered
/// before the transaction is durable.
async fn run_committer(pool: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_COMMIT_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcomes = commit_batch(&pool, &jobs).await;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            job.answer(outcome);
        }
    }
}

async fn commit_batch(pool: &SqlitePool, jobs: &[Job]) -> Vec<Outcome> {
    let failed = |e: &dyn std::fmt::Display| {
        let why = e.to_string();
        jobs.iter().map(|j| j.failed(&why)).collect()
    };
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return failed(&e),
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Err(e) = sqlx::query("SAVEPOINT job").execute(&mut *tx).await {
            return failed(&e);
        }
        let outcome = job.run(&mut tx).await;
        let ok = matches!(outcome, Outcome::Put(Ok(_)) | Outcome::Delete(Ok(_)));
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = sqlx::raw_sql(end).execute(&mut *tx).await {
            return failed(&e);
        }
        outcomes.push(outcome);
    }
    if let Err(e) = tx.commit().await {
        return failed(&e);
    }
    outcomes
}

/// Moves every chunk of `owner` to the GC queue.
async fn collect_owner(
    tx: &mut Transaction<'static, Sqlite>,
    owner: &str,
    gc_due: OffsetDateTime,
) -> MetaResult<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO gc_queue (chunk_id, due_ms) SELECT chunk_id, ? FROM chunks WHERE owner = ?",
    )
    .bind(ms(gc_due))
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM chunks WHERE owner = ?")
        .bind(owner)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_chunks(
    tx: &mut Transaction<'static, Sqlite>,
    owner: &str,
    chunks: &[ChunkRef],
) -> MetaResult<()> {
    for c in chunks {
        let queued: Option<i64> = sqlx::query_scalar("SELECT 1 FROM gc_queue WHERE chunk_id = ?")
            .bind(c.chunk.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        if queued.is_some() {
            return Err(MetaError::ChunkCollected(c.chunk));
        }
        sqlx::query("INSERT INTO chunks (owner, byte_offset, size, chunk_id) VALUES (?, ?, ?, ?)")
            .bind(owner)
            .bind(c.offset as i64)
            .bind(c.size as i64)
            .bind(c.chunk.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Evaluates a conditional write against the key's current object, inside the write
/// transaction (which holds SQLite's write lock, so no other writer can slip in between).
async fn check_condition(
    tx: &mut Transaction<'static, Sqlite>,
    bucket: &str,
    key: &str,
    condition: &WriteCondition,
) -> MetaResult<()> {
    if *condition == WriteCondition::Always {
        return Ok(());
    }
    let etag: Option<String> =
        sqlx::query_scalar("SELECT etag FROM objects WHERE bucket = ? AND key = ?")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
    check_etag(condition, etag.as_deref())
}

/// Removes the visible object of a key, if any, queueing its chunks; returns whether one existed.
async fn remove_object(
    tx: &mut Transaction<'static, Sqlite>,
    bucket: &str,
    key: &str,
    gc_due: OffsetDateTime,
) -> MetaResult<bool> {
    let old: Option<String> =
        sqlx::query_scalar("DELETE FROM objects WHERE bucket = ? AND key = ? RETURNING id")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(old) = old else { return Ok(false) };
    collect_owner(tx, &old, gc_due).await?;
    sqlx::query("DELETE FROM object_parts WHERE object_id = ?")
        .bind(&old)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

async fn insert_object(tx: &mut Transaction<'static, Sqlite>, o: &ObjectMeta) -> MetaResult<()> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM buckets WHERE name = ?")
        .bind(&o.bucket)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_none() {
        return Err(MetaError::NoSuchBucket);
    }
    sqlx::query(
        "INSERT INTO objects (bucket, key, id, size, etag, last_modified_ms, headers, \
         checksum_algorithm, checksum_value, checksum_type, parts_count, inline_data) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl MetaStore for SqliteMeta {
    async fn setting(&self, name: &str) -> MetaResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_setting(&self, name: &str, value: &str) -> MetaResult<()> {
        sqlx::query("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_key(&self, key: &AccessKey) -> MetaResult<()> {
        sqlx::query("INSERT INTO access_keys (id, secret, name, created_ms) VALUES (?, ?, ?, ?)")
            .bind(&key.id)
            .bind(&key.secret)
            .bind(&key.name)
            .bind(ms(key.created))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn key(&self, id: &str) -> MetaResult<Option<AccessKey>> {
        let row = sqlx::query("SELECT * FROM access_keys WHERE id = ?")
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
        let done = sqlx::query("DELETE FROM access_keys WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<bool> {
        let done = sqlx::query("INSERT OR IGNORE INTO buckets (name, created_ms) VALUES (?, ?)")
            .bind(&bucket.name)
            .bind(ms(bucket.created))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn bucket(&self, name: &str) -> MetaResult<Option<Bucket>> {
        let row = sqlx::query("SELECT name, created_ms FROM buckets WHERE name = ?")
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
        let mut tx = self.write().await?;
        let busy: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if busy.is_some() {
            return Ok(DeleteBucket::NotEmpty);
        }
        let uploads: Vec<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE bucket = ?")
            .bind(name)
            .fetch_all(&mut *tx)
            .await?;
        for id in &uploads {
            drop_upload(&mut tx, id, gc_due).await?;
        }
        let done = sqlx::query("DELETE FROM buckets WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() > 0 {
            DeleteBucket::Deleted
        } else {
            DeleteBucket::NoSuchBucket
        })
    }

    async fn object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectMeta>> {
        let row = sqlx::query("SELECT * FROM objects WHERE bucket = ? AND key = ?")
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
        let (reply, answer) = oneshot::channel();
        let job = Job::Put {
            object: Box::new(object.clone()),
            chunks: chunks.to_vec(),
            condition: condition.clone(),
            gc_due,
            reply,
        };
        self.commits.send(job).await.map_err(|_| committer_gone())?;
        answer.await.map_err(|_| committer_gone())?
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Delete {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            gc_due,
            reply,
        };
        self.commits.send(job).await.map_err(|_| committer_gone())?;
        answer.await.map_err(|_| committer_gone())?
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
        let upper = if end.is_some() { "AND key < ?" } else { "" };
        // The page as one JSON array (see `ObjectJson`): a thousand rows handed over one by one
        // cost more in thread wake-ups than the query itself. The aggregate keeps no order, so
        // the rows are put back in key order here (a linear pass when they already are).
        let sql = format!(
            "SELECT json_group_array(json_array({OBJECT_COLUMNS})) FROM (SELECT {OBJECT_COLUMNS} \
             FROM objects WHERE bucket = ? AND key {lower} ? {upper} ORDER BY key LIMIT ?)"
        );
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
            .bind(bucket)
            .bind(from);
        if let Some(end) = end {
            query = query.bind(end);
        }
        let page = query.bind(row_limit(limit)).fetch_one(&self.pool).await?;
        let mut rows: Vec<ObjectJson> = serde_json::from_str(&page)
            .map_err(|e| MetaError::Corrupt(format!("listing page: {e}")))?;
        rows.sort_by(|a, b| a.key().cmp(b.key()));
        take_prefixed(&rows, prefix, object_row, |o| &o.key)
    }

    async fn chunks(
        &self,
        owner: Uuid,
        range: Range<u64>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkRef>> {
        // The first chunk is the last one starting at or before range.start; the rest follow.
        let rows = sqlx::query(
            "SELECT byte_offset, size, chunk_id FROM chunks WHERE owner = ?1 AND byte_offset < ?3 AND byte_offset >= \
             COALESCE((SELECT MAX(byte_offset) FROM chunks WHERE owner = ?1 AND byte_offset <= ?2), 0) \
             ORDER BY byte_offset LIMIT ?4",
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
            "SELECT number, byte_offset, size FROM object_parts WHERE object_id = ? AND number = ?",
        )
        .bind(object_id.to_string())
        .bind(i64::from(number))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| part_range_row(&r, number)).transpose()
    }

    async fn create_upload(&self, upload: &Upload) -> MetaResult<()> {
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM buckets WHERE name = ?")
            .bind(&upload.bucket)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(MetaError::NoSuchBucket);
        }
        sqlx::query(
            "INSERT INTO uploads (id, bucket, key, initiated_ms, headers, checksum_algorithm, \
             checksum_type) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        let row = sqlx::query("SELECT * FROM uploads WHERE id = ?")
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
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM uploads WHERE id = ?")
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(MetaError::NoSuchUpload);
        }
        let old: Option<String> = sqlx::query_scalar(
            "DELETE FROM upload_parts WHERE upload_id = ? AND number = ? RETURNING owner",
        )
        .bind(upload_id)
        .bind(i64::from(part.number))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(old) = old {
            collect_owner(&mut tx, &old, gc_due).await?;
        }
        let owner = part.owner.to_string();
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, number, owner, size, etag, last_modified_ms, \
             checksum_algorithm, checksum_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
            "SELECT * FROM upload_parts WHERE upload_id = ? AND number > ? ORDER BY number LIMIT ?",
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
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM uploads WHERE id = ?")
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(MetaError::NoSuchUpload);
        }
        check_condition(&mut tx, &object.bucket, &object.key, condition).await?;
        remove_object(&mut tx, &object.bucket, &object.key, gc_due).await?;
        insert_object(&mut tx, object).await?;
        let object_id = object.id.to_string();
        let mut offset = 0u64;
        for part in parts {
            let owner = part.owner.to_string();
            // Completing is metadata only: the part's chunks change owner and are shifted to
            // the part's place in the object.
            let moved: Option<i64> = sqlx::query_scalar(
                "DELETE FROM upload_parts WHERE upload_id = ? AND number = ? AND owner = ? RETURNING 1",
            )
            .bind(upload_id)
            .bind(i64::from(part.number))
            .bind(&owner)
            .fetch_optional(&mut *tx)
            .await?;
            if moved.is_none() {
                return Err(MetaError::PartChanged(part.number));
            }
            sqlx::query(
                "UPDATE chunks SET owner = ?, byte_offset = byte_offset + ? WHERE owner = ?",
            )
            .bind(&object_id)
            .bind(offset as i64)
            .bind(&owner)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO object_parts (object_id, number, byte_offset, size) VALUES (?, ?, ?, ?)",
            )
            .bind(&object_id)
            .bind(i64::from(part.number))
            .bind(offset as i64)
            .bind(part.size as i64)
            .execute(&mut *tx)
            .await?;
            offset += part.size;
        }
        drop_upload(&mut tx, upload_id, gc_due).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn abort_upload(&self, upload_id: &str, gc_due: OffsetDateTime) -> MetaResult<bool> {
        let mut tx = self.write().await?;
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
            "SELECT * FROM uploads WHERE bucket = ?1 AND key >= ?2 AND (key > ?3 OR (key = ?3 AND id > ?4)) \
             ORDER BY key, id LIMIT ?5",
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
            "SELECT id FROM uploads WHERE initiated_ms < ? ORDER BY initiated_ms LIMIT ?",
        )
        .bind(ms(before))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn gc_due(&self, now: OffsetDateTime, limit: usize) -> MetaResult<Vec<ChunkId>> {
        let rows = sqlx::query(
            "SELECT chunk_id FROM gc_queue g WHERE due_ms <= ? AND NOT EXISTS \
                 (SELECT 1 FROM chunks c WHERE c.chunk_id = g.chunk_id) ORDER BY due_ms LIMIT ?",
        )
        .bind(ms(now))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| chunk_col(r, "chunk_id")).collect()
    }

    async fn gc_done(&self, chunks: &[ChunkId]) -> MetaResult<()> {
        let mut tx = self.write().await?;
        for c in chunks {
            sqlx::query("DELETE FROM gc_queue WHERE chunk_id = ?")
                .bind(c.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn known_chunks(&self, chunks: &[ChunkId]) -> MetaResult<Vec<ChunkId>> {
        let mut known = Vec::new();
        for c in chunks {
            let id = c.to_string();
            let hit: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM chunks WHERE chunk_id = ?1 UNION ALL SELECT 1 FROM gc_queue WHERE chunk_id = ?1 LIMIT 1",
            )
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?;
            if hit.is_some() {
                known.push(*c);
            }
        }
        Ok(known)
    }
}

#[async_trait]
impl ClusterMeta for SqliteMeta {
    async fn add_node(&self, node: &NodeInfo) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO nodes (id, address, zone, state, capacity, used, free, last_seen_ms, added_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, zone = excluded.zone",
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
            "UPDATE nodes SET capacity = ?, used = ?, free = ?, last_seen_ms = ?, \
             state = CASE WHEN state = 'draining' THEN state ELSE 'up' END WHERE id = ?",
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
        let done = sqlx::query("UPDATE nodes SET state = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_node(&self, id: Uuid) -> MetaResult<bool> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM replicas WHERE node_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM nodes WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn replica_counts(&self) -> MetaResult<Vec<(Uuid, u64)>> {
        let rows = sqlx::query("SELECT node_id, COUNT(*) AS n FROM replicas GROUP BY node_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((uuid_col(r, "node_id")?, u64_col(r, "n")?)))
            .collect()
    }

    async fn add_replica(&self, chunk: ChunkId, node: Uuid, now: OffsetDateTime) -> MetaResult<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO replicas (chunk_id, node_id, created_ms) VALUES (?, ?, ?)",
        )
        .bind(chunk.to_string())
        .bind(node.to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_replica(&self, chunk: ChunkId, node: Uuid) -> MetaResult<()> {
        sqlx::query("DELETE FROM replicas WHERE chunk_id = ? AND node_id = ?")
            .bind(chunk.to_string())
            .bind(node.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn replicas(&self, chunk: ChunkId) -> MetaResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT node_id FROM replicas WHERE chunk_id = ? ORDER BY node_id")
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
            "SELECT chunk_id FROM replicas WHERE node_id = ? AND chunk_id > ? ORDER BY chunk_id LIMIT ?",
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
        let rows = sqlx::query(
            "SELECT chunk_id, size FROM chunks WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?",
        )
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let chunk = chunk_col(row, "chunk_id")?;
            out.push(ChunkReplicas {
                chunk,
                size: u64_col(row, "size")?,
                nodes: self.replicas(chunk).await?,
            });
        }
        Ok(out)
    }

    async fn chunk_object(&self, chunk: ChunkId) -> MetaResult<Option<String>> {
        let row = sqlx::query(
            "SELECT o.bucket, o.key FROM chunks c JOIN objects o ON o.id = c.owner WHERE c.chunk_id = ?",
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
            "INSERT OR IGNORE INTO gc_queue (chunk_id, due_ms) SELECT DISTINCT r.chunk_id, ? FROM replicas r \
             WHERE r.created_ms < ? AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.chunk_id = r.chunk_id)",
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
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = ?2, expires_ms = ?3 \
             WHERE leases.holder = ?2 OR leases.expires_ms < ?4",
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

/// Deletes an upload and its remaining parts, queueing their chunks.
async fn drop_upload(
    tx: &mut Transaction<'static, Sqlite>,
    upload_id: &str,
    gc_due: OffsetDateTime,
) -> MetaResult<bool> {
    let owners: Vec<String> =
        sqlx::query_scalar("DELETE FROM upload_parts WHERE upload_id = ? RETURNING owner")
            .bind(upload_id)
            .fetch_all(&mut **tx)
            .await?;
    for owner in &owners {
        collect_owner(tx, owner, gc_due).await?;
    }
    let done = sqlx::query("DELETE FROM uploads WHERE id = ?")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}
