//! The S3 protocol: routing, SigV4 and SigV2, aws-chunked bodies, XML, errors, ranges,
//! conditions and dates (pure), the handlers that map operations onto the object service, and
//! the HTTP server around them.

pub mod chunked;
pub mod conditions;
pub mod date;
pub mod error;
pub mod handlers;
pub mod range;
pub mod router;
pub mod server;
pub mod sigv2;
pub mod sigv4;
pub mod xml;
