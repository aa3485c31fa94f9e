//! S3 operations, one file per area (`bucket.rs`, `object.rs`, `multipart.rs`, `list.rs`), each
//! handler named after its AWS operation. Handlers turn an authenticated, routed request into
//! calls on the object service and its answer into headers and XML. This file only dispatches:
//! from the router's operation to its handler; what handlers share sits beside it (the request,
//! bodies, headers, responses, and the one mapping from service errors to S3 errors).

mod access;
mod authorize;
pub mod body;
mod bucket;
mod error;
mod headers;
mod list;
mod multipart;
mod object;
pub mod request;
pub mod response;

// Pure, so the fuzz targets (fuzz/) reach it.
pub use object::parse_copy_source;

use request::Request;
use response::S3Result;

use crate::gateway::Gateway;
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::router::{MAX_KEY_BYTES, Operation};

pub async fn dispatch(gw: &Gateway, mut req: Request) -> S3Result {
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
    if let Some(name) = encryption_header(&req) {
        return Err(S3Error::new(ErrorCode::NotImplemented)
            .with_message(
                "Server-side encryption is not implemented: objects are stored unencrypted",
            )
            .with_extra("Header", name)
            .with_resource(req.resource()));
    }
    let resource = req.resource();
    if let Err(e) = authorize::authorize(gw, &mut req).await {
        return Err(e.with_resource(resource));
    }
    let result = match req.route.op {
        Operation::ListBuckets => bucket::list_buckets(gw, req).await,
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
        Operation::GetBucketPolicy => access::get_bucket_policy(req).await,
        Operation::PutBucketPolicy => access::put_bucket_policy(gw, req).await,
        Operation::DeleteBucketPolicy => access::delete_bucket_policy(gw, req).await,
        Operation::GetBucketPolicyStatus => access::get_bucket_policy_status(req).await,
        Operation::GetBucketAcl => access::get_bucket_acl(gw, req).await,
        Operation::PutBucketAcl => access::put_bucket_acl(gw, req).await,
        Operation::GetObjectAcl => access::get_object_acl(gw, req).await,
        Operation::PutObjectAcl => access::put_object_acl(gw, req).await,
        Operation::GetBucketOwnershipControls => access::get_ownership_controls(req).await,
        Operation::PutBucketOwnershipControls => access::put_ownership_controls(gw, req).await,
        Operation::DeleteBucketOwnershipControls => {
            access::delete_ownership_controls(gw, req).await
        }
        Operation::GetPublicAccessBlock => access::get_public_access_block(req).await,
        Operation::PutPublicAccessBlock => access::put_public_access_block(gw, req).await,
        Operation::DeletePublicAccessBlock => access::delete_public_access_block(gw, req).await,
    };
    result.map_err(|e| {
        if e.resource.is_none() {
            e.with_resource(resource)
        } else {
            e
        }
    })
}

/// The first server-side encryption header of a request (SSE-S3, SSE-KMS, SSE-C, and SSE-C of a
/// copy source). Cairn stores objects unencrypted, so it refuses them rather than store in the
/// clear what a client asked to be encrypted, or serve an SSE-C object without its key.
fn encryption_header(req: &Request) -> Option<String> {
    req.headers
        .keys()
        .map(|name| name.as_str())
        .find_map(|name| {
            let sse = name.starts_with("x-amz-server-side-encryption")
                || name.starts_with("x-amz-copy-source-server-side-encryption");
            sse.then(|| name.to_owned())
        })
}
