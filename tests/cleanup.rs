//! Interrupted and replaced data: a client that disconnects mid-upload leaves no visible object
//! and, once the drop guard has run, no chunk file; overwrite, delete, abort and completing an
//! upload without some of its parts give their chunks back (the server runs with
//! `--gc-grace 0s`, so its collector, every 2 s, removes them promptly).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "cleanup";

/// Sends a request head declaring 3 MiB and 1.5 MiB of body, waits until the server has
/// put some of it on disk (so there is something to clean up), then hangs up.
async fn disconnect_mid_body(server: &TestServer, req: RequestBuilder<'_>) -> Vec<u8> {
    let declared = 3 * MIB;
    let before = server.chunk_files().len();
    let head = req
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(declared as u64), &[]);
    let mut stream = TcpStream::connect(&server.host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    stream
        .write_all(&random_bytes(1, declared / 2))
        .expect("write half the body");
    stream.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.chunk_files().len() <= before {
        assert!(Instant::now() < deadline, "the server wrote no chunk");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.shutdown(Shutdown::Both).expect("shutdown");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// An answer the server may give to a body cut short: nothing, or a 4xx (never a success).
fn assert_not_success(answer: &[u8]) {
    let text = String::from_utf8_lossy(answer);
    if let Some(status_line) = text.lines().next() {
        assert!(
            !status_line.contains(" 200 ") && !status_line.contains(" 500 "),
            "a truncated body was answered with {status_line}"
        );
    }
}

#[tokio::test]
async fn put_cut_short_leaves_nothing() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let req = client.request(Method::PUT, &object_path(BUCKET, "partial"));
    let answer = disconnect_mid_body(&server, req).await;
    assert_not_success(&answer);

    client
        .head(BUCKET, "partial")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let list = client.list(BUCKET, true, &[]).await;
    assert!(list.xml_values("Key").is_empty(), "{}", list.text());
    server.wait_for_chunk_files(0).await;

    // The server still works, and an earlier version of a key survives a failed overwrite.
    let data = random_bytes(2, MIB + 1);
    let etag = client.put_ok(BUCKET, "partial", &data).await;
    server.wait_for_chunk_files(2).await;
    let req = client.request(Method::PUT, &object_path(BUCKET, "partial"));
    assert_not_success(&disconnect_mid_body(&server, req).await);
    let files = server.wait_for_chunk_files(2).await;
    let get = client.get(BUCKET, "partial").await;
    assert_eq!(get.header("etag"), Some(etag.as_str()));
    assert!(get.body == data);
    assert_eq!(server.chunk_files(), files);
}

#[tokio::test]
async fn upload_part_cut_short_leaves_nothing() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let upload = client.create_upload(BUCKET, "mp").await;
    let req = client
        .request(Method::PUT, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("partNumber", "1"), ("uploadId", &upload)]));
    assert_not_success(&disconnect_mid_body(&server, req).await);

    let parts = client
        .request(Method::GET, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("uploadId", &upload)]))
        .send()
        .await;
    parts.assert_status(StatusCode::OK);
    assert!(
        xml_elements(&parts.text(), "Part").is_empty(),
        "{}",
        parts.text()
    );
    server.wait_for_chunk_files(0).await;

    // The upload is still usable.
    let data = random_bytes(3, 1000);
    let etag = client.upload_part_ok(BUCKET, "mp", &upload, 1, &data).await;
    client
        .complete(BUCKET, "mp", &upload, &[(1, etag)])
        .await
        .assert_status(StatusCode::OK);
    assert!(client.get(BUCKET, "mp").await.body == data);
}

#[tokio::test]
async fn body_shorter_than_content_length_is_refused() {
    let (server, client) = server_with_bucket(BUCKET).await;
    // The client stops sending but keeps the connection open for a moment, then closes:
    // whatever the server answers, nothing may be stored.
    let head = client
        .request(Method::PUT, &object_path(BUCKET, "short"))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(100), &[]);
    let answer = send_truncated(
        &server.host,
        &head,
        b"only forty bytes of the hundred promised",
    );
    assert_not_success(&answer);
    client
        .head(BUCKET, "short")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    server.wait_for_chunk_files(0).await;
}

