//! The S3 listener's bounds, against the real server over raw sockets: connections past
//! `--max-connections` and request bodies past `--max-inflight-bytes` are answered 503
//! SlowDown (and served again once the load is gone), a socket that sends no headers is closed
//! after `--header-timeout`, an XML body that stalls fails with 400 RequestTimeout after
//! `--body-timeout`, and every failed authentication leaves a warn line (key id and source
//! address, never a secret), rate-limited so a flood leaves a bounded number of lines and a
//! count of the rest.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "limits";
/// What a raw socket waits for an answer before the test gives up on it.
const READ_LIMIT: Duration = Duration::from_secs(20);
/// How long the server may take to notice a closed connection or write its log.
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);
/// The server's audit rate limit (s3/server.rs): lines at once, then per second.
const AUDIT_BURST: usize = 20;
const AUDIT_PER_SECOND: f64 = 5.0;

fn connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(&server.host).expect("connect");
    stream.set_read_timeout(Some(READ_LIMIT)).expect("timeout");
    stream
}

/// Reads one response with a Content-Length body off a connection that stays open.
fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(resp) = RawResponse::parse(&bytes) {
            let length: usize = resp
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if resp.body.len() >= length {
                return resp;
            }
        }
        let n = stream.read(&mut buf).expect("read a response");
        assert!(
            n > 0,
            "connection closed: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Waits for the server to close `stream`; returns how long that took and what it sent.
/// Whether the server has answered (or closed) a connection that is still sending its body.
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let answered = match stream.peek(&mut byte) {
        Ok(_) => true,
        Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).expect("blocking");
    answered
}

fn wait_closed(stream: &mut TcpStream) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the server closes the connection before the test's read timeout");
    (start.elapsed(), rest)
}

/// A SlowDown answer as AWS throttles: 503, the XML error with its request id.
fn assert_slow_down(resp: &RawResponse) {
    assert_eq!(resp.status, 503, "{}", resp.head);
    assert_eq!(resp.code().as_deref(), Some("SlowDown"), "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/xml"));
    let id = resp.header("x-amz-request-id").expect("x-amz-request-id");
    let body = String::from_utf8_lossy(&resp.body);
    assert_eq!(
        xml_values(&body, "RequestId").first().map(String::as_str),
        Some(id),
        "{body}"
    );
}

#[tokio::test]
async fn connections_past_the_limit_are_answered_slow_down_until_some_close() {
    const MAX: usize = 8;
    let server = TestServer::start_with_args(&["--max-connections", &MAX.to_string()]).await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let list = client
        .request(Method::GET, &format!("/{BUCKET}"))
        .raw_head(None, &[]);

    // The test client's pooled connection counts too; hold the rest open, each proven served.
    let mut held: Vec<TcpStream> = Vec::new();
    while held.len() < MAX {
        let mut stream = connect(&server);
        stream.write_all(list.as_bytes()).expect("write");
        let resp = read_response(&mut stream);
        if resp.status == 503 {
            // The limit counts the client's own connection: the server is full.
            assert_slow_down(&resp);
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.head);
        held.push(stream);
    }
    // Connections of the test client's pool (and of the start-up health check, until the
    // server sees it closed) count as well.
    assert!(
        held.len() >= MAX - 2,
        "only {} connections served",
        held.len()
    );

    // Full: a new connection is read, answered 503 SlowDown and closed, whatever it asks.
    for _ in 0..3 {
        let resp = raw_exchange(&server.host, &list, b"");
        assert_slow_down(&resp);
    }
    let mut stream = connect(&server);
    stream.write_all(list.as_bytes()).expect("write");
    let resp = read_response(&mut stream);
    assert_slow_down(&resp);
    assert_eq!(resp.header("connection"), Some("close"));
    wait_closed(&mut stream);
    let log = server.log_text();
    assert!(
        log.contains("connection limit reached") && log.contains("max_connections=8"),
        "the refusal is logged: {log}"
    );

    // Once connections close, requests are served again.
    drop(held);
    let deadline = Instant::now() + SETTLE;
    loop {
        let resp = raw_exchange(&server.host, &list, b"");
        if resp.status == 200 {
            break;
        }
        assert_slow_down(&resp);
        assert!(Instant::now() < deadline, "still refused after closing");
        tokio::time::sleep(POLL).await;
    }
    let data = random_bytes(1, 1000);
    server.client().put_ok(BUCKET, "after", &data).await;
    server.client().assert_object(BUCKET, "after", &data).await;
}

