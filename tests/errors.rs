//! Every error code Cairn promises, provoked once against the real server, each with its
//! status and XML body; none of them may be a 500 (the harness checks every response for that,
//! and for x-amz-request-id and Date). Also authentication: SigV4 failures and presigned URLs
//! of both signature versions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn::s3::sigv2;
use cairn_test_support::*;
use http::{Method, StatusCode};
use time::OffsetDateTime;

const BUCKET: &str = "errors";

#[tokio::test]
async fn bucket_errors() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client
        .get(BUCKET, "missing")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchKey");
    let head = client.head(BUCKET, "missing").await;
    head.assert_status(StatusCode::NOT_FOUND);
    assert!(head.body.is_empty(), "HEAD has no body");

    client
        .get("no-such-bucket", "k")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchBucket");
    client
        .request(Method::GET, "/no-such-bucket")
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchBucket");
    client
        .put("no-such-bucket", "k", b"data")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchBucket");
    client
        .request(Method::HEAD, "/no-such-bucket")
        .send()
        .await
        .assert_status(StatusCode::NOT_FOUND);
    client
        .request(Method::DELETE, "/no-such-bucket")
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchBucket");

    client
        .request(Method::PUT, &format!("/{BUCKET}"))
        .send()
        .await
        .assert_error(StatusCode::CONFLICT, "BucketAlreadyOwnedByYou");

    client.put_ok(BUCKET, "k", b"x").await;
    client
        .request(Method::DELETE, &format!("/{BUCKET}"))
        .send()
        .await
        .assert_error(StatusCode::CONFLICT, "BucketNotEmpty");
    client.delete(BUCKET, "k").await;
    client
        .request(Method::DELETE, &format!("/{BUCKET}"))
        .send()
        .await
        .assert_status(StatusCode::NO_CONTENT);

    for name in ["AB", "ab", "a_b", "-abc", "abc-", "a..b", "192.168.1.1"] {
        client
            .request(Method::PUT, &format!("/{name}"))
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "InvalidBucketName");
    }

    // Any LocationConstraint is accepted.
    let config = b"<CreateBucketConfiguration><LocationConstraint>eu-west-3</LocationConstraint>\
                   </CreateBucketConfiguration>"
        .to_vec();
    client
        .request(Method::PUT, "/located")
        .body(config)
        .send()
        .await
        .assert_status(StatusCode::OK);
    client
        .request(Method::PUT, "/bad-config")
        .body(b"<CreateBucketConfiguration><Location".to_vec())
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MalformedXML");
}

