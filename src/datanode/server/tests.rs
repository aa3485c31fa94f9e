use super::handlers::{RangeError, parse_list_query, parse_range};
use super::testing::*;
use super::usage::{Counts, Usage};
use super::*;
use crate::datanode::auth::BODY_AUTH_HEADER;

const ID: &str = "0123456789abcdef0123456789abcdef";

fn id() -> ChunkId {
    parse_chunk_id(ID).unwrap()
}

#[test]
fn routes_every_operation() {
    let chunk = format!("/chunks/{ID}");
    let cases: &[(Method, &str, Result<Route, RouteError>)] = &[
        (Method::PUT, &chunk, Ok(Route::PutChunk(id()))),
        (Method::GET, &chunk, Ok(Route::GetChunk(id()))),
        (Method::HEAD, &chunk, Ok(Route::HeadChunk(id()))),
        (Method::DELETE, &chunk, Ok(Route::DeleteChunk(id()))),
        (
            Method::POST,
            &chunk,
            Err(RouteError::MethodNotAllowed("GET, HEAD, PUT, DELETE")),
        ),
        (Method::GET, "/chunks", Ok(Route::ListChunks)),
        (
            Method::PUT,
            "/chunks",
            Err(RouteError::MethodNotAllowed("GET")),
        ),
        (Method::GET, "/health", Ok(Route::Health)),
        (
            Method::DELETE,
            "/health",
            Err(RouteError::MethodNotAllowed("GET")),
        ),
        (Method::GET, "/", Err(RouteError::NotFound)),
        (Method::GET, "/chunks/", Err(RouteError::BadChunkId)),
        (Method::GET, "/health/", Err(RouteError::NotFound)),
        (Method::GET, "/chunk/x", Err(RouteError::NotFound)),
        (
            Method::GET,
            "/chunks/0123456789ABCDEF0123456789abcdef",
            Err(RouteError::BadChunkId),
        ),
        (
            Method::GET,
            "/chunks/01234567-89ab-cdef-0123-456789abcdef",
            Err(RouteError::BadChunkId),
        ),
        (
            Method::GET,
            "/chunks/../../etc/passwd",
            Err(RouteError::BadChunkId),
        ),
        (
            Method::GET,
            &format!("/chunks/{ID}/x"),
            Err(RouteError::BadChunkId),
        ),
    ];
    for (method, path, expected) in cases {
        assert_eq!(route(method, path), *expected, "{method} {path}");
    }
}

#[test]
fn parses_single_inclusive_ranges() {
    assert_eq!(parse_range("bytes=0-0", 10), Ok(0..1));
    assert_eq!(parse_range("bytes=3-9", 10), Ok(3..10));
    assert_eq!(parse_range("bytes=9-", 10), Ok(9..10));
    assert_eq!(parse_range("bytes=0-", 10), Ok(0..10));
    for unsatisfiable in ["bytes=3-10", "bytes=10-", "bytes=10-12", "bytes=0-0"] {
        let size = if unsatisfiable == "bytes=0-0" { 0 } else { 10 };
        assert_eq!(
            parse_range(unsatisfiable, size),
            Err(RangeError::Unsatisfiable),
            "{unsatisfiable}"
        );
    }
    assert_eq!(
        parse_range("bytes=0-18446744073709551615", u64::MAX),
        Err(RangeError::Unsatisfiable)
    );
    for malformed in [
        "",
        "bytes=",
        "bytes=-5",
        "bytes=5-3",
        "bytes=a-b",
        "bytes=+1-2",
        "bytes=0-1,3-4",
        "items=0-1",
        "bytes=99999999999999999999-",
    ] {
        assert_eq!(
            parse_range(malformed, 10),
            Err(RangeError::Malformed),
            "{malformed}"
        );
    }
}

