//! The corners of the protocol that real clients reach: hostile key names, keys only a raw
//! connection can send, `Expect: 100-continue`, early refusals before the body is read, every
//! x-amz-checksum algorithm against published check values, SigV4 requests missing a piece,
//! concurrent writers of one key, and arguments S3 validates.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cairn_test_support::*;
use http::{Method, StatusCode};
use time::OffsetDateTime;

const BUCKET: &str = "protocol";

#[tokio::test]
async fn hostile_keys_round_trip() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let keys = [
        "a b+c%d/é/\"&",
        "a b",
        "a+b",
        "100%",
        "%2F",
        "日本/語/ファイル",
        "sub-delims!$'()*,;=:@",
        "<xml>&amp;</xml>",
        "   ",
        "/leading-slash",
        "double//slash",
        "trailing/",
        "tab\there",
        "new\nline",
        "carriage\rreturn",
        "~tilde",
        "question?mark#hash",
    ];
    for (i, key) in keys.iter().enumerate() {
        let data = random_bytes(i as u64, 100 + i);
        let etag = client.put_ok(BUCKET, key, &data).await;
        let get = client.get(BUCKET, key).await;
        get.assert_status(StatusCode::OK);
        assert!(get.body == data, "{key:?}: wrong bytes");
        assert_eq!(get.header("etag"), Some(etag.as_str()), "{key:?}");
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort();
    let list = client.list(BUCKET, true, &[]).await;
    assert_eq!(list.xml_values("Key"), sorted);
    let list = client
        .list(BUCKET, false, &[("encoding-type", "url")])
        .await;
    assert_eq!(list.xml_values("Key").len(), keys.len());

    for key in keys {
        client
            .delete(BUCKET, key)
            .await
            .assert_status(StatusCode::NO_CONTENT);
        client
            .head(BUCKET, key)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    let list = client.list(BUCKET, true, &[]).await;
    assert!(list.xml_values("Key").is_empty(), "{}", list.text());
}

#[tokio::test]
async fn dot_segments_are_part_of_the_key() {
    let (server, client) = server_with_bucket(BUCKET).await;
    // A URL-parsing client would resolve `.` and `..`; S3 keeps them, so this goes over a raw connection.
    let path = format!("/{BUCKET}/a/./b/../c");
    let data = b"dots".to_vec();
    let head = client
        .request(Method::PUT, &path)
        .body(data.clone())
        .raw_head(Some(data.len() as u64), &[]);
    let resp = raw_exchange(&server.host, &head, &data);
    assert_eq!(resp.status, 200, "{resp:?}");
    let list = client.list(BUCKET, true, &[]).await;
    assert_eq!(list.xml_values("Key"), ["a/./b/../c"]);
    let head = client.request(Method::GET, &path).raw_head(None, &[]);
    let resp = raw_exchange(&server.host, &head, b"");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, data);
    client
        .head(BUCKET, "a/c")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_paths_and_methods() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let head = client
        .request(Method::GET, &format!("/{BUCKET}/bad%zzescape"))
        .raw_head(None, &[]);
    let resp = raw_exchange(&server.host, &head, b"");
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(resp.code().as_deref(), Some("InvalidURI"));
    // Percent-encoded bytes that are not UTF-8.
    let head = client
        .request(Method::GET, &format!("/{BUCKET}/%FF%FE"))
        .raw_head(None, &[]);
    let resp = raw_exchange(&server.host, &head, b"");
    assert_eq!(resp.status, 400, "{resp:?}");

    client
        .request(Method::PATCH, &object_path(BUCKET, "k"))
        .send()
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    client
        .request(Method::POST, &object_path(BUCKET, "k"))
        .send()
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    // Half a part address must not fall through to PutObject.
    client
        .request(Method::PUT, &object_path(BUCKET, "k"))
        .query("partNumber=1")
        .body(b"x".to_vec())
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    client
        .head(BUCKET, "k")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

/// Reads from `stream` until a blank line ends an HTTP head; returns the head.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read head");
        assert!(n == 1, "connection closed after {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn expect_100_continue() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(1, MIB + 3);
    let head = client
        .request(Method::PUT, &object_path(BUCKET, "continued"))
        .payload(PayloadHash::Unsigned)
        .raw_head(
            Some(data.len() as u64),
            &[("expect", "100-continue"), ("connection", "close")],
        );
    let mut stream = TcpStream::connect(&server.host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    let interim = read_head(&mut stream);
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "expected 100 Continue, got {interim:?}"
    );
    stream.write_all(&data).expect("write body");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let resp = RawResponse::parse(&rest).expect("final response");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("etag"),
        Some(format!("\"{}\"", md5_hex(&data)).as_str())
    );
    assert!(client.get(BUCKET, "continued").await.body == data);

    // A request that will fail is refused without waiting for the body.
    let head = client
        .request(Method::PUT, &object_path("no-such-bucket", "k"))
        .payload(PayloadHash::Unsigned)
        .raw_head(
            Some(data.len() as u64),
            &[("expect", "100-continue"), ("connection", "close")],
        );
    let mut stream = TcpStream::connect(&server.host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let resp = RawResponse::parse(&answer).expect("response");
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(resp.code().as_deref(), Some("NoSuchBucket"));
}

/// What `Resp::assert_error` checks, for an answer read off a raw connection: the status, S3's
/// XML error with its code, and a RequestId equal to x-amz-request-id.
fn assert_raw_error(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{resp:?}");
    assert_eq!(resp.code().as_deref(), Some(code), "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/xml"));
    let body = String::from_utf8_lossy(&resp.body);
    assert!(body.starts_with("<?xml"), "{body}");
    let request_id = xml_values(&body, "RequestId").into_iter().next();
    assert!(
        request_id.is_some() && request_id.as_deref() == resp.header("x-amz-request-id"),
        "RequestId in the body must match x-amz-request-id: {resp:?}"
    );
}

