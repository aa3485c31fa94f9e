//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts and ListMultipartUploads.

use http::{HeaderMap, StatusCode, header};

use super::body::{drain, object_body, read_xml_body};
use super::authorize::new_object_access;
use super::bucket::write_owner;
use super::headers::{
    checksum_header_value, header_value, invalid_checksum_value, stored_headers, write_condition,
};
use super::object::copy_source;
use super::request::{Request, query_number};
use super::response::{S3Result, empty_response, xml_response};
use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumType};
use crate::gateway::multipart::{DeclaredChecksum, MAX_PART_NUMBER, RequestedPart};
use crate::gateway::{Gateway, GatewayError, MAX_PUT_SIZE, NewObject};
use crate::meta::{ObjectMeta, Upload, WriteCondition};
use crate::s3::date::iso8601;
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::xml::{XmlError, XmlWriter, parse_complete_multipart_upload};

/// S3 lists at most 1000 parts or uploads per page.
const MAX_PAGE: usize = 1000;

fn upload_id(req: &Request) -> Result<String, S3Error> {
    Ok(req.query("uploadId").unwrap_or_default().to_owned())
}

async fn find_upload(gw: &Gateway, req: &Request) -> Result<Upload, S3Error> {
    let id = upload_id(req)?;
    Ok(gw.upload(req.bucket(), req.key(), &id).await?)
}


pub async fn create_multipart_upload(gw: &Gateway, req: Request) -> S3Result {
    let (owner, acl) = new_object_access(gw, &req).await?;
    let algorithm = match req.header("x-amz-checksum-algorithm") {
        None => None,
        Some(a) => Some(ChecksumAlgorithm::parse(a).ok_or_else(|| {
            S3Error::new(ErrorCode::InvalidRequest)
                .with_message("Checksum algorithm provided is unsupported.")
        })?),
    };
    let checksum_type = match req.header("x-amz-checksum-type") {
        None => ChecksumType::Composite,
        Some(t) => ChecksumType::parse(t).ok_or_else(|| {
            S3Error::new(ErrorCode::InvalidRequest)
                .with_message("Value for x-amz-checksum-type header is invalid.")
        })?,
    };
    // CRC64NVME exists only as a full-object checksum; SHA digests cannot be combined, so
    // they exist only as composite ones.
    let checksum_type = match (algorithm, checksum_type) {
        (Some(ChecksumAlgorithm::Crc64Nvme), ChecksumType::Composite) => {
            if req.header("x-amz-checksum-type").is_some() {
                return Err(S3Error::new(ErrorCode::InvalidRequest).with_message(
                    "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
                ));
            }
            ChecksumType::FullObject
        }
        (
            Some(a @ (ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256)),
            ChecksumType::FullObject,
        ) => {
            return Err(
                S3Error::new(ErrorCode::InvalidRequest).with_message(format!(
                    "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                    a.as_str().to_ascii_lowercase()
                )),
            );
        }
        (None, ChecksumType::Composite) => ChecksumType::FullObject,
        (_, t) => t,
    };
    let new = NewObject {
        bucket: req.bucket().to_owned(),
        key: req.key().to_owned(),
        headers: stored_headers(&req.headers)?,
        condition: WriteCondition::Always,
        owner,
        acl,
    };
    let upload = gw.create_upload(new, algorithm, checksum_type).await?;
    let mut x = XmlWriter::new("InitiateMultipartUploadResult");
    x.element("Bucket", &upload.bucket);
    x.element("Key", &upload.key);
    x.element("UploadId", &upload.id);
    let mut resp = xml_response(StatusCode::OK, x.finish())?;
    if let Some(a) = algorithm {
        resp.headers_mut()
            .insert("x-amz-checksum-algorithm", header_value(a.as_str()));
        resp.headers_mut()
            .insert("x-amz-checksum-type", header_value(checksum_type.as_str()));
    }
    Ok(resp)
}