#[test]
fn parses_inventory_queries() {
    assert_eq!(parse_list_query(""), Some((None, DEFAULT_LIST_LIMIT)));
    assert_eq!(
        parse_list_query(&format!("after={ID}&limit=5")),
        Some((Some(id()), 5))
    );
    assert_eq!(
        parse_list_query("limit=99999999"),
        Some((None, MAX_LIST_LIMIT))
    );
    for bad in [
        "after=xyz",
        "limit=-1",
        "limit=",
        "limit",
        "other=1",
        "limit=1e3",
    ] {
        assert_eq!(parse_list_query(bad), None, "{bad}");
    }
}

#[test]
fn reservations_never_overshoot_capacity() {
    let usage = Arc::new(Usage {
        capacity: Some(1000),
        disk: None,
        counts: Mutex::new(Counts::default()),
    });
    let first = usage.reserve(600).unwrap();
    assert!(usage.reserve(401).is_none());
    let mut second = usage.reserve(400).unwrap();
    assert_eq!(usage.free(&usage.counts()), Some(0));
    assert!(!second.grow_to(401));
    drop(first);
    assert!(second.grow_to(900));
    assert!(second.grow_to(10));
    second.commit(850);
    assert_eq!(
        *usage.counts(),
        Counts {
            used: 850,
            reserved: 0,
            chunks: 1
        }
    );
    assert_eq!(usage.free(&usage.counts()), Some(150));

    usage.removed(850);
    assert_eq!(*usage.counts(), Counts::default());

    let unlimited = Arc::new(Usage {
        capacity: None,
        disk: None,
        counts: Mutex::new(Counts::default()),
    });
    let mut huge = unlimited.reserve(u64::MAX).unwrap();
    assert!(huge.grow_to(u64::MAX));
    assert_eq!(unlimited.free(&unlimited.counts()), None);
}

#[test]
fn crc_headers_are_exactly_eight_hex_digits() {
    let parse = |text: &'static str| parse_crc(&HeaderValue::from_static(text));
    assert_eq!(parse("07572883"), Some(0x0757_2883));
    assert_eq!(parse("DEADbeef"), Some(0xdead_beef));
    // Found by the datanode fuzz target: `from_str_radix` alone took a sign.
    for bad in [
        "+7572883",
        "-7572883",
        "0757288",
        "075728830",
        "0757288g",
        " 7572883",
    ] {
        assert_eq!(parse(bad), None, "{bad:?}");
    }
}

#[test]
fn accepts_only_canonical_chunk_ids() {
    assert_eq!(parse_chunk_id(ID), Some(id()));
    for bad in [
        "",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789ABCDEF0123456789ABCDEF",
        "{01234567-89ab-cdef-0123-456789abcdef}",
        "urn:uuid:01234567-89ab-cdef-0123-456789abcdef",
    ] {
        assert_eq!(parse_chunk_id(bad), None, "{bad}");
    }
}

/// Every route, with its body.
fn all_routes() -> Vec<(&'static str, String, &'static [u8])> {
    let chunk = format!("/chunks/{ID}");
    vec![
        ("PUT", chunk.clone(), b"x"),
        ("GET", chunk.clone(), b""),
        ("HEAD", chunk.clone(), b""),
        ("DELETE", chunk, b""),
        ("GET", "/chunks?limit=5".to_owned(), b""),
        ("GET", "/health".to_owned(), b""),
        ("GET", "/nowhere".to_owned(), b""),
    ]
}

/// What a well-formed request to a route needs besides `x-cairn-auth`: for an upload, its
/// length, checksum and body signature (made with `key` for the request signed as `signed`).
fn upload_headers(
    method: &str,
    target: &str,
    body: &[u8],
    key: &ClusterKey,
    signed: Signed,
) -> String {
    if method != "PUT" {
        return String::new();
    }
    let mac = key.sign_body(
        method,
        target,
        signed,
        body.len() as u64,
        crc32c::crc32c(body),
    );
    format!(
        "\r\nContent-Length: {}\r\n{CRC_HEADER}: {:08x}\r\n{BODY_AUTH_HEADER}: {mac}",
        body.len(),
        crc32c::crc32c(body)
    )
}