#[tokio::test]
async fn refused_before_the_body() {
    let (server, client) = server_with_bucket(BUCKET).await;
    // Declaring more than 5 GiB: refused from the headers alone; the test sends no body.
    let head = client
        .request(Method::PUT, &object_path(BUCKET, "huge"))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(6 << 30), &[]);
    let resp = raw_exchange(&server.host, &head, b"");
    assert_raw_error(&resp, 400, "EntityTooLarge");

    // No Content-Length at all.
    let head = client
        .request(Method::PUT, &object_path(BUCKET, "nolength"))
        .payload(PayloadHash::Unsigned)
        .raw_head(None, &[]);
    let resp = raw_exchange(&server.host, &head, b"");
    assert_raw_error(&resp, 411, "MissingContentLength");
    client
        .head(BUCKET, "nolength")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // An XML body over the cap.
    let upload = client.create_upload(BUCKET, "mp").await;
    let head = client
        .request(Method::POST, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("uploadId", &upload)]))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(64 << 20), &[]);
    let resp = raw_exchange(&server.host, &head, b"");
    assert_raw_error(&resp, 400, "MaxMessageLengthExceeded");
    server.wait_for_chunk_files(0).await;
}

#[tokio::test]
async fn every_checksum_algorithm_against_check_values() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    // The standard check input and each algorithm's published check value.
    let check = b"123456789".to_vec();
    let cases: [(&str, Vec<u8>); 5] = [
        ("crc32", 0xCBF4_3926u32.to_be_bytes().to_vec()),
        ("crc32c", 0xE306_9283u32.to_be_bytes().to_vec()),
        ("crc64nvme", 0xAE8B_1486_0A79_9888u64.to_be_bytes().to_vec()),
        (
            "sha1",
            hex::decode("f7c3bc1d808e04732adf679965ccc34ca7ae3441").expect("hex"),
        ),
        (
            "sha256",
            hex::decode("15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225")
                .expect("hex"),
        ),
    ];
    for (algorithm, digest) in &cases {
        let header = format!("x-amz-checksum-{algorithm}");
        let value = base64_encode(digest);
        let key = format!("sum/{algorithm}");
        let resp = client
            .request(Method::PUT, &object_path(BUCKET, &key))
            .header(&header, &value)
            .body(check.clone())
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        assert_eq!(resp.header(&header), Some(value.as_str()), "{algorithm}");

        for method in [Method::GET, Method::HEAD] {
            let resp = client
                .request(method.clone(), &object_path(BUCKET, &key))
                .header("x-amz-checksum-mode", "ENABLED")
                .send()
                .await;
            resp.assert_status(StatusCode::OK);
            assert_eq!(
                resp.header(&header),
                Some(value.as_str()),
                "{method} {algorithm}"
            );
        }

        let mut wrong = digest.clone();
        wrong[0] ^= 1;
        client
            .request(Method::PUT, &object_path(BUCKET, "sum/wrong"))
            .header(&header, &base64_encode(&wrong))
            .body(check.clone())
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
        // Not base64 of the right length: BadDigest too, as AWS answers (tests/semantics.rs).
        client
            .request(Method::PUT, &object_path(BUCKET, "sum/wrong"))
            .header(&header, "AAAA!")
            .body(check.clone())
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    }
    client
        .head(BUCKET, "sum/wrong")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // Two checksums at once are refused.
    client
        .request(Method::PUT, &object_path(BUCKET, "sum/two"))
        .header("x-amz-checksum-crc32", &base64_encode(&cases[0].1))
        .header("x-amz-checksum-crc32c", &base64_encode(&cases[1].1))
        .body(check)
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn multipart_checksums_and_part_digests() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let resp = client
        .request(Method::POST, &object_path(BUCKET, "mp"))
        .query("uploads")
        .header("x-amz-checksum-algorithm", "CRC32")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("x-amz-checksum-algorithm"), Some("CRC32"));
    let upload = resp.xml_value("UploadId").expect("UploadId");
    let part_query = query_string(&[("partNumber", "1"), ("uploadId", &upload)]);

    let data = random_bytes(2, PART);
    // A wrong Content-MD5 on a part: refused, nothing stored.
    client
        .request(Method::PUT, &object_path(BUCKET, "mp"))
        .query(&part_query)
        .header("content-md5", &content_md5(b"other"))
        .body(data.clone())
        .payload(PayloadHash::Unsigned)
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    client
        .request(Method::PUT, &object_path(BUCKET, "mp"))
        .query(&part_query)
        .header("x-amz-checksum-crc32", &crc32_base64(b"other"))
        .body(data.clone())
        .payload(PayloadHash::Unsigned)
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    server.wait_for_chunk_files(0).await;

    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "mp"))
        .query(&part_query)
        .header("x-amz-checksum-crc32", &crc32_base64(&data))
        .body(data.clone())
        .payload(PayloadHash::Unsigned)
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(
        resp.header("x-amz-checksum-crc32"),
        Some(crc32_base64(&data).as_str())
    );
    let etag = resp.header("etag").expect("ETag").to_owned();
    let parts = client
        .request(Method::GET, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("uploadId", &upload)]))
        .send()
        .await;
    assert_eq!(
        parts.xml_value("ChecksumAlgorithm").as_deref(),
        Some("CRC32")
    );
    assert_eq!(parts.xml_value("ChecksumCRC32"), Some(crc32_base64(&data)));
    assert_eq!(parts.xml_values("ETag"), std::slice::from_ref(&etag));

    // A part uploaded without a checksum header still gets the upload's algorithm computed.
    let second = random_bytes(3, 10);
    let resp = client.upload_part(BUCKET, "mp", &upload, 2, &second).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(
        resp.header("x-amz-checksum-crc32"),
        Some(crc32_base64(&second).as_str())
    );
    // ETags in CompleteMultipartUpload may come without quotes.
    let e2 = resp
        .header("etag")
        .expect("ETag")
        .trim_matches('"')
        .to_owned();
    client
        .complete(BUCKET, "mp", &upload, &[(1, etag), (2, e2)])
        .await
        .assert_status(StatusCode::OK);
    let mut whole = data;
    whole.extend_from_slice(&second);
    assert!(client.get(BUCKET, "mp").await.body == whole);
}

