//! S3 semantics that real clients rely on, each checked on the wire against a real server as AWS
//! documents it: a CompleteMultipartUpload retried after it succeeded, whole-object checksums
//! declared at completion, storage classes, refused server-side encryption, `?partNumber` past
//! the last part, malformed checksum values, copy-source ranges, SigV4 `Date` beside
//! `X-Amz-Date`, presigned expiry, keys that are not UTF-8, `If-None-Match: ETAG` on a write,
//! user metadata bytes and `Content-Encoding` lists.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "semantics";

/// A CRC32 as S3 sends it: big-endian bytes.
fn crc32(data: &[u8]) -> [u8; 4] {
    crc32fast::hash(data).to_be_bytes()
}

/// Creates an upload with `headers`, uploads `parts` with their CRC32s and returns the upload id
/// and the parts' (number, ETag) list.
async fn upload_with_crc32(
    client: &S3Client,
    key: &str,
    headers: &[(&str, &str)],
    parts: &[&[u8]],
) -> (String, Vec<(u32, String)>) {
    let mut create = client
        .request(Method::POST, &object_path(BUCKET, key))
        .query("uploads");
    for (name, value) in headers {
        create = create.header(name, value);
    }
    let resp = create.send().await;
    resp.assert_status(StatusCode::OK);
    let upload = resp.xml_value("UploadId").expect("UploadId");
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let number = i as u32 + 1;
        let resp = client
            .request(Method::PUT, &object_path(BUCKET, key))
            .query(&query_string(&[
                ("partNumber", &number.to_string()),
                ("uploadId", &upload),
            ]))
            .header("x-amz-checksum-crc32", &BASE64.encode(crc32(data)))
            .body(data.to_vec())
            .payload(PayloadHash::Unsigned)
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        done.push((number, resp.header("etag").expect("ETag").to_owned()));
    }
    (upload, done)
}

async fn complete_with(
    client: &S3Client,
    key: &str,
    upload: &str,
    parts: &[(u32, String)],
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = client
        .request(Method::POST, &object_path(BUCKET, key))
        .query(&query_string(&[("uploadId", upload)]))
        .body(complete_xml(parts).into_bytes());
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.send().await
}

/// A completion retried after it succeeded answers the same success, as S3 does; only while
/// the object it made is still the key's, and only for that key.
#[tokio::test]
async fn complete_multipart_upload_retried_after_success() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let first = random_bytes(1, PART);
    let second = random_bytes(2, 1000);
    let upload = client.create_upload(BUCKET, "retried").await;
    let mut parts = Vec::new();
    for (n, data) in [(1, &first), (2, &second)] {
        let etag = client
            .upload_part_ok(BUCKET, "retried", &upload, n, data)
            .await;
        parts.push((n, etag));
    }
    let done = client.complete(BUCKET, "retried", &upload, &parts).await;
    done.assert_status(StatusCode::OK);
    let etag = done.xml_value("ETag").expect("ETag");
    assert_eq!(etag, multipart_etag(&[&first, &second]));

    for attempt in 1..=2 {
        let again = client.complete(BUCKET, "retried", &upload, &parts).await;
        again.assert_status(StatusCode::OK);
        assert_eq!(
            again.xml_value("ETag"),
            Some(etag.clone()),
            "retry {attempt}"
        );
        assert_eq!(again.xml_value("Key").as_deref(), Some("retried"));
        assert_eq!(again.xml_value("Bucket").as_deref(), Some(BUCKET));
    }
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    client.assert_object(BUCKET, "retried", &whole).await;
    println!("a completion retried twice answered 200 with ETag {etag} both times");

    // The upload id names this key only.
    client
        .complete(BUCKET, "elsewhere", &upload, &parts)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    // Nor is the upload alive again.
    client
        .upload_part(BUCKET, "retried", &upload, 3, b"x")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    // Once the key holds another object the completion is history: NoSuchUpload.
    client.put_ok(BUCKET, "retried", b"newer").await;
    client
        .complete(BUCKET, "retried", &upload, &parts)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    assert_eq!(client.get(BUCKET, "retried").await.body, b"newer");
    // An upload that never existed is still NoSuchUpload.
    client
        .complete(BUCKET, "retried", "0123456789abcdef", &parts)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
}

