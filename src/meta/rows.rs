//! What the SQLite and PostgreSQL stores share apart from their SQL: how the model's values are
//! written into columns and read back out of rows, and the rules that decide a conditional write
//! and where a listing page ends. Both stores keep the same tables with the same column types, so
//! one decoder serves both; a value the model cannot hold (a negative size, a part number past
//! `u32`, an unknown checksum algorithm) reads as `MetaError::Corrupt` rather than being wrapped.

use std::str::FromStr;

use bytes::Bytes;
use sqlx::{ColumnIndex, Decode, Row, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AccessKey, Account, Bucket, BucketAccess, ListStart, MetaError, MetaResult, NodeInfo,
    NodeState, ObjectMeta, Part, PartRange, StoredHeaders, Upload, WriteCondition,
};
use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumType};
use crate::chunk::{ChunkDigest, ChunkId, ChunkRef};

/// The two column types the stores use, TEXT and BIGINT (SQLite's INTEGER), each maybe NULL.
pub trait Columns {
    fn text(&self, col: &str) -> MetaResult<String>;
    fn opt_text(&self, col: &str) -> MetaResult<Option<String>>;
    fn int(&self, col: &str) -> MetaResult<i64>;
    fn opt_int(&self, col: &str) -> MetaResult<Option<i64>>;
    /// A BLOB (BYTEA) column; one the query did not select reads as NULL, so that listings
    /// can leave out the inline bytes of small objects.
    fn opt_blob(&self, col: &str) -> MetaResult<Option<Vec<u8>>>;
}

// One impl for `SqliteRow` and `PgRow` alike: both decode TEXT as `String` and BIGINT as `i64`.
impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> MetaResult<String> {
        Ok(self.try_get(col)?)
    }

    fn opt_text(&self, col: &str) -> MetaResult<Option<String>> {
        Ok(self.try_get(col)?)
    }

    fn int(&self, col: &str) -> MetaResult<i64> {
        Ok(self.try_get(col)?)
    }

    fn opt_int(&self, col: &str) -> MetaResult<Option<i64>> {
        Ok(self.try_get(col)?)
    }

    fn opt_blob(&self, col: &str) -> MetaResult<Option<Vec<u8>>> {
        match self.try_get(col) {
            Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
            other => Ok(other?),
        }
    }
}

/// An `objects` row as SQLite packs it into JSON (`json_array` of [`OBJECT_COLUMNS`], many rows
/// aggregated into one array by `json_group_array`): a page of rows then crosses from SQLite's
/// thread to the runtime as one value, where sqlx would hand over each row on its own.
#[derive(serde::Deserialize)]
pub(super) struct ObjectJson {
    bucket: String,
    key: String,
    id: String,
    size: i64,
    etag: String,
    last_modified_ms: i64,
    headers: String,
    checksum_algorithm: Option<String>,
    checksum_value: Option<String>,
    checksum_type: Option<String>,
    parts_count: Option<i64>,
    owner: String,
    acl: Option<String>,
}

/// The columns of [`ObjectJson`], in its order.
pub(super) const OBJECT_COLUMNS: &str = "bucket, key, id, size, etag, last_modified_ms, headers, \
     checksum_algorithm, checksum_value, checksum_type, parts_count, owner, acl";

impl ObjectJson {
    pub(super) fn key(&self) -> &str {
        &self.key
    }
}

impl Columns for ObjectJson {
    fn text(&self, col: &str) -> MetaResult<String> {
        match col {
            "bucket" => Ok(self.bucket.clone()),
            "key" => Ok(self.key.clone()),
            "id" => Ok(self.id.clone()),
            "etag" => Ok(self.etag.clone()),
            "headers" => Ok(self.headers.clone()),
            "owner" => Ok(self.owner.clone()),
            _ => Err(no_column(col)),
        }
    }

