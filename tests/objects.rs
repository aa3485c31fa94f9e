//! Objects end to end against the real server with 1 MiB chunks: byte-exact round trips at
//! every chunk boundary (single PUT and multipart), ranged and per-part reads, conditional
//! requests, stored headers and their overrides, CopyObject, and deletes.

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "objects";
/// The sizes that matter to a 1 MiB chunker: empty, one byte, either side of a chunk, and an
/// object of several chunks and three 5 MiB-sized parts.
const SIZES: [usize; 6] = [0, 1, MIB - 1, MIB, MIB + 1, 10 * MIB + MIB / 2];

/// GET and HEAD must return exactly `data` with `etag`.
async fn assert_object(client: &S3Client, key: &str, data: &[u8], etag: &str) {
    let get = client.get(BUCKET, key).await;
    get.assert_status(StatusCode::OK);
    assert_eq!(get.content_length(), data.len() as u64, "{key}");
    assert!(get.body == data, "{key}: body differs from what was stored");
    assert_eq!(get.header("etag"), Some(etag), "{key}");
    assert_eq!(get.header("accept-ranges"), Some("bytes"));
    assert!(get.header("last-modified").is_some());

    let head = client.head(BUCKET, key).await;
    head.assert_status(StatusCode::OK);
    assert_eq!(head.content_length(), data.len() as u64, "{key}");
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag), "{key}");
    assert_eq!(head.header("last-modified"), get.header("last-modified"));
}

#[tokio::test]
async fn single_put_round_trips_byte_exact() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = random_bytes(i as u64 + 1, size);
        let key = format!("single/{size}");
        let etag = client.put_ok(BUCKET, &key, &data).await;
        assert_eq!(etag, format!("\"{}\"", md5_hex(&data)), "{key}");
        assert_object(&client, &key, &data, &etag).await;
    }
}

/// Bytes of `server`'s chunk files that are in the page cache.
fn cached_chunk_bytes(server: &TestServer) -> u64 {
    let files = server.chunk_files();
    assert!(
        !files.is_empty(),
        "no chunk files under {}",
        server.data.display()
    );
    files.iter().map(|file| cached_bytes(file)).sum()
}

#[tokio::test]
async fn direct_writes_round_trip_byte_exact() {
    let server = TestServer::start_with_args(&["--direct-writes"]).await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    // Of each 1 MiB chunk only the first 256 KiB and the footer go through the page cache.
    let big = random_bytes(49, SIZES[5]);
    client.put_ok(BUCKET, "direct/uncached", &big).await;
    let cached = cached_chunk_bytes(&server);
    assert!(
        cached < big.len() as u64 / 2,
        "{cached} of {} bytes in the page cache",
        big.len()
    );
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = random_bytes(i as u64 + 50, size);
        let key = format!("direct/{size}");
        let etag = client.put_ok(BUCKET, &key, &data).await;
        assert_object(&client, &key, &data, &etag).await;
        if size > 2 {
            let inner = get_range(&client, &key, &format!("bytes=1-{}", size - 2)).await;
            inner.assert_status(StatusCode::PARTIAL_CONTENT);
            assert!(inner.body == data[1..size - 1], "{key}: range differs");
        }
    }
}

#[tokio::test]
async fn signed_payload_put_spanning_chunks() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(99, MIB + 1);
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "signed"))
        .body(data.clone())
        .payload(PayloadHash::Sha256)
        .header("content-md5", &content_md5(&data))
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let etag = format!("\"{}\"", md5_hex(&data));
    assert_eq!(resp.header("etag"), Some(etag.as_str()));
    assert_object(&client, "signed", &data, &etag).await;
}

#[tokio::test]
async fn multipart_round_trips_byte_exact() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = random_bytes(100 + i as u64, size);
        let key = format!("multi/{size}");
        let etag = client.multipart_put(BUCKET, &key, &data, PART).await;
        let parts: Vec<&[u8]> = if data.is_empty() {
            vec![&data[..]]
        } else {
            data.chunks(PART).collect()
        };
        assert_eq!(etag, multipart_etag(&parts), "{key}");
        assert!(etag.ends_with(&format!("-{}\"", parts.len())));
        assert_object(&client, &key, &data, &etag).await;
    }
}

