//! Object operations: PutObject, GetObject/HeadObject (ranges, conditions, partNumber),
//! DeleteObject, DeleteObjects and CopyObject.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;

use super::authorize::{key_allowed, new_object_access};
use super::body::{drain, object_body, read_xml_body};
use super::error::internal;
use super::headers::{
    checksum_header_value, header_value, storage_class, stored_headers, write_condition,
};
use super::request::{Request, query_number};
use super::response::{S3Result, empty, empty_response, stream_body, xml_response};
use crate::gateway::{Gateway, GatewayError, MAX_PUT_SIZE, NewObject};
use crate::meta::{ObjectMeta, StoredHeaders, WriteCondition};
use crate::s3::conditions::{Preconditions, if_range_allows};
use crate::s3::date::{http_date, iso8601};
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::range::{content_range, parse_range};
use crate::s3::xml::{XmlWriter, parse_delete};

pub async fn put_object(gw: &Gateway, mut req: Request) -> S3Result {
    let (owner, acl) = new_object_access(gw, &req).await?;
    let (mut body, checks) = object_body(&mut req, MAX_PUT_SIZE)?;
    let new = NewObject {
        bucket: req.bucket().to_owned(),
        key: req.key().to_owned(),
        headers: stored_headers(&req.headers)?,
        condition: write_condition(&req.headers)?,
        owner,
        acl,
    };
    let object = match gw.put_object(new, &checks, &mut body).await {
        Ok(o) => o,
        Err(e) => {
            drain(&req, &mut body).await;
            return Err(e.into());
        }
    };
    let mut resp = empty_response(StatusCode::OK)?;
    let h = resp.headers_mut();
    h.insert(header::ETAG, header_value(&quoted(&object.etag)));
    if let Some(sum) = &object.checksum {
        h.insert(sum.algorithm.header_name(), header_value(&sum.to_base64()));
    }
    Ok(resp)
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// GetObject and HeadObject.
pub async fn get_object(gw: &Gateway, req: Request) -> S3Result {
    let object = match gw.object(req.bucket(), req.key()).await {
        Ok(object) => object,
        // A caller that only an object's ACL could let in does not learn which keys exist.
        Err(GatewayError::NoSuchKey) if req.object_check.is_some() => {
            return Err(S3Error::new(ErrorCode::AccessDenied));
        }
        Err(e) => return Err(e.into()),
    };
    req.check_object_acl(&object.owner, object.acl.as_deref())?;
    let etag = quoted(&object.etag);
    let head = req.method == Method::HEAD;

    // Preconditions come before the range: 412 outranks 416 (RFC 9110 section 13.2.2).
    if let Err(code) =
        Preconditions::from_headers(&req.headers).evaluate(&etag, object.last_modified)
    {
        if code == ErrorCode::NotModified {
            let mut resp = empty_response(StatusCode::NOT_MODIFIED)?;
            resp.headers_mut().insert(header::ETAG, header_value(&etag));
            resp.headers_mut().insert(
                header::LAST_MODIFIED,
                header_value(&http_date(object.last_modified)),
            );
            return Ok(resp);
        }
        return Err(S3Error::new(code));
    }

    let part_number = query_number::<u32>(&req, "partNumber")?;
    let range_header = req.header("range").map(str::to_owned);
    let mut range = None;
    // An empty part of a multipart object selects no bytes: 200 with an empty body.
    let mut empty_part = false;
    if let Some(n) = part_number {
        if range_header.is_some() {
            return Err(S3Error::new(ErrorCode::InvalidRequest)
                .with_message("Cannot specify both Range header and partNumber query parameter"));
        }
        if !(1..=10_000).contains(&n) {
            return Err(S3Error::new(ErrorCode::InvalidArgument)
                .with_message("Part number must be an integer between 1 and 10000, inclusive")
                .with_extra("ArgumentName", "partNumber"));
        }
        match gw.part_range(&object, n).await? {
            // Part 1 of an object stored in one piece is the whole object, sent as such.
            Some(r) if object.parts_count.is_some() && !r.is_empty() => range = Some(r),
            Some(r) => empty_part = object.parts_count.is_some() && r.is_empty(),
            None => {
                return Err(S3Error::new(ErrorCode::InvalidPartNumber)
                    .with_extra("PartNumberRequested", n.to_string())
                    .with_extra(
                        "ActualPartCount",
                        object.parts_count.unwrap_or(1).to_string(),
                    ));
            }
        }
    } else if let Some(spec) = range_header.as_deref().and_then(parse_range) {
        let applies = req
            .header("if-range")
            .is_none_or(|v| if_range_allows(v, &etag, object.last_modified));
        if applies {
            match spec.resolve(object.size) {
                Ok(r) => range = r,
                Err(unsatisfiable) => {
                    // The server adds `Content-Range: bytes */SIZE` from ActualObjectSize.
                    return Err(unsatisfiable.to_error(range_header.as_deref().unwrap_or_default()));
                }
            }
        }
    }

    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let body_range = match (&range, empty_part) {
        (Some(r), _) => r.clone(),
        (None, true) => 0..0,
        (None, false) => 0..object.size,
    };
    let body = if head || body_range.is_empty() {
        empty()
    } else {
        stream_body(gw.read(&object, body_range.clone()).await?)
    };
    let mut resp = http::Response::builder()
        .status(status)
        .body(body)
        .map_err(internal)?;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_LENGTH,
        (body_range.end - body_range.start).into(),
    );
    if let Some(r) = &range {
        h.insert(
            header::CONTENT_RANGE,
            header_value(&content_range(r, object.size)),
        );
    }
    if let (Some(_), Some(count)) = (part_number, object.parts_count) {
        h.insert("x-amz-mp-parts-count", count.into());
    }
    object_headers(h, &object, &etag);
    let whole = range.is_none() || body_range == (0..object.size);
    if whole
        && req
            .header("x-amz-checksum-mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"))
        && let Some((name, value)) = checksum_header_value(&object)
    {
        h.insert(name, header_value(&value));
        h.insert(
            "x-amz-checksum-type",
            header_value(object.checksum_type.as_str()),
        );
    }
    apply_response_overrides(&req, h);
    Ok(resp)
}

