//! The metadata store: accounts, access keys and stored policies, buckets, objects, multipart
//! uploads and the chunk map, behind one trait so that the embedded SQLite store and a cluster's PostgreSQL store are
//! interchangeable. Every change that makes data visible is one transaction, and chunks that stop
//! being referenced go to a garbage-collection queue in that same transaction.

mod cluster;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::checksum::{Checksum, ChecksumType};
use crate::chunk::{ChunkDigest, ChunkId, ChunkRef};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("part {0} changed or vanished while the upload was being completed")]
    PartChanged(u32),
    #[error("the write's precondition does not hold")]
    PreconditionFailed,
    #[error("metadata commit failed: {0}")]
    CommitFailed(String),
    /// A chunk of the write was taken for abandoned (its write outlived the coordinator's
    /// `--abandon-after`) and collected, or is queued for collection: the write must be retried.
    #[error("chunk {0} of this write was collected as abandoned")]
    ChunkCollected(ChunkId),
    #[error("no such key")]
    NoSuchKey,
    /// A key was created for an account that does not exist (or was deleted meanwhile).
    #[error("no such account")]
    NoSuchAccount,
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("metadata row is invalid: {0}")]
    Corrupt(String),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// PostgreSQL SQLSTATEs of a server that is going away, not yet up, full of connections or no
/// longer writable (`read_only_sql_transaction`, a primary demoted under its connections), and
/// the class of every connection failure: a retry may find the server, or its successor, back.
const UNAVAILABLE_STATES: [&str; 5] = ["57P01", "57P02", "57P03", "53300", "25006"];
const CONNECTION_EXCEPTION_CLASS: &str = "08";

impl MetaError {
    /// Whether the store could not be reached or could not write for now (a lost connection, a
    /// server restarting or failing over, no free connection in time): a retry may succeed, so
    /// clients are told 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        let MetaError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                UNAVAILABLE_STATES.contains(&code.as_ref())
                    || code.starts_with(CONNECTION_EXCEPTION_CLASS)
            }),
            _ => false,
        }
    }
}

/// The setting holding the replica count cluster gateways write with (for fsck); a store that
/// has it keeps a replica row for every chunk, which the commit of a write claims.
pub const REPLICAS_SETTING: &str = "replicas";

/// The name of the account that has every right on everything: the migration to accounts gives
/// it every key, bucket, object and upload that existed, and the bootstrap key belongs to it.
pub const ADMIN_ACCOUNT: &str = "admin";

/// An account: what owns buckets, objects and uploads, and what keys act for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The canonical id, 64 lowercase hex digits (S3's canonical user id), random.
    pub id: String,
    /// Unique; what `cairn admin` and bucket policies name it by.
    pub name: String,
    pub display_name: String,
    pub created: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub name: String,
    pub created: OffsetDateTime,
    /// The canonical id of the account the key acts for.
    pub account: String,
    /// The name of a policy limiting the key (canned or stored), resolved when a request is
    /// authorized, so that editing a stored policy changes the keys using it.
    pub policy: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Bucket {
    pub name: String,
    pub created: OffsetDateTime,
    /// The canonical id of the owning account.
    pub owner: String,
    pub access: BucketAccess,
}

/// A bucket's access settings, each `None` when not configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketAccess {
    /// JSON of an `iam::acl::Acl`; `None` is private to the owner.
    pub acl: Option<String>,
    /// The bucket policy, exactly as the client sent it.
    pub policy: Option<String>,
    /// `BucketOwnerEnforced`, `BucketOwnerPreferred` or `ObjectWriter`.
    pub ownership: Option<String>,
    /// JSON `{"BlockPublicAcls":bool,...}`.
    pub public_access_block: Option<String>,
}

/// One of the fields of [`BucketAccess`], for [`MetaStore::set_bucket_access`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessField {
    Acl,
    Policy,
    Ownership,
    PublicAccessBlock,
}

