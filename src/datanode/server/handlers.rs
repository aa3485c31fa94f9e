//! The other operations of the protocol: ranged reads streamed as verified bytes, the length,
//! delete, the inventory page and the node's health.

use std::io::{self};
use std::ops::Range;

use futures_util::{StreamExt, stream};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::chunk::{ChunkId, whole_blocks};
use crate::datanode::{ChunkError, ChunkStore, ChunkStream};

use super::response::{empty, insert, json, text};
use super::{
    BLOCK_SIZE_HEADER, Body, CORRUPT, ChunkList, DEFAULT_LIST_LIMIT, ERROR_HEADER, LENGTH_HEADER,
    MAX_LIST_LIMIT, Node, NodeHealth, OFFSET_HEADER, Response, WITH_TABLE_HEADER, parse_chunk_id,
    stored_size,
};

impl Node {
    pub(super) async fn get_chunk(
        &self,
        id: ChunkId,
        headers: &HeaderMap,
    ) -> Result<Response, ChunkError> {
        // The table is read first, so that the bytes sent after it are checked against the same
        // table by this node as by the client.
        let table = if headers.contains_key(WITH_TABLE_HEADER) {
            Some(self.store.table(id).await?)
        } else {
            None
        };
        let size = match &table {
            Some(table) => table.data_len,
            None => self.store.len(id).await?.ok_or(ChunkError::NotFound(id))?,
        };
        let range = match headers.get(header::RANGE) {
            None => None,
            Some(value) => match parse_range(value.to_str().unwrap_or_default(), size) {
                Ok(range) => Some(range),
                Err(RangeError::Malformed) => {
                    return Ok(text(StatusCode::BAD_REQUEST, "malformed Range"));
                }
                Err(RangeError::Unsatisfiable) => {
                    let mut resp = text(StatusCode::RANGE_NOT_SATISFIABLE, "range outside chunk");
                    insert(&mut resp, LENGTH_HEADER, size.to_string());
                    insert(
                        &mut resp,
                        header::CONTENT_RANGE.as_str(),
                        format!("bytes */{size}"),
                    );
                    return Ok(resp);
                }
            },
        };
        let wanted = range.clone().unwrap_or(0..size);
        let sent = match &table {
            Some(table) => whole_blocks(&wanted, table.block_size, size),
            None => wanted,
        };
        let mut stream = self.store.read(id, sent.clone(), None).await?;
        let mut body_len = sent.end - sent.start;
        if let Some(table) = &table {
            body_len += table.crcs.len() as u64;
            let crcs = stream::once(std::future::ready(Ok(table.crcs.clone())));
            stream = Box::pin(crcs.chain(stream));
        }
        // A client that accepts trailers learns of damage found mid-stream as a `corrupt`
        // trailer; for any other the connection is cut, which it cannot take for a whole body.
        let trailers = headers
            .get_all(header::TE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("trailers"));
        let mut resp = http::Response::new(chunk_body(id, stream, trailers));
        insert(&mut resp, LENGTH_HEADER, size.to_string());
        if let Some(table) = &table {
            insert(&mut resp, BLOCK_SIZE_HEADER, table.block_size.to_string());
        }
        if trailers {
            insert(
                &mut resp,
                header::TRAILER.as_str(),
                format!("{ERROR_HEADER}, {OFFSET_HEADER}"),
            );
        } else {
            insert(
                &mut resp,
                header::CONTENT_LENGTH.as_str(),
                body_len.to_string(),
            );
        }
        if range.is_some() {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let last = sent.end - 1;
            insert(
                &mut resp,
                header::CONTENT_RANGE.as_str(),
                format!("bytes {}-{last}/{size}", sent.start),
            );
        }
        Ok(resp)
    }

    pub(super) async fn head_chunk(&self, id: ChunkId) -> Result<Response, ChunkError> {
        let size = self.store.len(id).await?.ok_or(ChunkError::NotFound(id))?;
        let mut resp = http::Response::new(empty());
        insert(&mut resp, LENGTH_HEADER, size.to_string());
        Ok(resp)
    }

