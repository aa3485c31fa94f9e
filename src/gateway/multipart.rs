//! Multipart uploads: each part is written to its own chunks like a small PutObject; completing
//! an upload only rewrites metadata (the parts' chunks change owner), so no byte is copied.

use crate::checksum::Md5;
use uuid::Uuid;

use super::put::Storage;
use super::{
    BodyChecks, ByteStream, Gateway, GatewayError, GatewayResult, MAX_PUT_SIZE, NewObject,
    not_found_bucket, now,
};
use crate::checksum::{self, Checksum, ChecksumAlgorithm, ChecksumType, Checksummer};
use crate::meta::{MetaError, ObjectMeta, Part, Upload, WriteCondition};

/// A part as CompleteMultipartUpload names it.
#[derive(Clone, Debug)]
pub struct RequestedPart {
    pub number: u32,
    pub etag: String,
    /// The part's checksum in the upload's algorithm, base64, when the client sent it.
    pub checksum: Option<String>,
}

/// The checksum of the whole object that a client declares when it completes an upload (the
/// `x-amz-checksum-*` header of CompleteMultipartUpload), with the part count of a composite
/// checksum's `-N` suffix when it carries one.
#[derive(Clone, Debug)]
pub struct DeclaredChecksum {
    pub checksum: Checksum,
    pub parts: Option<u32>,
}

/// The checksum of a multipart object from its parts' checksums: the CRCs combined for
/// FULL_OBJECT, or the checksum of the concatenated part checksums for COMPOSITE. None when a
/// part lacks a checksum of the upload's algorithm.
fn object_checksum(upload: &Upload, parts: &[Part]) -> Option<Checksum> {
    let algorithm = upload
        .checksum_algorithm
        .unwrap_or(ChecksumAlgorithm::Crc64Nvme);
    let sums: Vec<&Checksum> = parts
        .iter()
        .map(|p| p.checksum.as_ref().filter(|c| c.algorithm == algorithm))
        .collect::<Option<_>>()?;
    let value = match upload.checksum_type {
        ChecksumType::Composite => {
            let mut summer = Checksummer::new(algorithm);
            for sum in &sums {
                summer.update(&sum.value);
            }
            summer.finalize()
        }
        ChecksumType::FullObject => {
            let mut iter = parts.iter().zip(&sums);
            let (_, first) = iter.next()?;
            let mut value = first.value.clone();
            for (part, sum) in iter {
                value = checksum::combine(algorithm, &value, &sum.value, part.size)?;
            }
            value
        }
    };
    Some(Checksum { algorithm, value })
}

/// Compares the checksum a client declared at completion with the one computed from the parts,
/// before anything is committed.
fn check_declared(declared: &DeclaredChecksum, object: &ObjectMeta) -> GatewayResult<()> {
    let got = declared.checksum.algorithm;
    let Some(computed) = &object.checksum else {
        return Err(GatewayError::ChecksumMismatch(got));
    };
    if computed.algorithm != got {
        return Err(GatewayError::ChecksumAlgorithmMismatch {
            expected: computed.algorithm,
            got,
        });
    }
    let parts_match = declared.parts.is_none_or(|n| Some(n) == object.parts_count);
    if computed.value != declared.checksum.value || !parts_match {
        return Err(GatewayError::ChecksumMismatch(got));
    }
    Ok(())
}

/// S3's smallest part, except the last one of an upload.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's part numbers run from 1 to 10,000.
pub const MAX_PART_NUMBER: u32 = 10_000;

impl Gateway {
    pub async fn create_upload(
        &self,
        new: NewObject,
        checksum_algorithm: Option<ChecksumAlgorithm>,
        checksum_type: ChecksumType,
    ) -> GatewayResult<Upload> {
        let upload = Upload {
            id: Uuid::new_v4().simple().to_string(),
            bucket: new.bucket,
            key: new.key,
            initiated: now(),
            headers: new.headers,
            checksum_algorithm,
            checksum_type,
            owner: new.owner,
            acl: new.acl,
        };
        self.meta
            .create_upload(&upload)
            .await
            .map_err(not_found_bucket)?;
        Ok(upload)
    }

    /// The upload `upload_id`, if it exists and belongs to `bucket`/`key`.
    pub async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> GatewayResult<Upload> {
        match self.meta.upload(upload_id).await? {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => {
                self.require_bucket(bucket).await?;
                Err(GatewayError::NoSuchUpload)
            }
        }
    }

    /// The object that upload `upload_id` of `bucket`/`key` made, when the upload was completed
    /// recently and its object is still the key's: a CompleteMultipartUpload retried after it
    /// succeeded answers the same success again, as S3 does, instead of NoSuchUpload.
    pub async fn completed_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> GatewayResult<Option<ObjectMeta>> {
        let object = self.meta.completed_upload(upload_id).await?;
        Ok(object.filter(|o| o.bucket == bucket && o.key == key))
    }

