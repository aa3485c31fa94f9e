//! First step of every S3 request: a pure function from method, path, query and a few headers
//! to the [`Operation`] to run and the bucket and key it names. Anything outside the small set
//! of operations Cairn implements is refused here (`NotImplemented` or `MethodNotAllowed`), so
//! no handler sees a request it cannot serve.

use http::{HeaderMap, Method, header};
use percent_encoding::percent_decode_str;

use crate::s3::error::{ErrorCode, S3Error};

/// AWS's limit on a key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    ListObjects,
    ListObjectsV2,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    GetBucketPolicy,
    PutBucketPolicy,
    DeleteBucketPolicy,
    GetBucketPolicyStatus,
    GetBucketAcl,
    PutBucketAcl,
    GetObjectAcl,
    PutObjectAcl,
    GetBucketOwnershipControls,
    PutBucketOwnershipControls,
    DeleteBucketOwnershipControls,
    GetPublicAccessBlock,
    PutPublicAccessBlock,
    DeletePublicAccessBlock,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub op: Operation,
    pub bucket: Option<String>,
    /// Percent-decoded UTF-8; may contain `/`, `//` and end with `/`.
    pub key: Option<String>,
}

/// Sub-resources S3 defines that Cairn does not implement. Answering `NotImplemented` matters:
/// ignoring e.g. `?acl` on a PUT would overwrite the object with the ACL document.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "abac",
    "accelerate",
    "analytics",
    "attributes",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metadataConfiguration",
    "metadataInventoryTable",
    "metadataJournalTable",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "renameObject",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "session",
    "tagging",
    "torrent",
    "versioning",
    "versions",
    "website",
];

/// Splits a raw query string into percent-decoded byte pairs; a name without `=` gets an empty
/// value. This is the one decoding of a query: SigV4 and SigV2 sign what it yields and the
/// router and handlers read what it yields, so no signed name or value can be read two ways.
/// `+` stays `+`: the SDKs send a space as `%20` and a plus as `%2B`, and SigV4 forbids `+` for
/// a space (<https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>).
pub fn decode_query(raw_query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(name).collect(),
                percent_decode_str(value).collect(),
            )
        })
        .collect()
}

/// [`decode_query`] as text, invalid UTF-8 replaced, for the router and the handlers.
pub fn parse_query(raw_query: &str) -> Vec<(String, String)> {
    decode_query(raw_query)
        .into_iter()
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(&name).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect()
}

/// The first value of `name`, if present.
pub fn query_get<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn has(q: &[(String, String)], name: &str) -> bool {
    q.iter().any(|(n, _)| n == name)
}

/// The part of `raw_path` below the bucket, still encoded as the client sent it: the whole path
/// when the `Host` names the bucket (see [`route`]), else what follows `/bucket` (`/key`, `/` or
/// nothing). SigV2 signs `/bucket` followed by this, so the bucket it signs is the bucket the
/// request is routed to.
pub fn path_below_bucket<'a>(
    raw_path: &'a str,
    headers: &HeaderMap,
    domain: Option<&str>,
) -> &'a str {
    if domain
        .and_then(|d| virtual_host_bucket(headers, d))
        .is_some()
    {
        return raw_path;
    }
    let rest = raw_path.strip_prefix('/').unwrap_or(raw_path);
    rest.find('/').map_or("", |slash| &rest[slash..])
}

/// Where the request points, before the method and sub-resources pick the operation.
enum Target {
    Service,
    Bucket(String),
    Object(String, String),
}

