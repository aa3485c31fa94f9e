//! aws-chunked request bodies against the real server, framed here by hand: SigV4 streaming
//! with a signature per chunk (chained from the request's), and the unsigned variant with a
//! checksum trailer that aws-cli and boto3 send by default. A body whose chunk signature or
//! trailer checksum is wrong stores nothing.

use cairn::s3::sigv4::{signature, signing_key};
use cairn_test_support::*;
use http::{Method, StatusCode};
use time::OffsetDateTime;

const BUCKET: &str = "chunked";
const SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of nothing: the chunk-headers line of every chunk's string to sign.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Frames a little over 256 KiB, so frame boundaries never line up with the server's 1 MiB
/// chunk boundaries.
const FRAME: usize = 256 * 1024 + 7;

/// `data` framed as STREAMING-AWS4-HMAC-SHA256-PAYLOAD, each chunk signed after the previous
/// one; `tamper` flips a bit of the signature of that chunk.
fn signed_body(
    data: &[u8],
    secret: &str,
    amz_date: &str,
    seed_signature: &str,
    tamper: Option<usize>,
) -> Vec<u8> {
    let day = &amz_date[..8];
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let key = signing_key(secret, day, REGION, "s3");
    let mut previous = seed_signature.to_owned();
    let mut out = Vec::with_capacity(data.len() + 1024);
    let mut frames: Vec<&[u8]> = data.chunks(FRAME).collect();
    frames.push(&[]);
    for (i, frame) in frames.into_iter().enumerate() {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{}",
            sha256_hex(frame)
        );
        let mut sig = signature(&key, &to_sign);
        previous = sig.clone();
        if tamper == Some(i) {
            let flipped = if sig.starts_with('0') { "1" } else { "0" };
            sig.replace_range(0..1, flipped);
        }
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", frame.len()).as_bytes());
        out.extend_from_slice(frame);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn put_signed(client: &S3Client, key: &str, data: &[u8], tamper: Option<usize>) -> Resp {
    let at = OffsetDateTime::now_utc();
    let request = || {
        client
            .request(Method::PUT, &object_path(BUCKET, key))
            .header("content-encoding", "aws-chunked")
            .header("x-amz-decoded-content-length", &data.len().to_string())
            .payload(PayloadHash::Literal(SIGNED.into()))
            .auth(Auth::SignedAt(at))
    };
    let headers = request().signed_headers();
    let authorization = headers["authorization"].to_str().expect("ASCII");
    let seed = authorization
        .rsplit_once("Signature=")
        .expect("Signature in Authorization")
        .1;
    let amz_date = headers["x-amz-date"].to_str().expect("ASCII");
    let body = signed_body(data, client.secret(), amz_date, seed, tamper);
    request().body(body).send().await
}

#[tokio::test]
async fn signed_streaming_upload() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(1, MIB + MIB / 2);
    let resp = put_signed(&client, "streamed", &data, None).await;
    resp.assert_status(StatusCode::OK);
    let etag = format!("\"{}\"", md5_hex(&data));
    assert_eq!(resp.header("etag"), Some(etag.as_str()));
    let get = client.get(BUCKET, "streamed").await;
    assert_eq!(get.content_length(), data.len() as u64);
    assert!(get.body == data);
    // The framing is not part of the object.
    assert!(get.header("content-encoding").is_none());

    // An empty object: only the final frame.
    put_signed(&client, "empty", b"", None)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(client.get(BUCKET, "empty").await.content_length(), 0);

    // A forged signature on a middle chunk and on the final one: nothing stored.
    for tampered in [2, 6] {
        // Its own connection pool: the server hangs up on a body it stopped reading (see
        // protocol.rs, early_error_keeps_the_connection_usable_or_closes_it).
        let forger = server.client();
        put_signed(&forger, "forged", &data, Some(tampered))
            .await
            .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
        client
            .head(BUCKET, "forged")
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    // The streamed object's 2 chunks remain; the forged uploads' are cleaned up.
    server.wait_for_chunk_files(2).await;
}

fn unsigned_trailer_body(data: &[u8], trailer: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    for frame in data.chunks(FRAME) {
        out.extend_from_slice(format!("{:x}\r\n", frame.len()).as_bytes());
        out.extend_from_slice(frame);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{trailer}\r\n\r\n").as_bytes());
    out
}

async fn put_with_trailer(client: &S3Client, key: &str, data: &[u8], crc: &str) -> Resp {
    client
        .request(Method::PUT, &object_path(BUCKET, key))
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &data.len().to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .payload(PayloadHash::Literal(UNSIGNED_TRAILER.into()))
        .body(unsigned_trailer_body(
            data,
            &format!("x-amz-checksum-crc32:{crc}"),
        ))
        .send()
        .await
}

#[tokio::test]
async fn unsigned_upload_with_checksum_trailer() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(2, MIB + 12345);
    let crc = crc32_base64(&data);
    let resp = put_with_trailer(&client, "trailed", &data, &crc).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("x-amz-checksum-crc32"), Some(crc.as_str()));
    let get = client
        .request(Method::GET, &object_path(BUCKET, "trailed"))
        .header("x-amz-checksum-mode", "ENABLED")
        .send()
        .await;
    get.assert_status(StatusCode::OK);
    assert!(get.body == data);
    assert_eq!(get.header("x-amz-checksum-crc32"), Some(crc.as_str()));

    put_with_trailer(&client, "bad-trailer", &data, &crc32_base64(b"other"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadDigest");
    client
        .head(BUCKET, "bad-trailer")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // A body that says it is longer than it decodes to.
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "short"))
        .header("content-encoding", "aws-chunked")
        .header(
            "x-amz-decoded-content-length",
            &(data.len() + 1).to_string(),
        )
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .payload(PayloadHash::Literal(UNSIGNED_TRAILER.into()))
        .body(unsigned_trailer_body(
            &data,
            &format!("x-amz-checksum-crc32:{crc}"),
        ))
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text());
    client
        .head(BUCKET, "short")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    server.wait_for_chunk_files(2).await;

    // Multipart parts can be framed the same way.
    let resp = client
        .request(Method::POST, &object_path(BUCKET, "mp"))
        .query("uploads")
        .header("x-amz-checksum-algorithm", "CRC32")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    let upload = resp.xml_value("UploadId").expect("UploadId");
    let part = random_bytes(3, 1000);
    let resp = client
        .request(Method::PUT, &object_path(BUCKET, "mp"))
        .query(&query_string(&[("partNumber", "1"), ("uploadId", &upload)]))
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &part.len().to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .payload(PayloadHash::Literal(UNSIGNED_TRAILER.into()))
        .body(unsigned_trailer_body(
            &part,
            &format!("x-amz-checksum-crc32:{}", crc32_base64(&part)),
        ))
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(
        resp.header("etag"),
        Some(format!("\"{}\"", md5_hex(&part)).as_str())
    );
}