/// The whole object's checksum given at completion (`x-amz-checksum-crc32`, a composite one
/// with its `-N` suffix) is accepted when it matches the parts, refused with BadDigest when
/// it does not, and nothing is committed then.
#[tokio::test]
async fn complete_with_object_checksum() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let first = random_bytes(3, PART);
    let second = random_bytes(4, 777);
    let data: &[&[u8]] = &[&first, &second];
    let composite = {
        let mut crcs = crc32(&first).to_vec();
        crcs.extend_from_slice(&crc32(&second));
        format!("{}-2", BASE64.encode(crc32(&crcs)))
    };
    let full = {
        let mut whole = first.clone();
        whole.extend_from_slice(&second);
        BASE64.encode(crc32(&whole))
    };

    let composite_upload = [
        ("x-amz-checksum-algorithm", "CRC32"),
        ("x-amz-checksum-type", "COMPOSITE"),
    ];
    let (upload, parts) = upload_with_crc32(&client, "composite", &composite_upload, data).await;
    // A wrong value, a wrong part count and a wrong mode are refused; the upload stays.
    let wrong = format!("{}-2", BASE64.encode(crc32(b"other")));
    complete_with(
        &client,
        "composite",
        &upload,
        &parts,
        &[("x-amz-checksum-crc32", &wrong)],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    let wrong_count = composite.replace("-2", "-3");
    complete_with(
        &client,
        "composite",
        &upload,
        &parts,
        &[("x-amz-checksum-crc32", &wrong_count)],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    complete_with(
        &client,
        "composite",
        &upload,
        &parts,
        &[
            ("x-amz-checksum-crc32", &composite),
            ("x-amz-checksum-type", "FULL_OBJECT"),
        ],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    client
        .head(BUCKET, "composite")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let done = complete_with(
        &client,
        "composite",
        &upload,
        &parts,
        &[
            ("x-amz-checksum-crc32", &composite),
            ("x-amz-checksum-type", "COMPOSITE"),
        ],
    )
    .await;
    done.assert_status(StatusCode::OK);
    assert_eq!(done.xml_value("ChecksumCRC32"), Some(composite.clone()));
    assert_eq!(done.xml_value("ChecksumType").as_deref(), Some("COMPOSITE"));

    let full_upload = [
        ("x-amz-checksum-algorithm", "CRC32"),
        ("x-amz-checksum-type", "FULL_OBJECT"),
    ];
    let (upload, parts) = upload_with_crc32(&client, "full", &full_upload, data).await;
    let other_algorithm = BASE64.encode([0u8; 32]);
    complete_with(
        &client,
        "full",
        &upload,
        &parts,
        &[("x-amz-checksum-sha256", &other_algorithm)],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    let done = complete_with(
        &client,
        "full",
        &upload,
        &parts,
        &[("x-amz-checksum-crc32", &full)],
    )
    .await;
    done.assert_status(StatusCode::OK);
    assert_eq!(done.xml_value("ChecksumCRC32"), Some(full.clone()));
    let head = client
        .request(Method::HEAD, &object_path(BUCKET, "full"))
        .header("x-amz-checksum-mode", "ENABLED")
        .send()
        .await;
    assert_eq!(head.header("x-amz-checksum-crc32"), Some(full.as_str()));
    println!("completion with composite {composite} and full-object {full} accepted");
}

/// An `x-amz-checksum-*` value that is not a digest of its algorithm is BadDigest.
#[tokio::test]
async fn malformed_checksum_value_is_bad_digest() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    for (header, value) in [
        ("x-amz-checksum-crc32", "bad"),
        ("x-amz-checksum-crc32c", "AAAAAAAA"),
        ("x-amz-checksum-sha256", "not base64!"),
        ("x-amz-checksum-crc64nvme", ""),
    ] {
        let resp = client
            .put_with(BUCKET, "sum", b"data", &[(header, value)])
            .await;
        resp.assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    }
    client
        .head(BUCKET, "sum")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

/// A storage class is stored and reported: on GET and HEAD when it is not STANDARD, in both
/// listings, in ListParts and ListMultipartUploads; an unknown one is InvalidStorageClass; a
/// copy takes the class it names (STANDARD by default), and a copy onto itself that only
/// changes the class is allowed.
#[tokio::test]
async fn storage_class_stored_and_returned() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let ia = [("x-amz-storage-class", "STANDARD_IA")];
    client
        .put_with(BUCKET, "ia", b"infrequent", &ia)
        .await
        .assert_status(StatusCode::OK);
    client.put_ok(BUCKET, "plain", b"standard").await;
    client
        .put_with(
            BUCKET,
            "explicit",
            b"x",
            &[("x-amz-storage-class", "STANDARD")],
        )
        .await
        .assert_status(StatusCode::OK);

    for method in [Method::GET, Method::HEAD] {
        let ia = client
            .request(method.clone(), &object_path(BUCKET, "ia"))
            .send()
            .await;
        assert_eq!(
            ia.header("x-amz-storage-class"),
            Some("STANDARD_IA"),
            "{method}"
        );
        for key in ["plain", "explicit"] {
            let resp = client
                .request(method.clone(), &object_path(BUCKET, key))
                .send()
                .await;
            assert_eq!(resp.header("x-amz-storage-class"), None, "{method} {key}");
        }
    }
    for v2 in [false, true] {
        let list = client.list(BUCKET, v2, &[]).await;
        assert_eq!(list.xml_values("Key"), ["explicit", "ia", "plain"]);
        assert_eq!(
            list.xml_values("StorageClass"),
            ["STANDARD", "STANDARD_IA", "STANDARD"],
            "v2 {v2}"
        );
    }

    // Unknown names, lowercase ones included, are refused and store nothing.
    for bad in ["FROZEN", "standard_ia", ""] {
        client
            .put_with(BUCKET, "bad", b"x", &[("x-amz-storage-class", bad)])
            .await
            .assert_error(StatusCode::BAD_REQUEST, "InvalidStorageClass");
    }
    client
        .head(BUCKET, "bad")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // Multipart: the upload's class shows in both listings and on the completed object.
    let resp = client
        .request(Method::POST, &object_path(BUCKET, "mp"))
        .query("uploads")
        .header("x-amz-storage-class", "GLACIER_IR")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let upload = resp.xml_value("UploadId").expect("UploadId");
    let etag = client
        .upload_part_ok(BUCKET, "mp", &upload, 1, b"part")
        .await;
    let uploads = client
        .request(Method::GET, &format!("/{BUCKET}"))
        .query("uploads")
        .send()
        .await;
    assert_eq!(uploads.xml_values("StorageClass"), ["GLACIER_IR"]);
    let parts = client
        .request(Method::GET, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("uploadId", &upload)]))
        .send()
        .await;
    assert_eq!(
        parts.xml_value("StorageClass").as_deref(),
        Some("GLACIER_IR")
    );
    client
        .complete(BUCKET, "mp", &upload, &[(1, etag)])
        .await
        .assert_status(StatusCode::OK);
    let head = client.head(BUCKET, "mp").await;
    assert_eq!(head.header("x-amz-storage-class"), Some("GLACIER_IR"));
    client
        .request(Method::POST, &object_path(BUCKET, "mp2"))
        .query("uploads")
        .header("x-amz-storage-class", "COLD")
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidStorageClass");

    // CopyObject: STANDARD unless the request names a class.
    let copy = |dst: &'static str, class: Option<&'static str>| {
        let mut req = client
            .request(Method::PUT, &object_path(BUCKET, dst))
            .header("x-amz-copy-source", &format!("/{BUCKET}/ia"));
        if let Some(class) = class {
            req = req.header("x-amz-storage-class", class);
        }
        req.send()
    };
    copy("copy-default", None)
        .await
        .assert_status(StatusCode::OK);
    let head = client.head(BUCKET, "copy-default").await;
    assert_eq!(head.header("x-amz-storage-class"), None);
    copy("copy-onezone", Some("ONEZONE_IA"))
        .await
        .assert_status(StatusCode::OK);
    let head = client.head(BUCKET, "copy-onezone").await;
    assert_eq!(head.header("x-amz-storage-class"), Some("ONEZONE_IA"));
    copy("copy-bad", Some("NOPE"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidStorageClass");

    // A copy onto itself: refused when nothing changes, allowed when the class changes.
    let self_copy = |class: Option<&'static str>| {
        let mut req = client
            .request(Method::PUT, &object_path(BUCKET, "ia"))
            .header("x-amz-copy-source", &format!("/{BUCKET}/ia"));
        if let Some(class) = class {
            req = req.header("x-amz-storage-class", class);
        }
        req.send()
    };
    self_copy(None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    self_copy(Some("STANDARD"))
        .await
        .assert_status(StatusCode::OK);
    let head = client.head(BUCKET, "ia").await;
    assert_eq!(head.header("x-amz-storage-class"), None);
    assert_eq!(client.get(BUCKET, "ia").await.body, b"infrequent");
}

/// Server-side encryption headers, SSE-S3, SSE-KMS and SSE-C alike, are refused with 501
/// NotImplemented and an XML body naming the header, on writes and reads; nothing is stored.
#[tokio::test]
async fn server_side_encryption_refused() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "plain", b"data").await;
    let key = BASE64.encode([7u8; 32]);
    let key_md5 = content_md5(&[7u8; 32]);
    let sse_c = [
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
        ("x-amz-server-side-encryption-customer-key", key.as_str()),
        (
            "x-amz-server-side-encryption-customer-key-md5",
            key_md5.as_str(),
        ),
    ];
    let writes: [&[(&str, &str)]; 5] = [
        &[("x-amz-server-side-encryption", "AES256")],
        &[("x-amz-server-side-encryption", "aws:kms")],
        &[
            ("x-amz-server-side-encryption", "aws:kms"),
            (
                "x-amz-server-side-encryption-aws-kms-key-id",
                "arn:aws:kms:key",
            ),
        ],
        &[("x-amz-server-side-encryption-bucket-key-enabled", "true")],
        &sse_c,
    ];
    for headers in writes {
        let resp = client.put_with(BUCKET, "secret", b"secret", headers).await;
        resp.assert_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented");
        let named = resp.xml_value("Header").expect("Header in the error");
        assert!(headers.iter().any(|(n, _)| *n == named), "{named}");
        let mut create = client
            .request(Method::POST, &object_path(BUCKET, "secret"))
            .query("uploads");
        for (name, value) in headers {
            create = create.header(name, value);
        }
        create
            .send()
            .await
            .assert_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    }
    client
        .head(BUCKET, "secret")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    assert!(
        client
            .request(Method::GET, &format!("/{BUCKET}"))
            .query("uploads")
            .send()
            .await
            .xml_values("UploadId")
            .is_empty()
    );

    // Reads with an SSE-C key, and copies from an SSE-C source.
    let mut get = client.request(Method::GET, &object_path(BUCKET, "plain"));
    for (name, value) in sse_c {
        get = get.header(name, value);
    }
    get.send()
        .await
        .assert_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    client
        .request(Method::PUT, &object_path(BUCKET, "copy"))
        .header("x-amz-copy-source", &format!("/{BUCKET}/plain"))
        .header(
            "x-amz-copy-source-server-side-encryption-customer-algorithm",
            "AES256",
        )
        .send()
        .await
        .assert_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    client
        .head(BUCKET, "copy")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    assert_eq!(client.get(BUCKET, "plain").await.body, b"data");
}

