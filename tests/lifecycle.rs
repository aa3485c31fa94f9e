//! The server process over its life: credentials generated on first start (stored 0600, shown
//! once), keys administered with `cairn admin` while it runs, SIGTERM ending it with status 0,
//! data surviving a restart, and chunk files orphaned by a crash removed at the next start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "life";

fn field<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

#[tokio::test]
async fn generated_credentials_are_stored_and_shown_once() {
    let mut server = TestServer::start_with_generated_credentials().await;
    let credentials = server.data.join("credentials");
    let mode = std::fs::metadata(&credentials)
        .expect("DATA/credentials exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials mode is {mode:o}");

    let lines = server.stdout_lines();
    let key_id = field(&lines, "Access key id:")
        .expect("key id printed")
        .to_owned();
    let secret_line = field(&lines, "Secret access key:").expect("secret printed on first start");
    let secret = secret_line
        .split_whitespace()
        .next()
        .expect("secret value")
        .to_owned();
    let stored = std::fs::read_to_string(&credentials).expect("read credentials");
    assert!(stored.contains(&key_id) && stored.contains(&secret));

    let client = server.client_with(&key_id, &secret);
    client.create_bucket(BUCKET).await;
    let data = random_bytes(1, MIB + 7);
    client.put_ok(BUCKET, "k", &data).await;

    let status = server.stop_gracefully().await;
    assert!(status.success(), "SIGTERM ended the server with {status}");
    server.restart().await;
    server.stop_gracefully().await;
    let lines = server.stdout_lines();
    assert!(
        field(&lines, "Secret access key:").is_none(),
        "the secret is printed again on restart: {lines:?}"
    );
    assert_eq!(field(&lines, "Access key id:"), Some(key_id.as_str()));

    // The same key still works after the restart, and the data is there.
    server.restart().await;
    let client = server.client_with(&key_id, &secret);
    let get = client.get(BUCKET, "k").await;
    get.assert_status(StatusCode::OK);
    assert!(get.body == data);
    let status = server.stop_gracefully().await;
    assert!(status.success());
}

