//! Request bodies: the data body of PutObject and UploadPart as a stream for the object service
//! (decoded when it is aws-chunked, with the digests the client declared), small XML control
//! bodies collected through a hard size cap and an idle timeout and verified, and the draining of what a client
//! still sends after a failed write.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, header};
use http_body_util::{BodyDataStream, BodyExt, Limited};
use sha2::{Digest, Sha256};

use super::headers::invalid_checksum_value;
use super::request::Request;
use crate::checksum::{Checksum, ChecksumAlgorithm, Checksummer, Md5, parse_content_md5};
use crate::gateway::{BodyChecks, ByteStream, GatewayError, TrailingChecksum};
use crate::s3::chunked::{self, ChunkedMode};
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::sigv4::PayloadHash;
use crate::s3::xml::MAX_XML_BODY;

/// The request body as a stream of bytes for the object service.
fn body_stream(req: &mut Request) -> ByteStream {
    let Some(body) = req.body.take() else {
        return Box::pin(futures_util::stream::empty());
    };
    let polled = req.body_polled.clone();
    let mut data = BodyDataStream::new(body).map_err(io::Error::other);
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        polled.store(true, Ordering::Relaxed);
        data.try_poll_next_unpin(cx)
    }))
}

/// The most of an unread request body that is read and dropped after a failed write so the
/// client, still sending, gets the error response instead of a reset connection.
const MAX_DRAIN_BYTES: u64 = 64 << 20;
/// How long that draining may take.
const MAX_DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and drops what is left of a body the client has started sending, within limits.
pub async fn drain(req: &Request, body: &mut ByteStream) {
    if !req.body_polled.load(Ordering::Relaxed) {
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
static AWS_CHUNKED_BODIES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
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
                n.load(Ordering::Relaxed)
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
    let mode = ChunkedMode::from_request(&content_sha256, aws_chunked, req.verified.as_ref())?;
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
    AWS_CHUNKED_BODIES[kind].fetch_add(1, Ordering::Relaxed);

    let declared = match req.header("x-amz-trailer") {
        Some(v) => chunked::parse_trailer_header(v)?,
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

/// Reads a small XML control body through a size cap and an idle timeout, verifying Content-MD5, x-amz-checksum-*
/// and a signed payload hash when the client sent them.
pub async fn read_xml_body(req: &mut Request) -> Result<Bytes, S3Error> {
    let declared = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = || S3Error::new(ErrorCode::MaxMessageLengthExceeded);
    if declared.is_some_and(|n| n > MAX_XML_BODY as u64) {
        return Err(too_big());
    }
    let mut data = BytesMut::new();
    if let Some(body) = req.body.take() {
        let mut body = Limited::new(body, MAX_XML_BODY);
        // The timeout restarts with every frame: it bounds how long the client sends nothing,
        // as AWS's RequestTimeout does, not how long a slow but steady body may take.
        loop {
            let frame = match tokio::time::timeout(req.body_timeout, body.frame()).await {
                Err(_) => return Err(S3Error::new(ErrorCode::RequestTimeout)),
                Ok(None) => break,
                Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(too_big());
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "could not read XML body");
                    return Err(S3Error::new(ErrorCode::IncompleteBody));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(bytes) = frame.into_data() {
                data.extend_from_slice(&bytes);
            }
        }
    }
    let data = data.freeze();
    if let PayloadHash::Sha256(expected) = &req.payload {
        let got: [u8; 32] = Sha256::digest(&data).into();
        if &got != expected {
            return Err(S3Error::new(ErrorCode::XAmzContentSHA256Mismatch));
        }
    }
    let checks = body_checks_from(&req.headers, &req.payload, None)?;
    if checks.md5.is_some_and(|md5| Md5::digest(&data) != md5) {
        return Err(S3Error::new(ErrorCode::BadDigest));
    }
    if let Some(sum) = &checks.checksum {
        let mut h = Checksummer::new(sum.algorithm);
        h.update(&data);
        if h.finalize() != sum.value {
            return Err(GatewayError::ChecksumMismatch(sum.algorithm).into());
        }
    }
    Ok(data)
}

/// Content-Length, Content-MD5, x-amz-content-sha256 and x-amz-checksum-* of a request.
fn body_checks_from(
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
                .ok_or_else(|| invalid_checksum_value(alg))?;
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