#[tokio::test]
async fn sigv4_requests_missing_a_piece() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let path = object_path(BUCKET, "k");
    client.put_ok(BUCKET, "k", b"data").await;

    // No x-amz-content-sha256, or a value that is none of the allowed forms.
    client
        .request(Method::GET, &path)
        .without("x-amz-content-sha256")
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    client
        .request(Method::GET, &path)
        .payload(PayloadHash::Literal("not-a-hash".into()))
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    // No date.
    client
        .request(Method::GET, &path)
        .without("x-amz-date")
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "AccessDenied");

    // An x-amz-* header added after signing.
    let auth = client
        .request(Method::PUT, &path)
        .body(b"new".to_vec())
        .signed_headers()["authorization"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    client
        .request(Method::PUT, &path)
        .header("x-amz-meta-sneaky", "yes")
        .body(b"new".to_vec())
        .auth(Auth::Authorization(auth))
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "AccessDenied");
    assert_eq!(client.get(BUCKET, "k").await.body, b"data");

    // Signature Version 2 is not served, and never as anonymous.
    client
        .request(Method::GET, &path)
        .auth(Auth::Authorization(format!(
            "AWS {TEST_KEY_ID}:c2lnbmF0dXJl"
        )))
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");

    // SDK headers that carry no meaning are accepted.
    let resp = client
        .request(Method::GET, &path)
        .header("x-amz-sdk-checksum-algorithm", "CRC32")
        .header(
            "amz-sdk-invocation-id",
            "3d6a1c1e-0c44-4b43-9a43-5e8f0a5f1c11",
        )
        .header("amz-sdk-request", "attempt=1; max=3")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);

    // Presigned URLs with a missing parameter, and signed in the future.
    let now = OffsetDateTime::now_utc();
    let url = client.presigned_url(&Method::GET, &path, "", 300, now);
    let cut = url
        .split('&')
        .filter(|p| !p.starts_with("X-Amz-Expires="))
        .collect::<Vec<_>>()
        .join("&");
    client
        .send_url(Method::GET, &cut, Vec::new())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AuthorizationQueryParametersError");
    let url = client.presigned_url(&Method::GET, &path, "", 300, now + time::Duration::hours(1));
    client
        .send_url(Method::GET, &url, Vec::new())
        .await
        .assert_error(StatusCode::FORBIDDEN, "AccessDenied");
}

