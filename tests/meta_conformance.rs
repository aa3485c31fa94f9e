//! The one conformance suite of the metadata traits, `MetaStore` and `ClusterMeta`: every case
//! below runs on the embedded SQLite store (a temporary file) and on PostgreSQL (a fresh database
//! per test), opened by URL through `meta::open_all`, so the two stores are held to the same
//! observable behaviour.
//!
//! PostgreSQL comes from `CAIRN_TEST_POSTGRES_URL`, an admin connection allowed to create
//! databases (e.g. `postgres://postgres@127.0.0.1:5432/postgres`). Without it the PostgreSQL
//! tests fail rather than pass unnoticed.

use std::collections::HashSet;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use cairn::checksum::{Checksum, ChecksumAlgorithm, ChecksumType};
use cairn::chunk::{ChunkDigest, ChunkId, ChunkRef};
use cairn::meta::{
    self, AccessKey, Bucket, BucketAccess, ChunkReplicas, ClusterMeta, DeleteBucket, ListStart,
    MetaError, MetaStore, Metadata, NodeInfo, NodeState, ObjectMeta, Part, PartRange,
    StoredHeaders, Upload, WriteCondition,
};
use cairn_test_support::{Collation, MetaDb};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;
use uuid::Uuid;

type Store = Arc<dyn MetaStore>;
type Cluster = Arc<dyn ClusterMeta>;

// ------------------------------------------------------------------------------------ harness

/// Runs `case` on a store of its own; the URL lets it open more "gateways" on the same store.
async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Metadata, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let store = meta::open_all(&url).await.expect("open the SQLite store");
    case(store, url).await;
}

/// Runs `case` on a database of its own, dropped afterwards even when the case fails.
async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(Metadata, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = MetaDb::postgres(Collation::Linguistic).await;
    let store = meta::open_all(&db.url)
        .await
        .expect("open the PostgreSQL store");
    // Spawned so that a failing case still reaches the cleanup below.
    let outcome = tokio::spawn(case(store, db.url.clone())).await;
    // Best effort: FORCE ends the store's pooled connections.
    drop(db);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// One `#[tokio::test]` per case and backend: `sqlite::CASE` and `postgres::CASE`. Object cases
/// take the `MetaStore` face of the store, cluster cases the `ClusterMeta` face (and the
/// `MetaStore` one, to make chunks referenced); shared cases open more gateways on the store.
macro_rules! conformance {
    (
        objects: $($case:ident),* ;
        cluster: $($cluster_case:ident),* ;
        shared: $($shared_case:ident),* $(,)?
    ) => {
        conformance!(@backend sqlite, on_sqlite;
            $($case),*; $($cluster_case),*; $($shared_case),*);
        conformance!(@backend postgres, on_postgres;
            $($case),*; $($cluster_case),*; $($shared_case),*);
    };
    (
        @backend $module:ident, $harness:ident;
        $($case:ident),*; $($cluster_case:ident),*; $($shared_case:ident),*
    ) => {
        mod $module {
            use cairn::meta::Metadata;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$harness(|m: Metadata, _| super::$case(m.objects)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $cluster_case() {
                    super::$harness(|m: Metadata, _| super::$cluster_case(m.objects, m.cluster))
                        .await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $shared_case() {
                    super::$harness(super::$shared_case).await;
                }
            )*
        }
    };
}

conformance!(
    objects:
    settings,
    access_keys,
    buckets,
    put_get_overwrite_delete,
    gc_queue,
    chunk_ranges,
    queued_chunk_map,
    listing_order_and_prefixes,
    multipart_complete,
    multipart_part_changed_and_abort,
    list_uploads_and_expiry,
    completed_uploads_remembered,
    conditional_writes,
    concurrent_conditional_writers,
    concurrent_unconditional_writers,
    concurrent_part_writers;
    cluster:
    nodes,
    replica_rows,
    referenced_and_abandoned_chunks,
    leases;
    shared:
    several_gateways,
);

// ------------------------------------------------------------------------------------ helpers

/// Whole milliseconds, the precision both stores keep.
fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("valid time")
}

const T0: i64 = 1_700_000_000_000;

fn far_future() -> OffsetDateTime {
    at(T0) + Duration::days(36_500)
}

/// Chunks of the given sizes laid end to end from offset 0, each with a new id; every other one
/// has a digest and the rest none (as chunks written before digests were recorded), so that
/// every test that reads a chunk map back checks both kinds round-trip.
fn layout(sizes: &[u64]) -> Vec<ChunkRef> {
    let mut offset = 0;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let chunk = ChunkId::random();
            let c = ChunkRef {
                offset,
                size,
                chunk,
                digest: (i % 2 == 0).then(|| digest_of(chunk)),
            };
            offset += size;
            c
        })
        .collect()
}

/// A digest that differs per chunk (what it digests does not matter to the metadata store).
fn digest_of(chunk: ChunkId) -> ChunkDigest {
    let mut raw = [0u8; 32];
    raw[..16].copy_from_slice(chunk.0.as_bytes());
    raw[16..].copy_from_slice(chunk.0.as_bytes());
    raw[31] ^= 0x5a;
    ChunkDigest(raw)
}

fn ids(chunks: &[ChunkRef]) -> HashSet<ChunkId> {
    chunks.iter().map(|c| c.chunk).collect()
}

