//! The S3 client of `cairn bench`: path-style requests signed with Cairn's SigV4 signer, bodies
//! declared `UNSIGNED-PAYLOAD` so signing costs nothing per byte, over one HTTP/1.1 keep-alive
//! connection per worker with TCP_NODELAY (a small response must not wait for a delayed ACK).
//! Every GET body is compared with what was written as it streams in.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, HOST, RANGE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::data::{Expected, Payload, Tracker, Verifier};
use crate::s3::sigv4::{SigningParams, UNSIGNED_PAYLOAD, sign_request, uri_encode};

/// Error and XML control bodies are read up to this size; a listing page of 1000 long keys
/// stays well below it.
const MAX_CONTROL_BODY: usize = 4 << 20;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("{operation}: HTTP {status} {code}: {message}")]
    Status {
        operation: String,
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("{key}: the bytes read differ from the bytes written near offset {offset}")]
    Mismatch { key: String, offset: u64 },
    #[error("{0}")]
    Protocol(String),
    #[error("request did not finish within {0:?}")]
    Timeout(Duration),
}

/// The endpoint, bucket and credentials every connection of a run uses.
#[derive(Debug)]
pub struct Target {
    addr: SocketAddr,
    /// The `Host` header: the endpoint's authority as given.
    host: String,
    pub bucket: String,
    region: String,
    access_key_id: String,
    secret: String,
    /// The longest a single request may take, body included.
    timeout: Duration,
}

impl Target {
    /// Resolves `endpoint` (`http://HOST[:PORT]`, no path).
    pub async fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        (access_key_id, secret): (String, String),
        timeout: Duration,
    ) -> Result<Target, Error> {
        let host = parse_endpoint(endpoint)?;
        let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
            host.clone()
        } else {
            format!("{host}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| Error::Protocol(format!("cannot resolve {with_port}: {e}")))?
            .next()
            .ok_or_else(|| Error::Protocol(format!("{with_port} has no address")))?;
        Ok(Target {
            addr,
            host,
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            access_key_id,
            secret,
            timeout,
        })
    }
}

/// The authority of an `http://` endpoint.
fn parse_endpoint(endpoint: &str) -> Result<String, Error> {
    if endpoint.starts_with("https://") {
        return Err(Error::Protocol(
            "cairn bench speaks plain HTTP only; give an http:// endpoint".to_owned(),
        ));
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(Error::Protocol(format!(
            "endpoint {endpoint:?} must start with http://"
        )));
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(Error::Protocol(format!(
            "endpoint {endpoint:?} must be http://HOST[:PORT] without a path"
        )));
    }
    Ok(host.to_owned())
}

/// One listing page, as counted by the bench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub keys: usize,
    pub common_prefixes: usize,
    /// The continuation token when the listing is truncated.
    pub next: Option<String>,
}

/// One worker's connection; reconnects after an error or when the server closed it.
#[derive(Debug)]
pub struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Payload>>,
}

