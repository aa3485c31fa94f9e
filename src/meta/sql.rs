//! The metadata store over SQL, written once for SQLite and PostgreSQL: the statements both run
//! alike (with `$N` placeholders, which sqlx's SQLite driver accepts too) and the transactions
//! made of them. What differs stays in `sqlite.rs` and `postgres.rs`, behind [`Dialect`]: how a
//! write transaction starts and keeps other writers out (SQLite's group commit and `BEGIN
//! IMMEDIATE` against PostgreSQL's advisory and row locks), and the steps PostgreSQL does in one
//! statement over arrays where SQLite loops. The cluster's half is in `cluster.rs`.

use std::future::Future;
use std::ops::Range;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{
    Columns, OBJECT_COLUMNS, account_row, bucket_row, check_etag, chunk_col, chunk_ref_row,
    headers_json, key_row, list_seek, ms, object_row, part_range_row, part_row, policy_row,
    row_limit, take_prefixed, upload_row,
};
use super::{
    ADMIN_ACCOUNT, AccessField, AccessKey, Account, Bucket, ChunkReplicas, DeleteAccount,
    DeleteBucket, ListStart, MetaError, MetaResult, MetaStore, ObjectMeta, Part, PartRange,
    REPLICAS_SETTING, Upload, WriteCondition, prefix_successor,
};
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::chunk::{ChunkId, ChunkRef};

/// A metadata store on one SQL database; `SqliteMeta` and `PostgresMeta` name its two kinds.
pub struct SqlMeta<D: Dialect> {
    pub(super) pool: Pool<D>,
    pub(super) writer: D::Writer,
}

/// What one SQL database does its own way. Each `impl` is the whole of a dialect's difference,
/// so a reader finds every lock and every batched statement of a store in its own file.
pub trait Dialect: Database<Row: Columns, Arguments: IntoArguments<Self>> {
    /// What a store keeps beside its pool to commit object writes.
    type Writer: Send + Sync + 'static;

    /// `SELECT 1 FROM uploads WHERE id = $1`, and whatever lock makes storing a part,
    /// completing and aborting the upload take turns.
    const LOCK_UPLOAD: &'static str;
    /// `SELECT 1 FROM buckets WHERE name = $1`, and whatever lock keeps the bucket from being
    /// deleted until the write that found it commits.
    const HOLD_BUCKET: &'static str;
    /// `SELECT id FROM uploads WHERE bucket = $1`: the uploads a bucket's deletion aborts.
    const BUCKET_UPLOADS: &'static str;