    fn opt_text(&self, col: &str) -> MetaResult<Option<String>> {
        match col {
            "checksum_algorithm" => Ok(self.checksum_algorithm.clone()),
            "checksum_value" => Ok(self.checksum_value.clone()),
            "checksum_type" => Ok(self.checksum_type.clone()),
            "acl" => Ok(self.acl.clone()),
            _ => self.text(col).map(Some),
        }
    }

    fn int(&self, col: &str) -> MetaResult<i64> {
        match col {
            "size" => Ok(self.size),
            "last_modified_ms" => Ok(self.last_modified_ms),
            _ => Err(no_column(col)),
        }
    }

    fn opt_int(&self, col: &str) -> MetaResult<Option<i64>> {
        match col {
            "parts_count" => Ok(self.parts_count),
            _ => self.int(col).map(Some),
        }
    }

    /// Listings leave out the inline bytes of small objects.
    fn opt_blob(&self, _col: &str) -> MetaResult<Option<Vec<u8>>> {
        Ok(None)
    }
}

fn no_column(col: &str) -> MetaError {
    MetaError::Corrupt(format!("no column {col} in an objects row"))
}

/// Timestamps are stored as milliseconds since the Unix epoch.
pub(super) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn from_ms(v: i64) -> MetaResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(v as i128 * 1_000_000)
        .map_err(|e| MetaError::Corrupt(format!("timestamp {v}: {e}")))
}

/// A row limit: PostgreSQL refuses a negative LIMIT (and SQLite reads one as none), so a huge
/// `usize` saturates instead of wrapping.
pub(super) fn row_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn headers_json(h: &StoredHeaders) -> String {
    // Serializing plain strings into JSON cannot fail.
    serde_json::to_string(h).unwrap_or_else(|_| "{}".to_owned())
}

/// Parses a UUID read from column `col`.
pub(super) fn parse_uuid(col: &str, s: &str) -> MetaResult<Uuid> {
    Uuid::try_parse(s).map_err(|e| MetaError::Corrupt(format!("{col} {s}: {e}")))
}

pub(super) fn uuid_col(row: &impl Columns, col: &str) -> MetaResult<Uuid> {
    parse_uuid(col, &row.text(col)?)
}

pub(super) fn parse_chunk(s: &str) -> MetaResult<ChunkId> {
    ChunkId::from_str(s).map_err(|e| MetaError::Corrupt(format!("chunk id {s}: {e}")))
}

pub(super) fn chunk_col(row: &impl Columns, col: &str) -> MetaResult<ChunkId> {
    let s = row.text(col)?;
    ChunkId::from_str(&s).map_err(|e| MetaError::Corrupt(format!("{col} {s}: {e}")))
}

pub(super) fn u64_col(row: &impl Columns, col: &str) -> MetaResult<u64> {
    let v = row.int(col)?;
    u64::try_from(v).map_err(|_| MetaError::Corrupt(format!("{col} {v} is negative")))
}

pub(super) fn u32_col(row: &impl Columns, col: &str) -> MetaResult<u32> {
    to_u32(col, row.int(col)?)
}

fn to_u32(col: &str, v: i64) -> MetaResult<u32> {
    u32::try_from(v).map_err(|_| MetaError::Corrupt(format!("{col} {v} is out of range")))
}

fn headers_col(row: &impl Columns) -> MetaResult<StoredHeaders> {
    serde_json::from_str(&row.text("headers")?)
        .map_err(|e| MetaError::Corrupt(format!("headers: {e}")))
}

fn algorithm_col(row: &impl Columns) -> MetaResult<Option<ChecksumAlgorithm>> {
    row.opt_text("checksum_algorithm")?
        .map(|s| {
            ChecksumAlgorithm::parse(&s)
                .ok_or_else(|| MetaError::Corrupt(format!("checksum algorithm {s}")))
        })
        .transpose()
}

