//! ListObjects v1 and ListObjectsV2 against the real server: UTF-8 binary order, prefixes and
//! delimiters, every way of paging (max-keys, continuation-token, start-after, marker) and
//! encoding-type=url; plus ListMultipartUploads and ListParts paging.

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "listing";

/// Keys in UTF-8 byte order: `Z` (0x5A) < `a` (0x61) < `~` (0x7E) < `é` (0xC3 0xA9), and a key
/// `a` beside keys under `a/`.
const KEYS: [&str; 10] = ["Z", "a", "a/1", "a/2", "a/b/3", "b", "c d", "x+y", "~", "é"];

async fn server_with_keys() -> (TestServer, S3Client) {
    let server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    // Stored out of order on purpose.
    for key in KEYS.iter().rev() {
        client.put_ok(BUCKET, key, key.as_bytes()).await;
    }
    (server, client)
}

fn prefixes(resp: &Resp) -> Vec<String> {
    xml_elements(&resp.text(), "CommonPrefixes")
        .into_iter()
        .flat_map(|block| xml_values(block, "Prefix"))
        .collect()
}

fn truncated(resp: &Resp) -> bool {
    match resp.xml_value("IsTruncated").as_deref() {
        Some("true") => true,
        Some("false") => false,
        other => panic!("IsTruncated {other:?} in {}", resp.text()),
    }
}

#[tokio::test]
async fn full_listing_in_binary_order() {
    let (_server, client) = server_with_keys().await;
    for v2 in [true, false] {
        let resp = client.list(BUCKET, v2, &[]).await;
        assert_eq!(resp.xml_values("Key"), KEYS, "v2={v2}");
        assert!(!truncated(&resp));
        assert_eq!(resp.xml_value("Name").as_deref(), Some(BUCKET));
        assert!(resp.xml_value("NextContinuationToken").is_none());
        assert!(resp.xml_value("NextMarker").is_none());
        let sizes: Vec<String> = KEYS.iter().map(|k| k.len().to_string()).collect();
        assert_eq!(resp.xml_values("Size"), sizes);
        let etags: Vec<String> = KEYS
            .iter()
            .map(|k| format!("\"{}\"", md5_hex(k.as_bytes())))
            .collect();
        assert_eq!(resp.xml_values("ETag"), etags);
        if v2 {
            assert_eq!(resp.xml_value("KeyCount"), Some(KEYS.len().to_string()));
        }
    }
    // fetch-owner: v1 always has an owner, v2 only when asked.
    let resp = client.list(BUCKET, true, &[]).await;
    assert!(xml_elements(&resp.text(), "Owner").is_empty());
    let resp = client.list(BUCKET, true, &[("fetch-owner", "true")]).await;
    assert_eq!(xml_elements(&resp.text(), "Owner").len(), KEYS.len());
}

#[tokio::test]
async fn prefix_and_delimiter() {
    let (_server, client) = server_with_keys().await;
    for v2 in [true, false] {
        let resp = client.list(BUCKET, v2, &[("delimiter", "/")]).await;
        assert_eq!(
            resp.xml_values("Key"),
            ["Z", "a", "b", "c d", "x+y", "~", "é"],
            "v2={v2}"
        );
        assert_eq!(prefixes(&resp), ["a/"]);
        assert_eq!(resp.xml_value("Delimiter").as_deref(), Some("/"));

        let resp = client
            .list(BUCKET, v2, &[("prefix", "a/"), ("delimiter", "/")])
            .await;
        assert_eq!(resp.xml_values("Key"), ["a/1", "a/2"]);
        assert_eq!(prefixes(&resp), ["a/b/"]);

        let resp = client.list(BUCKET, v2, &[("prefix", "a")]).await;
        assert_eq!(resp.xml_values("Key"), ["a", "a/1", "a/2", "a/b/3"]);
        assert!(prefixes(&resp).is_empty());

        let resp = client.list(BUCKET, v2, &[("prefix", "nothing")]).await;
        assert!(resp.xml_values("Key").is_empty());
        assert!(!truncated(&resp));
    }
    // KeyCount counts prefixes too.
    let resp = client.list(BUCKET, true, &[("delimiter", "/")]).await;
    assert_eq!(resp.xml_value("KeyCount").as_deref(), Some("8"));
}