#[tokio::test]
async fn refuses_unauthenticated_requests_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), None).await;
    let wrong_key = ClusterKey::from_secret("some other cluster's secret");
    for (method, target, body) in all_routes() {
        let line = format!("{method} {target} HTTP/1.1");
        let now = Signed::now();
        let stale = Signed {
            seconds: now.seconds - 600,
            ..Signed::now()
        };
        let attempts = [
            (
                String::new(),
                upload_headers(method, &target, body, &key(), now),
            ),
            (
                format!("\r\n{AUTH_HEADER}: garbage"),
                upload_headers(method, &target, body, &key(), now),
            ),
            (
                format!(
                    "\r\n{AUTH_HEADER}: {}",
                    wrong_key.sign(method, &target, now)
                ),
                upload_headers(method, &target, body, &wrong_key, now),
            ),
            (
                format!("\r\n{AUTH_HEADER}: {}", key().sign(method, &target, stale)),
                upload_headers(method, &target, body, &key(), stale),
            ),
            // Signed for another target.
            (
                format!(
                    "\r\n{AUTH_HEADER}: {}",
                    key().sign(method, "/elsewhere", now)
                ),
                upload_headers(method, "/elsewhere", body, &key(), now),
            ),
        ];
        for (auth, extra) in attempts {
            let (status, rest) = raw(node.addr, &format!("{line}{auth}{extra}"), body).await;
            assert_eq!(status, 403, "{method} {target} {auth:?}: {rest}");
        }
    }
    // Nothing was stored by any of them.
    assert_eq!(node.local_store().await.len(id()).await.unwrap(), None);

    // The same requests, signed, get past authentication.
    let expected = [201, 200, 200, 204, 200, 200, 404];
    for ((method, target, body), want) in all_routes().into_iter().zip(expected) {
        let signed = Signed::now();
        let head = format!(
            "{}{}",
            signed_as(method, &target, signed),
            upload_headers(method, &target, body, &key(), signed)
        );
        let (status, rest) = raw(node.addr, &head, body).await;
        assert_eq!(status, want, "{method} {target}: {rest}");
    }
    node.stop().await;
}

#[tokio::test]
async fn answers_bad_requests_with_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), None).await;
    let chunk = format!("/chunks/{ID}");
    let cases = [
        (signed("GET", "/chunks/ABC"), 400),
        (signed("GET", "/chunks/../node-id"), 400),
        (signed("GET", "/chunks?after=zz"), 400),
        (signed("POST", &chunk), 405),
        (signed("PUT", "/health"), 405),
        (signed("GET", &chunk), 404),
        (signed("HEAD", &chunk), 404),
        (signed("DELETE", &chunk), 204),
    ];
    for (head, want) in cases {
        let (status, rest) = raw(node.addr, &head, b"").await;
        assert_eq!(status, want, "{head}: {rest}");
    }

    let put = |extra: &str| {
        let signed = Signed::now();
        format!(
            "{}{}{extra}",
            signed_as("PUT", &chunk, signed),
            body_auth(&chunk, signed, b"x")
        )
    };
    let (status, rest) = raw(node.addr, &put("\r\nContent-Length: 1"), b"x").await;
    assert_eq!(status, 400, "{rest}");
    assert!(rest.contains("x-cairn-crc32c is required"), "{rest}");
    let (status, _) = raw(
        node.addr,
        &put("\r\nContent-Length: 1\r\nx-cairn-crc32c: nothex!!"),
        b"x",
    )
    .await;
    assert_eq!(status, 400);
    let crc = format!(
        "\r\nContent-Length: 1\r\n{CRC_HEADER}: {:08x}",
        crc32c::crc32c(b"x")
    );
    let (status, _) = raw(
        node.addr,
        &put(&format!("{crc}\r\n{RESERVE_HEADER}: lots")),
        b"x",
    )
    .await;
    assert_eq!(status, 400);
    let (status, rest) = raw(
        node.addr,
        &put(&format!("{crc}\r\n{CACHE_HEADER}: never")),
        b"x",
    )
    .await;
    assert_eq!(status, 400);
    assert!(rest.contains("malformed x-cairn-cache"), "{rest}");
    // The one value it takes; the chunk is then stored like any other.
    let (status, rest) = raw(
        node.addr,
        &put(&format!("{crc}\r\n{CACHE_HEADER}: {DROP_BEHIND}")),
        b"x",
    )
    .await;
    assert_eq!(status, 201, "{rest}");

    // Range errors on a stored chunk.
    let get = |range: &str| format!("{}\r\nRange: {range}", signed("GET", &chunk));
    let (status, rest) = raw(node.addr, &get("bytes=1-1"), b"").await;
    assert_eq!(status, 416);
    assert!(rest.contains("content-range: bytes */1"), "{rest}");
    assert!(rest.contains("x-cairn-length: 1"), "{rest}");
    let (status, _) = raw(node.addr, &get("bytes=1-0"), b"").await;
    assert_eq!(status, 400);
    let (status, rest) = raw(node.addr, &get("bytes=0-0"), b"").await;
    assert_eq!(status, 206);
    assert!(rest.contains("content-range: bytes 0-0/1"), "{rest}");
    assert!(rest.ends_with("\r\n\r\nx"), "{rest:?}");
    node.stop().await;
}