    pub(super) async fn delete_chunk(&self, id: ChunkId) -> Result<Response, ChunkError> {
        let _ordered = self.id_lock(id).lock().await;
        let previous = stored_size(&self.store, id).await?;
        self.store.delete(id).await?;
        if let Some(size) = previous {
            self.usage.removed(size);
        }
        let mut resp = http::Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Ok(resp)
    }

    pub(super) async fn list_chunks(&self, query: &str) -> Result<Response, ChunkError> {
        let Some((after, limit)) = parse_list_query(query) else {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "expected ?after=<chunk id>&limit=<count>",
            ));
        };
        let ids = self.store.list(after, limit).await?;
        Ok(json(&ChunkList {
            chunks: ids.iter().map(ChunkId::to_string).collect(),
        }))
    }

    pub(super) fn health(&self) -> Response {
        let counts = *self.usage.counts();
        json(&NodeHealth {
            node_id: self.id.hyphenated().to_string(),
            zone: self.zone.clone(),
            capacity: self.usage.capacity,
            used: counts.used,
            free: self.usage.free(&counts),
            chunk_count: counts.chunks,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    Malformed,
    Unsatisfiable,
}

/// A `Range: bytes=a-b` (inclusive) or `bytes=a-` header as a half-open range within a chunk
/// of `size` bytes. Only single ranges exist in this protocol, and a range reaching past the
/// end is the caller's error rather than something to clamp.
pub fn parse_range(value: &str, size: u64) -> Result<Range<u64>, RangeError> {
    let spec = value.strip_prefix("bytes=").ok_or(RangeError::Malformed)?;
    let (first, last) = spec.split_once('-').ok_or(RangeError::Malformed)?;
    let number = |text: &str| -> Result<u64, RangeError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RangeError::Malformed);
        }
        text.parse().map_err(|_| RangeError::Malformed)
    };
    let start = number(first)?;
    let end = if last.is_empty() {
        size
    } else {
        let last = number(last)?;
        if last < start {
            return Err(RangeError::Malformed);
        }
        last.checked_add(1).ok_or(RangeError::Unsatisfiable)?
    };
    if start >= size || end > size {
        return Err(RangeError::Unsatisfiable);
    }
    Ok(start..end)
}

/// The `after` and `limit` of an inventory request.
pub fn parse_list_query(query: &str) -> Option<(Option<ChunkId>, usize)> {
    let mut after = None;
    let mut limit = DEFAULT_LIST_LIMIT;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=')? {
            ("after", id) => after = Some(parse_chunk_id(id)?),
            ("limit", n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                limit = n.parse::<usize>().ok()?.min(MAX_LIST_LIMIT);
            }
            _ => return None,
        }
    }
    Some((after, limit))
}

/// The verified bytes of a read as a response body. Damage found mid-stream ends the body with
/// a `corrupt` trailer when the client accepts trailers, and with an error (the connection is
/// cut) otherwise; either way the client never mistakes a cut body for a whole one.
fn chunk_body(id: ChunkId, stream: ChunkStream, trailers: bool) -> Body {
    let frames = stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match stream.next().await? {
            Ok(data) => Some((Ok(Frame::data(data)), Some(stream))),
            Err(err) => {
                let item = match err {
                    ChunkError::Corrupt { offset, .. } if trailers => {
                        tracing::warn!(%id, offset, "corrupt block found while serving a read");
                        let mut fields = HeaderMap::new();
                        fields.insert(ERROR_HEADER, HeaderValue::from_static(CORRUPT));
                        fields.insert(OFFSET_HEADER, HeaderValue::from(offset));
                        Ok(Frame::trailers(fields))
                    }
                    err => {
                        tracing::warn!(%id, error = %err, "read failed mid-stream");
                        Err(io::Error::other(err.to_string()))
                    }
                };
                Some((item, None))
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}
