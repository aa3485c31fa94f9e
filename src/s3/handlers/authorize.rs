//! The authorization of a routed request, before its handler runs: the AWS action each operation
//! is (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html>),
//! the condition values the request carries, and the decision of `gateway/access.rs`. What needs
//! an object's ACL is settled by the handler once it has loaded the object
//! ([`Request::check_object_acl`]); DeleteObjects judges each key in its handler.

use crate::gateway::Gateway;
use crate::gateway::access::{Ownership, Question, Requester, Verdict, decide};
use crate::iam::Context;
use crate::iam::acl::Acl;
use crate::s3::date::iso8601;
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::router::Operation;

use super::object::parse_copy_source;
use super::request::Request;

/// The action an operation is, as policies name it.
pub fn action(op: Operation) -> &'static str {
    use Operation::*;
    match op {
        ListBuckets => "s3:ListAllMyBuckets",
        CreateBucket => "s3:CreateBucket",
        DeleteBucket => "s3:DeleteBucket",
        HeadBucket | ListObjects | ListObjectsV2 => "s3:ListBucket",
        GetBucketLocation => "s3:GetBucketLocation",
        ListMultipartUploads => "s3:ListBucketMultipartUploads",
        GetObject | HeadObject => "s3:GetObject",
        PutObject
        | CopyObject
        | CreateMultipartUpload
        | UploadPart
        | UploadPartCopy
        | CompleteMultipartUpload => "s3:PutObject",
        DeleteObject | DeleteObjects => "s3:DeleteObject",
        AbortMultipartUpload => "s3:AbortMultipartUpload",
        ListParts => "s3:ListMultipartUploadParts",
        GetBucketPolicy => "s3:GetBucketPolicy",
        PutBucketPolicy => "s3:PutBucketPolicy",
        DeleteBucketPolicy => "s3:DeleteBucketPolicy",
        GetBucketPolicyStatus => "s3:GetBucketPolicyStatus",
        GetBucketAcl => "s3:GetBucketAcl",
        PutBucketAcl => "s3:PutBucketAcl",
        GetObjectAcl => "s3:GetObjectAcl",
        PutObjectAcl => "s3:PutObjectAcl",
        GetBucketOwnershipControls => "s3:GetBucketOwnershipControls",
        PutBucketOwnershipControls | DeleteBucketOwnershipControls => {
            "s3:PutBucketOwnershipControls"
        }
        GetPublicAccessBlock => "s3:GetBucketPublicAccessBlock",
        PutPublicAccessBlock | DeletePublicAccessBlock => "s3:PutBucketPublicAccessBlock",
    }
}

/// Operations that create an object or upload and so may carry an ACL in their headers.
fn sets_object_acl(op: Operation) -> bool {
    matches!(
        op,
        Operation::PutObject | Operation::CopyObject | Operation::CreateMultipartUpload
    )
}

/// The `x-amz-grant-*` headers and the permission each grants.
pub const GRANT_HEADERS: [(&str, crate::iam::acl::Permission); 5] = {
    use crate::iam::acl::Permission::*;
    [
        ("x-amz-grant-read", Read),
        ("x-amz-grant-write", Write),
        ("x-amz-grant-read-acp", ReadAcp),
        ("x-amz-grant-write-acp", WriteAcp),
        ("x-amz-grant-full-control", FullControl),
    ]
};

/// Whether the request sets an ACL through its headers.
pub fn has_acl_headers(req: &Request) -> bool {
    req.headers.contains_key("x-amz-acl")
        || GRANT_HEADERS
            .iter()
            .any(|(name, _)| req.headers.contains_key(*name))
}