/// A NULL type is FULL_OBJECT, the only type a single-part object has.
fn checksum_type_col(row: &impl Columns) -> MetaResult<ChecksumType> {
    match row.opt_text("checksum_type")? {
        None => Ok(ChecksumType::FullObject),
        Some(s) => {
            ChecksumType::parse(&s).ok_or_else(|| MetaError::Corrupt(format!("checksum type {s}")))
        }
    }
}

fn checksum_cols(row: &impl Columns) -> MetaResult<Option<Checksum>> {
    let value = row.opt_text("checksum_value")?;
    match (algorithm_col(row)?, value) {
        (Some(alg), Some(v)) => Checksum::from_base64(alg, &v)
            .map(Some)
            .ok_or_else(|| MetaError::Corrupt(format!("checksum value {v}"))),
        _ => Ok(None),
    }
}

pub(super) fn object_row(row: &impl Columns) -> MetaResult<ObjectMeta> {
    Ok(ObjectMeta {
        id: uuid_col(row, "id")?,
        bucket: row.text("bucket")?,
        key: row.text("key")?,
        size: u64_col(row, "size")?,
        etag: row.text("etag")?,
        last_modified: from_ms(row.int("last_modified_ms")?)?,
        headers: headers_col(row)?,
        checksum: checksum_cols(row)?,
        checksum_type: checksum_type_col(row)?,
        parts_count: row
            .opt_int("parts_count")?
            .map(|p| to_u32("parts_count", p))
            .transpose()?,
        inline: row.opt_blob("inline_data")?.map(Bytes::from),
        owner: row.text("owner")?,
        acl: row.opt_text("acl")?,
    })
}

pub(super) fn upload_row(row: &impl Columns) -> MetaResult<Upload> {
    Ok(Upload {
        id: row.text("id")?,
        bucket: row.text("bucket")?,
        key: row.text("key")?,
        initiated: from_ms(row.int("initiated_ms")?)?,
        headers: headers_col(row)?,
        checksum_algorithm: algorithm_col(row)?,
        checksum_type: checksum_type_col(row)?,
        owner: row.text("owner")?,
        acl: row.opt_text("acl")?,
    })
}

pub(super) fn part_row(row: &impl Columns) -> MetaResult<Part> {
    Ok(Part {
        number: u32_col(row, "number")?,
        owner: uuid_col(row, "owner")?,
        size: u64_col(row, "size")?,
        etag: row.text("etag")?,
        last_modified: from_ms(row.int("last_modified_ms")?)?,
        checksum: checksum_cols(row)?,
    })
}

pub(super) fn key_row(row: &impl Columns) -> MetaResult<AccessKey> {
    Ok(AccessKey {
        id: row.text("id")?,
        secret: row.text("secret")?,
        name: row.text("name")?,
        created: from_ms(row.int("created_ms")?)?,
        account: row.text("account")?,
        policy: row.opt_text("policy")?,
    })
}

pub(super) fn bucket_row(row: &impl Columns) -> MetaResult<Bucket> {
    Ok(Bucket {
        name: row.text("name")?,
        created: from_ms(row.int("created_ms")?)?,
        owner: row.text("owner")?,
        access: BucketAccess {
            acl: row.opt_text("acl")?,
            policy: row.opt_text("policy")?,
            ownership: row.opt_text("ownership")?,
            public_access_block: row.opt_text("public_access_block")?,
        },
    })
}

pub(super) fn account_row(row: &impl Columns) -> MetaResult<Account> {
    Ok(Account {
        id: row.text("id")?,
        name: row.text("name")?,
        display_name: row.text("display_name")?,
        created: from_ms(row.int("created_ms")?)?,
    })
}

/// A stored policy's `name` and `document`.
pub(super) fn policy_row(row: &impl Columns) -> MetaResult<(String, String)> {
    Ok((row.text("name")?, row.text("document")?))
}

