//! S3 operations, one file per area, each handler named after its AWS operation. Handlers turn
//! an authenticated, routed request into calls on the object service and its answer into
//! headers and XML. This file holds what they share: the request context, body helpers, and the
//! one mapping from service errors to S3 errors.

mod bucket;
mod list;
mod multipart;
mod object;

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{
    BodyDataStream, BodyExt, Full, Limited, StreamBody, combinators::UnsyncBoxBody,
};
use hyper::body::{Frame, Incoming};
use sha2::{Digest, Sha256};

use super::chunked::{self, ChunkedError, ChunkedMode};
use super::error::{ErrorCode, S3Error};
use super::router::{MAX_KEY_BYTES, Operation, Route};
use super::sigv4::{PayloadHash, Verified};
use super::xml::MAX_XML_BODY;
use crate::checksum::{Checksum, ChecksumAlgorithm, parse_content_md5};
use crate::gateway::{BodyChecks, ByteStream, Gateway, GatewayError, TrailingChecksum};
use crate::meta::{StoredHeaders, WriteCondition};

pub type Body = UnsyncBoxBody<Bytes, io::Error>;
pub type Response = http::Response<Body>;
pub type S3Result = Result<Response, S3Error>;

/// S3's limit on user metadata: the UTF-8 bytes of every x-amz-meta-* name and value together.
const MAX_USER_METADATA: usize = 2048;

/// An authenticated, routed request.
pub struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub route: Route,
    pub payload: PayloadHash,
    /// The SigV4 signature that authenticated the request (none for SigV2 presigned URLs);
    /// signed aws-chunked bodies continue its chain.
    pub verified: Option<Verified>,
    /// Taken by whichever helper reads it.
    pub body: Option<Incoming>,
    /// Set once anything asks for the body's bytes: under `Expect: 100-continue` that is
    /// what tells the client to send them, so only then is a body worth draining.
    pub body_polled: Arc<std::sync::atomic::AtomicBool>,
}

impl Request {
    pub fn bucket(&self) -> &str {
        self.route.bucket.as_deref().unwrap_or_default()
    }

