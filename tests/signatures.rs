//! Regression tests for signature holes: a presigned URL must authorise exactly the request it
//! was signed for. Each test takes a valid URL and changes it the way an attacker would (a
//! percent-encoded sub-resource name, another virtual host, a far expiry, `+` for `%20`); the
//! server must refuse the change and still serve the URL as signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn::s3::sigv2;
use cairn_test_support::*;
use http::{Method, StatusCode};
use time::OffsetDateTime;

const BUCKET: &str = "signatures";

/// Seven days, the longest a presigned URL may live.
const WEEK_SECS: i64 = 604_800;

/// A SigV2 presigned URL for `method path?query` (query already encoded), whose signed
/// resource is `resource` (`/bucket/key` as encoded on the wire) and which expires at the Unix
/// time `expires`.
fn presigned_v2(
    client: &S3Client,
    method: &Method,
    resource: &str,
    path: &str,
    query: &str,
    expires: i64,
) -> String {
    let to_sign = sigv2::string_to_sign(
        method.as_str(),
        &http::HeaderMap::new(),
        expires,
        resource,
        query,
    );
    let signature = BASE64.encode(sigv2::sign(client.secret(), &to_sign));
    let auth = query_string(&[
        ("AWSAccessKeyId", client.access_key_id()),
        ("Expires", &expires.to_string()),
        ("Signature", &signature),
    ]);
    let query = if query.is_empty() {
        auth
    } else {
        format!("{query}&{auth}")
    };
    format!("http://{}{path}?{query}", client.addr())
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The parts of `upload_id` on `key`, as ListParts reports them.
async fn part_numbers(client: &S3Client, key: &str, upload_id: &str) -> Vec<String> {
    let resp = client
        .request(Method::GET, &object_path(BUCKET, key))
        .query(&query_string(&[("uploadId", upload_id)]))
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    resp.xml_values("PartNumber")
}

#[tokio::test]
async fn sigv2_signs_sub_resources_by_their_decoded_names() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    let expires = unix_now() + 300;

    // A presigned GET cannot gain a response override spelled with an escape.
    client.put_ok(BUCKET, "page", b"<script>").await;
    let path = object_path(BUCKET, "page");
    let url = presigned_v2(&client, &Method::GET, &path, &path, "", expires);
    client
        .send_url(Method::GET, &url, Vec::new())
        .await
        .assert_status(StatusCode::OK);
    client
        .send_url(
            Method::GET,
            &format!("{url}&response-content-typ%65=text%2Fhtml"),
            Vec::new(),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");

    // A signed override may be sent with any escaping of its name: the name is what counts.
    let url = presigned_v2(
        &client,
        &Method::GET,
        &path,
        &path,
        "response-content-type=text%2Fplain",
        expires,
    );
    let escaped = url.replace("response-content-type=", "response-content-typ%65=");
    let resp = client.send_url(Method::GET, &escaped, Vec::new()).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("content-type"), Some("text/plain"));

    // A presigned PUT of the victim's key cannot write a part into the victim's upload.
    let upload_id = client.create_upload(BUCKET, "victim").await;
    let victim = object_path(BUCKET, "victim");
    let put = presigned_v2(&client, &Method::PUT, &victim, &victim, "", expires);
    let id = query_string(&[("x", &upload_id)]);
    let id = id.strip_prefix("x=").expect("an encoded value");
    client
        .send_url(
            Method::PUT,
            &format!("{put}&part%4Eumber=1&upload%49d={id}"),
            b"forged part".to_vec(),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    assert!(part_numbers(&client, "victim", &upload_id).await.is_empty());

    // A presigned DELETE of the key cannot abort the upload.
    let delete = presigned_v2(&client, &Method::DELETE, &victim, &victim, "", expires);
    client
        .send_url(
            Method::DELETE,
            &format!("{delete}&upload%49d={id}"),
            Vec::new(),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    assert!(part_numbers(&client, "victim", &upload_id).await.is_empty());
}

#[tokio::test]
async fn sigv2_resource_is_the_parsed_bucket_under_a_domain() {
    let server = TestServer::start_with_args(&["--domain", "s3.cairn.test"]).await;
    let client = server.client();
    client.create_bucket("abc").await;
    client.create_bucket("abcd").await;
    client.put_ok("abcd", "key", b"abcd's object").await;
    client.put_ok("abc", "abcd/key", b"abc's object").await;
    let port = server.host.rsplit_once(':').expect("port").1;
    let abc = client.with_host_header(&format!("abc.s3.cairn.test:{port}"));
    let expires = unix_now() + 300;

    // Signed for bucket abcd, key "key" (path style) ...
    let url = presigned_v2(&client, &Method::GET, "/abcd/key", "/abcd/key", "", expires);
    let resp = client.send_url(Method::GET, &url, Vec::new()).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.body, b"abcd's object");
    // ... it must not open key "abcd/key" of bucket abc when sent to abc's virtual host.
    abc.send_url(Method::GET, &url, Vec::new())
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");

    // Signed for abc's "abcd/key" as a virtual-hosted URL: served from abc.
    let url = presigned_v2(
        &client,
        &Method::GET,
        "/abc/abcd/key",
        "/abcd/key",
        "",
        expires,
    );
    let resp = abc.send_url(Method::GET, &url, Vec::new()).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.body, b"abc's object");
}

#[tokio::test]
async fn sigv2_expiry_is_at_most_seven_days_away() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", b"data").await;
    let path = object_path(BUCKET, "k");
    let now = unix_now();

    let url = presigned_v2(
        &client,
        &Method::GET,
        &path,
        &path,
        "",
        now + WEEK_SECS - 60,
    );
    client
        .send_url(Method::GET, &url, Vec::new())
        .await
        .assert_status(StatusCode::OK);
    for expires in [now + WEEK_SECS + 3600, i64::from(i32::MAX), i64::MAX] {
        let url = presigned_v2(&client, &Method::GET, &path, &path, "", expires);
        client
            .send_url(Method::GET, &url, Vec::new())
            .await
            .assert_error(StatusCode::FORBIDDEN, "AccessDenied");
    }
}

#[tokio::test]
async fn sigv4_query_reads_plus_as_the_router_does() {
    let (_server, client) = server_with_bucket(BUCKET).await;
    client.put_ok(BUCKET, "k", b"data").await;
    let path = object_path(BUCKET, "k");
    let now = OffsetDateTime::now_utc();
    let get = |url: String| {
        let client = client.clone();
        async move { client.send_url(Method::GET, &url, Vec::new()).await }
    };

    // Signed for the value "a b": sending "a+b" instead is another value, refused.
    let query = query_string(&[("response-content-type", "a b")]);
    let url = client.presigned_url(&Method::GET, &path, &query, 300, now);
    let resp = get(url.clone()).await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("content-type"), Some("a b"));
    get(url.replace("a%20b", "a+b"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");

    // Signed for "a+b": a raw '+' and '%2B' both carry it.
    let query = query_string(&[("response-content-type", "a+b")]);
    let url = client.presigned_url(&Method::GET, &path, &query, 300, now);
    for url in [url.clone(), url.replace("a%2Bb", "a+b")] {
        let resp = get(url).await;
        resp.assert_status(StatusCode::OK);
        assert_eq!(resp.header("content-type"), Some("a+b"));
    }
    get(url.replace("a%2Bb", "a%20b"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");

    // The same holds for a signed Authorization header.
    let resp = client
        .request(Method::GET, &path)
        .query("response-content-type=a+b")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("content-type"), Some("a+b"));
}