/// `?partNumber=N` past the last part is 400 InvalidPartNumber, on GET and HEAD, for a
/// multipart object and for one stored in one piece (its only part is 1).
#[tokio::test]
async fn part_number_past_the_last_part() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let first = random_bytes(5, PART);
    client
        .multipart_put(
            BUCKET,
            "two-parts",
            &[first.as_slice(), b"tail"].concat(),
            PART,
        )
        .await;
    client.put_ok(BUCKET, "single", b"one piece").await;
    for (key, past) in [("two-parts", 3), ("single", 2)] {
        let get = client
            .request(Method::GET, &object_path(BUCKET, key))
            .query(&format!("partNumber={past}"))
            .send()
            .await;
        get.assert_error(StatusCode::BAD_REQUEST, "InvalidPartNumber");
        let head = client
            .request(Method::HEAD, &object_path(BUCKET, key))
            .query(&format!("partNumber={past}"))
            .send()
            .await;
        head.assert_status(StatusCode::BAD_REQUEST);
        let last = client
            .request(Method::GET, &object_path(BUCKET, key))
            .query(&format!("partNumber={}", past - 1))
            .send()
            .await;
        assert!(last.status.is_success(), "{key}: {}", last.status);
    }
}

/// An `x-amz-copy-source-range` that does not fit the source is InvalidRange (416); a
/// malformed one is InvalidArgument.
#[tokio::test]
async fn copy_source_range_outside_the_source() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client
        .put_ok(BUCKET, "source", &random_bytes(6, 1000))
        .await;
    let upload = client.create_upload(BUCKET, "dest").await;
    let copy = |range: &'static str| {
        client
            .request(Method::PUT, &object_path(BUCKET, "dest"))
            .query(&query_string(&[("partNumber", "1"), ("uploadId", &upload)]))
            .header("x-amz-copy-source", &format!("/{BUCKET}/source"))
            .header("x-amz-copy-source-range", range)
            .send()
    };
    for range in ["bytes=0-1000", "bytes=1000-1000", "bytes=500-5000"] {
        let resp = copy(range).await;
        resp.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange");
    }
    for range in ["bytes=5-1", "bytes=-5", "0-5", "bytes=a-b"] {
        copy(range)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    }
    copy("bytes=0-999").await.assert_status(StatusCode::OK);
}