    /// Starts a transaction that changes the store.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = MetaResult<Transaction<'static, Self>>> + Send;
    /// Keeps other writers of one key out until the transaction ends. It comes first in the
    /// transaction, so that every later statement sees what the previous writer committed.
    fn lock_key(
        conn: &mut Self::Connection,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = MetaResult<()>> + Send;
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Moves every chunk of the given owners to the GC queue, due at `gc_due`, each keeping its
    /// owner and offset (see [`MetaStore::queued_chunks`]).
    fn collect_owners(
        conn: &mut Self::Connection,
        owners: &[String],
        gc_due: OffsetDateTime,
    ) -> impl Future<Output = MetaResult<()>> + Send;
    /// Adds `chunks` to the chunk map under `owner`; fails with `ChunkCollected` for a chunk
    /// already in the GC queue.
    fn insert_chunks(
        conn: &mut Self::Connection,
        owner: &str,
        chunks: &[ChunkRef],
    ) -> impl Future<Output = MetaResult<()>> + Send;
    /// Rewrites the time of the replica rows of `chunks` to `at`, so that the coordinator no
    /// longer takes them for abandoned; fails with `ChunkCollected` for a chunk that has none
    /// left (see [`ClusterMeta::forget_abandoned_chunks`](super::ClusterMeta)).
    fn claim_replicas(
        conn: &mut Self::Connection,
        chunks: &[ChunkRef],
        at: OffsetDateTime,
    ) -> impl Future<Output = MetaResult<()>> + Send;
    /// Hands the listed parts' chunks to the object, shifted to each part's place in it, and
    /// records where each part lies. Fails with `PartChanged` for a part that is no longer
    /// stored with the same owner (replaced or completed meanwhile, or listed twice).
    fn move_parts(
        conn: &mut Self::Connection,
        upload_id: &str,
        object_id: &str,
        parts: &[Part],
    ) -> impl Future<Output = MetaResult<()>> + Send;

    /// [`MetaStore::put_object`]: a transaction of `SqlMeta::write_object`.
    fn put_object(
        store: &SqlMeta<Self>,
        object: &ObjectMeta,
        chunks: &[ChunkRef],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> impl Future<Output = MetaResult<()>> + Send;
    /// [`MetaStore::delete_object`]: a transaction of `SqlMeta::remove_object`.
    fn delete_object(
        store: &SqlMeta<Self>,
        bucket: &str,
        key: &str,
        gc_due: OffsetDateTime,
    ) -> impl Future<Output = MetaResult<bool>> + Send;
    /// [`MetaStore::delete_bucket`]: a transaction of `SqlMeta::drop_bucket`.
    fn delete_bucket(
        store: &SqlMeta<Self>,
        name: &str,
        gc_due: OffsetDateTime,
    ) -> impl Future<Output = MetaResult<DeleteBucket>> + Send;
    /// [`MetaStore::abort_upload`]: a transaction of `SqlMeta::drop_upload`.
    fn abort_upload(
        store: &SqlMeta<Self>,
        upload_id: &str,
        gc_due: OffsetDateTime,
    ) -> impl Future<Output = MetaResult<bool>> + Send;
    /// [`MetaStore::list_objects`], from the query `listing_page` writes.
    fn list_objects(
        pool: &Pool<Self>,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> impl Future<Output = MetaResult<Vec<ObjectMeta>>> + Send;
    /// [`MetaStore::gc_done`].
    fn gc_done(
        pool: &Pool<Self>,
        chunks: &[ChunkId],
    ) -> impl Future<Output = MetaResult<()>> + Send;
    /// [`MetaStore::known_chunks`].
    fn known_chunks(
        pool: &Pool<Self>,
        chunks: &[ChunkId],
    ) -> impl Future<Output = MetaResult<Vec<ChunkId>>> + Send;
    /// [`ClusterMeta::referenced_chunks`](super::ClusterMeta::referenced_chunks).
    fn referenced_chunks(
        store: &SqlMeta<Self>,
        after: Option<ChunkId>,
        limit: usize,
    ) -> impl Future<Output = MetaResult<Vec<ChunkReplicas>>> + Send;
}

/// The query of one listing page, `SELECT <OBJECT_COLUMNS> FROM objects ...` (not `*`: a listing
/// leaves out the inline bytes of small objects), to be bound to the bucket, `from`, `end` when
/// there is one, and the row limit.
pub(super) struct ListingPage<'a> {
    pub(super) sql: String,
    pub(super) from: &'a str,
    pub(super) end: Option<String>,
}

pub(super) fn listing_page<'a>(prefix: &'a str, start: &ListStart<'a>) -> ListingPage<'a> {
    let (from, inclusive) = list_seek(prefix, start);
    // The prefix's end bounds the index scan, so a page under a small prefix stops there.
    let end = prefix_successor(prefix);
    let lower = if inclusive { ">=" } else { ">" };
    let (upper, limit) = if end.is_some() {
        ("AND key < $3", "$4")
    } else {
        ("", "$3")
    };
    ListingPage {
        sql: format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND key {lower} $2 {upper} \
             ORDER BY key LIMIT {limit}"
        ),
        from,
        end,
    }
}

/// SQLite's primary result code for "database or disk is full" (the low byte of its extended
/// codes).
const SQLITE_FULL: i32 = 13;
/// PostgreSQL's SQLSTATE `disk_full`.
const POSTGRES_DISK_FULL: &str = "53100";

impl MetaError {
    /// Whether the store refused the write for want of space: a full disk, which frees up
    /// when objects are deleted, unlike other database failures.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, MetaError::Database(e) if out_of_space(e))
    }
}

/// Whether the database refused a statement for want of space.
pub(super) fn out_of_space(e: &sqlx::Error) -> bool {
    if let sqlx::Error::Io(io) = e {
        return io.kind() == std::io::ErrorKind::StorageFull;
    }
    let Some(db) = e.as_database_error() else {
        return false;
    };
    let code = db.code();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        code.and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_FULL)
    } else {
        code.as_deref() == Some(POSTGRES_DISK_FULL)
    }
}