impl Conn {
    pub fn new(target: Arc<Target>) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    /// Opens the connection now, so that it is not opened inside a timed request.
    pub async fn connect(&mut self) -> Result<(), Error> {
        if self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(());
        }
        self.sender = None;
        let addr = self.target.addr;
        let stream = TcpStream::connect(addr)
            .await
            .and_then(|s| s.set_nodelay(true).map(|()| s))
            .map_err(|source| Error::Connect { addr, source })?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // A failing connection also fails the request on it, which is where it is counted.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends a signed request for `key` (the bucket itself when empty) and returns the response
    /// head with the deadline its body must be read by.
    async fn send(
        &mut self,
        method: Method,
        key: &str,
        query: &str,
        mut headers: HeaderMap,
        body: Payload,
    ) -> Result<(Response<Incoming>, Instant), Error> {
        let deadline = Instant::now() + self.target.timeout;
        let mut path = format!("/{}", self.target.bucket);
        if !key.is_empty() {
            path.push('/');
            path.push_str(&uri_encode(key, false));
        }
        let uri = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let host = HeaderValue::from_str(&self.target.host)
            .map_err(|_| Error::Protocol(format!("invalid host {:?}", self.target.host)))?;
        headers.insert(HOST, host);
        if !body.is_empty() || method == Method::PUT || method == Method::POST {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let params = SigningParams {
            access_key_id: &self.target.access_key_id,
            secret: &self.target.secret,
            region: &self.target.region,
            now: time::OffsetDateTime::now_utc(),
        };
        sign_request(
            &method,
            &path,
            query,
            &mut headers,
            UNSIGNED_PAYLOAD,
            &params,
        );
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .body(body)
            .map_err(|e| Error::Protocol(format!("cannot build a request for {uri}: {e}")))?;
        *request.headers_mut() = headers;

        self.connect().await?;
        let Some(sender) = self.sender.as_mut() else {
            return Err(Error::Protocol("no connection".to_owned()));
        };
        let sent = async {
            sender.ready().await?;
            sender.send_request(request).await
        };
        match timeout_at(deadline, sent).await {
            Ok(Ok(response)) => Ok((response, deadline)),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e.into())
            }
            Err(_) => {
                self.sender = None;
                Err(Error::Timeout(self.target.timeout))
            }
        }
    }

    /// Reads a whole control body (XML, errors), refusing one larger than the cap.
    async fn read_body(&mut self, body: Incoming, deadline: Instant) -> Result<Bytes, Error> {
        let mut body = body;
        let mut out = BytesMut::new();
        loop {
            match timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    self.sender = None;
                    return Err(Error::Timeout(self.target.timeout));
                }
                Ok(None) => return Ok(out.freeze()),
                Ok(Some(Err(e))) => {
                    self.sender = None;
                    return Err(e.into());
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if out.len() + data.len() > MAX_CONTROL_BODY {
                            self.sender = None;
                            return Err(Error::Protocol(format!(
                                "response body larger than {MAX_CONTROL_BODY} bytes"
                            )));
                        }
                        out.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The response if its status is `expected`, else the S3 error it carries.
    async fn expect(
        &mut self,
        operation: &str,
        (response, deadline): (Response<Incoming>, Instant),
        expected: &[StatusCode],
    ) -> Result<(Response<Incoming>, Instant), Error> {
        if expected.contains(&response.status()) {
            return Ok((response, deadline));
        }
        let status = response.status();
        let body = self.read_body(response.into_body(), deadline).await?;
        let text = String::from_utf8_lossy(&body);
        Err(Error::Status {
            operation: operation.to_owned(),
            status,
            code: element(&text, "Code").unwrap_or_default(),
            message: element(&text, "Message").unwrap_or_default(),
        })
    }

    /// Sends a request and reads its whole (small) body, if the status is one of `expected`.
    async fn call(
        &mut self,
        operation: &str,
        method: Method,
        (key, query): (&str, &str),
        headers: HeaderMap,
        body: Payload,
        expected: &[StatusCode],
    ) -> Result<(HeaderMap, Bytes), Error> {
        let sent = self.send(method, key, query, headers, body).await?;
        let (response, deadline) = self.expect(operation, sent, expected).await?;
        let (parts, body) = response.into_parts();
        let body = self.read_body(body, deadline).await?;
        Ok((parts.headers, body))
    }

    /// Whether the bucket exists and the key may use it.
    pub async fn head_bucket(&mut self) -> Result<bool, Error> {
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let empty = Payload::empty();
        let sent = self
            .send(Method::HEAD, "", "", HeaderMap::new(), empty)
            .await?;
        let (response, _) = self.expect("HeadBucket", sent, &ok).await?;
        Ok(response.status() == StatusCode::OK)
    }

    /// Creates the bucket; one the key already owns is fine.
    pub async fn create_bucket(&mut self) -> Result<(), Error> {
        let body = if self.target.region == "us-east-1" {
            Payload::empty()
        } else {
            Payload::full(Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.target.region
            )))
        };
        let created = self
            .call(
                "CreateBucket",
                Method::PUT,
                ("", ""),
                HeaderMap::new(),
                body,
                &[StatusCode::OK],
            )
            .await;
        match created {
            Err(Error::Status { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    pub async fn put_object(&mut self, key: &str, body: Payload) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        self.call(
            "PutObject",
            Method::PUT,
            (key, ""),
            headers,
            body,
            &[StatusCode::OK],
        )
        .await
        .map(|_| ())
    }

    /// Reads `key` (bytes `range` of it, when given), which must be `len` bytes equal to
    /// `expected`; `tracker` counts the bytes checked.
    pub async fn get_object(
        &mut self,
        key: &str,
        range: Option<Range<u64>>,
        len: u64,
        expected: Expected,
        tracker: Option<&Tracker>,
    ) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        let status = match &range {
            Some(r) if r.end > r.start => {
                let value = format!("bytes={}-{}", r.start, r.end - 1);
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| Error::Protocol(format!("invalid range {value}")))?;
                headers.insert(RANGE, value);
                StatusCode::PARTIAL_CONTENT
            }
            _ => StatusCode::OK,
        };
        let sent = self
            .send(Method::GET, key, "", headers, Payload::empty())
            .await?;
        let (response, deadline) = self.expect("GetObject", sent, &[status]).await?;
        let mut body = response.into_body();
        let mut verifier = Verifier::new(expected);
        let base = range.as_ref().map_or(0, |r| r.start);
        loop {
            let frame = match timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    self.sender = None;
                    return Err(Error::Timeout(self.target.timeout));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    self.sender = None;
                    return Err(e.into());
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let offset = base + verifier.position();
            if verifier.position() + data.len() as u64 > len || !verifier.check(&data) {
                // The rest of the body is not read, so the connection cannot be reused.
                self.sender = None;
                return Err(Error::Mismatch {
                    key: key.to_owned(),
                    offset,
                });
            }
            if let Some(tracker) = tracker {
                tracker.add(data.len() as u64);
            }
        }
        if verifier.position() != len {
            return Err(Error::Protocol(format!(
                "{key}: read {} bytes, expected {len}",
                verifier.position()
            )));
        }
        Ok(())
    }

    /// The size of `key`, or `None` if it does not exist.
    pub async fn head_object(&mut self, key: &str) -> Result<Option<u64>, Error> {
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let sent = self
            .send(Method::HEAD, key, "", HeaderMap::new(), Payload::empty())
            .await?;
        let (response, _) = self.expect("HeadObject", sent, &ok).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let len = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Protocol(format!("HEAD {key}: no Content-Length")))?;
        Ok(Some(len))
    }

    pub async fn delete_object(&mut self, key: &str) -> Result<(), Error> {
        let ok = [StatusCode::NO_CONTENT, StatusCode::OK];
        self.call(
            "DeleteObject",
            Method::DELETE,
            (key, ""),
            HeaderMap::new(),
            Payload::empty(),
            &ok,
        )
        .await
        .map(|_| ())
    }

    /// Starts a multipart upload; returns its upload id.
    pub async fn create_multipart_upload(&mut self, key: &str) -> Result<String, Error> {
        let (_, body) = self
            .call(
                "CreateMultipartUpload",
                Method::POST,
                (key, "uploads"),
                HeaderMap::new(),
                Payload::empty(),
                &[StatusCode::OK],
            )
            .await?;
        element(&String::from_utf8_lossy(&body), "UploadId")
            .ok_or_else(|| Error::Protocol("CreateMultipartUpload: no UploadId".to_owned()))
    }

    /// Uploads part `number`; returns its ETag.
    pub async fn upload_part(
        &mut self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Payload,
    ) -> Result<String, Error> {
        let query = format!(
            "partNumber={number}&uploadId={}",
            uri_encode(upload_id, true)
        );
        let (headers, _) = self
            .call(
                "UploadPart",
                Method::PUT,
                (key, &query),
                HeaderMap::new(),
                body,
                &[StatusCode::OK],
            )
            .await?;
        headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol(format!("UploadPart {number}: no ETag")))
    }

    /// Completes an upload from its parts' numbers and ETags, in order.
    pub async fn complete_multipart_upload(
        &mut self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                escape(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let query = format!("uploadId={}", uri_encode(upload_id, true));
        let (_, body) = self
            .call(
                "CompleteMultipartUpload",
                Method::POST,
                (key, &query),
                HeaderMap::new(),
                Payload::full(Bytes::from(xml)),
                &[StatusCode::OK],
            )
            .await?;
        // S3 may report a failed completion in a 200 response, once the body has started.
        let text = String::from_utf8_lossy(&body);
        if text.contains("<Error>") {
            return Err(Error::Status {
                operation: "CompleteMultipartUpload".to_owned(),
                status: StatusCode::OK,
                code: element(&text, "Code").unwrap_or_default(),
                message: element(&text, "Message").unwrap_or_default(),
            });
        }
        Ok(())
    }

    pub async fn abort_multipart_upload(
        &mut self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), Error> {
        let query = format!("uploadId={}", uri_encode(upload_id, true));
        let ok = [StatusCode::NO_CONTENT, StatusCode::OK];
        self.call(
            "AbortMultipartUpload",
            Method::DELETE,
            (key, &query),
            HeaderMap::new(),
            Payload::empty(),
            &ok,
        )
        .await
        .map(|_| ())
    }

    /// One ListObjectsV2 page of at most `max_keys` keys, continuing from `token` or starting
    /// after the key `start_after`.
    pub async fn list_objects_v2(
        &mut self,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<ListPage, Error> {
        let mut query = format!("list-type=2&max-keys={max_keys}");
        let params = [
            ("continuation-token", token),
            ("delimiter", delimiter),
            ("prefix", Some(prefix)),
            ("start-after", start_after),
        ];
        for (name, value) in params {
            if let Some(value) = value {
                query.push_str(&format!("&{name}={}", uri_encode(value, true)));
            }
        }
        let (_, body) = self
            .call(
                "ListObjectsV2",
                Method::GET,
                ("", &query),
                HeaderMap::new(),
                Payload::empty(),
                &[StatusCode::OK],
            )
            .await?;
        parse_list_page(&String::from_utf8_lossy(&body))
    }
}

fn parse_list_page(xml: &str) -> Result<ListPage, Error> {
    let truncated = element(xml, "IsTruncated")
        .ok_or_else(|| Error::Protocol("ListObjectsV2: no IsTruncated".to_owned()))?;
    let next = if truncated == "true" {
        let token = element(xml, "NextContinuationToken").ok_or_else(|| {
            Error::Protocol("ListObjectsV2: truncated without NextContinuationToken".to_owned())
        })?;
        Some(token)
    } else {
        None
    };
    Ok(ListPage {
        keys: xml.matches("<Key>").count(),
        common_prefixes: xml.matches("<CommonPrefixes>").count(),
        next,
    })
}

/// The unescaped text of the first `<tag>` element of `xml`. Enough for the flat, attribute-free
/// elements the bench reads from S3's responses.
fn element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(unescape(&xml[start..start + len]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::data::{fill, seed_of};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that accepts one connection and answers its requests, in order, with
    /// `responses` (raw HTTP); returns the request heads it read.
    async fn canned(
        responses: Vec<Vec<u8>>,
    ) -> (Arc<Target>, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut heads = Vec::new();
            for response in responses {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8];
                    stream.read_exact(&mut byte).await.unwrap();
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
                let body_len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                let mut body = vec![0; body_len];
                stream.read_exact(&mut body).await.unwrap();
                heads.push(head);
                stream.write_all(&response).await.unwrap();
            }
            heads
        });
        let creds = ("AKID".to_owned(), "secret".to_owned());
        let endpoint = format!("http://{addr}");
        let timeout = Duration::from_secs(10);
        let target = Target::new(&endpoint, "bkt", "us-east-1", creds, timeout).await;
        (Arc::new(target.unwrap()), server)
    }

    fn response(status: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body].concat()
    }

    fn object_bytes(key: &str, range: Range<u64>) -> Vec<u8> {
        let mut bytes = vec![0; (range.end - range.start) as usize];
        fill(seed_of(key), range.start, &mut bytes);
        bytes
    }

    #[tokio::test]
    async fn get_checks_every_byte_on_one_signed_keep_alive_connection() {
        let good = object_bytes("k", 10..20);
        let mut flipped = good.clone();
        flipped[7] ^= 0x40;
        let responses = vec![
            [
                b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n".as_slice(),
                &good,
            ]
            .concat(),
            [
                b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n".as_slice(),
                &flipped,
            ]
            .concat(),
        ];
        let (target, server) = canned(responses).await;
        let mut conn = Conn::new(target);
        let expected = Expected::Pattern {
            seed: seed_of("k"),
            offset: 10,
        };
        let tracker = Tracker::default();
        conn.get_object("k", Some(10..20), 10, expected.clone(), Some(&tracker))
            .await
            .unwrap();
        assert_eq!(tracker.get(), 10);
        // The second request goes over the same connection: the server accepts only one.
        let err = conn
            .get_object("k", Some(10..20), 10, expected, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Mismatch { ref key, offset: 10 } if key == "k"),
            "{err}"
        );
        let heads = server.await.unwrap();
        assert_eq!(heads.len(), 2);
        for head in heads {
            assert!(head.starts_with("get /bkt/k http/1.1\r\n"), "{head}");
            assert!(head.contains("\r\nrange: bytes=10-19\r\n"), "{head}");
            assert!(
                head.contains("\r\nx-amz-content-sha256: unsigned-payload\r\n"),
                "{head}"
            );
            assert!(
                head.contains("\r\nauthorization: aws4-hmac-sha256 credential=akid/"),
                "{head}"
            );
            assert!(head.contains("signedheaders=host;range;x-amz-content-sha256;x-amz-date"));
        }
    }

    #[tokio::test]
    async fn short_bodies_wrong_statuses_and_s3_errors_fail() {
        let error = b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        let responses = vec![
            response("200 OK", &object_bytes("k", 0..5)),
            response("200 OK", &object_bytes("k", 0..5)),
            response("404 Not Found", error),
        ];
        let (target, server) = canned(responses).await;
        let mut conn = Conn::new(target);
        let expected = Expected::Pattern {
            seed: seed_of("k"),
            offset: 0,
        };
        let err = conn
            .get_object("k", None, 6, expected.clone(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
        // A whole-object answer to a ranged GET is not what was asked for.
        let err = conn
            .get_object("k", Some(0..5), 5, expected.clone(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    status: StatusCode::OK,
                    ..
                }
            ),
            "{err}"
        );
        let err = conn
            .get_object("k", None, 5, expected, None)
            .await
            .unwrap_err();
        match err {
            Error::Status {
                code,
                message,
                status,
                ..
            } => {
                assert_eq!(
                    (status, code.as_str(), message.as_str()),
                    (StatusCode::NOT_FOUND, "NoSuchKey", "gone")
                );
            }
            other => panic!("{other}"),
        }
        assert_eq!(server.await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn multipart_and_listing_requests() {
        let created = b"<InitiateMultipartUploadResult><UploadId>u/1+2</UploadId></InitiateMultipartUploadResult>";
        let part = b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\n\r\n".to_vec();
        let failed = b"<Error><Code>InvalidPart</Code><Message>no</Message></Error>";
        let page = b"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key></Contents></ListBucketResult>";
        let responses = vec![
            response("200 OK", created),
            part,
            response("200 OK", failed),
            response("200 OK", page),
        ];
        let (target, server) = canned(responses).await;
        let mut conn = Conn::new(target);
        let id = conn.create_multipart_upload("big").await.unwrap();
        assert_eq!(id, "u/1+2");
        let etag = conn
            .upload_part("big", &id, 1, Payload::empty())
            .await
            .unwrap();
        assert_eq!(etag, "\"abc\"");
        // CompleteMultipartUpload can fail inside a 200.
        let err = conn
            .complete_multipart_upload("big", &id, &[(1, etag)])
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Status { ref code, .. } if code == "InvalidPart"),
            "{err}"
        );
        let listed = conn
            .list_objects_v2("p/", Some("/"), Some("t=1"), None, 1000)
            .await
            .unwrap();
        assert_eq!(
            listed,
            ListPage {
                keys: 1,
                common_prefixes: 0,
                next: None
            }
        );
        let heads = server.await.unwrap();
        assert!(
            heads[0].starts_with("post /bkt/big?uploads http/1.1"),
            "{}",
            heads[0]
        );
        assert!(
            heads[1].starts_with("put /bkt/big?partnumber=1&uploadid=u%2f1%2b2 http/1.1"),
            "{}",
            heads[1]
        );
        assert!(
            heads[1].contains("\r\ncontent-length: 0\r\n"),
            "{}",
            heads[1]
        );
        assert!(
            heads[2].starts_with("post /bkt/big?uploadid=u%2f1%2b2 http/1.1"),
            "{}",
            heads[2]
        );
        assert!(
            heads[3].starts_with("get /bkt?list-type=2&max-keys=1000&continuation-token=t%3d1&delimiter=%2f&prefix=p%2f http/1.1"),
            "{}",
            heads[3]
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9000").unwrap(),
            "127.0.0.1:9000"
        );
        assert_eq!(parse_endpoint("http://localhost/").unwrap(), "localhost");
        assert!(parse_endpoint("https://127.0.0.1:9000").is_err());
        assert!(parse_endpoint("127.0.0.1:9000").is_err());
        assert!(parse_endpoint("http://127.0.0.1:9000/bucket").is_err());
        assert!(parse_endpoint("http://").is_err());
    }

    #[tokio::test]
    async fn target_resolves_with_and_without_port() {
        let creds = || ("id".to_owned(), "secret".to_owned());
        let t = Target::new(
            "http://127.0.0.1:9000",
            "b",
            "us-east-1",
            creds(),
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        let t = Target::new(
            "http://127.0.0.1",
            "b",
            "us-east-1",
            creds(),
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(t.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1");
    }

    #[test]
    fn list_pages() {
        let xml = "<ListBucketResult><Name>b</Name><Prefix>list/</Prefix>\
            <IsTruncated>true</IsTruncated><NextContinuationToken>a&amp;b</NextContinuationToken>\
            <Contents><Key>list/a</Key></Contents><Contents><Key>list/b</Key></Contents>\
            </ListBucketResult>";
        assert_eq!(
            parse_list_page(xml).unwrap(),
            ListPage {
                keys: 2,
                common_prefixes: 0,
                next: Some("a&b".to_owned())
            }
        );
        let xml = "<ListBucketResult><Prefix>list/</Prefix><IsTruncated>false</IsTruncated>\
            <CommonPrefixes><Prefix>list/p0/</Prefix></CommonPrefixes>\
            <CommonPrefixes><Prefix>list/p1/</Prefix></CommonPrefixes></ListBucketResult>";
        assert_eq!(
            parse_list_page(xml).unwrap(),
            ListPage {
                keys: 0,
                common_prefixes: 2,
                next: None
            }
        );
        assert!(parse_list_page("<ListBucketResult/>").is_err());
        assert!(parse_list_page("<IsTruncated>true</IsTruncated>").is_err());
    }

    #[test]
    fn elements_and_escaping() {
        let xml = "<Error><Code>NoSuchKey</Code><Message>a &lt;b&gt; &amp; c</Message></Error>";
        assert_eq!(element(xml, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(element(xml, "Message").as_deref(), Some("a <b> & c"));
        assert_eq!(element(xml, "Missing"), None);
        assert_eq!(escape("\"e&t\""), "&quot;e&amp;t&quot;");
        assert_eq!(unescape(&escape("<\"&'>")), "<\"&'>");
    }
}