/// Sends `data` as a chunked PUT whose trailer claims `crc`, with a body signature over `data`.
async fn put_with_trailer(node: &TestNode, id: ChunkId, data: &[u8], crc: &str) -> (u16, String) {
    let target = format!("/chunks/{id}");
    let signed = Signed::now();
    let mac = key().sign_body(
        "PUT",
        &target,
        signed,
        data.len() as u64,
        crc32c::crc32c(data),
    );
    let (head, body) = chunked_put(
        &target,
        signed,
        data,
        &format!("{CRC_HEADER}: {crc}\r\n{BODY_AUTH_HEADER}: {mac}"),
    );
    raw(node.addr, &head, &body).await
}

/// The head and the chunked body of a PUT of `data` signed as `signed`, ending with `trailer`
/// (lines without their last CRLF).
fn chunked_put(target: &str, signed: Signed, data: &[u8], trailer: &str) -> (String, Vec<u8>) {
    let head = format!(
        "{}\r\nTransfer-Encoding: chunked\r\nTrailer: {CRC_HEADER}, {BODY_AUTH_HEADER}",
        signed_as("PUT", target, signed)
    );
    let mut body = Vec::new();
    for piece in data.chunks(1000) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\n{trailer}\r\n\r\n").as_bytes());
    (head, body)
}

#[tokio::test]
async fn commits_only_when_the_trailer_crc_matches() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), None).await;
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let crc = crc32c::crc32c(&data);
    let id = ChunkId::random();

    let wrong = format!("{:08x}", crc ^ 1);
    let (status, rest) = put_with_trailer(&node, id, &data, &wrong).await;
    assert_eq!(status, 400, "{rest}");
    assert!(rest.contains("mismatch"), "{rest}");
    let store = node.local_store().await;
    assert_eq!(store.len(id).await.unwrap(), None);
    let prefix = store.path_of(id).parent().unwrap().to_path_buf();
    assert_eq!(fs::read_dir(&prefix).unwrap().count(), 0);

    let right = format!("{crc:08x}");
    let (status, rest) = put_with_trailer(&node, id, &data, &right).await;
    assert_eq!(status, 201, "{rest}");
    assert!(rest.contains(&format!("x-cairn-crc32c: {right}")), "{rest}");
    assert!(rest.contains("x-cairn-length: 5000"), "{rest}");
    assert_eq!(store.len(id).await.unwrap(), Some(5000));
    node.stop().await;
}

