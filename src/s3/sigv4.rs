//! AWS Signature Version 4 as S3 speaks it: parsing the credentials of an incoming request
//! (Authorization header or presigned query), verifying them once the caller has looked up the
//! secret for the access key id, and a client-side signer for tests and `cairn bench`.
//! Pure: no I/O, no clock (the caller passes `now`). The signing key and seed signature of a
//! verified request go on to the aws-chunked decoder.
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html>

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::error::{ErrorCode, S3Error};
use super::router::decode_query;

/// The `x-amz-content-sha256` value (and presigned payload line) of a body that is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// AWS refuses presigned URLs valid for longer than seven days.
pub const MAX_PRESIGNED_EXPIRY_SECS: u64 = 604_800;
/// How far a header-signed request's time may be from ours, as on AWS. This window is all that
/// stops a captured request from being replayed later.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(15);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";
const TERMINATOR: &str = "aws4_request";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_DATE: &str = "x-amz-date";
const SIGNATURE_PARAM: &str = "X-Amz-Signature";

const AMZ_DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// RFC 1123, the only `Date` form SigV4 clients send.
const HTTP_DATE_FORMAT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Bytes `uri_encode` escapes: all but RFC 3986 unreserved characters.
const ENCODE_ALL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const ENCODE_KEEP_SLASH: &AsciiSet = &ENCODE_ALL.remove(b'/');

const MALFORMED_CREDENTIAL: &str =
    "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".";
const EXPECTED_FIELDS: &str = "expected Credential, SignedHeaders and Signature";
const PRESIGNED_PARAMS_REQUIRED: &str = "Query-string authentication version 4 requires the \
     X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
     X-Amz-Expires parameters.";

/// What the client declared about the body in `x-amz-content-sha256` (or, for a presigned URL,
/// in the `X-Amz-Content-Sha256` parameter; `Unsigned` when it declared nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadHash {
    Unsigned,
    Sha256([u8; 32]),
    /// A `STREAMING-*` value; the aws-chunked decoder checks which one and verifies it.
    Streaming(String),
}

/// The parts of an incoming request that SigV4 covers. `raw_path` is the path exactly as
/// received (still percent-encoded); `raw_query` the query string as received, without `?`.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a Method,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
}

/// Result of parsing (not yet verifying) the credentials of a request.
#[derive(Debug)]
pub enum Credentials {
    Anonymous,
    Header(Pending),
    Presigned(Pending),
}

/// Well-formed credentials whose signature is still to be checked against the secret.
#[derive(Debug, Clone)]
pub struct Pending {
    access_key_id: String,
    /// `YYYYMMDD` of the credential scope; equal to the date part of `date`.
    scope_date: String,
    region: String,
    date: OffsetDateTime,
    /// Lowercase names, in the client's order.
    signed_headers: Vec<String>,
    signature: String,
    payload: PayloadHash,
    /// The last line of the canonical request, exactly as the client declared it.
    payload_line: String,
    /// `Some` for a presigned URL: its `X-Amz-Expires`, not yet checked against the maximum.
    expires_secs: Option<u64>,
}

/// A request whose signature matched.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    pub payload: PayloadHash,
    pub signing_key: [u8; 32],
    pub date: OffsetDateTime,
    /// `YYYYMMDD/region/s3/aws4_request`
    pub scope: String,
    /// The request's signature (lowercase hex), which the first aws-chunked chunk chains from.
    pub seed_signature: String,
}

/// Why a request failed authentication. `Display` is the message S3 sends.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("The authorization header is malformed; {0}")]
    HeaderMalformed(String),
    #[error("{0}")]
    QueryMalformed(String),
    #[error(
        "The authorization mechanism you have provided is not supported. Please use \
         AWS4-HMAC-SHA256."
    )]
    UnsupportedMechanism,
    #[error(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature \
         query string parameter or the Authorization header should be specified"
    )]
    MultipleMechanisms,
    #[error("Missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    #[error(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a \
         valid sha256 value."
    )]
    InvalidContentSha256,
    #[error("AWS authentication requires a valid Date or x-amz-date header")]
    MissingDate,
    #[error("The difference between the request time and the current time is too large.")]
    TimeTooSkewed,
    #[error("Request has expired")]
    Expired,
    /// An `X-Amz-Expires` below zero or above a week: answered, as S3 does (and as ceph's
    /// s3-tests check), with 403 like any URL that is not valid now.
    #[error("{0}")]
    ExpiryOutOfRange(&'static str),
    #[error("Request is not valid yet")]
    NotYetValid,
    #[error("There were headers present in the request which were not signed: {0}")]
    HeadersNotSigned(String),
    #[error(
        "The request signature we calculated does not match the signature you provided. Check \
         your key and signing method."
    )]
    SignatureMismatch,
}

impl AuthError {
    /// The AWS error code S3 answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::HeaderMalformed(_) => ErrorCode::AuthorizationHeaderMalformed,
            AuthError::QueryMalformed(_) => ErrorCode::AuthorizationQueryParametersError,
            AuthError::UnsupportedMechanism | AuthError::MissingContentSha256 => {
                ErrorCode::InvalidRequest
            }
            AuthError::MultipleMechanisms | AuthError::InvalidContentSha256 => {
                ErrorCode::InvalidArgument
            }
            AuthError::MissingDate
            | AuthError::Expired
            | AuthError::ExpiryOutOfRange(_)
            | AuthError::NotYetValid
            | AuthError::HeadersNotSigned(_) => ErrorCode::AccessDenied,
            AuthError::TimeTooSkewed => ErrorCode::RequestTimeTooSkewed,
            AuthError::SignatureMismatch => ErrorCode::SignatureDoesNotMatch,
        }
    }
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        S3Error::new(e.code()).with_message(e.to_string())
    }
}

