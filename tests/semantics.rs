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