#[tokio::test]
async fn cuts_a_read_short_at_damage_found_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), None).await;
    // Large enough that the store reads it in several batches, the damage in a later one.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let id = ChunkId::random();
    let head = signed_put(&format!("/chunks/{id}"), &data);
    assert_eq!(raw(node.addr, &head, &data).await.0, 201);
    let path = node.local_store().await.path_of(id);
    let mut file = fs::read(&path).unwrap();
    let damaged_at = 5 * 1024 * 1024 / 2;
    file[damaged_at] ^= 0x10;
    fs::write(&path, &file).unwrap();
    let block = crate::datanode::local::BLOCK_SIZE;
    let damaged_block = (damaged_at / block * block).to_string();

    // Without trailers: the body stops before its Content-Length, with none of the bad bytes.
    // Signed anew for each request: a node accepts a signature once.
    let get = || signed("GET", &format!("/chunks/{id}"));
    let response = raw_bytes(node.addr, &get(), b"").await;
    let end_of_head = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&response[..end_of_head]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", data.len())),
        "{head}"
    );
    let body = &response[end_of_head..];
    assert!(body.len() <= damaged_at, "{} bytes arrived", body.len());
    assert_eq!(body, &data[..body.len()]);

    // With trailers: a chunked body that ends with the damage's place.
    let (status, rest) = raw(node.addr, &format!("{}\r\nTE: trailers", get()), b"").await;
    assert_eq!(status, 200);
    assert!(
        rest.contains("transfer-encoding: chunked"),
        "{}",
        &rest[..200]
    );
    assert!(
        rest.ends_with(&format!(
            "0\r\n{ERROR_HEADER}: {CORRUPT}\r\n{OFFSET_HEADER}: {damaged_block}\r\n\r\n"
        )),
        "{:?}",
        &rest[rest.len() - 100..]
    );
    node.stop().await;
}

