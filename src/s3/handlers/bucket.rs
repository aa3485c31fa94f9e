//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use http::StatusCode;

use super::body::read_xml_body;
use super::headers::header_value;
use super::request::Request;
use super::response::{S3Result, empty_response, xml_response};
use crate::gateway::Gateway;
use crate::meta::{Bucket, DeleteBucket};
use crate::s3::date::iso8601;
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::xml::{XmlWriter, parse_create_bucket_configuration};

/// The single owner every key acts as, until keys get per-bucket permissions.
pub const OWNER_ID: &str = "cairn";

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

pub async fn list_buckets(gw: &Gateway) -> S3Result {
    let buckets = gw
        .meta()
        .list_buckets(None)
        .await
        .map_err(crate::gateway::GatewayError::from)?;
    let mut x = XmlWriter::new("ListAllMyBucketsResult");
    x.open("Owner");
    x.element("ID", OWNER_ID);
    x.element("DisplayName", OWNER_ID);
    x.close("Owner");
    x.open("Buckets");
    for b in &buckets {
        x.open("Bucket");
        x.element("Name", &b.name);
        x.element("CreationDate", &iso8601(b.created));
        x.close("Bucket");
    }
    x.close("Buckets");
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
    let bucket = Bucket {
        name: name.clone(),
        created: crate::gateway::now(),
        owner: String::new(),
        access: crate::meta::BucketAccess::default(),
    };
    let created = gw
        .meta()
        .create_bucket(&bucket)
        .await
        .map_err(crate::gateway::GatewayError::from)?;
    if !created {
        return Err(S3Error::new(ErrorCode::BucketAlreadyOwnedByYou).with_extra("BucketName", name));
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
