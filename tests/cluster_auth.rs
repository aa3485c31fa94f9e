//! The internal API of a real `cairn datanode` process refuses, with 403, every request that
//! does not carry a valid HMAC of the cluster secret: none at all, one made with another secret,
//! a malformed one, an expired one, a valid one replayed on another method or target, and a
//! valid one sent a second time. The same requests signed with the right secret succeed, so it
//! is the signature that is refused; and a refused PUT or DELETE changes nothing on disk. No
//! metadata store is involved, so this runs once.

use cairn::client::{Auth, Client, Request};
use cairn::datanode::auth::{AUTH_HEADER, BODY_AUTH_HEADER, ClusterKey, Signed};
use cairn_test_support::{CLUSTER_SECRET, DataNode, plain_client};
use http::{HeaderName, HeaderValue, Method, StatusCode};

/// The largest answer of a data node read here: a test chunk or a short listing.
const MAX_BODY: usize = 1 << 20;

/// A request to the node: method, path and query, body.
#[derive(Clone)]
struct Call {
    method: Method,
    target: String,
    body: Vec<u8>,
}

fn chunk_routes(stored: &str, fresh: &str, body: &[u8]) -> Vec<Call> {
    let call = |method: Method, target: String, body: &[u8]| Call {
        method,
        target,
        body: body.to_vec(),
    };
    vec![
        call(Method::PUT, format!("/chunks/{fresh}"), body),
        call(Method::PUT, format!("/chunks/{stored}"), body),
        call(Method::GET, format!("/chunks/{stored}"), b""),
        call(Method::HEAD, format!("/chunks/{stored}"), b""),
        call(Method::DELETE, format!("/chunks/{stored}"), b""),
        call(Method::GET, "/chunks".to_owned(), b""),
        call(Method::GET, "/chunks?limit=5".to_owned(), b""),
        call(Method::GET, "/health".to_owned(), b""),
    ]
}

/// The `x-cairn-auth` of `call` signed with `key` as `signed`, and with it the body signature
/// an upload needs.
fn sign(key: &ClusterKey, call: &Call, signed: Signed) -> (String, String) {
    let method = call.method.as_str();
    let crc = crc32c::crc32c(&call.body);
    (
        key.sign(method, &call.target, signed),
        key.sign_body(method, &call.target, signed, call.body.len() as u64, crc),
    )
}