fn object(bucket: &str, key: &str, chunks: &[ChunkRef], etag: &str) -> ObjectMeta {
    ObjectMeta {
        id: Uuid::new_v4(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: chunks.iter().map(|c| c.size).sum(),
        etag: etag.to_owned(),
        last_modified: at(T0 + 1234),
        headers: StoredHeaders::default(),
        checksum: None,
        checksum_type: ChecksumType::FullObject,
        parts_count: None,
        inline: None,
        owner: WRITER.to_owned(),
        acl: None,
    }
}

/// The canonical id objects, uploads and buckets of the cases are owned by unless they say
/// otherwise; the store keeps it as given.
const WRITER: &str = "5f2c8e0d1b7a49c3a6e4f0b2d8c1e7a93b5d6f8e0a2c4b6d8f0e1a3c5b7d9f1e";

/// The canonical id of the admin account every store has from its first migration.
async fn admin_id(store: &Store) -> String {
    store
        .account_by_name(meta::ADMIN_ACCOUNT)
        .await
        .unwrap()
        .expect("the admin account exists")
        .id
}

fn assert_same_object(got: &ObjectMeta, want: &ObjectMeta) {
    assert_eq!(got.id, want.id);
    assert_eq!(got.bucket, want.bucket);
    assert_eq!(got.key, want.key);
    assert_eq!(got.size, want.size);
    assert_eq!(got.etag, want.etag);
    assert_eq!(got.last_modified, want.last_modified);
    assert_eq!(got.headers, want.headers);
    assert_eq!(got.checksum, want.checksum);
    assert_eq!(got.checksum_type, want.checksum_type);
    assert_eq!(got.parts_count, want.parts_count);
    assert_eq!(got.inline, want.inline);
    assert_eq!(got.owner, want.owner);
    assert_eq!(got.acl, want.acl);
}

fn assert_same_upload(got: &Upload, want: &Upload) {
    assert_eq!(got.id, want.id);
    assert_eq!(got.bucket, want.bucket);
    assert_eq!(got.key, want.key);
    assert_eq!(got.initiated, want.initiated);
    assert_eq!(got.headers, want.headers);
    assert_eq!(got.checksum_algorithm, want.checksum_algorithm);
    assert_eq!(got.checksum_type, want.checksum_type);
    assert_eq!(got.owner, want.owner);
    assert_eq!(got.acl, want.acl);
}

fn assert_same_part(got: &Part, want: &Part) {
    assert_eq!(got.number, want.number);
    assert_eq!(got.owner, want.owner);
    assert_eq!(got.size, want.size);
    assert_eq!(got.etag, want.etag);
    assert_eq!(got.last_modified, want.last_modified);
    assert_eq!(got.checksum, want.checksum);
}

async fn make_bucket(store: &Store, name: &str) {
    let created = store
        .create_bucket(&Bucket {
            name: name.to_owned(),
            created: at(T0),
            owner: WRITER.to_owned(),
            access: BucketAccess::default(),
        })
        .await
        .expect("create bucket");
    assert!(created, "bucket {name} already existed");
}

async fn put(store: &Store, o: &ObjectMeta, chunks: &[ChunkRef]) {
    store
        .put_object(o, chunks, &WriteCondition::Always, at(T0 + 60_000))
        .await
        .expect("put object");
}

/// Every chunk an owner has, read in one call.
async fn all_chunks(store: &Store, owner: Uuid) -> Vec<ChunkRef> {
    store
        .chunks(owner, 0..u64::from(u32::MAX), usize::MAX)
        .await
        .expect("chunks")
}

/// Everything in the GC queue, whenever due.
async fn queued(store: &Store) -> HashSet<ChunkId> {
    let due = store
        .gc_due(far_future(), usize::MAX)
        .await
        .expect("gc_due");
    let set: HashSet<ChunkId> = due.iter().copied().collect();
    assert_eq!(set.len(), due.len(), "a chunk is queued twice");
    set
}

/// The first `limit` objects of `bucket`, from its first key.
async fn list_from_start(store: &Store, bucket: &str, limit: usize) -> Vec<ObjectMeta> {
    let start = ListStart {
        key: "",
        inclusive: true,
    };
    store
        .list_objects(bucket, "", start, limit)
        .await
        .expect("list_objects")
}

async fn known(store: &Store, chunks: &HashSet<ChunkId>) -> HashSet<ChunkId> {
    let asked: Vec<ChunkId> = chunks.iter().copied().collect();
    store
        .known_chunks(&asked)
        .await
        .expect("known_chunks")
        .into_iter()
        .collect()
}

fn upload(id: &str, bucket: &str, key: &str, initiated_ms: i64) -> Upload {
    Upload {
        id: id.to_owned(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        initiated: at(initiated_ms),
        headers: StoredHeaders::default(),
        checksum_algorithm: None,
        checksum_type: ChecksumType::FullObject,
        owner: WRITER.to_owned(),
        acl: None,
    }
}

fn part(number: u32, chunks: &[ChunkRef]) -> Part {
    Part {
        number,
        owner: Uuid::new_v4(),
        size: chunks.iter().map(|c| c.size).sum(),
        etag: format!("etag-of-part-{number}"),
        last_modified: at(T0 + i64::from(number)),
        checksum: None,
    }
}

async fn store_part(store: &Store, upload_id: &str, p: &Part, chunks: &[ChunkRef]) {
    store
        .put_part(upload_id, p, chunks, at(T0 + 60_000))
        .await
        .expect("put part");
}

// -------------------------------------------------------------------------------------- cases

async fn settings(store: Store) {
    assert_eq!(store.setting("region").await.unwrap(), None);
    store.set_setting("region", "us-east-1").await.unwrap();
    assert_eq!(
        store.setting("region").await.unwrap().as_deref(),
        Some("us-east-1")
    );
    store.set_setting("region", "eu-west-3").await.unwrap();
    assert_eq!(
        store.setting("region").await.unwrap().as_deref(),
        Some("eu-west-3")
    );
    store.set_setting("other", "").await.unwrap();
    assert_eq!(store.setting("other").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        store.setting("region").await.unwrap().as_deref(),
        Some("eu-west-3")
    );
}

async fn access_keys(store: Store) {
    let admin = admin_id(&store).await;
    let key = |id: &str, ms: i64| AccessKey {
        id: id.to_owned(),
        secret: format!("secret/of+{id}="),
        name: format!("name of {id}"),
        created: at(ms),
        account: admin.clone(),
        policy: None,
    };
    assert!(store.list_keys().await.unwrap().is_empty());
    assert!(store.key("AKIA1").await.unwrap().is_none());
    // Listed by creation time, then id.
    store.create_key(&key("AKIAB", T0 + 5)).await.unwrap();
    store.create_key(&key("AKIAC", T0)).await.unwrap();
    store.create_key(&key("AKIAA", T0 + 5)).await.unwrap();
    assert!(
        store.create_key(&key("AKIAA", T0 + 9)).await.is_err(),
        "a duplicate key id must be refused"
    );
    let got = store.key("AKIAB").await.unwrap().expect("key exists");
    assert_eq!(got.id, "AKIAB");
    assert_eq!(got.secret, "secret/of+AKIAB=");
    assert_eq!(got.name, "name of AKIAB");
    assert_eq!(got.created, at(T0 + 5));
    let listed: Vec<String> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, ["AKIAC", "AKIAA", "AKIAB"]);
    assert!(store.delete_key("AKIAA").await.unwrap());
    assert!(!store.delete_key("AKIAA").await.unwrap());
    assert!(store.key("AKIAA").await.unwrap().is_none());
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
}

async fn buckets(store: Store) {
    assert!(store.list_buckets(None).await.unwrap().is_empty());
    let b = Bucket {
        name: "photos".to_owned(),
        created: at(T0 + 7),
        owner: WRITER.to_owned(),
        access: BucketAccess::default(),
    };
    assert!(store.create_bucket(&b).await.unwrap());
    let again = Bucket {
        name: "photos".to_owned(),
        created: at(T0 + 99),
        owner: "another".to_owned(),
        access: BucketAccess::default(),
    };
    assert!(!store.create_bucket(&again).await.unwrap());
    let got = store
        .bucket("photos")
        .await
        .unwrap()
        .expect("bucket exists");
    assert_eq!(got.name, "photos");
    assert_eq!(got.created, at(T0 + 7), "creating twice keeps the first");
    assert_eq!(got.owner, WRITER, "creating twice keeps the first owner");
    assert_eq!(got.access, BucketAccess::default());
    assert!(store.bucket("videos").await.unwrap().is_none());
    make_bucket(&store, "b.2").await;
    make_bucket(&store, "a-1").await;
    let names: Vec<String> = store
        .list_buckets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["a-1", "b.2", "photos"]);

    // Writes into a missing bucket.
    let chunks = layout(&[3]);
    let o = object("nope", "k", &chunks, "e");
    assert!(matches!(
        store
            .put_object(&o, &chunks, &WriteCondition::Always, at(T0))
            .await,
        Err(MetaError::NoSuchBucket)
    ));
    assert!(store.object("nope", "k").await.unwrap().is_none());
    assert!(matches!(
        store.create_upload(&upload("u", "nope", "k", T0)).await,
        Err(MetaError::NoSuchBucket)
    ));

    // A bucket holding an object is not empty; uploads in progress go with the bucket.
    let o = object("photos", "cat.jpg", &chunks, "e");
    put(&store, &o, &chunks).await;
    assert_eq!(
        store.delete_bucket("photos", at(T0)).await.unwrap(),
        DeleteBucket::NotEmpty
    );
    assert!(
        store
            .delete_object("photos", "cat.jpg", at(T0))
            .await
            .unwrap()
    );
    store
        .create_upload(&upload("up-1", "photos", "dog.jpg", T0))
        .await
        .unwrap();
    let part_chunks = layout(&[5]);
    store_part(&store, "up-1", &part(1, &part_chunks), &part_chunks).await;
    assert_eq!(
        store.delete_bucket("photos", at(T0)).await.unwrap(),
        DeleteBucket::Deleted
    );
    assert!(store.upload("up-1").await.unwrap().is_none());
    let due = store.gc_due(far_future(), 100).await.unwrap();
    assert!(
        due.contains(&part_chunks[0].chunk),
        "the upload's parts are collected"
    );
    assert_eq!(
        store.delete_bucket("photos", at(T0)).await.unwrap(),
        DeleteBucket::NoSuchBucket
    );
    assert!(store.bucket("photos").await.unwrap().is_none());
    assert_eq!(store.list_buckets(None).await.unwrap().len(), 2);
}

async fn put_get_overwrite_delete(store: Store) {
    make_bucket(&store, "b").await;
    make_bucket(&store, "other").await;
    assert!(store.object("b", "k").await.unwrap().is_none());

    let first_chunks = layout(&[4, 4, 2]);
    let mut first = object("b", "k", &first_chunks, "0123456789abcdef0123456789abcdef");
    first.headers = StoredHeaders {
        content_type: Some("text/plain; charset=utf-8".to_owned()),
        content_encoding: Some("gzip".to_owned()),
        content_disposition: Some("attachment; filename=\"k.txt\"".to_owned()),
        content_language: Some("fr".to_owned()),
        cache_control: Some("no-cache".to_owned()),
        expires: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
        user: vec![
            ("colour".to_owned(), "bleu é".as_bytes().to_vec()),
            ("a".to_owned(), b"1".to_vec()),
            ("latin-1".to_owned(), b"caf\xe9".to_vec()),
        ],
        storage_class: Some("STANDARD_IA".to_owned()),
    };
    first.checksum = Some(Checksum {
        algorithm: ChecksumAlgorithm::Crc32c,
        value: vec![1, 2, 3, 4],
    });
    put(&store, &first, &first_chunks).await;
    let got = store.object("b", "k").await.unwrap().expect("visible");
    assert_same_object(&got, &first);
    assert_eq!(all_chunks(&store, first.id).await, first_chunks);
    assert!(store.object("other", "k").await.unwrap().is_none());
    assert!(store.object("b", "K").await.unwrap().is_none());
    assert!(queued(&store).await.is_empty());

    // Overwrite: the new version is visible, the old one's chunks are queued.
    let second_chunks = layout(&[7]);
    let mut second = object("b", "k", &second_chunks, "md5-of-parts-2");
    second.checksum = Some(Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        value: vec![9; 32],
    });
    second.checksum_type = ChecksumType::Composite;
    second.parts_count = Some(2);
    put(&store, &second, &second_chunks).await;
    let got = store.object("b", "k").await.unwrap().expect("visible");
    assert_same_object(&got, &second);
    assert!(all_chunks(&store, first.id).await.is_empty());
    assert_eq!(all_chunks(&store, second.id).await, second_chunks);
    assert_eq!(queued(&store).await, ids(&first_chunks));

    // An object without chunks (empty body).
    let empty = object("b", "empty", &[], "d41d8cd98f00b204e9800998ecf8427e");
    put(&store, &empty, &[]).await;
    let got = store.object("b", "empty").await.unwrap().expect("visible");
    assert_same_object(&got, &empty);
    assert_eq!(got.size, 0);
    assert!(all_chunks(&store, empty.id).await.is_empty());

    // Delete.
    assert!(store.delete_object("b", "k", at(T0)).await.unwrap());
    assert!(!store.delete_object("b", "k", at(T0)).await.unwrap());
    assert!(!store.delete_object("b", "never", at(T0)).await.unwrap());
    assert!(!store.delete_object("missing", "k", at(T0)).await.unwrap());
    assert!(store.object("b", "k").await.unwrap().is_none());
    assert!(all_chunks(&store, second.id).await.is_empty());
    let mut all = ids(&first_chunks);
    all.extend(ids(&second_chunks));
    assert_eq!(queued(&store).await, all);
    assert!(store.delete_object("b", "empty", at(T0)).await.unwrap());
    assert_eq!(queued(&store).await, all);

    // A small object keeps its bytes in its row: the lookup returns them, a listing leaves
    // them out, and deleting it queues nothing.
    let mut small = object("b", "small", &[], "inline");
    let data = Bytes::from_static(b"\x00bytes \xff in the row");
    small.size = data.len() as u64;
    small.inline = Some(data);
    put(&store, &small, &[]).await;
    let got = store.object("b", "small").await.unwrap().expect("visible");
    assert_same_object(&got, &small);
    let listed = list_from_start(&store, "b", 10).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].size, listed[0].inline.as_ref()),
        (small.size, None)
    );
    assert!(store.delete_object("b", "small", at(T0)).await.unwrap());
    assert_eq!(queued(&store).await, all);
}

