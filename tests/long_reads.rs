//! A read of an object of more than one page of chunk references (4096) that is overwritten or
//! deleted while the read is under way: the read loads its second page after the object's chunk
//! map rows left the `chunks` table, and must find them in the GC queue, returning the original
//! bytes in full within the grace period. 4 KiB chunks (the smallest allowed) keep the object at
//! 17 MiB. On `cairn server` and on a cluster over SQLite and PostgreSQL.

use std::time::Instant;

use cairn_test_support::*;

const BUCKET: &str = "long";
const KEY: &str = "map";
/// One page of chunk references (`CHUNK_PAGE` in src/gateway/get.rs) and 200 chunks more.
const CHUNKS: usize = 4096 + 200;
const CHUNK_SIZE: usize = 4096;
const SIZE: usize = CHUNKS * CHUNK_SIZE;
/// What the client reads before the object changes: little, so that the socket buffers the
/// gateway fills meanwhile (a few MiB) keep its cursor well inside the first page.
const READ_FIRST: usize = 64 * 1024;
/// Long enough for the whole test; the chunks must outlive the change for the read to finish.
const GRACE: &str = "10m";

cairn_test_support::on_sqlite_and_postgres!(cluster_read_survives_overwrite_and_delete);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_read_survives_overwrite_and_delete() {
    let server = TestServer::start_with_args(&["--chunk-size", "4KiB", "--gc-grace", GRACE]).await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    read_while_changed(&client).await;
}

async fn cluster_read_survives_overwrite_and_delete(backend: Backend) {
    let cluster = Cluster::start(Spec {
        replicas: 1,
        write_quorum: 1,
        chunk_size: "4KiB",
        gateway_flags: vec!["--gc-grace", GRACE],
        ..Spec::new(backend, 2)
    })
    .await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    read_while_changed(&client).await;
}

/// Two reads of the original: one while the key is overwritten, one while it is deleted.
async fn read_while_changed(client: &S3Client) {
    let original = random_bytes(11, SIZE);
    let started = Instant::now();
    client.put_ok(BUCKET, KEY, &original).await;
    println!(
        "stored {SIZE} bytes in {CHUNKS} chunks in {:?}",
        started.elapsed()
    );

    let mut download = start_read(client).await;
    let replacement = random_bytes(12, 5 * CHUNK_SIZE);
    client.put_ok(BUCKET, KEY, &replacement).await;
    finish_read(&mut download, &original, "overwritten").await;
    client.assert_object(BUCKET, KEY, &replacement).await;

    client.put_ok(BUCKET, KEY, &original).await;
    let mut download = start_read(client).await;
    client
        .delete(BUCKET, KEY)
        .await
        .assert_status(http::StatusCode::NO_CONTENT);
    finish_read(&mut download, &original, "deleted").await;
    client
        .get(BUCKET, KEY)
        .await
        .assert_error(http::StatusCode::NOT_FOUND, "NoSuchKey");
}

/// Starts a GET of the object and reads its first bytes, then stops reading.
async fn start_read(client: &S3Client) -> (Download, Vec<u8>) {
    let mut download = client.get_streaming(BUCKET, KEY).await;
    assert_eq!(download.status(), http::StatusCode::OK);
    let mut got = Vec::with_capacity(SIZE);
    while got.len() < READ_FIRST {
        let piece = download
            .chunk()
            .await
            .expect("the first bytes")
            .expect("more than READ_FIRST bytes");
        got.extend_from_slice(&piece);
    }
    (download, got)
}

/// Reads the rest of a download begun before the key was `what`, which must be the original.
async fn finish_read(read: &mut (Download, Vec<u8>), original: &[u8], what: &str) {
    let (download, got) = read;
    loop {
        match download.chunk().await {
            Ok(Some(piece)) => got.extend_from_slice(&piece),
            Ok(None) => break,
            Err(e) => panic!(
                "the read of the object {what} mid-read broke after {} of {SIZE} bytes: {e}",
                got.len()
            ),
        }
    }
    assert_eq!(
        got.len(),
        original.len(),
        "bytes of the object {what} mid-read"
    );
    assert!(
        got[..] == original[..],
        "the read of the object {what} mid-read returned other bytes"
    );
    println!("a read of the object {what} mid-read returned all {SIZE} original bytes");
}