#[tokio::test]
async fn part_etags_are_md5_and_reuploading_a_part_replaces_it() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let upload = client.create_upload(BUCKET, "k").await;
    let first = random_bytes(1, PART);
    let second = random_bytes(2, 1000);
    let replaced = random_bytes(3, 2000);
    let e1 = client.upload_part_ok(BUCKET, "k", &upload, 1, &first).await;
    assert_eq!(e1, format!("\"{}\"", md5_hex(&first)));
    client
        .upload_part_ok(BUCKET, "k", &upload, 2, &second)
        .await;
    let e2 = client
        .upload_part_ok(BUCKET, "k", &upload, 2, &replaced)
        .await;
    assert_eq!(e2, format!("\"{}\"", md5_hex(&replaced)));

    let parts = client
        .request(Method::GET, &object_path(BUCKET, "k"))
        .query(&query_string(&[("uploadId", &upload)]))
        .send()
        .await;
    parts.assert_status(StatusCode::OK);
    assert_eq!(parts.xml_values("PartNumber"), ["1", "2"]);
    assert_eq!(
        parts.xml_values("Size"),
        [PART.to_string(), "2000".to_string()]
    );

    let resp = client
        .complete(BUCKET, "k", &upload, &[(1, e1), (2, e2)])
        .await;
    resp.assert_status(StatusCode::OK);
    let mut whole = first.clone();
    whole.extend_from_slice(&replaced);
    let get = client.get(BUCKET, "k").await;
    assert_eq!(get.content_length(), whole.len() as u64);
    assert!(get.body == whole);
}

/// A 10.5 MiB object in parts of 5, 5 and 0.5 MiB, stored with multipart, and the same bytes
/// stored with one PUT.
async fn ranged_fixture(client: &S3Client) -> (Vec<u8>, String, String) {
    let data = random_bytes(7, 10 * MIB + MIB / 2);
    let multi = client.multipart_put(BUCKET, "multi", &data, PART).await;
    let single = client.put_ok(BUCKET, "single", &data).await;
    (data, multi, single)
}

async fn get_range(client: &S3Client, key: &str, range: &str) -> Resp {
    client
        .request(Method::GET, &object_path(BUCKET, key))
        .header("range", range)
        .send()
        .await
}

#[tokio::test]
async fn ranged_reads() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let (data, multi_etag, single_etag) = ranged_fixture(&client).await;
    let size = data.len();
    let chunk = CHUNK;
    // (Range header, first byte, last byte inclusive)
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=100-199".into(), 100, 199),
        // Across the first chunk boundary.
        ("bytes=1048570-1048580".into(), 1_048_570, 1_048_580),
        // Ending exactly at, and starting exactly at, a chunk boundary.
        (format!("bytes=0-{}", chunk - 1), 0, chunk - 1),
        (format!("bytes={chunk}-{}", chunk), chunk, chunk),
        // Across several chunks.
        ("bytes=1000000-3200000".into(), 1_000_000, 3_200_000),
        // Across the boundary between parts 1 and 2, and 2 and 3.
        (
            format!("bytes={}-{}", PART - 10, PART + 10),
            PART - 10,
            PART + 10,
        ),
        (
            format!("bytes={}-{}", 2 * PART - 1, 2 * PART),
            2 * PART - 1,
            2 * PART,
        ),
        // Open-ended, suffix, last byte, and a last byte past the end (clamped).
        (format!("bytes={}-", size - 1000), size - 1000, size - 1),
        ("bytes=-1000".into(), size - 1000, size - 1),
        (
            format!("bytes={}-{}", size - 1, size - 1),
            size - 1,
            size - 1,
        ),
        (
            format!("bytes={}-{}", size - 5, size + 100),
            size - 5,
            size - 1,
        ),
        ("bytes=-99999999".into(), 0, size - 1),
    ];
    for (key, etag) in [("multi", &multi_etag), ("single", &single_etag)] {
        for (range, first, last) in &cases {
            let resp = get_range(&client, key, range).await;
            resp.assert_status(StatusCode::PARTIAL_CONTENT);
            assert_eq!(
                resp.header("content-range"),
                Some(format!("bytes {first}-{last}/{size}").as_str()),
                "{key} {range}"
            );
            assert_eq!(resp.content_length(), (last - first + 1) as u64);
            assert!(
                resp.body == data[*first..=*last],
                "{key} {range}: wrong bytes"
            );
            assert_eq!(resp.header("etag"), Some(etag.as_str()));
        }
    }

    // Beyond the end: 416 with the size, for GET and HEAD.
    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size, size + 9),
    ] {
        let resp = get_range(&client, "multi", &range).await;
        resp.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange");
        assert_eq!(
            resp.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
        let head = client
            .request(Method::HEAD, &object_path(BUCKET, "multi"))
            .header("range", &range)
            .send()
            .await;
        head.assert_status(StatusCode::RANGE_NOT_SATISFIABLE);
        assert!(head.body.is_empty());
    }

    // A HEAD with a range describes the range.
    let head = client
        .request(Method::HEAD, &object_path(BUCKET, "single"))
        .header("range", "bytes=10-19")
        .send()
        .await;
    head.assert_status(StatusCode::PARTIAL_CONTENT);
    assert_eq!(head.content_length(), 10);
    assert_eq!(
        head.header("content-range"),
        Some(format!("bytes 10-19/{size}").as_str())
    );
}

