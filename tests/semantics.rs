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