pub(super) fn node_row(row: &impl Columns) -> MetaResult<NodeInfo> {
    let state = row.text("state")?;
    // Capacity and free space are only what the node last reported: a negative figure reads as
    // zero rather than making the whole node list unreadable.
    let opt_u64 =
        |col: &str| -> MetaResult<Option<u64>> { Ok(row.opt_int(col)?.map(|v| v.max(0) as u64)) };
    Ok(NodeInfo {
        id: uuid_col(row, "id")?,
        address: row.text("address")?,
        zone: row.opt_text("zone")?,
        state: NodeState::parse(&state)
            .ok_or_else(|| MetaError::Corrupt(format!("node state {state}")))?,
        capacity: opt_u64("capacity")?,
        used: u64_col(row, "used")?,
        free: opt_u64("free")?,
        last_seen: row.opt_int("last_seen_ms")?.map(from_ms).transpose()?,
        added: from_ms(row.int("added_ms")?)?,
    })
}

/// A row of the chunk map: `byte_offset`, `size`, `chunk_id` and `digest`.
pub(super) fn chunk_ref_row(row: &impl Columns) -> MetaResult<ChunkRef> {
    Ok(ChunkRef {
        offset: u64_col(row, "byte_offset")?,
        size: u64_col(row, "size")?,
        chunk: chunk_col(row, "chunk_id")?,
        digest: digest_col(row)?,
    })
}

/// A chunk's `digest`, NULL for chunks written before digests were recorded.
pub(super) fn digest_col(row: &impl Columns) -> MetaResult<Option<ChunkDigest>> {
    let Some(raw) = row.opt_blob("digest")? else {
        return Ok(None);
    };
    ChunkDigest::from_slice(&raw)
        .map(Some)
        .ok_or_else(|| MetaError::Corrupt(format!("a chunk digest of {} bytes", raw.len())))
}

/// An `object_parts` row of part `number`.
pub(super) fn part_range_row(row: &impl Columns, number: u32) -> MetaResult<PartRange> {
    Ok(PartRange {
        number,
        offset: u64_col(row, "byte_offset")?,
        size: u64_col(row, "size")?,
    })
}

/// "bucket/key" from a row with those two columns.
pub(super) fn object_path_row(row: &impl Columns) -> MetaResult<String> {
    Ok(format!("{}/{}", row.text("bucket")?, row.text("key")?))
}

/// Decides a conditional write from the ETag of the key's current object (`None`: no object).
/// The caller reads that ETag inside the write transaction, under the lock that keeps other
/// writers of the key out until it commits.
pub(super) fn check_etag(condition: &WriteCondition, current: Option<&str>) -> MetaResult<()> {
    match (condition, current) {
        (WriteCondition::IfAbsent, Some(_)) => Err(MetaError::PreconditionFailed),
        (WriteCondition::IfMatch(_), None) => Err(MetaError::NoSuchKey),
        (WriteCondition::IfMatch(want), Some(have)) if want != "*" && want != have => {
            Err(MetaError::PreconditionFailed)
        }
        (WriteCondition::IfNoneMatch(unwanted), Some(have)) if unwanted == have => {
            Err(MetaError::PreconditionFailed)
        }
        _ => Ok(()),
    }
}

/// Where a listing's query starts, and whether a key equal to it belongs in the page: the index
/// seeks to max(start, prefix); rows past the prefix end the page (see [`take_prefixed`]).
pub(super) fn list_seek<'a>(prefix: &'a str, start: &ListStart<'a>) -> (&'a str, bool) {
    if start.key < prefix {
        (prefix, true)
    } else {
        (start.key, start.inclusive)
    }
}