/// Finds out how a request authenticates and parses its credentials without the secret.
pub fn parse_credentials(req: &RequestParts<'_>) -> Result<Credentials, AuthError> {
    let query = decode_query(req.raw_query);
    let has = |name: &str| query.iter().any(|(n, _)| n.as_slice() == name.as_bytes());
    let presigned = has("X-Amz-Algorithm") || has("X-Amz-Credential") || has(SIGNATURE_PARAM);
    let mut authorization = req.headers.get_all(http::header::AUTHORIZATION).iter();
    match authorization.next() {
        Some(_) if presigned => Err(AuthError::MultipleMechanisms),
        Some(_) if authorization.next().is_some() => Err(AuthError::HeaderMalformed(
            "more than one Authorization header".into(),
        )),
        Some(value) => parse_header_auth(req, value).map(Credentials::Header),
        // Signature Version 2 presigned URLs carry AWSAccessKeyId; refuse them rather than
        // serve the request as anonymous.
        None if !presigned && has("AWSAccessKeyId") => Err(AuthError::UnsupportedMechanism),
        None if presigned => parse_presigned(req, &query).map(Credentials::Presigned),
        None => Ok(Credentials::Anonymous),
    }
}

impl Pending {
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Checks the request time, then recomputes the signature with `secret` and compares it in
    /// constant time. `req` must be the request the credentials were parsed from.
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Verified, AuthError> {
        self.check_time(now)?;
        self.check_all_amz_headers_signed(req.headers)?;
        let names: Vec<&str> = self.signed_headers.iter().map(String::as_str).collect();
        let canonical_headers = canonical_headers(req.headers, &names);
        let request = canonical_request(
            req.method.as_str(),
            &canonical_uri(req.raw_path),
            &canonical_query(req.raw_query),
            &canonical_headers,
            &names.join(";"),
            &self.payload_line,
        );
        let scope = credential_scope(&self.scope_date, &self.region);
        let to_sign = string_to_sign(&amz_date(self.date), &scope, &request);
        let key = signing_key(secret, &self.scope_date, &self.region, SERVICE);
        let expected = signature(&key, &to_sign);
        if !bool::from(expected.as_bytes().ct_eq(self.signature.as_bytes())) {
            return Err(AuthError::SignatureMismatch);
        }
        Ok(Verified {
            access_key_id: self.access_key_id.clone(),
            payload: self.payload.clone(),
            signing_key: key,
            date: self.date,
            scope,
            seed_signature: expected,
        })
    }

    fn check_time(&self, now: OffsetDateTime) -> Result<(), AuthError> {
        let Some(expires_secs) = self.expires_secs else {
            if (now - self.date).abs() > MAX_CLOCK_SKEW {
                return Err(AuthError::TimeTooSkewed);
            }
            return Ok(());
        };
        if expires_secs > MAX_PRESIGNED_EXPIRY_SECS {
            return Err(AuthError::ExpiryOutOfRange(
                "X-Amz-Expires must be less than a week (in seconds) that is; the maximum \
                 expires is 604800 seconds",
            ));
        }
        if self.date - now > MAX_CLOCK_SKEW {
            return Err(AuthError::NotYetValid);
        }
        // Bounded by the check above, so the cast cannot wrap.
        if now > self.date + Duration::seconds(expires_secs as i64) {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    /// AWS refuses `x-amz-*` headers left out of the signature: they change what a request
    /// does (copy source, ACL, metadata), so an intermediary must not be able to add them.
    /// `x-amz-content-sha256` is exempt because its value is signed as the payload line.
    fn check_all_amz_headers_signed(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let unsigned: Vec<&str> = headers
            .keys()
            .map(HeaderName::as_str)
            .filter(|name| {
                name.starts_with("x-amz-")
                    && *name != CONTENT_SHA256
                    && !self.signed_headers.iter().any(|s| s == name)
            })
            .collect();
        if unsigned.is_empty() {
            Ok(())
        } else {
            Err(AuthError::HeadersNotSigned(unsigned.join(", ")))
        }
    }
}

fn parse_header_auth(req: &RequestParts<'_>, value: &HeaderValue) -> Result<Pending, AuthError> {
    let malformed = |message: &str| AuthError::HeaderMalformed(message.to_owned());
    let value = value
        .to_str()
        .map_err(|_| malformed("it is not visible ASCII"))?
        .trim();
    let (algorithm, fields) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedMechanism);
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',') {
        let (name, field_value) = field
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed(EXPECTED_FIELDS))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(AuthError::HeaderMalformed(format!(
                    "unknown field \"{name}\""
                )));
            }
        };
        if slot.replace(field_value).is_some() {
            return Err(AuthError::HeaderMalformed(format!("{name} is repeated")));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(malformed(EXPECTED_FIELDS));
    };
    let scope = parse_credential(credential).map_err(AuthError::HeaderMalformed)?;
    let signed_headers =
        parse_signed_headers(signed_headers).map_err(AuthError::HeaderMalformed)?;
    let date = request_date(req.headers).ok_or(AuthError::MissingDate)?;
    check_scope_date(&scope, date).map_err(AuthError::HeaderMalformed)?;
    let payload_line = req
        .headers
        .get(CONTENT_SHA256)
        .ok_or(AuthError::MissingContentSha256)?
        .to_str()
        .map_err(|_| AuthError::InvalidContentSha256)?;
    Ok(Pending {
        access_key_id: scope.access_key_id.to_owned(),
        scope_date: scope.date.to_owned(),
        region: scope.region.to_owned(),
        date,
        signed_headers,
        signature: signature.to_owned(),
        payload: parse_payload_hash(payload_line)?,
        payload_line: payload_line.to_owned(),
        expires_secs: None,
    })
}