    pub fn key(&self) -> &str {
        self.route.key.as_deref().unwrap_or_default()
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        super::router::query_get(&self.query, name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The resource named in error bodies: "/bucket" or "/bucket/key".
    pub fn resource(&self) -> String {
        match (&self.route.bucket, &self.route.key) {
            (Some(b), Some(k)) => format!("/{b}/{k}"),
            (Some(b), None) => format!("/{b}"),
            _ => "/".to_owned(),
        }
    }
}

pub async fn dispatch(gw: &Gateway, req: Request) -> S3Result {
    if req
        .route
        .key
        .as_ref()
        .is_some_and(|k| k.len() > MAX_KEY_BYTES)
    {
        return Err(S3Error::new(ErrorCode::KeyTooLongError));
    }
    // U+0000 cannot be stored by PostgreSQL nor carried by XML 1.0: refuse it up front rather
    // than fail later with a 500 (keys, prefixes, markers alike).
    let has_nul = req.route.key.as_ref().is_some_and(|k| k.contains('\0'))
        || req.query.iter().any(|(_, v)| v.contains('\0'));
    if has_nul {
        return Err(S3Error::new(ErrorCode::InvalidArgument)
            .with_message("Object keys and list parameters cannot contain the character U+0000"));
    }
    let resource = req.resource();
    let result = match req.route.op {
        Operation::ListBuckets => bucket::list_buckets(gw).await,
        Operation::CreateBucket => bucket::create_bucket(gw, req).await,
        Operation::HeadBucket => bucket::head_bucket(gw, req).await,
        Operation::DeleteBucket => bucket::delete_bucket(gw, req).await,
        Operation::GetBucketLocation => bucket::get_bucket_location(gw, req).await,
        Operation::ListObjects => list::list_objects(gw, req, false).await,
        Operation::ListObjectsV2 => list::list_objects(gw, req, true).await,
        Operation::DeleteObjects => object::delete_objects(gw, req).await,
        Operation::PutObject => object::put_object(gw, req).await,
        Operation::CopyObject => object::copy_object(gw, req).await,
        Operation::GetObject | Operation::HeadObject => object::get_object(gw, req).await,
        Operation::DeleteObject => object::delete_object(gw, req).await,
        Operation::CreateMultipartUpload => multipart::create_multipart_upload(gw, req).await,
        Operation::UploadPart => multipart::upload_part(gw, req).await,
        Operation::CompleteMultipartUpload => multipart::complete_multipart_upload(gw, req).await,
        Operation::AbortMultipartUpload => multipart::abort_multipart_upload(gw, req).await,
        Operation::ListParts => multipart::list_parts(gw, req).await,
        Operation::ListMultipartUploads => multipart::list_multipart_uploads(gw, req).await,
        Operation::UploadPartCopy => multipart::upload_part_copy(gw, req).await,
    };
    result.map_err(|e| {
        if e.resource.is_none() {
            e.with_resource(resource)
        } else {
            e
        }
    })
}

impl From<GatewayError> for S3Error {
    fn from(e: GatewayError) -> Self {
        use GatewayError as G;
        match e {
            G::NoSuchBucket => S3Error::new(ErrorCode::NoSuchBucket),
            G::NoSuchKey => S3Error::new(ErrorCode::NoSuchKey),
            G::NoSuchUpload => S3Error::new(ErrorCode::NoSuchUpload),
            G::BadDigest => S3Error::new(ErrorCode::BadDigest),
            G::ChecksumMismatch(alg) => S3Error::new(ErrorCode::BadDigest).with_message(format!(
                "The {} you specified did not match the calculated checksum.",
                alg.header_name()
            )),
            G::Sha256Mismatch => S3Error::new(ErrorCode::XAmzContentSHA256Mismatch),
            G::IncompleteBody { .. } => S3Error::new(ErrorCode::IncompleteBody),
            G::EntityTooLarge(max) => S3Error::new(ErrorCode::EntityTooLarge)
                .with_extra("MaxSizeAllowed", max.to_string()),
            G::InvalidPart(n) => S3Error::new(ErrorCode::InvalidPart)
                .with_extra("PartNumber", n.to_string()),
            G::InvalidPartOrder => S3Error::new(ErrorCode::InvalidPartOrder),
            G::EntityTooSmall { number, size } => S3Error::new(ErrorCode::EntityTooSmall)
                .with_extra("ProposedSize", size.to_string())
                .with_extra("MinSizeAllowed", (5u64 << 20).to_string())
                .with_extra("PartNumber", number.to_string()),
            G::ChecksumAlgorithmMismatch { expected, got } => S3Error::new(ErrorCode::InvalidRequest)
                .with_message(format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    expected.as_str().to_ascii_lowercase(),
                    got.as_str().to_ascii_lowercase()
                )),
            G::PreconditionFailed => S3Error::new(ErrorCode::PreconditionFailed)
                .with_extra("Condition", "If-Match or If-None-Match"),
            G::NoParts => S3Error::new(ErrorCode::MalformedXML).with_message(
                "The XML you provided was not well-formed or did not validate against our published schema",
            ),
            G::BodyTimeout => S3Error::new(ErrorCode::RequestTimeout),
            G::Body(e) => match ChunkedError::from_io(&e) {
                Some(c) => S3Error::new(ErrorCode::from_code(c.code()).unwrap_or(ErrorCode::InvalidRequest))
                    .with_message(c.to_string()),
                None => {
                    tracing::debug!(error = %e, "request body ended early");
                    S3Error::new(ErrorCode::IncompleteBody)
                }
            },
            G::Meta(e) => {
                tracing::error!(error = %e, "metadata store failed");
                S3Error::new(ErrorCode::InternalError)
            }
            G::Chunk(crate::datanode::ChunkError::Unavailable(why)) => {
                tracing::warn!(%why, "chunk storage unavailable");
                S3Error::new(ErrorCode::ServiceUnavailable)
            }
            G::Chunk(e) => {
                tracing::error!(error = %e, "chunk store failed");
                S3Error::new(ErrorCode::InternalError)
            }
        }
    }
}

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn stream_body(stream: ByteStream) -> Body {
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

pub fn xml_response(status: StatusCode, xml: String) -> S3Result {
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml")
        .header(header::CONTENT_LENGTH, xml.len())
        .body(full(xml))
        .map_err(internal)
}

pub fn empty_response(status: StatusCode) -> S3Result {
    http::Response::builder()
        .status(status)
        .body(empty())
        .map_err(internal)
}

pub fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "internal error");
    S3Error::new(ErrorCode::InternalError)
}