/// A SigV4 request with a `Date` header beside `X-Amz-Date`, signed or not, or with an empty
/// `Date`: X-Amz-Date is the request time and the request is served.
#[tokio::test]
async fn date_header_beside_x_amz_date() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "dated", b"when").await;
    for date in ["Mon, 01 Jan 2001 00:00:00 GMT", "", "not a date"] {
        let resp = client
            .request(Method::GET, &object_path(BUCKET, "dated"))
            .header("date", date)
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        assert_eq!(resp.body, b"when", "Date: {date:?}");
        let put = client
            .request(Method::PUT, &object_path(BUCKET, "dated2"))
            .header("date", date)
            .body(b"x".to_vec())
            .send()
            .await;
        put.assert_status(StatusCode::OK);
    }
}

/// Presigned URLs that are not valid now (expired, a negative X-Amz-Expires, one past seven
/// days) are 403 AccessDenied, for GET and PUT alike; nothing is written.
#[tokio::test]
async fn presigned_expiry_is_access_denied() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", b"data").await;
    let now = time::OffsetDateTime::now_utc();
    let path = object_path(BUCKET, "k");
    let put_path = object_path(BUCKET, "put");
    for method in [Method::GET, Method::PUT] {
        let target = if method == Method::GET {
            &path
        } else {
            &put_path
        };
        let body = if method == Method::PUT {
            b"written".to_vec()
        } else {
            Vec::new()
        };
        let expired = client.presigned_url(&method, target, "", 60, now - time::Duration::hours(2));
        let week = client.presigned_url(&method, target, "", 604_801, now);
        let negative = client
            .presigned_url(&method, target, "", 300, now)
            .replace("X-Amz-Expires=300", "X-Amz-Expires=-300");
        for (what, url) in [("expired", expired), ("week", week), ("negative", negative)] {
            let resp = client.send_url(method.clone(), &url, body.clone()).await;
            assert_eq!(
                resp.status,
                StatusCode::FORBIDDEN,
                "{method} {what}: {}",
                resp.text()
            );
            assert_eq!(
                resp.code().as_deref(),
                Some("AccessDenied"),
                "{method} {what}"
            );
        }
    }
    client
        .head(BUCKET, "put")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