#[tokio::test]
async fn argument_validation() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", &random_bytes(1, 100)).await;
    let bucket_path = format!("/{BUCKET}");
    for query in [
        "list-type=2&continuation-token=%%%",
        "list-type=2&max-keys=-1",
        "list-type=2&max-keys=ten",
        "max-keys=-5",
    ] {
        client
            .request(Method::GET, &bucket_path)
            .query(query)
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    }
    let resp = client.list(BUCKET, true, &[("max-keys", "5000")]).await;
    assert_eq!(resp.xml_values("Key"), ["k"]);

    client
        .request(Method::GET, &object_path(BUCKET, "k"))
        .query("partNumber=1")
        .header("range", "bytes=0-1")
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    client
        .request(Method::PUT, &object_path(BUCKET, "copy"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/k"))
        .header("x-amz-metadata-directive", "MERGE")
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    client
        .request(Method::PUT, &object_path(BUCKET, "copy"))
        .header("x-amz-copy-source", "no-slash-here")
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    client
        .request(Method::PUT, &object_path("no-such-bucket", "copy"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/k"))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchBucket");
    client
        .request(Method::PUT, &object_path(BUCKET, "copy"))
        .header("x-amz-copy-source", "/no-such-bucket/k")
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchBucket");

    // DeleteObjects: no digest, too many keys, a key too long.
    let post_delete = |body: Vec<u8>, with_md5: bool| {
        let client = client.clone();
        async move {
            let mut req = client
                .request(Method::POST, &format!("/{BUCKET}"))
                .query("delete");
            if with_md5 {
                req = req.header("content-md5", &content_md5(&body));
            }
            req.body(body).send().await
        }
    };
    let one = b"<Delete><Object><Key>k</Key></Object></Delete>".to_vec();
    post_delete(one, false)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    let mut many = String::from("<Delete>");
    for i in 0..1001 {
        many.push_str(&format!("<Object><Key>k{i}</Key></Object>"));
    }
    many.push_str("</Delete>");
    post_delete(many.into_bytes(), true)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MalformedXML");
    let long = format!(
        "<Delete><Object><Key>{}</Key></Object><Object><Key>k</Key></Object></Delete>",
        "x".repeat(1025)
    );
    let resp = post_delete(long.into_bytes(), true).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.xml_value("Code").as_deref(), Some("KeyTooLongError"));
    assert!(xml_values(&resp.text(), "Key").contains(&"k".to_owned()));
    client
        .head(BUCKET, "k")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn range_forms_s3_ignores() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(4, 3 * MIB);
    let etag = client.put_ok(BUCKET, "k", &data).await;
    let head = client.head(BUCKET, "k").await;
    let last_modified = head
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();

    // Several ranges, another unit, last before first, garbage: the whole object, 200.
    for range in [
        "bytes=0-1,3-4",
        "items=0-1",
        "bytes=5-2",
        "bytes=abc",
        "bytes=-",
    ] {
        let resp = client
            .request(Method::GET, &object_path(BUCKET, "k"))
            .header("range", range)
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        assert_eq!(resp.content_length(), data.len() as u64, "{range}");
        assert!(resp.header("content-range").is_none(), "{range}");
    }

    // If-Range with a date: honoured when it equals Last-Modified.
    let if_range = |validator: String| {
        let client = client.clone();
        async move {
            client
                .request(Method::GET, &object_path(BUCKET, "k"))
                .header("range", "bytes=1048575-1048576")
                .header("if-range", &validator)
                .send()
                .await
        }
    };
    let resp = if_range(last_modified).await;
    resp.assert_status(StatusCode::PARTIAL_CONTENT);
    assert!(resp.body == data[MIB - 1..=MIB]);
    let resp = if_range("Mon, 01 Jan 2001 00:00:00 GMT".into()).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.content_length(), data.len() as u64);
    // A weak ETag never validates a range.
    let resp = if_range(format!("W/{etag}")).await;
    resp.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn folder_markers_and_delimiters() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    for key in ["dir/", "dir/file", "dir/sub/", "dir/sub/deep", "top"] {
        client.put_ok(BUCKET, key, b"").await;
    }
    let resp = client.list(BUCKET, true, &[("delimiter", "/")]).await;
    assert_eq!(resp.xml_values("Key"), ["top"]);
    assert_eq!(
        xml_elements(&resp.text(), "CommonPrefixes").len(),
        1,
        "{}",
        resp.text()
    );
    let resp = client
        .list(BUCKET, true, &[("prefix", "dir/"), ("delimiter", "/")])
        .await;
    assert_eq!(resp.xml_values("Key"), ["dir/", "dir/file"]);
    assert!(resp.text().contains("<Prefix>dir/sub/</Prefix>"));
    // A delimiter other than "/", several characters long.
    let resp = client.list(BUCKET, true, &[("delimiter", "sub/")]).await;
    assert_eq!(resp.xml_values("Key"), ["dir/", "dir/file", "top"]);
    assert!(resp.text().contains("<Prefix>dir/sub/</Prefix>"));
    // An empty object round-trips.
    let resp = client.get(BUCKET, "dir/").await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.content_length(), 0);
    assert_eq!(
        resp.header("etag"),
        Some("\"d41d8cd98f00b204e9800998ecf8427e\"")
    );
}

