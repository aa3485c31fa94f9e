//! The upload path of `PUT /chunks/{id}`: reserve room for the chunk, stream its body to a
//! new chunk file while computing its CRC32C, and commit only once the CRC32C the client sent
//! (header or trailer) matches, counting the chunk's bytes in the same step.

use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::chunk::ChunkId;
use crate::datanode::{Caching, ChunkError, ChunkStore};

use super::response::{insert, insufficient_storage, text};
use super::{
    CACHE_HEADER, CRC_HEADER, DROP_BEHIND, LENGTH_HEADER, Node, RESERVE_HEADER, Response,
    UPLOAD_STALL, stored_size,
};

impl Node {
    pub(super) async fn put_chunk(
        &self,
        id: ChunkId,
        headers: &HeaderMap,
        mut body: Incoming,
    ) -> Result<Response, ChunkError> {
        let reserve = match headers.get(RESERVE_HEADER) {
            None => 0,
            Some(value) => match value.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(bytes) => bytes,
                None => return Ok(text(StatusCode::BAD_REQUEST, "malformed x-cairn-reserve")),
            },
        };
        let caching = match headers.get(CACHE_HEADER) {
            None => Caching::Keep,
            Some(value) if value == DROP_BEHIND => Caching::DropBehind,
            Some(_) => return Ok(text(StatusCode::BAD_REQUEST, "malformed x-cairn-cache")),
        };
        let mut claimed = Vec::new();
        if let Some(value) = headers.get(CRC_HEADER) {
            match parse_crc(value) {
                Some(crc) => claimed.push(crc),
                None => return Ok(text(StatusCode::BAD_REQUEST, "malformed x-cairn-crc32c")),
            }
        }
        let Some(mut reservation) = self.usage.reserve(reserve) else {
            return Ok(insufficient_storage());
        };

        let mut writer = self.store.create(id, caching).await?;
        let mut crc = 0u32;
        let mut received = 0u64;
        loop {
            let frame = match tokio::time::timeout(UPLOAD_STALL, body.frame()).await {
                Err(_) => return Ok(text(StatusCode::REQUEST_TIMEOUT, "upload stalled")),
                Ok(None) => break,
                Ok(Some(Err(err))) => {
                    // Usually the client gave up (a dropped writer): nothing is committed.
                    tracing::debug!(%id, error = %err, "upload aborted");
                    return Ok(text(StatusCode::BAD_REQUEST, "upload body ended early"));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    received += data.len() as u64;
                    if !reservation.grow_to(received) {
                        return Ok(insufficient_storage());
                    }
                    crc = crc32c::crc32c_append(crc, &data);
                    writer.write(data).await?;
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers()
                        && let Some(value) = trailers.get(CRC_HEADER)
                    {
                        match parse_crc(value) {
                            Some(sent) => claimed.push(sent),
                            None => {
                                return Ok(text(
                                    StatusCode::BAD_REQUEST,
                                    "malformed x-cairn-crc32c trailer",
                                ));
                            }
                        }
                    }
                }
            }
        }
        if claimed.is_empty() {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "x-cairn-crc32c is required, as a header or a trailer",
            ));
        }
        if let Some(sent) = claimed.iter().find(|sent| **sent != crc) {
            tracing::warn!(%id, sent = %format!("{sent:08x}"), received = %format!("{crc:08x}"), "chunk upload failed its CRC32C");
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("x-cairn-crc32c mismatch: sent {sent:08x}, received {crc:08x}"),
            ));
        }

        let _ordered = self.id_lock(id).lock().await;
        let previous = stored_size(&self.store, id).await?;
        let len = writer.commit().await?;
        reservation.commit(len, previous);
        let mut resp = text(StatusCode::CREATED, "stored");
        insert(&mut resp, CRC_HEADER, format!("{crc:08x}"));
        insert(&mut resp, LENGTH_HEADER, len.to_string());
        Ok(resp)
    }
}

fn parse_crc(value: &HeaderValue) -> Option<u32> {
    let text = value.to_str().ok()?;
    if text.len() != 8 {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}