/// Maps a request to the operation it asks for.
///
/// With `domain` set (e.g. `s3.example.com`), a `Host` of `bucket.s3.example.com[:port]` names
/// the bucket and the whole path is the key (virtual-hosted style); any other host, including
/// the domain itself, means path style, `/bucket/key`.
pub fn route(
    method: &Method,
    raw_path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    domain: Option<&str>,
) -> Result<Route, S3Error> {
    let target = match domain.and_then(|d| virtual_host_bucket(headers, d)) {
        Some(bucket) => {
            let key = raw_path
                .strip_prefix('/')
                .ok_or_else(|| invalid_uri(raw_path))?;
            if key.is_empty() {
                Target::Bucket(bucket)
            } else {
                Target::Object(bucket, decode_path(key, raw_path)?)
            }
        }
        None => path_style_target(raw_path)?,
    };
    if let Target::Object(_, key) = &target
        && key.len() > MAX_KEY_BYTES
    {
        return Err(S3Error::new(ErrorCode::KeyTooLongError)
            .with_resource(raw_path)
            .with_extra("Size", key.len().to_string())
            .with_extra("MaxSizeAllowed", MAX_KEY_BYTES.to_string()));
    }

    if *method == Method::OPTIONS {
        // CORS preflight; Cairn has no CORS configuration to answer it from.
        return Err(not_implemented(raw_path));
    }
    if !matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE
    ) {
        return Err(method_not_allowed(method, resource_type(&target), raw_path));
    }
    if !matches!(target, Target::Service)
        && query
            .iter()
            .any(|(name, _)| UNSUPPORTED_SUBRESOURCES.contains(&name.as_str()))
    {
        return Err(not_implemented(raw_path));
    }

    let op = match &target {
        Target::Service => match *method {
            Method::GET => Operation::ListBuckets,
            _ => return Err(method_not_allowed(method, resource_type(&target), raw_path)),
        },
        Target::Bucket(_) => {
            bucket_operation(method, query).ok_or_else(|| not_implemented(raw_path))?
        }
        Target::Object(..) => object_operation(method, query, headers, raw_path)?,
    };
    let (bucket, key) = match target {
        Target::Service => (None, None),
        Target::Bucket(b) => (Some(b), None),
        Target::Object(b, k) => (Some(b), Some(k)),
    };
    Ok(Route { op, bucket, key })
}

/// Bucket sub-resources of access control, which object requests do not have.
const BUCKET_ACCESS_SUBRESOURCES: &[&str] = &[
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
];

/// `None` means a request S3 would read as something Cairn does not implement (the only such
/// bucket-level POST without `?delete` is the browser form upload).
fn bucket_operation(method: &Method, query: &[(String, String)]) -> Option<Operation> {
    use Operation::*;
    let sub = |name| has(query, name);
    Some(match *method {
        Method::PUT if sub("policy") => PutBucketPolicy,
        Method::PUT if sub("acl") => PutBucketAcl,
        Method::PUT if sub("ownershipControls") => PutBucketOwnershipControls,
        Method::PUT if sub("publicAccessBlock") => PutPublicAccessBlock,
        Method::DELETE if sub("policy") => DeleteBucketPolicy,
        Method::DELETE if sub("ownershipControls") => DeleteBucketOwnershipControls,
        Method::DELETE if sub("publicAccessBlock") => DeletePublicAccessBlock,
        Method::DELETE if sub("acl") || sub("policyStatus") => return None,
        Method::GET if sub("policyStatus") => GetBucketPolicyStatus,
        Method::GET if sub("policy") => GetBucketPolicy,
        Method::GET if sub("acl") => GetBucketAcl,
        Method::GET if sub("ownershipControls") => GetBucketOwnershipControls,
        Method::GET if sub("publicAccessBlock") => GetPublicAccessBlock,
        Method::PUT => Operation::CreateBucket,
        Method::HEAD => Operation::HeadBucket,
        Method::DELETE => Operation::DeleteBucket,
        Method::POST if has(query, "delete") => Operation::DeleteObjects,
        Method::POST => return None,
        _ if has(query, "location") => Operation::GetBucketLocation,
        _ if has(query, "uploads") => Operation::ListMultipartUploads,
        _ if query_get(query, "list-type") == Some("2") => Operation::ListObjectsV2,
        _ => Operation::ListObjects,
    })
}

