//! Building the responses handlers answer with: the body type the server sends (a whole buffer
//! or a stream from the object service) and the XML and empty responses of most operations.

use std::io;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;

use super::error::internal;
use crate::gateway::ByteStream;
use crate::s3::error::S3Error;

pub type Body = UnsyncBoxBody<Bytes, io::Error>;
pub type Response = http::Response<Body>;
pub type S3Result = Result<Response, S3Error>;

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn stream_body(stream: ByteStream) -> Body {
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

pub fn xml_response(status: StatusCode, xml: String) -> S3Result {
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml")
        .header(header::CONTENT_LENGTH, xml.len())
        .body(full(xml))
        .map_err(internal)
}

pub fn empty_response(status: StatusCode) -> S3Result {
    http::Response::builder()
        .status(status)
        .body(empty())
        .map_err(internal)
}