impl AccessField {
    /// The `buckets` column holding the field.
    pub fn column(self) -> &'static str {
        match self {
            AccessField::Acl => "acl",
            AccessField::Policy => "policy",
            AccessField::Ownership => "ownership",
            AccessField::PublicAccessBlock => "public_access_block",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteAccount {
    Deleted,
    NoSuchAccount,
    /// Refused: the account owns buckets (delete them first, or force).
    OwnsBuckets,
}

/// The HTTP headers an object keeps and returns on GET and HEAD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHeaders {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_control: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires: Option<String>,
    /// `x-amz-meta-*` pairs, names lowercased and without the prefix, values as the exact bytes
    /// received: S3 returns them unchanged, and botocore sends non-ASCII text as latin-1, which
    /// is not UTF-8.
    #[serde(skip_serializing_if = "Vec::is_empty", default, with = "user_values")]
    pub user: Vec<(String, Vec<u8>)>,
    /// The S3 storage class the client chose (`x-amz-storage-class`); `None` is STANDARD. Cairn
    /// stores every class alike and only records and reports it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub storage_class: Option<String>,
}

impl StoredHeaders {
    /// The storage class as S3 names it in listings.
    pub fn storage_class(&self) -> &str {
        self.storage_class.as_deref().unwrap_or("STANDARD")
    }
}

/// User metadata in the stored headers' JSON: a value that is UTF-8 is kept as a JSON string
/// (as every value was before values became bytes), any other as an array of its bytes.
mod user_values {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(pairs: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let values: Vec<(&str, Value)> = pairs
            .iter()
            .map(|(name, bytes)| {
                let value = match std::str::from_utf8(bytes) {
                    Ok(text) => Value::Text(text.to_owned()),
                    Err(_) => Value::Bytes(bytes.clone()),
                };
                (name.as_str(), value)
            })
            .collect();
        values.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        let values = Vec::<(String, Value)>::deserialize(d)?;
        Ok(values
            .into_iter()
            .map(|(name, value)| match value {
                Value::Text(text) => (name, text.into_bytes()),
                Value::Bytes(bytes) => (name, bytes),
            })
            .collect())
    }
}

/// One visible object.
#[derive(Clone, Debug)]
pub struct ObjectMeta {
    /// Identifies this version of the key; it owns the object's chunks.
    pub id: Uuid,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Without quotes: an MD5 in hex, or `md5-of-part-md5s-N` for a multipart object.
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub headers: StoredHeaders,
    pub checksum: Option<Checksum>,
    /// Composite checksums are sent with a `-N` suffix (N = parts_count).
    pub checksum_type: ChecksumType,
    pub parts_count: Option<u32>,
    /// The bytes of a small object, kept in its row instead of in chunks (it then has none).
    /// Loaded by the object lookups, not by listings, where it is always `None`.
    pub inline: Option<Bytes>,
    /// The canonical id of the account that wrote the object.
    pub owner: String,
    /// JSON of an `iam::acl::Acl`; `None` is private to the owner.
    pub acl: Option<String>,
}

/// Where a part of a completed multipart object lies within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartRange {
    pub number: u32,
    pub offset: u64,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub initiated: OffsetDateTime,
    pub headers: StoredHeaders,
    pub checksum_algorithm: Option<crate::checksum::ChecksumAlgorithm>,
    pub checksum_type: ChecksumType,
    /// The canonical id of the account that initiated the upload.
    pub owner: String,
    /// The ACL the completed object gets (JSON of an `iam::acl::Acl`); `None` is private.
    pub acl: Option<String>,
}

/// A stored part of a multipart upload.
#[derive(Clone, Debug)]
pub struct Part {
    pub number: u32,
    /// Owns the part's chunks while the upload is in progress.
    pub owner: Uuid,
    pub size: u64,
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub checksum: Option<Checksum>,
}

/// A conditional write's precondition on the key's current object, checked inside the commit
/// transaction so that concurrent writers cannot both pass it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    Always,
    /// `If-None-Match: *`: the key must not exist.
    IfAbsent,
    /// `If-Match: ETAG` (without quotes, or `*`): the key must exist with that ETag.
    IfMatch(String),
    /// `If-None-Match: ETAG` (without quotes): the key must not have that ETag (absent is
    /// fine). S3 takes only `*`; this is Ceph's reading, which clients that cache an ETag use.
    IfNoneMatch(String),
}

