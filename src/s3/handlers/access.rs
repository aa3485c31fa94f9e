//! Access-control operations: bucket policies (Get/Put/DeleteBucketPolicy,
//! GetBucketPolicyStatus), ACLs (Get/PutBucketAcl, Get/PutObjectAcl), Object Ownership
//! (Get/Put/DeleteBucketOwnershipControls) and Block Public Access
//! (Get/Put/DeletePublicAccessBlock). `authorize.rs` has already decided the caller may; these
//! validate and store the settings, which reach every gateway's cache within a second.

use std::collections::HashMap;
use std::sync::Arc;

use http::{StatusCode, header};

use super::authorize::{acl_error, acl_from_headers, has_acl_headers};
use super::body::read_xml_body;
use super::error::internal;
use super::request::Request;
use super::response::{S3Result, empty_response, full, xml_response};
use crate::gateway::Gateway;
use crate::gateway::access::{BucketAuth, Ownership, PublicAccessBlock};
use crate::iam::acl::Acl;
use crate::iam::policy::{Policy, PolicyKind};
use crate::meta::{AccessField, Account};
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::xml::{XmlWriter, parse_ownership_controls, parse_public_access_block};

/// The bucket the request names, which `authorize` loaded; absent means it does not exist.
fn bucket(req: &Request) -> Result<Arc<BucketAuth>, S3Error> {
    req.bucket_access
        .clone()
        .ok_or_else(|| S3Error::new(ErrorCode::NoSuchBucket).with_extra("BucketName", req.bucket()))
}

/// Stores one access setting of the request's bucket and answers `status` (S3 answers 204 to
/// PutBucketPolicy and the deletes, 200 to the other puts).
async fn set(
    gw: &Gateway,
    req: &Request,
    field: AccessField,
    value: Option<&str>,
    status: StatusCode,
) -> S3Result {
    let found = gw
        .meta()
        .set_bucket_access(req.bucket(), field, value)
        .await
        .map_err(crate::gateway::GatewayError::from)?;
    if !found {
        return Err(S3Error::new(ErrorCode::NoSuchBucket).with_extra("BucketName", req.bucket()));
    }
    gw.access().refresh().await?;
    empty_response(status)
}

fn malformed_policy(message: impl Into<String>) -> S3Error {
    S3Error::new(ErrorCode::MalformedPolicy).with_message(message)
}

pub async fn get_bucket_policy(req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let document = bucket.bucket.access.policy.clone().ok_or_else(|| {
        S3Error::new(ErrorCode::NoSuchBucketPolicy).with_extra("BucketName", req.bucket())
    })?;
    http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, document.len())
        .body(full(document))
        .map_err(internal)
}

pub async fn put_bucket_policy(gw: &Gateway, mut req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let body = read_xml_body(&mut req).await?;
    let document = std::str::from_utf8(&body).map_err(|_| {
        malformed_policy("Policies must be valid JSON and the first byte must be '{'")
    })?;
    let policy = Policy::parse(document, PolicyKind::Bucket(req.bucket()))
        .map_err(|e| malformed_policy(e.0))?;
    let accounts = gw.access().accounts().await?;
    for principal in policy.principals() {
        let known = accounts
            .values()
            .any(|a| a.id == principal || a.name == principal);
        if !known {
            return Err(malformed_policy("Invalid principal in policy"));
        }
    }
    if bucket.block.block_public_policy && policy.is_public() {
        return Err(S3Error::new(ErrorCode::AccessDenied).with_message(
            "Access Denied: the bucket's public access block forbids public policies",
        ));
    }
    set(
        gw,
        &req,
        AccessField::Policy,
        Some(document),
        StatusCode::NO_CONTENT,
    )
    .await
}

pub async fn delete_bucket_policy(gw: &Gateway, req: Request) -> S3Result {
    bucket(&req)?;
    set(gw, &req, AccessField::Policy, None, StatusCode::NO_CONTENT).await
}