/// Sends `body` as STREAMING-UNSIGNED-PAYLOAD-TRAILER with `x-amz-trailer: declared`, on a
/// connection of its own: the server hangs up on a body it stopped reading.
async fn put_framed(
    server: &TestServer,
    key: &str,
    len: usize,
    declared: &str,
    body: Vec<u8>,
) -> Resp {
    server
        .client()
        .request(Method::PUT, &object_path(BUCKET, key))
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &len.to_string())
        .header("x-amz-trailer", declared)
        .payload(PayloadHash::Literal(UNSIGNED_TRAILER.into()))
        .body(body)
        .send()
        .await
}

#[tokio::test]
async fn malformed_bodies_answer_their_aws_codes() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(5, 3000);
    let crc = format!("x-amz-checksum-crc32:{}", crc32_base64(&data));
    let crc32 = "x-amz-checksum-crc32";
    let mut no_trailer = unsigned_trailer_body(&data, &crc);
    no_trailer.truncate(no_trailer.len() - crc.len() - 4);
    no_trailer.extend_from_slice(b"\r\n");
    let sha256 = format!("x-amz-checksum-sha256:{}", sha256_base64(&data));
    // (what is wrong, x-amz-trailer, body, status, code)
    let cases = [
        (
            "a trailer line without a colon",
            crc32,
            unsigned_trailer_body(&data, &crc.replace(':', " ")),
            StatusCode::BAD_REQUEST,
            "MalformedTrailerError",
        ),
        (
            "a trailer that x-amz-trailer does not declare",
            crc32,
            unsigned_trailer_body(&data, &format!("{crc}\r\n{sha256}")),
            StatusCode::BAD_REQUEST,
            "MalformedTrailerError",
        ),
        (
            "a declared trailer that never comes",
            crc32,
            no_trailer,
            StatusCode::BAD_REQUEST,
            "MalformedTrailerError",
        ),
        (
            "a trailer that is not a checksum",
            crc32,
            unsigned_trailer_body(&data, "x-amz-checksum-crc32:not base64!"),
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
        ),
        (
            "an x-amz-trailer S3 does not support",
            "x-amz-meta-color",
            unsigned_trailer_body(&data, "x-amz-meta-color:blue"),
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
        ),
        (
            "a body cut off inside a chunk",
            crc32,
            unsigned_trailer_body(&data, &crc)[..1000].to_vec(),
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
        ),
        (
            "a chunk size that is not hexadecimal",
            crc32,
            b"xyz\r\nabc\r\n0\r\n\r\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
        ),
    ];
    for (i, (what, declared, body, status, code)) in cases.into_iter().enumerate() {
        let key = format!("bad-{i}");
        let resp = put_framed(&server, &key, data.len(), declared, body).await;
        assert_eq!(resp.status, status, "{what}: {}", resp.text());
        resp.assert_error(status, code);
        client
            .head(BUCKET, &key)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    // The well-formed body is accepted.
    put_framed(
        &server,
        "good",
        data.len(),
        crc32,
        unsigned_trailer_body(&data, &crc),
    )
    .await
    .assert_status(StatusCode::OK);
}
