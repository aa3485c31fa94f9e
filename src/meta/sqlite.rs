//! The embedded metadata store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit
//! is durable when it returns. Write transactions start with `BEGIN IMMEDIATE`: they take the
//! write lock up front and wait for it (busy timeout) instead of failing on a lock upgrade, which
//! also lets `cairn admin` change keys while the server runs. This file is SQLite's side of the
//! shared SQL store (`sql.rs`): that write lock, the group commit of object writes, and the
//! loops that stand in for PostgreSQL's array statements.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, Sqlite, Transaction};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::rows::{
    OBJECT_COLUMNS, ObjectJson, chunk_col, digest_col, ms, object_row, row_limit, take_prefixed,
    u64_col,
};
use super::sql::{Dialect, SqlMeta, listing_page, out_of_space};
use super::{
    ChunkReplicas, ClusterMeta, DeleteBucket, ListStart, MetaError, MetaResult, ObjectMeta, Part,
    WriteCondition,
};
use crate::chunk::{ChunkId, ChunkRef};
use crate::net::{PRIVATE_FILE_MODE, create_private_dir, restrict_mode};

/// How long a writer waits for another process (e.g. `cairn admin`) holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers run in parallel in WAL mode; writers queue on the one write lock anyway.
const MAX_CONNECTIONS: u32 = 8;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub type SqliteMeta = SqlMeta<Sqlite>;

/// Object commits go through one task that groups those waiting into one transaction.
pub struct Committer {
    queue: mpsc::Sender<Job>,
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
            } => Outcome::Put(SqliteMeta::write_object(tx, o, chunks, condition, *gc_due).await),
            Job::Delete {
                bucket,
                key,
                gc_due,
                ..
            } => Outcome::Delete(SqliteMeta::remove_object(tx, bucket, key, *gc_due).await),
        }
    }

    /// Every job of a batch whose transaction failed gets the batch's error; a full disk stays
    /// recognizable as one, so the client is told there is no room rather than a bare failure.
    fn failed(&self, why: &str, full: bool) -> Outcome {
        let e = || {
            if full {
                storage_full(why)
            } else {
                MetaError::CommitFailed(why.to_owned())
            }
        };
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
    /// Opens (creating it if missing) the database a `sqlite://PATH` URL names and migrates it,
    /// private to the owner as [`SqliteMeta::open_path`] makes it: a cluster's gateways and
    /// `cairn admin` keep the same secret keys in it. A missing directory is created 0700; an
    /// existing one is the operator's and left as it is.
    pub async fn open(url: &str) -> MetaResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        // An in-memory database has no file (sqlx names it `file:sqlx-in-memory-N`).
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            Self::make_private(options.get_filename().to_owned()).await?;
        }
        Self::open_with(options).await
    }

    /// Opens (creating it if missing) the database file at `path`, private to the owner: it
    /// holds every secret key. SQLite gives the `-wal` and `-shm` files it creates the mode of
    /// the database file, so creating that one 0600 first covers all three; those of an older
    /// store are tightened here.
    pub async fn open_path(path: &Path) -> MetaResult<Self> {
        Self::make_private(path.to_owned()).await?;
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    /// Runs [`SqliteMeta::make_file_private`] off the runtime's threads.
    async fn make_private(path: PathBuf) -> MetaResult<()> {
        tokio::task::spawn_blocking(move || Self::make_file_private(&path))
            .await
            .map_err(|err| sqlx::Error::Io(std::io::Error::other(err)))?
            .map_err(sqlx::Error::Io)?;
        Ok(())
    }

    /// Creates the database file at `path` with mode 0600 if missing (an empty file is an empty
    /// database to SQLite), in a directory created 0700 if missing, and clears group and other
    /// bits from it and its `-wal` and `-shm`.
    fn make_file_private(path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_FILE_MODE)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            if let Some(from) = restrict_mode(file, PRIVATE_FILE_MODE)? {
                tracing::info!(
                    file = %file.display(),
                    from = format!("{from:o}"),
                    to = format!("{PRIVATE_FILE_MODE:o}"),
                    "tightened the metadata file's mode so other local users cannot read its keys"
                );
            }
        }
        Ok(())
    }

    async fn open_with(options: SqliteConnectOptions) -> MetaResult<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let dir = options
            .get_filename()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_release(|conn, _| Box::pin(still_usable(conn)))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let (queue, jobs) = mpsc::channel(MAX_COMMIT_BATCH * 4);
        tokio::spawn(run_committer(pool.clone(), dir, jobs));
        Ok(SqlMeta {
            pool,
            writer: Committer { queue },
        })
    }

    /// Hands a job to the committer and waits for its answer, given once the job's
    /// transaction is durable.
    async fn commit<T>(&self, job: Job, answer: oneshot::Receiver<MetaResult<T>>) -> MetaResult<T> {
        self.writer
            .queue
            .send(job)
            .await
            .map_err(|_| committer_gone())?;
        answer.await.map_err(|_| committer_gone())?
    }
}