#[tokio::test]
async fn bodies_past_the_inflight_limit_are_answered_slow_down() {
    let server = TestServer::start_with_args(&["--max-inflight-bytes", "8MiB"]).await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let small = random_bytes(2, 1000);
    client.put_ok(BUCKET, "small", &small).await;

    // An upload of 8 MiB that sends 1 MiB and waits holds the whole limit.
    let length = 8 * MIB;
    let head = client
        .request(Method::PUT, &object_path(BUCKET, "big"))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(length as u64), &[]);
    let start_upload = || {
        let mut upload = connect(&server);
        upload.write_all(head.as_bytes()).expect("write head");
        upload
            .write_all(&random_bytes(3, MIB))
            .expect("write part of the body");
        upload
    };
    let mut upload = start_upload();

    // Once the server has taken the upload in, another body is refused. A small body still in
    // flight when the upload's head arrives gets the upload itself refused: then it starts over.
    let deadline = Instant::now() + SETTLE;
    let refused = loop {
        let resp = server.client().put(BUCKET, "other", &small).await;
        if resp.status == StatusCode::SERVICE_UNAVAILABLE {
            break resp;
        }
        resp.assert_status(StatusCode::OK);
        if answered(&upload) {
            upload = start_upload();
        }
        assert!(Instant::now() < deadline, "a second body was never refused");
        tokio::time::sleep(POLL).await;
    };
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown");
    // A request without a body holds no bytes: reads go on.
    client.assert_object(BUCKET, "small", &small).await;

    // The stalled upload ends with its connection; its bytes are free again.
    drop(upload);
    let deadline = Instant::now() + SETTLE;
    loop {
        let resp = server.client().put(BUCKET, "other", &small).await;
        if resp.status == StatusCode::OK {
            break;
        }
        resp.assert_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown");
        assert!(Instant::now() < deadline, "bodies still refused");
        tokio::time::sleep(POLL).await;
    }
    client.assert_object(BUCKET, "other", &small).await;
    assert_eq!(
        client.get(BUCKET, "big").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_secs(1);
    let server = TestServer::start_with_args(&["--header-timeout", "1s"]).await;
    let early = timeout - Duration::from_millis(100);
    let late = timeout + Duration::from_secs(4);

    // Connected, nothing sent.
    let mut silent = connect(&server);
    let (took, _) = wait_closed(&mut silent);
    assert!(
        took >= early && took < late,
        "silent socket closed after {took:?}"
    );

    // Half a request head, then nothing (slowloris).
    let mut partial = connect(&server);
    partial
        .write_all(b"GET /_cairn/health HTTP/1.1\r\nhost: x\r\n")
        .expect("write");
    let (took, _) = wait_closed(&mut partial);
    assert!(
        took >= early && took < late,
        "partial head closed after {took:?}"
    );

    // A served keep-alive connection, then idle.
    let mut idle = connect(&server);
    idle.write_all(b"GET /_cairn/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut idle).status, 200);
    let (took, rest) = wait_closed(&mut idle);
    assert!(
        took >= early && took < late,
        "idle socket closed after {took:?}"
    );
    assert!(rest.is_empty(), "nothing more was sent: {rest:?}");

    // A connection that keeps sending requests is not cut.
    let mut busy = connect(&server);
    for _ in 0..4 {
        busy.write_all(b"GET /_cairn/health HTTP/1.1\r\nhost: x\r\n\r\n")
            .expect("write");
        assert_eq!(read_response(&mut busy).status, 200);
        std::thread::sleep(timeout / 2);
    }
}

#[tokio::test]
async fn a_stalled_xml_body_fails_with_request_timeout() {
    let server = TestServer::start_with_args(&["--body-timeout", "1s"]).await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let upload = client.create_upload(BUCKET, "parts").await;
    let data = random_bytes(4, 1000);
    let etag = client
        .upload_part_ok(BUCKET, "parts", &upload, 1, &data)
        .await;
    let xml = complete_xml(&[(1, etag)]);

    let head = client
        .request(Method::POST, &object_path(BUCKET, "parts"))
        .query(&query_string(&[("uploadId", &upload)]))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(xml.len() as u64), &[]);
    let mut stream = connect(&server);
    stream.write_all(head.as_bytes()).expect("write head");
    stream
        .write_all(&xml.as_bytes()[..xml.len() / 2])
        .expect("write half the body");
    let start = Instant::now();
    let resp = read_response(&mut stream);
    let took = start.elapsed();
    assert_eq!(resp.status, 400, "{}", resp.head);
    assert_eq!(resp.code().as_deref(), Some("RequestTimeout"), "{resp:?}");
    let body = String::from_utf8_lossy(&resp.body);
    assert!(
        body.contains("Your socket connection to the server was not read from or written to"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    // Nothing was completed: the upload is still there to finish.
    client
        .request(Method::GET, &object_path(BUCKET, "parts"))
        .query(&query_string(&[("uploadId", &upload)]))
        .send()
        .await
        .assert_status(StatusCode::OK);
}

/// The log's `authentication failed` lines.
fn audit_lines(server: &TestServer) -> Vec<String> {
    server
        .log_text()
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn failed_authentication_is_logged_with_key_and_address_never_the_secret() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let wrong_secret = "wrong/Secret+Key=that+must+not+be+logged";
    let path = object_path(BUCKET, "k");
    let cases: Vec<(&str, &str, Resp)> = vec![
        (
            "SignatureDoesNotMatch",
            TEST_KEY_ID,
            client
                .request(Method::GET, &path)
                .auth(Auth::WrongSecret(wrong_secret.into()))
                .send()
                .await,
        ),
        (
            "InvalidAccessKeyId",
            "UNKNOWNKEY0000000001",
            server
                .client_with("UNKNOWNKEY0000000001", TEST_SECRET)
                .get(BUCKET, "k")
                .await,
        ),
        (
            "RequestTimeTooSkewed",
            TEST_KEY_ID,
            client
                .request(Method::GET, &path)
                .auth(Auth::Skewed(-3600))
                .send()
                .await,
        ),
        (
            "AuthorizationHeaderMalformed",
            "MALFORMEDKEY00000001",
            client
                .request(Method::GET, &path)
                .auth(Auth::Authorization(
                    "AWS4-HMAC-SHA256 Credential=MALFORMEDKEY00000001/x, Signature=abc".into(),
                ))
                .send()
                .await,
        ),
    ];
    let expired = client.presigned_url(
        &Method::GET,
        &path,
        "",
        60,
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    );
    let expired = client.send_url(Method::GET, &expired, Vec::new()).await;
    let v2 = format!(
        "http://{}{path}?AWSAccessKeyId={TEST_KEY_ID}&Expires={}&Signature=Zm9yZ2Vk",
        server.host,
        time::OffsetDateTime::now_utc().unix_timestamp() + 600
    );
    let v2 = client.send_url(Method::GET, &v2, Vec::new()).await;
    let chunked = put_with_bad_chunk_signature(&server.client(), &path).await;

    for (code, _, resp) in &cases {
        resp.assert_error(resp.status, code);
    }
    expired.assert_error(StatusCode::FORBIDDEN, "AccessDenied");
    v2.assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    chunked.assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");

    let mut expected: Vec<(&str, &str)> = cases.iter().map(|(c, k, _)| (*c, *k)).collect();
    expected.push(("AccessDenied", TEST_KEY_ID));
    expected.push(("SignatureDoesNotMatch", TEST_KEY_ID));
    expected.push(("SignatureDoesNotMatch", TEST_KEY_ID));
    let deadline = Instant::now() + SETTLE;
    let lines = loop {
        let lines = audit_lines(&server);
        if lines.len() >= expected.len() {
            break lines;
        }
        assert!(Instant::now() < deadline, "audit lines: {lines:#?}");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, (code, key)) in lines.iter().zip(&expected) {
        assert!(line.contains(" WARN "), "{line}");
        assert!(line.contains(&format!("key_id=\"{key}\"")), "{line}");
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
        assert!(line.contains(&format!("code=\"{code}\"")), "{line}");
        assert!(line.contains("method=") && line.contains("path="), "{line}");
        assert!(line.contains("reason="), "{line}");
    }
    let log = server.log_text();
    for secret in [TEST_SECRET, wrong_secret, "Zm9yZ2Vk", "Signature=abc"] {
        assert!(!log.contains(secret), "{secret:?} is in the log: {log}");
    }
}

/// A signed aws-chunked PUT whose one chunk carries a forged chunk signature.
async fn put_with_bad_chunk_signature(client: &S3Client, path: &str) -> Resp {
    let forged = "0".repeat(64);
    let body = format!("5;chunk-signature={forged}\r\nhello\r\n0;chunk-signature={forged}\r\n\r\n");
    client
        .request(Method::PUT, path)
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", "5")
        .payload(PayloadHash::Literal(
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into(),
        ))
        .body(body.into_bytes())
        .send()
        .await
}

#[tokio::test]
async fn a_flood_of_failed_authentications_leaves_a_bounded_log() {
    const FLOOD: usize = 300;
    let (server, client) = server_with_bucket(BUCKET).await;
    let forger = server.client_with(TEST_KEY_ID, "not the secret");
    let start = Instant::now();
    for _ in 0..FLOOD {
        forger
            .get(BUCKET, "k")
            .await
            .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    }
    let took = start.elapsed();

    // Every failure is either a line of its own or counted in a summary line, written within
    // a second or so of the flood's end.
    let deadline = Instant::now() + SETTLE;
    let (lines, summaries, suppressed) = loop {
        let log = server.log_text();
        let lines = log
            .lines()
            .filter(|l| l.contains("authentication failed"))
            .count();
        let summaries: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("failed authentication:") && l.contains("rate limit"))
            .map(|l| {
                l.split("suppressed=")
                    .nth(1)
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no count in {l}"))
            })
            .collect();
        let suppressed: u64 = summaries.iter().sum();
        if lines + suppressed as usize >= FLOOD {
            break (lines, summaries.len(), suppressed);
        }
        assert!(
            Instant::now() < deadline,
            "{lines} lines and {suppressed} counted of {FLOOD}: {log}"
        );
        tokio::time::sleep(POLL).await;
    };
    let allowed = AUDIT_BURST + (AUDIT_PER_SECOND * (took.as_secs_f64() + 1.0)).ceil() as usize;
    println!(
        "{FLOOD} failed requests in {took:?}: {lines} lines, {summaries} summaries counting \
         {suppressed} more (at most {allowed} lines allowed)"
    );
    assert_eq!(lines + suppressed as usize, FLOOD);
    assert!(lines <= allowed, "{lines} lines, more than {allowed}");
    assert!(summaries >= 1 && summaries <= took.as_secs() as usize + 3);
    // The server still serves its real key.
    client.put_ok(BUCKET, "k", b"v").await;
}

#[test]
fn limits_that_cannot_work_are_refused_at_start() {
    let root = tempfile::tempdir().expect("temp dir");
    let meta = format!("sqlite://{}", root.path().join("meta.db").display());
    let data = root.path().join("data");
    let data = data.to_str().expect("UTF-8 path");
    let cases: [(&[&str], &str); 4] = [
        (
            &["server", "--data", data, "--max-connections", "0"],
            "--max-connections must be at least 1",
        ),
        (
            &["server", "--data", data, "--max-inflight-bytes", "1MiB"],
            "--max-inflight-bytes must be at least 8MiB",
        ),
        (
            &["server", "--data", data, "--body-timeout", "0s"],
            "--body-timeout must be more than 0s",
        ),
        (
            &[
                "gateway",
                "--listen",
                "127.0.0.1:0",
                "--meta",
                &meta,
                "--header-timeout",
                "0s",
            ],
            "--header-timeout must be more than 0s",
        ),
    ];
    for (args, message) in cases {
        let output = std::process::Command::new(cairn_binary())
            .args(args)
            .output()
            .expect("run cairn");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!root.path().join("meta.db").exists() && !root.path().join("data").exists());
}
