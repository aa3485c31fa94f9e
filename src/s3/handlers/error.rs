//! The one mapping from the object service's errors to what an S3 client sees. Causes inside the
//! service (metadata store, chunk storage) are logged here with their detail and answered as
//! `InternalError`, or `ServiceUnavailable` when storage or the metadata store is out of reach, or
//! `XMinioStorageFull` when it has no room left; never echoed.

use crate::datanode::ChunkError;
use crate::gateway::GatewayError;
use crate::s3::chunked::ChunkedError;
use crate::s3::error::{ErrorCode, S3Error};

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
                Some(c) => S3Error::from(c),
                None => {
                    tracing::debug!(error = %e, "request body ended early");
                    S3Error::new(ErrorCode::IncompleteBody)
                }
            },
            G::Meta(e) if e.is_storage_full() => {
                tracing::warn!(error = %e, "metadata store is full");
                S3Error::new(ErrorCode::XMinioStorageFull)
            }
            G::Chunk(ChunkError::Full(why)) => {
                tracing::warn!(%why, "chunk storage is full");
                S3Error::new(ErrorCode::XMinioStorageFull)
            }
            G::Chunk(ChunkError::Io(e)) if e.kind() == std::io::ErrorKind::StorageFull => {
                tracing::warn!(error = %e, "chunk storage is full");
                S3Error::new(ErrorCode::XMinioStorageFull)
            }
            G::Meta(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "metadata store unavailable");
                S3Error::new(ErrorCode::ServiceUnavailable)
            }
            G::Meta(e) => {
                tracing::error!(error = %e, "metadata store failed");
                S3Error::new(ErrorCode::InternalError)
            }
            G::Chunk(ChunkError::Unavailable(why)) => {
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

pub fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "internal error");
    S3Error::new(ErrorCode::InternalError)
}
