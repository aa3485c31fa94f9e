//! The `aws-chunked` request body, as SigV4 streaming uploads and SDKs sending a checksum
//! trailer frame it. [`decode`] streams the object's bytes out of it, verifying every chunk
//! signature in order, then the trailer section and its signature, in memory bounded by the caps
//! below whatever the body size.
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>
//!
//! Invariant for callers: a chunk's signature can only be checked after all its data is hashed,
//! so the stream yields bytes *before* they are verified. Only its successful end (`None`, once
//! [`Trailers`] is filled) says the whole body is authentic and complete; an error item means
//! discard everything. The write path polls to the end and commits nothing before. As a second
//! guard the decoder holds back the last piece of each chunk until the chunk is verified (of the
//! last chunk, until the whole body is), so no consumer ever holds an unverified chunk entire.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::gateway::{ByteStream, MAX_PUT_SIZE};
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::sigv4::{self, Verified, amz_date};

/// Every chunk signed, no trailer.
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// Every chunk signed, then a signed trailer section.
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// Unsigned chunks and trailer: what aws-cli v2 and boto3 >= 1.36 send over HTTPS.
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// A chunk header is `hex-size;chunk-signature=<64 hex>`, under 100 bytes; 4 KiB leaves room
/// for extensions we ignore on unsigned bodies while refusing a header that never ends.
const MAX_HEADER_LINE: usize = 4 << 10;
/// Chunk data streams through, so this bounds no buffer: it rejects a nonsensical size early.
/// No chunk can be larger than the largest body a PutObject or UploadPart accepts.
const MAX_CHUNK_SIZE: u64 = MAX_PUT_SIZE;
/// The trailer section is buffered (its lines are signed together and returned); one checksum
/// and a signature take about 150 bytes.
const MAX_TRAILER_SECTION: usize = 16 << 10;

const CHUNK_SIGNATURE: &[u8] = b"chunk-signature=";
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";
/// Lowercase hex of a SHA-256 digest, hence of a SigV4 signature.
const SIGNATURE_LEN: usize = 64;
/// SHA-256 of the empty string, the "hash of the chunk's headers" line of every chunk's
/// string to sign.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Which of the aws-chunked variants a request body uses, with the signing context needed to
/// verify the signed ones.
#[derive(Clone)]
pub enum ChunkedMode {
    Signed {
        signing_key: [u8; 32],
        /// `YYYYMMDDTHHMMSSZ`, the request's time.
        amz_date: String,
        /// `YYYYMMDD/region/s3/aws4_request`
        scope: String,
        /// The request's own signature, which the first chunk's signature chains from.
        seed_signature: String,
        trailer: bool,
    },
    Unsigned {
        trailer: bool,
    },
}

impl std::fmt::Debug for ChunkedMode {
    // Hand-written so that the signing key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkedMode::Signed {
                amz_date,
                scope,
                trailer,
                ..
            } => f
                .debug_struct("Signed")
                .field("amz_date", amz_date)
                .field("scope", scope)
                .field("trailer", trailer)
                .finish_non_exhaustive(),
            ChunkedMode::Unsigned { trailer } => f
                .debug_struct("Unsigned")
                .field("trailer", trailer)
                .finish(),
        }
    }
}

impl ChunkedMode {
    /// How to decode a body, from its `x-amz-content-sha256` value and whether `Content-Encoding`
    /// names `aws-chunked`. `Ok(None)`: the body is not aws-chunked. A `STREAMING-*` value means
    /// aws-chunked whatever `Content-Encoding` says (minio clients omit it); `UNSIGNED-PAYLOAD` or
    /// a hex digest with `aws-chunked` (Java SDK v2) means framing only, without signatures. The
    /// signed variants need the verified SigV4 credentials (`verified`) they chain from.
    pub fn from_request(
        content_sha256: &str,
        aws_chunked: bool,
        verified: Option<&Verified>,
    ) -> Result<Option<Self>, ChunkedError> {
        let signed = |trailer| {
            let verified = verified.ok_or(ChunkedError::NotSigned)?;
            Ok(Some(ChunkedMode::Signed {
                signing_key: verified.signing_key,
                amz_date: amz_date(verified.date),
                scope: verified.scope.clone(),
                seed_signature: verified.seed_signature.clone(),
                trailer,
            }))
        };
        match content_sha256 {
            STREAMING_SIGNED => signed(false),
            STREAMING_SIGNED_TRAILER => signed(true),
            STREAMING_UNSIGNED_TRAILER => Ok(Some(ChunkedMode::Unsigned { trailer: true })),
            other if other.starts_with("STREAMING-") => {
                Err(ChunkedError::UnsupportedContentSha256(other.to_owned()))
            }
            _ if aws_chunked => Ok(Some(ChunkedMode::Unsigned { trailer: false })),
            _ => Ok(None),
        }
    }

    /// Whether the variant ends with a trailer section (a checksum sent after the data).
    pub fn has_trailer(&self) -> bool {
        match self {
            ChunkedMode::Signed { trailer, .. } | ChunkedMode::Unsigned { trailer } => *trailer,
        }
    }
}

/// Parses an `x-amz-trailer` header: comma-separated trailer names, which on S3 can only be
/// checksums. Names come back lowercase, ready for [`decode`].
pub fn parse_trailer_header(value: &str) -> Result<Vec<String>, ChunkedError> {
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',') {
        let name = name.trim().to_ascii_lowercase();
        if checksum_trailer(&name).is_none() || names.contains(&name) {
            return Err(ChunkedError::UnsupportedTrailer(name));
        }
        names.push(name);
    }
    Ok(names)
}

/// Trailers seen at the end of the body, after verification, e.g.
/// `[("x-amz-checksum-crc32", "sOO8/Q==")]`. Names are lowercase; values are as sent, already
/// checked to be well-formed checksums. Filled only when the decoded stream ends successfully.
pub type Trailers = Arc<Mutex<Vec<(String, String)>>>;