/// Whether a connection handed back to the pool may serve again. A COMMIT that fails with
/// SQLITE_FULL (or an I/O error) may roll the transaction back inside SQLite, after which the
/// ROLLBACK sqlx queues on drop fails too and its count of open transactions stays at one:
/// every later `BEGIN IMMEDIATE` on that connection is refused ("begin_with at non-zero
/// transaction depth") until the process restarts. The ping waits for that queued ROLLBACK to
/// run; a connection still counted inside a transaction is closed, and the pool opens a clean
/// one for the next writer.
async fn still_usable(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

/// Group commit: SQLite has one writer and every commit waits for an fsync, so object commits
/// that arrive together share one transaction (and one fsync). Each runs inside its own
/// savepoint, so one that fails (a precondition, a vanished bucket) leaves the others intact,
/// exactly as if they had committed one after another in arrival order. Nobody is answered
/// before the transaction is durable.
async fn run_committer(pool: SqlitePool, dir: PathBuf, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_COMMIT_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcomes = commit_batch(&pool, &jobs, low_on_space(&dir)).await;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            job.answer(outcome);
        }
    }
}

/// Free space under which object writes are refused, while deletes still commit. A delete
/// needs a little room too (WAL frames, rows for the garbage-collection queue): were the last
/// byte given to a write, nothing could be deleted to free space. MinIO keeps a free-space
/// threshold for the same reason.
const DELETE_HEADROOM: u64 = 2 << 20;

/// Whether the filesystem holding the database has less than [`DELETE_HEADROOM`] free. A
/// filesystem that cannot be asked (an in-memory database) is taken to have room.
fn low_on_space(dir: &Path) -> bool {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    rustix::fs::statvfs(dir)
        .is_ok_and(|fs| fs.f_bavail.saturating_mul(fs.f_frsize) < DELETE_HEADROOM)
}

/// A full disk, as the committer reports it for every job it could not commit for want of
/// space.
fn storage_full(why: &str) -> MetaError {
    MetaError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        why,
    )))
}

