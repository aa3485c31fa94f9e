//! Cairn: an S3-compatible object store for files too large for one machine.
//!
//! A request flows `s3::server` (HTTP, authentication) → `s3::router` (which operation) →
//! `s3::handlers` (S3 semantics, XML) → `gateway` (the object service) → `meta` (the map from
//! keys to chunks, one transaction per change) and `datanode` (chunk bytes on disk).
//!
//! Glossary:
//! - *object*: the visible bytes and metadata under a bucket and key;
//! - *upload*: a multipart upload in progress, made of *parts* numbered 1 to 10,000;
//! - *chunk*: an immutable run of at most `chunk_size` bytes of one object or part, stored as one
//!   file with a CRC32C per 64 KiB block; objects and parts are cut into chunks as they stream in;
//! - *owner*: the object or part a chunk belongs to, at a byte offset within it.

pub mod audit;
pub mod bench;
pub mod checksum;
pub mod chunk;
pub mod cli;
pub mod client;
pub mod config;
pub mod coordinator;
pub mod datanode;
pub mod gateway;
pub mod iam;
pub mod limits;
pub mod meta;
pub mod net;
pub mod s3;