/// The request body as a stream of bytes for the object service.
pub fn body_stream(req: &mut Request) -> ByteStream {
    let Some(body) = req.body.take() else {
        return Box::pin(futures_util::stream::empty());
    };
    let polled = req.body_polled.clone();
    let mut data = BodyDataStream::new(body).map_err(io::Error::other);
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        polled.store(true, std::sync::atomic::Ordering::Relaxed);
        data.try_poll_next_unpin(cx)
    }))
}

/// The most of an unread request body that is read and dropped after a failed write so the
/// client, still sending, gets the error response instead of a reset connection.
const MAX_DRAIN_BYTES: u64 = 64 << 20;
/// How long that draining may take.
const MAX_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and drops what is left of a body the client has started sending, within limits.
pub async fn drain(req: &Request, body: &mut ByteStream) {
    use futures_util::StreamExt;
    if !req.body_polled.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut drained = 0u64;
    let deadline = tokio::time::Instant::now() + MAX_DRAIN_TIME;
    while drained < MAX_DRAIN_BYTES {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(data))) => drained += data.len() as u64,
            _ => return,
        }
    }
}

/// How many aws-chunked bodies of each kind were decoded, by x-amz-content-sha256 value; read
/// through the health endpoint's stats so tests can see which path real clients took.
static AWS_CHUNKED_BODIES: [std::sync::atomic::AtomicU64; 4] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 4];
const AWS_CHUNKED_KINDS: [&str; 4] = [
    chunked::STREAMING_SIGNED,
    chunked::STREAMING_SIGNED_TRAILER,
    chunked::STREAMING_UNSIGNED_TRAILER,
    "aws-chunked",
];