async fn commit_batch(pool: &SqlitePool, jobs: &[Job], low_on_space: bool) -> Vec<Outcome> {
    let failed = |e: &sqlx::Error| {
        let full = out_of_space(e);
        let why = e.to_string();
        jobs.iter().map(|j| j.failed(&why, full)).collect()
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
        let outcome = match job {
            Job::Put { .. } if low_on_space => Outcome::Put(Err(storage_full(
                "less free space than deletes need is left on the metadata store's filesystem",
            ))),
            _ => job.run(&mut tx).await,
        };
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

impl Dialect for Sqlite {
    type Writer = Committer;

    // BEGIN IMMEDIATE took the one write lock: no other writer runs until the transaction ends,
    // so plain reads decide.
    const LOCK_UPLOAD: &'static str = "SELECT 1 FROM uploads WHERE id = $1";
    const HOLD_BUCKET: &'static str = "SELECT 1 FROM buckets WHERE name = $1";
    const BUCKET_UPLOADS: &'static str = "SELECT id FROM uploads WHERE bucket = $1";

    async fn begin_write(pool: &SqlitePool) -> MetaResult<Transaction<'static, Sqlite>> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Nothing to take: the transaction holds the database's one write lock already.
    async fn lock_key(_conn: &mut SqliteConnection, _bucket: &str, _key: &str) -> MetaResult<()> {
        Ok(())
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn collect_owners(
        conn: &mut SqliteConnection,
        owners: &[String],
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        for owner in owners {
            sqlx::query(
                "INSERT OR REPLACE INTO gc_queue (chunk_id, due_ms, owner, byte_offset, size, digest) \
                 SELECT chunk_id, ?, owner, byte_offset, size, digest FROM chunks WHERE owner = ?",
            )
            .bind(ms(gc_due))
            .bind(owner)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM chunks WHERE owner = ?")
                .bind(owner)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn insert_chunks(
        conn: &mut SqliteConnection,
        owner: &str,
        chunks: &[ChunkRef],
    ) -> MetaResult<()> {
        for c in chunks {
            let queued: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM gc_queue WHERE chunk_id = ?")
                    .bind(c.chunk.to_string())
                    .fetch_optional(&mut *conn)
                    .await?;
            if queued.is_some() {
                return Err(MetaError::ChunkCollected(c.chunk));
            }
            sqlx::query(
                "INSERT INTO chunks (owner, byte_offset, size, chunk_id, digest) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(owner)
            .bind(c.offset as i64)
            .bind(c.size as i64)
            .bind(c.chunk.to_string())
            .bind(c.digest.as_ref().map(|d| d.0.as_slice()))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn claim_replicas(
        conn: &mut SqliteConnection,
        chunks: &[ChunkRef],
        at: OffsetDateTime,
    ) -> MetaResult<()> {
        for c in chunks {
            let done = sqlx::query("UPDATE replicas SET created_ms = ? WHERE chunk_id = ?")
                .bind(ms(at))
                .bind(c.chunk.to_string())
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Err(MetaError::ChunkCollected(c.chunk));
            }
        }
        Ok(())
    }

    async fn move_parts(
        conn: &mut SqliteConnection,
        upload_id: &str,
        object_id: &str,
        parts: &[Part],
    ) -> MetaResult<()> {
        let mut offset = 0u64;
        for part in parts {
            let owner = part.owner.to_string();
            let moved: Option<i64> = sqlx::query_scalar(
                "DELETE FROM upload_parts WHERE upload_id = ? AND number = ? AND owner = ? RETURNING 1",
            )
            .bind(upload_id)
            .bind(i64::from(part.number))
            .bind(&owner)
            .fetch_optional(&mut *conn)
            .await?;
            if moved.is_none() {
                return Err(MetaError::PartChanged(part.number));
            }
            sqlx::query(
                "UPDATE chunks SET owner = ?, byte_offset = byte_offset + ? WHERE owner = ?",
            )
            .bind(object_id)
            .bind(offset as i64)
            .bind(&owner)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO object_parts (object_id, number, byte_offset, size) VALUES (?, ?, ?, ?)",
            )
            .bind(object_id)
            .bind(i64::from(part.number))
            .bind(offset as i64)
            .bind(part.size as i64)
            .execute(&mut *conn)
            .await?;
            offset += part.size;
        }
        Ok(())
    }

    async fn put_object(
        store: &SqliteMeta,
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
        store.commit(job, answer).await
    }

    async fn delete_object(
        store: &SqliteMeta,
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
        store.commit(job, answer).await
    }

    async fn delete_bucket(
        store: &SqliteMeta,
        name: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<DeleteBucket> {
        let mut tx = Self::begin_write(&store.pool).await?;
        SqliteMeta::bump_generation(&mut tx).await?;
        let deleted = SqliteMeta::drop_bucket(&mut tx, name, gc_due).await?;
        if deleted == DeleteBucket::Deleted {
            tx.commit().await?;
        }
        Ok(deleted)
    }

    async fn abort_upload(
        store: &SqliteMeta,
        upload_id: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        let mut tx = Self::begin_write(&store.pool).await?;
        let existed = SqliteMeta::drop_upload(&mut tx, upload_id, gc_due).await?;
        tx.commit().await?;
        Ok(existed)
    }

    async fn list_objects(
        pool: &SqlitePool,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ObjectMeta>> {
        let page = listing_page(prefix, &start);
        // The page as one JSON array (see `ObjectJson`): a thousand rows handed over one by one
        // cost more in thread wake-ups than the query itself. The aggregate keeps no order, so
        // the rows are put back in key order here (a linear pass when they already are).
        let sql = format!(
            "SELECT json_group_array(json_array({OBJECT_COLUMNS})) FROM ({})",
            page.sql
        );
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
            .bind(bucket)
            .bind(page.from);
        if let Some(end) = page.end {
            query = query.bind(end);
        }
        let json = query.bind(row_limit(limit)).fetch_one(pool).await?;
        let mut rows: Vec<ObjectJson> = serde_json::from_str(&json)
            .map_err(|e| MetaError::Corrupt(format!("listing page: {e}")))?;
        rows.sort_by(|a, b| a.key().cmp(b.key()));
        take_prefixed(&rows, prefix, object_row, |o| &o.key)
    }

    async fn gc_done(pool: &SqlitePool, chunks: &[ChunkId]) -> MetaResult<()> {
        let mut tx = Self::begin_write(pool).await?;
        for c in chunks {
            sqlx::query("DELETE FROM gc_queue WHERE chunk_id = ?")
                .bind(c.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn known_chunks(pool: &SqlitePool, chunks: &[ChunkId]) -> MetaResult<Vec<ChunkId>> {
        let mut known = Vec::new();
        for c in chunks {
            let hit: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM chunks WHERE chunk_id = ?1 UNION ALL SELECT 1 FROM gc_queue WHERE chunk_id = ?1 LIMIT 1",
            )
            .bind(c.to_string())
            .fetch_optional(pool)
            .await?;
            if hit.is_some() {
                known.push(*c);
            }
        }
        Ok(known)
    }

    async fn referenced_chunks(
        store: &SqliteMeta,
        after: Option<ChunkId>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkReplicas>> {
        let rows = sqlx::query(
            "SELECT chunk_id, size, digest FROM chunks WHERE chunk_id > ? ORDER BY chunk_id \
             LIMIT ?",
        )
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(row_limit(limit))
        .fetch_all(&store.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let chunk = chunk_col(row, "chunk_id")?;
            out.push(ChunkReplicas {
                chunk,
                size: u64_col(row, "size")?,
                digest: digest_col(row)?,
                nodes: store.replicas(chunk).await?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state a COMMIT refused with SQLITE_FULL leaves: SQLite has ended the transaction,
    /// sqlx still counts it open, and the ROLLBACK it queues on drop fails. The pool must not
    /// hand that connection to the next writer.
    #[tokio::test]
    async fn a_connection_left_inside_a_failed_transaction_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMeta::open_path(&dir.path().join("meta.db"))
            .await
            .unwrap();
        let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
        drop(tx);
        for _ in 0..2 * MAX_CONNECTIONS {
            let tx = store.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            tx.commit().await.unwrap();
        }
    }
}