fn parse_presigned(req: &RequestParts<'_>, query: &[QueryPair]) -> Result<Pending, AuthError> {
    let malformed = |message: &str| AuthError::QueryMalformed(message.to_owned());
    let param = |name: &str| -> Result<&str, AuthError> {
        let (_, value) = query
            .iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
            .ok_or_else(|| malformed(PRESIGNED_PARAMS_REQUIRED))?;
        std::str::from_utf8(value)
            .map_err(|_| AuthError::QueryMalformed(format!("{name} is not valid UTF-8")))
    };
    if param("X-Amz-Algorithm")? != ALGORITHM {
        return Err(malformed(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let scope = parse_credential(param("X-Amz-Credential")?).map_err(|message| {
        AuthError::QueryMalformed(format!(
            "Error parsing the X-Amz-Credential parameter; {message}"
        ))
    })?;
    let date = parse_amz_date(param("X-Amz-Date")?).ok_or_else(|| {
        malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    check_scope_date(&scope, date).map_err(AuthError::QueryMalformed)?;
    let expires = param("X-Amz-Expires")?;
    let expires_secs = expires.parse::<u64>().map_err(|_| {
        if expires
            .strip_prefix('-')
            .is_some_and(|n| n.parse::<u64>().is_ok())
        {
            AuthError::ExpiryOutOfRange("X-Amz-Expires must be non-negative")
        } else {
            malformed("X-Amz-Expires should be a number")
        }
    })?;
    let signed_headers =
        parse_signed_headers(param("X-Amz-SignedHeaders")?).map_err(AuthError::QueryMalformed)?;
    let signature = param(SIGNATURE_PARAM)?;
    // A presigner cannot know the body, so the payload line is UNSIGNED-PAYLOAD unless the
    // client declared a hash (some SDKs hoist x-amz-content-sha256 into the query).
    let declared = match query
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(CONTENT_SHA256.as_bytes()))
    {
        Some((_, value)) => {
            Some(std::str::from_utf8(value).map_err(|_| AuthError::InvalidContentSha256)?)
        }
        None => match req.headers.get(CONTENT_SHA256) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| AuthError::InvalidContentSha256)?,
            ),
            None => None,
        },
    };
    let payload_line = declared.unwrap_or(UNSIGNED_PAYLOAD);
    Ok(Pending {
        access_key_id: scope.access_key_id.to_owned(),
        scope_date: scope.date.to_owned(),
        region: scope.region.to_owned(),
        date,
        signed_headers,
        signature: signature.to_owned(),
        payload: parse_payload_hash(payload_line)?,
        payload_line: payload_line.to_owned(),
        expires_secs: Some(expires_secs),
    })
}

struct CredentialScope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
}

/// Parses `AKID/YYYYMMDD/region/s3/aws4_request`; any region is accepted, since a client signs
/// with whatever region it was configured with.
fn parse_credential(credential: &str) -> Result<CredentialScope<'_>, String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(MALFORMED_CREDENTIAL.into());
    };
    if [access_key_id, date, region].iter().any(|p| p.is_empty()) {
        return Err(MALFORMED_CREDENTIAL.into());
    }
    if service != SERVICE {
        return Err(format!(
            "incorrect service \"{service}\". This endpoint belongs to \"{SERVICE}\"."
        ));
    }
    if terminator != TERMINATOR {
        return Err(format!(
            "incorrect terminal \"{terminator}\". This endpoint uses \"{TERMINATOR}\"."
        ));
    }
    Ok(CredentialScope {
        access_key_id,
        date,
        region,
    })
}

fn check_scope_date(scope: &CredentialScope<'_>, date: OffsetDateTime) -> Result<(), String> {
    let datetime = amz_date(date);
    if scope.date == &datetime[..8] {
        Ok(())
    } else {
        Err(format!(
            "Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{}\".",
            scope.date,
            &datetime[..8]
        ))
    }
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in list.split(';') {
        let name = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("invalid header name \"{name}\" in SignedHeaders"));
        }
        names.push(name);
    }
    if !names.iter().any(|n| n == "host") {
        return Err("SignedHeaders must include host".into());
    }
    Ok(names)
}

/// The request time: `x-amz-date`, or the `Date` header when there is no `x-amz-date`.
fn request_date(headers: &HeaderMap) -> Option<OffsetDateTime> {
    match headers.get(X_AMZ_DATE) {
        Some(value) => parse_amz_date(value.to_str().ok()?),
        None => {
            let value = headers.get(http::header::DATE)?.to_str().ok()?;
            PrimitiveDateTime::parse(value, HTTP_DATE_FORMAT)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        }
    }
}

fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(value, AMZ_DATE_FORMAT)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn parse_payload_hash(value: &str) -> Result<PayloadHash, AuthError> {
    if value == UNSIGNED_PAYLOAD {
        return Ok(PayloadHash::Unsigned);
    }
    if value.starts_with("STREAMING-") {
        return Ok(PayloadHash::Streaming(value.to_owned()));
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(value, &mut digest).map_err(|_| AuthError::InvalidContentSha256)?;
    Ok(PayloadHash::Sha256(digest))
}

/// `YYYYMMDDTHHMMSSZ` in UTC, the form SigV4 signs (and aws-chunked chunk signatures).
pub fn amz_date(t: OffsetDateTime) -> String {
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

fn credential_scope(date: &str, region: &str) -> String {
    format!("{date}/{region}/{SERVICE}/{TERMINATOR}")
}

/// S3's URI encoding of one path segment or query component: RFC 3986 unreserved characters
/// kept, every other byte `%XX` with uppercase hex; `/` kept when `encode_slash` is false.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let set = if encode_slash {
        ENCODE_ALL
    } else {
        ENCODE_KEEP_SLASH
    };
    percent_encode(s.as_bytes(), set).to_string()
}