/// Why an aws-chunked body was refused. Decoding errors reach the caller as
/// `io::Error::new(io::ErrorKind::InvalidData, ChunkedError)`; see [`ChunkedError::from_io`].
/// `Display` is the message S3 sends.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedError {
    #[error("The request body terminated unexpectedly ({0}).")]
    Incomplete(&'static str),
    /// S3 answers IncompleteBody for any framing error too, not only for a short body.
    #[error("The request body terminated unexpectedly: {0}.")]
    Malformed(&'static str),
    #[error("Your proposed upload exceeds the maximum allowed size: a chunk of {0} bytes.")]
    ChunkTooLarge(u64),
    #[error(
        "The request signature we calculated does not match the signature you provided. Check \
         your key and signing method. ({0})"
    )]
    SignatureMismatch(&'static str),
    #[error(
        "The request contained trailing data that was not well-formed or did not conform to our \
         published schema: {0}."
    )]
    MalformedTrailer(&'static str),
    #[error(
        "The request contained trailing data that was not well-formed or did not conform to our \
         published schema: {0} is not declared in x-amz-trailer."
    )]
    UndeclaredTrailer(String),
    #[error(
        "The request contained trailing data that was not well-formed or did not conform to our \
         published schema: {0} is declared in x-amz-trailer but missing."
    )]
    MissingTrailer(String),
    #[error("Value for {0} trailing header is invalid.")]
    InvalidTrailerValue(String),
    #[error("The value specified in the x-amz-trailer header is not supported: {0:?}")]
    UnsupportedTrailer(String),
    #[error("x-amz-content-sha256 value {0:?} is not supported.")]
    UnsupportedContentSha256(String),
    #[error("A signed streaming payload requires a request signed with AWS4-HMAC-SHA256.")]
    NotSigned,
}

impl ChunkedError {
    /// The AWS error code S3 answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ChunkedError::Incomplete(_) | ChunkedError::Malformed(_) => ErrorCode::IncompleteBody,
            ChunkedError::ChunkTooLarge(_) => ErrorCode::EntityTooLarge,
            ChunkedError::SignatureMismatch(_) => ErrorCode::SignatureDoesNotMatch,
            ChunkedError::MalformedTrailer(_)
            | ChunkedError::UndeclaredTrailer(_)
            | ChunkedError::MissingTrailer(_) => ErrorCode::MalformedTrailerError,
            ChunkedError::InvalidTrailerValue(_)
            | ChunkedError::UnsupportedTrailer(_)
            | ChunkedError::NotSigned => ErrorCode::InvalidRequest,
            ChunkedError::UnsupportedContentSha256(_) => ErrorCode::InvalidArgument,
        }
    }

    /// The decoding error inside an error item of the decoded stream, if it is one (an I/O
    /// error of the underlying body is passed through unchanged).
    pub fn from_io(e: &io::Error) -> Option<&ChunkedError> {
        e.get_ref().and_then(|e| e.downcast_ref::<ChunkedError>())
    }
}

impl From<&ChunkedError> for S3Error {
    fn from(e: &ChunkedError) -> Self {
        S3Error::new(e.code()).with_message(e.to_string())
    }
}

impl From<ChunkedError> for S3Error {
    fn from(e: ChunkedError) -> Self {
        S3Error::from(&e)
    }
}

/// Wraps an encoded body. The returned stream yields the decoded data only and ends with an
/// error item if the framing or any signature is bad, a trailer is undeclared, missing or
/// malformed, or the body ends early; see the module doc for when its bytes may be trusted.
/// `declared_trailers` is the parsed `x-amz-trailer` header ([`parse_trailer_header`]): each
/// trailer in the body must be declared and each declared one must be there. The trailer
/// checksum is returned, not compared: the caller computes its own over the decoded data.
pub fn decode(
    body: ByteStream,
    mode: ChunkedMode,
    declared_trailers: Vec<String>,
) -> (ByteStream, Trailers) {
    let trailers = Trailers::default();
    let (signer, trailer_rule) = match mode {
        ChunkedMode::Signed {
            signing_key,
            amz_date,
            scope,
            seed_signature,
            trailer,
        } => (
            Some(Signer {
                signing_key,
                amz_date,
                scope,
                previous: seed_signature,
                expected: Vec::with_capacity(SIGNATURE_LEN),
                hasher: Sha256::new(),
            }),
            if trailer {
                TrailerRule::Signed
            } else {
                TrailerRule::Forbidden
            },
        ),
        ChunkedMode::Unsigned { .. } => (None, TrailerRule::Unsigned),
    };
    let decoder = Decoder {
        body,
        body_ended: false,
        pending: Bytes::new(),
        line: BytesMut::new(),
        state: State::Header,
        held: None,
        signer,
        trailer_rule,
        declared: declared_trailers,
        seen: Vec::new(),
        canonical_trailers: String::new(),
        trailer_bytes: 0,
        trailer_signature_seen: false,
        out: Arc::clone(&trailers),
    };
    (Box::pin(decoder), trailers)
}

fn checksum_trailer(name: &str) -> Option<ChecksumAlgorithm> {
    ChecksumAlgorithm::ALL
        .into_iter()
        .find(|algorithm| algorithm.header_name() == name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a `hex-size[;extensions]` line.
    Header,
    Data {
        remaining: u64,
    },
    /// Expecting the CRLF after chunk data; `matched` bytes of it seen.
    DataEnd {
        matched: usize,
    },
    /// After the zero-size chunk: trailer lines up to an empty line.
    Trailer,
    /// Everything verified; checking that nothing follows.
    Drain,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrailerRule {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every byte is signed, so no unsigned trailer may
    /// ride along.
    Forbidden,
    /// Trailer lines then `x-amz-trailer-signature`, which is verified.
    Signed,
    /// Nothing to verify. A stray `x-amz-trailer-signature` is ignored rather than refused, as
    /// are chunk extensions: there is no key to check them with and the client asked for none.
    Unsigned,
}

/// The chain of signatures of a signed body.
struct Signer {
    signing_key: [u8; 32],
    amz_date: String,
    scope: String,
    /// The signature the next chunk (or the trailer) chains from.
    previous: String,
    /// The signature the current chunk's header declares.
    expected: Vec<u8>,
    /// SHA-256 of the current chunk's data so far.
    hasher: Sha256,
}

impl Signer {
    fn begin_chunk(&mut self, declared_signature: &[u8]) {
        self.expected.clear();
        self.expected.extend_from_slice(declared_signature);
        self.hasher = Sha256::new();
    }

    fn verify_chunk(&mut self) -> Result<(), ChunkedError> {
        let data_hash = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{data_hash}",
            self.amz_date, self.scope, self.previous
        );
        let computed = sigv4::signature(&self.signing_key, &to_sign);
        if !bool::from(computed.as_bytes().ct_eq(&self.expected)) {
            return Err(ChunkedError::SignatureMismatch("chunk signature"));
        }
        self.previous = computed;
        Ok(())
    }

    fn verify_trailer(
        &self,
        canonical_trailers: &str,
        declared: &[u8],
    ) -> Result<(), ChunkedError> {
        let trailer_hash = hex::encode(Sha256::digest(canonical_trailers.as_bytes()));
        let to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{trailer_hash}",
            self.amz_date, self.scope, self.previous
        );
        let computed = sigv4::signature(&self.signing_key, &to_sign);
        if !bool::from(computed.as_bytes().ct_eq(declared)) {
            return Err(ChunkedError::SignatureMismatch("trailer signature"));
        }
        Ok(())
    }
}