#[tokio::test]
async fn keeps_its_identity_and_usage_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), Some(10_000)).await;
    let first_id = node.node_id;
    for size in [1000usize, 2345] {
        let data = vec![7u8; size];
        let crc = format!("{:08x}", crc32c::crc32c(&data));
        let (status, _) = put_with_trailer(&node, ChunkId::random(), &data, &crc).await;
        assert_eq!(status, 201);
    }
    node.stop().await;
    let text = fs::read_to_string(dir.path().join(NODE_ID_FILE)).unwrap();
    assert_eq!(text, format!("{}\n", first_id.hyphenated()));
    // The identity went through a temp file, renamed into place.
    assert!(!dir.path().join("node-id.tmp").exists());

    let node = TestNode::start(dir.path(), Some(10_000)).await;
    assert_eq!(node.node_id, first_id);
    let (status, rest) = raw(node.addr, &signed("GET", "/health"), b"").await;
    assert_eq!(status, 200);
    let body = rest.split_once("\r\n\r\n").unwrap().1;
    let health: NodeHealth = serde_json::from_str(body).unwrap();
    assert_eq!(
        health,
        NodeHealth {
            node_id: first_id.hyphenated().to_string(),
            zone: Some("zone-a".to_owned()),
            capacity: Some(10_000),
            used: 3345,
            free: Some(6655),
            chunk_count: 2,
        }
    );
    node.stop().await;

    fs::write(dir.path().join(NODE_ID_FILE), "not a uuid\n").unwrap();
    let config = config("127.0.0.1:0".parse().unwrap(), dir.path(), None);
    let err = DataNode::bind(config).await.err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn never_replaces_a_stored_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), Some(100_000)).await;
    let store = node.local_store().await;
    let id = ChunkId::random();
    let target = format!("/chunks/{id}");
    let original = vec![1u8; 4000];
    let (status, rest) = raw(node.addr, &signed_put(&target, &original), &original).await;
    assert_eq!(status, 201, "{rest}");

    // Refused before the body is read, same length or not.
    for other in [vec![2u8; 4000], vec![3u8; 10]] {
        let (status, rest) = raw(node.addr, &signed_put(&target, &other), &other).await;
        assert_eq!(status, 409, "{rest}");
        assert!(rest.contains("immutable"), "{rest}");
    }

    // An upload that started before the id was stored is refused at its commit.
    let late = ChunkId::random();
    let late_target = format!("/chunks/{late}");
    let slow = vec![4u8; 3000];
    let slow_signed = Signed::now();
    let mac = key().sign_body(
        "PUT",
        &late_target,
        slow_signed,
        slow.len() as u64,
        crc32c::crc32c(&slow),
    );
    let (head, body) = chunked_put(
        &late_target,
        slow_signed,
        &slow,
        &format!(
            "{CRC_HEADER}: {:08x}\r\n{BODY_AUTH_HEADER}: {mac}",
            crc32c::crc32c(&slow)
        ),
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let head = format!("{head}\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..1000]).await.unwrap();
    let winner = vec![5u8; 2000];
    let (status, rest) = raw(node.addr, &signed_put(&late_target, &winner), &winner).await;
    assert_eq!(status, 201, "{rest}");
    stream.write_all(&body[1000..]).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");

    // What is stored is what was stored first, and counted once.
    assert_eq!(
        super::super::conformance::get(&store, id, 0..4000)
            .await
            .unwrap(),
        original
    );
    assert_eq!(
        super::super::conformance::get(&store, late, 0..2000)
            .await
            .unwrap(),
        winner
    );
    let (_, rest) = raw(node.addr, &signed("GET", "/health"), b"").await;
    let health: NodeHealth = serde_json::from_str(rest.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(
        (health.used, health.chunk_count, health.free),
        (6000, 2, Some(94_000))
    );

    // Once the coordinator deleted it, the id can be written again.
    let (status, _) = raw(node.addr, &signed("DELETE", &target), b"").await;
    assert_eq!(status, 204);
    let again = vec![6u8; 100];
    let (status, rest) = raw(node.addr, &signed_put(&target, &again), &again).await;
    assert_eq!(status, 201, "{rest}");
    node.stop().await;
}

#[tokio::test]
async fn accepts_a_signed_request_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), None).await;
    for target in ["/health", "/chunks?limit=3", &format!("/chunks/{ID}")] {
        let head = signed("GET", target);
        let first = raw(node.addr, &head, b"").await.0;
        assert!(first == 200 || first == 404, "{target}: {first}");
        let (status, rest) = raw(node.addr, &head, b"").await;
        assert_eq!(status, 403, "{target} replayed: {rest}");
        assert!(rest.contains("used before"), "{rest}");
    }

    // A PUT's header replayed with other bytes of the same length, and a valid body signature
    // for those bytes made up without the key: refused, nothing stored.
    let data = vec![7u8; 500];
    let target = format!("/chunks/{ID}");
    let head = signed_put(&target, &data);
    assert_eq!(raw(node.addr, &head, &data).await.0, 201);
    let (status, rest) = raw(node.addr, &signed("DELETE", &target), b"").await;
    assert_eq!(status, 204, "{rest}");
    let (status, rest) = raw(node.addr, &head, &[8u8; 500]).await;
    assert_eq!(status, 403, "{rest}");
    assert_eq!(node.local_store().await.len(id()).await.unwrap(), None);
    node.stop().await;
}

