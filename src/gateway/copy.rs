//! CopyObject: the source's bytes are read through the read path and written as new chunks of
//! the destination through the write path, so a copy is verified like any upload and shares no
//! chunk with its source. (UploadPartCopy is in `multipart.rs`.)

use super::put::Storage;
use super::{BodyChecks, Gateway, GatewayResult, MAX_PUT_SIZE, NewObject};
use crate::checksum::ChecksumAlgorithm;
use crate::meta::ObjectMeta;

impl Gateway {
    /// CopyObject: streams the source's bytes into new chunks of the destination.
    pub async fn copy_object(
        &self,
        source: &ObjectMeta,
        new: NewObject,
    ) -> GatewayResult<ObjectMeta> {
        self.require_bucket(&new.bucket).await?;
        let mut body = self.read(source, 0..source.size).await?;
        let checks = BodyChecks {
            content_length: Some(source.size),
            max_size: MAX_PUT_SIZE,
            ..BodyChecks::default()
        };
        let compute = source
            .checksum
            .as_ref()
            .map_or(ChecksumAlgorithm::Crc64Nvme, |c| c.algorithm);
        let written = self
            .write_body(&mut body, &checks, Some(compute), Storage::InlineIfSmall)
            .await?;
        // A copy of a multipart object is a single-part object: its ETag is its MD5.
        self.commit_object(new, written).await
    }
}
