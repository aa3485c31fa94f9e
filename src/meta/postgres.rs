//! The cluster's metadata store: PostgreSQL, shared by any number of gateways. It keeps the
//! SQLite store's tables and semantics; what SQLite gets from its single write lock, this store
//! gets from row locks and a transaction-scoped advisory lock per object key: every transaction
//! that changes a key's object takes the key's lock first, so conditional writes are checked
//! race-free and concurrent overwrites queue every loser's chunks for GC. Only those locks and
//! the statements over arrays (one round trip where SQLite loops) are here; the rest is `sql.rs`.
//!
//! The store follows a highly available server: the URL may list several hosts the way libpq
//! does (`postgres://user@host1:5432,host2:5432/db?target_session_attrs=read-write`), every
//! connection must accept writes, and a watcher moves the pool to whichever host does when the
//! one in use dies or turns read-only (a primary demoted by its HA manager).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, Row, Transaction};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

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
/// How long a request waits for a connection (a new one while the server is down or
/// read-only) before it is answered 503: sqlx's default, 30 s, outlasts clients' timeouts.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the watcher checks that the host in use still accepts writes: the bound it adds
/// to a failover's time to writable.
const WATCH_PERIOD: Duration = Duration::from_secs(1);
/// How long one check of a host may take before the host counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// libpq's parameter choosing among several hosts; Cairn writes, so only `read-write` (and
/// `primary`, the same for a server without `default_transaction_read_only`) make sense.
const SESSION_ATTRS: &str = "target_session_attrs";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub type PostgresMeta = SqlMeta<Postgres>;

impl PostgresMeta {
    /// Connects to the host of a `postgres://` URL that accepts writes and migrates its
    /// database (sqlx serializes concurrent migrations from several gateways with an advisory
    /// lock).
    pub async fn open(url: &str) -> MetaResult<Self> {
        let hosts = hosts(url)?;
        let current = match hosts.len() {
            1 => 0,
            _ => first_writable(&hosts, None).await.unwrap_or(0),
        };
        let stale = Arc::new(Staleness::default());
        let fresh = stale.clone();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| Box::pin(require_writable(conn)))
            .before_acquire(move |_, meta| {
                let keep = fresh.is_fresh(&meta);
                Box::pin(async move { Ok(keep) })
            })
            .connect_with(hosts[current].clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let watcher = Watcher(tokio::spawn(watch(pool.clone(), hosts, current, stale)));
        Ok(SqlMeta {
            pool,
            writer: watcher,
        })
    }
}

/// The connect options of each host a URL lists, in its order. libpq's multi-host form has
/// one authority with comma-separated `host:port`s, which neither sqlx nor a URL parser reads,
/// so each host becomes a URL of its own with the same user, database and parameters.
fn hosts(url: &str) -> MetaResult<Vec<PgConnectOptions>> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| config_error("the metadata URL has no scheme".to_owned()))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let tail = without_session_attrs(tail)?;
    hosts
        .split(',')
        .map(|host| {
            Ok(PgConnectOptions::from_str(&format!(
                "{scheme}://{user}{host}{tail}"
            ))?)
        })
        .collect()
}

/// The path and query of a URL without `target_session_attrs`, which sqlx does not know:
/// every connection of this store must accept writes whatever it says, so a value asking for
/// anything else is refused rather than ignored.
fn without_session_attrs(tail: &str) -> MetaResult<String> {
    let Some((path, query)) = tail.split_once('?') else {
        return Ok(tail.to_owned());
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((SESSION_ATTRS, "read-write" | "primary")) => {}
            Some((SESSION_ATTRS, other)) => {
                return Err(config_error(format!(
                    "{SESSION_ATTRS}={other}: Cairn writes, so its metadata connections are \
                     always read-write"
                )));
            }
            _ => kept.push(pair),
        }
    }
    Ok(match kept.is_empty() {
        true => path.to_owned(),
        false => format!("{path}?{}", kept.join("&")),
    })
}

fn config_error(why: String) -> MetaError {
    MetaError::Database(sqlx::Error::Configuration(why.into()))
}

/// Whether a connection's transactions may write: not on a standby, nor on a server with
/// `default_transaction_read_only`. libpq's `target_session_attrs=read-write` asks the same.
async fn is_writable(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let read_only: String = sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
        .fetch_one(conn)
        .await?;
    Ok(read_only == "off")
}