#[tokio::test]
async fn commits_only_a_body_its_signature_covers() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), None).await;
    let store = node.local_store().await;
    let id = ChunkId::random();
    let target = format!("/chunks/{id}");
    let sent: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
    let mut other = sent.clone();
    other[4321] ^= 0x40;
    let crc = |data: &[u8]| format!("{:08x}", crc32c::crc32c(data));

    let cases = [
        // The trailer's checksum matches the bytes sent, its signature covers other bytes.
        (
            crc(&sent),
            Some(key().sign_body("PUT", &target, Signed::now(), 5000, crc32c::crc32c(&other))),
        ),
        // A signature of the right bytes, of another request.
        (
            crc(&sent),
            Some(key().sign_body("PUT", &target, Signed::now(), 5000, crc32c::crc32c(&sent))),
        ),
        // One of the wrong length.
        (
            crc(&sent),
            Some(key().sign_body("PUT", &target, Signed::now(), 4999, crc32c::crc32c(&sent))),
        ),
        // None at all.
        (crc(&sent), None),
    ];
    for (crc, mac) in cases {
        let signed = Signed::now();
        let trailer = match &mac {
            Some(mac) => format!("{CRC_HEADER}: {crc}\r\n{BODY_AUTH_HEADER}: {mac}"),
            None => format!("{CRC_HEADER}: {crc}"),
        };
        let (head, body) = chunked_put(&target, signed, &sent, &trailer);
        let (status, rest) = raw(node.addr, &head, &body).await;
        assert_eq!(status, 403, "{mac:?}: {rest}");
        assert!(rest.contains("x-cairn-body-auth"), "{rest}");
        assert_eq!(store.len(id).await.unwrap(), None);
        let prefix = store.path_of(id).parent().unwrap().to_path_buf();
        assert_eq!(fs::read_dir(&prefix).unwrap().count(), 0);
    }
    // A second, wrong, signature beside the right one is refused too.
    let signed = Signed::now();
    let good = key().sign_body("PUT", &target, signed, 5000, crc32c::crc32c(&sent));
    let (head, body) = chunked_put(
        &target,
        signed,
        &sent,
        &format!(
            "{CRC_HEADER}: {}\r\n{BODY_AUTH_HEADER}: {good}\r\n{BODY_AUTH_HEADER}: {}",
            crc(&sent),
            "0".repeat(64)
        ),
    );
    assert_eq!(raw(node.addr, &head, &body).await.0, 403);
    // The right one alone is taken.
    let (status, rest) = put_with_trailer(&node, id, &sent, &crc(&sent)).await;
    assert_eq!(status, 201, "{rest}");
    node.stop().await;
}

#[tokio::test]
async fn answers_health_and_503_beyond_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("127.0.0.1:0".parse().unwrap(), dir.path(), None);
    config.max_connections = 3;
    let node = TestNode::start_with(config).await;
    // Connections that take the three slots and say nothing.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(node.addr).await.unwrap());
    }
    // Let the node accept them before the next.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, rest) = raw(node.addr, &signed("GET", "/chunks?limit=1"), b"").await;
    assert_eq!(status, 503, "{rest}");
    assert!(rest.contains("too many connections"), "{rest}");
    let (status, rest) = raw(node.addr, &signed("GET", "/health"), b"").await;
    assert_eq!(status, 200, "{rest}");
    // Beyond the cap, health still needs the cluster key.
    let (status, _) = raw(node.addr, "GET /health HTTP/1.1", b"").await;
    assert_eq!(status, 403);
    drop(idle);
    // Slots come back as connections close.
    let mut status = 0;
    for _ in 0..100 {
        status = raw(node.addr, &signed("GET", "/chunks?limit=1"), b"")
            .await
            .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    node.stop().await;
}

#[tokio::test]
async fn closes_connections_that_stay_idle() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("127.0.0.1:0".parse().unwrap(), dir.path(), None);
    config.idle_timeout = Duration::from_millis(500);
    let node = TestNode::start_with(config).await;
    let started = std::time::Instant::now();
    // One that never sends a byte, one that sends half a request head, and one kept alive
    // after an answer.
    let mut silent = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    partial
        .write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut kept = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let head = format!("{}\r\nHost: x\r\n\r\n", signed("GET", "/health"));
    kept.write_all(head.as_bytes()).await.unwrap();
    let mut answered = vec![0u8; 4096];
    let n = kept.read(&mut answered).await.unwrap();
    assert!(answered[..n].starts_with(b"HTTP/1.1 200"));
    for stream in [&mut silent, &mut partial, &mut kept] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest));
        // Closed by the node: end of file (or a reset), whatever it sent first.
        assert!(read.await.is_ok(), "an idle connection was kept open");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    node.stop().await;
}
