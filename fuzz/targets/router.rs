//! The router: method, raw path, raw query and `Host` to an operation, path style and
//! virtual-hosted style. Any request routes or is refused with an S3 error (never a panic);
//! a routed request names a non-empty bucket and a key of at most 1,024 bytes exactly when the
//! operation is on an object, and routing the canonical encoding of what it decoded gives the
//! same route, so one object has one name whatever escaping the client chose.
//!
//! Input fields: selector, method, path, query, headers.

use cairn::s3::router::{
    MAX_KEY_BYTES, Operation, decode_query, parse_query, path_below_bucket, route,
};
use cairn::s3::sigv4::uri_encode;
use http::header;

use crate::input::{self, Fields};

const DOMAIN: &str = "s3.example.com";

pub fn run(data: &[u8]) {
    let mut f = Fields::new(data);
    let selector = f.bytes().first().copied().unwrap_or(0);
    let method = input::method(f.bytes());
    let path = f.text();
    let raw_query = f.text();
    let headers = input::headers(f.bytes());
    let domain = (selector & 1 == 1).then_some(DOMAIN);

    let query = parse_query(&raw_query);
    assert_eq!(query.len(), decode_query(&raw_query).len());
    let below = path_below_bucket(&path, &headers, domain);
    assert!(
        path.ends_with(below),
        "{below:?} is not the end of {path:?}"
    );

    let Ok(routed) = route(&method, &path, &query, &headers, domain) else {
        return;
    };
    let on_object = matches!(
        routed.op,
        Operation::PutObject
            | Operation::CopyObject
            | Operation::GetObject
            | Operation::HeadObject
            | Operation::DeleteObject
            | Operation::CreateMultipartUpload
            | Operation::UploadPart
            | Operation::UploadPartCopy
            | Operation::CompleteMultipartUpload
            | Operation::AbortMultipartUpload
            | Operation::ListParts
            | Operation::GetObjectAcl
            | Operation::PutObjectAcl
    );
    assert_eq!(routed.key.is_some(), on_object, "{routed:?}");
    assert_eq!(routed.bucket.is_none(), routed.op == Operation::ListBuckets);
    if let Some(bucket) = &routed.bucket {
        assert!(!bucket.is_empty());
    }
    if let Some(key) = &routed.key {
        assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES, "{key:?}");
    }

    // The same request, path style, in the one canonical encoding.
    let Some(bucket) = &routed.bucket else {
        return;
    };
    let mut canonical = format!("/{}", uri_encode(bucket, true));
    if let Some(key) = &routed.key {
        canonical.push('/');
        canonical.push_str(&uri_encode(key, false));
    }
    let mut path_style = headers.clone();
    path_style.remove(header::HOST);
    let again = route(&method, &canonical, &query, &path_style, None);
    assert_eq!(
        again.as_ref().ok(),
        Some(&routed),
        "{path:?} re-encoded as {canonical:?}"
    );
}
