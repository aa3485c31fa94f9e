//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.
//! A bucket belongs to the account that created it; ListBuckets lists the caller's own.

use http::StatusCode;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::authorize::{acl_from_headers, has_acl_headers};
use super::body::read_xml_body;
use super::error::internal;
use super::headers::header_value;
use super::request::{Request, query_number};
use super::response::{S3Result, empty_response, xml_response};
use crate::gateway::Gateway;
use crate::gateway::access::Ownership;
use crate::meta::{Account, Bucket, BucketAccess, DeleteBucket};
use crate::s3::date::iso8601;
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::xml::{XmlWriter, parse_create_bucket_configuration};

/// Writes `<element><ID>…</ID><DisplayName>…</DisplayName></element>` for the account `id`.
pub fn write_owner(x: &mut XmlWriter, element: &str, id: &str, accounts: &HashMap<String, Account>) {
    x.open(element);
    x.element("ID", id);
    let name = accounts.get(id).map_or(id, |a| a.display_name.as_str());
    x.element("DisplayName", name);
    x.close(element);
}

/// ListBuckets answers at most this many buckets per page (and by default all of them, up to
/// it): AWS's limit for `max-buckets`.
const MAX_BUCKETS: usize = 10_000;

/// AWS's bucket naming rules for general purpose buckets:
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|&b| edge_ok(b) || b == b'.' || b == b'-')
        && edge_ok(bytes[0])
        && edge_ok(bytes[bytes.len() - 1])
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
        && !name.starts_with("sthree-")
        && !name.ends_with("-s3alias")
        && !name.ends_with("--ol-s3")
}

/// The caller's own buckets in name order, paged as AWS added in 2024 (`max-buckets`,
/// `continuation-token`, `prefix`).
pub async fn list_buckets(gw: &Gateway, req: Request) -> S3Result {
    let account = req.requester.account_id().unwrap_or_default().to_owned();
    let limit = match query_number::<usize>(&req, "max-buckets")? {
        None => MAX_BUCKETS,
        Some(n) if (1..=MAX_BUCKETS).contains(&n) => n,
        Some(_) => {
            return Err(S3Error::new(ErrorCode::InvalidArgument)
                .with_message("Argument max-buckets must be an integer between 1 and 10000")
                .with_extra("ArgumentName", "max-buckets"));
        }
    };
    let after = match req.query("continuation-token") {
        None => None,
        Some(token) => Some(
            URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| {
                    S3Error::new(ErrorCode::InvalidArgument)
                        .with_message("The continuation token provided is incorrect")
                        .with_extra("ArgumentName", "continuation-token")
                })?,
        ),
    };
    let prefix = req.query("prefix").unwrap_or_default();
    let buckets = gw
        .meta()
        .list_buckets(Some(&account))
        .await
        .map_err(crate::gateway::GatewayError::from)?;
    let mut page = buckets
        .iter()
        .filter(|b| b.name.starts_with(prefix))
        .filter(|b| after.as_deref().is_none_or(|after| b.name.as_str() > after))
        .take(limit + 1)
        .collect::<Vec<_>>();
    let truncated = page.len() > limit;
    page.truncate(limit);
    let accounts = gw.access().accounts().await?;
    let mut x = XmlWriter::new("ListAllMyBucketsResult");
    x.open("Buckets");
    for b in &page {
        x.open("Bucket");
        x.element("Name", &b.name);
        x.element("CreationDate", &iso8601(b.created));
        x.close("Bucket");
    }
    x.close("Buckets");
    write_owner(&mut x, "Owner", &account, &accounts);
    if truncated && let Some(last) = page.last() {
        x.element("ContinuationToken", &URL_SAFE_NO_PAD.encode(&last.name));
    }
    if req.query("prefix").is_some() {
        x.element("Prefix", prefix);
    }
    xml_response(StatusCode::OK, x.finish())
}

