//! One S3 request before it is sent: method, raw path and query, headers and body, signed as
//! its [`Auth`] says. Well-formed requests and deliberately broken ones (for the tests of the
//! server's refusals) are built the same way; `raw_head` writes the head out for a test that
//! sends it over a socket of its own.

use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Body, Endpoint, Error};
use crate::s3::sigv4::{SigningParams, UNSIGNED_PAYLOAD, sign_request};

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// SigV4 with the endpoint's key, signed now.
    Signed,
    /// Signed with this secret instead of the endpoint's.
    WrongSecret(String),
    /// Signed with the endpoint's key but a clock this many seconds off (negative: in the past).
    Skewed(i64),
    /// Signed at this instant, so that two signings of one request agree (aws-chunked bodies
    /// chain their chunk signatures from the request's).
    SignedAt(OffsetDateTime),
    /// Signed, then the Authorization header replaced by this value.
    Authorization(String),
    /// No credentials at all.
    Anonymous,
}

/// What goes in `x-amz-content-sha256` (and the canonical request's payload line).
#[derive(Clone, Debug)]
pub enum PayloadHash {
    /// The hex SHA-256 of the body, which must be in memory.
    Sha256,
    /// `UNSIGNED-PAYLOAD`: signing costs nothing per byte.
    Unsigned,
    /// Any value, e.g. the hash of some other body.
    Literal(String),
}

/// A request being built: `Request::new(Method::PUT, "/bucket/key").body(..)`.
#[derive(Debug)]
pub struct Request {
    method: Method,
    /// Percent-encoded as it goes on the wire.
    path: String,
    /// Percent-encoded as it goes on the wire, without the `?`.
    query: String,
    headers: HeaderMap,
    body: Body,
    payload: PayloadHash,
    auth: Auth,
    /// Headers removed after signing, to send a request missing something SigV4 needs.
    removed: Vec<HeaderName>,
}

impl Request {
    /// `path` is the raw, already percent-encoded path.
    pub fn new(method: Method, path: &str) -> Request {
        Request {
            method,
            path: path.to_owned(),
            query: String::new(),
            headers: HeaderMap::new(),
            body: Body::empty(),
            payload: PayloadHash::Sha256,
            auth: Auth::Signed,
            removed: Vec::new(),
        }
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path and query as they go on the request line.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The raw query string, already encoded (`uploads`, `partNumber=1&uploadId=..`).
    pub fn query(mut self, raw: &str) -> Request {
        raw.clone_into(&mut self.query);
        self
    }

    /// Adds a header (a second value of a name already present is sent as well).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.headers.append(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Body>) -> Request {
        self.body = body.into();
        self
    }

    pub fn payload(mut self, payload: PayloadHash) -> Request {
        self.payload = payload;
        self
    }

    pub fn auth(mut self, auth: Auth) -> Request {
        self.auth = auth;
        self
    }

    /// Drops a header after signing.
    pub fn without(mut self, name: HeaderName) -> Request {
        self.removed.push(name);
        self
    }