/// ETag, Last-Modified, Accept-Ranges and the headers stored with the object.
fn object_headers(h: &mut HeaderMap, object: &ObjectMeta, etag: &str) {
    let s = &object.headers;
    h.insert(header::ETAG, header_value(etag));
    h.insert(
        header::LAST_MODIFIED,
        header_value(&http_date(object.last_modified)),
    );
    h.insert(header::ACCEPT_RANGES, header_value("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        header_value(s.content_type.as_deref().unwrap_or("binary/octet-stream")),
    );
    let optional = [
        (header::CONTENT_ENCODING, &s.content_encoding),
        (header::CONTENT_DISPOSITION, &s.content_disposition),
        (header::CONTENT_LANGUAGE, &s.content_language),
        (header::CACHE_CONTROL, &s.cache_control),
        (header::EXPIRES, &s.expires),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            h.insert(name, header_value(v));
        }
    }
    // S3 names the storage class on GET and HEAD only when it is not STANDARD.
    if let Some(class) = &s.storage_class {
        h.insert("x-amz-storage-class", header_value(class));
    }
    // The exact bytes received, which need not be UTF-8 (see `StoredHeaders::user`).
    for (name, value) in &s.user {
        let name = header::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(value)) {
            h.append(name, value);
        }
    }
}

/// The response-* query parameters of a GetObject override the stored headers.
fn apply_response_overrides(req: &Request, h: &mut HeaderMap) {
    let overrides = [
        ("response-content-type", header::CONTENT_TYPE),
        ("response-content-language", header::CONTENT_LANGUAGE),
        ("response-expires", header::EXPIRES),
        ("response-cache-control", header::CACHE_CONTROL),
        ("response-content-disposition", header::CONTENT_DISPOSITION),
        ("response-content-encoding", header::CONTENT_ENCODING),
    ];
    for (param, name) in overrides {
        if let Some(v) = req.query(param) {
            h.insert(name, header_value(v));
        }
    }
}

pub async fn delete_object(gw: &Gateway, req: Request) -> S3Result {
    gw.delete_object(req.bucket(), req.key()).await?;
    empty_response(StatusCode::NO_CONTENT)
}

pub async fn delete_objects(gw: &Gateway, mut req: Request) -> S3Result {
    let has_digest = req.headers.contains_key("content-md5")
        || crate::checksum::ChecksumAlgorithm::ALL
            .iter()
            .any(|a| req.headers.contains_key(a.header_name()));
    if !has_digest {
        return Err(S3Error::new(ErrorCode::InvalidRequest)
            .with_message("Missing required header for this request: Content-MD5"));
    }
    let body = read_xml_body(&mut req).await?;
    let delete = parse_delete(&body)
        .map_err(|e| S3Error::new(ErrorCode::MalformedXML).with_message(e.to_string()))?;
    gw.require_bucket(req.bucket()).await?;
    let mut x = XmlWriter::new("DeleteResult");
    for key in &delete.keys {
        if key.len() > crate::s3::router::MAX_KEY_BYTES {
            x.open("Error");
            x.element("Key", key);
            x.element("Code", ErrorCode::KeyTooLongError.as_str());
            x.element("Message", ErrorCode::KeyTooLongError.default_message());
            x.close("Error");
            continue;
        }
        if !key_allowed(&req, "s3:DeleteObject", key) {
            x.open("Error");
            x.element("Key", key);
            x.element("Code", ErrorCode::AccessDenied.as_str());
            x.element("Message", ErrorCode::AccessDenied.default_message());
            x.close("Error");
            continue;
        }
        match gw.delete_object(req.bucket(), key).await {
            Ok(_) => {
                if !delete.quiet {
                    x.open("Deleted");
                    x.element("Key", key);
                    x.close("Deleted");
                }
            }
            Err(e) => {
                let e = S3Error::from(e);
                x.open("Error");
                x.element("Key", key);
                x.element("Code", e.code.as_str());
                x.element("Message", &e.message);
                x.close("Error");
            }
        }
    }
    xml_response(StatusCode::OK, x.finish())
}