    pub async fn upload_part(
        &self,
        upload: &Upload,
        number: u32,
        checks: &BodyChecks,
        body: &mut ByteStream,
    ) -> GatewayResult<Part> {
        let checks = BodyChecks {
            max_size: MAX_PUT_SIZE,
            ..checks.clone()
        };
        let declared = checks
            .checksum
            .as_ref()
            .map(|c| c.algorithm)
            .or(checks.trailing_checksum.as_ref().map(|t| t.algorithm));
        if let (Some(expected), Some(got)) = (upload.checksum_algorithm, declared)
            && expected != got
        {
            return Err(GatewayError::ChecksumAlgorithmMismatch { expected, got });
        }
        // Without an algorithm chosen, parts still get a CRC64NVME so that the object gets a
        // full-object CRC64NVME at completion, as on S3.
        let compute = upload
            .checksum_algorithm
            .unwrap_or(ChecksumAlgorithm::Crc64Nvme);
        // Parts are always chunked: completion hands their chunks to the object.
        let written = self
            .write_body(body, &checks, Some(compute), Storage::Chunks)
            .await?;
        let part = Part {
            number,
            owner: Uuid::new_v4(),
            size: written.size,
            etag: hex::encode(written.md5),
            last_modified: now(),
            checksum: written.checksum,
        };
        self.meta
            .put_part(&upload.id, &part, &written.chunks, self.gc_due())
            .await
            .map_err(not_found_bucket)?;
        written.guard.disarm();
        Ok(part)
    }

    /// UploadPartCopy: streams `range` of `source` into a new part.
    pub async fn upload_part_copy(
        &self,
        upload: &Upload,
        number: u32,
        source: &ObjectMeta,
        range: std::ops::Range<u64>,
    ) -> GatewayResult<Part> {
        let checks = BodyChecks {
            content_length: Some(range.end - range.start),
            ..BodyChecks::default()
        };
        let mut body = self.read(source, range).await?;
        self.upload_part(upload, number, &checks, &mut body).await
    }

    /// Every stored part of an upload, in order.
    pub async fn all_parts(&self, upload_id: &str) -> GatewayResult<Vec<Part>> {
        let mut parts = Vec::new();
        loop {
            let after = parts.last().map_or(0, |p: &Part| p.number);
            let page = self.meta.list_parts(upload_id, after, 1000).await?;
            if page.is_empty() {
                return Ok(parts);
            }
            parts.extend(page);
        }
    }

    pub async fn list_parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> GatewayResult<Vec<Part>> {
        Ok(self.meta.list_parts(upload_id, after, limit).await?)
    }

    /// CompleteMultipartUpload with the part list the client sent.
    pub async fn complete_upload(
        &self,
        upload: &Upload,
        requested: &[RequestedPart],
        declared: Option<&DeclaredChecksum>,
        condition: &WriteCondition,
    ) -> GatewayResult<ObjectMeta> {
        if requested.is_empty() {
            return Err(GatewayError::NoParts);
        }
        self.check_condition(&upload.bucket, &upload.key, condition)
            .await?;
        let stored = self.all_parts(&upload.id).await?;
        let mut chosen: Vec<Part> = Vec::with_capacity(requested.len());
        for wanted in requested {
            let number = wanted.number;
            if chosen.last().is_some_and(|p| p.number >= number) {
                return Err(GatewayError::InvalidPartOrder);
            }
            let part = stored
                .binary_search_by_key(&number, |p| p.number)
                .ok()
                .map(|i| &stored[i])
                .filter(|p| p.etag == wanted.etag.trim_matches('"'))
                .filter(|p| match (&wanted.checksum, &p.checksum) {
                    (None, _) => true,
                    (Some(given), Some(stored)) => *given == stored.to_base64(),
                    (Some(_), None) => false,
                })
                .ok_or(GatewayError::InvalidPart(number))?;
            chosen.push(part.clone());
        }
        if let Some((_, all_but_last)) = chosen.split_last()
            && let Some(small) = all_but_last.iter().find(|p| p.size < MIN_PART_SIZE)
        {
            return Err(GatewayError::EntityTooSmall {
                number: small.number,
                size: small.size,
            });
        }
        let mut md5s = Md5::new();
        for part in &chosen {
            let raw = hex::decode(&part.etag)
                .map_err(|_| MetaError::Corrupt(format!("part ETag {}", part.etag)))?;
            md5s.update(&raw);
        }
        let object = ObjectMeta {
            id: Uuid::new_v4(),
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            size: chosen.iter().map(|p| p.size).sum(),
            etag: format!("{}-{}", hex::encode(md5s.finalize()), chosen.len()),
            last_modified: now(),
            headers: upload.headers.clone(),
            checksum: object_checksum(upload, &chosen),
            checksum_type: upload.checksum_type,
            parts_count: Some(chosen.len() as u32),
            inline: None,
            owner: upload.owner.clone(),
            acl: upload.acl.clone(),
        };
        if let Some(declared) = declared {
            check_declared(declared, &object)?;
        }
        match self
            .meta
            .complete_upload(&upload.id, &object, &chosen, condition, self.gc_due())
            .await
        {
            Ok(()) => Ok(object),
            Err(MetaError::PartChanged(n)) => Err(GatewayError::InvalidPart(n)),
            Err(e) => Err(not_found_bucket(e)),
        }
    }

    pub async fn abort_upload(&self, upload: &Upload) -> GatewayResult<()> {
        if self.meta.abort_upload(&upload.id, self.gc_due()).await? {
            Ok(())
        } else {
            Err(GatewayError::NoSuchUpload)
        }
    }
}