pub async fn create_bucket(gw: &Gateway, mut req: Request) -> S3Result {
    let name = req.bucket().to_owned();
    if !valid_bucket_name(&name) {
        return Err(S3Error::new(ErrorCode::InvalidBucketName).with_extra("BucketName", name));
    }
    let body = read_xml_body(&mut req).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        // Any LocationConstraint is accepted: a single store serves every region name.
        parse_create_bucket_configuration(&body)
            .map_err(|e| S3Error::new(ErrorCode::MalformedXML).with_message(e.to_string()))?;
    }
    let owner = req.requester.account_id().unwrap_or_default().to_owned();
    let mut access = BucketAccess::default();
    if has_acl_headers(&req) {
        let accounts = gw.access().accounts().await?;
        let acl = acl_from_headers(&req, &owner, &owner, &accounts)?;
        access.acl = Some(serde_json::to_string(&acl).map_err(internal)?);
    }
    if let Some(ownership) = req.header("x-amz-object-ownership") {
        let ownership = Ownership::parse(ownership).ok_or_else(|| {
            S3Error::new(ErrorCode::InvalidArgument)
                .with_message("Invalid x-amz-object-ownership header")
                .with_extra("ArgumentName", "x-amz-object-ownership")
        })?;
        if ownership == Ownership::BucketOwnerEnforced && access.acl.is_some() {
            return Err(S3Error::new(ErrorCode::InvalidBucketAclWithObjectOwnership));
        }
        access.ownership = Some(ownership.as_str().to_owned());
    }
    let bucket = Bucket {
        name: name.clone(),
        created: crate::gateway::now(),
        owner: owner.clone(),
        access,
    };
    let created = gw
        .meta()
        .create_bucket(&bucket)
        .await
        .map_err(crate::gateway::GatewayError::from)?;
    if !created {
        // The name is taken: by the caller (AWS's answer outside us-east-1, which clients
        // treat as success for their own bucket) or by another account.
        let existing = gw
            .meta()
            .bucket(&name)
            .await
            .map_err(crate::gateway::GatewayError::from)?;
        let code = match existing {
            Some(b) if b.owner != owner => ErrorCode::BucketAlreadyExists,
            _ => ErrorCode::BucketAlreadyOwnedByYou,
        };
        return Err(S3Error::new(code).with_extra("BucketName", name));
    }
    let mut resp = empty_response(StatusCode::OK)?;
    resp.headers_mut()
        .insert(http::header::LOCATION, header_value(&format!("/{name}")));
    Ok(resp)
}

pub async fn head_bucket(gw: &Gateway, req: Request) -> S3Result {
    gw.require_bucket(req.bucket()).await?;
    empty_response(StatusCode::OK)
}

pub async fn delete_bucket(gw: &Gateway, req: Request) -> S3Result {
    let outcome = gw
        .meta()
        .delete_bucket(req.bucket(), gw.gc_due())
        .await
        .map_err(crate::gateway::GatewayError::from)?;
    match outcome {
        DeleteBucket::Deleted => empty_response(StatusCode::NO_CONTENT),
        DeleteBucket::NoSuchBucket => {
            Err(S3Error::new(ErrorCode::NoSuchBucket).with_extra("BucketName", req.bucket()))
        }
        DeleteBucket::NotEmpty => {
            Err(S3Error::new(ErrorCode::BucketNotEmpty).with_extra("BucketName", req.bucket()))
        }
    }
}

pub async fn get_bucket_location(gw: &Gateway, req: Request) -> S3Result {
    gw.require_bucket(req.bucket()).await?;
    // An empty LocationConstraint means us-east-1, which is what clients sign with by default.
    let x = XmlWriter::new("LocationConstraint");
    xml_response(StatusCode::OK, x.finish())
}

#[cfg(test)]
mod tests {
    use super::valid_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket", "my.bucket.1", "a1b", &"a".repeat(63)] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "ABC",
            "a_b",
            "-abc",
            "abc-",
            ".abc",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "abc--ol-s3",
            "a b",
            "é12",
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