/// Keys in one page of a listing, in UTF-8 byte order.
#[derive(Clone, Debug)]
pub struct ListStart<'a> {
    pub key: &'a str,
    /// Whether a key equal to `key` itself belongs in the page.
    pub inclusive: bool,
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn setting(&self, name: &str) -> MetaResult<Option<String>>;
    async fn set_setting(&self, name: &str, value: &str) -> MetaResult<()>;

    /// Returns false when the name or the id is taken.
    async fn create_account(&self, account: &Account) -> MetaResult<bool>;
    async fn account(&self, id: &str) -> MetaResult<Option<Account>>;
    async fn account_by_name(&self, name: &str) -> MetaResult<Option<Account>>;
    /// Every account, by name.
    async fn list_accounts(&self) -> MetaResult<Vec<Account>>;
    /// Deletes the account, its keys and its policy attachments; refused while it owns buckets
    /// unless `force`, which gives its buckets to the admin account. Objects and uploads keep
    /// the id of the account that wrote them. Callers keep the admin account itself.
    async fn delete_account(&self, id: &str, force: bool) -> MetaResult<DeleteAccount>;

    /// Stores a named identity policy, replacing one of the same name.
    async fn put_policy(&self, name: &str, document: &str) -> MetaResult<()>;
    async fn policy(&self, name: &str) -> MetaResult<Option<String>>;
    /// Every stored policy as (name, document), by name.
    async fn list_policies(&self) -> MetaResult<Vec<(String, String)>>;
    /// Returns whether the policy existed; it is detached from every account.
    async fn delete_policy(&self, name: &str) -> MetaResult<bool>;
    /// Returns false when there is no such policy (or no such account). Attaching twice is one
    /// attachment.
    async fn attach_policy(&self, account: &str, policy: &str) -> MetaResult<bool>;
    /// Returns whether the policy was attached.
    async fn detach_policy(&self, account: &str, policy: &str) -> MetaResult<bool>;
    /// The policies attached to an account as (name, document), by name.
    async fn account_policies(&self, account: &str) -> MetaResult<Vec<(String, String)>>;

    /// Fails with `NoSuchAccount` when `key.account` names no account.
    async fn create_key(&self, key: &AccessKey) -> MetaResult<()>;
    async fn key(&self, id: &str) -> MetaResult<Option<AccessKey>>;
    async fn list_keys(&self) -> MetaResult<Vec<AccessKey>>;
    /// Returns whether the key existed.
    async fn delete_key(&self, id: &str) -> MetaResult<bool>;

    /// Returns false when the bucket already existed.
    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<bool>;
    async fn bucket(&self, name: &str) -> MetaResult<Option<Bucket>>;
    /// The buckets `owner` owns, or every bucket for `None`, by name.
    async fn list_buckets(&self, owner: Option<&str>) -> MetaResult<Vec<Bucket>>;
    /// Sets (or with `None` clears) one access field of a bucket; false when there is no such
    /// bucket.
    async fn set_bucket_access(
        &self,
        bucket: &str,
        field: AccessField,
        value: Option<&str>,
    ) -> MetaResult<bool>;
    /// Deletes an empty bucket. Multipart uploads still in progress do not keep it: they are
    /// aborted with it, their parts' chunks queued for GC due at `gc_due` (as S3 does).
    async fn delete_bucket(&self, name: &str, gc_due: OffsetDateTime) -> MetaResult<DeleteBucket>;

    async fn object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectMeta>>;
    /// Replaces the ACL of a key's current object; false when the key has none.
    async fn set_object_acl(&self, bucket: &str, key: &str, acl: &str) -> MetaResult<bool>;
    /// Makes `object` the visible version of its key, with `chunks` (offsets within the object);
    /// the replaced version's chunks go to the GC queue, due at `gc_due`.
    async fn put_object(
        &self,
        object: &ObjectMeta,
        chunks: &[ChunkRef],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> MetaResult<()>;
    /// Returns whether an object was deleted.
    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        gc_due: OffsetDateTime,
    ) -> MetaResult<bool>;
    /// Up to `limit` objects of `bucket` whose key starts with `prefix`, from `start`, in order.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> MetaResult<Vec<ObjectMeta>>;
    /// Up to `limit` chunks of `owner` overlapping `range`, in order of offset.
    async fn chunks(
        &self,
        owner: Uuid,
        range: Range<u64>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkRef>>;
    /// Like [`chunks`](Self::chunks), for an owner whose chunks went to the GC queue (its object
    /// was deleted or replaced): the map stays readable there until each chunk is collected,
    /// so that a read which began before can finish within the grace period.
    async fn queued_chunks(
        &self,
        owner: Uuid,
        range: Range<u64>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkRef>>;
    async fn object_part(&self, object_id: Uuid, number: u32) -> MetaResult<Option<PartRange>>;

    async fn create_upload(&self, upload: &Upload) -> MetaResult<()>;
    async fn upload(&self, id: &str) -> MetaResult<Option<Upload>>;
    /// Stores a part (replacing one with the same number, whose chunks go to the GC queue).
    /// Fails with `NoSuchUpload` when the upload was completed or aborted meanwhile.
    async fn put_part(
        &self,
        upload_id: &str,
        part: &Part,
        chunks: &[ChunkRef],
        gc_due: OffsetDateTime,
    ) -> MetaResult<()>;
    /// Parts with a number greater than `after`, in order, at most `limit`.
    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> MetaResult<Vec<Part>>;
    /// Turns the upload into `object` made of `parts` (in order, as validated by the caller),
    /// all in one transaction: fails with `PartChanged` if any of them was replaced meanwhile.
    /// Parts not listed go to the GC queue. The completion is remembered for
    /// [`MetaStore::completed_upload`].
    async fn complete_upload(
        &self,
        upload_id: &str,
        object: &ObjectMeta,
        parts: &[Part],
        condition: &WriteCondition,
        gc_due: OffsetDateTime,
    ) -> MetaResult<()>;
    /// The object a completed upload made, while it is still its key's object and the
    /// completion is remembered (see [`MetaStore::forget_completed_uploads`]): a retried
    /// CompleteMultipartUpload answers with it.
    async fn completed_upload(&self, upload_id: &str) -> MetaResult<Option<ObjectMeta>>;
    /// Forgets uploads completed before `before`; returns how many.
    async fn forget_completed_uploads(&self, before: OffsetDateTime) -> MetaResult<u64>;
    /// Returns false when there was no such upload.
    async fn abort_upload(&self, upload_id: &str, gc_due: OffsetDateTime) -> MetaResult<bool>;
    /// Uploads of `bucket` whose key starts with `prefix`, ordered by (key, id), after
    /// (`key_marker`, `upload_id_marker`).
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> MetaResult<Vec<Upload>>;

    /// Ids of uploads initiated before `before`, at most `limit`, oldest first.
    async fn uploads_initiated_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> MetaResult<Vec<String>>;

    /// Chunks in the GC queue that are due at `now`, at most `limit`. A chunk that an object
    /// or part references is never due, however it was queued: ids are never reused, so such a
    /// queue entry is stale.
    async fn gc_due(&self, now: OffsetDateTime, limit: usize) -> MetaResult<Vec<ChunkId>>;
    /// Forgets GC queue entries whose chunks were removed from storage.
    async fn gc_done(&self, chunks: &[ChunkId]) -> MetaResult<()>;
    /// Which of `chunks` the store knows (referenced, or queued for GC); the others are orphans
    /// left by writes that never committed.
    async fn known_chunks(&self, chunks: &[ChunkId]) -> MetaResult<Vec<ChunkId>>;

    /// A counter that every change to accounts, keys, policies, attachments, bucket creation
    /// and deletion and bucket access fields increases in the same transaction: gateways poll
    /// it to know when their cached authorization decisions are stale.
    async fn access_generation(&self) -> MetaResult<u64>;
}

/// What a cluster adds to the metadata: data nodes, which nodes hold each chunk, and the
/// coordinator's lease. The embedded server never uses it.
#[async_trait]
pub trait ClusterMeta: Send + Sync + 'static {
    /// Adds a data node, or updates the address and zone of a known one.
    async fn add_node(&self, node: &NodeInfo) -> MetaResult<()>;
    async fn nodes(&self) -> MetaResult<Vec<NodeInfo>>;
    /// Records a node's latest health report (and its state, unless it is draining).
    async fn node_seen(
        &self,
        id: Uuid,
        capacity: Option<u64>,
        used: u64,
        free: Option<u64>,
        seen: OffsetDateTime,
    ) -> MetaResult<()>;
    /// Returns false when there is no such node.
    async fn set_node_state(&self, id: Uuid, state: NodeState) -> MetaResult<bool>;
    /// Forgets a node and its replica rows. Returns false when there is no such node.
    async fn remove_node(&self, id: Uuid) -> MetaResult<bool>;
    /// Replica rows per node.
    async fn replica_counts(&self) -> MetaResult<Vec<(Uuid, u64)>>;

    /// Records that `node` holds (or is being sent) a copy of `chunk`.
    async fn add_replica(&self, chunk: ChunkId, node: Uuid, now: OffsetDateTime) -> MetaResult<()>;
    async fn remove_replica(&self, chunk: ChunkId, node: Uuid) -> MetaResult<()>;
    async fn replicas(&self, chunk: ChunkId) -> MetaResult<Vec<Uuid>>;
    /// Chunks with a replica row on `node`, after `after`, in id order.
    async fn node_chunks(
        &self,
        node: Uuid,
        after: Option<ChunkId>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkId>>;
    /// Chunks referenced by objects or parts, after `after` in id order, with their replicas.
    async fn referenced_chunks(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> MetaResult<Vec<ChunkReplicas>>;
    /// "bucket/key" of the object a chunk belongs to, if it belongs to an object.
    async fn chunk_object(&self, chunk: ChunkId) -> MetaResult<Option<String>>;
    /// Forgets the replica rows written before `before` of chunks that belong to no object or
    /// part and are not queued for GC: writes that never committed. Their files are then
    /// orphans, which the coordinator deletes. A commit claims its chunks' replica rows (see
    /// `SqlMeta::claim_chunks`), so a row is either forgotten here or claimed there, never
    /// both: a write that commits afterwards fails with `ChunkCollected` instead of pointing at
    /// deleted chunks. Returns how many rows were forgotten.
    async fn forget_abandoned_chunks(&self, before: OffsetDateTime) -> MetaResult<u64>;

    /// Takes or renews the lease `name` for `holder` until `until`; false when another holder
    /// has it and it has not expired at `now`.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> MetaResult<bool>;
}

/// A data node as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: Uuid,
    /// Base URL of its internal API, e.g. http://10.0.0.5:7000
    pub address: String,
    pub zone: Option<String>,
    pub state: NodeState,
    pub capacity: Option<u64>,
    pub used: u64,
    pub free: Option<u64>,
    pub last_seen: Option<OffsetDateTime>,
    pub added: OffsetDateTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Serving reads and receiving new chunks.
    Up,
    /// Missed health checks for longer than the timeout: neither read from nor written to.
    Down,
    /// Being emptied: still read from, never written to; its chunks move elsewhere.
    Draining,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Down => "down",
            NodeState::Draining => "draining",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(NodeState::Up),
            "down" => Some(NodeState::Down),
            "draining" => Some(NodeState::Draining),
            _ => None,
        }
    }
}