#[tokio::test]
async fn v2_paging_with_continuation_token() {
    let (_server, client) = server_with_keys().await;
    for max_keys in [1, 2, 3, 9] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..=KEYS.len() {
            let max = max_keys.to_string();
            let mut pairs = vec![("max-keys", max.as_str())];
            if let Some(t) = &token {
                pairs.push(("continuation-token", t.as_str()));
            }
            let resp = client.list(BUCKET, true, &pairs).await;
            let keys = resp.xml_values("Key");
            assert!(keys.len() <= max_keys);
            assert_eq!(resp.xml_value("MaxKeys"), Some(max.clone()));
            assert_eq!(resp.xml_value("ContinuationToken"), token);
            seen.extend(keys);
            if truncated(&resp) {
                token = Some(
                    resp.xml_value("NextContinuationToken")
                        .expect("a truncated page has a NextContinuationToken"),
                );
            } else {
                assert!(resp.xml_value("NextContinuationToken").is_none());
                token = None;
                break;
            }
        }
        assert!(token.is_none(), "paging did not end");
        assert_eq!(seen, KEYS, "max-keys={max_keys}");
    }

    // Exactly max-keys keys left: not truncated.
    let resp = client
        .list(BUCKET, true, &[("prefix", "a/"), ("max-keys", "3")])
        .await;
    assert_eq!(resp.xml_values("Key"), ["a/1", "a/2", "a/b/3"]);
    assert!(!truncated(&resp), "{}", resp.text());
    let resp = client.list(BUCKET, true, &[("max-keys", "10")]).await;
    assert_eq!(resp.xml_values("Key").len(), 10);
    assert!(!truncated(&resp));
    let resp = client.list(BUCKET, true, &[("max-keys", "0")]).await;
    assert!(resp.xml_values("Key").is_empty());

    // Paging over common prefixes: each page is one entry, prefixes included.
    let mut entries = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut pairs = vec![("delimiter", "/"), ("max-keys", "1")];
        if let Some(t) = &token {
            pairs.push(("continuation-token", t.as_str()));
        }
        let resp = client.list(BUCKET, true, &pairs).await;
        let mut page = resp.xml_values("Key");
        page.extend(prefixes(&resp));
        assert_eq!(page.len(), 1, "{}", resp.text());
        entries.extend(page);
        if !truncated(&resp) {
            break;
        }
        token = Some(resp.xml_value("NextContinuationToken").expect("token"));
    }
    assert_eq!(entries, ["Z", "a", "a/", "b", "c d", "x+y", "~", "é"]);
}

#[tokio::test]
async fn v2_start_after() {
    let (_server, client) = server_with_keys().await;
    let resp = client.list(BUCKET, true, &[("start-after", "b")]).await;
    assert_eq!(resp.xml_values("Key"), ["c d", "x+y", "~", "é"]);
    assert_eq!(resp.xml_value("StartAfter").as_deref(), Some("b"));
    let resp = client.list(BUCKET, true, &[("start-after", "a")]).await;
    assert_eq!(resp.xml_values("Key")[0], "a/1");
    let resp = client.list(BUCKET, true, &[("start-after", "é")]).await;
    assert!(resp.xml_values("Key").is_empty());
    assert!(!truncated(&resp));
}

#[tokio::test]
async fn v1_paging_with_marker() {
    let (_server, client) = server_with_keys().await;
    let mut seen = Vec::new();
    let mut marker = String::new();
    for _ in 0..=KEYS.len() {
        let resp = client
            .list(BUCKET, false, &[("max-keys", "3"), ("marker", &marker)])
            .await;
        assert_eq!(resp.xml_value("Marker"), Some(marker.clone()));
        let keys = resp.xml_values("Key");
        seen.extend(keys.iter().cloned());
        if !truncated(&resp) {
            marker.clear();
            break;
        }
        let next = resp.xml_value("NextMarker").expect("NextMarker");
        assert_eq!(Some(&next), keys.last());
        marker = next;
    }
    assert!(marker.is_empty(), "paging did not end");
    assert_eq!(seen, KEYS);

    let resp = client.list(BUCKET, false, &[("marker", "b")]).await;
    assert_eq!(resp.xml_values("Key"), ["c d", "x+y", "~", "é"]);

    // With a delimiter, NextMarker can be a common prefix.
    let resp = client
        .list(BUCKET, false, &[("delimiter", "/"), ("max-keys", "3")])
        .await;
    assert!(truncated(&resp));
    assert_eq!(resp.xml_values("Key"), ["Z", "a"]);
    assert_eq!(prefixes(&resp), ["a/"]);
    assert_eq!(resp.xml_value("NextMarker").as_deref(), Some("a/"));
    let resp = client
        .list(BUCKET, false, &[("delimiter", "/"), ("marker", "a/")])
        .await;
    assert_eq!(resp.xml_values("Key"), ["b", "c d", "x+y", "~", "é"]);
    assert!(prefixes(&resp).is_empty());
}