    /// The request's headers, signed for `endpoint` as its `Auth` says (`Host` included,
    /// `Content-Length` not).
    pub fn signed_headers(&self, endpoint: &Endpoint) -> Result<HeaderMap, Error> {
        let mut headers = HeaderMap::new();
        let host = HeaderValue::from_str(&endpoint.host)
            .map_err(|_| Error::Protocol(format!("invalid host {:?}", endpoint.host)))?;
        headers.insert(HOST, host);
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        let payload_hash = match &self.payload {
            PayloadHash::Sha256 => {
                let body = self.body.bytes().ok_or_else(|| {
                    Error::Protocol("a streamed body cannot be signed; send it unsigned".into())
                })?;
                let digest: [u8; 32] = Sha256::digest(body).into();
                hex::encode(digest)
            }
            PayloadHash::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
            PayloadHash::Literal(value) => value.clone(),
        };
        let now = OffsetDateTime::now_utc();
        let credentials = &endpoint.credentials;
        let (secret, when) = match &self.auth {
            Auth::Anonymous => return Ok(headers),
            Auth::Signed | Auth::Authorization(_) => (credentials.secret.as_str(), now),
            Auth::WrongSecret(secret) => (secret.as_str(), now),
            Auth::Skewed(secs) => (
                credentials.secret.as_str(),
                now + time::Duration::seconds(*secs),
            ),
            Auth::SignedAt(at) => (credentials.secret.as_str(), *at),
        };
        let params = SigningParams {
            access_key_id: &credentials.access_key_id,
            secret,
            region: &endpoint.region,
            now: when,
        };
        sign_request(
            &self.method,
            &self.path,
            &self.query,
            &mut headers,
            &payload_hash,
            &params,
        );
        if let Auth::Authorization(value) = &self.auth {
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::Protocol(format!("invalid Authorization {value:?}")))?;
            headers.insert(AUTHORIZATION, value);
        }
        for name in &self.removed {
            headers.remove(name);
        }
        Ok(headers)
    }

    /// The request head (request line and signed headers), with `Content-Length` when given
    /// and `unsigned` headers added after signing (e.g. `expect`, `transfer-encoding`), for a
    /// test that writes the body itself over a connection of its own.
    pub fn raw_head(
        &self,
        endpoint: &Endpoint,
        content_length: Option<u64>,
        unsigned: &[(&str, &str)],
    ) -> Result<String, Error> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target());
        for (name, value) in &self.signed_headers(endpoint)? {
            let value = value
                .to_str()
                .map_err(|_| Error::Protocol(format!("header {name} is not ASCII")))?;
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(n) = content_length {
            head.push_str(&format!("content-length: {n}\r\n"));
        }
        for (name, value) in unsigned {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        Ok(head)
    }

    /// The signed request, with a `Content-Length` whenever a body is sent or expected.
    pub(super) fn into_http(self, endpoint: &Endpoint) -> Result<http::Request<Body>, Error> {
        let mut headers = self.signed_headers(endpoint)?;
        if !self.body.is_empty() || self.method == Method::PUT || self.method == Method::POST {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        let target = self.target();
        let mut request = http::Request::builder()
            .method(self.method)
            .uri(&target)
            .body(self.body)
            .map_err(|e| Error::Protocol(format!("cannot build a request for {target}: {e}")))?;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::Credentials;

    fn endpoint() -> Endpoint {
        Endpoint {
            addr: "127.0.0.1:9000".parse().unwrap(),
            host: "127.0.0.1:9000".to_owned(),
            region: "us-east-1".to_owned(),
            credentials: Credentials {
                access_key_id: "AKID".to_owned(),
                secret: "secret".to_owned(),
            },
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn broken_requests_differ_from_the_signed_one_only_where_asked() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let build = |auth| {
            Request::new(Method::PUT, "/b/k")
                .body(b"data".to_vec())
                .auth(auth)
                .signed_headers(&endpoint())
                .unwrap()
        };
        let signed = build(Auth::SignedAt(at));
        assert_eq!(
            signed["x-amz-content-sha256"],
            hex::encode(Sha256::digest(b"data"))
        );
        assert_eq!(signed["x-amz-date"], "20231114T221320Z");
        assert_eq!(build(Auth::SignedAt(at)), signed);
        let anonymous = build(Auth::Anonymous);
        assert_eq!(anonymous.len(), 1);
        assert_eq!(anonymous[HOST], "127.0.0.1:9000");
        let replaced = build(Auth::Authorization("AWS4-HMAC-SHA256 nonsense".to_owned()));
        assert_eq!(replaced[AUTHORIZATION], "AWS4-HMAC-SHA256 nonsense");
        let wrong = build(Auth::WrongSecret("other".to_owned()));
        assert_ne!(wrong[AUTHORIZATION], build(Auth::Signed)[AUTHORIZATION]);

        let without = Request::new(Method::GET, "/b/k")
            .payload(PayloadHash::Literal("not-a-hash".to_owned()))
            .without(HeaderName::from_static("x-amz-date"))
            .signed_headers(&endpoint())
            .unwrap();
        assert!(without.get("x-amz-date").is_none());
        assert_eq!(without["x-amz-content-sha256"], "not-a-hash");
    }

    #[test]
    fn raw_heads_and_streamed_bodies() {
        let request = Request::new(Method::PUT, "/b/k")
            .query("partNumber=1&uploadId=u")
            .payload(PayloadHash::Unsigned);
        let head = request
            .raw_head(&endpoint(), Some(5), &[("expect", "100-continue")])
            .unwrap();
        assert!(
            head.starts_with(
                "PUT /b/k?partNumber=1&uploadId=u HTTP/1.1\r\nhost: 127.0.0.1:9000\r\n"
            )
        );
        assert!(head.ends_with("content-length: 5\r\nexpect: 100-continue\r\n\r\n"));
        let streamed =
            Request::new(Method::PUT, "/b/k").body(Body::stream(3, Body::full(&b"abc"[..])));
        assert!(streamed.signed_headers(&endpoint()).is_err());
        let http = streamed
            .payload(PayloadHash::Unsigned)
            .into_http(&endpoint())
            .unwrap();
        assert_eq!(http.headers()[CONTENT_LENGTH], "3");
        assert_eq!(http.uri(), "/b/k");
    }
}
