//! The abandoned-write window: the coordinator forgets the replica rows of chunks that no object
//! or part references once they are older than `--abandon-after` (their files then go with the
//! orphans), and a commit claims its chunks' rows in its transaction. A write slower than
//! `--abandon-after` must therefore fail cleanly, never be acknowledged pointing at deleted
//! chunks; a committed write's chunks are never forgotten. On SQLite and PostgreSQL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::checksum::ChecksumType;
use cairn::chunk::{ChunkId, ChunkRef};
use cairn::meta::{
    self, Bucket, ClusterMeta, MetaError, MetaStore, ObjectMeta, REPLICAS_SETTING, WriteCondition,
};
use cairn_test_support::*;
use http::{Method, StatusCode};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

const BUCKET: &str = "window";
/// Three 1 MiB chunks: the first is written to the nodes while the body is paused.
const BODY: usize = 3 * MIB;
/// The coordinator runs every second; this is many rounds.
const ROUNDS: Duration = Duration::from_secs(30);

cairn_test_support::on_sqlite_and_postgres!(
    write_paused_past_abandon_after_fails_cleanly,
    commit_after_forgetting_is_refused,
);

/// A PutObject whose body pauses, after its first chunk reached the data nodes, until the
/// coordinator has taken that chunk for abandoned and deleted its files: the rest of the body
/// then arrives, and the write must be refused (503, retryable) with nothing visible, not
/// acknowledged with a chunk that no longer exists.
async fn write_paused_past_abandon_after_fails_cleanly(backend: Backend) {
    let cluster = Cluster::start(Spec {
        gateway_flags: vec!["--abandon-after", "1s"],
        ..Spec::new(backend, 3)
    })
    .await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    let body = random_bytes(7, BODY);
    let head = client
        .request(Method::PUT, &object_path(BUCKET, "slow"))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(BODY as u64), &[]);
    let mut stream = TcpStream::connect(&cluster.gateways[0].addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    let paused_at = MIB + MIB / 2;
    stream
        .write_all(&body[..paused_at])
        .expect("write the first chunk and a half");
    stream.flush().expect("flush");

    let (first, took) = cluster
        .wait_for("the first chunk on the data nodes", ROUNDS, async || {
            let ids = cluster.all_chunk_ids();
            ids.first()
                .cloned()
                .ok_or_else(|| "no chunk file yet".to_owned())
        })
        .await;
    println!("first chunk {first} on the nodes after {took:?}");
    let (_, took) = cluster
        .wait_for("the abandoned chunk's files deleted", ROUNDS, async || {
            let left: Vec<usize> = cluster
                .chunk_files()
                .into_iter()
                .filter(|(_, files)| files.contains_key(&first))
                .map(|(node, _)| node)
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("still on nodes {left:?}"))
            }
        })
        .await;
    println!("its files were deleted {took:?} later, the body still paused");

    stream
        .write_all(&body[paused_at..])
        .expect("write the rest of the body");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = RawResponse::parse(&answer).expect("an answer to the write");
    println!(
        "the write was answered {} {}",
        answer.status,
        answer.code().unwrap_or_default()
    );
    assert_eq!(
        (answer.status, answer.code().as_deref()),
        (503, Some("ServiceUnavailable")),
        "a write whose chunk was collected must fail, retryably: {}",
        answer.head
    );
    client
        .get(BUCKET, "slow")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchKey");

    // The same write, sent at once, succeeds: nothing is left wedged.
    client.put_ok(BUCKET, "slow", &body).await;
    client.assert_object(BUCKET, "slow", &body).await;
    let start = Instant::now();
    cluster.wait_fully_replicated(ROUNDS).await;
    // Rounds go on forgetting only what nothing references.
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.assert_object(BUCKET, "slow", &body).await;
    println!(
        "the retried write is intact after {:?} of rounds",
        start.elapsed()
    );
}