/// The condition values of a request.
fn context(req: &Request) -> Context {
    let mut context = Context::default();
    context.set("aws:SourceIp", req.source_ip.to_string());
    context.set("aws:SecureTransport", req.secure.to_string());
    let now = crate::gateway::now();
    context.set("aws:CurrentTime", iso8601(now));
    context.set("aws:EpochTime", now.unix_timestamp().to_string());
    if let Requester::Key(identity) = &req.requester {
        context.set("aws:username", identity.account.name.clone());
        context.set("aws:userid", identity.key.id.clone());
        // SigV2 reaches Cairn only as presigned URLs; SigV4 as headers or presigned URLs.
        let (version, auth_type) = match &req.verified {
            None => ("AWS", "REST-QUERY-STRING"),
            Some(_) if req.query("X-Amz-Signature").is_some() => {
                ("AWS4-HMAC-SHA256", "REST-QUERY-STRING")
            }
            Some(_) => ("AWS4-HMAC-SHA256", "REST-HEADER"),
        };
        context.set("s3:signatureversion", version);
        context.set("s3:authType", auth_type);
    }
    if matches!(
        req.route.op,
        Operation::ListObjects | Operation::ListObjectsV2
    ) {
        for name in ["prefix", "delimiter", "max-keys"] {
            if let Some(value) = req.query(name) {
                context.set(&format!("s3:{name}"), value);
            }
        }
    }
    for name in [
        "x-amz-acl",
        "x-amz-copy-source",
        "x-amz-content-sha256",
        "x-amz-storage-class",
        "x-amz-metadata-directive",
        "x-amz-grant-read",
        "x-amz-grant-write",
        "x-amz-grant-read-acp",
        "x-amz-grant-write-acp",
        "x-amz-grant-full-control",
    ] {
        if let Some(value) = req.header(name) {
            context.set(&format!("s3:{name}"), value);
        }
    }
    context
}

fn access_denied() -> S3Error {
    S3Error::new(ErrorCode::AccessDenied)
}

/// Whether the caller may do `action` on `key` of the request's bucket, all by itself (object
/// ACLs aside): DeleteObjects asks it of every key.
pub fn key_allowed(req: &Request, action: &str, key: &str) -> bool {
    let question = Question {
        action,
        bucket: req.bucket_access.as_deref(),
        key: Some(key),
        context: &req.context,
    };
    match req.bucket_access {
        Some(_) => decide(&req.requester, &question) == Verdict::Allow,
        // No such bucket: the handler says so.
        None => true,
    }
}

/// Decides the request; on success it carries what the handler still has to check.
pub async fn authorize(gw: &Gateway, req: &mut Request) -> Result<(), S3Error> {
    let op = req.route.op;
    req.context = context(req);
    let bucket = match &req.route.bucket {
        Some(name) => gw.access().bucket(name).await?,
        None => None,
    };
    req.bucket_access = bucket.clone();
    if op == Operation::DeleteObjects {
        // Judged key by key in its handler; the bucket must exist for the caller to learn it.
        if bucket.is_none() && matches!(req.requester, Requester::Anonymous) {
            return Err(access_denied());
        }
        return Ok(());
    }
    let question = Question {
        action: action(op),
        bucket: bucket.as_deref(),
        key: req.route.key.as_deref(),
        context: &req.context,
    };
    if bucket.is_none() && req.route.bucket.is_some() && op != Operation::CreateBucket {
        // No such bucket: say so to a caller its own policies let ask, as AWS does; anonymous
        // callers learn nothing.
        return match (&req.requester, decide(&req.requester, &question)) {
            (Requester::Anonymous, _) | (_, Verdict::Deny) => Err(access_denied()),
            _ => Ok(()),
        };
    }
    match decide(&req.requester, &question) {
        Verdict::Allow => {}
        Verdict::Deny => return Err(access_denied()),
        Verdict::IfObjectAcl(permission) => req.object_check = Some(permission),
    }
    if sets_object_acl(op) && has_acl_headers(req) {
        check_acl_headers(req)?;
    }
    if matches!(op, Operation::CopyObject | Operation::UploadPartCopy) {
        authorize_copy_source(gw, req).await?;
    }
    Ok(())
}

/// Setting an ACL while writing also needs `s3:PutObjectAcl` and is refused on a bucket whose ACLs
/// are disabled (except the owner-full-control ACL AWS lets through); a public ACL on a bucket
/// that blocks them is refused once it is parsed (`new_object_access`).
fn check_acl_headers(req: &Request) -> Result<(), S3Error> {
    let Some(bucket) = req.bucket_access.as_deref() else {
        return Ok(());
    };
    let canned = req.header("x-amz-acl");
    let grants = GRANT_HEADERS
        .iter()
        .any(|(name, _)| req.headers.contains_key(*name));
    if !bucket.acls_enabled() {
        let harmless =
            !grants && canned.is_some_and(|c| c == "bucket-owner-full-control" || c == "private");
        return if harmless {
            Ok(())
        } else {
            Err(S3Error::new(ErrorCode::AccessControlListNotSupported))
        };
    }
    let question = Question {
        action: "s3:PutObjectAcl",
        bucket: Some(bucket),
        key: req.route.key.as_deref(),
        context: &req.context,
    };
    // Under ObjectWriter the writer owns the new object, so its own ACL grant is what the
    // object's ACL check would find: only a Deny from a policy refuses it.
    if decide(&req.requester, &question) == Verdict::Deny {
        return Err(access_denied());
    }
    Ok(())
}

