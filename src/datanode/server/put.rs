//! The upload path of `PUT /chunks/{id}`: refuse an id already stored (chunks never change;
//! only a delete, which the coordinator alone sends, frees an id), reserve room for the chunk,
//! stream its body to a new chunk file while computing its CRC32C, and commit only once the
//! CRC32C the client sent (header or trailer) matches and the body's HMAC (`x-cairn-body-auth`,
//! trailer or header) covers the bytes received, counting the chunk's bytes in the same step.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::chunk::ChunkId;
use crate::datanode::auth::BODY_AUTH_HEADER;
use crate::datanode::{Caching, ChunkError, ChunkStore};

use super::response::{insert, insufficient_storage, text};
use super::{
    CACHE_HEADER, CRC_HEADER, DROP_BEHIND, LENGTH_HEADER, Node, RESERVE_HEADER, Response,
    UPLOAD_STALL, Upload, stored_size,
};

impl Node {
    pub(super) async fn put_chunk(
        &self,
        id: ChunkId,
        upload: Upload<'_>,
        headers: &HeaderMap,
        mut body: Incoming,
    ) -> Result<Response, ChunkError> {
        // Refused before a byte of the body is read; checked again at commit, under the id's
        // lock, for an upload of the same id that committed meanwhile.
        if stored_size(&self.store, id).await?.is_some() {
            return Ok(self.conflict(&upload));
        }
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
        let mut body_auth: Vec<HeaderValue> =
            headers.get_all(BODY_AUTH_HEADER).iter().cloned().collect();
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
                    let Ok(trailers) = frame.into_trailers() else {
                        continue;
                    };
                    if let Some(value) = trailers.get(CRC_HEADER) {
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
                    body_auth.extend(trailers.get_all(BODY_AUTH_HEADER).iter().cloned());
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

        // Every body signature sent must cover the body received, and one must be sent.
        let method = Method::PUT.as_str();
        let mut verified = Err(crate::datanode::auth::AuthError::MissingBody);
        for value in &body_auth {
            verified = self.key.verify_body(
                method,
                upload.target,
                upload.signed,
                received,
                crc,
                Some(value.to_str().unwrap_or_default()),
            );
            if verified.is_err() {
                break;
            }
        }
        if let Err(err) = verified {
            self.audit_refusal(upload.peer, &Method::PUT, upload.target, &err);
            return Ok(text(StatusCode::FORBIDDEN, err.to_string()));
        }

        let _ordered = self.id_lock(id).lock().await;
        if stored_size(&self.store, id).await?.is_some() {
            return Ok(self.conflict(&upload));
        }
        let len = writer.commit().await?;
        reservation.commit(len);
        let mut resp = text(StatusCode::CREATED, "stored");
        insert(&mut resp, CRC_HEADER, format!("{crc:08x}"));
        insert(&mut resp, LENGTH_HEADER, len.to_string());
        Ok(resp)
    }
}

impl Node {
    fn conflict(&self, upload: &Upload<'_>) -> Response {
        let reason = "the chunk id is stored already: chunks are immutable";
        self.audit_refusal(upload.peer, &Method::PUT, upload.target, &reason);
        text(StatusCode::CONFLICT, reason)
    }
}

/// An `x-cairn-crc32c` header or trailer: exactly 8 hex digits.
pub fn parse_crc(value: &HeaderValue) -> Option<u32> {
    let text = value.to_str().ok()?;
    // Hex digits only: `from_str_radix` would also take a leading `+`.
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}