enum Step {
    Yield(Bytes),
    NeedInput,
    End,
}

enum LineError {
    TooLong,
    /// A line ended with a bare LF.
    NotCrlf,
}

struct Decoder {
    body: ByteStream,
    body_ended: bool,
    /// Received bytes not yet decoded.
    pending: Bytes,
    /// The start of a header or trailer line split across input buffers.
    line: BytesMut,
    state: State,
    /// The last piece of the latest chunk, yielded once the chunk is verified and more data
    /// follows, or once the whole body is.
    held: Option<Bytes>,
    signer: Option<Signer>,
    trailer_rule: TrailerRule,
    declared: Vec<String>,
    seen: Vec<(String, String)>,
    /// `name:value\n` per trailer, as the trailer signature covers them.
    canonical_trailers: String,
    trailer_bytes: usize,
    trailer_signature_seen: bool,
    out: Trailers,
}

impl Stream for Decoder {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.step() {
                Ok(Step::Yield(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::NeedInput) => match ready!(this.body.as_mut().poll_next(cx)) {
                    Some(Ok(data)) => this.pending = data,
                    Some(Err(e)) => {
                        this.fail();
                        return Poll::Ready(Some(Err(e)));
                    }
                    None => this.body_ended = true,
                },
                Err(e) => {
                    this.fail();
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))));
                }
            }
        }
    }
}

impl Decoder {
    fn fail(&mut self) {
        self.state = State::Finished;
        self.held = None;
        self.pending = Bytes::new();
    }

    /// Decodes as far as the pending bytes allow. Returns `NeedInput` only with `pending` empty.
    fn step(&mut self) -> Result<Step, ChunkedError> {
        loop {
            match self.state {
                State::Header => {
                    let line = match self.read_line(MAX_HEADER_LINE) {
                        Ok(Some(line)) => line,
                        Ok(None) => return self.need_input("inside a chunk header"),
                        Err(LineError::TooLong) => {
                            return Err(ChunkedError::Malformed("oversized chunk header"));
                        }
                        Err(LineError::NotCrlf) => {
                            return Err(ChunkedError::Malformed("chunk header not ended by CRLF"));
                        }
                    };
                    self.start_chunk(&line)?;
                }
                State::Data { remaining } => {
                    if self.pending.is_empty() {
                        return self.need_input("inside chunk data");
                    }
                    if let Some(held) = self.held.take() {
                        return Ok(Step::Yield(held));
                    }
                    let take = remaining.min(self.pending.len() as u64);
                    // `take` is at most `pending.len()`, so it fits in usize.
                    let piece = self.pending.split_to(take as usize);
                    if let Some(signer) = &mut self.signer {
                        signer.hasher.update(&piece);
                    }
                    if take < remaining {
                        self.state = State::Data {
                            remaining: remaining - take,
                        };
                        return Ok(Step::Yield(piece));
                    }
                    if let Some(signer) = &mut self.signer {
                        signer.verify_chunk()?;
                    }
                    self.held = Some(piece);
                    self.state = State::DataEnd { matched: 0 };
                }
                State::DataEnd { mut matched } => {
                    while matched < 2 {
                        let Some(&byte) = self.pending.first() else {
                            self.state = State::DataEnd { matched };
                            return self.need_input("after chunk data");
                        };
                        if byte != b"\r\n"[matched] {
                            return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
                        }
                        self.pending.advance(1);
                        matched += 1;
                    }
                    self.state = State::Header;
                }
                State::Trailer => {
                    // The last line may overshoot the budget by its CRLF; after that only the
                    // empty line that ends the section fits.
                    let budget = MAX_TRAILER_SECTION.saturating_sub(self.trailer_bytes);
                    let line = match self.read_line(budget) {
                        Ok(Some(line)) => line,
                        Ok(None) => return self.need_input("inside the trailer section"),
                        Err(LineError::TooLong) => {
                            return Err(ChunkedError::MalformedTrailer(
                                "trailer section too large",
                            ));
                        }
                        Err(LineError::NotCrlf) => {
                            return Err(ChunkedError::MalformedTrailer(
                                "trailer line not ended by CRLF",
                            ));
                        }
                    };
                    self.trailer_bytes += line.len() + 2;
                    if line.is_empty() {
                        self.finish_trailers()?;
                        self.state = State::Drain;
                    } else {
                        self.trailer_line(&line)?;
                    }
                }
                State::Drain => {
                    if !self.pending.is_empty() {
                        return Err(ChunkedError::Malformed("data after the end of the body"));
                    }
                    if !self.body_ended {
                        return Ok(Step::NeedInput);
                    }
                    let seen = std::mem::take(&mut self.seen);
                    *self.out.lock().unwrap_or_else(PoisonError::into_inner) = seen;
                    self.state = State::Finished;
                    if let Some(held) = self.held.take() {
                        return Ok(Step::Yield(held));
                    }
                }
                State::Finished => return Ok(Step::End),
            }
        }
    }

    fn need_input(&self, place: &'static str) -> Result<Step, ChunkedError> {
        if self.body_ended {
            Err(ChunkedError::Incomplete(place))
        } else {
            Ok(Step::NeedInput)
        }
    }

    /// The next CRLF-ended line without its CRLF, or `None` when it is not complete yet (its
    /// start is then kept in `self.line`). `max` bounds the line's length without the CRLF.
    fn read_line(&mut self, max: usize) -> Result<Option<BytesMut>, LineError> {
        let Some(newline) = self.pending.iter().position(|&b| b == b'\n') else {
            // The line so far may end with the CR of its CRLF.
            if self.line.len() + self.pending.len() > max + 1 {
                return Err(LineError::TooLong);
            }
            self.line.extend_from_slice(&self.pending);
            self.pending = Bytes::new();
            return Ok(None);
        };
        let rest = self.pending.split_to(newline + 1);
        if self.line.len() + rest.len() > max + 2 {
            return Err(LineError::TooLong);
        }
        self.line.extend_from_slice(&rest);
        let mut line = self.line.split();
        line.truncate(line.len() - 1);
        if line.last() != Some(&b'\r') {
            return Err(LineError::NotCrlf);
        }
        line.truncate(line.len() - 1);
        Ok(Some(line))
    }