#[tokio::test]
async fn concurrent_writers_of_one_key() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let bodies: Vec<Vec<u8>> = (0..6).map(|i| random_bytes(50 + i, MIB + 1)).collect();
    let mut tasks = Vec::new();
    for body in bodies.clone() {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.put_ok(BUCKET, "contended", &body).await
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    let get = client.get(BUCKET, "contended").await;
    get.assert_status(StatusCode::OK);
    let winner = bodies
        .iter()
        .find(|b| **b == get.body)
        .expect("the object is exactly one writer's body");
    assert_eq!(
        get.header("etag"),
        Some(format!("\"{}\"", md5_hex(winner)).as_str())
    );
    // Only the winner's two chunks remain.
    server.wait_for_chunk_files(2).await;

    // Readers and writers of different keys at once.
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("parallel/{i}");
            let data = random_bytes(100 + i, (i as usize + 1) * 300_000);
            client.put_ok(BUCKET, &key, &data).await;
            let get = client.get(BUCKET, &key).await;
            assert!(get.body == data, "{key}");
        }));
    }
    for task in tasks {
        task.await.expect("parallel task");
    }
    let list = client.list(BUCKET, true, &[("prefix", "parallel/")]).await;
    assert_eq!(list.xml_values("Key").len(), 8);
}