#[tokio::test]
async fn ranges_of_empty_and_tiny_objects() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "empty", b"").await;
    let resp = get_range(&client, "empty", "bytes=0-").await;
    resp.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange");
    assert_eq!(resp.header("content-range"), Some("bytes */0"));

    client.put_ok(BUCKET, "one", b"x").await;
    let resp = get_range(&client, "one", "bytes=0-10").await;
    resp.assert_status(StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.header("content-range"), Some("bytes 0-0/1"));
    assert_eq!(resp.body, b"x");
    let resp = get_range(&client, "one", "bytes=1-").await;
    resp.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange");
    assert_eq!(resp.header("content-range"), Some("bytes */1"));
}

#[tokio::test]
async fn if_range_and_part_number() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let (data, etag, _) = ranged_fixture(&client).await;
    let size = data.len();

    let with_if_range = |validator: String| {
        let client = client.clone();
        async move {
            client
                .request(Method::GET, &object_path(BUCKET, "multi"))
                .header("range", "bytes=1048570-1048580")
                .header("if-range", &validator)
                .send()
                .await
        }
    };
    let resp = with_if_range(etag.clone()).await;
    resp.assert_status(StatusCode::PARTIAL_CONTENT);
    assert!(resp.body == data[1_048_570..=1_048_580]);
    // A stale validator: the whole object, 200.
    let resp = with_if_range("\"0123456789abcdef0123456789abcdef-3\"".into()).await;
    resp.assert_status(StatusCode::OK);
    assert!(resp.header("content-range").is_none());
    assert_eq!(resp.content_length(), size as u64);
    assert!(resp.body == data);

    let part_starts = [0, PART, 2 * PART, size];
    for n in 1..=3usize {
        let (start, end) = (part_starts[n - 1], part_starts[n]);
        for method in [Method::GET, Method::HEAD] {
            let resp = client
                .request(method.clone(), &object_path(BUCKET, "multi"))
                .query(&format!("partNumber={n}"))
                .send()
                .await;
            resp.assert_status(StatusCode::PARTIAL_CONTENT);
            assert_eq!(resp.header("x-amz-mp-parts-count"), Some("3"), "part {n}");
            assert_eq!(
                resp.header("etag"),
                Some(etag.as_str()),
                "whole-object ETag"
            );
            assert_eq!(
                resp.header("content-range"),
                Some(format!("bytes {start}-{}/{size}", end - 1).as_str())
            );
            assert_eq!(resp.content_length(), (end - start) as u64);
            if method == Method::GET {
                assert!(resp.body == data[start..end], "part {n}: wrong bytes");
            }
        }
    }
    let resp = client
        .request(Method::GET, &object_path(BUCKET, "multi"))
        .query("partNumber=4")
        .send()
        .await;
    resp.assert_error(StatusCode::BAD_REQUEST, "InvalidPartNumber");

    // An object stored by one PUT is its own part 1.
    let resp = client
        .request(Method::GET, &object_path(BUCKET, "single"))
        .query("partNumber=1")
        .send()
        .await;
    assert!(resp.status.is_success(), "{}", resp.status);
    assert!(resp.header("x-amz-mp-parts-count").is_none());
    assert!(resp.body == data);
}