#[tokio::test]
async fn multipart_errors() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let path = object_path(BUCKET, "mp");
    let bogus = "0123456789abcdef0123456789abcdef";

    client
        .request(Method::GET, &path)
        .query(&format!("uploadId={bogus}"))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    client
        .upload_part(BUCKET, "mp", bogus, 1, b"data")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    client
        .complete(BUCKET, "mp", bogus, &[(1, "\"x\"".into())])
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    client
        .request(Method::DELETE, &path)
        .query(&format!("uploadId={bogus}"))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");

    let upload = client.create_upload(BUCKET, "mp").await;
    // An upload id belongs to its key.
    client
        .request(Method::GET, &object_path(BUCKET, "other"))
        .query(&format!("uploadId={upload}"))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");

    let small = random_bytes(1, 100);
    let big = random_bytes(2, PART);
    let e1 = client
        .upload_part_ok(BUCKET, "mp", &upload, 1, &small)
        .await;
    let e2 = client
        .upload_part_ok(BUCKET, "mp", &upload, 2, &small)
        .await;
    let e3 = client.upload_part_ok(BUCKET, "mp", &upload, 3, &big).await;

    // A part never uploaded, and a stored part with the wrong ETag.
    client
        .complete(BUCKET, "mp", &upload, &[(1, e1.clone()), (7, e1.clone())])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidPart");
    client
        .complete(BUCKET, "mp", &upload, &[(1, e3.clone())])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidPart");
    client
        .complete(BUCKET, "mp", &upload, &[(3, e3.clone()), (1, e1.clone())])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidPartOrder");
    let resp = client
        .complete(BUCKET, "mp", &upload, &[(1, e1.clone()), (2, e2.clone())])
        .await;
    resp.assert_error(StatusCode::BAD_REQUEST, "EntityTooSmall");
    assert_eq!(resp.xml_value("PartNumber").as_deref(), Some("1"));
    for body in [
        &b"<CompleteMultipartUpload><Part>"[..],
        b"not xml at all",
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
    ] {
        client
            .request(Method::POST, &object_path(BUCKET, "mp"))
            .query(&format!("uploadId={upload}"))
            .body(body.to_vec())
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "MalformedXML");
    }
    // None of that made an object, and the upload is still usable.
    client
        .head(BUCKET, "mp")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let resp = client
        .complete(BUCKET, "mp", &upload, &[(3, e3.clone())])
        .await;
    resp.assert_status(StatusCode::OK);
    assert!(client.get(BUCKET, "mp").await.body == big);
    // Completed: the upload is gone (a retried completion answers the same success, see
    // tests/semantics.rs).
    client
        .request(Method::GET, &path)
        .query(&format!("uploadId={upload}"))
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    client
        .upload_part(BUCKET, "mp", &upload, 3, b"late")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");

    // Part numbers outside 1..=10000.
    let upload = client.create_upload(BUCKET, "mp2").await;
    for n in ["0", "10001", "abc"] {
        client
            .request(Method::PUT, &object_path(BUCKET, "mp2"))
            .query(&format!("partNumber={n}&uploadId={upload}"))
            .body(b"x".to_vec())
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
    }
}

#[tokio::test]
async fn digest_errors() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(3, 1500);
    let put = |key: &'static str, header: &'static str, value: String, payload: PayloadHash| {
        let client = client.clone();
        let data = data.clone();
        async move {
            client
                .request(Method::PUT, &object_path(BUCKET, key))
                .header(header, &value)
                .body(data)
                .payload(payload)
                .send()
                .await
        }
    };

    put(
        "md5",
        "content-md5",
        content_md5(b"other"),
        PayloadHash::Sha256,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    put(
        "md5",
        "content-md5",
        "not base64!".into(),
        PayloadHash::Sha256,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "InvalidDigest");
    // Base64, but not 16 bytes.
    put("md5", "content-md5", "AAAA".into(), PayloadHash::Sha256)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "InvalidDigest");
    put(
        "crc",
        "x-amz-checksum-crc32",
        crc32_base64(b"other"),
        PayloadHash::Unsigned,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    put(
        "sha",
        "x-amz-checksum-sha256",
        sha256_base64(b"other"),
        PayloadHash::Unsigned,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    // The signed payload hash is of another body.
    client
        .request(Method::PUT, &object_path(BUCKET, "signed"))
        .body(data.clone())
        .payload(PayloadHash::Literal(sha256_hex(b"other")))
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "XAmzContentSHA256Mismatch");
    // The same for a body larger than a chunk.
    let big = random_bytes(4, MIB + 5);
    client
        .request(Method::PUT, &object_path(BUCKET, "signed"))
        .body(big)
        .payload(PayloadHash::Literal(sha256_hex(b"other")))
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "XAmzContentSHA256Mismatch");

    // Nothing was stored by any of them.
    for key in ["md5", "crc", "sha", "signed"] {
        client
            .head(BUCKET, key)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    let list = client.list(BUCKET, true, &[]).await;
    assert!(list.xml_values("Key").is_empty(), "{}", list.text());

    // The right digests are accepted.
    put(
        "md5",
        "content-md5",
        content_md5(&data),
        PayloadHash::Sha256,
    )
    .await
    .assert_status(StatusCode::OK);
    put(
        "crc",
        "x-amz-checksum-crc32",
        crc32_base64(&data),
        PayloadHash::Unsigned,
    )
    .await
    .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn request_errors() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "meta"))
        .header("x-amz-meta-big", &"v".repeat(2100))
        .body(b"x".to_vec())
        .send()
        .await;
    resp.assert_error(StatusCode::BAD_REQUEST, "MetadataTooLarge");
    // Exactly 2 KiB of name and value is allowed.
    client
        .request(Method::PUT, &object_path(BUCKET, "meta"))
        .header("x-amz-meta-big", &"v".repeat(2048 - "big".len()))
        .body(b"x".to_vec())
        .send()
        .await
        .assert_status(StatusCode::OK);

    let long_key = "k".repeat(1025);
    client
        .put(BUCKET, &long_key, b"x")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "KeyTooLongError");
    client
        .get(BUCKET, &long_key)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "KeyTooLongError");
    let max_key = "k".repeat(1024);
    client.put_ok(BUCKET, &max_key, b"x").await;
    assert_eq!(client.get(BUCKET, &max_key).await.body, b"x");

    for (method, path, query) in [
        (Method::GET, format!("/{BUCKET}"), "cors"),
        (Method::PUT, object_path(BUCKET, "meta"), "tagging"),
        (Method::GET, format!("/{BUCKET}"), "versioning"),
    ] {
        client
            .request(method, &path)
            .query(query)
            .body(b"<Tagging/>".to_vec())
            .send()
            .await
            .assert_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    }
    // ?tagging did not overwrite the object.
    client
        .head(BUCKET, "meta")
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(client.get(BUCKET, "meta").await.body, b"x");

    // Unknown query parameters are ignored.
    let resp = client
        .request(Method::GET, &object_path(BUCKET, "meta"))
        .query("x-id=GetObject")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);

    // A range past the end and a failed precondition.
    client
        .request(Method::GET, &object_path(BUCKET, "meta"))
        .header("range", "bytes=10-20")
        .send()
        .await
        .assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange");
    client
        .request(Method::GET, &object_path(BUCKET, "meta"))
        .header("if-match", "\"nope\"")
        .send()
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");

    // DeleteObjects with broken XML.
    let body = b"<Delete><Object><Key>a</Key></Object".to_vec();
    client
        .delete_objects(BUCKET, body)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MalformedXML");
}

