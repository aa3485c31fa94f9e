//! The `aws-chunked` request body: how SigV4 streaming uploads, and every AWS SDK uploading with
//! a checksum trailer, frame a body. [`decode`] turns such a body back into the object's bytes as
//! it streams, verifying every chunk signature in order (signed variants), then the trailer
//! section and its signature, with memory bounded by the caps below whatever the body size.
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>
//!
//! Invariant for callers: a chunk's signature can only be checked once all its data has been
//! hashed, so the decoded stream yields bytes *before* they are verified. Only the end of the
//! stream (`None`, after which [`Trailers`] are filled) says that every signature matched and
//! the framing was complete; an error item says the body must be discarded. The write path
//! therefore polls the stream to its end and commits nothing before that, and the decoder holds
//! back the last piece of every chunk until the chunk is verified (the last piece of the body
//! until the whole body is), so a consumer that stops after the declared length never holds the
//! complete data of an unverified chunk.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{OffsetDateTime, UtcOffset};

use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::gateway::{ByteStream, MAX_PUT_SIZE};
use crate::s3::sigv4::{self, Verified};

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
    /// The S3 error code.
    pub fn code(&self) -> &'static str {
        match self {
            ChunkedError::Incomplete(_) | ChunkedError::Malformed(_) => "IncompleteBody",
            ChunkedError::ChunkTooLarge(_) => "EntityTooLarge",
            ChunkedError::SignatureMismatch(_) => "SignatureDoesNotMatch",
            ChunkedError::MalformedTrailer(_)
            | ChunkedError::UndeclaredTrailer(_)
            | ChunkedError::MissingTrailer(_) => "MalformedTrailerError",
            ChunkedError::InvalidTrailerValue(_)
            | ChunkedError::UnsupportedTrailer(_)
            | ChunkedError::NotSigned => "InvalidRequest",
            ChunkedError::UnsupportedContentSha256(_) => "InvalidArgument",
        }
    }

    /// The decoding error inside an error item of the decoded stream, if it is one (an I/O
    /// error of the underlying body is passed through unchanged).
    pub fn from_io(e: &io::Error) -> Option<&ChunkedError> {
        e.get_ref().and_then(|e| e.downcast_ref::<ChunkedError>())
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

/// `YYYYMMDDTHHMMSSZ` in UTC, as the chunk strings to sign carry the request time.
fn amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
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
    /// Nothing to verify. A stray `x-amz-trailer-signature` (which some encoders add) is
    /// ignored rather than refused, as are chunk extensions: the client asked for no signing.
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

    fn verify_trailer(&self, canonical_trailers: &str, declared: &[u8]) -> Result<(), ChunkedError> {
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
                    let budget = MAX_TRAILER_SECTION - self.trailer_bytes;
                    let line = match self.read_line(budget) {
                        Ok(Some(line)) => line,
                        Ok(None) => return self.need_input("inside the trailer section"),
                        Err(LineError::TooLong) => {
                            return Err(ChunkedError::MalformedTrailer("trailer section too large"));
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
        let (name, value) = line
            .split_once(':')
            .ok_or(ChunkedError::MalformedTrailer("a trailer line has no colon"))?;
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
        if let Some(algorithm) = checksum_trailer(&name) {
            if Checksum::from_base64(algorithm, value).is_none() {
                return Err(ChunkedError::InvalidTrailerValue(name));
            }
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