/// A key that is not UTF-8 once percent-decoded is 400 InvalidURI, for reads and writes.
#[tokio::test]
async fn key_not_utf8_is_invalid_uri() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    for path in [
        format!("/{BUCKET}/%FF"),
        format!("/{BUCKET}/a%C3"),
        format!("/{BUCKET}/%C3%28"),
    ] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let resp = client.request(method.clone(), &path).send().await;
            resp.assert_error(StatusCode::BAD_REQUEST, "InvalidURI");
        }
        let head = client.request(Method::HEAD, &path).send().await;
        head.assert_status(StatusCode::BAD_REQUEST);
    }
}

/// `If-None-Match: "ETAG"` on a write, as Ceph reads it: 412 when the key's current ETag is
/// that one, the write goes ahead otherwise (another ETag, or no object).
#[tokio::test]
async fn if_none_match_etag_on_write() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let etag = client.put_ok(BUCKET, "k", b"first").await;
    client
        .put_with(BUCKET, "k", b"second", &[("if-none-match", &etag)])
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    assert_eq!(client.get(BUCKET, "k").await.body, b"first");
    client
        .put_with(BUCKET, "k", b"third", &[("if-none-match", "\"0123\"")])
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(client.get(BUCKET, "k").await.body, b"third");
    client
        .put_with(BUCKET, "new", b"x", &[("if-none-match", &etag)])
        .await
        .assert_status(StatusCode::OK);

    // The same on CompleteMultipartUpload.
    let current = client.put_ok(BUCKET, "mp", b"current").await;
    let upload = client.create_upload(BUCKET, "mp").await;
    let part = client
        .upload_part_ok(BUCKET, "mp", &upload, 1, b"part")
        .await;
    let parts = [(1, part)];
    complete_with(
        &client,
        "mp",
        &upload,
        &parts,
        &[("if-none-match", &current)],
    )
    .await
    .assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    assert_eq!(client.get(BUCKET, "mp").await.body, b"current");
    complete_with(
        &client,
        "mp",
        &upload,
        &parts,
        &[("if-none-match", "\"other\"")],
    )
    .await
    .assert_status(StatusCode::OK);
    assert_eq!(client.get(BUCKET, "mp").await.body, b"part");
}