fn part_number(req: &Request) -> Result<u32, S3Error> {
    match query_number::<u32>(req, "partNumber")? {
        Some(n) if (1..=MAX_PART_NUMBER).contains(&n) => Ok(n),
        _ => Err(S3Error::new(ErrorCode::InvalidArgument)
            .with_message("Part number must be an integer between 1 and 10000, inclusive")
            .with_extra("ArgumentName", "partNumber")
            .with_extra("ArgumentValue", req.query("partNumber").unwrap_or_default())),
    }
}

pub async fn upload_part(gw: &Gateway, mut req: Request) -> S3Result {
    let number = part_number(&req)?;
    let upload = find_upload(gw, &req).await?;
    let (mut body, checks) = object_body(&mut req, MAX_PUT_SIZE)?;
    let part = match gw.upload_part(&upload, number, &checks, &mut body).await {
        Ok(p) => p,
        Err(e) => {
            drain(&req, &mut body).await;
            return Err(e.into());
        }
    };
    let mut resp = empty_response(StatusCode::OK)?;
    let h = resp.headers_mut();
    h.insert(header::ETAG, header_value(&format!("\"{}\"", part.etag)));
    if let Some(sum) = &part.checksum {
        h.insert(sum.algorithm.header_name(), header_value(&sum.to_base64()));
    }
    Ok(resp)
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against a source of `size` bytes.
fn copy_source_range(value: Option<&str>, size: u64) -> Result<std::ops::Range<u64>, S3Error> {
    let Some(value) = value else {
        return Ok(0..size);
    };
    let invalid = || {
        S3Error::new(ErrorCode::InvalidArgument)
            .with_message(format!(
                "Range specified is not valid for source object of size: {size}"
            ))
            .with_extra("ArgumentName", "x-amz-copy-source-range")
            .with_extra("ArgumentValue", value)
    };
    let (first, last) = value
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    // A well-formed range that does not fit the source is InvalidRange, as S3 answers it (and
    // as ceph's s3-tests expect); a malformed one stays InvalidArgument.
    if last >= size {
        return Err(S3Error::new(ErrorCode::InvalidRange)
            .with_extra("RangeRequested", value)
            .with_extra("ActualObjectSize", size.to_string()));
    }
    Ok(first..last + 1)
}

pub async fn upload_part_copy(gw: &Gateway, req: Request) -> S3Result {
    let number = part_number(&req)?;
    let upload = find_upload(gw, &req).await?;
    let source = copy_source(gw, &req).await?;
    let range = copy_source_range(req.header("x-amz-copy-source-range"), source.size)?;
    if range.end - range.start > MAX_PUT_SIZE {
        return Err(
            S3Error::new(ErrorCode::InvalidRequest).with_message(format!(
                "The specified copy range is larger than the maximum part size: {MAX_PUT_SIZE}"
            )),
        );
    }
    let part = gw.upload_part_copy(&upload, number, &source, range).await?;
    let mut x = XmlWriter::new("CopyPartResult");
    x.element("LastModified", &iso8601(part.last_modified));
    x.element("ETag", &format!("\"{}\"", part.etag));
    xml_response(StatusCode::OK, x.finish())
}

/// The checksum of the whole object declared on a CompleteMultipartUpload, taken out of the
/// headers: there `x-amz-checksum-*` describes the object being assembled (a composite one as
/// `BASE64-N`), not the XML body, so the body's checks must not see it.
fn take_declared_checksum(
    headers: &mut HeaderMap,
    upload: &Upload,
) -> Result<Option<DeclaredChecksum>, S3Error> {
    if let Some(t) = headers.remove("x-amz-checksum-type") {
        let named = t.to_str().ok().and_then(ChecksumType::parse);
        if named != Some(upload.checksum_type) {
            return Err(
                S3Error::new(ErrorCode::InvalidRequest).with_message(format!(
                    "The upload was created using the {} checksum mode. The complete request \
                 specified the {} checksum mode.",
                    upload.checksum_type.as_str(),
                    String::from_utf8_lossy(t.as_bytes())
                )),
            );
        }
    }
    let mut declared = None;
    for algorithm in ChecksumAlgorithm::ALL {
        let Some(v) = headers.remove(algorithm.header_name()) else {
            continue;
        };
        let invalid = || invalid_checksum_value(algorithm);
        let text = v.to_str().map_err(|_| invalid())?.trim();
        let (value, parts) = match text.rsplit_once('-') {
            Some((value, n)) => (value, Some(n.parse::<u32>().map_err(|_| invalid())?)),
            None => (text, None),
        };
        let checksum = Checksum::from_base64(algorithm, value).ok_or_else(invalid)?;
        if declared
            .replace(DeclaredChecksum { checksum, parts })
            .is_some()
        {
            return Err(S3Error::new(ErrorCode::InvalidRequest).with_message(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            ));
        }
    }
    Ok(declared)
}

/// The CompleteMultipartUploadResult for `object`; `checksum` says whether to name its checksum.
fn complete_result(object: &ObjectMeta, checksum: bool) -> S3Result {
    let mut x = XmlWriter::new("CompleteMultipartUploadResult");
    x.element("Location", &format!("/{}/{}", object.bucket, object.key));
    x.element("Bucket", &object.bucket);
    x.element("Key", &object.key);
    x.element("ETag", &format!("\"{}\"", object.etag));
    if let Some((name, value)) = checksum_header_value(object)
        && checksum
    {
        let element = format!(
            "Checksum{}",
            name.trim_start_matches("x-amz-checksum-")
                .to_ascii_uppercase()
        );
        x.element(&element, &value);
        x.element("ChecksumType", object.checksum_type.as_str());
    }
    xml_response(StatusCode::OK, x.finish())
}

pub async fn complete_multipart_upload(gw: &Gateway, mut req: Request) -> S3Result {
    let id = upload_id(&req)?;
    let upload = match gw.upload(req.bucket(), req.key(), &id).await {
        Ok(upload) => upload,
        Err(GatewayError::NoSuchUpload) => {
            // A retry of a completion that succeeded (its answer lost, say, to a timeout)
            // answers the same success while the object it made is still the key's.
            let Some(object) = gw.completed_upload(req.bucket(), req.key(), &id).await? else {
                return Err(S3Error::new(ErrorCode::NoSuchUpload));
            };
            for algorithm in ChecksumAlgorithm::ALL {
                req.headers.remove(algorithm.header_name());
            }
            read_xml_body(&mut req).await?;
            return complete_result(&object, true);
        }
        Err(e) => return Err(e.into()),
    };
    let condition = write_condition(&req.headers)?;
    let declared = take_declared_checksum(&mut req.headers, &upload)?;
    let body = read_xml_body(&mut req).await?;
    let parts = parse_complete_multipart_upload(&body).map_err(|e| match e {
        XmlError::InvalidPartNumber(_) => S3Error::new(ErrorCode::InvalidArgument)
            .with_message("PartNumber must be >= 1")
            .with_extra("ArgumentName", "PartNumber"),
        e => S3Error::new(ErrorCode::MalformedXML).with_message(e.to_string()),
    })?;
    let requested: Vec<RequestedPart> = parts
        .into_iter()
        .map(|p| RequestedPart {
            number: p.part_number,
            etag: p.etag,
            checksum: p
                .checksums
                .into_iter()
                .find(|(a, _)| Some(*a) == upload.checksum_algorithm)
                .map(|(_, v)| v),
        })
        .collect();
    let object = gw
        .complete_upload(&upload, &requested, declared.as_ref(), &condition)
        .await?;
    complete_result(
        &object,
        upload.checksum_algorithm.is_some() || declared.is_some(),
    )
}

pub async fn abort_multipart_upload(gw: &Gateway, req: Request) -> S3Result {
    let upload = find_upload(gw, &req).await?;
    gw.abort_upload(&upload).await?;
    empty_response(StatusCode::NO_CONTENT)
}

pub async fn list_parts(gw: &Gateway, req: Request) -> S3Result {
    let upload = find_upload(gw, &req).await?;
    let max_parts = query_number::<usize>(&req, "max-parts")?
        .unwrap_or(MAX_PAGE)
        .min(MAX_PAGE);
    let marker = query_number::<u32>(&req, "part-number-marker")?.unwrap_or(0);
    let mut parts = gw.list_parts(&upload.id, marker, max_parts + 1).await?;
    let truncated = parts.len() > max_parts;
    parts.truncate(max_parts);

    let mut x = XmlWriter::new("ListPartsResult");
    x.element("Bucket", &upload.bucket);
    x.element("Key", &upload.key);
    x.element("UploadId", &upload.id);
    let accounts = gw.access().accounts().await?;
    write_owner(&mut x, "Initiator", &upload.owner, &accounts);
    write_owner(&mut x, "Owner", &upload.owner, &accounts);
    x.element("StorageClass", upload.headers.storage_class());
    x.element("PartNumberMarker", &marker.to_string());
    if let Some(last) = parts.last() {
        x.element("NextPartNumberMarker", &last.number.to_string());
    }
    x.element("MaxParts", &max_parts.to_string());
    x.element("IsTruncated", if truncated { "true" } else { "false" });
    if let Some(a) = upload.checksum_algorithm {
        x.element("ChecksumAlgorithm", a.as_str());
    }
    for p in &parts {
        x.open("Part");
        x.element("PartNumber", &p.number.to_string());
        x.element("LastModified", &iso8601(p.last_modified));
        x.element("ETag", &format!("\"{}\"", p.etag));
        x.element("Size", &p.size.to_string());
        if let Some(sum) = &p.checksum {
            x.element(
                &format!("Checksum{}", sum.algorithm.as_str()),
                &sum.to_base64(),
            );
        }
        x.close("Part");
    }
    xml_response(StatusCode::OK, x.finish())
}

pub async fn list_multipart_uploads(gw: &Gateway, req: Request) -> S3Result {
    let prefix = req.query("prefix").unwrap_or_default();
    let key_marker = req.query("key-marker").unwrap_or_default();
    // An upload-id-marker only counts together with a key-marker; a key-marker alone starts
    // after every upload of that key (upload ids are lowercase hex, all below "~").
    let upload_id_marker = match (key_marker.is_empty(), req.query("upload-id-marker")) {
        (true, _) => "",
        (false, Some(id)) if !id.is_empty() => id,
        (false, _) => "~",
    };
    let max_uploads = query_number::<usize>(&req, "max-uploads")?
        .unwrap_or(MAX_PAGE)
        .min(MAX_PAGE);
    let page = gw
        .list_uploads(
            req.bucket(),
            prefix,
            key_marker,
            upload_id_marker,
            max_uploads,
        )
        .await?;

    let accounts = gw.access().accounts().await?;
    let mut x = XmlWriter::new("ListMultipartUploadsResult");
    x.element("Bucket", req.bucket());
    x.element("KeyMarker", key_marker);
    x.element(
        "UploadIdMarker",
        req.query("upload-id-marker").unwrap_or_default(),
    );
    if let Some(last) = page.uploads.last() {
        x.element("NextKeyMarker", &last.key);
        x.element("NextUploadIdMarker", &last.id);
    }
    x.element("Prefix", prefix);
    x.element("MaxUploads", &max_uploads.to_string());
    x.element("IsTruncated", if page.truncated { "true" } else { "false" });
    for u in &page.uploads {
        x.open("Upload");
        x.element("Key", &u.key);
        x.element("UploadId", &u.id);
        write_owner(&mut x, "Initiator", &u.owner, &accounts);
        write_owner(&mut x, "Owner", &u.owner, &accounts);
        x.element("StorageClass", u.headers.storage_class());
        x.element("Initiated", &iso8601(u.initiated));
        if let Some(a) = u.checksum_algorithm {
            x.element("ChecksumAlgorithm", a.as_str());
        }
        x.close("Upload");
    }
    xml_response(StatusCode::OK, x.finish())
}