/// A chunk that the coordinator looks at: its size, its recorded digest (`None` for chunks
/// written before digests were recorded) and where its copies are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkReplicas {
    pub chunk: ChunkId,
    pub size: u64,
    pub digest: Option<ChunkDigest>,
    pub nodes: Vec<Uuid>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteBucket {
    Deleted,
    NoSuchBucket,
    NotEmpty,
}

/// Both faces of one metadata store.
pub struct Metadata {
    pub objects: std::sync::Arc<dyn MetaStore>,
    pub cluster: std::sync::Arc<dyn ClusterMeta>,
}

/// Opens the metadata store a `--meta` URL names, for objects and for the cluster.
pub async fn open_all(url: &str) -> MetaResult<Metadata> {
    if is_postgres(url) {
        let store = std::sync::Arc::new(postgres::PostgresMeta::open(url).await?);
        return Ok(Metadata {
            objects: store.clone(),
            cluster: store,
        });
    }
    let store = std::sync::Arc::new(sqlite::SqliteMeta::open(url).await?);
    Ok(Metadata {
        objects: store.clone(),
        cluster: store,
    })
}

/// Opens the metadata store a `--meta` URL names.
pub async fn open(url: &str) -> MetaResult<std::sync::Arc<dyn MetaStore>> {
    if is_postgres(url) {
        return Ok(std::sync::Arc::new(
            postgres::PostgresMeta::open(url).await?,
        ));
    }
    Ok(std::sync::Arc::new(sqlite::SqliteMeta::open(url).await?))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The smallest string greater than every string that starts with `prefix`, if there is one
/// (bumping its last character; a last character of U+10FFFF has no successor).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metadata_keeps_its_bytes_and_reads_older_rows() {
        let older: StoredHeaders = serde_json::from_str(r#"{"user":[["k","bleu é"]]}"#).unwrap();
        assert_eq!(older.user, [("k".to_owned(), "bleu é".as_bytes().to_vec())]);
        let headers = StoredHeaders {
            user: vec![
                ("latin".to_owned(), b"caf\xe9".to_vec()),
                ("text".to_owned(), b"plain".to_vec()),
            ],
            ..StoredHeaders::default()
        };
        let json = serde_json::to_string(&headers).unwrap();
        assert_eq!(
            json,
            r#"{"user":[["latin",[99,97,102,233]],["text","plain"]]}"#
        );
        assert_eq!(
            serde_json::from_str::<StoredHeaders>(&json).unwrap(),
            headers
        );
    }

    #[test]
    fn successor_orders_after_every_extension() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(
            prefix_successor("photos/2024/").as_deref(),
            Some("photos/20240")
        );
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("x\u{10FFFF}").as_deref(), Some("y"));
        assert_eq!(prefix_successor(""), None);
        let s = prefix_successor("a/").unwrap();
        for key in ["a/", "a/b", "a/\u{10FFFF}\u{10FFFF}", "a/zzz"] {
            assert!(key < s.as_str(), "{key}");
        }
    }
}