fn object_operation(
    method: &Method,
    query: &[(String, String)],
    headers: &HeaderMap,
    raw_path: &str,
) -> Result<Operation, S3Error> {
    let upload_id = has(query, "uploadId");
    let copy = headers.contains_key("x-amz-copy-source");
    if query
        .iter()
        .any(|(name, _)| BUCKET_ACCESS_SUBRESOURCES.contains(&name.as_str()))
    {
        return Err(not_implemented(raw_path));
    }
    if has(query, "acl") {
        return match *method {
            Method::GET | Method::HEAD => Ok(Operation::GetObjectAcl),
            Method::PUT => Ok(Operation::PutObjectAcl),
            _ => Err(method_not_allowed(method, "OBJECT", raw_path)),
        };
    }
    Ok(match *method {
        Method::PUT => match (upload_id, has(query, "partNumber")) {
            (true, true) if copy => Operation::UploadPartCopy,
            (true, true) => Operation::UploadPart,
            // Half a part address must not fall through to PutObject and replace the object.
            (true, false) | (false, true) => {
                return Err(S3Error::new(ErrorCode::InvalidArgument)
                    .with_message("partNumber and uploadId must be given together")
                    .with_resource(raw_path));
            }
            (false, false) if copy => Operation::CopyObject,
            (false, false) => Operation::PutObject,
        },
        Method::POST if has(query, "uploads") => Operation::CreateMultipartUpload,
        Method::POST if upload_id => Operation::CompleteMultipartUpload,
        Method::POST => return Err(method_not_allowed(method, "OBJECT", raw_path)),
        Method::DELETE if upload_id => Operation::AbortMultipartUpload,
        Method::DELETE => Operation::DeleteObject,
        Method::GET if upload_id => Operation::ListParts,
        Method::GET => Operation::GetObject,
        _ => Operation::HeadObject,
    })
}

fn path_style_target(raw_path: &str) -> Result<Target, S3Error> {
    let rest = raw_path
        .strip_prefix('/')
        .ok_or_else(|| invalid_uri(raw_path))?;
    if rest.is_empty() {
        return Ok(Target::Service);
    }
    let (raw_bucket, raw_key) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket = decode_path(raw_bucket, raw_path)?;
    if bucket.is_empty() {
        return Err(S3Error::new(ErrorCode::InvalidBucketName).with_resource(raw_path));
    }
    if raw_key.is_empty() {
        Ok(Target::Bucket(bucket))
    } else {
        Ok(Target::Object(bucket, decode_path(raw_key, raw_path)?))
    }
}

/// The bucket named by a `Host` of the form `bucket.<domain>[:port]`, compared without case.
fn virtual_host_bucket(headers: &HeaderMap, domain: &str) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = strip_port(host).to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let bucket = host
        .trim_end_matches('.')
        .strip_suffix(domain.as_str())?
        .strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_owned())
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal never names a bucket; keep it whole so it cannot match.
        return host;
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Decodes one path piece. A literal `+` stays a plus, as SigV4's canonical URI reads it: a key
/// must name the same object the client signed for. (Legacy S3 read a raw `+` as a space, which
/// is why SDKs send a plus as `%2B` and a space as `%20`; both decode the same way here.)
fn decode_path(raw: &str, raw_path: &str) -> Result<String, S3Error> {
    let bytes = raw.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Err(invalid_uri(raw_path));
    }
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
    String::from_utf8(decoded).map_err(|_| invalid_uri(raw_path))
}

fn invalid_uri(raw_path: &str) -> S3Error {
    S3Error::new(ErrorCode::InvalidURI).with_resource(raw_path)
}

fn not_implemented(raw_path: &str) -> S3Error {
    S3Error::new(ErrorCode::NotImplemented).with_resource(raw_path)
}

fn resource_type(target: &Target) -> &'static str {
    match target {
        Target::Service => "SERVICE",
        Target::Bucket(_) => "BUCKET",
        Target::Object(..) => "OBJECT",
    }
}