    fn start_chunk(&mut self, header: &[u8]) -> Result<(), ChunkedError> {
        let (size, extensions) = match header.iter().position(|&b| b == b';') {
            Some(i) => (&header[..i], Some(&header[i + 1..])),
            None => (header, None),
        };
        let size = parse_chunk_size(size)?;
        if let Some(signer) = &mut self.signer {
            let signature = extensions
                .and_then(|e| e.strip_prefix(CHUNK_SIGNATURE))
                .filter(|s| s.len() == SIGNATURE_LEN)
                .ok_or(ChunkedError::Malformed(
                    "chunk header without a chunk-signature",
                ))?;
            signer.begin_chunk(signature);
        }
        if size > MAX_CHUNK_SIZE {
            return Err(ChunkedError::ChunkTooLarge(size));
        }
        if size > 0 {
            self.state = State::Data { remaining: size };
            return Ok(());
        }
        // The zero-size chunk ends the data; its signature covers no bytes but closes the chain.
        if let Some(signer) = &mut self.signer {
            signer.verify_chunk()?;
        }
        self.state = State::Trailer;
        Ok(())
    }

    fn trailer_line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        if self.trailer_signature_seen {
            return Err(ChunkedError::MalformedTrailer(
                "a trailer follows x-amz-trailer-signature",
            ));
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| ChunkedError::MalformedTrailer("a trailer line is not UTF-8"))?;
        let (name, value) = line.split_once(':').ok_or(ChunkedError::MalformedTrailer(
            "a trailer line has no colon",
        ))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name.is_empty() {
            return Err(ChunkedError::MalformedTrailer("a trailer has no name"));
        }
        if name == TRAILER_SIGNATURE {
            match (&self.signer, self.trailer_rule) {
                (Some(signer), TrailerRule::Signed) => {
                    signer.verify_trailer(&self.canonical_trailers, value.as_bytes())?;
                }
                (_, TrailerRule::Unsigned) => {}
                _ => return Err(ChunkedError::UndeclaredTrailer(name)),
            }
            self.trailer_signature_seen = true;
            return Ok(());
        }
        if self.trailer_rule == TrailerRule::Forbidden {
            return Err(ChunkedError::MalformedTrailer(
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD carries no trailer",
            ));
        }
        if !self.declared.contains(&name) {
            return Err(ChunkedError::UndeclaredTrailer(name));
        }
        if self.seen.iter().any(|(seen, _)| *seen == name) {
            return Err(ChunkedError::MalformedTrailer("a trailer is repeated"));
        }
        if let Some(algorithm) = checksum_trailer(&name)
            && Checksum::from_base64(algorithm, value).is_none()
        {
            return Err(ChunkedError::InvalidTrailerValue(name));
        }
        self.canonical_trailers.push_str(&name);
        self.canonical_trailers.push(':');
        self.canonical_trailers.push_str(value);
        self.canonical_trailers.push('\n');
        self.seen.push((name, value.to_owned()));
        Ok(())
    }

    fn finish_trailers(&self) -> Result<(), ChunkedError> {
        if self.trailer_rule == TrailerRule::Signed && !self.trailer_signature_seen {
            return Err(ChunkedError::MalformedTrailer(
                "x-amz-trailer-signature is missing",
            ));
        }
        match self
            .declared
            .iter()
            .find(|declared| !self.seen.iter().any(|(seen, _)| seen == *declared))
        {
            Some(missing) => Err(ChunkedError::MissingTrailer(missing.clone())),
            None => Ok(()),
        }
    }
}