/// User metadata comes back as the exact bytes received: latin-1 as botocore sends it, UTF-8
/// as other clients do.
#[tokio::test]
async fn user_metadata_bytes_returned_exactly() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let put = client
        .request(Method::PUT, &object_path(BUCKET, "meta"))
        .header_bytes("x-amz-meta-latin", b"caf\xe9")
        .header_bytes("x-amz-meta-utf8", "café".as_bytes())
        .body(b"x".to_vec())
        .send()
        .await;
    put.assert_status(StatusCode::OK);
    for method in [Method::GET, Method::HEAD] {
        let resp = client
            .request(method.clone(), &object_path(BUCKET, "meta"))
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        let bytes = |name: &str| resp.headers.get(name).map(|v| v.as_bytes().to_vec());
        assert_eq!(
            bytes("x-amz-meta-latin"),
            Some(b"caf\xe9".to_vec()),
            "{method}"
        );
        assert_eq!(
            bytes("x-amz-meta-utf8"),
            Some("café".as_bytes().to_vec()),
            "{method}"
        );
    }
}

/// `Content-Encoding` comes back as written, spaces after commas included.
#[tokio::test]
async fn content_encoding_returned_verbatim() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    for (key, encoding) in [
        ("two", "deflate, gzip"),
        ("tight", "deflate,gzip"),
        ("one", "br"),
    ] {
        client
            .put_with(BUCKET, key, b"x", &[("content-encoding", encoding)])
            .await
            .assert_status(StatusCode::OK);
        let head = client.head(BUCKET, key).await;
        assert_eq!(head.header("content-encoding"), Some(encoding));
    }
}