#[tokio::test]
async fn conditional_requests() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(5, 3000);
    let etag = client.put_ok(BUCKET, "k", &data).await;
    let head = client.head(BUCKET, "k").await;
    let last_modified = head.header("last-modified").expect("Last-Modified");
    let modified = cairn::s3::date::parse_http_date(last_modified).expect("HTTP date");
    let before = cairn::s3::date::http_date(modified - time::Duration::hours(1));
    let after = cairn::s3::date::http_date(modified + time::Duration::hours(1));
    let other = "\"00000000000000000000000000000000\"".to_owned();

    // (headers, expected status)
    let cases: Vec<(Vec<(&str, String)>, StatusCode)> = vec![
        (vec![("if-match", etag.clone())], StatusCode::OK),
        (vec![("if-match", "*".into())], StatusCode::OK),
        (
            vec![("if-match", etag.trim_matches('"').to_owned())],
            StatusCode::OK,
        ),
        (
            vec![("if-match", other.clone())],
            StatusCode::PRECONDITION_FAILED,
        ),
        (
            vec![("if-none-match", etag.clone())],
            StatusCode::NOT_MODIFIED,
        ),
        (vec![("if-none-match", other.clone())], StatusCode::OK),
        (
            vec![("if-modified-since", after.clone())],
            StatusCode::NOT_MODIFIED,
        ),
        (
            vec![("if-modified-since", last_modified.to_owned())],
            StatusCode::NOT_MODIFIED,
        ),
        (vec![("if-modified-since", before.clone())], StatusCode::OK),
        (
            vec![("if-unmodified-since", before.clone())],
            StatusCode::PRECONDITION_FAILED,
        ),
        (vec![("if-unmodified-since", after.clone())], StatusCode::OK),
        // If-Match true wins over If-Unmodified-Since false, as AWS documents.
        (
            vec![
                ("if-match", etag.clone()),
                ("if-unmodified-since", before.clone()),
            ],
            StatusCode::OK,
        ),
        // 412 outranks 304.
        (
            vec![("if-match", other.clone()), ("if-none-match", etag.clone())],
            StatusCode::PRECONDITION_FAILED,
        ),
        // 412 outranks 416.
        (
            vec![("if-match", other.clone()), ("range", "bytes=5000-".into())],
            StatusCode::PRECONDITION_FAILED,
        ),
        (
            vec![
                ("if-unmodified-since", before.clone()),
                ("range", "bytes=5000-".into()),
            ],
            StatusCode::PRECONDITION_FAILED,
        ),
        // A satisfied condition lets the range through.
        (
            vec![("if-match", etag.clone()), ("range", "bytes=0-9".into())],
            StatusCode::PARTIAL_CONTENT,
        ),
    ];
    for (headers, expected) in &cases {
        for method in [Method::GET, Method::HEAD] {
            let mut req = client.request(method.clone(), &object_path(BUCKET, "k"));
            for (name, value) in headers {
                req = req.header(name, value);
            }
            let resp = req.send().await;
            assert_eq!(
                resp.status,
                *expected,
                "{method} {headers:?}: {}",
                resp.text()
            );
            match *expected {
                StatusCode::PRECONDITION_FAILED if method == Method::GET => {
                    resp.assert_error(*expected, "PreconditionFailed")
                }
                StatusCode::NOT_MODIFIED => {
                    assert!(resp.body.is_empty(), "304 has no body");
                    assert_eq!(resp.header("etag"), Some(etag.as_str()));
                }
                StatusCode::OK if method == Method::GET => assert!(resp.body == data),
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn stored_headers_and_response_overrides() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let headers = [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-encoding", "gzip"),
        ("content-disposition", "attachment; filename=\"report.txt\""),
        ("content-language", "fr-CA"),
        ("cache-control", "max-age=60, private"),
        ("expires", "Thu, 01 Dec 2044 16:00:00 GMT"),
        ("x-amz-meta-color", "blue"),
        ("x-amz-meta-Mixed-Case", "Value With Spaces"),
    ];
    let mut req = client
        .request(Method::PUT, &object_path(BUCKET, "doc"))
        .body(b"hello".to_vec());
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.send().await.assert_status(StatusCode::OK);

    for method in [Method::GET, Method::HEAD] {
        let resp = client
            .request(method.clone(), &object_path(BUCKET, "doc"))
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        for (name, value) in headers {
            assert_eq!(
                resp.header(&name.to_ascii_lowercase()),
                Some(value),
                "{method} {name}"
            );
        }
    }

    let overrides = [
        ("response-content-type", "application/json"),
        ("response-content-language", "de"),
        ("response-expires", "Fri, 02 Dec 2044 16:00:00 GMT"),
        ("response-cache-control", "no-cache"),
        (
            "response-content-disposition",
            "inline; filename=\"a b.txt\"",
        ),
        ("response-content-encoding", "identity"),
    ];
    let resp = client
        .request(Method::GET, &object_path(BUCKET, "doc"))
        .query(&query_string(&overrides))
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    for (param, value) in overrides {
        let header = param.trim_start_matches("response-");
        assert_eq!(resp.header(header), Some(value), "{param}");
    }
    assert_eq!(resp.header("x-amz-meta-color"), Some("blue"));
    assert_eq!(resp.body, b"hello");

    // Without Content-Type, S3's default.
    client.put_ok(BUCKET, "plain", b"x").await;
    let resp = client.head(BUCKET, "plain").await;
    assert_eq!(resp.header("content-type"), Some("binary/octet-stream"));
    assert!(resp.header("x-amz-meta-color").is_none());
}

#[tokio::test]
async fn checksum_headers_are_verified_stored_and_returned() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(11, 2 * MIB + 3);
    let crc = crc32_base64(&data);
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "crc"))
        .header("x-amz-checksum-crc32", &crc)
        .body(data.clone())
        .payload(PayloadHash::Unsigned)
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("x-amz-checksum-crc32"), Some(crc.as_str()));

    let plain = client.head(BUCKET, "crc").await;
    assert!(plain.header("x-amz-checksum-crc32").is_none());
    let resp = client
        .request(Method::GET, &object_path(BUCKET, "crc"))
        .header("x-amz-checksum-mode", "ENABLED")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("x-amz-checksum-crc32"), Some(crc.as_str()));
    assert!(resp.body == data);

    let small = b"sha256 checked".to_vec();
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "sha"))
        .header("x-amz-checksum-sha256", &sha256_base64(&small))
        .body(small)
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn copy_object() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(21, 2 * MIB + 17);
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "src"))
        .header("content-type", "image/png")
        .header("x-amz-meta-origin", "camera")
        .body(data.clone())
        .payload(PayloadHash::Unsigned)
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let src_etag = resp.header("etag").expect("ETag").to_owned();

    // COPY (the default directive): bytes and metadata carried over.
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "copy"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/src"))
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.xml_value("ETag").as_deref(), Some(src_etag.as_str()));
    assert!(resp.xml_value("LastModified").is_some());
    let get = client.get(BUCKET, "copy").await;
    assert!(get.body == data);
    assert_eq!(get.header("content-type"), Some("image/png"));
    assert_eq!(get.header("x-amz-meta-origin"), Some("camera"));

    // REPLACE: the request's metadata instead.
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "replaced"))
        .header("x-amz-copy-source", &format!("{BUCKET}/src"))
        .header("x-amz-metadata-directive", "REPLACE")
        .header("content-type", "text/csv")
        .header("x-amz-meta-stage", "two")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let head = client.head(BUCKET, "replaced").await;
    assert_eq!(head.header("content-type"), Some("text/csv"));
    assert_eq!(head.header("x-amz-meta-stage"), Some("two"));
    assert!(head.header("x-amz-meta-origin").is_none());
    assert_eq!(head.content_length(), data.len() as u64);

    // Copy-source conditions.
    let copy_if = |header: &'static str, value: String| {
        let client = client.clone();
        async move {
            client
                .request(Method::PUT, &object_path(BUCKET, "conditional"))
                .header("x-amz-copy-source", &format!("/{BUCKET}/src"))
                .header(header, &value)
                .send()
                .await
        }
    };
    copy_if("x-amz-copy-source-if-match", "\"ffff\"".into())
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    copy_if("x-amz-copy-source-if-none-match", src_etag.clone())
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    client
        .head(BUCKET, "conditional")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    copy_if("x-amz-copy-source-if-match", src_etag.clone())
        .await
        .assert_status(StatusCode::OK);

    // A hostile key as source, URL-encoded in the header.
    let hostile = "a b+c%d/é/\"&";
    let small = random_bytes(22, 1234);
    let etag = client.put_ok(BUCKET, hostile, &small).await;
    assert_object(&client, hostile, &small, &etag).await;
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "from-hostile"))
        .header(
            "x-amz-copy-source",
            &uri_encode_path(&format!("/{BUCKET}/{hostile}")),
        )
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert!(client.get(BUCKET, "from-hostile").await.body == small);
    let list = client.list(BUCKET, true, &[("prefix", "a b")]).await;
    assert_eq!(list.xml_values("Key"), [hostile]);

    // Copying a multipart object gives a single-part object whose ETag is its MD5.
    let multi = random_bytes(23, PART + 10);
    client.multipart_put(BUCKET, "multi", &multi, PART).await;
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "multi-copy"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/multi"))
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(
        resp.xml_value("ETag"),
        Some(format!("\"{}\"", md5_hex(&multi)))
    );
    assert!(client.get(BUCKET, "multi-copy").await.body == multi);

    // Onto itself without REPLACE is refused; a missing source is NoSuchKey.
    client
        .request(Method::PUT, &object_path(BUCKET, "src"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/src"))
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    client
        .request(Method::PUT, &object_path(BUCKET, "x"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/missing"))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchKey");
}

fn uri_encode_path(path: &str) -> String {
    cairn::s3::sigv4::uri_encode(path, false)
}

#[tokio::test]
async fn delete_object_is_idempotent() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "gone", b"bye").await;
    for _ in 0..2 {
        let resp = client.delete(BUCKET, "gone").await;
        resp.assert_status(StatusCode::NO_CONTENT);
        assert!(resp.body.is_empty());
    }
    client
        .get(BUCKET, "gone")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchKey");
    client
        .delete(BUCKET, "never-existed")
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

fn delete_body(keys: &[&str], quiet: bool) -> Vec<u8> {
    let mut xml = format!("<Delete><Quiet>{quiet}</Quiet>");
    for key in keys {
        xml.push_str(&format!("<Object><Key>{}</Key></Object>", xml_escape(key)));
    }
    xml.push_str("</Delete>");
    xml.into_bytes()
}

#[tokio::test]
async fn delete_objects() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    for key in ["d1", "d2", "d3", "d&4", "keep"] {
        client.put_ok(BUCKET, key, key.as_bytes()).await;
    }
    let post = |body: Vec<u8>, digest: (&'static str, String)| {
        let client = client.clone();
        async move {
            client
                .request(Method::POST, &format!("/{BUCKET}"))
                .query("delete")
                .header(digest.0, &digest.1)
                .body(body)
                .send()
                .await
        }
    };

    // Verbose, with Content-MD5: every key reported, including one that did not exist.
    let body = delete_body(&["d1", "d&4", "missing"], false);
    let resp = post(body.clone(), ("content-md5", content_md5(&body))).await;
    resp.assert_status(StatusCode::OK);
    let mut deleted = resp.xml_values("Key");
    deleted.sort();
    assert_eq!(deleted, ["d&4", "d1", "missing"]);
    assert_eq!(xml_elements(&resp.text(), "Deleted").len(), 3);
    assert!(xml_elements(&resp.text(), "Error").is_empty());

    // Quiet, with x-amz-checksum-crc32 in place of Content-MD5: nothing reported.
    let body = delete_body(&["d2", "d3"], true);
    let resp = post(body.clone(), ("x-amz-checksum-crc32", crc32_base64(&body))).await;
    resp.assert_status(StatusCode::OK);
    assert!(resp.xml_values("Deleted").is_empty(), "{}", resp.text());
    assert!(resp.xml_values("Key").is_empty(), "{}", resp.text());

    for key in ["d1", "d2", "d3", "d&4"] {
        client
            .head(BUCKET, key)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    let list = client.list(BUCKET, true, &[]).await;
    assert_eq!(list.xml_values("Key"), ["keep"]);

    // A digest that does not match the body.
    let body = delete_body(&["keep"], false);
    post(body, ("content-md5", content_md5(b"other")))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    let body = delete_body(&["keep"], false);
    post(body, ("x-amz-checksum-crc32", crc32_base64(b"other")))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    client
        .head(BUCKET, "keep")
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn empty_last_part() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let first = random_bytes(31, PART);
    let upload = client.create_upload(BUCKET, "k").await;
    let e1 = client.upload_part_ok(BUCKET, "k", &upload, 1, &first).await;
    let e2 = client.upload_part_ok(BUCKET, "k", &upload, 2, b"").await;
    let resp = client
        .complete(BUCKET, "k", &upload, &[(1, e1), (2, e2)])
        .await;
    resp.assert_status(StatusCode::OK);
    let etag = multipart_etag(&[&first, b""]);
    assert_eq!(resp.xml_value("ETag"), Some(etag.clone()));
    assert_object(&client, "k", &first, &etag).await;

    // Part 2 holds no bytes: a GET of it must not send part 1's.
    for method in [Method::GET, Method::HEAD] {
        let resp = client
            .request(method.clone(), &object_path(BUCKET, "k"))
            .query("partNumber=2")
            .send()
            .await;
        assert!(resp.status.is_success(), "{method}: {}", resp.status);
        assert_eq!(resp.header("x-amz-mp-parts-count"), Some("2"));
        assert_eq!(resp.content_length(), 0, "{method} ?partNumber=2");
        assert!(resp.body.is_empty(), "{method} ?partNumber=2 sent a body");
    }
}

#[tokio::test]
async fn multipart_keeps_the_headers_given_at_creation() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let resp = client
        .request(Method::POST, &object_path(BUCKET, "mp"))
        .query("uploads")
        .header("content-type", "video/mp4")
        .header("content-disposition", "attachment")
        .header("cache-control", "no-store")
        .header("x-amz-meta-camera", "front")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.xml_value("Key").as_deref(), Some("mp"));
    assert_eq!(resp.xml_value("Bucket").as_deref(), Some(BUCKET));
    let upload = resp.xml_value("UploadId").expect("UploadId");
    let data = random_bytes(41, 777);
    let etag = client.upload_part_ok(BUCKET, "mp", &upload, 1, &data).await;
    let resp = client.complete(BUCKET, "mp", &upload, &[(1, etag)]).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.xml_value("Key").as_deref(), Some("mp"));
    assert_eq!(resp.xml_value("Bucket").as_deref(), Some(BUCKET));

    let head = client.head(BUCKET, "mp").await;
    assert_eq!(head.header("content-type"), Some("video/mp4"));
    assert_eq!(head.header("content-disposition"), Some("attachment"));
    assert_eq!(head.header("cache-control"), Some("no-store"));
    assert_eq!(head.header("x-amz-meta-camera"), Some("front"));
    assert_eq!(head.content_length(), 777);

    // Copies of an empty object are empty.
    client.put_ok(BUCKET, "empty", b"").await;
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "empty-copy"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/empty"))
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let get = client.get(BUCKET, "empty-copy").await;
    assert_eq!(get.content_length(), 0);
    assert_eq!(
        get.header("etag"),
        Some("\"d41d8cd98f00b204e9800998ecf8427e\"")
    );
}