#[tokio::test]
async fn authentication_errors() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let path = format!("/{BUCKET}");
    let send = |auth: Auth| {
        let client = client.clone();
        let path = path.clone();
        async move {
            client
                .request(Method::GET, &path)
                .query("list-type=2")
                .auth(auth)
                .send()
                .await
        }
    };
    send(Auth::Signed).await.assert_status(StatusCode::OK);

    send(Auth::Anonymous)
        .await
        .assert_error(StatusCode::FORBIDDEN, "AccessDenied");
    send(Auth::WrongSecret("not the secret".into()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    send(Auth::Skewed(-20 * 60))
        .await
        .assert_error(StatusCode::FORBIDDEN, "RequestTimeTooSkewed");
    send(Auth::Skewed(20 * 60))
        .await
        .assert_error(StatusCode::FORBIDDEN, "RequestTimeTooSkewed");
    // Ten minutes off is within AWS's 15.
    send(Auth::Skewed(-10 * 60))
        .await
        .assert_status(StatusCode::OK);
    let unknown = server.client_with("AKIDOESNOTEXIST0000", TEST_SECRET);
    unknown
        .request(Method::GET, &path)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "InvalidAccessKeyId");

    let today = OffsetDateTime::now_utc().date();
    let date = format!(
        "{:04}{:02}{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    for malformed in [
        format!("AWS4-HMAC-SHA256 Credential={TEST_KEY_ID}/{date}/{REGION}/s3"),
        format!(
            "AWS4-HMAC-SHA256 Credential={TEST_KEY_ID}/{date}/{REGION}/s3/aws4_request, \
             SignedHeaders=host"
        ),
        "AWS4-HMAC-SHA256 garbage".to_owned(),
    ] {
        send(Auth::Authorization(malformed))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed");
    }

    // A signature over different headers than those sent.
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "k"))
        .header("content-type", "text/plain")
        .body(b"x".to_vec())
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let mut tampered = client
        .request(Method::PUT, &object_path(BUCKET, "k"))
        .header("content-type", "text/plain")
        .body(b"x".to_vec())
        .signed_headers();
    tampered.insert("content-type", "text/html".parse().expect("header value"));
    let auth = tampered["authorization"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    client
        .request(Method::PUT, &object_path(BUCKET, "k"))
        .header("content-type", "text/html")
        .body(b"x".to_vec())
        .auth(Auth::Authorization(auth))
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn presigned_urls() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let key = "a b+c%d/é/\"&";
    let data = random_bytes(9, 4096);
    client.put_ok(BUCKET, key, &data).await;
    let path = object_path(BUCKET, key);
    let now = OffsetDateTime::now_utc();

    let url = client.presigned_url(&Method::GET, &path, "", 300, now);
    let resp = client.send_url(Method::GET, &url, Vec::new()).await;
    resp.assert_status(StatusCode::OK);
    assert!(resp.body == data);

    // response-* overrides travel in the signed query.
    let query = query_string(&[("response-content-type", "text/x-test")]);
    let url = client.presigned_url(&Method::GET, &path, &query, 300, now);
    let resp = client.send_url(Method::GET, &url, Vec::new()).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("content-type"), Some("text/x-test"));

    // A presigned PUT.
    let upload_path = object_path(BUCKET, "presigned-put");
    let url = client.presigned_url(&Method::PUT, &upload_path, "", 300, now);
    client
        .send_url(Method::PUT, &url, b"uploaded".to_vec())
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(client.get(BUCKET, "presigned-put").await.body, b"uploaded");

    // Expired: signed two hours ago for one minute.
    let url = client.presigned_url(&Method::GET, &path, "", 60, now - time::Duration::hours(2));
    client
        .send_url(Method::GET, &url, Vec::new())
        .await
        .assert_error(StatusCode::FORBIDDEN, "AccessDenied");

    // Tampered: the signature covers another key.
    let url = client.presigned_url(&Method::GET, &path, "", 300, now);
    let other = url.replace(&path, &object_path(BUCKET, "presigned-put"));
    client
        .send_url(Method::GET, &other, Vec::new())
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");

    // Longer than seven days is refused, with 403 like an expired URL.
    let url = client.presigned_url(&Method::GET, &path, "", 604_801, now);
    let resp = client.send_url(Method::GET, &url, Vec::new()).await;
    resp.assert_error(StatusCode::FORBIDDEN, "AccessDenied");
}

