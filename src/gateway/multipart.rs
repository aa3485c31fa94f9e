//! Multipart uploads: each part is written to its own chunks like a small PutObject; completing
//! an upload only rewrites metadata (the parts' chunks change owner), so no byte is copied.

use md5::{Digest, Md5};
use uuid::Uuid;

use super::{
    BodyChecks, ByteStream, Gateway, GatewayError, GatewayResult, MAX_PUT_SIZE, NewObject,
    not_found_bucket, now,
};
use crate::checksum::ChecksumAlgorithm;
use crate::meta::{MetaError, ObjectMeta, Part, Upload, WriteCondition};

/// S3's smallest part, except the last one of an upload.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's part numbers run from 1 to 10,000.
pub const MAX_PART_NUMBER: u32 = 10_000;

impl Gateway {
    pub async fn create_upload(
        &self,
        new: NewObject,
        checksum_algorithm: Option<ChecksumAlgorithm>,
    ) -> GatewayResult<Upload> {
        let upload = Upload {
            id: Uuid::new_v4().simple().to_string(),
            bucket: new.bucket,
            key: new.key,
            initiated: now(),
            headers: new.headers,
            checksum_algorithm,
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

    pub async fn upload_part(
        &self,
        upload: &Upload,
        number: u32,
        checks: &BodyChecks,
        body: ByteStream,
    ) -> GatewayResult<Part> {
        let checks = BodyChecks {
            max_size: MAX_PUT_SIZE,
            ..checks.clone()
        };
        let written = self
            .write_body(body, &checks, upload.checksum_algorithm)
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
        let body = self.read(source, range);
        self.upload_part(upload, number, &checks, body).await
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

    /// CompleteMultipartUpload with the (part number, ETag) list the client sent.
    pub async fn complete_upload(
        &self,
        upload: &Upload,
        requested: &[(u32, String)],
        condition: &WriteCondition,
    ) -> GatewayResult<ObjectMeta> {
        if requested.is_empty() {
            return Err(GatewayError::NoParts);
        }
        self.check_condition(&upload.bucket, &upload.key, condition)
            .await?;
        let stored = self.all_parts(&upload.id).await?;
        let mut chosen: Vec<Part> = Vec::with_capacity(requested.len());
        for (number, etag) in requested {
            if chosen.last().is_some_and(|p| p.number >= *number) {
                return Err(GatewayError::InvalidPartOrder);
            }
            let part = stored
                .binary_search_by_key(number, |p| p.number)
                .ok()
                .map(|i| &stored[i])
                .filter(|p| p.etag == etag.trim_matches('"'))
                .ok_or(GatewayError::InvalidPart(*number))?;
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
            checksum: None,
            parts_count: Some(chosen.len() as u32),
        };
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