async fn send(
    client: &Client,
    call: &Call,
    auth: Option<&(String, String)>,
) -> (StatusCode, String) {
    let crc = format!("{:08x}", crc32c::crc32c(&call.body));
    let (path, query) = call
        .target
        .split_once('?')
        .unwrap_or((call.target.as_str(), ""));
    let mut request = Request::new(call.method.clone(), path)
        .query(query)
        .auth(Auth::Anonymous)
        .header(
            HeaderName::from_static("x-cairn-crc32c"),
            HeaderValue::from_str(&crc).expect("hex"),
        );
    if let Some((auth, body_auth)) = auth {
        let value = HeaderValue::from_str(auth).expect("an ASCII signature");
        request = request.header(HeaderName::from_static(AUTH_HEADER), value);
        let value = HeaderValue::from_str(body_auth).expect("hex");
        request = request.header(HeaderName::from_static(BODY_AUTH_HEADER), value);
    }
    if call.method == Method::PUT {
        request = request.body(call.body.clone());
    }
    let (status, _, body) = client
        .fetch(request, MAX_BODY)
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", call.method, call.target));
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_node_refuses_requests_without_the_cluster_secret() {
    let root = tempfile::tempdir().expect("temp dir");
    let node = DataNode::start(root.path(), 0, None).await;
    let client = plain_client(&node.addr);
    let key = ClusterKey::from_secret(CLUSTER_SECRET);
    let wrong = ClusterKey::from_secret("another-secret-of-the-same-size");
    let stored = "0123456789abcdef0123456789abcdef";
    let fresh = "fedcba9876543210fedcba9876543210";
    let body = b"chunk bytes the node must not take from a stranger".to_vec();

    let put = Call {
        method: Method::PUT,
        target: format!("/chunks/{stored}"),
        body: body.clone(),
    };
    let signed = sign(&key, &put, Signed::now());
    let (status, text) = send(&client, &put, Some(&signed)).await;
    assert_eq!(status, StatusCode::CREATED, "signed PUT: {text}");
    // The same signed request again: refused, whatever its body.
    let (status, text) = send(&client, &put, Some(&signed)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "replayed PUT: {text}");
    assert!(text.contains("used before"), "{text}");
    let before = node.chunk_files();
    let stored_bytes = std::fs::read(&before[stored]).expect("read chunk file");

    let mut refused = 0;
    for call in chunk_routes(stored, fresh, &body) {
        let method = call.method.as_str();
        let now = Signed::now();
        let at = |seconds: u64| Signed {
            seconds,
            ..Signed::now()
        };
        // A valid signature of some other request.
        let other = Call {
            method: if call.method == Method::DELETE {
                Method::GET
            } else {
                Method::DELETE
            },
            ..call.clone()
        };
        let elsewhere = Call {
            target: if call.target == "/health" {
                "/chunks".to_owned()
            } else {
                "/health".to_owned()
            },
            ..call.clone()
        };
        let mut attempts: Vec<(&str, Option<(String, String)>)> = vec![
            ("no x-cairn-auth", None),
            ("signed with another secret", Some(sign(&wrong, &call, now))),
            (
                "malformed",
                Some(("not-a-signature".to_owned(), String::new())),
            ),
            (
                "empty signature",
                Some((format!("{}::", now.seconds), String::new())),
            ),
            (
                "signed ten minutes ago",
                Some(sign(&key, &call, at(now.seconds - 600))),
            ),
            (
                "signed ten minutes ahead",
                Some(sign(&key, &call, at(now.seconds + 600))),
            ),
            (
                "signed for another request",
                Some(sign(&key, &elsewhere, now)),
            ),
            ("signed for another method", Some(sign(&key, &other, now))),
        ];
        // A request that reads, accepted once (those that write are replayed below).
        if call.method == Method::GET || call.method == Method::HEAD {
            let used = sign(&key, &call, Signed::now());
            let (status, text) = send(&client, &call, Some(&used)).await;
            assert!(
                status.is_success(),
                "{method} {} signed: {text}",
                call.target
            );
            attempts.push(("sent a second time", Some(used)));
        }
        for (what, auth) in attempts {
            let (status, text) = send(&client, &call, auth.as_ref()).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {} {what}: {text}",
                call.target
            );
            refused += 1;
        }
    }
    assert_eq!(
        node.chunk_files(),
        before,
        "refused requests changed the chunk files"
    );
    assert_eq!(
        std::fs::read(&before[stored]).expect("read chunk file"),
        stored_bytes,
        "a refused PUT rewrote a chunk"
    );

    // The same routes with the right secret: not refused (a chunk id already stored is
    // refused for what it is: chunks never change).
    let expected = [
        StatusCode::CREATED,
        StatusCode::CONFLICT,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::NO_CONTENT,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::OK,
    ];
    for (call, want) in chunk_routes(stored, fresh, &body).iter().zip(expected) {
        let auth = sign(&key, call, Signed::now());
        let (status, text) = send(&client, call, Some(&auth)).await;
        let (again, _) = send(&client, call, Some(&auth)).await;
        assert_eq!(
            again,
            StatusCode::FORBIDDEN,
            "{} {} replayed",
            call.method,
            call.target
        );
        assert!(
            status == want || (call.method == Method::DELETE && status.is_success()),
            "{} {} with the cluster secret: {status} {text}",
            call.method,
            call.target
        );
        if call.method == Method::GET && call.target.starts_with("/chunks/") {
            assert_eq!(text.as_bytes(), body, "GET of the stored chunk");
        }
        if call.target == "/health" {
            assert!(text.contains(&node.id), "health names the node: {text}");
        }
    }
    assert!(!node.chunk_files().contains_key(stored), "signed DELETE");
    assert!(node.chunk_files().contains_key(fresh), "signed PUT");
    println!("{refused} unauthenticated requests over 8 routes, all refused with 403");
}