/// The metadata store alone, deterministically: a commit naming a chunk whose replica rows were
/// forgotten fails with `ChunkCollected` (PutObject and UploadPart alike) and makes nothing
/// visible; a committed chunk is never forgotten, however old its rows; and a store of `cairn
/// server` (no replica rows at all) commits as before.
async fn commit_after_forgetting_is_refused(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = MetaDb::create(backend, dir.path()).await;
    let (store, cluster, created) = open_with_bucket(&db).await;

    // Before the store is a cluster's, a chunk with no replica row commits.
    let local = ChunkId::random();
    put(&store, "local", local)
        .await
        .expect("a cairn server store has no replica rows to claim");
    store
        .set_setting(REPLICAS_SETTING, "2")
        .await
        .expect("mark the store a cluster's");

    let long_ago = created - time::Duration::hours(1);
    let node = Uuid::new_v4();
    let (abandoned, committed, part_chunk) =
        (ChunkId::random(), ChunkId::random(), ChunkId::random());
    for chunk in [abandoned, committed, part_chunk] {
        cluster.add_replica(chunk, node, long_ago).await.unwrap();
    }
    put(&store, "committed", committed)
        .await
        .expect("a chunk with its replica rows commits");
    let forgotten = cluster
        .forget_abandoned_chunks(created - time::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        forgotten, 2,
        "the abandoned chunk and the part's, not the object's"
    );
    assert_eq!(cluster.replicas(committed).await.unwrap(), vec![node]);

    match put(&store, "late", abandoned).await {
        Err(MetaError::ChunkCollected(id)) => assert_eq!(id, abandoned),
        other => panic!("a commit of a forgotten chunk answered {other:?}"),
    }
    assert!(store.object(BUCKET, "late").await.unwrap().is_none());

    let upload = meta::Upload {
        id: "upload-1".to_owned(),
        bucket: BUCKET.to_owned(),
        key: "parts".to_owned(),
        initiated: created,
        headers: Default::default(),
        checksum_algorithm: None,
        checksum_type: ChecksumType::FullObject,
        owner: String::new(),
        acl: None,
    };
    store.create_upload(&upload).await.unwrap();
    let part = meta::Part {
        number: 1,
        owner: Uuid::new_v4(),
        size: 10,
        etag: "\"e\"".to_owned(),
        last_modified: created,
        checksum: None,
    };
    match store
        .put_part(&upload.id, &part, &[chunk_ref(part_chunk)], far_future())
        .await
    {
        Err(MetaError::ChunkCollected(id)) => assert_eq!(id, part_chunk),
        other => panic!("a part of a forgotten chunk answered {other:?}"),
    }
    assert!(
        store
            .list_parts(&upload.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn put(store: &Arc<dyn MetaStore>, key: &str, chunk: ChunkId) -> Result<(), MetaError> {
    let object = ObjectMeta {
        bucket: BUCKET.to_owned(),
        key: key.to_owned(),
        id: Uuid::new_v4(),
        size: 10,
        etag: "\"e\"".to_owned(),
        last_modified: OffsetDateTime::now_utc(),
        headers: Default::default(),
        checksum: None,
        checksum_type: ChecksumType::FullObject,
        parts_count: None,
        inline: None,
        owner: String::new(),
        acl: None,
    };
    store
        .put_object(
            &object,
            &[chunk_ref(chunk)],
            &WriteCondition::Always,
            far_future(),
        )
        .await
}

fn chunk_ref(chunk: ChunkId) -> ChunkRef {
    ChunkRef {
        offset: 0,
        size: 10,
        chunk,
        digest: None,
    }
}

/// The stores of `db`, with the test's bucket created now; returns the time it was created.
async fn open_with_bucket(
    db: &MetaDb,
) -> (Arc<dyn MetaStore>, Arc<dyn ClusterMeta>, OffsetDateTime) {
    let opened = meta::open_all(&db.url).await.expect("open the store");
    let created = OffsetDateTime::now_utc();
    opened
        .objects
        .create_bucket(&Bucket {
            name: BUCKET.to_owned(),
            created,
            owner: String::new(),
            access: Default::default(),
        })
        .await
        .unwrap();
    (opened.objects, opened.cluster, created)
}

fn far_future() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(1)
}

/// PostgreSQL, where a commit and the coordinator run at once: whichever takes a chunk's replica
/// rows first wins, and the other sees it. Another connection holds the first step's row locks
/// open while the second step waits on them (seen in `pg_stat_activity`), then commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_claim_and_forget_race() {
    let db = MetaDb::postgres(Collation::Default).await;
    let (store, cluster, created) = open_with_bucket(&db).await;
    store.set_setting(REPLICAS_SETTING, "2").await.unwrap();
    let long_ago = created - time::Duration::hours(1);
    let cut_off = created - time::Duration::minutes(1);
    let mut other = PgConnection::connect(&db.url).await.expect("connect");

    // The commit first: a transaction claims the rows (as `SqlMeta::claim_chunks` does) and
    // references the chunk; the coordinator's delete waits, then skips the claimed rows.
    let claimed = ChunkId::random();
    cluster
        .add_replica(claimed, Uuid::new_v4(), long_ago)
        .await
        .unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("UPDATE replicas SET created_ms = $1 WHERE chunk_id = $2")
        .bind((created.unix_timestamp_nanos() / 1_000_000) as i64)
        .bind(claimed.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let forget = tokio::spawn({
        let cluster = cluster.clone();
        async move { cluster.forget_abandoned_chunks(cut_off).await.unwrap() }
    });
    wait_for_lock(&db.url).await;
    sqlx::query("INSERT INTO chunks (owner, byte_offset, size, chunk_id) VALUES ($1, 0, 10, $2)")
        .bind(Uuid::new_v4().to_string())
        .bind(claimed.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(forget.await.unwrap(), 0, "a claimed row was forgotten");
    assert_eq!(cluster.replicas(claimed).await.unwrap().len(), 1);

    // The coordinator first: a transaction deletes the rows (as `forget_abandoned_chunks`
    // does); the real commit waits, then finds them gone and fails.
    let forgotten = ChunkId::random();
    cluster
        .add_replica(forgotten, Uuid::new_v4(), long_ago)
        .await
        .unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("DELETE FROM replicas WHERE chunk_id = $1")
        .bind(forgotten.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let commit = tokio::spawn({
        let store = store.clone();
        async move { put(&store, "raced", forgotten).await }
    });
    wait_for_lock(&db.url).await;
    tx.commit().await.unwrap();
    match commit.await.unwrap() {
        Err(MetaError::ChunkCollected(id)) => assert_eq!(id, forgotten),
        other => panic!("a commit racing the coordinator answered {other:?}"),
    }
    assert!(store.object(BUCKET, "raced").await.unwrap().is_none());
    println!("claim before forget keeps the chunk; forget before claim fails the commit");
}

/// Waits until some session of the test's database waits for a row lock.
async fn wait_for_lock(url: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "nothing waited for the row lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