pub async fn get_bucket_policy_status(req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let policy = bucket.policy.as_ref().ok_or_else(|| {
        S3Error::new(ErrorCode::NoSuchBucketPolicy).with_extra("BucketName", req.bucket())
    })?;
    let mut x = XmlWriter::new("PolicyStatus");
    x.element(
        "IsPublic",
        if policy.is_public() { "true" } else { "false" },
    );
    xml_response(StatusCode::OK, x.finish())
}

fn acl_xml(acl: &Acl, accounts: &HashMap<String, Account>) -> S3Result {
    let xml = acl.to_xml(&|id| accounts.get(id).map(|a| a.display_name.clone()));
    xml_response(StatusCode::OK, xml)
}

pub async fn get_bucket_acl(gw: &Gateway, req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let accounts = gw.access().accounts().await?;
    acl_xml(&bucket.acl, &accounts)
}

/// The ACL a PutBucketAcl or PutObjectAcl sets: from its headers or from its XML body (one of
/// them, as S3 requires), owned by `owner`.
async fn requested_acl(
    gw: &Gateway,
    req: &mut Request,
    bucket: &BucketAuth,
    owner: &str,
) -> Result<Acl, S3Error> {
    if !bucket.acls_enabled() {
        return Err(S3Error::new(ErrorCode::AccessControlListNotSupported));
    }
    let accounts = gw.access().accounts().await?;
    let body = read_xml_body(req).await?;
    let from_body = !body.iter().all(u8::is_ascii_whitespace);
    let acl = match (has_acl_headers(req), from_body) {
        (true, true) => {
            return Err(S3Error::new(ErrorCode::InvalidRequest).with_message(
                "Specifying both an ACL in the body and ACL headers is not allowed",
            ));
        }
        (true, false) => acl_from_headers(req, owner, &bucket.bucket.owner, &accounts)?,
        (false, true) => {
            let acl = Acl::parse_xml(&body, &|id| accounts.contains_key(id)).map_err(acl_error)?;
            if acl.owner != owner {
                return Err(S3Error::new(ErrorCode::AccessDenied)
                    .with_message("The Owner in the ACL is not the resource's owner"));
            }
            acl
        }
        (false, false) => {
            return Err(S3Error::new(ErrorCode::MissingSecurityHeader)
                .with_message("Your request was missing a required header")
                .with_extra("MissingHeaderName", "x-amz-acl"));
        }
    };
    if bucket.block.block_public_acls && acl.is_public() {
        return Err(S3Error::new(ErrorCode::AccessDenied)
            .with_message("Access Denied: the bucket's public access block forbids public ACLs"));
    }
    Ok(acl)
}

fn to_json(acl: &Acl) -> Result<String, S3Error> {
    serde_json::to_string(acl).map_err(internal)
}

pub async fn put_bucket_acl(gw: &Gateway, mut req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let acl = requested_acl(gw, &mut req, &bucket, &bucket.bucket.owner).await?;
    set(
        gw,
        &req,
        AccessField::Acl,
        Some(&to_json(&acl)?),
        StatusCode::OK,
    )
    .await
}

pub async fn get_object_acl(gw: &Gateway, req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let object = gw.object(req.bucket(), req.key()).await?;
    req.check_object_acl(&object.owner, object.acl.as_deref())?;
    let accounts = gw.access().accounts().await?;
    let acl = match &object.acl {
        Some(json) if bucket.acls_enabled() => serde_json::from_str(json).map_err(internal)?,
        _ => Acl::private(&object_owner(&bucket, &object.owner)),
    };
    acl_xml(&acl, &accounts)
}

/// Who owns an object: under BucketOwnerEnforced the bucket owner, whoever wrote it.
fn object_owner(bucket: &BucketAuth, writer: &str) -> String {
    if bucket.acls_enabled() {
        writer.to_owned()
    } else {
        bucket.bucket.owner.clone()
    }
}