/// 1 to 16 hex digits, so that it fits a u64 (`from_str_radix` alone would take a sign).
fn parse_chunk_size(digits: &[u8]) -> Result<u64, ChunkedError> {
    const NOT_HEX: ChunkedError = ChunkedError::Malformed("chunk size is not hexadecimal");
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(NOT_HEX);
    }
    let digits = std::str::from_utf8(digits).map_err(|_| NOT_HEX)?;
    u64::from_str_radix(digits, 16).map_err(|_| NOT_HEX)
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt, stream};
    use time::macros::datetime;

    use super::*;
    use crate::checksum::Checksummer;
    use crate::s3::sigv4::PayloadHash;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";
    const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    const CRC32: &str = "x-amz-checksum-crc32";

    fn key() -> [u8; 32] {
        sigv4::signing_key(SECRET, "20130524", "us-east-1", "s3")
    }

    fn signed(seed: &str, trailer: bool) -> ChunkedMode {
        ChunkedMode::Signed {
            signing_key: key(),
            amz_date: DATE.to_owned(),
            scope: SCOPE.to_owned(),
            seed_signature: seed.to_owned(),
            trailer,
        }
    }

    /// A client's side of the signature chain, written from the AWS documents independently
    /// of the decoder's `Signer`.
    struct ChainSigner {
        previous: String,
    }

    impl ChainSigner {
        fn sign(&mut self, to_sign: String) -> String {
            self.previous = sigv4::signature(&key(), &to_sign);
            self.previous.clone()
        }

        fn chunk(&mut self, data: &[u8]) -> String {
            let to_sign = [
                "AWS4-HMAC-SHA256-PAYLOAD",
                DATE,
                SCOPE,
                &self.previous,
                &hex::encode(Sha256::digest(b"")),
                &hex::encode(Sha256::digest(data)),
            ]
            .join("\n");
            self.sign(to_sign)
        }

        fn trailer(&mut self, canonical: &str) -> String {
            let hash = hex::encode(Sha256::digest(canonical.as_bytes()));
            let to_sign = [
                "AWS4-HMAC-SHA256-TRAILER",
                DATE,
                SCOPE,
                &self.previous,
                &hash,
            ]
            .join("\n");
            self.sign(to_sign)
        }
    }

    /// Encodes a signed body; `trailers` selects the -TRAILER variant.
    fn signed_body(chunks: &[&[u8]], trailers: Option<&[(&str, &str)]>) -> Vec<u8> {
        let mut signer = ChainSigner {
            previous: SEED.to_owned(),
        };
        let mut body = Vec::new();
        for data in chunks.iter().chain([&&b""[..]]) {
            let signature = signer.chunk(data);
            body.extend_from_slice(
                format!("{:x};chunk-signature={signature}\r\n", data.len()).as_bytes(),
            );
            if !data.is_empty() {
                body.extend_from_slice(data);
                body.extend_from_slice(b"\r\n");
            }
        }
        if let Some(trailers) = trailers {
            let mut canonical = String::new();
            for (name, value) in trailers {
                body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
                canonical.push_str(&format!("{name}:{value}\n"));
            }
            let signature = signer.trailer(&canonical);
            body.extend_from_slice(format!("x-amz-trailer-signature:{signature}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    /// Encodes an unsigned body as botocore does: sizes only, trailers after the zero chunk.
    fn unsigned_body(chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for data in chunks {
            body.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n");
        for (name, value) in trailers {
            body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    fn crc32_b64(data: &[u8]) -> String {
        let mut checksummer = Checksummer::new(ChecksumAlgorithm::Crc32);
        checksummer.update(data);
        Checksum {
            algorithm: ChecksumAlgorithm::Crc32,
            value: checksummer.finalize(),
        }
        .to_base64()
    }

    struct Decoded {
        data: Vec<u8>,
        end: Result<Vec<(String, String)>, io::Error>,
    }

    impl Decoded {
        fn ok(&self) -> (&[u8], &[(String, String)]) {
            match &self.end {
                Ok(trailers) => (&self.data, trailers),
                Err(e) => panic!("decoding failed: {e}"),
            }
        }

        fn error(&self) -> &ChunkedError {
            let e = self.end.as_ref().expect_err("decoding succeeded");
            ChunkedError::from_io(e).expect("a ChunkedError")
        }
    }

    fn decode_stream(
        pieces: Vec<Result<Bytes, io::Error>>,
        mode: &ChunkedMode,
        declared: &[&str],
    ) -> Decoded {
        let declared = declared.iter().map(|s| s.to_string()).collect();
        let (mut decoded, trailers) =
            decode(Box::pin(stream::iter(pieces)), mode.clone(), declared);
        let mut data = Vec::new();
        loop {
            let item = decoded
                .next()
                .now_or_never()
                .expect("a ready body never waits");
            match item {
                Some(Ok(bytes)) => {
                    assert!(!bytes.is_empty(), "empty items are never yielded");
                    data.extend_from_slice(&bytes);
                }
                Some(Err(e)) => {
                    assert!(
                        matches!(decoded.next().now_or_never(), Some(None)),
                        "ends after an error"
                    );
                    assert!(
                        trailers.lock().unwrap().is_empty(),
                        "no trailers after an error"
                    );
                    return Decoded { data, end: Err(e) };
                }
                None => {
                    let trailers = trailers.lock().unwrap().clone();
                    return Decoded {
                        data,
                        end: Ok(trailers),
                    };
                }
            }
        }
    }

    /// Decodes `body` delivered in pieces of 1, 2, 3 and 7 bytes and in one piece.
    fn every_split(body: &[u8], mode: &ChunkedMode, declared: &[&str]) -> Vec<Decoded> {
        [1, 2, 3, 7, body.len().max(1)]
            .into_iter()
            .map(|size| {
                let pieces = body
                    .chunks(size)
                    .map(|piece| Ok(Bytes::copy_from_slice(piece)))
                    .collect();
                decode_stream(pieces, mode, declared)
            })
            .collect()
    }

    /// Decodes `body` split every way and checks that all ways agree.
    fn decode_body(body: &[u8], mode: &ChunkedMode, declared: &[&str]) -> Decoded {
        let mut all = every_split(body, mode, declared);
        let whole = all.pop().unwrap();
        for (split, other) in [1, 2, 3, 7].into_iter().zip(&all) {
            match (&whole.end, &other.end) {
                (Ok(trailers), Ok(other_trailers)) => {
                    assert_eq!(other.data, whole.data, "data, pieces of {split}");
                    assert_eq!(other_trailers, trailers, "trailers, pieces of {split}");
                }
                (Err(e), Err(other_e)) => {
                    assert_eq!(other_e.to_string(), e.to_string(), "pieces of {split}");
                }
                (whole_end, other_end) => {
                    panic!("pieces of {split}: {other_end:?}, whole: {whole_end:?}")
                }
            }
        }
        whole
    }

    fn aws_example_body(signatures: [&str; 3], trailer: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(format!("10000;chunk-signature={}\r\n", signatures[0]).as_bytes());
        body.extend_from_slice(&[b'a'; 65536]);
        body.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", signatures[1]).as_bytes());
        body.extend_from_slice(&[b'a'; 1024]);
        body.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n", signatures[2]).as_bytes());
        body.extend_from_slice(trailer);
        body.extend_from_slice(b"\r\n");
        body
    }

    #[test]
    fn the_published_aws_example_decodes() {
        // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html, Example: PUT Object.
        let signatures = [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ];
        let body = aws_example_body(signatures, b"");
        assert_eq!(body.len(), 66824, "the example's Content-Length");
        let decoded = decode_body(&body, &signed(SEED, false), &[]);
        let (data, trailers) = decoded.ok();
        assert_eq!(data, vec![b'a'; 66560]);
        assert!(trailers.is_empty());

        // The test encoder signs as AWS does.
        assert_eq!(signed_body(&[&[b'a'; 65536], &[b'a'; 1024]], None), body);

        // Any other seed breaks the first chunk.
        let other_seed = SEED.replace('4', "5");
        let decoded = decode_body(&body, &signed(&other_seed, false), &[]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::SignatureMismatch(_)
        ));
        assert_eq!(decoded.error().code(), ErrorCode::SignatureDoesNotMatch);
        assert!(
            decoded.data.len() < 65536,
            "the bad chunk is never complete"
        );
    }

    #[test]
    fn the_published_aws_trailer_example_decodes() {
        // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
        let seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
        let signatures = [
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ];
        let trailer = b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:\
            d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n";
        let body = aws_example_body(signatures, trailer);
        assert_eq!(body.len(), 66946, "the example's Content-Length");
        let declared = ["x-amz-checksum-crc32c"];
        let decoded = decode_body(&body, &signed(seed, true), &declared);
        let (data, trailers) = decoded.ok();
        assert_eq!(data, vec![b'a'; 66560]);
        assert_eq!(
            trailers,
            [("x-amz-checksum-crc32c".to_owned(), "sOO8/Q==".to_owned())]
        );

        // The same chunks with a changed trailer value fail on the trailer signature alone.
        let forged = replace(&body, "sOO8/Q==", "AAAAAA==");
        let decoded = decode_body(&forged, &signed(seed, true), &declared);
        assert!(matches!(
            decoded.error(),
            ChunkedError::SignatureMismatch("trailer signature")
        ));
    }

    #[test]
    fn signed_variant_round_trips() {
        let chunks: [&[u8]; 3] = [b"hello ", b"aws-chunked\r\n", b"world"];
        let decoded = decode_body(&signed_body(&chunks, None), &signed(SEED, false), &[]);
        let (data, trailers) = decoded.ok();
        assert_eq!(data, b"hello aws-chunked\r\nworld");
        assert!(trailers.is_empty());

        let decoded = decode_body(&signed_body(&[], None), &signed(SEED, false), &[]);
        assert_eq!(decoded.ok().0, b"");
    }

    #[test]
    fn signed_trailer_variant_returns_the_checksum() {
        let chunks: [&[u8]; 2] = [b"0123456789", b"abc"];
        let crc = crc32_b64(b"0123456789abc");
        let body = signed_body(&chunks, Some(&[(CRC32, &crc)]));
        let decoded = decode_body(&body, &signed(SEED, true), &[CRC32]);
        let (data, trailers) = decoded.ok();
        assert_eq!(data, b"0123456789abc");
        assert_eq!(trailers, [(CRC32.to_owned(), crc)]);
    }

    #[test]
    fn unsigned_trailer_variant_returns_the_checksum() {
        let chunks: [&[u8]; 2] = [&[7u8; 300], b"tail"];
        let mut expected = vec![7u8; 300];
        expected.extend_from_slice(b"tail");
        let crc = crc32_b64(&expected);
        let body = unsigned_body(&chunks, &[(CRC32, &crc)]);
        let mode = ChunkedMode::Unsigned { trailer: true };
        let decoded = decode_body(&body, &mode, &[CRC32]);
        let (data, trailers) = decoded.ok();
        assert_eq!(data, expected);
        assert_eq!(trailers, [(CRC32.to_owned(), crc.clone())]);

        // Name case and spaces around the value are not significant.
        let body = format!("3\r\nabc\r\n0\r\nX-Amz-Checksum-CRC32: {crc} \r\n\r\n");
        let decoded = decode_body(body.as_bytes(), &mode, &[CRC32]);
        assert_eq!(decoded.ok().1, [(CRC32.to_owned(), crc)]);
    }

    #[test]
    fn plain_aws_chunked_decodes_the_framing_only() {
        let mode = ChunkedMode::Unsigned { trailer: false };
        let body = unsigned_body(&[b"hello", b" ", b"world"], &[]);
        let decoded = decode_body(&body, &mode, &[]);
        assert_eq!(decoded.ok().0, b"hello world");

        // Unverifiable chunk signatures and a trailer signature are ignored on unsigned bodies.
        let body = format!(
            "5;chunk-signature={SEED}\r\nhello\r\n0;chunk-signature={SEED}\r\n\
             x-amz-trailer-signature:{SEED}\r\n\r\n"
        );
        let decoded = decode_body(body.as_bytes(), &mode, &[]);
        assert_eq!(decoded.ok().0, b"hello");

        // Upper-case hex sizes and an empty body.
        let decoded = decode_body(b"A\r\n0123456789\r\n0\r\n\r\n", &mode, &[]);
        assert_eq!(decoded.ok().0, b"0123456789");
        let decoded = decode_body(b"0\r\n\r\n", &mode, &[]);
        assert_eq!(decoded.ok().0, b"");
    }

    /// Replaces the first occurrence of `from` in `body`.
    fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
        let at = body
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .expect("pattern in body");
        [&body[..at], to.as_bytes(), &body[at + from.len()..]].concat()
    }

    #[test]
    fn bad_middle_chunk_signature() {
        let chunks: [&[u8]; 3] = [b"first chunk", b"middle chunk", b"last chunk"];
        let good = signed_body(&chunks, None);
        let mut signer = ChainSigner {
            previous: SEED.to_owned(),
        };
        signer.chunk(chunks[0]);
        let middle = signer.chunk(chunks[1]);
        let bad = replace(&good, &middle, &"0".repeat(64));
        for decoded in every_split(&bad, &signed(SEED, false), &[]) {
            assert!(matches!(
                decoded.error(),
                ChunkedError::SignatureMismatch("chunk signature")
            ));
            assert!(decoded.data.len() < b"first chunkmiddle chunk".len());
        }
        // Data changed under a valid signature fails the same way.
        let tampered = replace(&good, "middle", "muddle");
        let decoded = decode_body(&tampered, &signed(SEED, false), &[]);
        assert_eq!(decoded.error().code(), ErrorCode::SignatureDoesNotMatch);
    }

    #[test]
    fn bad_final_chunk_signature() {
        let chunks: [&[u8]; 1] = [b"only chunk"];
        let good = signed_body(&chunks, None);
        let mut signer = ChainSigner {
            previous: SEED.to_owned(),
        };
        signer.chunk(chunks[0]);
        let last = signer.chunk(b"");
        let bad = replace(
            &good,
            &last,
            &last.replace(|c: char| c.is_ascii_digit(), "f"),
        );
        for decoded in every_split(&bad, &signed(SEED, false), &[]) {
            assert!(matches!(
                decoded.error(),
                ChunkedError::SignatureMismatch("chunk signature")
            ));
            assert!(
                decoded.data.len() < chunks[0].len(),
                "the last piece is held back"
            );
        }
        // A missing final chunk signature is a framing error.
        let unsigned_end = replace(&good, &format!("0;chunk-signature={last}"), "0");
        let decoded = decode_body(&unsigned_end, &signed(SEED, false), &[]);
        assert!(matches!(decoded.error(), ChunkedError::Malformed(_)));
    }

    #[test]
    fn bad_trailer_signature() {
        let crc = crc32_b64(b"payload");
        let good = signed_body(&[b"payload"], Some(&[(CRC32, &crc)]));
        let at = good.len() - 2 - 2 - SIGNATURE_LEN;
        let mut bad = good.clone();
        bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        for decoded in every_split(&bad, &signed(SEED, true), &[CRC32]) {
            assert!(matches!(
                decoded.error(),
                ChunkedError::SignatureMismatch("trailer signature")
            ));
            assert!(decoded.data.len() < b"payload".len());
        }
        // A trailer value that does not match its signature.
        let other = crc32_b64(b"other");
        let forged = replace(&good, &crc, &other);
        let decoded = decode_body(&forged, &signed(SEED, true), &[CRC32]);
        assert_eq!(decoded.error().code(), ErrorCode::SignatureDoesNotMatch);
        // No signature line at all.
        let unsigned_end = format!("{CRC32}:{crc}\r\n\r\n");
        let mut stripped = good[..good.len() - 2].to_vec();
        let start = stripped.len() - (CRC32.len() + 1 + crc.len() + 2) - (24 + SIGNATURE_LEN + 2);
        stripped.truncate(start);
        stripped.extend_from_slice(unsigned_end.as_bytes());
        let decoded = decode_body(&stripped, &signed(SEED, true), &[CRC32]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::MalformedTrailer("x-amz-trailer-signature is missing")
        ));
    }

    #[test]
    fn every_truncation_is_an_incomplete_body() {
        let crc = crc32_b64(b"abcdefgh");
        let cases = [
            (
                signed_body(&[b"abc", b"defgh"], None),
                signed(SEED, false),
                vec![],
            ),
            (
                signed_body(&[b"abc", b"defgh"], Some(&[(CRC32, &crc)])),
                signed(SEED, true),
                vec![CRC32],
            ),
            (
                unsigned_body(&[b"abc", b"defgh"], &[(CRC32, &crc)]),
                ChunkedMode::Unsigned { trailer: true },
                vec![CRC32],
            ),
            (
                unsigned_body(&[b"abc", b"defgh"], &[]),
                ChunkedMode::Unsigned { trailer: false },
                vec![],
            ),
        ];
        for (body, mode, declared) in cases {
            assert!(decode_body(&body, &mode, &declared).end.is_ok());
            for cut in 0..body.len() {
                let decoded = decode_body(&body[..cut], &mode, &declared);
                let error = decoded.error();
                assert!(
                    matches!(error, ChunkedError::Incomplete(_)),
                    "{mode:?} cut at {cut}: {error}"
                );
                assert_eq!(error.code(), ErrorCode::IncompleteBody);
                assert!(decoded.data.len() < 8, "never all the data of a cut body");
            }
        }
    }

    #[test]
    fn truncation_points_are_named() {
        let crc = crc32_b64(b"abcdefgh");
        let body = unsigned_body(&[b"abc", b"defgh"], &[(CRC32, &crc)]);
        let mode = ChunkedMode::Unsigned { trailer: true };
        let place = |cut: usize| match decode_body(&body[..cut], &mode, &[CRC32]).error() {
            ChunkedError::Incomplete(place) => *place,
            other => panic!("{other}"),
        };
        assert_eq!(place(1), "inside a chunk header");
        assert_eq!(place(4), "inside chunk data");
        assert_eq!(place(6), "after chunk data");
        assert_eq!(place(8), "inside a chunk header", "before the second chunk");
        assert_eq!(place(18), "inside a chunk header", "before the final chunk");
        assert_eq!(place(body.len() - 2), "inside the trailer section");
        assert_eq!(place(body.len() - 1), "inside the trailer section");
    }

    #[test]
    fn oversized_chunk_header() {
        let mode = ChunkedMode::Unsigned { trailer: false };
        let header = |len: usize| {
            let body = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(len - 2)).into_bytes();
            assert_eq!(body.iter().position(|&b| b == b'\r'), Some(len));
            body
        };
        assert_eq!(
            decode_body(&header(MAX_HEADER_LINE), &mode, &[]).ok().0,
            b"hello"
        );
        let decoded = decode_body(&header(MAX_HEADER_LINE + 1), &mode, &[]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::Malformed("oversized chunk header")
        ));
        assert_eq!(decoded.error().code(), ErrorCode::IncompleteBody);

        // A header that never ends is refused without waiting for the end of the body.
        let endless = vec![
            Ok(Bytes::from(vec![b'0'; 3 * MAX_HEADER_LINE])),
            Err(io::Error::other("unreached")),
        ];
        let decoded = decode_stream(endless, &mode, &[]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::Malformed("oversized chunk header")
        ));
    }

    #[test]
    fn bad_chunk_sizes() {
        let mode = ChunkedMode::Unsigned { trailer: false };
        for body in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b";ext\r\nhello\r\n0\r\n\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
        ] {
            let decoded = decode_body(body, &mode, &[]);
            assert!(
                matches!(decoded.error(), ChunkedError::Malformed(_)),
                "{}: {}",
                String::from_utf8_lossy(body),
                decoded.error()
            );
            assert_eq!(decoded.error().code(), ErrorCode::IncompleteBody);
        }
        // The largest size a PUT accepts is fine as a size; one more byte is not.
        let decoded = decode_body(b"140000000\r\nabc", &mode, &[]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::Incomplete("inside chunk data")
        ));
        let decoded = decode_body(b"140000001\r\nabc", &mode, &[]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::ChunkTooLarge(0x1_4000_0001)
        ));
        assert_eq!(decoded.error().code(), ErrorCode::EntityTooLarge);
        let decoded = decode_body(b"ffffffffffffffff\r\n", &mode, &[]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::ChunkTooLarge(u64::MAX)
        ));
    }

    #[test]
    fn missing_crlf_after_data() {
        let mode = ChunkedMode::Unsigned { trailer: false };
        for body in [
            &b"3\r\nabcX\r\n0\r\n\r\n"[..],
            b"3\r\nabc\r0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc0\r\n\r\n",
        ] {
            let decoded = decode_body(body, &mode, &[]);
            assert!(matches!(
                decoded.error(),
                ChunkedError::Malformed("chunk data not followed by CRLF")
            ));
            assert!(
                decoded.data.is_empty(),
                "the bad chunk's last piece is held back"
            );
        }
        let body = signed_body(&[b"abc"], None);
        let bad = replace(&body, "abc\r\n", "abcd\r\n");
        let decoded = decode_body(&bad, &signed(SEED, false), &[]);
        assert!(matches!(decoded.error(), ChunkedError::Malformed(_)));
    }

    #[test]
    fn trailer_rules() {
        let crc = crc32_b64(b"abc");
        let mode = ChunkedMode::Unsigned { trailer: true };
        let body = unsigned_body(&[b"abc"], &[(CRC32, &crc)]);

        let decoded = decode_body(&body, &mode, &[]);
        assert!(matches!(decoded.error(), ChunkedError::UndeclaredTrailer(name) if name == CRC32));
        assert_eq!(decoded.error().code(), ErrorCode::MalformedTrailerError);
        let decoded = decode_body(&body, &mode, &["x-amz-checksum-crc32c"]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::UndeclaredTrailer(_)
        ));

        let no_trailer = unsigned_body(&[b"abc"], &[]);
        let decoded = decode_body(&no_trailer, &mode, &[CRC32]);
        assert!(matches!(decoded.error(), ChunkedError::MissingTrailer(name) if name == CRC32));
        assert_eq!(decoded.error().code(), ErrorCode::MalformedTrailerError);

        let twice = unsigned_body(&[b"abc"], &[(CRC32, &crc), (CRC32, &crc)]);
        let decoded = decode_body(&twice, &mode, &[CRC32]);
        assert!(matches!(decoded.error(), ChunkedError::MalformedTrailer(_)));

        for value in ["", "not base64!", "AAAAAAAA"] {
            let body = unsigned_body(&[b"abc"], &[(CRC32, value)]);
            let decoded = decode_body(&body, &mode, &[CRC32]);
            assert!(
                matches!(decoded.error(), ChunkedError::InvalidTrailerValue(_)),
                "{value}"
            );
            assert_eq!(decoded.error().code(), ErrorCode::InvalidRequest);
        }

        for line in ["no colon here", ":value", "x-amz-checksum-crc32\u{0}"] {
            let body = format!("3\r\nabc\r\n0\r\n{line}\r\n\r\n");
            let decoded = decode_body(body.as_bytes(), &mode, &[CRC32]);
            assert_eq!(
                decoded.error().code(),
                ErrorCode::MalformedTrailerError,
                "{line}"
            );
        }
        let body = format!("3\r\nabc\r\n0\r\n{CRC32}:{crc}\n\r\n");
        let decoded = decode_body(body.as_bytes(), &mode, &[CRC32]);
        assert!(matches!(decoded.error(), ChunkedError::MalformedTrailer(_)));

        let huge = format!(
            "0\r\nx-amz-meta-a:{}\r\n\r\n",
            "v".repeat(MAX_TRAILER_SECTION)
        );
        let decoded = decode_body(huge.as_bytes(), &mode, &[CRC32]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::MalformedTrailer("trailer section too large")
        ));

        // A line that fills the section exactly leaves room for the closing empty line only.
        let padding = " ".repeat(MAX_TRAILER_SECTION - CRC32.len() - 1 - crc.len());
        let full = format!("0\r\n{CRC32}:{padding}{crc}\r\n");
        let decoded = decode_body(format!("{full}\r\n").as_bytes(), &mode, &[CRC32]);
        assert_eq!(decoded.ok().1, [(CRC32.to_owned(), crc.clone())]);
        let decoded = decode_body(format!("{full}x\r\n\r\n").as_bytes(), &mode, &[CRC32]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::MalformedTrailer("trailer section too large")
        ));

        // An unsigned trailer inside a fully signed body is refused, declared or not.
        let signed_plain = signed_body(&[b"abc"], None);
        let with_trailer = [
            &signed_plain[..signed_plain.len() - 2],
            format!("{CRC32}:{crc}\r\n\r\n").as_bytes(),
        ]
        .concat();
        for declared in [&[][..], &[CRC32]] {
            let decoded = decode_body(&with_trailer, &signed(SEED, false), declared);
            assert_eq!(decoded.error().code(), ErrorCode::MalformedTrailerError);
        }
        // So is a trailer after the trailer signature.
        let signed_trailer = signed_body(&[b"abc"], Some(&[(CRC32, &crc)]));
        let extra = [
            &signed_trailer[..signed_trailer.len() - 2],
            b"x-amz-checksum-sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        ]
        .concat();
        let decoded = decode_body(&extra, &signed(SEED, true), &[CRC32, "x-amz-checksum-sha1"]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::MalformedTrailer("a trailer follows x-amz-trailer-signature")
        ));
    }

    #[test]
    fn data_after_the_end_is_refused() {
        let mode = ChunkedMode::Unsigned { trailer: false };
        let decoded = decode_body(b"3\r\nabc\r\n0\r\n\r\nX", &mode, &[]);
        assert!(matches!(
            decoded.error(),
            ChunkedError::Malformed("data after the end of the body")
        ));
        assert!(decoded.data.is_empty());
        // Empty buffers after the end are harmless.
        let pieces = vec![
            Ok(Bytes::from_static(b"3\r\nabc\r\n0\r\n\r\n")),
            Ok(Bytes::new()),
        ];
        assert_eq!(decode_stream(pieces, &mode, &[]).ok().0, b"abc");
    }

    #[test]
    fn body_errors_pass_through() {
        let pieces = vec![
            Ok(Bytes::from_static(b"5\r\nhel")),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
        ];
        let decoded = decode_stream(pieces, &ChunkedMode::Unsigned { trailer: false }, &[]);
        let e = decoded.end.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert!(ChunkedError::from_io(&e).is_none());
        assert_eq!(decoded.data, b"hel");
    }

    fn verified() -> Verified {
        Verified {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            payload: PayloadHash::Streaming(STREAMING_SIGNED.to_owned()),
            signing_key: key(),
            date: datetime!(2013-05-24 00:00:00 UTC),
            scope: SCOPE.to_owned(),
            seed_signature: SEED.to_owned(),
        }
    }

    #[test]
    fn mode_from_request() {
        let v = verified();
        let mode = ChunkedMode::from_request(STREAMING_SIGNED, false, Some(&v))
            .unwrap()
            .unwrap();
        let ChunkedMode::Signed {
            signing_key,
            amz_date,
            scope,
            seed_signature,
            trailer,
        } = &mode
        else {
            panic!("{mode:?}");
        };
        assert_eq!(
            (
                signing_key,
                amz_date.as_str(),
                scope.as_str(),
                seed_signature.as_str(),
                *trailer
            ),
            (&key(), DATE, SCOPE, SEED, false)
        );
        assert!(
            !format!("{mode:?}").contains("signing_key"),
            "the key is not logged"
        );
        // The mode from_request builds decodes the published example.
        let body = signed_body(&[b"x"], None);
        assert_eq!(decode_body(&body, &mode, &[]).ok().0, b"x");

        let mode = ChunkedMode::from_request(STREAMING_SIGNED_TRAILER, true, Some(&v))
            .unwrap()
            .unwrap();
        assert!(matches!(mode, ChunkedMode::Signed { trailer: true, .. }));
        assert!(mode.has_trailer());
        for verified in [Some(&v), None] {
            let mode = ChunkedMode::from_request(STREAMING_UNSIGNED_TRAILER, false, verified);
            assert!(matches!(
                mode,
                Ok(Some(ChunkedMode::Unsigned { trailer: true }))
            ));
            let mode = ChunkedMode::from_request(sigv4::UNSIGNED_PAYLOAD, true, verified);
            assert!(matches!(
                mode,
                Ok(Some(ChunkedMode::Unsigned { trailer: false }))
            ));
            let mode = ChunkedMode::from_request(EMPTY_SHA256, true, verified);
            assert!(matches!(
                mode,
                Ok(Some(ChunkedMode::Unsigned { trailer: false }))
            ));
            assert!(matches!(
                ChunkedMode::from_request(sigv4::UNSIGNED_PAYLOAD, false, verified),
                Ok(None)
            ));
            assert!(matches!(
                ChunkedMode::from_request(EMPTY_SHA256, false, verified),
                Ok(None)
            ));
            let e = ChunkedMode::from_request(
                "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
                true,
                verified,
            )
            .unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
        }
        let e = ChunkedMode::from_request(STREAMING_SIGNED, true, None).unwrap_err();
        assert!(matches!(e, ChunkedError::NotSigned));
        assert!(!ChunkedMode::Unsigned { trailer: false }.has_trailer());
    }

    #[test]
    fn trailer_header_parsing() {
        assert_eq!(
            parse_trailer_header("x-amz-checksum-crc32").unwrap(),
            [CRC32]
        );
        assert_eq!(
            parse_trailer_header(" X-Amz-Checksum-CRC64NVME , x-amz-checksum-sha256").unwrap(),
            ["x-amz-checksum-crc64nvme", "x-amz-checksum-sha256"]
        );
        for bad in [
            "",
            "x-amz-checksum-sha10",
            "x-amz-meta-a",
            "x-amz-checksum-crc32,x-amz-checksum-crc32",
            "x-amz-checksum-crc32,",
        ] {
            let e = parse_trailer_header(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidRequest, "{bad}");
        }
    }
}
