//! Header helpers shared by the object handlers: the headers an object stores, the precondition
//! of a conditional write, the checksum header an object answers with, and header values built
//! from stored text.

use http::{HeaderMap, HeaderValue, header};

use crate::checksum::{ChecksumAlgorithm, ChecksumType};
use crate::meta::{ObjectMeta, StoredHeaders, WriteCondition};
use crate::s3::error::{ErrorCode, S3Error};

/// S3's limit on user metadata: the UTF-8 bytes of every x-amz-meta-* name and value together.
const MAX_USER_METADATA: usize = 2048;

/// The headers an object stores: Content-Type and friends plus x-amz-meta-*.
pub fn stored_headers(headers: &HeaderMap) -> Result<StoredHeaders, S3Error> {
    let get = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut user = Vec::new();
    let mut user_bytes = 0;
    for (name, value) in headers {
        if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = value.as_bytes().to_vec();
            user_bytes += meta.len() + value.len();
            user.push((meta.to_owned(), value));
        }
    }
    if user_bytes > MAX_USER_METADATA {
        return Err(S3Error::new(ErrorCode::MetadataTooLarge)
            .with_extra("Size", user_bytes.to_string())
            .with_extra("MaxSizeAllowed", MAX_USER_METADATA.to_string()));
    }
    user.sort();
    // aws-chunked describes how this request's body was framed, not the object; the other
    // codings are kept as written, spaces included, as S3 returns them.
    let content_encoding = get(header::CONTENT_ENCODING)
        .map(|e| {
            e.split(',')
                .filter(|p| {
                    let p = p.trim();
                    !p.is_empty() && !p.eq_ignore_ascii_case("aws-chunked")
                })
                .collect::<Vec<_>>()
                .join(",")
                .trim()
                .to_owned()
        })
        .filter(|e| !e.is_empty());
    Ok(StoredHeaders {
        storage_class: storage_class(headers)?,
        content_type: get(header::CONTENT_TYPE),
        content_encoding,
        content_disposition: get(header::CONTENT_DISPOSITION),
        content_language: get(header::CONTENT_LANGUAGE),
        cache_control: get(header::CACHE_CONTROL),
        expires: get(header::EXPIRES),
        user,
    })
}

/// The storage classes S3 names (`x-amz-storage-class`).
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html#AmazonS3-PutObject-request-header-StorageClass>
const STORAGE_CLASSES: [&str; 12] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
];

/// The storage class a write asks for: `None` for STANDARD (also when the header is absent),
/// InvalidStorageClass for a name S3 does not know.
pub fn storage_class(headers: &HeaderMap) -> Result<Option<String>, S3Error> {
    let Some(value) = headers.get("x-amz-storage-class") else {
        return Ok(None);
    };
    match value.to_str().ok().filter(|v| STORAGE_CLASSES.contains(v)) {
        Some("STANDARD") => Ok(None),
        Some(class) => Ok(Some(class.to_owned())),
        None => Err(S3Error::new(ErrorCode::InvalidStorageClass).with_extra(
            "StorageClassRequested",
            String::from_utf8_lossy(value.as_bytes()),
        )),
    }
}

/// The precondition of a conditional write (PutObject, CompleteMultipartUpload):
/// `If-None-Match: *` or `If-Match: ETAG`
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>), and, as
/// Ceph accepts it, `If-None-Match: ETAG`: 412 when the key's current ETag is that one.
pub fn write_condition(headers: &HeaderMap) -> Result<WriteCondition, S3Error> {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(etag) = get(header::IF_MATCH) {
        return Ok(WriteCondition::IfMatch(etag.trim_matches('"').to_owned()));
    }
    match get(header::IF_NONE_MATCH) {
        None => Ok(WriteCondition::Always),
        Some("*") => Ok(WriteCondition::IfAbsent),
        Some(etag) => Ok(WriteCondition::IfNoneMatch(
            etag.trim_matches('"').to_owned(),
        )),
    }
}

/// The value of an object's `x-amz-checksum-*` header: base64, with `-N` for a composite
/// checksum of N parts.
pub fn checksum_header_value(object: &ObjectMeta) -> Option<(&'static str, String)> {
    let sum = object.checksum.as_ref()?;
    let value = match (object.checksum_type, object.parts_count) {
        (ChecksumType::Composite, Some(n)) => format!("{}-{n}", sum.to_base64()),
        _ => sum.to_base64(),
    };
    Some((sum.algorithm.header_name(), value))
}

/// A checksum header whose value is not a digest of its algorithm: AWS answers BadDigest.
pub fn invalid_checksum_value(algorithm: ChecksumAlgorithm) -> S3Error {
    S3Error::new(ErrorCode::BadDigest).with_message(format!(
        "The {} you specified did not match the calculated checksum.",
        algorithm.header_name()
    ))
}

/// Builds a header value, dropping characters a header cannot carry.
pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        let clean: String = s
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .collect();
        HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static(""))
    })
}