/// A copy reads its source: `s3:GetObject` on it, judged like a GetObject of that object.
async fn authorize_copy_source(gw: &Gateway, req: &mut Request) -> Result<(), S3Error> {
    let raw = req
        .header("x-amz-copy-source")
        .unwrap_or_default()
        .to_owned();
    let (source_bucket, source_key) = parse_copy_source(&raw)?;
    let bucket = gw.access().bucket(&source_bucket).await?;
    let Some(bucket) = bucket else {
        // The handler answers NoSuchBucket to a caller that may ask.
        return match req.requester {
            Requester::Anonymous => Err(access_denied()),
            Requester::Key(_) => Ok(()),
        };
    };
    let question = Question {
        action: "s3:GetObject",
        bucket: Some(&bucket),
        key: Some(&source_key),
        context: &req.context,
    };
    match decide(&req.requester, &question) {
        Verdict::Allow => {}
        Verdict::Deny => return Err(access_denied()),
        Verdict::IfObjectAcl(permission) => req.source_check = Some((bucket, permission)),
    }
    Ok(())
}

/// Who owns a new object or upload and the ACL it gets from its request's headers (as JSON to
/// store; None is private to its owner). The writer owns what it writes, except under
/// BucketOwnerEnforced, and under BucketOwnerPreferred with `bucket-owner-full-control`.
pub async fn new_object_access(
    gw: &Gateway,
    req: &Request,
) -> Result<(String, Option<String>), S3Error> {
    let writer = req.requester.account_id().unwrap_or_default().to_owned();
    let Some(bucket) = req.bucket_access.as_deref() else {
        return Ok((writer, None));
    };
    let owner = match bucket.ownership {
        Ownership::BucketOwnerEnforced => return Ok((bucket.bucket.owner.clone(), None)),
        Ownership::BucketOwnerPreferred
            if req.header("x-amz-acl") == Some("bucket-owner-full-control") =>
        {
            bucket.bucket.owner.clone()
        }
        _ => writer,
    };
    if !has_acl_headers(req) {
        return Ok((owner, None));
    }
    let accounts = gw.access().accounts().await?;
    let acl = acl_from_headers(req, &owner, &bucket.bucket.owner, &accounts)?;
    if bucket.block.block_public_acls && acl.is_public() {
        return Err(access_denied().with_message("Access Denied: public ACLs are blocked"));
    }
    let json = serde_json::to_string(&acl)
        .map_err(|e| S3Error::new(ErrorCode::InternalError).with_message(e.to_string()))?;
    Ok((owner, Some(json)))
}

/// An ACL from `x-amz-acl` or the `x-amz-grant-*` headers (not both, as AWS requires).
pub fn acl_from_headers(
    req: &Request,
    owner: &str,
    bucket_owner: &str,
    accounts: &std::collections::HashMap<String, crate::meta::Account>,
) -> Result<Acl, S3Error> {
    let grants: Vec<_> = GRANT_HEADERS
        .iter()
        .filter_map(|(name, permission)| req.header(name).map(|v| (*permission, v)))
        .collect();
    let acl = match (req.header("x-amz-acl"), grants.is_empty()) {
        (Some(_), false) => {
            return Err(S3Error::new(ErrorCode::InvalidRequest)
                .with_message("Specifying both Canned ACLs and Header Grants is not allowed"));
        }
        (Some(canned), true) => Acl::canned(canned, owner, bucket_owner),
        (None, _) => Acl::from_grant_headers(owner, &grants, &|id| accounts.contains_key(id)),
    };
    acl.map_err(acl_error)
}

/// An ACL the iam module refused, as the S3 error it names.
pub fn acl_error(e: crate::iam::acl::AclError) -> S3Error {
    let code = match e.code {
        "MalformedACLError" => ErrorCode::MalformedACLError,
        "UnresolvableGrantByEmailAddress" => ErrorCode::UnresolvableGrantByEmailAddress,
        "NotImplemented" => ErrorCode::NotImplemented,
        "AccessDenied" => ErrorCode::AccessDenied,
        "InvalidRequest" => ErrorCode::InvalidRequest,
        _ => ErrorCode::InvalidArgument,
    };
    S3Error::new(code).with_message(e.message)
}