/// The canonical URI of a path as received. S3 encodes the path once (other services encode
/// it twice), and clients disagree on which characters to escape (`!`, `'`, `*`, `+`), so
/// every segment is decoded and re-encoded the one canonical way. `+` in a path is a plus.
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".into();
    }
    raw_path
        .split('/')
        .map(|segment| {
            let decoded = Cow::<[u8]>::from(percent_decode(segment.as_bytes()));
            percent_encode(&decoded, ENCODE_ALL).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query string of a query as received: names and values decoded and
/// re-encoded, sorted by name then value, a parameter without `=` given an empty value, and
/// `X-Amz-Signature` left out. Decoded by the router's own [`decode_query`], so the values
/// signed are the values served: a `+` is a plus here as there.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = decode_query(raw_query)
        .into_iter()
        .filter(|(name, _)| name.as_slice() != SIGNATURE_PARAM.as_bytes())
        .map(|(name, value)| {
            (
                percent_encode(&name, ENCODE_ALL).to_string(),
                percent_encode(&value, ENCODE_ALL).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

type QueryPair = (Vec<u8>, Vec<u8>);

/// `name:value\n` for each signed header: values trimmed with inner runs of spaces collapsed,
/// repeated headers joined with `,`. A value that is not UTF-8 is read as ISO-8859-1, as HTTP
/// defines header bytes and as botocore sends non-ASCII text (`x-amz-meta-*: é` goes out as the
/// byte 0xE9 but is signed as the character é).
fn canonical_headers(headers: &HeaderMap, names: &[&str]) -> String {
    let mut out = String::new();
    for name in names {
        let mut values = Vec::new();
        for value in headers.get_all(*name) {
            let bytes = value.as_bytes();
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
            };
            values.push(collapse_spaces(&text));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

fn collapse_spaces(value: &str) -> String {
    value
        .split(' ')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The canonical request. `canonical_headers` holds one `name:value\n` line per signed header;
/// `signed_headers` is their names joined with `;`.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n\
         {payload_hash}"
    )
}

/// `datetime` is `YYYYMMDDTHHMMSSZ`, `scope` is `YYYYMMDD/region/s3/aws4_request`.
pub fn string_to_sign(datetime: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{datetime}\n{scope}\n{hash}")
}

/// The key derived from the secret for one day, region and service; `date` is `YYYYMMDD`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let date_key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let region_key = hmac_sha256(&date_key, region.as_bytes());
    let service_key = hmac_sha256(&region_key, service.as_bytes());
    hmac_sha256(&service_key, TERMINATOR.as_bytes())
}

/// The signature of `string_to_sign`, lowercase hex.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The client's side: who signs, where, and when.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub now: OffsetDateTime,
}

/// Adds `x-amz-date`, `x-amz-content-sha256` (= `payload_hash`, e.g. hex SHA-256 or
/// [`UNSIGNED_PAYLOAD`]) and `Authorization` to `headers`, which must already hold `host`.
/// Signs `host`, `date`, `range`, `content-md5`, `content-type` when present and every
/// `x-amz-*` header. `raw_path` and `raw_query` must be encoded as they will be sent.
/// A `payload_hash` or header value that cannot be sent as such leaves the request unsigned,
/// and the server refuses it.
pub fn sign_request(
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    headers: &mut HeaderMap,
    payload_hash: &str,
    params: &SigningParams<'_>,
) {
    let datetime = amz_date(params.now);
    let (Ok(date_value), Ok(payload_value)) = (
        HeaderValue::from_str(&datetime),
        HeaderValue::from_str(payload_hash),
    ) else {
        return;
    };
    headers.insert(X_AMZ_DATE, date_value);
    headers.insert(CONTENT_SHA256, payload_value);
    let mut names: Vec<&str> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| {
            matches!(
                *name,
                "host" | "date" | "range" | "content-md5" | "content-type"
            ) || name.starts_with("x-amz-")
        })
        .collect();
    names.sort_unstable();
    let canonical_headers = canonical_headers(headers, &names);
    let signed_headers = names.join(";");
    let request = canonical_request(
        method.as_str(),
        &canonical_uri(raw_path),
        &canonical_query(raw_query),
        &canonical_headers,
        &signed_headers,
        payload_hash,
    );
    let scope = credential_scope(&datetime[..8], params.region);
    let key = signing_key(params.secret, &datetime[..8], params.region, SERVICE);
    let signature = signature(&key, &string_to_sign(&datetime, &scope, &request));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        params.access_key_id
    );
    if let Ok(value) = HeaderValue::from_str(&authorization) {
        headers.insert(http::header::AUTHORIZATION, value);
    }
}

/// The query string of a presigned URL: `raw_query` (already encoded) followed by the
/// `X-Amz-*` parameters, the signature last. Only `host` is signed and the payload is
/// unsigned. `expires_secs` is not capped, so tests can build URLs the server must refuse.
pub fn presign(
    method: &Method,
    host: &str,
    raw_path: &str,
    raw_query: &str,
    expires_secs: u64,
    params: &SigningParams<'_>,
) -> String {
    let datetime = amz_date(params.now);
    let scope = credential_scope(&datetime[..8], params.region);
    let credential = uri_encode(&format!("{}/{scope}", params.access_key_id), true);
    let mut query = String::from(raw_query);
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(&format!(
        "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={credential}&X-Amz-Date={datetime}\
         &X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host"
    ));
    let request = canonical_request(
        method.as_str(),
        &canonical_uri(raw_path),
        &canonical_query(&query),
        &format!("host:{}\n", collapse_spaces(host)),
        "host",
        UNSIGNED_PAYLOAD,
    );
    let key = signing_key(params.secret, &datetime[..8], params.region, SERVICE);
    let signature = signature(&key, &string_to_sign(&datetime, &scope, &request));
    query.push_str(&format!("&{SIGNATURE_PARAM}={signature}"));
    query
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "examplebucket.s3.amazonaws.com";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const EXAMPLE_DATE: OffsetDateTime = datetime!(2013-05-24 00:00:00 UTC);
    const EXAMPLE_SCOPE: &str = "20130524/us-east-1/s3/aws4_request";

    fn params(now: OffsetDateTime) -> SigningParams<'static> {
        SigningParams {
            access_key_id: AKID,
            secret: SECRET,
            region: "us-east-1",
            now,
        }
    }

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn parts<'a>(
        method: &'a Method,
        raw_path: &'a str,
        raw_query: &'a str,
        headers: &'a HeaderMap,
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            raw_path,
            raw_query,
            headers,
        }
    }

    fn pending(req: &RequestParts<'_>) -> Pending {
        match parse_credentials(req).unwrap() {
            Credentials::Header(p) | Credentials::Presigned(p) => p,
            Credentials::Anonymous => panic!("expected credentials"),
        }
    }

    fn verify(
        req: &RequestParts<'_>,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Verified, AuthError> {
        pending(req).verify(req, secret, now)
    }

    fn parse_error(req: &RequestParts<'_>) -> AuthError {
        parse_credentials(req).unwrap_err()
    }

    /// One of AWS's worked examples: the request, and the intermediate values AWS publishes.
    struct Example {
        method: Method,
        path: &'static str,
        query: &'static str,
        /// Headers as the client sends them, without Authorization.
        headers: &'static [(&'static str, &'static str)],
        canonical_request: &'static str,
        canonical_request_sha256: &'static str,
        signed_headers: &'static str,
        signature: &'static str,
    }

    impl Example {
        fn check(&self) {
            let headers = header_map(self.headers);
            let names: Vec<&str> = self.signed_headers.split(';').collect();
            let payload = headers[CONTENT_SHA256].to_str().unwrap();
            let request = canonical_request(
                self.method.as_str(),
                &canonical_uri(self.path),
                &canonical_query(self.query),
                &canonical_headers(&headers, &names),
                self.signed_headers,
                payload,
            );
            assert_eq!(request, self.canonical_request);
            let to_sign = string_to_sign("20130524T000000Z", EXAMPLE_SCOPE, &request);
            assert_eq!(
                to_sign,
                format!(
                    "AWS4-HMAC-SHA256\n20130524T000000Z\n{EXAMPLE_SCOPE}\n{}",
                    self.canonical_request_sha256
                )
            );
            let key = signing_key(SECRET, "20130524", "us-east-1", "s3");
            assert_eq!(signature(&key, &to_sign), self.signature);

            // The client signer produces the same Authorization header...
            let mut signed = header_map(self.headers);
            signed.remove(X_AMZ_DATE);
            signed.remove(CONTENT_SHA256);
            sign_request(
                &self.method,
                self.path,
                self.query,
                &mut signed,
                payload,
                &params(EXAMPLE_DATE),
            );
            let authorization = format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/{EXAMPLE_SCOPE}, SignedHeaders={}, Signature={}",
                self.signed_headers, self.signature
            );
            assert_eq!(signed[http::header::AUTHORIZATION], authorization.as_str());

            // ...and the verifier accepts it at its date.
            let req = parts(&self.method, self.path, self.query, &signed);
            let Credentials::Header(pending) = parse_credentials(&req).unwrap() else {
                panic!("expected header credentials");
            };
            assert_eq!(pending.access_key_id(), AKID);
            assert_eq!(pending.region(), "us-east-1");
            let verified = pending.verify(&req, SECRET, EXAMPLE_DATE).unwrap();
            assert_eq!(verified.access_key_id, AKID);
            assert_eq!(verified.signing_key, key);
            assert_eq!(verified.scope, EXAMPLE_SCOPE);
            assert_eq!(verified.seed_signature, self.signature);
            assert_eq!(verified.date, EXAMPLE_DATE);
        }
    }

    // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
    // ("Examples of signature calculations").
    const GET_OBJECT: Example = Example {
        method: Method::GET,
        path: "/test.txt",
        query: "",
        headers: &[
            ("host", HOST),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ],
        canonical_request: "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n\
            range:bytes=0-9\n\
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
            x-amz-date:20130524T000000Z\n\n\
            host;range;x-amz-content-sha256;x-amz-date\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        canonical_request_sha256: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        signed_headers: "host;range;x-amz-content-sha256;x-amz-date",
        signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    };

    const PUT_OBJECT: Example = Example {
        method: Method::PUT,
        path: "/test%24file.text",
        query: "",
        headers: &[
            ("host", HOST),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            (
                "x-amz-content-sha256",
                "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            ),
        ],
        canonical_request: "PUT\n/test%24file.text\n\n\
            date:Fri, 24 May 2013 00:00:00 GMT\n\
            host:examplebucket.s3.amazonaws.com\n\
            x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n\
            x-amz-date:20130524T000000Z\n\
            x-amz-storage-class:REDUCED_REDUNDANCY\n\n\
            date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n\
            44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        canonical_request_sha256: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        signed_headers: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    };

    const GET_LIFECYCLE: Example = Example {
        method: Method::GET,
        path: "/",
        query: "lifecycle",
        headers: &[
            ("host", HOST),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ],
        canonical_request: "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n\
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
            x-amz-date:20130524T000000Z\n\n\
            host;x-amz-content-sha256;x-amz-date\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        canonical_request_sha256: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
        signed_headers: "host;x-amz-content-sha256;x-amz-date",
        signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    };

    const LIST_OBJECTS: Example = Example {
        method: Method::GET,
        path: "/",
        // Out of order on purpose: the canonical query sorts.
        query: "prefix=J&max-keys=2",
        headers: &[
            ("host", HOST),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ],
        canonical_request: "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n\
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
            x-amz-date:20130524T000000Z\n\n\
            host;x-amz-content-sha256;x-amz-date\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        canonical_request_sha256: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
        signed_headers: "host;x-amz-content-sha256;x-amz-date",
        signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    };

    #[test]
    fn aws_example_get_object_with_range() {
        GET_OBJECT.check();
    }

    #[test]
    fn aws_example_put_object() {
        PUT_OBJECT.check();
    }

    #[test]
    fn aws_example_get_bucket_lifecycle() {
        GET_LIFECYCLE.check();
    }

    #[test]
    fn aws_example_list_objects() {
        LIST_OBJECTS.check();
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
    // publishes the derived key and signature for this IAM request; S3 derives keys the same way.
    #[test]
    fn signing_key_and_signature_match_the_published_iam_vector() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let to_sign = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
                       f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            signature(&key, to_sign),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
        &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
        &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
        &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

    // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
    #[test]
    fn aws_example_presigned_url() {
        let request = canonical_request(
            "GET",
            &canonical_uri("/test.txt"),
            &canonical_query(PRESIGNED_QUERY),
            "host:examplebucket.s3.amazonaws.com\n",
            "host",
            UNSIGNED_PAYLOAD,
        );
        assert_eq!(
            request,
            "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n\
             host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
        );
        let to_sign = string_to_sign("20130524T000000Z", EXAMPLE_SCOPE, &request);
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
        );
        let key = signing_key(SECRET, "20130524", "us-east-1", "s3");
        assert_eq!(
            signature(&key, &to_sign),
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        let query = presign(
            &Method::GET,
            HOST,
            "/test.txt",
            "",
            86400,
            &params(EXAMPLE_DATE),
        );
        assert_eq!(query, PRESIGNED_QUERY);

        let headers = header_map(&[("host", HOST)]);
        let req = parts(&Method::GET, "/test.txt", PRESIGNED_QUERY, &headers);
        let Credentials::Presigned(pending) = parse_credentials(&req).unwrap() else {
            panic!("expected presigned credentials");
        };
        let later = EXAMPLE_DATE + Duration::hours(23);
        let verified = pending.verify(&req, SECRET, later).unwrap();
        assert_eq!(verified.payload, PayloadHash::Unsigned);
        assert_eq!(verified.scope, EXAMPLE_SCOPE);
        assert_eq!(
            verified.seed_signature,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn presigned_url_time_limits() {
        let headers = header_map(&[("host", HOST)]);
        let req = parts(&Method::GET, "/test.txt", PRESIGNED_QUERY, &headers);
        let end = EXAMPLE_DATE + Duration::seconds(86400);
        assert!(verify(&req, SECRET, end).is_ok());
        let err = verify(&req, SECRET, end + Duration::seconds(1)).unwrap_err();
        assert!(matches!(err, AuthError::Expired));
        assert_eq!(err.code(), ErrorCode::AccessDenied);
        assert_eq!(err.to_string(), "Request has expired");
        let err = verify(&req, SECRET, EXAMPLE_DATE - Duration::minutes(16)).unwrap_err();
        assert!(matches!(err, AuthError::NotYetValid));
        assert_eq!(err.code(), ErrorCode::AccessDenied);
        assert!(verify(&req, SECRET, EXAMPLE_DATE - Duration::minutes(14)).is_ok());
    }

    #[test]
    fn presigned_expiry_over_seven_days_is_refused() {
        let headers = header_map(&[("host", HOST)]);
        for (expires, ok) in [(MAX_PRESIGNED_EXPIRY_SECS, true), (604_801, false)] {
            let query = presign(&Method::GET, HOST, "/k", "", expires, &params(EXAMPLE_DATE));
            let req = parts(&Method::GET, "/k", &query, &headers);
            let result = verify(&req, SECRET, EXAMPLE_DATE);
            if ok {
                assert!(result.is_ok());
            } else {
                assert_eq!(result.unwrap_err().code(), ErrorCode::AccessDenied);
            }
        }
    }

    #[test]
    fn presigned_url_rejects_tampering() {
        let headers = header_map(&[("host", HOST)]);
        let tampered = PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=86401");
        let req = parts(&Method::GET, "/test.txt", &tampered, &headers);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let extra = format!("{PRESIGNED_QUERY}&versionId=1");
        let req = parts(&Method::GET, "/test.txt", &extra, &headers);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let req = parts(&Method::PUT, "/test.txt", PRESIGNED_QUERY, &headers);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let other_host = header_map(&[("host", "evil.example")]);
        let req = parts(&Method::GET, "/test.txt", PRESIGNED_QUERY, &other_host);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let req = parts(&Method::GET, "/test.txt", PRESIGNED_QUERY, &headers);
        assert!(matches!(
            verify(&req, "wrong", EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
    }

    #[test]
    fn malformed_presigned_queries() {
        let headers = header_map(&[("host", HOST)]);
        let cases = [
            // A required parameter is missing.
            PRESIGNED_QUERY.replace("&X-Amz-Expires=86400", ""),
            PRESIGNED_QUERY.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256&", ""),
            PRESIGNED_QUERY.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            PRESIGNED_QUERY.replace("%2Fs3%2F", "%2Fec2%2F"),
            PRESIGNED_QUERY.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"),
            PRESIGNED_QUERY.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z"),
            PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=day"),
            PRESIGNED_QUERY.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=range"),
        ];
        for query in &cases {
            let req = parts(&Method::GET, "/test.txt", query, &headers);
            let err = parse_error(&req);
            assert_eq!(
                err.code(),
                ErrorCode::AuthorizationQueryParametersError,
                "{query}: {err}"
            );
        }
    }

    #[test]
    fn negative_expiry_is_access_denied() {
        let headers = header_map(&[("host", HOST)]);
        let query = PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=-1");
        let req = parts(&Method::GET, "/test.txt", &query, &headers);
        assert_eq!(parse_error(&req).code(), ErrorCode::AccessDenied);
    }

    #[test]
    fn presigned_payload_hash_declared_in_query() {
        let headers = header_map(&[("host", HOST)]);
        let digest = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        let raw = format!("X-Amz-Content-Sha256={digest}");
        let query = presign(&Method::PUT, HOST, "/k", &raw, 60, &params(EXAMPLE_DATE));
        let req = parts(&Method::PUT, "/k", &query, &headers);
        // presign() signs UNSIGNED-PAYLOAD, so the declared hash no longer matches.
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let Credentials::Presigned(pending) = parse_credentials(&req).unwrap() else {
            panic!("expected presigned credentials");
        };
        assert_eq!(pending.payload_line, digest);
        let mut expected = [0u8; 32];
        hex::decode_to_slice(digest, &mut expected).unwrap();
        assert_eq!(pending.payload, PayloadHash::Sha256(expected));
    }

    fn signed_get(extra: &[(&str, &str)]) -> HeaderMap {
        let mut headers = header_map(&[("host", HOST)]);
        for (name, value) in extra {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        sign_request(
            &Method::GET,
            "/test.txt",
            "",
            &mut headers,
            EMPTY_SHA256,
            &params(EXAMPLE_DATE),
        );
        headers
    }

    #[test]
    fn header_auth_rejects_changes() {
        let headers = signed_get(&[("range", "bytes=0-9")]);
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        assert!(verify(&req, SECRET, EXAMPLE_DATE).is_ok());

        let mut changed = headers.clone();
        changed.insert("range", HeaderValue::from_static("bytes=0-8"));
        let req = parts(&Method::GET, "/test.txt", "", &changed);
        let err = verify(&req, SECRET, EXAMPLE_DATE).unwrap_err();
        assert_eq!(err.code(), ErrorCode::SignatureDoesNotMatch);

        let req = parts(&Method::GET, "/test.tx", "", &headers);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let req = parts(&Method::GET, "/test.txt", "acl", &headers);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let req = parts(&Method::DELETE, "/test.txt", "", &headers);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        assert!(matches!(
            verify(
                &req,
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEz",
                EXAMPLE_DATE
            ),
            Err(AuthError::SignatureMismatch)
        ));

        let mut payload = headers.clone();
        payload.insert(CONTENT_SHA256, HeaderValue::from_static(UNSIGNED_PAYLOAD));
        let req = parts(&Method::GET, "/test.txt", "", &payload);
        assert!(matches!(
            verify(&req, SECRET, EXAMPLE_DATE),
            Err(AuthError::SignatureMismatch)
        ));
    }

    #[test]
    fn header_auth_clock_skew() {
        let headers = signed_get(&[]);
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        for minutes in [-14, 14] {
            assert!(verify(&req, SECRET, EXAMPLE_DATE + Duration::minutes(minutes)).is_ok());
        }
        for minutes in [-16, 16] {
            let err = verify(&req, SECRET, EXAMPLE_DATE + Duration::minutes(minutes)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::RequestTimeTooSkewed);
        }
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let mut headers = signed_get(&[]);
        headers.insert("x-amz-acl", HeaderValue::from_static("public-read"));
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        let err = verify(&req, SECRET, EXAMPLE_DATE).unwrap_err();
        assert_eq!(err.code(), ErrorCode::AccessDenied);
        assert!(err.to_string().ends_with("x-amz-acl"), "{err}");
    }

    #[test]
    fn date_header_stands_in_for_x_amz_date() {
        let headers = header_map(&[
            ("host", HOST),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
        ]);
        let names = ["date", "host", "x-amz-content-sha256"];
        let request = canonical_request(
            "GET",
            "/test.txt",
            "",
            &canonical_headers(&headers, &names),
            &names.join(";"),
            UNSIGNED_PAYLOAD,
        );
        let key = signing_key(SECRET, "20130524", "us-east-1", "s3");
        let sig = signature(
            &key,
            &string_to_sign("20130524T000000Z", EXAMPLE_SCOPE, &request),
        );
        let mut headers = headers;
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/{EXAMPLE_SCOPE},SignedHeaders={},Signature={sig}",
                names.join(";")
            ))
            .unwrap(),
        );
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        let verified = verify(&req, SECRET, EXAMPLE_DATE).unwrap();
        assert_eq!(verified.payload, PayloadHash::Unsigned);
        assert_eq!(verified.date, EXAMPLE_DATE);
    }

    fn with_authorization(authorization: &str) -> HeaderMap {
        let mut headers = signed_get(&[]);
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn malformed_authorization_headers() {
        let sig = "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let good = format!("Credential={AKID}/{EXAMPLE_SCOPE}");
        let scope = |rest: &str| format!("Credential={AKID}/20130524/{rest}");
        let fields = [
            // SignedHeaders without host.
            format!("{good}, SignedHeaders=x-amz-date, {sig}"),
            // Credential scopes: too short, wrong service, wrong terminator, too long.
            format!("{}, SignedHeaders=host, {sig}", scope("us-east-1/s3")),
            format!(
                "{}, SignedHeaders=host, {sig}",
                scope("us-east-1/ec2/aws4_request")
            ),
            format!(
                "{}, SignedHeaders=host, {sig}",
                scope("us-east-1/s3/aws4_reques")
            ),
            format!(
                "{}, SignedHeaders=host, {sig}",
                scope("us-east-1/s3/aws4_request/x")
            ),
            format!("{}, SignedHeaders=host, {sig}", scope("/s3/aws4_request")),
            // A scope date other than the request's.
            format!(
                "Credential={AKID}/20130525/us-east-1/s3/aws4_request, SignedHeaders=host, {sig}"
            ),
            format!("{good}, SignedHeaders=host"),
            format!("{good}, SignedHeaders=host, {sig}, Foo=bar"),
            format!("{good}, {good}, SignedHeaders=host, {sig}"),
            format!("{good}, SignedHeaders=host;;x-amz-date, {sig}"),
            String::new(),
            "garbage".to_owned(),
        ];
        let cases = fields.map(|f| format!("AWS4-HMAC-SHA256 {f}"));
        for authorization in &cases {
            let headers = with_authorization(authorization);
            let req = parts(&Method::GET, "/test.txt", "", &headers);
            let err = parse_error(&req);
            assert_eq!(
                err.code(),
                ErrorCode::AuthorizationHeaderMalformed,
                "{authorization}: {err}"
            );
        }
    }

    #[test]
    fn other_authorization_schemes_are_unsupported() {
        for authorization in [
            "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
            "Bearer token",
            "AWS4-ECDSA-P256-SHA256 Credential=x",
        ] {
            let headers = with_authorization(authorization);
            let req = parts(&Method::GET, "/test.txt", "", &headers);
            let err = parse_error(&req);
            assert!(
                matches!(err, AuthError::UnsupportedMechanism),
                "{authorization}"
            );
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
        }
        let headers = header_map(&[("host", HOST)]);
        let v2 = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybd";
        let req = parts(&Method::GET, "/test.txt", v2, &headers);
        assert_eq!(parse_error(&req).code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn header_and_query_auth_together_are_refused() {
        let headers = signed_get(&[]);
        let req = parts(&Method::GET, "/test.txt", PRESIGNED_QUERY, &headers);
        let err = parse_error(&req);
        assert!(matches!(err, AuthError::MultipleMechanisms));
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }

    #[test]
    fn content_sha256_is_required_and_checked() {
        let mut headers = signed_get(&[]);
        headers.remove(CONTENT_SHA256);
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        let err = parse_error(&req);
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert_eq!(
            err.to_string(),
            "Missing required header for this request: x-amz-content-sha256"
        );
        for bad in ["abc", "UNSIGNED", &"g".repeat(64), &"a".repeat(63)] {
            headers.insert(CONTENT_SHA256, HeaderValue::from_str(bad).unwrap());
            let req = parts(&Method::GET, "/test.txt", "", &headers);
            assert_eq!(
                parse_error(&req).code(),
                ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
        let streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
        headers.insert(CONTENT_SHA256, HeaderValue::from_static(streaming));
        let req = parts(&Method::PUT, "/test.txt", "", &headers);
        assert_eq!(
            pending(&req).payload,
            PayloadHash::Streaming(streaming.to_owned())
        );
    }

    #[test]
    fn missing_or_bad_date_is_access_denied() {
        let mut headers = signed_get(&[]);
        headers.insert(X_AMZ_DATE, HeaderValue::from_static("yesterday"));
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        assert_eq!(parse_error(&req).code(), ErrorCode::AccessDenied);
        headers.remove(X_AMZ_DATE);
        let req = parts(&Method::GET, "/test.txt", "", &headers);
        assert!(matches!(parse_error(&req), AuthError::MissingDate));
    }

    #[test]
    fn anonymous_requests() {
        let headers = header_map(&[("host", HOST)]);
        for query in ["", "list-type=2&prefix=a", "uploads"] {
            let req = parts(&Method::GET, "/", query, &headers);
            assert!(matches!(
                parse_credentials(&req).unwrap(),
                Credentials::Anonymous
            ));
        }
    }

    #[test]
    fn uri_encode_is_rfc3986_with_uppercase_hex() {
        assert_eq!(uri_encode("AZaz09-_.~", true), "AZaz09-_.~");
        assert_eq!(uri_encode("a b+c", true), "a%20b%2Bc");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("a/b", false), "a/b");
        assert_eq!(
            uri_encode("!'()*$=&?#%", true),
            "%21%27%28%29%2A%24%3D%26%3F%23%25"
        );
        assert_eq!(uri_encode("é", true), "%C3%A9");
    }

    const HOSTILE_KEY_PATH: &str = "/bucket/a b+c%d/é/\"&";
    const HOSTILE_CANONICAL_URI: &str = "/bucket/a%20b%2Bc%25d/%C3%A9/%22%26";

    #[test]
    fn canonical_uri_of_a_hostile_key() {
        assert_eq!(uri_encode(HOSTILE_KEY_PATH, false), HOSTILE_CANONICAL_URI);
        // However the client escaped it on the wire, the canonical form is the same.
        for raw in [
            HOSTILE_CANONICAL_URI,
            "/bucket/a%20b+c%25d/%c3%a9/%22&",
            "/bucket/a%20b%2bc%25d/%C3%A9/\"%26",
        ] {
            assert_eq!(canonical_uri(raw), HOSTILE_CANONICAL_URI, "{raw}");
        }
        assert_eq!(canonical_uri("/b/it's!*(x)"), "/b/it%27s%21%2A%28x%29");
        assert_eq!(canonical_uri("/b/a%2Fb"), "/b/a%2Fb");
        assert_eq!(canonical_uri("/b//c/"), "/b//c/");
        assert_eq!(canonical_uri(""), "/");
    }

    #[test]
    fn canonical_query_decodes_sorts_and_reencodes() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("lifecycle"), "lifecycle=");
        assert_eq!(
            canonical_query("b=2&a=x+y&a=%20&c=&&uploads"),
            "a=%20&a=x%2By&b=2&c=&uploads="
        );
        // A raw '+' is the plus the router reads, never a space: "a b" signed as `a%20b`
        // cannot be sent as `a+b`.
        assert_eq!(canonical_query("v=a+b"), canonical_query("v=a%2Bb"));
        assert_ne!(canonical_query("v=a+b"), canonical_query("v=a%20b"));
        assert_eq!(
            canonical_query("prefix=%c3%a9%2F!&X-Amz-Signature=abc"),
            "prefix=%C3%A9%2F%21"
        );
    }

    #[test]
    fn hostile_keys_round_trip_through_header_signing() {
        let keys = [
            "a b",
            "a+b",
            "100%",
            "quote\"d",
            "amp&er=sand",
            "é/ü/日本",
            "a b+c%d/é/\"&",
            "sub-delims!$'()*,;=:@",
        ];
        for key in keys {
            let raw_path = uri_encode(&format!("/bucket/{key}"), false);
            let raw_query = format!("prefix={}&list-type=2", uri_encode(key, true));
            let mut headers = header_map(&[("host", "127.0.0.1:9000"), ("content-type", "a/b")]);
            let now = datetime!(2026-01-02 03:04:05 UTC);
            sign_request(
                &Method::PUT,
                &raw_path,
                &raw_query,
                &mut headers,
                UNSIGNED_PAYLOAD,
                &params(now),
            );
            let req = parts(&Method::PUT, &raw_path, &raw_query, &headers);
            let verified = verify(&req, SECRET, now).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(verified.payload, PayloadHash::Unsigned);
            assert_eq!(verified.scope, "20260102/us-east-1/s3/aws4_request");

            // A client that escapes only what it must is verified the same way.
            let loose_path = format!("/bucket/{}", key.replace('%', "%25").replace(' ', "%20"));
            let req = parts(&Method::PUT, &loose_path, &raw_query, &headers);
            assert!(
                verify(&req, SECRET, now).is_ok(),
                "{key} sent as {loose_path}"
            );
        }
    }

    #[test]
    fn hostile_keys_round_trip_through_presigning() {
        let headers = header_map(&[("host", "127.0.0.1:9000")]);
        let now = datetime!(2026-01-02 03:04:05 UTC);
        for key in ["a b", "a+b", "100%", "\"&", "é", "a b+c%d/é/\"&"] {
            let raw_path = uri_encode(&format!("/bucket/{key}"), false);
            let raw_query = format!(
                "response-content-type={}",
                uri_encode("text/plain; x=é", true)
            );
            let query = presign(
                &Method::GET,
                "127.0.0.1:9000",
                &raw_path,
                &raw_query,
                300,
                &params(now),
            );
            assert!(query.starts_with(&raw_query));
            assert!(query.contains("&X-Amz-Signature="));
            let req = parts(&Method::GET, &raw_path, &query, &headers);
            let verified = verify(&req, SECRET, now + Duration::seconds(300))
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(verified.access_key_id, AKID);
            let err = verify(&req, SECRET, now + Duration::seconds(301)).unwrap_err();
            assert!(matches!(err, AuthError::Expired));
        }
    }

    #[test]
    fn any_region_is_accepted() {
        let mut headers = header_map(&[("host", HOST)]);
        let signer = SigningParams {
            region: "garage",
            ..params(EXAMPLE_DATE)
        };
        sign_request(&Method::GET, "/", "", &mut headers, EMPTY_SHA256, &signer);
        let req = parts(&Method::GET, "/", "", &headers);
        let pending = pending(&req);
        assert_eq!(pending.region(), "garage");
        let verified = pending.verify(&req, SECRET, EXAMPLE_DATE).unwrap();
        assert_eq!(verified.scope, "20130524/garage/s3/aws4_request");
        let mut expected = [0u8; 32];
        hex::decode_to_slice(EMPTY_SHA256, &mut expected).unwrap();
        assert_eq!(verified.payload, PayloadHash::Sha256(expected));
    }

    #[test]
    fn canonical_headers_trim_collapse_and_join() {
        let headers = header_map(&[
            ("host", HOST),
            ("x-amz-meta-a", "  one   two  three "),
            ("x-amz-meta-b", "first"),
            ("x-amz-meta-b", "second"),
        ]);
        assert_eq!(
            canonical_headers(&headers, &["x-amz-meta-a", "x-amz-meta-b", "x-amz-meta-c"]),
            "x-amz-meta-a:one two three\nx-amz-meta-b:first,second\nx-amz-meta-c:\n"
        );
    }

    #[test]
    fn canonical_headers_read_other_bytes_as_latin_1() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-meta-latin",
            HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        headers.insert(
            "x-amz-meta-utf8",
            HeaderValue::from_bytes("café".as_bytes()).unwrap(),
        );
        assert_eq!(
            canonical_headers(&headers, &["x-amz-meta-latin", "x-amz-meta-utf8"]),
            "x-amz-meta-latin:café\nx-amz-meta-utf8:café\n"
        );
    }
}