#[tokio::test]
async fn admin_keys_while_running() {
    let server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    client
        .put_ok(BUCKET, "shared", b"every key sees this")
        .await;

    let out = server.admin(&["key", "create", "ci-robot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    let id = field(&lines, "AccessKeyId:")
        .expect("AccessKeyId")
        .to_owned();
    let secret = field(&lines, "SecretAccessKey:")
        .expect("SecretAccessKey")
        .to_owned();

    // Usable at once, on every bucket.
    let robot = server.client_with(&id, &secret);
    let get = robot.get(BUCKET, "shared").await;
    get.assert_status(StatusCode::OK);
    assert_eq!(get.body, b"every key sees this");
    robot.put_ok(BUCKET, "by-robot", b"x").await;

    let out = server.admin(&["key", "list"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.contains(&id) && listing.contains("ci-robot"),
        "{listing}"
    );
    assert!(listing.contains(TEST_KEY_ID), "{listing}");
    assert!(!listing.contains(&secret), "key list must not show secrets");

    let out = server.admin(&["key", "delete", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Gateways cache keys and notice a deletion within about a second.
    robot
        .wait_key_refused(&format!("/{BUCKET}"), Duration::from_secs(5))
        .await;
    // The bootstrap key is unaffected; deleting an unknown key fails.
    client
        .get(BUCKET, "by-robot")
        .await
        .assert_status(StatusCode::OK);
    let out = server.admin(&["key", "delete", &id]);
    assert!(!out.status.success(), "deleting a deleted key must fail");
}

#[tokio::test]
async fn sigterm_exits_zero_and_restart_keeps_data() {
    let mut server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let single = random_bytes(2, 2 * MIB + 1);
    let multi = random_bytes(3, PART + 100);
    let single_etag = client.put_ok(BUCKET, "single", &single).await;
    let multi_etag = client.multipart_put(BUCKET, "multi", &multi, PART).await;
    let upload = client.create_upload(BUCKET, "pending").await;
    let part_etag = client
        .upload_part_ok(BUCKET, "pending", &upload, 1, b"part one")
        .await;
    // 2 MiB + 1 is 3 chunks; parts of 5 MiB and 100 bytes are 5 + 1; the pending part 1.
    let chunks = server.wait_for_chunk_files(3 + 6 + 1).await;

    let status = server.stop_gracefully().await;
    assert!(status.success(), "SIGTERM ended the server with {status}");
    assert_eq!(status.code(), Some(0));

    server.restart().await;
    let client = server.client();
    assert_eq!(server.chunk_files(), chunks, "restart changed the chunks");
    for (key, data, etag) in [
        ("single", &single, &single_etag),
        ("multi", &multi, &multi_etag),
    ] {
        let get = client.get(BUCKET, key).await;
        get.assert_status(StatusCode::OK);
        assert_eq!(get.header("etag"), Some(etag.as_str()));
        assert!(get.body == *data, "{key} changed across the restart");
    }
    let list = client.list(BUCKET, true, &[]).await;
    assert_eq!(list.xml_values("Key"), ["multi", "single"]);
    // The upload in progress survives too and can be completed.
    client
        .complete(BUCKET, "pending", &upload, &[(1, part_etag)])
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(client.get(BUCKET, "pending").await.body, b"part one");
}

#[tokio::test]
async fn orphaned_chunk_files_are_removed_at_start() {
    let mut server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let data = random_bytes(4, MIB + 1);
    client.put_ok(BUCKET, "kept", &data).await;
    let live = server.wait_for_chunk_files(2).await;

    server.kill().await;
    // What a crash between writing a chunk and committing its object leaves behind: a
    // complete-looking chunk file, and a temp file, that no metadata refers to.
    let dir = server.chunks_dir().join("ab");
    let orphan = dir.join("ab0123456789abcdef0123456789abcd");
    std::fs::write(&orphan, random_bytes(5, 4096)).expect("write orphan");
    let temp = dir.join("ab0123456789abcdef0123456789abce.tmp.0123456789abcdef0123456789abcdef");
    std::fs::write(&temp, b"half a chunk").expect("write temp file");

    server.restart().await;
    assert!(!orphan.exists(), "orphaned chunk file survived the restart");
    assert!(!temp.exists(), "temp file survived the restart");
    assert_eq!(server.chunk_files(), live, "live chunks must be kept");
    let client = server.client();
    assert!(client.get(BUCKET, "kept").await.body == data);
}

#[tokio::test]
async fn health_needs_no_credentials() {
    let server = TestServer::start().await;
    let client = server.client();
    let url = format!("{}/_cairn/health", server.endpoint());
    let resp = client.send_url(Method::GET, &url, Vec::new()).await;
    resp.assert_status(StatusCode::OK);
    // Anything else still does.
    let resp = client
        .send_url(Method::GET, &format!("{}/", server.endpoint()), Vec::new())
        .await;
    resp.assert_error(StatusCode::FORBIDDEN, "AccessDenied");
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let mut server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let data = random_bytes(6, 2 * MIB);
    let head = client
        .request(Method::PUT, &object_path(BUCKET, "in-flight"))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(data.len() as u64), &[]);
    let mut stream = TcpStream::connect(&server.host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    stream
        .write_all(&data[..MIB + 1])
        .expect("write first half");
    // Once the first chunk is on disk the request is surely in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.chunk_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.send_sigterm();
    stream
        .write_all(&data[MIB + 1..])
        .expect("write second half");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let resp = RawResponse::parse(&answer).expect("a response to the drained upload");
    assert_eq!(resp.status, 200, "{resp:?}");
    let status = server.wait_stopped().await;
    assert!(status.success(), "SIGTERM ended the server with {status}");

    server.restart().await;
    let get = server.client().get(BUCKET, "in-flight").await;
    get.assert_status(StatusCode::OK);
    assert!(get.body == data);
}