#[tokio::test]
async fn encoding_type_url() {
    let (_server, client) = server_with_keys().await;
    for v2 in [true, false] {
        let resp = client.list(BUCKET, v2, &[("encoding-type", "url")]).await;
        assert_eq!(resp.xml_value("EncodingType").as_deref(), Some("url"));
        let keys = resp.xml_values("Key");
        for key in &keys {
            assert!(
                key.bytes().all(|b| b.is_ascii_graphic()),
                "not URL-encoded: {key:?}"
            );
        }
        let decoded: Vec<String> = keys.iter().map(|k| url_decode(k)).collect();
        assert_eq!(decoded, KEYS, "v2={v2}");
        let resp = client
            .list(
                BUCKET,
                v2,
                &[
                    ("encoding-type", "url"),
                    ("prefix", "é"),
                    ("delimiter", "/"),
                ],
            )
            .await;
        assert_eq!(resp.xml_value("Prefix").as_deref(), Some("%C3%A9"));
        assert_eq!(resp.xml_values("Key"), ["%C3%A9"]);
    }
    let resp = client
        .request(Method::GET, &format!("/{BUCKET}"))
        .query("list-type=2&encoding-type=base64")
        .send()
        .await;
    resp.assert_error(StatusCode::BAD_REQUEST, "InvalidArgument");
}

/// Percent-decoding as clients do for encoding-type=url, reading `+` as a space.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 key")
}

#[tokio::test]
async fn list_buckets_and_location() {
    let server = TestServer::start().await;
    let client = server.client();
    for bucket in ["zeta", "alpha", "mid-bucket"] {
        client.create_bucket(bucket).await;
    }
    let resp = client.request(Method::GET, "/").send().await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.xml_values("Name"), ["alpha", "mid-bucket", "zeta"]);
    assert_eq!(resp.xml_values("CreationDate").len(), 3);

    let resp = client
        .request(Method::GET, "/alpha")
        .query("location")
        .send()
        .await;
    resp.assert_status(StatusCode::OK);
    assert!(resp.text().contains("LocationConstraint"));
    client
        .request(Method::HEAD, "/alpha")
        .send()
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn list_uploads_and_parts_paging() {
    let server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let mut uploads = Vec::new();
    for key in ["u/c", "u/a", "u/b"] {
        uploads.push((key, client.create_upload(BUCKET, key).await));
    }
    uploads.sort();

    let list_uploads = |pairs: Vec<(&'static str, String)>| {
        let client = client.clone();
        async move {
            let mut all = vec![("uploads", String::new())];
            all.extend(pairs);
            let refs: Vec<(&str, &str)> = all.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let resp = client
                .request(Method::GET, &format!("/{BUCKET}"))
                .query(&query_string(&refs))
                .send()
                .await;
            resp.assert_status(StatusCode::OK);
            resp
        }
    };
    let resp = list_uploads(vec![]).await;
    assert_eq!(resp.xml_values("Key"), ["u/a", "u/b", "u/c"]);
    let ids: Vec<String> = uploads.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(resp.xml_values("UploadId"), ids);
    assert!(!truncated(&resp));

    let mut seen = Vec::new();
    let mut markers: Option<(String, String)> = None;
    for _ in 0..5 {
        let mut pairs = vec![("max-uploads", "1".to_owned())];
        if let Some((key, id)) = &markers {
            pairs.push(("key-marker", key.clone()));
            pairs.push(("upload-id-marker", id.clone()));
        }
        let resp = list_uploads(pairs).await;
        let keys = resp.xml_values("Key");
        assert_eq!(keys.len(), 1, "{}", resp.text());
        seen.extend(keys);
        if !truncated(&resp) {
            markers = None;
            break;
        }
        markers = Some((
            resp.xml_value("NextKeyMarker").expect("NextKeyMarker"),
            resp.xml_value("NextUploadIdMarker")
                .expect("NextUploadIdMarker"),
        ));
    }
    assert!(markers.is_none(), "upload paging did not end");
    assert_eq!(seen, ["u/a", "u/b", "u/c"]);

    let resp = list_uploads(vec![("prefix", "u/b".to_owned())]).await;
    assert_eq!(resp.xml_values("Key"), ["u/b"]);

    // ListParts, two parts per page.
    let (key, upload) = &uploads[0];
    for n in 1..=5u32 {
        client
            .upload_part_ok(
                BUCKET,
                key,
                upload,
                n,
                &random_bytes(n.into(), 10 * n as usize),
            )
            .await;
    }
    let mut numbers = Vec::new();
    let mut marker = "0".to_owned();
    for _ in 0..5 {
        let resp = client
            .request(Method::GET, &object_path(BUCKET, key))
            .query(&query_string(&[
                ("uploadId", upload),
                ("max-parts", "2"),
                ("part-number-marker", &marker),
            ]))
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        let page = resp.xml_values("PartNumber");
        assert!(page.len() <= 2);
        numbers.extend(page.iter().cloned());
        if !truncated(&resp) {
            marker.clear();
            break;
        }
        marker = resp
            .xml_value("NextPartNumberMarker")
            .expect("NextPartNumberMarker");
        assert_eq!(Some(&marker), page.last());
    }
    assert!(marker.is_empty(), "part paging did not end");
    assert_eq!(numbers, ["1", "2", "3", "4", "5"]);
}