/// `name count` lines of the aws-chunked counters.
pub fn aws_chunked_stats() -> String {
    AWS_CHUNKED_KINDS
        .iter()
        .zip(&AWS_CHUNKED_BODIES)
        .map(|(k, n)| {
            format!(
                "aws_chunked_bodies{{kind=\"{k}\"}} {}\n",
                n.load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect()
}

/// The data body of PutObject or UploadPart, decoded when it is aws-chunked, with everything
/// the client declared about it.
pub fn object_body(req: &mut Request, max_size: u64) -> Result<(ByteStream, BodyChecks), S3Error> {
    let content_sha256 = req
        .header("x-amz-content-sha256")
        .unwrap_or_default()
        .to_owned();
    let aws_chunked = req.header("content-encoding").is_some_and(|e| {
        e.split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("aws-chunked"))
    });
    let mode = ChunkedMode::from_request(&content_sha256, aws_chunked, req.verified.as_ref())
        .map_err(|e| {
            S3Error::new(ErrorCode::from_code(e.code()).unwrap_or(ErrorCode::InvalidArgument))
                .with_message(e.to_string())
        })?;
    let Some(mode) = mode else {
        if req.headers.get(header::CONTENT_LENGTH).is_none()
            && req.headers.get(header::TRANSFER_ENCODING).is_none()
        {
            return Err(S3Error::new(ErrorCode::MissingContentLength));
        }
        let checks = body_checks_from(&req.headers, &req.payload, Some(max_size))?;
        return Ok((body_stream(req), checks));
    };
    let kind = AWS_CHUNKED_KINDS
        .iter()
        .position(|k| *k == content_sha256)
        .unwrap_or(AWS_CHUNKED_KINDS.len() - 1);
    AWS_CHUNKED_BODIES[kind].fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let declared = match req.header("x-amz-trailer") {
        Some(v) => chunked::parse_trailer_header(v).map_err(|e| {
            S3Error::new(ErrorCode::from_code(e.code()).unwrap_or(ErrorCode::InvalidRequest))
                .with_message(e.to_string())
        })?,
        None => Vec::new(),
    };
    // The encoded length says nothing about the object; the decoded one does.
    let mut headers = req.headers.clone();
    headers.remove(header::CONTENT_LENGTH);
    let mut checks = body_checks_from(&headers, &PayloadHash::Unsigned, Some(max_size))?;
    if let Some(v) = req.header("x-amz-decoded-content-length") {
        let n: u64 = v.parse().map_err(|_| {
            S3Error::new(ErrorCode::InvalidArgument)
                .with_message("Invalid x-amz-decoded-content-length")
        })?;
        if n > max_size {
            return Err(S3Error::new(ErrorCode::EntityTooLarge)
                .with_extra("ProposedSize", n.to_string())
                .with_extra("MaxSizeAllowed", max_size.to_string()));
        }
        checks.content_length = Some(n);
    }
    let trailing = declared.iter().find_map(|name| {
        ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| a.header_name() == name)
    });
    if checks.checksum.is_some() && trailing.is_some() {
        return Err(S3Error::new(ErrorCode::InvalidRequest).with_message(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ));
    }
    let (body, trailers) = chunked::decode(body_stream(req), mode, declared);
    checks.trailing_checksum = trailing.map(|algorithm| TrailingChecksum {
        algorithm,
        value: Arc::new(move || {
            let trailers = trailers.lock().ok()?;
            trailers
                .iter()
                .find(|(n, _)| n == algorithm.header_name())
                .and_then(|(_, v)| Checksum::from_base64(algorithm, v))
        }),
    });
    Ok((body, checks))
}

/// Reads a small XML control body through a size cap, verifying Content-MD5, x-amz-checksum-*
/// and a signed payload hash when the client sent them.
pub async fn read_xml_body(req: &mut Request) -> Result<Bytes, S3Error> {
    let declared = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = || S3Error::new(ErrorCode::MaxMessageLengthExceeded);
    if declared.is_some_and(|n| n > MAX_XML_BODY as u64) {
        return Err(too_big());
    }
    let data = match req.body.take() {
        None => Bytes::new(),
        Some(body) => Limited::new(body, MAX_XML_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_big()
                } else {
                    tracing::debug!(error = %e, "could not read XML body");
                    S3Error::new(ErrorCode::IncompleteBody)
                }
            })?
            .to_bytes(),
    };
    if let PayloadHash::Sha256(expected) = &req.payload {
        let got: [u8; 32] = Sha256::digest(&data).into();
        if &got != expected {
            return Err(S3Error::new(ErrorCode::XAmzContentSHA256Mismatch));
        }
    }
    let checks = body_checks_from(&req.headers, &req.payload, None)?;
    if checks
        .md5
        .is_some_and(|md5| crate::checksum::Md5::digest(&data) != md5)
    {
        return Err(S3Error::new(ErrorCode::BadDigest));
    }
    if let Some(sum) = &checks.checksum {
        let mut h = crate::checksum::Checksummer::new(sum.algorithm);
        h.update(&data);
        if h.finalize() != sum.value {
            return Err(GatewayError::ChecksumMismatch(sum.algorithm).into());
        }
    }
    Ok(data)
}