// Rust does not carry a trait's where-clauses to its users (rust-lang/rust#20671), so the
// bounds that let generic code bind values and run statements are spelled out on each impl.
impl<D> SqlMeta<D>
where
    D: Dialect,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'t> &'t str: Encode<'t, D> + Type<D>,
    for<'t> Option<&'t str>: Encode<'t, D> + Type<D>,
    for<'t> Option<&'t [u8]>: Encode<'t, D> + Type<D>,
    for<'t> i64: Encode<'t, D> + Type<D>,
    for<'t> Option<i64>: Encode<'t, D> + Type<D>,
{
    /// The row `sql` finds for `value`, decoded.
    async fn find<T>(
        &self,
        sql: &'static str,
        value: &str,
        decode: fn(&D::Row) -> MetaResult<T>,
    ) -> MetaResult<Option<T>> {
        let row = sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Every row `sql` returns, decoded.
    pub(super) async fn all<T>(
        &self,
        sql: &'static str,
        decode: fn(&D::Row) -> MetaResult<T>,
    ) -> MetaResult<Vec<T>> {
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// The chunk references `sql` (`chunks` or `queued_chunks`) finds for `owner`'s `range`.
    async fn chunk_page(
        &self,
        sql: &'static str,
        owner: Uuid,
        range: Range<u64>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkRef>> {
        let rows = sqlx::query(sql)
            .bind(owner.to_string().as_str())
            .bind(range.start as i64)
            .bind(range.end as i64)
            .bind(row_limit(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(chunk_ref_row).collect()
    }

    /// Every row `sql` finds for `value`, decoded.
    async fn all_for<T>(
        &self,
        sql: &'static str,
        value: &str,
        decode: fn(&D::Row) -> MetaResult<T>,
    ) -> MetaResult<Vec<T>> {
        let rows = sqlx::query(sql).bind(value).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// Runs `sql` bound to `values` and returns how many rows it changed.
    async fn change(
        conn: &mut D::Connection,
        sql: &'static str,
        values: &[&str],
    ) -> MetaResult<u64> {
        let mut query = sqlx::query(sql);
        for value in values {
            query = query.bind(*value);
        }
        Ok(D::rows_affected(&query.execute(conn).await?))
    }

    /// Starts a transaction that changes what authorization reads, counting it in the access
    /// generation first. The counter's one row is also a lock: every such transaction of a
    /// PostgreSQL store waits there for the previous one to commit, so the checks that follow
    /// (does the account still exist?) see its changes. A transaction that turns out to change
    /// nothing is dropped, which rolls the count back.
    async fn begin_access_change(&self) -> MetaResult<Transaction<'static, D>> {
        let mut tx = D::begin_write(&self.pool).await?;
        Self::bump_generation(&mut tx).await?;
        Ok(tx)
    }

    /// Counts a change in the access generation; first in its transaction (see
    /// [`SqlMeta::begin_access_change`]).
    pub(super) async fn bump_generation(conn: &mut D::Connection) -> MetaResult<()> {
        sqlx::query("UPDATE access_generation SET value = value + 1 WHERE id = 1")
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Whether `sql` (`SELECT 1 ... $1`) finds a row for `value`.
    async fn exists(conn: &mut D::Connection, sql: &'static str, value: &str) -> MetaResult<bool> {
        let row = sqlx::query(sql).bind(value).fetch_optional(conn).await?;
        Ok(row.is_some())
    }

    /// Evaluates a conditional write against the key's current object; the caller's
    /// transaction keeps other writers of the key out until it commits.
    async fn check_condition(
        conn: &mut D::Connection,
        bucket: &str,
        key: &str,
        condition: &WriteCondition,
    ) -> MetaResult<()> {
        if *condition == WriteCondition::Always {
            return Ok(());
        }
        let row = sqlx::query("SELECT etag FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .fetch_optional(conn)
            .await?;
        let etag = row.map(|r| r.text("etag")).transpose()?;
        check_etag(condition, etag.as_deref())
    }

    /// Removes the visible object of a key, if any, queueing its chunks; returns whether one
    /// existed.
    pub(super) async fn remove_object(
        conn: &mut D::Connection,
        bucket: &str,
        key: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        let old = sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2 RETURNING id")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(old) = old else { return Ok(false) };
        let old = old.text("id")?;
        sqlx::query("DELETE FROM object_parts WHERE object_id = $1")
            .bind(old.as_str())
            .execute(&mut *conn)
            .await?;
        D::collect_owners(conn, &[old], gc_due).await?;
        Ok(true)
    }

    async fn insert_object(conn: &mut D::Connection, o: &ObjectMeta) -> MetaResult<()> {
        if !Self::exists(&mut *conn, D::HOLD_BUCKET, &o.bucket).await? {
            return Err(MetaError::NoSuchBucket);
        }
        let id = o.id.to_string();
        let headers = headers_json(&o.headers);
        let checksum = o.checksum.as_ref().map(Checksum::to_base64);
        sqlx::query(
            "INSERT INTO objects (bucket, key, id, size, etag, last_modified_ms, headers, \
             checksum_algorithm, checksum_value, checksum_type, parts_count, inline_data, owner, \
             acl) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(o.bucket.as_str())
        .bind(o.key.as_str())
        .bind(id.as_str())
        .bind(o.size as i64)
        .bind(o.etag.as_str())
        .bind(ms(o.last_modified))
        .bind(headers.as_str())
        .bind(o.checksum.as_ref().map(|c| c.algorithm.as_str()))
        .bind(checksum.as_deref())
        .bind(o.checksum_type.as_str())
        .bind(o.parts_count.map(i64::from))
        .bind(o.inline.as_deref())
        .bind(o.owner.as_str())
        .bind(o.acl.as_deref())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Makes `o` the visible version of its key, with `chunks`, if `condition` holds; the
    /// replaced version's chunks go to the GC queue.
    pub(super) async fn write_object(
        conn: &mut D::Connection,
        o: &ObjectMeta,
        chunks: &[ChunkRef],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        Self::check_condition(&mut *conn, &o.bucket, &o.key, condition).await?;
        Self::remove_object(&mut *conn, &o.bucket, &o.key, gc_due).await?;
        Self::insert_object(&mut *conn, o).await?;
        Self::claim_chunks(&mut *conn, chunks).await?;
        D::insert_chunks(conn, &o.id.to_string(), chunks).await
    }

    /// In a cluster's store (one with [`REPLICAS_SETTING`]), claims the replica rows of a
    /// write's chunks inside its commit, or fails with `ChunkCollected` when the coordinator
    /// forgot them first as abandoned: a write slower than `--abandon-after` then fails
    /// cleanly instead of committing chunks whose files are deleted. The stores of `cairn
    /// server` keep no replica rows and claim nothing.
    async fn claim_chunks(conn: &mut D::Connection, chunks: &[ChunkRef]) -> MetaResult<()> {
        let cluster = "SELECT 1 FROM settings WHERE name = $1";
        if chunks.is_empty() || !Self::exists(&mut *conn, cluster, REPLICAS_SETTING).await? {
            return Ok(());
        }
        D::claim_replicas(conn, chunks, OffsetDateTime::now_utc()).await
    }

    /// Deletes an upload and its remaining parts, queueing their chunks; returns whether the
    /// upload existed.
    pub(super) async fn drop_upload(
        conn: &mut D::Connection,
        upload_id: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        let rows = sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1 RETURNING owner")
            .bind(upload_id)
            .fetch_all(&mut *conn)
            .await?;
        let owners = rows
            .iter()
            .map(|r| r.text("owner"))
            .collect::<MetaResult<Vec<_>>>()?;
        D::collect_owners(&mut *conn, &owners, gc_due).await?;
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(upload_id)
            .execute(conn)
            .await?;
        Ok(D::rows_affected(&done) > 0)
    }

    /// Deletes a bucket unless it holds objects, aborting its uploads. The caller has counted
    /// the change in the access generation, and commits only when the bucket was deleted.
    pub(super) async fn drop_bucket(
        conn: &mut D::Connection,
        name: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<DeleteBucket> {
        let busy = "SELECT 1 FROM objects WHERE bucket = $1 LIMIT 1";
        if Self::exists(&mut *conn, busy, name).await? {
            return Ok(DeleteBucket::NotEmpty);
        }
        let uploads = sqlx::query(D::BUCKET_UPLOADS)
            .bind(name)
            .fetch_all(&mut *conn)
            .await?;
        for upload in &uploads {
            Self::drop_upload(&mut *conn, &upload.text("id")?, gc_due).await?;
        }
        let done = sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(conn)
            .await?;
        Ok(if D::rows_affected(&done) > 0 {
            DeleteBucket::Deleted
        } else {
            DeleteBucket::NoSuchBucket
        })
    }
}

#[async_trait]
impl<D> MetaStore for SqlMeta<D>
where
    D: Dialect,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'t> &'t str: Encode<'t, D> + Type<D>,
    for<'t> Option<&'t str>: Encode<'t, D> + Type<D>,
    for<'t> Option<&'t [u8]>: Encode<'t, D> + Type<D>,
    for<'t> i64: Encode<'t, D> + Type<D>,
    for<'t> Option<i64>: Encode<'t, D> + Type<D>,
{
    async fn setting(&self, name: &str) -> MetaResult<Option<String>> {
        let sql = "SELECT value FROM settings WHERE name = $1";
        self.find(sql, name, |r| r.text("value")).await
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

    async fn create_account(&self, a: &Account) -> MetaResult<bool> {
        let mut tx = self.begin_access_change().await?;
        let done = sqlx::query(
            "INSERT INTO accounts (id, name, display_name, created_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(a.id.as_str())
        .bind(a.name.as_str())
        .bind(a.display_name.as_str())
        .bind(ms(a.created))
        .execute(&mut *tx)
        .await?;
        if D::rows_affected(&done) == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn account(&self, id: &str) -> MetaResult<Option<Account>> {
        let sql = "SELECT * FROM accounts WHERE id = $1";
        self.find(sql, id, account_row).await
    }

    async fn account_by_name(&self, name: &str) -> MetaResult<Option<Account>> {
        let sql = "SELECT * FROM accounts WHERE name = $1";
        self.find(sql, name, account_row).await
    }

    async fn list_accounts(&self) -> MetaResult<Vec<Account>> {
        self.all("SELECT * FROM accounts ORDER BY name", account_row)
            .await
    }

    async fn delete_account(&self, id: &str, force: bool) -> MetaResult<DeleteAccount> {
        let mut tx = self.begin_access_change().await?;
        if !Self::exists(&mut tx, "SELECT 1 FROM accounts WHERE id = $1", id).await? {
            return Ok(DeleteAccount::NoSuchAccount);
        }
        let owns = "SELECT 1 FROM buckets WHERE owner = $1 LIMIT 1";
        if Self::exists(&mut tx, owns, id).await? {
            if !force {
                return Ok(DeleteAccount::OwnsBuckets);
            }
            let give = "UPDATE buckets SET owner = (SELECT id FROM accounts WHERE name = $2) \
                        WHERE owner = $1";
            Self::change(&mut tx, give, &[id, ADMIN_ACCOUNT]).await?;
        }
        for sql in [
            "DELETE FROM access_keys WHERE account = $1",
            "DELETE FROM account_policies WHERE account = $1",
            "DELETE FROM accounts WHERE id = $1",
        ] {
            Self::change(&mut tx, sql, &[id]).await?;
        }
        tx.commit().await?;
        Ok(DeleteAccount::Deleted)
    }

    async fn put_policy(&self, name: &str, document: &str) -> MetaResult<()> {
        let mut tx = self.begin_access_change().await?;
        let sql = "INSERT INTO policies (name, document) VALUES ($1, $2) \
                   ON CONFLICT (name) DO UPDATE SET document = EXCLUDED.document";
        Self::change(&mut tx, sql, &[name, document]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn policy(&self, name: &str) -> MetaResult<Option<String>> {
        let sql = "SELECT document FROM policies WHERE name = $1";
        self.find(sql, name, |r| r.text("document")).await
    }

    async fn list_policies(&self) -> MetaResult<Vec<(String, String)>> {
        let sql = "SELECT name, document FROM policies ORDER BY name";
        self.all(sql, policy_row).await
    }

    async fn delete_policy(&self, name: &str) -> MetaResult<bool> {
        let mut tx = self.begin_access_change().await?;
        let detach = "DELETE FROM account_policies WHERE policy = $1";
        Self::change(&mut tx, detach, &[name]).await?;
        let delete = "DELETE FROM policies WHERE name = $1";
        if Self::change(&mut tx, delete, &[name]).await? == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn attach_policy(&self, account: &str, policy: &str) -> MetaResult<bool> {
        let mut tx = self.begin_access_change().await?;
        let policy_exists = "SELECT 1 FROM policies WHERE name = $1";
        let account_exists = "SELECT 1 FROM accounts WHERE id = $1";
        if !Self::exists(&mut tx, policy_exists, policy).await?
            || !Self::exists(&mut tx, account_exists, account).await?
        {
            return Ok(false);
        }
        let sql = "INSERT INTO account_policies (account, policy) VALUES ($1, $2) \
                   ON CONFLICT DO NOTHING";
        Self::change(&mut tx, sql, &[account, policy]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn detach_policy(&self, account: &str, policy: &str) -> MetaResult<bool> {
        let mut tx = self.begin_access_change().await?;
        let sql = "DELETE FROM account_policies WHERE account = $1 AND policy = $2";
        if Self::change(&mut tx, sql, &[account, policy]).await? == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn account_policies(&self, account: &str) -> MetaResult<Vec<(String, String)>> {
        let sql = "SELECT p.name, p.document FROM account_policies a \
                   JOIN policies p ON p.name = a.policy WHERE a.account = $1 ORDER BY p.name";
        self.all_for(sql, account, policy_row).await
    }

    async fn create_key(&self, key: &AccessKey) -> MetaResult<()> {
        let mut tx = self.begin_access_change().await?;
        // The generation's lock taken, a concurrent deletion of the account has committed or
        // waits: the key never outlives its account.
        let done = sqlx::query(
            "INSERT INTO access_keys (id, secret, name, created_ms, account, policy) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $5)",
        )
        .bind(key.id.as_str())
        .bind(key.secret.as_str())
        .bind(key.name.as_str())
        .bind(ms(key.created))
        .bind(key.account.as_str())
        .bind(key.policy.as_deref())
        .execute(&mut *tx)
        .await?;
        if D::rows_affected(&done) == 0 {
            return Err(MetaError::NoSuchAccount);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn key(&self, id: &str) -> MetaResult<Option<AccessKey>> {
        let sql = "SELECT * FROM access_keys WHERE id = $1";
        self.find(sql, id, key_row).await
    }

    async fn list_keys(&self) -> MetaResult<Vec<AccessKey>> {
        let sql = "SELECT * FROM access_keys ORDER BY created_ms, id";
        self.all(sql, key_row).await
    }

    async fn delete_key(&self, id: &str) -> MetaResult<bool> {
        let mut tx = self.begin_access_change().await?;
        let sql = "DELETE FROM access_keys WHERE id = $1";
        if Self::change(&mut tx, sql, &[id]).await? == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<bool> {
        let mut tx = self.begin_access_change().await?;
        let access = &bucket.access;
        let done = sqlx::query(
            "INSERT INTO buckets (name, created_ms, owner, acl, policy, ownership, \
             public_access_block) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(bucket.name.as_str())
        .bind(ms(bucket.created))
        .bind(bucket.owner.as_str())
        .bind(access.acl.as_deref())
        .bind(access.policy.as_deref())
        .bind(access.ownership.as_deref())
        .bind(access.public_access_block.as_deref())
        .execute(&mut *tx)
        .await?;
        if D::rows_affected(&done) == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn bucket(&self, name: &str) -> MetaResult<Option<Bucket>> {
        let sql = "SELECT * FROM buckets WHERE name = $1";
        self.find(sql, name, bucket_row).await
    }

    async fn list_buckets(&self, owner: Option<&str>) -> MetaResult<Vec<Bucket>> {
        match owner {
            Some(owner) => {
                let sql = "SELECT * FROM buckets WHERE owner = $1 ORDER BY name";
                self.all_for(sql, owner, bucket_row).await
            }
            None => {
                self.all("SELECT * FROM buckets ORDER BY name", bucket_row)
                    .await
            }
        }
    }

    async fn set_bucket_access(
        &self,
        bucket: &str,
        field: AccessField,
        value: Option<&str>,
    ) -> MetaResult<bool> {
        let sql = match field {
            AccessField::Acl => "UPDATE buckets SET acl = $2 WHERE name = $1",
            AccessField::Policy => "UPDATE buckets SET policy = $2 WHERE name = $1",
            AccessField::Ownership => "UPDATE buckets SET ownership = $2 WHERE name = $1",
            AccessField::PublicAccessBlock => {
                "UPDATE buckets SET public_access_block = $2 WHERE name = $1"
            }
        };
        let mut tx = self.begin_access_change().await?;
        let done = sqlx::query(sql)
            .bind(bucket)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        if D::rows_affected(&done) == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_bucket(&self, name: &str, gc_due: OffsetDateTime) -> MetaResult<DeleteBucket> {
        D::delete_bucket(self, name, gc_due).await
    }

    async fn object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectMeta>> {
        let row = sqlx::query("SELECT * FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| object_row(&r)).transpose()
    }

    async fn set_object_acl(&self, bucket: &str, key: &str, acl: &str) -> MetaResult<bool> {
        let mut tx = D::begin_write(&self.pool).await?;
        // After the key's writers, so the ACL lands on the object the key holds when it commits.
        D::lock_key(&mut tx, bucket, key).await?;
        let sql = "UPDATE objects SET acl = $3 WHERE bucket = $1 AND key = $2";
        if Self::change(&mut tx, sql, &[bucket, key, acl]).await? == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn put_object(
        &self,
        object: &ObjectMeta,
        chunks: &[ChunkRef],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        D::put_object(self, object, chunks, condition, gc_due).await
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool> {
        D::delete_object(self, bucket, key, gc_due).await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ObjectMeta>> {
        D::list_objects(&self.pool, bucket, prefix, start, limit).await
    }

    async fn chunks(
        &self,
        owner: Uuid,
        range: Range<u64>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkRef>> {
        // The first chunk is the last one starting at or before range.start; the rest follow.
        // Both lookups walk the (owner, byte_offset) primary key.
        let sql = "SELECT byte_offset, size, chunk_id, digest FROM chunks WHERE owner = $1 \
             AND byte_offset < $3 AND byte_offset >= COALESCE((SELECT MAX(byte_offset) \
             FROM chunks WHERE owner = $1 AND byte_offset <= $2), 0) \
             ORDER BY byte_offset LIMIT $4";
        self.chunk_page(sql, owner, range, limit).await
    }

    async fn queued_chunks(
        &self,
        owner: Uuid,
        range: Range<u64>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkRef>> {
        // The same walk as `chunks`, over the queue's (owner, byte_offset) index.
        let sql = "SELECT byte_offset, size, chunk_id, digest FROM gc_queue WHERE owner = $1 \
             AND byte_offset < $3 AND byte_offset >= COALESCE((SELECT MAX(byte_offset) \
             FROM gc_queue WHERE owner = $1 AND byte_offset <= $2), 0) \
             ORDER BY byte_offset LIMIT $4";
        self.chunk_page(sql, owner, range, limit).await
    }

    async fn object_part(&self, object_id: Uuid, number: u32) -> MetaResult<Option<PartRange>> {
        let row = sqlx::query(
            "SELECT byte_offset, size FROM object_parts WHERE object_id = $1 AND number = $2",
        )
        .bind(object_id.to_string().as_str())
        .bind(i64::from(number))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| part_range_row(&r, number)).transpose()
    }

    async fn create_upload(&self, upload: &Upload) -> MetaResult<()> {
        let mut tx = D::begin_write(&self.pool).await?;
        if !Self::exists(&mut tx, D::HOLD_BUCKET, &upload.bucket).await? {
            return Err(MetaError::NoSuchBucket);
        }
        sqlx::query(
            "INSERT INTO uploads (id, bucket, key, initiated_ms, headers, checksum_algorithm, \
             checksum_type, owner, acl) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(upload.id.as_str())
        .bind(upload.bucket.as_str())
        .bind(upload.key.as_str())
        .bind(ms(upload.initiated))
        .bind(headers_json(&upload.headers).as_str())
        .bind(upload.checksum_algorithm.map(ChecksumAlgorithm::as_str))
        .bind(upload.checksum_type.as_str())
        .bind(upload.owner.as_str())
        .bind(upload.acl.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> MetaResult<Option<Upload>> {
        let sql = "SELECT * FROM uploads WHERE id = $1";
        self.find(sql, id, upload_row).await
    }

    async fn put_part(
        &self,
        upload_id: &str,
        part: &Part,
        chunks: &[ChunkRef],
        gc_due: OffsetDateTime,
    ) -> MetaResult<()> {
        let mut tx = D::begin_write(&self.pool).await?;
        if !Self::exists(&mut tx, D::LOCK_UPLOAD, upload_id).await? {
            return Err(MetaError::NoSuchUpload);
        }
        let old = sqlx::query(
            "DELETE FROM upload_parts WHERE upload_id = $1 AND number = $2 RETURNING owner",
        )
        .bind(upload_id)
        .bind(i64::from(part.number))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(old) = old {
            D::collect_owners(&mut tx, &[old.text("owner")?], gc_due).await?;
        }
        let owner = part.owner.to_string();
        let checksum = part.checksum.as_ref().map(Checksum::to_base64);
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, number, owner, size, etag, last_modified_ms, \
             checksum_algorithm, checksum_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(upload_id)
        .bind(i64::from(part.number))
        .bind(owner.as_str())
        .bind(part.size as i64)
        .bind(part.etag.as_str())
        .bind(ms(part.last_modified))
        .bind(part.checksum.as_ref().map(|c| c.algorithm.as_str()))
        .bind(checksum.as_deref())
        .execute(&mut *tx)
        .await?;
        Self::claim_chunks(&mut tx, chunks).await?;
        D::insert_chunks(&mut tx, &owner, chunks).await?;
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
        let mut tx = D::begin_write(&self.pool).await?;
        // Key first, then upload: the same order as put_object (key) and put_part (upload),
        // so two transactions never wait for each other in a cycle.
        D::lock_key(&mut tx, &object.bucket, &object.key).await?;
        if !Self::exists(&mut tx, D::LOCK_UPLOAD, upload_id).await? {
            return Err(MetaError::NoSuchUpload);
        }
        Self::check_condition(&mut tx, &object.bucket, &object.key, condition).await?;
        Self::remove_object(&mut tx, &object.bucket, &object.key, gc_due).await?;
        Self::insert_object(&mut tx, object).await?;
        // Completing is metadata only: the parts' chunks change owner, the data stays put.
        D::move_parts(&mut tx, upload_id, &object.id.to_string(), parts).await?;
        Self::drop_upload(&mut tx, upload_id, gc_due).await?;
        sqlx::query(
            "INSERT INTO completed_uploads (id, bucket, key, object_id, completed_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(upload_id)
        .bind(object.bucket.as_str())
        .bind(object.key.as_str())
        .bind(object.id.to_string().as_str())
        .bind(ms(object.last_modified))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn abort_upload(&self, upload_id: &str, gc_due: OffsetDateTime) -> MetaResult<bool> {
        D::abort_upload(self, upload_id, gc_due).await
    }

    async fn completed_upload(&self, upload_id: &str) -> MetaResult<Option<ObjectMeta>> {
        // The join finds nothing once the key holds another object (or none): the object id
        // is unique to one write.
        let sql = "SELECT o.* FROM completed_uploads c JOIN objects o ON o.id = c.object_id \
                   AND o.bucket = c.bucket AND o.key = c.key WHERE c.id = $1";
        self.find(sql, upload_id, object_row).await
    }

    async fn forget_completed_uploads(&self, before: OffsetDateTime) -> MetaResult<u64> {
        let done = sqlx::query("DELETE FROM completed_uploads WHERE completed_ms < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(&done))
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
        let rows = sqlx::query(
            "SELECT id FROM uploads WHERE initiated_ms < $1 ORDER BY initiated_ms LIMIT $2",
        )
        .bind(ms(before))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.text("id")).collect()
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
        D::gc_done(&self.pool, chunks).await
    }

    async fn known_chunks(&self, chunks: &[ChunkId]) -> MetaResult<Vec<ChunkId>> {
        D::known_chunks(&self.pool, chunks).await
    }

    async fn access_generation(&self) -> MetaResult<u64> {
        let row = sqlx::query("SELECT value FROM access_generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        super::rows::u64_col(&row, "value")
    }
}
