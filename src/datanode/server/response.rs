//! Responses: the one place chunk-store errors become statuses, and the builders of plain-text
//! and JSON answers.

use std::io::{self};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use crate::datanode::ChunkError;

use super::{Body, CORRUPT, ERROR_HEADER, LENGTH_HEADER, OFFSET_HEADER, Response};

/// The one place chunk-store errors become responses.
pub(super) fn chunk_error_response(method: &Method, target: &str, err: ChunkError) -> Response {
    match err {
        ChunkError::NotFound(_) => text(StatusCode::NOT_FOUND, "chunk not found"),
        ChunkError::Corrupt { id, offset } => {
            tracing::warn!(%id, offset, "corrupt chunk");
            let mut resp = text(StatusCode::INTERNAL_SERVER_ERROR, "chunk is corrupt");
            insert(&mut resp, ERROR_HEADER, CORRUPT.to_owned());
            insert(&mut resp, OFFSET_HEADER, offset.to_string());
            resp
        }
        ChunkError::OutOfRange { size, .. } => {
            let mut resp = text(StatusCode::RANGE_NOT_SATISFIABLE, "range outside chunk");
            insert(&mut resp, LENGTH_HEADER, size.to_string());
            resp
        }
        ChunkError::Full(_) => insufficient_storage(),
        ChunkError::Unavailable(reason) => {
            tracing::warn!(%method, %target, %reason, "chunk storage unavailable");
            text(StatusCode::SERVICE_UNAVAILABLE, "chunk storage unavailable")
        }
        ChunkError::Io(err) if err.kind() == io::ErrorKind::StorageFull => {
            tracing::warn!(%method, %target, error = %err, "disk full");
            insufficient_storage()
        }
        err @ ChunkError::Io(_) => {
            tracing::error!(%method, %target, error = %err, "chunk storage failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "chunk storage failed")
        }
    }
}

pub(super) fn insufficient_storage() -> Response {
    text(
        StatusCode::INSUFFICIENT_STORAGE,
        "not enough capacity left on this data node",
    )
}

pub(super) fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(super) fn empty() -> Body {
    full(Bytes::new())
}

pub(super) fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    let mut resp = http::Response::new(full(message));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub(super) fn json(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = http::Response::new(full(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(err) => {
            tracing::error!(error = %err, "could not encode a response");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not encode response",
            )
        }
    }
}

/// Sets a header whose value this module formats itself (digits, hex, fixed words).
pub(super) fn insert(resp: &mut Response, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        resp.headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}