/// Splits `x-amz-copy-source` ("/bucket/key" or "bucket/key", URL-encoded, optionally with
/// "?versionId=...") into bucket and key.
pub fn parse_copy_source(value: &str) -> Result<(String, String), S3Error> {
    let invalid = || {
        S3Error::new(ErrorCode::InvalidArgument)
            .with_message(
                "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            )
            .with_extra("ArgumentName", "x-amz-copy-source")
    };
    let path = value.split_once('?').map_or(value, |(p, _)| p);
    let path = path.strip_prefix('/').unwrap_or(path);
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| invalid())?;
    let (bucket, key) = decoded.split_once('/').ok_or_else(invalid)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(invalid());
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

/// The object `x-amz-copy-source` names, once its `x-amz-copy-source-if-*` conditions hold.
pub async fn copy_source(gw: &Gateway, req: &Request) -> Result<ObjectMeta, S3Error> {
    let source = req.header("x-amz-copy-source").unwrap_or_default();
    let (src_bucket, src_key) = parse_copy_source(source)?;
    let src = match gw.object(&src_bucket, &src_key).await {
        Ok(src) => src,
        Err(GatewayError::NoSuchKey) if req.source_check.is_some() => {
            return Err(S3Error::new(ErrorCode::AccessDenied));
        }
        Err(e) => return Err(S3Error::from(e).with_resource(format!("/{src_bucket}/{src_key}"))),
    };
    req.check_source_acl(&src.owner, src.acl.as_deref())?;
    Preconditions::from_copy_source_headers(&req.headers)
        .evaluate_copy_source(&quoted(&src.etag), src.last_modified)
        .map_err(S3Error::new)?;
    Ok(src)
}

pub async fn copy_object(gw: &Gateway, req: Request) -> S3Result {
    let src = copy_source(gw, &req).await?;
    let (owner, acl) = new_object_access(gw, &req).await?;
    let (src_bucket, src_key) = (src.bucket.clone(), src.key.clone());
    let replace = match req.header("x-amz-metadata-directive") {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("COPY") => false,
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => true,
        Some(_) => {
            return Err(S3Error::new(ErrorCode::InvalidArgument)
                .with_message("Unknown metadata directive.")
                .with_extra("ArgumentName", "x-amz-metadata-directive"));
        }
    };
    // S3 allows a copy onto itself that changes the metadata or the storage class.
    let storage_class = storage_class(&req.headers)?;
    let changes_class = req.headers.contains_key("x-amz-storage-class");
    if !replace && !changes_class && src_bucket == req.bucket() && src_key == req.key() {
        return Err(S3Error::new(ErrorCode::InvalidRequest).with_message(
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location \
             or encryption attributes.",
        ));
    }
    if src.size > MAX_PUT_SIZE {
        return Err(S3Error::new(ErrorCode::InvalidRequest).with_message(format!(
            "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_PUT_SIZE}"
        )));
    }
    // The copy takes the storage class the request names, STANDARD by default, whatever the
    // source's (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).
    let headers = StoredHeaders {
        storage_class,
        ..if replace {
            stored_headers(&req.headers)?
        } else {
            src.headers.clone()
        }
    };
    let new = NewObject {
        bucket: req.bucket().to_owned(),
        key: req.key().to_owned(),
        headers,
        condition: WriteCondition::Always,
        owner,
        acl,
    };
    let object = gw.copy_object(&src, new).await.map_err(|e| match e {
        GatewayError::NoSuchKey => S3Error::new(ErrorCode::NoSuchKey),
        e => S3Error::from(e),
    })?;
    let mut x = XmlWriter::new("CopyObjectResult");
    x.element("LastModified", &iso8601(object.last_modified));
    x.element("ETag", &quoted(&object.etag));
    if let Some(sum) = &object.checksum {
        x.element(
            &format!("Checksum{}", sum.algorithm.as_str()),
            &sum.to_base64(),
        );
    }
    xml_response(StatusCode::OK, x.finish())
}

#[cfg(test)]
mod tests {
    use super::parse_copy_source;

    #[test]
    fn copy_source_forms() {
        let ok = |s: &str| parse_copy_source(s).unwrap();
        assert_eq!(ok("/b/k"), ("b".into(), "k".into()));
        assert_eq!(
            ok("b/k/with/slashes"),
            ("b".into(), "k/with/slashes".into())
        );
        assert_eq!(
            ok("/b/a%20b%2Bc%25d/%C3%A9"),
            ("b".into(), "a b+c%d/é".into())
        );
        assert_eq!(ok("/b/k?versionId=null"), ("b".into(), "k".into()));
        for bad in ["", "/", "/b", "/b/", "b", "/%FF/k"] {
            assert!(parse_copy_source(bad).is_err(), "{bad}");
        }
    }
}