/// The decoded rows up to the first whose key lacks `prefix`. A listing query returns keys from
/// the prefix on, in order, so the first key without it ends the page: the caller stops there
/// and gets none of those rows.
pub(super) fn take_prefixed<R, T>(
    rows: &[R],
    prefix: &str,
    decode: impl Fn(&R) -> MetaResult<T>,
    key: impl Fn(&T) -> &str,
) -> MetaResult<Vec<T>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let item = decode(row)?;
        if !key(&item).starts_with(prefix) {
            break;
        }
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use sqlx::AssertSqlSafe;
    use sqlx::sqlite::{SqlitePool, SqliteRow};

    use super::*;

    /// One row of `SELECT <columns>` from an in-memory SQLite database: real decoding, no tables.
    /// The columns are the tests' own literals.
    async fn row(columns: &str) -> SqliteRow {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query(AssertSqlSafe(format!("SELECT {columns}")))
            .fetch_one(&pool)
            .await
            .unwrap()
    }

    fn corrupt<T: std::fmt::Debug>(r: MetaResult<T>) -> String {
        match r {
            Err(MetaError::Corrupt(message)) => message,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    const OBJECT_ID: &str = "6f1c7c52-3f1e-4d0e-9a53-1d8f3f1b2a10";

    fn object_columns(parts_count: &str, checksum: &str) -> String {
        format!(
            "'{OBJECT_ID}' AS id, 'b' AS bucket, 'k' AS key, 12 AS size, 'e' AS etag, \
             1700000000123 AS last_modified_ms, '{{\"content_type\":\"text/plain\"}}' AS headers, \
             {checksum}, {parts_count} AS parts_count, 'o1' AS owner, NULL AS acl"
        )
    }

    #[test]
    fn timestamps_round_trip_in_milliseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_000_000).unwrap();
        assert_eq!(ms(t), 1_700_000_000_123);
        assert_eq!(from_ms(ms(t)).unwrap(), t);
        assert_eq!(ms(from_ms(-1).unwrap()), -1);
        assert!(corrupt(from_ms(i64::MAX)).starts_with("timestamp"));
    }

    #[test]
    fn row_limit_saturates() {
        assert_eq!(row_limit(0), 0);
        assert_eq!(row_limit(1000), 1000);
        assert_eq!(row_limit(usize::MAX), i64::MAX);
    }

    #[tokio::test]
    async fn numbers_out_of_range_are_corrupt() {
        let r = row("-1 AS size, 4294967296 AS number, 4294967295 AS top, 7 AS n").await;
        assert_eq!(corrupt(u64_col(&r, "size")), "size -1 is negative");
        assert_eq!(
            corrupt(u32_col(&r, "number")),
            "number 4294967296 is out of range"
        );
        assert_eq!(u32_col(&r, "top").unwrap(), u32::MAX);
        assert_eq!(u64_col(&r, "n").unwrap(), 7);
        assert!(matches!(
            u64_col(&r, "missing"),
            Err(MetaError::Database(_))
        ));
    }

    #[tokio::test]
    async fn ids_must_parse() {
        let r = row("'not-a-uuid' AS id, '00112233445566778899aabbccddeeff' AS chunk_id").await;
        assert!(corrupt(uuid_col(&r, "id")).starts_with("id not-a-uuid: "));
        assert_eq!(
            chunk_col(&r, "chunk_id").unwrap().to_string(),
            "00112233445566778899aabbccddeeff"
        );
        assert!(parse_uuid("node_id", OBJECT_ID).is_ok());
    }

    #[tokio::test]
    async fn object_row_decodes_every_column() {
        let columns = object_columns(
            "3",
            "'crc32' AS checksum_algorithm, 'DUoRhQ==' AS checksum_value, \
             'COMPOSITE' AS checksum_type",
        );
        let o = object_row(&row(&columns).await).unwrap();
        assert_eq!(o.id.to_string(), OBJECT_ID);
        assert_eq!((o.bucket.as_str(), o.key.as_str()), ("b", "k"));
        assert_eq!((o.size, o.etag.as_str()), (12, "e"));
        assert_eq!(ms(o.last_modified), 1_700_000_000_123);
        assert_eq!(o.headers.content_type.as_deref(), Some("text/plain"));
        let checksum = o.checksum.unwrap();
        assert_eq!(checksum.algorithm, ChecksumAlgorithm::Crc32);
        assert_eq!(checksum.value, [0x0D, 0x4A, 0x11, 0x85]);
        assert_eq!(o.checksum_type, ChecksumType::Composite);
        assert_eq!(o.parts_count, Some(3));
    }

    #[tokio::test]
    async fn object_row_defaults_and_bad_values() {
        let no_checksum =
            "NULL AS checksum_algorithm, NULL AS checksum_value, NULL AS checksum_type";
        let o = object_row(&row(&object_columns("NULL", no_checksum)).await).unwrap();
        assert_eq!(o.checksum, None);
        assert_eq!(o.checksum_type, ChecksumType::FullObject);
        assert_eq!(o.parts_count, None);

        let bad_algorithm =
            "'md4' AS checksum_algorithm, 'AAAA' AS checksum_value, NULL AS checksum_type";
        let bad_value =
            "'CRC32' AS checksum_algorithm, 'AAAA' AS checksum_value, NULL AS checksum_type";
        let bad_type =
            "NULL AS checksum_algorithm, NULL AS checksum_value, 'PARTIAL' AS checksum_type";
        for (parts_count, checksum, message) in [
            (
                "4294967296",
                no_checksum,
                "parts_count 4294967296 is out of range",
            ),
            ("-1", no_checksum, "parts_count -1 is out of range"),
            ("NULL", bad_algorithm, "checksum algorithm md4"),
            ("NULL", bad_value, "checksum value AAAA"),
            ("NULL", bad_type, "checksum type PARTIAL"),
        ] {
            let r = row(&object_columns(parts_count, checksum)).await;
            assert_eq!(corrupt(object_row(&r)), message);
        }
    }

    #[tokio::test]
    async fn part_numbers_are_checked() {
        let part = |number: &str| {
            format!(
                "{number} AS number, '{OBJECT_ID}' AS owner, 5 AS size, 'e' AS etag, \
                 0 AS last_modified_ms, NULL AS checksum_algorithm, NULL AS checksum_value"
            )
        };
        let p = part_row(&row(&part("10000")).await).unwrap();
        assert_eq!((p.number, p.size, p.checksum), (10000, 5, None));
        let bad = row(&part("-1")).await;
        assert_eq!(corrupt(part_row(&bad)), "number -1 is out of range");
    }

    #[tokio::test]
    async fn node_figures() {
        let node = |capacity: &str, used: &str, state: &str| {
            format!(
                "'{OBJECT_ID}' AS id, 'http://10.0.0.5:7000' AS address, NULL AS zone, \
                 '{state}' AS state, {capacity} AS capacity, {used} AS used, NULL AS free, \
                 NULL AS last_seen_ms, 5 AS added_ms"
            )
        };
        let n = node_row(&row(&node("-5", "3", "draining")).await).unwrap();
        assert_eq!(n.capacity, Some(0));
        assert_eq!((n.used, n.free, n.zone, n.last_seen), (3, None, None, None));
        assert_eq!(n.state, NodeState::Draining);
        assert_eq!(ms(n.added), 5);
        let bad = row(&node("1", "-3", "up")).await;
        assert_eq!(corrupt(node_row(&bad)), "used -3 is negative");
        let bad = row(&node("1", "3", "lost")).await;
        assert_eq!(corrupt(node_row(&bad)), "node state lost");
    }

    #[tokio::test]
    async fn small_rows() {
        let r = row(
            "'k1' AS id, 's' AS secret, 'admin' AS name, 9 AS created_ms, 'b' AS bucket, \
             'acc' AS account, 'readonly' AS policy, 'a/b' AS key, 4 AS byte_offset, 6 AS size, '00112233445566778899aabbccddeeff' AS chunk_id",
        )
        .await;
        let k = key_row(&r).unwrap();
        assert_eq!(
            (k.id.as_str(), k.secret.as_str(), k.name.as_str()),
            ("k1", "s", "admin")
        );
        assert_eq!(ms(k.created), 9);
        assert_eq!(
            (k.account.as_str(), k.policy.as_deref()),
            ("acc", Some("readonly"))
        );
        assert_eq!(object_path_row(&r).unwrap(), "b/a/b");
        let c = chunk_ref_row(&r).unwrap();
        assert_eq!((c.offset, c.size, c.end()), (4, 6, 10));
        assert_eq!(
            part_range_row(&r, 2).unwrap(),
            PartRange {
                number: 2,
                offset: 4,
                size: 6
            }
        );
        let b = bucket_row(
            &row(
                "'photos' AS name, 9 AS created_ms, 'acc' AS owner, NULL AS acl, '{}' AS policy, \
                 'ObjectWriter' AS ownership, NULL AS public_access_block",
            )
            .await,
        )
        .unwrap();
        assert_eq!((b.name.as_str(), ms(b.created)), ("photos", 9));
        assert_eq!(b.owner, "acc");
        let access = BucketAccess {
            policy: Some("{}".to_owned()),
            ownership: Some("ObjectWriter".to_owned()),
            ..BucketAccess::default()
        };
        assert_eq!(b.access, access);
    }

    #[test]
    fn conditions() {
        use WriteCondition::{Always, IfAbsent, IfMatch};
        let if_match = |etag: &str| IfMatch(etag.to_owned());
        assert!(check_etag(&Always, None).is_ok());
        assert!(check_etag(&Always, Some("x")).is_ok());
        assert!(check_etag(&IfAbsent, None).is_ok());
        assert!(matches!(
            check_etag(&IfAbsent, Some("x")),
            Err(MetaError::PreconditionFailed)
        ));
        assert!(check_etag(&if_match("x"), Some("x")).is_ok());
        assert!(check_etag(&if_match("*"), Some("x")).is_ok());
        assert!(matches!(
            check_etag(&if_match("y"), Some("x")),
            Err(MetaError::PreconditionFailed)
        ));
        assert!(matches!(
            check_etag(&if_match("*"), None),
            Err(MetaError::NoSuchKey)
        ));
        assert!(matches!(
            check_etag(&if_match("x"), None),
            Err(MetaError::NoSuchKey)
        ));
        let if_none_match = |etag: &str| WriteCondition::IfNoneMatch(etag.to_owned());
        assert!(matches!(
            check_etag(&if_none_match("x"), Some("x")),
            Err(MetaError::PreconditionFailed)
        ));
        assert!(check_etag(&if_none_match("y"), Some("x")).is_ok());
        assert!(check_etag(&if_none_match("x"), None).is_ok());
    }

    #[test]
    fn listing_seeks_to_the_later_of_start_and_prefix() {
        let start = |key, inclusive| ListStart { key, inclusive };
        assert_eq!(list_seek("p/", &start("", false)), ("p/", true));
        assert_eq!(list_seek("p/", &start("a", false)), ("p/", true));
        assert_eq!(list_seek("p/", &start("p/", false)), ("p/", false));
        assert_eq!(list_seek("p/", &start("p/x", true)), ("p/x", true));
        assert_eq!(list_seek("", &start("k", false)), ("k", false));
    }

    #[test]
    fn listing_stops_at_the_first_key_past_the_prefix() {
        let keys = ["p/a", "p/b", "q", "p/c"];
        let decode = |k: &&str| -> MetaResult<String> { Ok((*k).to_owned()) };
        let page = take_prefixed(&keys, "p/", decode, |k| k.as_str()).unwrap();
        assert_eq!(page, ["p/a", "p/b"]);
        assert_eq!(
            take_prefixed(&keys, "", decode, |k| k.as_str())
                .unwrap()
                .len(),
            4
        );
        let failing = |_: &&str| -> MetaResult<String> { Err(MetaError::NoSuchKey) };
        assert!(take_prefixed(&keys, "p/", failing, |k| k.as_str()).is_err());
    }
}