/// A SigV2 presigned URL (`aws s3 presign` of aws-cli v1) for GET `path`, expiring at the Unix
/// time `expires`; `secret` signs it.
fn presigned_v2_url(client: &S3Client, path: &str, expires: i64, secret: &str) -> String {
    let to_sign = sigv2::string_to_sign("GET", &http::HeaderMap::new(), expires, path, "");
    let signature = BASE64.encode(sigv2::sign(secret, &to_sign));
    let query = query_string(&[
        ("AWSAccessKeyId", client.access_key_id()),
        ("Expires", &expires.to_string()),
        ("Signature", &signature),
    ]);
    format!("http://{}{path}?{query}", client.addr())
}

#[tokio::test]
async fn presigned_urls_of_signature_version_2() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "v2", b"version two").await;
    let path = object_path(BUCKET, "v2");
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let get = |url: String| {
        let client = client.clone();
        async move { client.send_url(Method::GET, &url, Vec::new()).await }
    };

    let resp = get(presigned_v2_url(&client, &path, now + 300, client.secret())).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.body, b"version two");

    get(presigned_v2_url(
        &client,
        &path,
        now + 300,
        "not the secret",
    ))
    .await
    .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    get(presigned_v2_url(&client, &path, now - 60, client.secret()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "AccessDenied");
    // Signed for another key.
    let other = presigned_v2_url(
        &client,
        &object_path(BUCKET, "v1"),
        now + 300,
        client.secret(),
    );
    get(other.replace("/v1?", "/v2?"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    // Without its Signature.
    let url = presigned_v2_url(&client, &path, now + 300, client.secret());
    let cut = url.split("&Signature=").next().expect("a query").to_owned();
    get(cut)
        .await
        .assert_error(StatusCode::FORBIDDEN, "AccessDenied");
}
