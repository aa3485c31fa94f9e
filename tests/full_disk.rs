//! A full disk is an answer, not a wedge: `cairn server` on a 64 MiB tmpfs the test mounts is
//! filled through the S3 API until writes are refused with 507 `XMinioStorageFull`; deletes
//! (DeleteObject, DeleteObjects, AbortMultipartUpload) still work and free the space, and
//! writes succeed again, all without a restart. A server then started on the filesystem filled
//! to the last byte serves reads and deletes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "full";
/// Small enough to fill in a second or two, large enough for SQLite and a few objects.
const FS_SIZE: &str = "64m";
/// Each object spans four 1 MiB chunks.
const OBJECT_SIZE: usize = 4 * MIB;
/// Kept in the object's metadata row, no chunk file.
const INLINE_SIZE: usize = 16 * 1024;
/// How long freed space may take to come back: the collector runs every 2 s.
const RECOVERY: Duration = Duration::from_secs(15);

fn is_full(resp: &Resp) -> bool {
    resp.status == StatusCode::INSUFFICIENT_STORAGE
}

async fn delete_objects(client: &S3Client, keys: &[String]) -> Resp {
    let mut body = String::from("<Delete>");
    for key in keys {
        body.push_str(&format!("<Object><Key>{key}</Key></Object>"));
    }
    body.push_str("</Delete>");
    client.delete_objects(BUCKET, body.into_bytes()).await
}

/// Retries a PUT until the freed space is back (the collector deletes chunk files every 2 s).
async fn put_once_space_is_back(client: &S3Client, key: &str, body: &[u8]) {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let resp = client.put(BUCKET, key, body).await;
        if resp.status == StatusCode::OK {
            return;
        }
        resp.assert_error(StatusCode::INSUFFICIENT_STORAGE, "XMinioStorageFull");
        assert!(
            Instant::now() < deadline,
            "writes stayed refused after deletes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn full_disk_refuses_writes_then_recovers_without_restart() {
    let fs = match Tmpfs::mount(FS_SIZE) {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIPPED full_disk: cannot mount a tmpfs: {why}");
            return;
        }
    };
    let data: PathBuf = fs.path().join("data");
    let mut server = TestServer::start_on(data.clone()).await;
    let client = server.client();
    client.create_bucket(BUCKET).await;

    // An upload with one part, to abort once the disk is full.
    let upload = client.create_upload(BUCKET, "multi").await;
    client
        .upload_part_ok(BUCKET, "multi", &upload, 1, &random_bytes(1, 5 * MIB))
        .await;

    // Fill through the API until a write is refused.
    let mut stored = Vec::new();
    let refused = loop {
        let key = format!("obj-{}", stored.len());
        let body = random_bytes(stored.len() as u64 + 10, OBJECT_SIZE);
        let resp = client.put(BUCKET, &key, &body).await;
        if resp.status != StatusCode::OK {
            break (key, resp);
        }
        stored.push((key, body));
        assert!(stored.len() < 64, "a 64 MiB filesystem never filled");
    };
    let (refused_key, resp) = refused;
    resp.assert_error(StatusCode::INSUFFICIENT_STORAGE, "XMinioStorageFull");
    assert!(stored.len() >= 2, "only {} objects fit", stored.len());
    // Nothing half-written is visible.
    client
        .head(BUCKET, &refused_key)
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // More writes of every kind are refused the same way, never with a 500.
    let again = client
        .put(BUCKET, "again", &random_bytes(2, OBJECT_SIZE))
        .await;
    assert!(is_full(&again), "{}", again.status);
    let part = client
        .upload_part(BUCKET, "multi", &upload, 2, &random_bytes(3, 5 * MIB))
        .await;
    assert!(is_full(&part), "{}", part.status);

    // Objects small enough to live in their metadata row fill what is left, until SQLite
    // fails a commit for want of space: refused the same way, and the store does not wedge.
    let mut small = Vec::new();
    let refused_small = loop {
        let key = format!("small-{}", small.len());
        let resp = client
            .put(BUCKET, &key, &random_bytes(small.len() as u64, INLINE_SIZE))
            .await;
        if resp.status != StatusCode::OK {
            break resp;
        }
        small.push(key);
        assert!(small.len() < 5000, "the metadata store never filled");
    };
    refused_small.assert_error(StatusCode::INSUFFICIENT_STORAGE, "XMinioStorageFull");

    // Reads still work.
    let (first_key, first_body) = stored[0].clone();
    client.assert_object(BUCKET, &first_key, &first_body).await;

    // Deletes work on the full disk: one by one, in a batch, and aborting the upload.
    client
        .request(Method::DELETE, &object_path(BUCKET, "multi"))
        .query(&format!("uploadId={upload}"))
        .send()
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let (last_key, _) = stored.pop().expect("a stored object");
    client
        .delete(BUCKET, &last_key)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let mut batch: Vec<String> = stored.drain(1..).map(|(key, _)| key).collect();
    batch.extend(small);
    let resp = delete_objects(&client, &batch).await;
    resp.assert_status(StatusCode::OK);
    assert!(!resp.text().contains("<Error>"), "{}", resp.text());

    // Writes succeed again once the space is back, without a restart.
    let fresh = random_bytes(4, OBJECT_SIZE);
    put_once_space_is_back(&client, "fresh", &fresh).await;
    client.assert_object(BUCKET, "fresh", &fresh).await;

    // A server started on a filesystem full to the last byte serves reads and deletes.
    server.stop_gracefully().await;
    fill_to_the_last_byte(fs.path());
    server.restart().await;
    let client = server.client();
    client.assert_object(BUCKET, &first_key, &first_body).await;
    client
        .delete(BUCKET, "fresh")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    client
        .head(BUCKET, "fresh")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // And once the operator frees space, writes work again.
    std::fs::remove_file(fs.path().join("filler")).expect("remove filler");
    put_once_space_is_back(&client, "after", &fresh).await;
    drop(server);
}