/// AWS names the method and the kind of resource in this error.
fn method_not_allowed(method: &Method, resource_type: &'static str, raw_path: &str) -> S3Error {
    S3Error::new(ErrorCode::MethodNotAllowed)
        .with_resource(raw_path)
        .with_extra("Method", method.as_str())
        .with_extra("ResourceType", resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn method(m: &str) -> Method {
        Method::from_bytes(m.as_bytes()).unwrap()
    }

    /// Routes `method path?query` path style with no extra headers.
    fn r(m: &str, target: &str) -> Result<Route, S3Error> {
        rh(m, target, &[])
    }

    fn rh(m: &str, target: &str, hdrs: &[(&'static str, &str)]) -> Result<Route, S3Error> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        route(&method(m), path, &parse_query(query), &headers(hdrs), None)
    }

    fn vh(m: &str, host: &str, target: &str) -> Result<Route, S3Error> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        route(
            &method(m),
            path,
            &parse_query(query),
            &headers(&[("host", host)]),
            Some("s3.example.com"),
        )
    }

    fn ok(op: Operation, bucket: Option<&str>, key: Option<&str>) -> Result<Route, S3Error> {
        Ok(Route {
            op,
            bucket: bucket.map(str::to_owned),
            key: key.map(str::to_owned),
        })
    }

    fn code(result: Result<Route, S3Error>) -> ErrorCode {
        result.expect_err("expected an error").code
    }

    const COPY: (&str, &str) = ("x-amz-copy-source", "/src/key");

    /// Method, path and query, headers, expected route.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'static str, &'a str)],
        Result<Route, S3Error>,
    );

    #[test]
    fn every_operation_path_style() {
        let b = Some("b");
        let k = Some("k");
        let table: &[Case] = &[
            ("GET", "/", &[], ok(ListBuckets, None, None)),
            ("PUT", "/b", &[], ok(CreateBucket, b, None)),
            ("HEAD", "/b", &[], ok(HeadBucket, b, None)),
            ("DELETE", "/b", &[], ok(DeleteBucket, b, None)),
            ("GET", "/b?location", &[], ok(GetBucketLocation, b, None)),
            ("GET", "/b", &[], ok(ListObjects, b, None)),
            ("GET", "/b?list-type=2", &[], ok(ListObjectsV2, b, None)),
            ("GET", "/b?uploads", &[], ok(ListMultipartUploads, b, None)),
            ("POST", "/b?delete", &[], ok(DeleteObjects, b, None)),
            ("PUT", "/b/k", &[], ok(PutObject, b, k)),
            ("PUT", "/b/k", &[COPY], ok(CopyObject, b, k)),
            ("GET", "/b/k", &[], ok(GetObject, b, k)),
            ("HEAD", "/b/k", &[], ok(HeadObject, b, k)),
            ("DELETE", "/b/k", &[], ok(DeleteObject, b, k)),
            ("POST", "/b/k?uploads", &[], ok(CreateMultipartUpload, b, k)),
            (
                "PUT",
                "/b/k?partNumber=1&uploadId=u",
                &[],
                ok(UploadPart, b, k),
            ),
            (
                "PUT",
                "/b/k?uploadId=u&partNumber=2",
                &[COPY],
                ok(UploadPartCopy, b, k),
            ),
            (
                "POST",
                "/b/k?uploadId=u",
                &[],
                ok(CompleteMultipartUpload, b, k),
            ),
            (
                "DELETE",
                "/b/k?uploadId=u",
                &[],
                ok(AbortMultipartUpload, b, k),
            ),
            ("GET", "/b/k?uploadId=u", &[], ok(ListParts, b, k)),
            ("GET", "/b?policy", &[], ok(GetBucketPolicy, b, None)),
            ("PUT", "/b?policy", &[], ok(PutBucketPolicy, b, None)),
            ("DELETE", "/b?policy", &[], ok(DeleteBucketPolicy, b, None)),
            ("GET", "/b?policyStatus", &[], ok(GetBucketPolicyStatus, b, None)),
            ("GET", "/b?acl", &[], ok(GetBucketAcl, b, None)),
            ("PUT", "/b?acl", &[], ok(PutBucketAcl, b, None)),
            ("GET", "/b/k?acl", &[], ok(GetObjectAcl, b, k)),
            ("PUT", "/b/k?acl", &[], ok(PutObjectAcl, b, k)),
            (
                "GET",
                "/b?ownershipControls",
                &[],
                ok(GetBucketOwnershipControls, b, None),
            ),
            (
                "PUT",
                "/b?ownershipControls",
                &[],
                ok(PutBucketOwnershipControls, b, None),
            ),
            (
                "DELETE",
                "/b?ownershipControls",
                &[],
                ok(DeleteBucketOwnershipControls, b, None),
            ),
            ("GET", "/b?publicAccessBlock", &[], ok(GetPublicAccessBlock, b, None)),
            ("PUT", "/b?publicAccessBlock", &[], ok(PutPublicAccessBlock, b, None)),
            (
                "DELETE",
                "/b?publicAccessBlock",
                &[],
                ok(DeletePublicAccessBlock, b, None),
            ),
        ];
        for (m, target, hdrs, want) in table {
            assert_eq!(&rh(m, target, hdrs), want, "{m} {target}");
        }
    }

    #[test]
    fn every_operation_virtual_hosted() {
        let host = "b.s3.example.com:9000";
        let b = Some("b");
        let k = Some("dir/k");
        let table: &[(&str, &str, Result<Route, S3Error>)] = &[
            ("PUT", "/", ok(CreateBucket, b, None)),
            ("HEAD", "/", ok(HeadBucket, b, None)),
            ("DELETE", "/", ok(DeleteBucket, b, None)),
            ("GET", "/?location=", ok(GetBucketLocation, b, None)),
            ("GET", "/", ok(ListObjects, b, None)),
            (
                "GET",
                "/?list-type=2&prefix=a%2F",
                ok(ListObjectsV2, b, None),
            ),
            ("GET", "/?uploads", ok(ListMultipartUploads, b, None)),
            ("POST", "/?delete", ok(DeleteObjects, b, None)),
            ("PUT", "/dir/k", ok(PutObject, b, k)),
            ("GET", "/dir/k", ok(GetObject, b, k)),
            ("HEAD", "/dir/k", ok(HeadObject, b, k)),
            ("DELETE", "/dir/k", ok(DeleteObject, b, k)),
            ("POST", "/dir/k?uploads", ok(CreateMultipartUpload, b, k)),
            (
                "PUT",
                "/dir/k?partNumber=1&uploadId=u",
                ok(UploadPart, b, k),
            ),
            (
                "POST",
                "/dir/k?uploadId=u",
                ok(CompleteMultipartUpload, b, k),
            ),
            (
                "DELETE",
                "/dir/k?uploadId=u",
                ok(AbortMultipartUpload, b, k),
            ),
            ("GET", "/dir/k?uploadId=u", ok(ListParts, b, k)),
        ];
        for (m, target, want) in table {
            assert_eq!(&vh(m, host, target), want, "{m} {target}");
        }
        // The first path segment is part of the key, not a bucket.
        assert_eq!(
            vh("GET", "b.s3.example.com", "/other/k"),
            ok(GetObject, b, Some("other/k"))
        );
        let copy = route(
            &Method::PUT,
            "/dir/k",
            &[],
            &headers(&[("host", host), COPY]),
            Some("s3.example.com"),
        );
        assert_eq!(copy, ok(CopyObject, b, k));
    }

    #[test]
    fn virtual_host_matching() {
        // Dotted bucket names, case-insensitive hosts, trailing dots and ports.
        assert_eq!(
            vh("GET", "my.dotted.bucket.s3.example.com", "/k"),
            ok(GetObject, Some("my.dotted.bucket"), Some("k"))
        );
        assert_eq!(
            vh("GET", "Bucket.S3.Example.COM:443", "/k"),
            ok(GetObject, Some("bucket"), Some("k"))
        );
        assert_eq!(
            vh("GET", "b.s3.example.com.", "/k"),
            ok(GetObject, Some("b"), Some("k"))
        );
        // The domain itself, other hosts and look-alikes fall back to path style.
        for host in [
            "s3.example.com",
            "s3.example.com:9000",
            "localhost:9000",
            "127.0.0.1:9000",
            "[::1]:9000",
            "bs3.example.com",
            "b.s3.example.com.evil.org",
            ".s3.example.com",
        ] {
            assert_eq!(
                vh("GET", host, "/b/k"),
                ok(GetObject, Some("b"), Some("k")),
                "{host}"
            );
            assert_eq!(vh("GET", host, "/"), ok(ListBuckets, None, None), "{host}");
        }
        // No Host header at all: path style.
        let no_host = route(
            &Method::GET,
            "/b/k",
            &[],
            &HeaderMap::new(),
            Some("s3.example.com"),
        );
        assert_eq!(no_host, ok(GetObject, Some("b"), Some("k")));
        // Without a configured domain a bucket-looking host is ignored.
        assert_eq!(
            rh("GET", "/b/k", &[("host", "x.s3.example.com")]),
            ok(GetObject, Some("b"), Some("k"))
        );
    }

    #[test]
    fn hostile_keys_as_sdks_encode_them() {
        // The key `a b+c%d/é/"&` as botocore and the Rust/Java SDKs put it on the wire.
        let want = "a b+c%d/é/\"&";
        let wire = "a%20b%2Bc%25d/%C3%A9/%22%26";
        assert_eq!(
            r("PUT", &format!("/bucket/{wire}")),
            ok(PutObject, Some("bucket"), Some(want))
        );
        assert_eq!(
            vh("GET", "bucket.s3.example.com", &format!("/{wire}")),
            ok(GetObject, Some("bucket"), Some(want))
        );
        // Lower-case hex, and characters some clients leave unencoded.
        assert_eq!(
            r("GET", "/b/%c3%a9%e2%82%ac"),
            ok(GetObject, Some("b"), Some("é€"))
        );
        assert_eq!(
            r("GET", "/b/a=b;c,d:e@f$g!h*i'j(k)~l"),
            ok(GetObject, Some("b"), Some("a=b;c,d:e@f$g!h*i'j(k)~l"))
        );
        // Encoded '?' and '#' belong to the key; encoded '/' is just a slash.
        assert_eq!(
            r("GET", "/b/what%3F%23x%2Fy"),
            ok(GetObject, Some("b"), Some("what?#x/y"))
        );
        // A literal '+' and '%2B' are both the plus, as in the signed canonical URI.
        assert_eq!(
            r("GET", "/b/a+b%2Bc%20d"),
            ok(GetObject, Some("b"), Some("a+b+c d"))
        );
        // A key that merely looks percent-encoded after decoding is not decoded twice.
        assert_eq!(r("GET", "/b/%2520"), ok(GetObject, Some("b"), Some("%20")));
    }

    #[test]
    fn slashes_in_keys() {
        let cases = [
            ("/b/dir/", "dir/"),
            ("/b//", "/"),
            ("/b//lead", "/lead"),
            ("/b/a//b", "a//b"),
            ("/b/a//b//", "a//b//"),
            ("/b/.", "."),
            ("/b/..", ".."),
            ("/b/../x", "../x"),
        ];
        for (path, key) in cases {
            assert_eq!(
                r("GET", path),
                ok(GetObject, Some("b"), Some(key)),
                "{path}"
            );
        }
        // "/bucket/" with an empty key is the bucket itself.
        assert_eq!(r("GET", "/b/"), ok(ListObjects, Some("b"), None));
        assert_eq!(r("PUT", "/b/"), ok(CreateBucket, Some("b"), None));
        assert_eq!(r("DELETE", "/b/"), ok(DeleteBucket, Some("b"), None));
        // Virtual-hosted: "//" is the key "/".
        assert_eq!(
            vh("GET", "b.s3.example.com", "//"),
            ok(GetObject, Some("b"), Some("/"))
        );
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let cases = [
            (
                "PUT",
                "/b/k?x-id=PutObject",
                ok(PutObject, Some("b"), Some("k")),
            ),
            (
                "GET",
                "/b/k?x-id=GetObject&response-content-type=text%2Fplain",
                ok(GetObject, Some("b"), Some("k")),
            ),
            (
                "GET",
                "/b?prefix=p&max-keys=10&encoding-type=url&delimiter=%2F",
                ok(ListObjects, Some("b"), None),
            ),
            (
                "GET",
                "/b?list-type=2&continuation-token=abc&start-after=x&fetch-owner=true",
                ok(ListObjectsV2, Some("b"), None),
            ),
            ("GET", "/b?list-type=1", ok(ListObjects, Some("b"), None)),
            (
                "POST",
                "/b?delete&x-id=DeleteObjects",
                ok(DeleteObjects, Some("b"), None),
            ),
            (
                "POST",
                "/b/k?uploads&x-id=CreateMultipartUpload",
                ok(CreateMultipartUpload, Some("b"), Some("k")),
            ),
            (
                "PUT",
                "/b/k?x-id=UploadPart&partNumber=3&uploadId=abc",
                ok(UploadPart, Some("b"), Some("k")),
            ),
            (
                "GET",
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00",
                ok(GetObject, Some("b"), Some("k")),
            ),
            (
                "GET",
                "/b/k?something-new=1&&=x",
                ok(GetObject, Some("b"), Some("k")),
            ),
            (
                "GET",
                "/?x-id=ListBuckets&max-buckets=5",
                ok(ListBuckets, None, None),
            ),
            (
                "GET",
                "/b?uploads&prefix=p",
                ok(ListMultipartUploads, Some("b"), None),
            ),
            // Bucket-level parameters mean nothing on an object.
            ("GET", "/b/k?location", ok(GetObject, Some("b"), Some("k"))),
            (
                "DELETE",
                "/b/k?delete",
                ok(DeleteObject, Some("b"), Some("k")),
            ),
            ("PUT", "/b?uploads", ok(CreateBucket, Some("b"), None)),
        ];
        for (m, target, want) in cases {
            assert_eq!(r(m, target), want, "{m} {target}");
        }
    }

    #[test]
    fn unsupported_subresources_are_not_implemented() {
        let bucket_level = [
            "versioning",
            "tagging",
            "cors",
            "lifecycle",
            "website",
            "encryption",
            "logging",
            "notification",
            "replication",
            "object-lock",
            "versions",
            "accelerate",
            "requestPayment",
            "analytics",
            "metrics",
            "inventory",
            "intelligent-tiering",
            "session",
        ];
        for sub in bucket_level {
            for m in ["GET", "PUT", "DELETE", "HEAD"] {
                let target = format!("/b?{sub}");
                assert_eq!(
                    code(r(m, &target)),
                    ErrorCode::NotImplemented,
                    "{m} {target}"
                );
            }
        }
        let object_level = [
            "policy",
            "publicAccessBlock",
            "tagging",
            "retention",
            "legal-hold",
            "torrent",
            "restore",
            "select",
            "attributes",
        ];
        for sub in object_level {
            for m in ["GET", "PUT", "POST", "DELETE", "HEAD"] {
                let target = format!("/b/k?{sub}");
                assert_eq!(
                    code(r(m, &target)),
                    ErrorCode::NotImplemented,
                    "{m} {target}"
                );
            }
        }
        // With a value and mixed with supported parameters: still refused.
        assert_eq!(
            code(r("PUT", "/b/k?tagging=&x-id=PutObjectTagging")),
            ErrorCode::NotImplemented
        );
        assert_eq!(
            code(r("POST", "/b/k?select&select-type=2")),
            ErrorCode::NotImplemented
        );
        assert_eq!(
            code(r("GET", "/b?versions&prefix=a")),
            ErrorCode::NotImplemented
        );
        assert_eq!(
            code(vh("PUT", "b.s3.example.com", "/?versioning")),
            ErrorCode::NotImplemented
        );
        // Names are case-sensitive, as S3's are.
        assert_eq!(r("GET", "/b/k?ACL"), ok(GetObject, Some("b"), Some("k")));
        // The browser form upload (POST to a bucket) is not implemented either.
        assert_eq!(code(r("POST", "/b")), ErrorCode::NotImplemented);
        assert_eq!(code(r("POST", "/b?uploads")), ErrorCode::NotImplemented);
    }

    #[test]
    fn methods_without_an_operation() {
        let not_allowed = [
            ("PUT", "/"),
            ("POST", "/"),
            ("DELETE", "/"),
            ("HEAD", "/"),
            ("POST", "/b/k"),
            ("PATCH", "/b/k"),
            ("PATCH", "/b"),
            ("TRACE", "/"),
            ("CONNECT", "/b/k"),
            ("PROPFIND", "/b/k"),
        ];
        for (m, target) in not_allowed {
            assert_eq!(
                code(r(m, target)),
                ErrorCode::MethodNotAllowed,
                "{m} {target}"
            );
        }
        let err = r("PATCH", "/b/k").unwrap_err();
        assert_eq!(err.resource.as_deref(), Some("/b/k"));
        assert_eq!(
            err.extra,
            vec![
                ("Method", "PATCH".to_owned()),
                ("ResourceType", "OBJECT".to_owned())
            ]
        );
        assert_eq!(r("POST", "/").unwrap_err().extra[1].1, "SERVICE");
        assert_eq!(r("PATCH", "/b").unwrap_err().extra[1].1, "BUCKET");
        for target in ["/", "/b", "/b/k"] {
            assert_eq!(
                code(r("OPTIONS", target)),
                ErrorCode::NotImplemented,
                "{target}"
            );
        }
    }

    #[test]
    fn half_a_part_address_is_refused() {
        for target in ["/b/k?uploadId=u", "/b/k?partNumber=1"] {
            let err = r("PUT", target).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidArgument, "{target}");
            assert_eq!(err.status().as_u16(), 400);
        }
        assert_eq!(
            code(rh("PUT", "/b/k?uploadId=u", &[COPY])),
            ErrorCode::InvalidArgument
        );
        // GET with partNumber is a GetObject for that part; the handler reads the parameter.
        assert_eq!(
            r("GET", "/b/k?partNumber=1"),
            ok(GetObject, Some("b"), Some("k"))
        );
        assert_eq!(
            r("HEAD", "/b/k?partNumber=1"),
            ok(HeadObject, Some("b"), Some("k"))
        );
    }

    #[test]
    fn malformed_paths() {
        for path in [
            "/b/%",
            "/b/%2",
            "/b/%zz",
            "/b/a%2",
            "/b%/k",
            "/b/%C3",
            "/b/%FF%FE",
            "/%FF/k",
        ] {
            let err = r("GET", path).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidURI, "{path}");
            assert_eq!(err.resource.as_deref(), Some(path));
        }
        assert_eq!(
            code(vh("GET", "b.s3.example.com", "/%C3%28")),
            ErrorCode::InvalidURI
        );
        assert_eq!(code(r("GET", "b/k")), ErrorCode::InvalidURI);
        assert_eq!(code(r("GET", "")), ErrorCode::InvalidURI);
        assert_eq!(code(r("GET", "//k")), ErrorCode::InvalidBucketName);
    }

    #[test]
    fn key_length_limit_counts_decoded_utf8_bytes() {
        let at_limit = "a".repeat(MAX_KEY_BYTES);
        assert_eq!(
            r("PUT", &format!("/b/{at_limit}")),
            ok(PutObject, Some("b"), Some(&at_limit))
        );
        let err = r("PUT", &format!("/b/{at_limit}a")).unwrap_err();
        assert_eq!(err.code, ErrorCode::KeyTooLongError);
        assert_eq!(err.extra[0], ("Size", "1025".to_owned()));
        // 512 two-byte characters fit; 513 do not, though the encoded path is far longer.
        let e = "%C3%A9";
        assert!(r("GET", &format!("/b/{}", e.repeat(512))).is_ok());
        assert_eq!(
            code(r("GET", &format!("/b/{}", e.repeat(513)))),
            ErrorCode::KeyTooLongError
        );
    }

    #[test]
    fn path_below_bucket_in_both_styles() {
        let vhost = headers(&[("host", "abc.s3.example.com:9000")]);
        let domain = Some("s3.example.com");
        // Virtual-hosted: the whole path lies below the bucket, even when it starts like one.
        assert_eq!(path_below_bucket("/abcd/k", &vhost, domain), "/abcd/k");
        assert_eq!(path_below_bucket("/", &vhost, domain), "/");
        // Path style: what follows the first segment, still encoded.
        let none = HeaderMap::new();
        assert_eq!(path_below_bucket("/abcd/a%20b", &none, domain), "/a%20b");
        assert_eq!(path_below_bucket("/abcd/k", &vhost, None), "/k");
        assert_eq!(path_below_bucket("/abcd/", &none, None), "/");
        assert_eq!(path_below_bucket("/abcd", &none, None), "");
        assert_eq!(path_below_bucket("/", &none, None), "");
    }

    #[test]
    fn query_parsing() {
        let q =
            parse_query("uploads&prefix=a%20b%2Bc+d&empty=&x-id=PutObject&k=v=w&%E2%82%AC=%C3%A9");
        assert_eq!(
            q,
            vec![
                ("uploads".to_owned(), String::new()),
                ("prefix".to_owned(), "a b+c+d".to_owned()),
                ("empty".to_owned(), String::new()),
                ("x-id".to_owned(), "PutObject".to_owned()),
                ("k".to_owned(), "v=w".to_owned()),
                ("€".to_owned(), "é".to_owned()),
            ]
        );
        assert_eq!(query_get(&q, "prefix"), Some("a b+c+d"));
        assert_eq!(query_get(&q, "uploads"), Some(""));
        assert_eq!(query_get(&q, "missing"), None);
        assert!(parse_query("").is_empty());
        assert!(parse_query("&&").is_empty());
        // First value wins; malformed escapes and bad UTF-8 do not fail the parse.
        let q = parse_query("a=1&a=2&bad=%zz%&utf=%FF");
        assert_eq!(query_get(&q, "a"), Some("1"));
        assert_eq!(query_get(&q, "bad"), Some("%zz%"));
        assert_eq!(query_get(&q, "utf"), Some("\u{FFFD}"));
        // Names are decoded like values; the bytes stay available undecoded as text.
        assert_eq!(
            decode_query("upload%49d=%FF+"),
            vec![(b"uploadId".to_vec(), b"\xFF+".to_vec())]
        );
    }
}