/// Content-Length, Content-MD5, x-amz-content-sha256 and x-amz-checksum-* of a request.
pub fn body_checks_from(
    headers: &HeaderMap,
    payload: &PayloadHash,
    max_size: Option<u64>,
) -> Result<BodyChecks, S3Error> {
    let content_length = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    S3Error::new(ErrorCode::InvalidArgument).with_message("Invalid Content-Length")
                })?,
        ),
        None => None,
    };
    if let (Some(n), Some(max)) = (content_length, max_size)
        && n > max
    {
        return Err(S3Error::new(ErrorCode::EntityTooLarge)
            .with_extra("ProposedSize", n.to_string())
            .with_extra("MaxSizeAllowed", max.to_string()));
    }
    let md5 = match headers.get("content-md5") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(parse_content_md5)
                .ok_or_else(|| S3Error::new(ErrorCode::InvalidDigest))?,
        ),
        None => None,
    };
    let sha256 = match payload {
        PayloadHash::Sha256(h) => Some(*h),
        _ => None,
    };
    let mut checksum = None;
    for alg in ChecksumAlgorithm::ALL {
        if let Some(v) = headers.get(alg.header_name()) {
            let value = v
                .to_str()
                .ok()
                .and_then(|v| Checksum::from_base64(alg, v.trim()))
                .ok_or_else(|| {
                    S3Error::new(ErrorCode::InvalidRequest).with_message(format!(
                        "Value for {} header is invalid.",
                        alg.header_name()
                    ))
                })?;
            if checksum.replace(value).is_some() {
                return Err(S3Error::new(ErrorCode::InvalidRequest)
                    .with_message("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."));
            }
        }
    }
    Ok(BodyChecks {
        content_length,
        md5,
        sha256,
        checksum,
        trailing_checksum: None,
        max_size: max_size.unwrap_or(u64::MAX),
    })
}

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
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
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
    // aws-chunked describes how this request's body was framed, not the object.
    let content_encoding = get(header::CONTENT_ENCODING)
        .map(|e| {
            e.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("aws-chunked"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|e| !e.is_empty());
    Ok(StoredHeaders {
        content_type: get(header::CONTENT_TYPE),
        content_encoding,
        content_disposition: get(header::CONTENT_DISPOSITION),
        content_language: get(header::CONTENT_LANGUAGE),
        cache_control: get(header::CACHE_CONTROL),
        expires: get(header::EXPIRES),
        user,
    })
}

/// The precondition of a conditional write (PutObject, CompleteMultipartUpload):
/// `If-None-Match: *` or `If-Match: ETAG`.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>
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
        Some(_) => Err(S3Error::new(ErrorCode::NotImplemented)
            .with_message("If-None-Match on a write only supports the value *")),
    }
}

/// The value of an object's `x-amz-checksum-*` header: base64, with `-N` for a composite
/// checksum of N parts.
pub fn checksum_header_value(object: &crate::meta::ObjectMeta) -> Option<(&'static str, String)> {
    let sum = object.checksum.as_ref()?;
    let value = match (object.checksum_type, object.parts_count) {
        (crate::checksum::ChecksumType::Composite, Some(n)) => format!("{}-{n}", sum.to_base64()),
        _ => sum.to_base64(),
    };
    Some((sum.algorithm.header_name(), value))
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

/// Parses an optional integer query parameter, answering InvalidArgument for garbage.
pub fn query_number<T: std::str::FromStr>(req: &Request, name: &str) -> Result<Option<T>, S3Error> {
    match req.query(name) {
        None => Ok(None),
        Some(v) => v.parse::<T>().map(Some).map_err(|_| {
            S3Error::new(ErrorCode::InvalidArgument)
                .with_message(format!(
                    "Provided {name} not an integer or within integer range"
                ))
                .with_extra("ArgumentName", name)
                .with_extra("ArgumentValue", v)
        }),
    }
}