#[tokio::test]
async fn early_error_keeps_the_connection_usable_or_closes_it() {
    let (server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", b"still here").await;
    // A PUT the server refuses before reading its body (the bucket does not exist).
    let declared = 3 * MIB;
    let head = client
        .request(Method::PUT, &object_path("no-such-bucket", "k"))
        .payload(PayloadHash::Unsigned)
        .raw_head(Some(declared as u64), &[]);
    let body = random_bytes(1, declared);
    let mut stream = TcpStream::connect(&server.host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    stream
        .write_all(&body[..64 * 1024])
        .expect("write some body");
    let response_head = read_head(&mut stream);
    assert!(response_head.starts_with("HTTP/1.1 404"), "{response_head}");
    let parsed = RawResponse::parse(response_head.as_bytes()).expect("head");
    let length: usize = parsed
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    let mut error_body = vec![0u8; length];
    stream.read_exact(&mut error_body).expect("error body");
    if parsed
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        return;
    }
    // Without `Connection: close` the connection is persistent (RFC 9112 section 9.3): the
    // client may finish its body and send the next request on it.
    stream
        .write_all(&body[64 * 1024..])
        .expect("the server hung up without Connection: close (finishing the body)");
    let next = client
        .request(Method::HEAD, &object_path(BUCKET, "k"))
        .raw_head(None, &[]);
    stream
        .write_all(next.as_bytes())
        .expect("the server hung up without Connection: close (next request)");
    let next_head = read_head(&mut stream);
    assert!(next_head.starts_with("HTTP/1.1 200"), "{next_head}");
}

#[tokio::test]
async fn virtual_hosted_style_with_domain() {
    let server = TestServer::start_with_args(&["--domain", "s3.cairn.test"]).await;
    let path_style = server.client();
    path_style.create_bucket(BUCKET).await;
    let port = server.host.rsplit_once(':').expect("port").1;
    let vhost = server
        .client()
        .with_host_header(&format!("{BUCKET}.s3.cairn.test:{port}"));

    let key = "dir/a b+c.txt";
    let path = cairn::s3::sigv4::uri_encode(&format!("/{key}"), false);
    vhost
        .request(Method::PUT, &path)
        .body(b"virtual".to_vec())
        .send()
        .await
        .assert_status(StatusCode::OK);
    // The same object through both styles.
    assert_eq!(path_style.get(BUCKET, key).await.body, b"virtual");
    let get = vhost.request(Method::GET, &path).send().await;
    get.assert_status(StatusCode::OK);
    assert_eq!(get.body, b"virtual");
    let list = vhost
        .request(Method::GET, "/")
        .query("list-type=2")
        .send()
        .await;
    list.assert_status(StatusCode::OK);
    assert_eq!(list.xml_values("Key"), [key]);
    assert_eq!(list.xml_value("Name").as_deref(), Some(BUCKET));

    // The bare domain and an IP address stay path style.
    let bare = server
        .client()
        .with_host_header(&format!("s3.cairn.test:{port}"));
    let resp = bare.request(Method::GET, "/").send().await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.xml_values("Name"), [BUCKET]);
    let resp = bare
        .request(Method::GET, &object_path(BUCKET, key))
        .send()
        .await;
    assert_eq!(resp.body, b"virtual");
}

#[tokio::test]
async fn nul_characters_are_refused() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client
        .request(Method::PUT, &format!("/{BUCKET}/a%00b"))
        .body(b"x".to_vec())
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    client
        .request(Method::GET, &format!("/{BUCKET}"))
        .query("list-type=2&prefix=a%00")
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    let list = client.list(BUCKET, true, &[]).await;
    assert!(list.xml_values("Key").is_empty(), "nothing was stored");
}