pub async fn put_object_acl(gw: &Gateway, mut req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let object = gw.object(req.bucket(), req.key()).await?;
    req.check_object_acl(&object.owner, object.acl.as_deref())?;
    let acl = requested_acl(gw, &mut req, &bucket, &object.owner).await?;
    let found = gw
        .meta()
        .set_object_acl(req.bucket(), req.key(), &to_json(&acl)?)
        .await
        .map_err(crate::gateway::GatewayError::from)?;
    if !found {
        return Err(S3Error::new(ErrorCode::NoSuchKey).with_extra("Key", req.key()));
    }
    empty_response(StatusCode::OK)
}

pub async fn get_ownership_controls(req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    if bucket.bucket.access.ownership.is_none() {
        return Err(S3Error::new(ErrorCode::OwnershipControlsNotFoundError)
            .with_extra("BucketName", req.bucket()));
    }
    let mut x = XmlWriter::new("OwnershipControls");
    x.open("Rule");
    x.element("ObjectOwnership", bucket.ownership.as_str());
    x.close("Rule");
    xml_response(StatusCode::OK, x.finish())
}

pub async fn put_ownership_controls(gw: &Gateway, mut req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    let body = read_xml_body(&mut req).await?;
    let value = parse_ownership_controls(&body)
        .map_err(|e| S3Error::new(ErrorCode::MalformedXML).with_message(e.to_string()))?;
    let ownership = Ownership::parse(&value).ok_or_else(|| {
        S3Error::new(ErrorCode::MalformedXML)
            .with_message(format!("ObjectOwnership {value:?} is not one S3 knows"))
    })?;
    if ownership == Ownership::BucketOwnerEnforced
        && bucket.acl != Acl::private(&bucket.bucket.owner)
    {
        return Err(S3Error::new(ErrorCode::InvalidBucketAclWithObjectOwnership));
    }
    set(
        gw,
        &req,
        AccessField::Ownership,
        Some(ownership.as_str()),
        StatusCode::OK,
    )
    .await
}

pub async fn delete_ownership_controls(gw: &Gateway, req: Request) -> S3Result {
    bucket(&req)?;
    set(
        gw,
        &req,
        AccessField::Ownership,
        None,
        StatusCode::NO_CONTENT,
    )
    .await
}

pub async fn get_public_access_block(req: Request) -> S3Result {
    let bucket = bucket(&req)?;
    if bucket.bucket.access.public_access_block.is_none() {
        return Err(
            S3Error::new(ErrorCode::NoSuchPublicAccessBlockConfiguration)
                .with_extra("BucketName", req.bucket()),
        );
    }
    let block = bucket.block;
    let mut x = XmlWriter::new("PublicAccessBlockConfiguration");
    for (name, value) in [
        ("BlockPublicAcls", block.block_public_acls),
        ("IgnorePublicAcls", block.ignore_public_acls),
        ("BlockPublicPolicy", block.block_public_policy),
        ("RestrictPublicBuckets", block.restrict_public_buckets),
    ] {
        x.element(name, if value { "true" } else { "false" });
    }
    xml_response(StatusCode::OK, x.finish())
}

pub async fn put_public_access_block(gw: &Gateway, mut req: Request) -> S3Result {
    bucket(&req)?;
    let body = read_xml_body(&mut req).await?;
    let [
        block_public_acls,
        ignore_public_acls,
        block_public_policy,
        restrict_public_buckets,
    ] = parse_public_access_block(&body)
        .map_err(|e| S3Error::new(ErrorCode::MalformedXML).with_message(e.to_string()))?;
    let block = PublicAccessBlock {
        block_public_acls,
        ignore_public_acls,
        block_public_policy,
        restrict_public_buckets,
    };
    let json = serde_json::to_string(&block).map_err(internal)?;
    set(
        gw,
        &req,
        AccessField::PublicAccessBlock,
        Some(&json),
        StatusCode::OK,
    )
    .await
}

pub async fn delete_public_access_block(gw: &Gateway, req: Request) -> S3Result {
    bucket(&req)?;
    set(
        gw,
        &req,
        AccessField::PublicAccessBlock,
        None,
        StatusCode::NO_CONTENT,
    )
    .await
}