#[tokio::test]
async fn overwrite_reclaims_chunks() {
    let (server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", &random_bytes(4, 3 * MIB)).await;
    let first = server.wait_for_chunk_files(3).await;

    let second_data = random_bytes(5, 2 * MIB + 1);
    client.put_ok(BUCKET, "k", &second_data).await;
    // The old 3 chunks go, the new 3 stay.
    let second = server.wait_for_chunk_files(3).await;
    assert!(
        second.iter().all(|f| !first.contains(f)),
        "old chunks still present: {second:?}"
    );
    assert!(client.get(BUCKET, "k").await.body == second_data);

    // A smaller overwrite (one chunk), then a small object kept in its metadata row and an
    // empty one, which need no chunk at all.
    client
        .put_ok(BUCKET, "k", &random_bytes(6, 64 * 1024))
        .await;
    server.wait_for_chunk_files(1).await;
    client.put_ok(BUCKET, "k", &random_bytes(6, 10)).await;
    server.wait_for_chunk_files(0).await;
    client.put_ok(BUCKET, "k", b"").await;
    assert!(client.get(BUCKET, "k").await.body.is_empty());
    assert!(server.chunk_files().is_empty());
}

#[tokio::test]
async fn delete_reclaims_chunks() {
    let (server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", &random_bytes(7, MIB)).await;
    client
        .put_ok(BUCKET, "other", &random_bytes(8, 64 * 1024))
        .await;
    server.wait_for_chunk_files(2).await;
    client
        .delete(BUCKET, "k")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    server.wait_for_chunk_files(1).await;

    // DeleteObjects reclaims too.
    let body = b"<Delete><Object><Key>other</Key></Object></Delete>".to_vec();
    client
        .delete_objects(BUCKET, body)
        .await
        .assert_status(StatusCode::OK);
    server.wait_for_chunk_files(0).await;
}

#[tokio::test]
async fn copy_then_delete_source_keeps_copy() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(9, 2 * MIB);
    client.put_ok(BUCKET, "src", &data).await;
    client
        .request(Method::PUT, &object_path(BUCKET, "dst"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/src"))
        .send()
        .await
        .assert_status(StatusCode::OK);
    client.delete(BUCKET, "src").await;
    server.wait_for_chunk_files(2).await;
    assert!(client.get(BUCKET, "dst").await.body == data);
}

#[tokio::test]
async fn abort_reclaims_parts() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let upload = client.create_upload(BUCKET, "mp").await;
    client
        .upload_part_ok(BUCKET, "mp", &upload, 1, &random_bytes(10, 2 * MIB))
        .await;
    client
        .upload_part_ok(BUCKET, "mp", &upload, 2, &random_bytes(11, 10))
        .await;
    server.wait_for_chunk_files(3).await;

    let resp = client
        .request(Method::DELETE, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("uploadId", &upload)]))
        .send()
        .await;
    resp.assert_status(StatusCode::NO_CONTENT);
    server.wait_for_chunk_files(0).await;
    client
        .request(Method::GET, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("uploadId", &upload)]))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    client
        .head(BUCKET, "mp")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn replaced_and_unused_parts_are_reclaimed() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let upload = client.create_upload(BUCKET, "mp").await;
    let part1 = random_bytes(12, PART);
    // Part 1 uploaded twice: the first copy's 5 chunks must go.
    client
        .upload_part_ok(BUCKET, "mp", &upload, 1, &random_bytes(13, PART))
        .await;
    let e1 = client
        .upload_part_ok(BUCKET, "mp", &upload, 1, &part1)
        .await;
    let part2 = random_bytes(14, 100);
    let e2 = client
        .upload_part_ok(BUCKET, "mp", &upload, 2, &part2)
        .await;
    // Part 3 is left out of the completed object.
    client
        .upload_part_ok(BUCKET, "mp", &upload, 3, &random_bytes(15, MIB + 1))
        .await;
    server.wait_for_chunk_files(5 + 1 + 2).await;

    client
        .complete(BUCKET, "mp", &upload, &[(1, e1), (2, e2)])
        .await
        .assert_status(StatusCode::OK);
    server.wait_for_chunk_files(5 + 1).await;
    let mut whole = part1;
    whole.extend_from_slice(&part2);
    assert!(client.get(BUCKET, "mp").await.body == whole);

    // Overwriting a multipart object frees all its parts' chunks (a small object needs none).
    client.put_ok(BUCKET, "mp", b"small").await;
    server.wait_for_chunk_files(0).await;
}

#[tokio::test]
async fn completing_over_an_object_and_copying_onto_itself_reclaim() {
    let (server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", &random_bytes(16, 3 * MIB)).await;
    server.wait_for_chunk_files(3).await;
    let data = random_bytes(17, PART + 1);
    client.multipart_put(BUCKET, "k", &data, PART).await;
    // The old object's 3 chunks go; parts of 5 MiB and 1 byte are 5 + 1.
    server.wait_for_chunk_files(6).await;
    assert!(client.get(BUCKET, "k").await.body == data);

    // Copying onto itself with new metadata rewrites it; the old chunks go.
    let before = server.chunk_files();
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "k"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/k"))
        .header("x-amz-metadata-directive", "REPLACE")
        .header("x-amz-meta-generation", "2")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let after = server.wait_for_chunk_files(6).await;
    assert!(after.iter().all(|f| !before.contains(f)));
    let get = client.get(BUCKET, "k").await;
    assert_eq!(get.header("x-amz-meta-generation"), Some("2"));
    assert_eq!(
        get.header("etag"),
        Some(format!("\"{}\"", md5_hex(&data)).as_str())
    );
    assert!(get.body == data);
}

#[tokio::test]
async fn buckets_are_isolated_and_recreated_empty() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let neighbour = format!("{BUCKET}-two");
    client.create_bucket(&neighbour).await;
    client.put_ok(BUCKET, "k", b"one").await;
    client.put_ok(&neighbour, "k", b"two").await;
    client
        .put_ok(&neighbour, "only-two", &random_bytes(18, MIB))
        .await;
    assert_eq!(client.get(BUCKET, "k").await.body, b"one");
    let list = client.list(BUCKET, true, &[]).await;
    assert_eq!(list.xml_values("Key"), ["k"]);
    client
        .get(BUCKET, "only-two")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchKey");

    client.delete(&neighbour, "k").await;
    client.delete(&neighbour, "only-two").await;
    client
        .request(Method::DELETE, &format!("/{neighbour}"))
        .send()
        .await
        .assert_status(StatusCode::NO_CONTENT);
    server.wait_for_chunk_files(1).await;
    client.create_bucket(&neighbour).await;
    let list = client.list(&neighbour, true, &[]).await;
    assert!(list.xml_values("Key").is_empty(), "{}", list.text());
    assert_eq!(client.get(BUCKET, "k").await.body, b"one");
}