async fn gc_queue(store: Store) {
    make_bucket(&store, "b").await;
    let old_chunks = layout(&[1, 2, 3]);
    let old = object("b", "k", &old_chunks, "e1");
    put(&store, &old, &old_chunks).await;
    let live_chunks = layout(&[5, 5]);
    let live = object("b", "k", &live_chunks, "e2");
    let due = at(T0 + 10_000);
    store
        .put_object(&live, &live_chunks, &WriteCondition::Always, due)
        .await
        .unwrap();

    // Queued chunks become due at `gc_due`, not before.
    let before = store
        .gc_due(due - Duration::milliseconds(1), 100)
        .await
        .unwrap();
    assert!(before.is_empty(), "nothing is due before the grace period");
    let at_due: HashSet<ChunkId> = store.gc_due(due, 100).await.unwrap().into_iter().collect();
    assert_eq!(at_due, ids(&old_chunks));
    assert_eq!(store.gc_due(due, 2).await.unwrap().len(), 2, "limit holds");

    // A deletion later in time is due later; gc_due lists the earliest first.
    let later = at(T0 + 20_000);
    assert!(store.delete_object("b", "k", later).await.unwrap());
    assert_eq!(
        store.gc_due(due, 100).await.unwrap().len(),
        3,
        "the later entries are not due yet"
    );
    let first_three: HashSet<ChunkId> = store.gc_due(later, 3).await.unwrap().into_iter().collect();
    assert_eq!(first_three, ids(&old_chunks), "earliest due first");
    let everything = store.gc_due(later, 100).await.unwrap();
    assert_eq!(everything.len(), 5);

    // known_chunks: referenced or queued, in the order asked; others are orphans.
    let orphan = ChunkId::random();
    let fresh_chunks = layout(&[8]);
    let fresh = object("b", "f", &fresh_chunks, "e3");
    put(&store, &fresh, &fresh_chunks).await;
    let asked = [
        orphan,
        fresh_chunks[0].chunk,
        old_chunks[2].chunk,
        live_chunks[0].chunk,
        orphan,
    ];
    assert_eq!(
        store.known_chunks(&asked).await.unwrap(),
        [
            fresh_chunks[0].chunk,
            old_chunks[2].chunk,
            live_chunks[0].chunk
        ]
    );
    assert!(store.known_chunks(&[]).await.unwrap().is_empty());

    // gc_done forgets entries; a chunk unknown to the queue is ignored.
    store
        .gc_done(&[old_chunks[0].chunk, old_chunks[1].chunk, orphan])
        .await
        .unwrap();
    store.gc_done(&[]).await.unwrap();
    let left: HashSet<ChunkId> = store
        .gc_due(later, 100)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut want = ids(&live_chunks);
    want.insert(old_chunks[2].chunk);
    assert_eq!(left, want);
    assert!(
        store
            .known_chunks(&[old_chunks[0].chunk])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(all_chunks(&store, fresh.id).await, fresh_chunks);
}

/// The chunks of `layout` overlapping `range`, i.e. what a read of `range` needs.
fn overlapping(layout: &[ChunkRef], range: &Range<u64>) -> Vec<ChunkRef> {
    layout
        .iter()
        .filter(|c| c.offset < range.end && c.end() > range.start)
        .copied()
        .collect()
}

async fn chunk_ranges(store: Store) {
    make_bucket(&store, "b").await;
    // Variable sizes, including 1-byte chunks at both ends of the middle.
    let chunks = layout(&[5, 1, 10, 1, 3, 7]);
    let size: u64 = chunks.iter().map(|c| c.size).sum();
    let o = object("b", "k", &chunks, "e");
    put(&store, &o, &chunks).await;
    // A neighbour whose chunks must never leak into o's answers.
    let other_chunks = layout(&[2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
    put(&store, &object("b", "n", &other_chunks, "e"), &other_chunks).await;

    for start in 0..size {
        for end in start + 1..=size {
            let range = start..end;
            let got = store.chunks(o.id, range.clone(), 100).await.unwrap();
            assert_eq!(got, overlapping(&chunks, &range), "range {range:?}");
        }
    }

    // Paging: the caller resumes at the end of the last chunk it got.
    for page in 1..=3 {
        for start in [0, 4, 5, 6, 15, 17, size - 1] {
            let mut got = Vec::new();
            let mut pos = start;
            while pos < size {
                let batch = store.chunks(o.id, pos..size, page).await.unwrap();
                assert!(!batch.is_empty() && batch.len() <= page);
                pos = batch.last().map_or(size, ChunkRef::end);
                got.extend(batch);
            }
            assert_eq!(got, overlapping(&chunks, &(start..size)), "page {page}");
        }
    }
    assert!(
        store
            .chunks(Uuid::new_v4(), 0..10, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A replaced or deleted object's chunk map stays readable from the GC queue, with the same
/// range and paging answers as when the object was live, until its chunks are collected.
async fn queued_chunk_map(store: Store) {
    make_bucket(&store, "b").await;
    let chunks = layout(&[5, 1, 10, 1, 3, 7]);
    let size: u64 = chunks.iter().map(|c| c.size).sum();
    let replaced = object("b", "k", &chunks, "e1");
    put(&store, &replaced, &chunks).await;
    assert!(
        store
            .queued_chunks(replaced.id, 0..size, 100)
            .await
            .unwrap()
            .is_empty(),
        "a live object's chunks are not queued"
    );
    let next_chunks = layout(&[4]);
    put(&store, &object("b", "k", &next_chunks, "e2"), &next_chunks).await;
    assert!(
        store
            .chunks(replaced.id, 0..size, 100)
            .await
            .unwrap()
            .is_empty()
    );
    for range in [0..size, 5..6, 6..17, 16..17, size - 1..size] {
        assert_eq!(
            store
                .queued_chunks(replaced.id, range.clone(), 100)
                .await
                .unwrap(),
            overlapping(&chunks, &range),
            "range {range:?}"
        );
    }
    for page in 1..=2 {
        let mut got = Vec::new();
        let mut pos = 4;
        while pos < size {
            let batch = store
                .queued_chunks(replaced.id, pos..size, page)
                .await
                .unwrap();
            assert!(!batch.is_empty() && batch.len() <= page);
            pos = batch.last().map_or(size, ChunkRef::end);
            got.extend(batch);
        }
        assert_eq!(got, overlapping(&chunks, &(4..size)), "page {page}");
    }

    // A deleted object's map likewise; a collected chunk is gone from it.
    let deleted_chunks = layout(&[2, 2]);
    let deleted = object("b", "d", &deleted_chunks, "e3");
    put(&store, &deleted, &deleted_chunks).await;
    assert!(store.delete_object("b", "d", at(T0)).await.unwrap());
    assert_eq!(
        store.queued_chunks(deleted.id, 0..4, 100).await.unwrap(),
        deleted_chunks
    );
    store.gc_done(&[deleted_chunks[1].chunk]).await.unwrap();
    assert_eq!(
        store.queued_chunks(deleted.id, 0..4, 100).await.unwrap(),
        deleted_chunks[..1]
    );
}

async fn listing_order_and_prefixes(store: Store) {
    make_bucket(&store, "b").await;
    make_bucket(&store, "c").await;
    // UTF-8 byte order: 'Z' < 'a' < "a/b" < "a/c" < "a\x7f" < 'b' < '~' < 'é'.
    let keys = ["a", "a/b", "Z", "é", "~", "a\u{7f}", "a/c", "b"];
    for key in keys {
        put(&store, &object("b", key, &[], "e"), &[]).await;
    }
    put(&store, &object("c", "a/0", &[], "e"), &[]).await;
    let sorted = ["Z", "a", "a/b", "a/c", "a\u{7f}", "b", "~", "é"];

    let list = |prefix: &'static str, key: &'static str, inclusive: bool, limit: usize| {
        let store = store.clone();
        async move {
            store
                .list_objects("b", prefix, ListStart { key, inclusive }, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(list("", "", true, 100).await, sorted);
    assert_eq!(list("", "", false, 100).await, sorted);
    assert_eq!(list("", "", true, 3).await, sorted[..3]);
    assert_eq!(list("", "a", true, 3).await, ["a", "a/b", "a/c"]);
    assert_eq!(list("", "a", false, 3).await, ["a/b", "a/c", "a\u{7f}"]);
    assert_eq!(list("", "a\u{7f}", false, 100).await, ["b", "~", "é"]);
    assert_eq!(list("", "é", true, 100).await, ["é"]);
    assert!(list("", "é", false, 100).await.is_empty());
    assert_eq!(list("", "Y", false, 1).await, ["Z"]);

    // Paging through exclusive starts visits every key once.
    let mut paged: Vec<String> = Vec::new();
    loop {
        let start = paged.last().cloned().unwrap_or_default();
        let page = store
            .list_objects(
                "b",
                "",
                ListStart {
                    key: &start,
                    inclusive: paged.is_empty(),
                },
                3,
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        paged.extend(page.into_iter().map(|o| o.key));
    }
    assert_eq!(paged, sorted);

    // Prefixes, with starts before, inside and after them.
    assert_eq!(
        list("a", "", true, 100).await,
        ["a", "a/b", "a/c", "a\u{7f}"]
    );
    assert_eq!(
        list("a", "A", false, 100).await,
        ["a", "a/b", "a/c", "a\u{7f}"]
    );
    assert_eq!(list("a", "a", false, 100).await, ["a/b", "a/c", "a\u{7f}"]);
    assert_eq!(list("a/", "", true, 100).await, ["a/b", "a/c"]);
    assert_eq!(list("a/", "a/b", true, 100).await, ["a/b", "a/c"]);
    assert_eq!(list("a/", "a/b", false, 100).await, ["a/c"]);
    assert_eq!(list("a/", "a/", true, 1).await, ["a/b"]);
    assert!(list("a/", "a/c", false, 100).await.is_empty());
    assert!(list("a", "b", true, 100).await.is_empty());
    assert_eq!(list("é", "", true, 100).await, ["é"]);
    assert_eq!(list("~", "", true, 100).await, ["~"]);
    assert!(list("x", "", true, 100).await.is_empty());
    assert!(list("A", "", true, 100).await.is_empty(), "case matters");

    let in_c: Vec<String> = list_from_start(&store, "c", 100)
        .await
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(in_c, ["a/0"]);
    assert!(
        store
            .list_objects(
                "missing",
                "",
                ListStart {
                    key: "",
                    inclusive: true
                },
                100
            )
            .await
            .unwrap()
            .is_empty()
    );
}

async fn multipart_complete(store: Store) {
    make_bucket(&store, "b").await;
    // An existing object the completion replaces.
    let old_chunks = layout(&[6]);
    let old = object("b", "big", &old_chunks, "old");
    put(&store, &old, &old_chunks).await;

    let mut up = upload("upload-1", "b", "big", T0);
    up.headers.content_type = Some("video/mp4".to_owned());
    up.headers.user = vec![("k".to_owned(), b"v".to_vec())];
    up.checksum_algorithm = Some(ChecksumAlgorithm::Crc32);
    up.checksum_type = ChecksumType::Composite;
    store.create_upload(&up).await.unwrap();
    assert_same_upload(
        &store.upload("upload-1").await.unwrap().expect("exists"),
        &up,
    );
    assert!(store.upload("upload-2").await.unwrap().is_none());

    let p1_chunks = layout(&[3, 2]);
    let mut p1 = part(1, &p1_chunks);
    p1.checksum = Some(Checksum {
        algorithm: ChecksumAlgorithm::Crc32,
        value: vec![0xde, 0xad, 0xbe, 0xef],
    });
    store_part(&store, "upload-1", &p1, &p1_chunks).await;
    let p2_first_chunks = layout(&[9]);
    let p2_first = part(2, &p2_first_chunks);
    store_part(&store, "upload-1", &p2_first, &p2_first_chunks).await;
    let p3_chunks = layout(&[1]);
    let p3 = part(3, &p3_chunks);
    store_part(&store, "upload-1", &p3, &p3_chunks).await;
    let p5_chunks = layout(&[2, 2]);
    let p5 = part(5, &p5_chunks);
    store_part(&store, "upload-1", &p5, &p5_chunks).await;
    assert_eq!(all_chunks(&store, p1.owner).await, p1_chunks);

    // Replacing part 2 queues the first version's chunks.
    let p2_chunks = layout(&[4]);
    let p2 = part(2, &p2_chunks);
    store_part(&store, "upload-1", &p2, &p2_chunks).await;
    assert_eq!(queued(&store).await, ids(&p2_first_chunks));
    assert!(all_chunks(&store, p2_first.owner).await.is_empty());

    // list_parts pages by number.
    let all = store.list_parts("upload-1", 0, 100).await.unwrap();
    let numbers: Vec<u32> = all.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3, 5]);
    assert_same_part(&all[0], &p1);
    assert_same_part(&all[1], &p2);
    let page: Vec<u32> = store
        .list_parts("upload-1", 0, 2)
        .await
        .unwrap()
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(page, [1, 2]);
    let page: Vec<u32> = store
        .list_parts("upload-1", 2, 2)
        .await
        .unwrap()
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(page, [3, 5]);
    let page: Vec<u32> = store
        .list_parts("upload-1", 3, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(page, [5]);
    assert!(
        store
            .list_parts("upload-1", 5, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_parts("upload-x", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Complete with parts 1, 2 and 5; part 3 is left out.
    let listed = [p1.clone(), p2.clone(), p5.clone()];
    let mut done = object("b", "big", &[], "abc-3");
    done.size = p1.size + p2.size + p5.size;
    done.parts_count = Some(3);
    done.checksum_type = ChecksumType::Composite;
    store
        .complete_upload(
            "upload-1",
            &done,
            &listed,
            &WriteCondition::Always,
            at(T0 + 60_000),
        )
        .await
        .unwrap();
    assert_same_object(
        &store.object("b", "big").await.unwrap().expect("visible"),
        &done,
    );
    // Each chunk keeps its digest (or its lack of one) as it moves to the object.
    let want: Vec<ChunkRef> = [
        (0, p1_chunks[0]),
        (3, p1_chunks[1]),
        (5, p2_chunks[0]),
        (9, p5_chunks[0]),
        (11, p5_chunks[1]),
    ]
    .into_iter()
    .map(|(offset, c)| ChunkRef { offset, ..c })
    .collect();
    assert_eq!(all_chunks(&store, done.id).await, want);
    assert_eq!(
        store.chunks(done.id, 4..10, 10).await.unwrap(),
        want[1..4].to_vec()
    );
    assert_eq!(
        store.object_part(done.id, 1).await.unwrap(),
        Some(PartRange {
            number: 1,
            offset: 0,
            size: 5
        })
    );
    assert_eq!(
        store.object_part(done.id, 2).await.unwrap(),
        Some(PartRange {
            number: 2,
            offset: 5,
            size: 4
        })
    );
    assert_eq!(
        store.object_part(done.id, 5).await.unwrap(),
        Some(PartRange {
            number: 5,
            offset: 9,
            size: 4
        })
    );
    assert_eq!(store.object_part(done.id, 3).await.unwrap(), None);
    assert_eq!(store.object_part(old.id, 1).await.unwrap(), None);

    // Part owners hold nothing now; the replaced object, part 3 and part 2's first version are
    // queued; the upload is gone.
    for p in [&p1, &p2, &p3, &p5] {
        assert!(all_chunks(&store, p.owner).await.is_empty());
    }
    assert!(all_chunks(&store, old.id).await.is_empty());
    let mut want_queued = ids(&p2_first_chunks);
    want_queued.extend(ids(&p3_chunks));
    want_queued.extend(ids(&old_chunks));
    assert_eq!(queued(&store).await, want_queued);
    assert!(store.upload("upload-1").await.unwrap().is_none());
    assert!(
        store
            .list_parts("upload-1", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The upload is finished: more parts, a second completion and an abort find nothing.
    let late_chunks = layout(&[1]);
    assert!(matches!(
        store
            .put_part("upload-1", &part(4, &late_chunks), &late_chunks, at(T0))
            .await,
        Err(MetaError::NoSuchUpload)
    ));
    assert!(known(&store, &ids(&late_chunks)).await.is_empty());
    let again = object("b", "big", &[], "again");
    assert!(matches!(
        store
            .complete_upload("upload-1", &again, &listed, &WriteCondition::Always, at(T0))
            .await,
        Err(MetaError::NoSuchUpload)
    ));
    assert!(!store.abort_upload("upload-1", at(T0)).await.unwrap());
    assert_same_object(
        &store.object("b", "big").await.unwrap().expect("visible"),
        &done,
    );

    // Overwriting the multipart object drops its part table too.
    let plain_chunks = layout(&[1]);
    put(
        &store,
        &object("b", "big", &plain_chunks, "plain"),
        &plain_chunks,
    )
    .await;
    assert_eq!(store.object_part(done.id, 1).await.unwrap(), None);
    want_queued.extend(want.iter().map(|c| c.chunk));
    assert_eq!(queued(&store).await, want_queued);
}

async fn multipart_part_changed_and_abort(store: Store) {
    make_bucket(&store, "b").await;
    store
        .create_upload(&upload("u1", "b", "k", T0))
        .await
        .unwrap();
    let a_chunks = layout(&[5]);
    let a = part(1, &a_chunks);
    store_part(&store, "u1", &a, &a_chunks).await;
    let b_chunks = layout(&[5]);
    let b = part(2, &b_chunks);
    store_part(&store, "u1", &b, &b_chunks).await;
    // Part 2 is replaced after the caller listed it.
    let b2_chunks = layout(&[5]);
    let b2 = part(2, &b2_chunks);
    store_part(&store, "u1", &b2, &b2_chunks).await;

    let o = object("b", "k", &[], "x-2");
    let stale = [a.clone(), b.clone()];
    assert!(matches!(
        store
            .complete_upload("u1", &o, &stale, &WriteCondition::Always, at(T0))
            .await,
        Err(MetaError::PartChanged(2))
    ));
    // Nothing of the failed completion is visible.
    assert!(store.object("b", "k").await.unwrap().is_none());
    assert!(store.upload("u1").await.unwrap().is_some());
    assert_eq!(all_chunks(&store, a.owner).await, a_chunks);
    assert_eq!(all_chunks(&store, b2.owner).await, b2_chunks);
    assert!(all_chunks(&store, o.id).await.is_empty());
    assert_eq!(store.list_parts("u1", 0, 10).await.unwrap().len(), 2);
    // A part listed twice is caught too.
    assert!(matches!(
        store
            .complete_upload(
                "u1",
                &o,
                &[a.clone(), a.clone()],
                &WriteCondition::Always,
                at(T0)
            )
            .await,
        Err(MetaError::PartChanged(1))
    ));
    // A part that was never stored.
    let ghost = part(3, &layout(&[1]));
    assert!(matches!(
        store
            .complete_upload(
                "u1",
                &o,
                &[a.clone(), ghost],
                &WriteCondition::Always,
                at(T0)
            )
            .await,
        Err(MetaError::PartChanged(3))
    ));
    assert!(store.object("b", "k").await.unwrap().is_none());
    assert_eq!(queued(&store).await, ids(&b_chunks));

    // Abort queues every remaining part.
    let due = at(T0 + 5_000);
    assert!(store.abort_upload("u1", due).await.unwrap());
    assert!(!store.abort_upload("u1", due).await.unwrap());
    assert!(store.upload("u1").await.unwrap().is_none());
    assert!(store.list_parts("u1", 0, 10).await.unwrap().is_empty());
    assert!(all_chunks(&store, a.owner).await.is_empty());
    let mut want = ids(&a_chunks);
    want.extend(ids(&b2_chunks));
    let due_now: HashSet<ChunkId> = store.gc_due(due, 100).await.unwrap().into_iter().collect();
    assert!(due_now.is_superset(&want));
    want.extend(ids(&b_chunks));
    assert_eq!(queued(&store).await, want);
    assert!(matches!(
        store.put_part("u1", &a, &a_chunks, due).await,
        Err(MetaError::NoSuchUpload)
    ));
    assert!(!store.abort_upload("never", due).await.unwrap());

    // An upload without parts completes into an empty object.
    store
        .create_upload(&upload("u2", "b", "empty", T0))
        .await
        .unwrap();
    let empty = object("b", "empty", &[], "e-0");
    store
        .complete_upload("u2", &empty, &[], &WriteCondition::Always, due)
        .await
        .unwrap();
    assert_same_object(
        &store.object("b", "empty").await.unwrap().expect("visible"),
        &empty,
    );
    assert!(store.upload("u2").await.unwrap().is_none());
}

async fn list_uploads_and_expiry(store: Store) {
    make_bucket(&store, "b").await;
    make_bucket(&store, "c").await;
    for (id, key, ms) in [
        ("u2", "k1", T0 + 30),
        ("u1", "k1", T0 + 10),
        ("u3", "k2", T0 + 20),
        ("u0", "j", T0 + 40),
        ("u9", "é", T0 + 50),
        ("u8", "Z", T0 + 60),
    ] {
        store
            .create_upload(&upload(id, "b", key, ms))
            .await
            .unwrap();
    }
    store
        .create_upload(&upload("c1", "c", "k1", T0))
        .await
        .unwrap();

    let list = |prefix: &'static str, key_marker: &'static str, id_marker: &'static str, n| {
        let store = store.clone();
        async move {
            store
                .list_uploads("b", prefix, key_marker, id_marker, n)
                .await
                .unwrap()
                .into_iter()
                .map(|u| format!("{}/{}", u.key, u.id))
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(
        list("", "", "", 100).await,
        ["Z/u8", "j/u0", "k1/u1", "k1/u2", "k2/u3", "é/u9"]
    );
    assert_eq!(list("", "", "", 2).await, ["Z/u8", "j/u0"]);
    assert_eq!(list("k", "", "", 100).await, ["k1/u1", "k1/u2", "k2/u3"]);
    assert_eq!(list("k1", "", "", 100).await, ["k1/u1", "k1/u2"]);
    assert_eq!(list("", "k1", "u1", 100).await, ["k1/u2", "k2/u3", "é/u9"]);
    assert_eq!(list("", "k1", "u2", 100).await, ["k2/u3", "é/u9"]);
    assert_eq!(list("", "k1", "", 1).await, ["k1/u1"]);
    assert_eq!(list("", "k2", "~", 100).await, ["é/u9"]);
    assert_eq!(list("k", "k1", "u1", 1).await, ["k1/u2"]);
    assert!(list("k", "k2", "u3", 100).await.is_empty());
    assert!(list("x", "", "", 100).await.is_empty());
    let full = store.list_uploads("c", "", "", "", 100).await.unwrap();
    assert_eq!(full.len(), 1);
    assert_same_upload(&full[0], &upload("c1", "c", "k1", T0));

    // Oldest first, strictly before the cut-off.
    let old = store
        .uploads_initiated_before(at(T0 + 30), 100)
        .await
        .unwrap();
    assert_eq!(old, ["c1", "u1", "u3"]);
    let old = store
        .uploads_initiated_before(at(T0 + 31), 2)
        .await
        .unwrap();
    assert_eq!(old, ["c1", "u1"]);
    assert!(
        store
            .uploads_initiated_before(at(T0), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .uploads_initiated_before(far_future(), usize::MAX)
            .await
            .unwrap()
            .len(),
        7
    );
}

/// A completion is remembered with the object it made, for a retried CompleteMultipartUpload:
/// found while that object is its key's, not once it is replaced or deleted, and forgotten
/// once older than the cut-off.
async fn completed_uploads_remembered(store: Store) {
    make_bucket(&store, "b").await;
    let gc_due = at(T0 + 60_000);
    let mut made = Vec::new();
    for (id, key, completed_ms) in [("up-a", "a", T0 + 10), ("up-b", "b", T0 + 20)] {
        store
            .create_upload(&upload(id, "b", key, T0))
            .await
            .unwrap();
        let chunks = layout(&[5]);
        let p = part(1, &chunks);
        store_part(&store, id, &p, &chunks).await;
        let mut o = object("b", key, &[], &format!("etag-{key}-1"));
        o.size = 5;
        o.parts_count = Some(1);
        o.last_modified = at(completed_ms);
        store
            .complete_upload(id, &o, &[p], &WriteCondition::Always, gc_due)
            .await
            .unwrap();
        made.push(o);
    }
    assert!(store.upload("up-a").await.unwrap().is_none());
    assert_same_object(
        &store
            .completed_upload("up-a")
            .await
            .unwrap()
            .expect("remembered"),
        &made[0],
    );
    assert_same_object(
        &store
            .completed_upload("up-b")
            .await
            .unwrap()
            .expect("remembered"),
        &made[1],
    );
    assert!(store.completed_upload("up-c").await.unwrap().is_none());

    // Once the key holds another object, or none, the completion no longer answers.
    let other_chunks = layout(&[2]);
    put(
        &store,
        &object("b", "a", &other_chunks, "newer"),
        &other_chunks,
    )
    .await;
    assert!(store.completed_upload("up-a").await.unwrap().is_none());
    store.delete_object("b", "b", gc_due).await.unwrap();
    assert!(store.completed_upload("up-b").await.unwrap().is_none());

    // Forgetting goes by completion time.
    store
        .create_upload(&upload("up-c", "b", "c", T0))
        .await
        .unwrap();
    let chunks = layout(&[1]);
    let p = part(1, &chunks);
    store_part(&store, "up-c", &p, &chunks).await;
    let mut c = object("b", "c", &[], "etag-c");
    c.size = 1;
    c.last_modified = at(T0 + 30);
    store
        .complete_upload("up-c", &c, &[p], &WriteCondition::Always, gc_due)
        .await
        .unwrap();
    assert_eq!(
        store.forget_completed_uploads(at(T0 + 30)).await.unwrap(),
        2
    );
    assert!(store.completed_upload("up-c").await.unwrap().is_some());
    assert_eq!(
        store.forget_completed_uploads(at(T0 + 31)).await.unwrap(),
        1
    );
    assert!(store.completed_upload("up-c").await.unwrap().is_none());
}

async fn conditional_writes(store: Store) {
    make_bucket(&store, "b").await;
    let due = at(T0);
    let c1 = layout(&[2]);
    let o1 = object("b", "k", &c1, "etag1");
    store
        .put_object(&o1, &c1, &WriteCondition::IfAbsent, due)
        .await
        .unwrap();

    // If-None-Match: * on an existing key fails and changes nothing.
    let c2 = layout(&[2]);
    let o2 = object("b", "k", &c2, "etag2");
    assert!(matches!(
        store
            .put_object(&o2, &c2, &WriteCondition::IfAbsent, due)
            .await,
        Err(MetaError::PreconditionFailed)
    ));
    assert_eq!(
        store.object("b", "k").await.unwrap().expect("kept").id,
        o1.id
    );
    assert!(known(&store, &ids(&c2)).await.is_empty(), "no trace of it");
    assert!(queued(&store).await.is_empty());

    // If-None-Match: ETAG fails on the current ETag and changes nothing.
    assert!(matches!(
        store
            .put_object(
                &o2,
                &c2,
                &WriteCondition::IfNoneMatch("etag1".to_owned()),
                due
            )
            .await,
        Err(MetaError::PreconditionFailed)
    ));
    assert_eq!(
        store.object("b", "k").await.unwrap().expect("kept").id,
        o1.id
    );

    // If-Match with another ETag fails; with the current one or `*` it succeeds.
    assert!(matches!(
        store
            .put_object(&o2, &c2, &WriteCondition::IfMatch("etag0".to_owned()), due)
            .await,
        Err(MetaError::PreconditionFailed)
    ));
    assert_eq!(
        store.object("b", "k").await.unwrap().expect("kept").id,
        o1.id
    );
    store
        .put_object(&o2, &c2, &WriteCondition::IfMatch("etag1".to_owned()), due)
        .await
        .unwrap();
    assert_eq!(
        store.object("b", "k").await.unwrap().expect("new").id,
        o2.id
    );
    assert_eq!(queued(&store).await, ids(&c1));
    let c3 = layout(&[3]);
    let o3 = object("b", "k", &c3, "etag3");
    store
        .put_object(&o3, &c3, &WriteCondition::IfMatch("*".to_owned()), due)
        .await
        .unwrap();
    assert_eq!(
        store.object("b", "k").await.unwrap().expect("new").id,
        o3.id
    );

    // If-Match on a missing key.
    let c4 = layout(&[1]);
    for etag in ["etag3", "*"] {
        let o4 = object("b", "absent", &c4, "etag4");
        assert!(matches!(
            store
                .put_object(&o4, &c4, &WriteCondition::IfMatch(etag.to_owned()), due)
                .await,
            Err(MetaError::NoSuchKey)
        ));
    }
    assert!(store.object("b", "absent").await.unwrap().is_none());
    // The condition is checked before the bucket.
    let o5 = object("nobucket", "k", &c4, "e");
    assert!(matches!(
        store
            .put_object(&o5, &c4, &WriteCondition::IfMatch("*".to_owned()), due)
            .await,
        Err(MetaError::NoSuchKey)
    ));

    // CompleteMultipartUpload obeys the same conditions, and a failed one keeps the upload.
    store
        .create_upload(&upload("u", "b", "k", T0))
        .await
        .unwrap();
    let pc = layout(&[4]);
    let p = part(1, &pc);
    store_part(&store, "u", &p, &pc).await;
    let mut done = object("b", "k", &[], "mp-1");
    done.size = 4;
    for condition in [
        WriteCondition::IfAbsent,
        WriteCondition::IfMatch("etag1".to_owned()),
    ] {
        assert!(matches!(
            store
                .complete_upload("u", &done, std::slice::from_ref(&p), &condition, due)
                .await,
            Err(MetaError::PreconditionFailed)
        ));
    }
    assert!(store.upload("u").await.unwrap().is_some());
    assert_eq!(all_chunks(&store, p.owner).await, pc);
    assert_eq!(
        store.object("b", "k").await.unwrap().expect("kept").id,
        o3.id
    );
    store
        .complete_upload(
            "u",
            &done,
            std::slice::from_ref(&p),
            &WriteCondition::IfMatch("etag3".to_owned()),
            due,
        )
        .await
        .unwrap();
    assert_eq!(
        store.object("b", "k").await.unwrap().expect("new").id,
        done.id
    );
    let mut want = ids(&c1);
    want.extend(ids(&c2));
    want.extend(ids(&c3));
    assert_eq!(queued(&store).await, want);

    // If-None-Match: * on a completion to a fresh key succeeds.
    store
        .create_upload(&upload("u2", "b", "fresh", T0))
        .await
        .unwrap();
    let fresh = object("b", "fresh", &[], "mp-0");
    store
        .complete_upload("u2", &fresh, &[], &WriteCondition::IfAbsent, due)
        .await
        .unwrap();
    assert!(store.object("b", "fresh").await.unwrap().is_some());
}

const WRITERS: usize = 8;

/// Starts `WRITERS` tasks at once, each calling `write(i)`, and returns their results in order.
async fn race<F, Fut, T>(write: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let barrier = barrier.clone();
        let fut = write(i);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("writer task"));
    }
    out
}

async fn concurrent_conditional_writers(store: Store) {
    make_bucket(&store, "b").await;
    let attempts: Vec<(ObjectMeta, Vec<ChunkRef>)> = (0..WRITERS)
        .map(|i| {
            let chunks = layout(&[3, 3]);
            (object("b", "contended", &chunks, &format!("e{i}")), chunks)
        })
        .collect();
    let results = race(|i| {
        let store = store.clone();
        let (o, chunks) = attempts[i].clone();
        async move {
            store
                .put_object(&o, &chunks, &WriteCondition::IfAbsent, at(T0))
                .await
        }
    })
    .await;
    let winners: Vec<usize> = (0..WRITERS).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one IfAbsent writer wins");
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(MetaError::PreconditionFailed)),
            "unexpected {r:?}"
        );
    }
    let (winner, winner_chunks) = &attempts[winners[0]];
    let visible = store.object("b", "contended").await.unwrap().expect("won");
    assert_same_object(&visible, winner);
    assert_eq!(&all_chunks(&store, winner.id).await, winner_chunks);
    assert!(queued(&store).await.is_empty());
    // The losers' chunks were never recorded: they are orphans for the orphan sweep.
    let losers: HashSet<ChunkId> = attempts
        .iter()
        .filter(|(o, _)| o.id != winner.id)
        .flat_map(|(_, c)| ids(c))
        .collect();
    assert!(known(&store, &losers).await.is_empty());
}

async fn concurrent_unconditional_writers(store: Store) {
    make_bucket(&store, "b").await;
    let first_chunks = layout(&[5]);
    put(
        &store,
        &object("b", "hot", &first_chunks, "first"),
        &first_chunks,
    )
    .await;
    let attempts: Vec<(ObjectMeta, Vec<ChunkRef>)> = (0..WRITERS)
        .map(|i| {
            let chunks = layout(&[2, 2, 1]);
            (object("b", "hot", &chunks, &format!("e{i}")), chunks)
        })
        .collect();
    let results = race(|i| {
        let store = store.clone();
        let (o, chunks) = attempts[i].clone();
        async move {
            store
                .put_object(&o, &chunks, &WriteCondition::Always, at(T0))
                .await
        }
    })
    .await;
    for r in &results {
        assert!(r.is_ok(), "unconditional writer failed: {r:?}");
    }
    let visible = store.object("b", "hot").await.unwrap().expect("visible");
    let (winner, winner_chunks) = attempts
        .iter()
        .find(|(o, _)| o.id == visible.id)
        .expect("the visible object is one of the writers'");
    assert_same_object(&visible, winner);
    let live = all_chunks(&store, visible.id).await;
    assert_eq!(&live, winner_chunks);

    // Every chunk written is either live or queued, never both, never neither.
    let mut losers = ids(&first_chunks);
    for (o, chunks) in &attempts {
        if o.id != visible.id {
            losers.extend(ids(chunks));
        }
    }
    assert_eq!(queued(&store).await, losers);
    let mut everything = losers.clone();
    everything.extend(ids(&live));
    assert_eq!(everything.len(), 3 * WRITERS + 1);
    assert_eq!(known(&store, &everything).await, everything);
    let listed = list_from_start(&store, "b", 100).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, visible.id);

    // Concurrent deletes: one finds the object, its chunks join the queue.
    let deleted = race(|_| {
        let store = store.clone();
        async move { store.delete_object("b", "hot", at(T0)).await }
    })
    .await;
    assert_eq!(
        deleted.iter().filter(|r| matches!(r, Ok(true))).count(),
        1,
        "{deleted:?}"
    );
    assert!(deleted.iter().all(Result::is_ok));
    assert_eq!(queued(&store).await, everything);
}

async fn concurrent_part_writers(store: Store) {
    make_bucket(&store, "b").await;
    store
        .create_upload(&upload("u", "b", "k", T0))
        .await
        .unwrap();
    // Every writer stores part 1 (as a retrying client would), plus a part of its own.
    let attempts: Vec<[(Part, Vec<ChunkRef>); 2]> = (0..WRITERS)
        .map(|i| {
            let same = layout(&[4, 4]);
            let own = layout(&[1]);
            [(part(1, &same), same), (part(2 + i as u32, &own), own)]
        })
        .collect();
    let results = race(|i| {
        let store = store.clone();
        let writes = attempts[i].clone();
        async move {
            for (p, chunks) in &writes {
                store.put_part("u", p, chunks, at(T0)).await?;
            }
            Ok::<(), MetaError>(())
        }
    })
    .await;
    for r in &results {
        assert!(r.is_ok(), "part writer failed: {r:?}");
    }
    let parts = store.list_parts("u", 0, 100).await.unwrap();
    let numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
    let want: Vec<u32> = (1..=1 + WRITERS as u32).collect();
    assert_eq!(numbers, want);
    let kept = &parts[0];
    let mut all = HashSet::new();
    let mut losers = HashSet::new();
    for [(p, chunks), (_, own)] in &attempts {
        all.extend(ids(chunks));
        all.extend(ids(own));
        if p.owner != kept.owner {
            losers.extend(ids(chunks));
        }
    }
    assert_eq!(losers.len(), 2 * (WRITERS - 1));
    assert_eq!(queued(&store).await, losers);
    assert_eq!(known(&store, &all).await, all);

    // Completing while a racing abort runs: exactly one of them takes the upload.
    let parts_for_complete = parts.clone();
    let size = parts.iter().map(|p| p.size).sum();
    let outcome = race(|i| {
        let store = store.clone();
        let parts = parts_for_complete.clone();
        async move {
            if i % 2 == 0 {
                let mut o = object("b", "k", &[], &format!("done{i}"));
                o.size = size;
                store
                    .complete_upload("u", &o, &parts, &WriteCondition::Always, at(T0))
                    .await
                    .map(|()| "completed")
            } else {
                store
                    .abort_upload("u", at(T0))
                    .await
                    .map(|found| if found { "aborted" } else { "gone" })
            }
        }
    })
    .await;
    let takers: Vec<&str> = outcome
        .iter()
        .filter_map(|r| match r {
            Ok("completed") | Ok("aborted") => r.as_ref().ok().copied(),
            Ok(_) | Err(MetaError::NoSuchUpload) => None,
            Err(e) => panic!("unexpected {e}"),
        })
        .collect();
    assert_eq!(takers.len(), 1, "{outcome:?}");
    assert!(store.upload("u").await.unwrap().is_none());
    // Whoever won, every chunk is accounted for exactly once.
    let live: HashSet<ChunkId> = match store.object("b", "k").await.unwrap() {
        Some(o) => {
            assert_eq!(takers[0], "completed");
            ids(&all_chunks(&store, o.id).await)
        }
        None => {
            assert_eq!(takers[0], "aborted");
            HashSet::new()
        }
    };
    let gc = queued(&store).await;
    assert!(live.is_disjoint(&gc));
    let mut union = live;
    union.extend(gc);
    assert_eq!(union, all);
}

// ------------------------------------------------------------------------------ cluster cases

fn node(id: Uuid, address: &str, added_ms: i64) -> NodeInfo {
    NodeInfo {
        id,
        address: address.to_owned(),
        zone: None,
        state: NodeState::Up,
        capacity: None,
        used: 0,
        free: None,
        last_seen: None,
        added: at(added_ms),
    }
}

/// Node ids whose text sorts in the given order.
fn node_ids() -> [Uuid; 3] {
    let mut ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    ids.sort_by_key(|id| id.to_string());
    ids
}

async fn nodes(_store: Store, cluster: Cluster) {
    assert!(cluster.nodes().await.unwrap().is_empty());
    let [a, b, c] = node_ids();
    let mut nc = node(c, "http://127.0.0.1:7003", T0);
    nc.zone = Some("zone-1".to_owned());
    nc.capacity = Some(128 << 20);
    nc.used = 5;
    nc.free = Some(1 << 40);
    nc.last_seen = Some(at(T0 + 3));
    let nb = node(b, "http://127.0.0.1:7002", T0 + 10);
    let na = node(a, "http://127.0.0.1:7001", T0 + 10);
    for n in [&nc, &nb, &na] {
        cluster.add_node(n).await.unwrap();
    }
    // By time added, then id.
    assert_eq!(
        cluster.nodes().await.unwrap(),
        [nc.clone(), na.clone(), nb.clone()]
    );

    // Adding a known node changes only its address and zone.
    let mut moved = node(c, "http://10.0.0.3:7000", T0 + 99);
    moved.zone = Some("zone-2".to_owned());
    moved.state = NodeState::Down;
    cluster.add_node(&moved).await.unwrap();
    let mut want_c = nc.clone();
    want_c.address = moved.address.clone();
    want_c.zone = moved.zone.clone();
    assert_eq!(cluster.nodes().await.unwrap()[0], want_c);

    // A health report brings a down node up but leaves a draining one draining.
    assert!(cluster.set_node_state(a, NodeState::Down).await.unwrap());
    assert!(
        cluster
            .set_node_state(b, NodeState::Draining)
            .await
            .unwrap()
    );
    assert!(
        !cluster
            .set_node_state(Uuid::new_v4(), NodeState::Down)
            .await
            .unwrap()
    );
    let listed = cluster.nodes().await.unwrap();
    assert_eq!(listed[1].state, NodeState::Down);
    assert_eq!(listed[2].state, NodeState::Draining);
    for id in [a, b] {
        cluster
            .node_seen(id, Some(1000), 400, Some(600), at(T0 + 500))
            .await
            .unwrap();
    }
    cluster
        .node_seen(Uuid::new_v4(), None, 1, None, at(T0))
        .await
        .unwrap();
    let listed = cluster.nodes().await.unwrap();
    let mut want_a = na.clone();
    want_a.capacity = Some(1000);
    want_a.used = 400;
    want_a.free = Some(600);
    want_a.last_seen = Some(at(T0 + 500));
    let mut want_b = nb.clone();
    want_b.capacity = Some(1000);
    want_b.used = 400;
    want_b.free = Some(600);
    want_b.last_seen = Some(at(T0 + 500));
    want_b.state = NodeState::Draining;
    assert_eq!(listed, [want_c.clone(), want_a, want_b]);
    cluster
        .node_seen(c, None, 0, None, at(T0 + 600))
        .await
        .unwrap();
    let listed = cluster.nodes().await.unwrap();
    assert_eq!(listed[0].capacity, None);
    assert_eq!(listed[0].free, None);
    assert_eq!(listed[0].used, 0);

    // Removing a node forgets its replica rows too.
    let chunk = ChunkId::random();
    cluster.add_replica(chunk, a, at(T0)).await.unwrap();
    cluster.add_replica(chunk, b, at(T0)).await.unwrap();
    assert!(cluster.remove_node(a).await.unwrap());
    assert!(!cluster.remove_node(a).await.unwrap());
    assert_eq!(cluster.replicas(chunk).await.unwrap(), [b]);
    let ids: Vec<Uuid> = cluster
        .nodes()
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, [c, b]);
}

async fn replica_rows(_store: Store, cluster: Cluster) {
    let [a, b, c] = node_ids();
    let mut chunks: Vec<ChunkId> = (0..5).map(|_| ChunkId::random()).collect();
    chunks.sort_by_key(ChunkId::to_string);
    assert!(cluster.replicas(chunks[0]).await.unwrap().is_empty());
    assert!(cluster.replica_counts().await.unwrap().is_empty());
    // Added out of order, and twice: a row per (chunk, node).
    for &chunk in chunks.iter().rev() {
        cluster.add_replica(chunk, c, at(T0)).await.unwrap();
        cluster.add_replica(chunk, a, at(T0)).await.unwrap();
        cluster.add_replica(chunk, a, at(T0 + 1)).await.unwrap();
    }
    cluster.add_replica(chunks[2], b, at(T0)).await.unwrap();
    assert_eq!(cluster.replicas(chunks[2]).await.unwrap(), [a, b, c]);
    assert_eq!(cluster.replicas(chunks[0]).await.unwrap(), [a, c]);
    let mut counts = cluster.replica_counts().await.unwrap();
    counts.sort();
    let mut want = vec![(a, 5), (b, 1), (c, 5)];
    want.sort();
    assert_eq!(counts, want);

    // node_chunks pages through a node's chunks in id order.
    assert_eq!(cluster.node_chunks(a, None, 100).await.unwrap(), chunks);
    assert_eq!(cluster.node_chunks(a, None, 2).await.unwrap(), chunks[..2]);
    assert_eq!(
        cluster.node_chunks(a, Some(chunks[1]), 2).await.unwrap(),
        chunks[2..4]
    );
    assert!(
        cluster
            .node_chunks(a, Some(chunks[4]), 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        cluster.node_chunks(b, None, usize::MAX).await.unwrap(),
        [chunks[2]]
    );
    assert!(
        cluster
            .node_chunks(Uuid::new_v4(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    cluster.remove_replica(chunks[2], a).await.unwrap();
    cluster.remove_replica(chunks[2], a).await.unwrap();
    assert_eq!(cluster.replicas(chunks[2]).await.unwrap(), [b, c]);
    assert_eq!(
        cluster.node_chunks(a, Some(chunks[1]), 1).await.unwrap(),
        [chunks[3]]
    );
}

async fn referenced_and_abandoned_chunks(store: Store, cluster: Cluster) {
    make_bucket(&store, "b").await;
    let [n1, n2, _] = node_ids();
    let object_chunks = layout(&[3, 4]);
    let o = object("b", "dir/k", &object_chunks, "e");
    put(&store, &o, &object_chunks).await;
    store
        .create_upload(&upload("u", "b", "k2", T0))
        .await
        .unwrap();
    let part_chunks = layout(&[6]);
    let p = part(1, &part_chunks);
    store_part(&store, "u", &p, &part_chunks).await;
    // Replaced, so only in the GC queue.
    let gone_chunks = layout(&[2]);
    let gone = object("b", "old", &gone_chunks, "e");
    put(&store, &gone, &gone_chunks).await;
    assert!(store.delete_object("b", "old", at(T0)).await.unwrap());

    let referenced: Vec<ChunkRef> = object_chunks.iter().chain(&part_chunks).copied().collect();
    for c in &referenced {
        cluster.add_replica(c.chunk, n2, at(T0)).await.unwrap();
    }
    cluster
        .add_replica(referenced[0].chunk, n1, at(T0))
        .await
        .unwrap();
    let mut want: Vec<ChunkReplicas> = referenced
        .iter()
        .map(|c| ChunkReplicas {
            chunk: c.chunk,
            size: c.size,
            digest: c.digest,
            nodes: if c.chunk == referenced[0].chunk {
                vec![n1, n2]
            } else {
                vec![n2]
            },
        })
        .collect();
    want.sort_by_key(|c| c.chunk.to_string());
    assert_eq!(cluster.referenced_chunks(None, 100).await.unwrap(), want);
    assert_eq!(cluster.referenced_chunks(None, 2).await.unwrap(), want[..2]);
    assert_eq!(
        cluster
            .referenced_chunks(Some(want[1].chunk), 100)
            .await
            .unwrap(),
        want[2..]
    );
    // A chunk without replica rows still counts, with no nodes.
    cluster.remove_node(n2).await.unwrap();
    let after = cluster.referenced_chunks(None, 100).await.unwrap();
    assert_eq!(after.len(), 3);
    assert!(
        after
            .iter()
            .all(|c| c.chunk == referenced[0].chunk || c.nodes.is_empty())
    );

    // chunk_object names the object a chunk belongs to; parts and strangers have none.
    assert_eq!(
        cluster
            .chunk_object(object_chunks[1].chunk)
            .await
            .unwrap()
            .as_deref(),
        Some("b/dir/k")
    );
    assert_eq!(
        cluster.chunk_object(part_chunks[0].chunk).await.unwrap(),
        None
    );
    assert_eq!(
        cluster.chunk_object(gone_chunks[0].chunk).await.unwrap(),
        None
    );
    assert_eq!(cluster.chunk_object(ChunkId::random()).await.unwrap(), None);

    // Abandoned: replica rows older than the cut-off for chunks nothing references.
    let abandoned = ChunkId::random();
    let recent = ChunkId::random();
    cluster
        .add_replica(abandoned, n1, at(T0 + 10))
        .await
        .unwrap();
    cluster
        .add_replica(abandoned, n2, at(T0 + 20))
        .await
        .unwrap();
    cluster
        .add_replica(recent, n1, at(T0 + 1000))
        .await
        .unwrap();
    cluster
        .add_replica(gone_chunks[0].chunk, n1, at(T0))
        .await
        .unwrap();
    cluster
        .add_replica(object_chunks[0].chunk, n1, at(T0))
        .await
        .unwrap();
    let before_gc = queued(&store).await;
    assert_eq!(
        cluster.forget_abandoned_chunks(at(T0 + 500)).await.unwrap(),
        2,
        "both rows of the abandoned chunk; not those of a referenced or a queued one"
    );
    assert!(cluster.replicas(abandoned).await.unwrap().is_empty());
    assert_eq!(cluster.replicas(recent).await.unwrap(), vec![n1]);
    assert_eq!(
        cluster.replicas(gone_chunks[0].chunk).await.unwrap(),
        vec![n1],
        "a queued chunk's copies stay for GC to delete after its grace period"
    );
    assert_eq!(
        cluster.replicas(object_chunks[0].chunk).await.unwrap(),
        vec![n1]
    );
    assert_eq!(queued(&store).await, before_gc, "nothing queued");
    assert_eq!(
        cluster.forget_abandoned_chunks(at(T0 + 500)).await.unwrap(),
        0,
        "already forgotten"
    );
    assert_eq!(
        cluster
            .forget_abandoned_chunks(at(T0 + 2000))
            .await
            .unwrap(),
        1,
        "the recent one, once old enough"
    );
    assert!(cluster.replicas(recent).await.unwrap().is_empty());
}

async fn leases(_store: Store, cluster: Cluster) {
    let lease = "coordinator";
    assert!(
        cluster
            .acquire_lease(lease, "gw-a", at(T0), at(T0 + 100))
            .await
            .unwrap()
    );
    assert!(
        !cluster
            .acquire_lease(lease, "gw-b", at(T0 + 50), at(T0 + 150))
            .await
            .unwrap()
    );
    // Not yet expired at the very instant it ends.
    assert!(
        !cluster
            .acquire_lease(lease, "gw-b", at(T0 + 100), at(T0 + 200))
            .await
            .unwrap()
    );
    // The holder renews, even after expiry.
    assert!(
        cluster
            .acquire_lease(lease, "gw-a", at(T0 + 90), at(T0 + 190))
            .await
            .unwrap()
    );
    assert!(
        !cluster
            .acquire_lease(lease, "gw-b", at(T0 + 150), at(T0 + 250))
            .await
            .unwrap()
    );
    assert!(
        cluster
            .acquire_lease(lease, "gw-b", at(T0 + 191), at(T0 + 291))
            .await
            .unwrap()
    );
    assert!(
        !cluster
            .acquire_lease(lease, "gw-a", at(T0 + 200), at(T0 + 300))
            .await
            .unwrap()
    );
    // Leases are independent by name.
    assert!(
        cluster
            .acquire_lease("other", "gw-a", at(T0 + 200), at(T0 + 300))
            .await
            .unwrap()
    );

    // Racing for an expired lease: exactly one gateway wins.
    let won = race(|i| {
        let cluster = cluster.clone();
        async move {
            cluster
                .acquire_lease(lease, &format!("gw-{i}"), at(T0 + 1000), at(T0 + 2000))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(won.iter().filter(|&&w| w).count(), 1, "{won:?}");
}

// ------------------------------------------------------------------------------- shared cases

/// Several gateways (stores opened separately on one database): what one commits, the others
/// read at once, and their writers to one key still leave one winner and lose no chunk.
async fn several_gateways(first: Metadata, url: String) {
    let mut gateways: Vec<Store> = vec![first.objects];
    for _ in 0..3 {
        gateways.push(meta::open_all(&url).await.expect("another gateway").objects);
    }
    make_bucket(&gateways[0], "b").await;
    assert!(gateways[3].bucket("b").await.unwrap().is_some());

    // Read-after-write across gateways.
    let c = layout(&[3, 3]);
    let o = object("b", "k", &c, "e");
    put(&gateways[1], &o, &c).await;
    for g in &gateways {
        assert_same_object(&g.object("b", "k").await.unwrap().expect("visible"), &o);
        assert_eq!(all_chunks(g, o.id).await, c);
    }
    assert!(gateways[2].delete_object("b", "k", at(T0)).await.unwrap());
    for g in &gateways {
        assert!(g.object("b", "k").await.unwrap().is_none());
    }

    // Conditional writers on different gateways: one winner.
    let attempts: Vec<(ObjectMeta, Vec<ChunkRef>)> = (0..WRITERS)
        .map(|i| {
            let chunks = layout(&[1, 1]);
            (object("b", "once", &chunks, &format!("e{i}")), chunks)
        })
        .collect();
    let results = race(|i| {
        let g = gateways[i % gateways.len()].clone();
        let (o, chunks) = attempts[i].clone();
        async move {
            g.put_object(&o, &chunks, &WriteCondition::IfAbsent, at(T0))
                .await
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(MetaError::PreconditionFailed)))
    );

    // Unconditional writers on different gateways: one visible, the rest queued.
    let before = queued(&gateways[0]).await;
    let attempts: Vec<(ObjectMeta, Vec<ChunkRef>)> = (0..WRITERS)
        .map(|i| {
            let chunks = layout(&[2, 1]);
            (object("b", "hot", &chunks, &format!("e{i}")), chunks)
        })
        .collect();
    let results = race(|i| {
        let g = gateways[i % gateways.len()].clone();
        let (o, chunks) = attempts[i].clone();
        async move {
            g.put_object(&o, &chunks, &WriteCondition::Always, at(T0))
                .await
        }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let visible = gateways[3].object("b", "hot").await.unwrap().expect("one");
    let mut losers = HashSet::new();
    let mut all = HashSet::new();
    for (o, chunks) in &attempts {
        all.extend(ids(chunks));
        if o.id != visible.id {
            losers.extend(ids(chunks));
        }
    }
    assert_eq!(losers.len(), 2 * (WRITERS - 1));
    let now_queued: HashSet<ChunkId> = queued(&gateways[2])
        .await
        .difference(&before)
        .copied()
        .collect();
    assert_eq!(now_queued, losers);
    let live = ids(&all_chunks(&gateways[1], visible.id).await);
    assert!(live.is_disjoint(&losers));
    assert_eq!(live.len(), 2);
    assert_eq!(known(&gateways[0], &all).await, all);
}