/// The pool's check of every new connection: one to a read-only server is refused, and the
/// pool tries again until the acquire timeout (by then, with luck, on the watcher's new host).
async fn require_writable(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    match is_writable(conn).await? {
        true => Ok(()),
        false => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "the metadata server accepts only read-only transactions",
        ))),
    }
}

/// Connects to a host on its own, outside the pool, and answers whether it accepts writes;
/// `false` when it cannot be reached in time.
async fn probe(host: &PgConnectOptions) -> bool {
    let check = async {
        let mut conn = PgConnection::connect_with(host).await?;
        let writable = is_writable(&mut conn).await;
        let _ = conn.close().await;
        writable
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, check).await,
        Ok(Ok(true))
    )
}

/// The first host, in the URL's order, that accepts writes, skipping `except`.
async fn first_writable(hosts: &[PgConnectOptions], except: Option<usize>) -> Option<usize> {
    for (i, host) in hosts.iter().enumerate() {
        if Some(i) != except && probe(host).await {
            return Some(i);
        }
    }
    None
}

fn describe(host: &PgConnectOptions) -> String {
    format!("{}:{}", host.get_host(), host.get_port())
}

/// When the pool's server last failed its check: connections opened before then may be to a
/// server that has since turned read-only, so the pool drops them rather than hand them out.
#[derive(Default)]
struct Staleness(Mutex<Option<Instant>>);

impl Staleness {
    fn mark(&self) {
        *self.0.lock().expect("staleness lock") = Some(Instant::now());
    }

    fn is_fresh(&self, meta: &PoolConnectionMetadata) -> bool {
        let mark = *self.0.lock().expect("staleness lock");
        match (mark, Instant::now().checked_sub(meta.age)) {
            (Some(mark), Some(opened)) => opened > mark,
            _ => true,
        }
    }
}

/// Every `WATCH_PERIOD`, checks that the host the pool connects to accepts writes; when it does
/// not, the pool's connections become stale and the pool moves to the first host that does.
async fn watch(
    pool: PgPool,
    hosts: Vec<PgConnectOptions>,
    mut current: usize,
    stale: Arc<Staleness>,
) {
    let mut healthy = true;
    loop {
        tokio::time::sleep(WATCH_PERIOD).await;
        if probe(&hosts[current]).await {
            if !healthy {
                tracing::info!(host = %describe(&hosts[current]), "metadata server accepts writes again");
                healthy = true;
            }
            continue;
        }
        stale.mark();
        if healthy {
            tracing::warn!(host = %describe(&hosts[current]), "metadata server is down or read-only");
            healthy = false;
        }
        if let Some(next) = first_writable(&hosts, Some(current)).await {
            tracing::info!(
                from = %describe(&hosts[current]),
                to = %describe(&hosts[next]),
                "metadata connections move to the host that accepts writes"
            );
            pool.set_connect_options(hosts[next].clone());
            current = next;
            healthy = true;
        }
    }
}

/// The watcher's task, which ends with the store.
pub struct Watcher(JoinHandle<()>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Dialect for Postgres {
    /// Object writes are transactions of their own: the key's lock orders them; beside the pool
    /// runs only the watcher of its host.
    type Writer = Watcher;

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
        // The access generation's lock before the bucket's, in the order every change of
        // buckets takes them (a creation of the same name waits on the bucket's key).
        PostgresMeta::bump_generation(&mut tx).await?;
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
        if deleted == DeleteBucket::Deleted {
            tx.commit().await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_is_one_set_of_options_per_host() {
        let url = "postgres://cairn:s3cret@db1:5433,db2/cairn?sslmode=disable\
                   &target_session_attrs=read-write&application_name=gw";
        let parsed = hosts(url).unwrap();
        let seen: Vec<(String, u16)> = parsed
            .iter()
            .map(|h| (h.get_host().to_owned(), h.get_port()))
            .collect();
        assert_eq!(seen, [("db1".to_owned(), 5433), ("db2".to_owned(), 5432)]);
        for host in &parsed {
            assert_eq!(host.get_username(), "cairn");
            assert_eq!(host.get_database(), Some("cairn"));
        }
        let single = hosts("postgres://cairn@db1/cairn").unwrap();
        assert_eq!(single.len(), 1);
        assert!(hosts("postgres://db1,db2/cairn?target_session_attrs=any").is_err());
    }
}