#[tokio::test]
async fn small_objects_live_in_metadata_without_chunk_files() {
    const INLINE_MAX: usize = 16 * 1024;
    let (server, client) = server_with_bucket(BUCKET).await;
    let small = random_bytes(7, INLINE_MAX);
    let etag = client.put_ok(BUCKET, "small", &small).await;
    assert_object(&client, "small", &small, &etag).await;
    assert!(
        server.chunk_files().is_empty(),
        "{:?}",
        server.chunk_files()
    );

    // Ranges are cut from the stored bytes.
    let ranged = client
        .request(Method::GET, &object_path(BUCKET, "small"))
        .header("range", "bytes=100-4195")
        .send()
        .await;
    ranged.assert_status(StatusCode::PARTIAL_CONTENT);
    assert!(ranged.body == small[100..4196]);
    let tail = client
        .request(Method::GET, &object_path(BUCKET, "small"))
        .header("range", "bytes=-10")
        .send()
        .await;
    tail.assert_status(StatusCode::PARTIAL_CONTENT);
    assert!(tail.body == small[INLINE_MAX - 10..]);

    // A copy of a small object is small too; one byte more is stored in chunks.
    client
        .request(Method::PUT, &object_path(BUCKET, "copy"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/small"))
        .send()
        .await
        .assert_status(StatusCode::OK);
    assert_object(&client, "copy", &small, &etag).await;
    assert!(server.chunk_files().is_empty());
    let larger = random_bytes(8, INLINE_MAX + 1);
    let etag = client.put_ok(BUCKET, "larger", &larger).await;
    assert_object(&client, "larger", &larger, &etag).await;
    assert_eq!(server.chunk_files().len(), 1);

    // Deleting and overwriting small objects leaves no chunk behind either.
    client
        .delete(BUCKET, "small")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    client
        .get(BUCKET, "small")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let other = random_bytes(9, 5);
    let etag = client.put_ok(BUCKET, "copy", &other).await;
    assert_object(&client, "copy", &other, &etag).await;
    assert_eq!(server.chunk_files().len(), 1);
}
