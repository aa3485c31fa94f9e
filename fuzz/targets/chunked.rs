//! The aws-chunked decoder, all four variants (signed, signed with a trailer, unsigned with a
//! trailer, plain framing), fed in pieces of any size:
//! - any body decodes to an error or to at most as many bytes as it holds, without panicking,
//!   and the decoded bytes and trailers do not depend on where the body was split;
//! - a body encoded correctly from any data, cut into any chunk sizes, with or without a
//!   checksum trailer, decodes to exactly that data and trailer.
//!
//! Input fields: variant and mode, declared trailers, piece sizes, then the body (raw mode) or
//! the data and its chunk sizes (encoding mode).

use std::io;
use std::task::{Context, Poll, Waker};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use cairn::gateway::ByteStream;
use cairn::s3::chunked::{self, ChunkedMode, parse_trailer_header};
use cairn::s3::sigv4;
use futures_util::stream;
use sha2::{Digest, Sha256};

use crate::input::Fields;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20130524T000000Z";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const CRC32: &str = "x-amz-checksum-crc32";

pub fn run(data: &[u8]) {
    let mut f = Fields::new(data);
    let selector = f.bytes().first().copied().unwrap_or(0);
    let declared = f.text();
    let pieces = f.bytes();
    let body = f.bytes();
    let sizes = f.bytes();
    let (signed, trailer) = ((selector & 1) == 1, (selector & 2) == 2);
    let mode = if signed {
        ChunkedMode::Signed {
            signing_key: key(),
            amz_date: DATE.to_owned(),
            scope: SCOPE.to_owned(),
            seed_signature: SEED.to_owned(),
            trailer,
        }
    } else {
        ChunkedMode::Unsigned { trailer }
    };
    if selector & 4 == 0 {
        let declared = if declared.is_empty() {
            Vec::new()
        } else {
            match parse_trailer_header(&declared) {
                Ok(names) => names,
                Err(_) => return,
            }
        };
        let whole = decode(body, &[], &mode, &declared);
        let split = decode(body, pieces, &mode, &declared);
        if let Ok((data, _)) = &whole {
            assert!(data.len() <= body.len(), "decoded more than the body held");
        }
        assert_eq!(
            whole.as_ref().map_err(|_| ()),
            split.as_ref().map_err(|_| ()),
            "the outcome depends on how the body was split"
        );
    } else {
        round_trip(body, sizes, pieces, &mode, signed, trailer);
    }
}

fn key() -> [u8; 32] {
    sigv4::signing_key(SECRET, "20130524", "us-east-1", "s3")
}

/// Encodes `data` in chunks whose sizes come from `sizes`, decodes it, and checks it comes back.
fn round_trip(
    data: &[u8],
    sizes: &[u8],
    pieces: &[u8],
    mode: &ChunkedMode,
    signed: bool,
    trailer: bool,
) {
    let mut chunks = Vec::new();
    let mut rest = data;
    let sizes = if sizes.is_empty() {
        &[u8::MAX][..]
    } else {
        sizes
    };
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let take = (usize::from(*size) + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        chunks.push(chunk);
        rest = tail;
    }
    let checksum = STANDARD.encode(crc32fast_hash(data).to_be_bytes());
    let trailers = trailer.then_some((CRC32, checksum.as_str()));
    let body = if signed {
        signed_body(&chunks, trailers)
    } else {
        unsigned_body(&chunks, trailers)
    };
    let declared: Vec<String> = trailers
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    let decoded = decode(&body, pieces, mode, &declared);
    let expected_trailers: Vec<(String, String)> = trailers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    match decoded {
        Ok((out, got)) => {
            assert_eq!(out, data, "decoded data differs");
            assert_eq!(got, expected_trailers, "decoded trailers differ");
        }
        Err(e) => panic!("a well-formed body was refused: {e}"),
    }
}

/// The CRC32 (IEEE) of `data`, computed here bit by bit: the trailer's value, independent of
/// the crate Cairn uses.
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chain_sign(previous: &mut String, to_sign: &str) -> String {
    *previous = sigv4::signature(&key(), to_sign);
    previous.clone()
}

fn signed_body(chunks: &[&[u8]], trailer: Option<(&str, &str)>) -> Vec<u8> {
    let empty = hex::encode(Sha256::digest(b""));
    let mut previous = SEED.to_owned();
    let mut body = Vec::new();
    for data in chunks.iter().copied().chain([&b""[..]]) {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{previous}\n{empty}\n{}",
            hex::encode(Sha256::digest(data))
        );
        let signature = chain_sign(&mut previous, &to_sign);
        body.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", data.len()).as_bytes(),
        );
        if !data.is_empty() {
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
    }
    if let Some((name, value)) = trailer {
        body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
        let to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{previous}\n{}",
            hex::encode(Sha256::digest(format!("{name}:{value}\n").as_bytes()))
        );
        let signature = chain_sign(&mut previous, &to_sign);
        body.extend_from_slice(format!("x-amz-trailer-signature:{signature}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body
}

fn unsigned_body(chunks: &[&[u8]], trailer: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = Vec::new();
    for data in chunks {
        body.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    if let Some((name, value)) = trailer {
        body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body
}

type Decoded = Result<(Vec<u8>, Vec<(String, String)>), String>;

/// Runs the decoder to its end over `body` cut after each length in `pieces` (cycled; the whole
/// body at once when empty). Every piece is ready at once, so a no-op waker suffices.
fn decode(body: &[u8], pieces: &[u8], mode: &ChunkedMode, declared: &[String]) -> Decoded {
    let mut parts = Vec::new();
    let mut rest = body;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let take = match sizes.next() {
            Some(size) => (usize::from(*size) + 1).min(rest.len()),
            None => rest.len(),
        };
        let (part, tail) = rest.split_at(take);
        parts.push(Ok::<_, io::Error>(Bytes::copy_from_slice(part)));
        rest = tail;
    }
    let input: ByteStream = Box::pin(stream::iter(parts));
    let (mut decoded, trailers) = chunked::decode(input, mode.clone(), declared.to_vec());
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match decoded.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(Ok(bytes))) => out.extend_from_slice(&bytes),
            Poll::Ready(Some(Err(e))) => return Err(e.to_string()),
            Poll::Ready(None) => break,
            Poll::Pending => panic!("the decoder waited on a body that was ready"),
        }
    }
    let trailers = trailers.lock().expect("not poisoned").clone();
    Ok((out, trailers))
}
