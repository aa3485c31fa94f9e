//! The tests' S3 client: `cairn::client` with panics instead of errors, every response read
//! whole and checked for what S3 always sends (`x-amz-request-id`, a valid `Date`) and for the
//! absence of a 500. Beside well-formed requests it builds broken ones ([`Auth`], [`PayloadHash`],
//! headers dropped after signing) and heads for tests that write to a socket themselves.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use cairn::client::{Auth, Client, Conn, Credentials, Endpoint, Error, PayloadHash, Request};
use cairn::s3::sigv4::{SigningParams, presign, uri_encode};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use time::OffsetDateTime;

use crate::REGION;
use crate::data::{content_md5, sha256_hex};

/// The largest body a test reads whole (objects up to a few hundred MiB).
const MAX_BODY: usize = 1 << 30;

/// A path-style S3 client of one server or gateway.
#[derive(Clone)]
pub struct S3Client {
    client: Client,
}

/// A request being built: `client.request(Method::PUT, "/bucket/key").body(..).send().await`.
pub struct RequestBuilder<'a> {
    client: &'a S3Client,
    request: Request,
}

/// A response with its body read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A response whose body the test reads as it arrives.
pub struct Download {
    conn: Conn,
    response: cairn::client::Response,
}

/// The raw (percent-encoded) path of `/bucket/key`, as an SDK would send it.
pub fn object_path(bucket: &str, key: &str) -> String {
    uri_encode(&format!("/{bucket}/{key}"), false)
}

/// A query string from already decoded pairs, each name and value percent-encoded.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", uri_encode(n, true), uri_encode(v, true)))
        .collect::<Vec<_>>()
        .join("&")
}

impl S3Client {
    /// A client of `addr` (`127.0.0.1:PORT`) signing with the given key; a request may take
    /// up to `timeout`.
    pub fn new(addr: &str, access_key_id: &str, secret: &str, timeout: Duration) -> S3Client {
        S3Client {
            client: Client::new(Endpoint {
                addr: addr.parse().expect("a socket address"),
                host: addr.to_owned(),
                region: REGION.to_owned(),
                credentials: Credentials {
                    access_key_id: access_key_id.to_owned(),
                    secret: secret.to_owned(),
                },
                timeout,
            }),
        }
    }

    /// The same client with another `Host` header, e.g. a virtual-hosted-style
    /// `bucket.domain:port` that the test resolves to the same address.
    pub fn with_host_header(&self, host: &str) -> S3Client {
        let mut endpoint = self.client.endpoint().clone();
        host.clone_into(&mut endpoint.host);
        S3Client {
            client: Client::new(endpoint),
        }
    }

    /// Waits until a GET of `path` is refused with 403 InvalidAccessKeyId (the client's key was
    /// deleted: gateways notice within about a second, as they cache keys), answering 200 until
    /// then; fails past `limit`. Returns how long it took.
    pub async fn wait_key_refused(&self, path: &str, limit: Duration) -> Duration {
        let start = std::time::Instant::now();
        loop {
            let resp = self.request(Method::GET, path).send().await;
            if resp.status == StatusCode::FORBIDDEN {
                resp.assert_error(StatusCode::FORBIDDEN, "InvalidAccessKeyId");
                return start.elapsed();
            }
            resp.assert_status(StatusCode::OK);
            assert!(
                start.elapsed() < limit,
                "{path} still served after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.client.endpoint().addr.to_string()
    }

    pub fn access_key_id(&self) -> &str {
        &self.client.endpoint().credentials.access_key_id
    }

    pub fn secret(&self) -> &str {
        &self.client.endpoint().credentials.secret
    }

    /// `path` is the raw, already percent-encoded path (see [`object_path`]).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            request: Request::new(method, path),
        }
    }

    pub fn params(&self, now: OffsetDateTime) -> SigningParams<'_> {
        let credentials = &self.client.endpoint().credentials;
        SigningParams {
            access_key_id: &credentials.access_key_id,
            secret: &credentials.secret,
            region: REGION,
            now,
        }
    }

    /// A presigned URL for `method path?query`, valid for `expires_secs` from `signed_at`.
    pub fn presigned_url(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        expires_secs: u64,
        signed_at: OffsetDateTime,
    ) -> String {
        let host = self.addr();
        let params = self.params(signed_at);
        let query = presign(method, &host, path, query, expires_secs, &params);
        format!("http://{host}{path}?{query}")
    }

    /// Sends a request with no credentials and no headers but `Content-Length`, e.g. to a
    /// presigned URL of this client's server.
    pub async fn send_url(&self, method: Method, url: &str, body: Vec<u8>) -> Resp {
        let target = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_prefix(&self.addr()))
            .unwrap_or_else(|| panic!("{url} is not on {}", self.addr()));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let request = Request::new(method, path)
            .query(query)
            .auth(Auth::Anonymous)
            .header(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()))
            .body(body);
        self.send_request(request).await
    }

    async fn send_request(&self, request: Request) -> Resp {
        let method = request.method().clone();
        let target = request.target();
        self.try_send_request(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    async fn try_send_request(&self, request: Request) -> Result<Resp, Error> {
        let method = request.method().clone();
        let (status, headers, body) = self.client.fetch(request, MAX_BODY).await?;
        Ok(Resp::checked(status, headers, body, &method))
    }

    /// A signed request with `extra` headers; a body is sent unsigned, as SDKs send large
    /// ones.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        extra: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut request = self.request(method, path).query(query);
        for (name, value) in extra {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body).payload(PayloadHash::Unsigned);
        }
        request.send().await
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let resp = self
            .request(Method::PUT, &format!("/{bucket}"))
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
    }

    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Resp {
        self.put_with(bucket, key, body, &[]).await
    }

    /// A PUT with `extra` headers; bodies above 64 KiB go unsigned.
    pub async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut request = self
            .request(Method::PUT, &object_path(bucket, key))
            .body(body.to_vec())
            .payload(if body.len() > 64 * 1024 {
                PayloadHash::Unsigned
            } else {
                PayloadHash::Sha256
            });
        for (name, value) in extra {
            request = request.header(name, value);
        }
        request.send().await
    }

    /// PUT that must succeed; returns the quoted ETag.
    pub async fn put_ok(&self, bucket: &str, key: &str, body: &[u8]) -> String {
        let resp = self.put(bucket, key, body).await;
        resp.assert_status(StatusCode::OK);
        resp.header("etag").expect("ETag on PUT").to_owned()
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Resp {
        self.request(Method::GET, &object_path(bucket, key))
            .send()
            .await
    }

    /// GET whose body the caller reads as it arrives.
    pub async fn get_streaming(&self, bucket: &str, key: &str) -> Download {
        self.get_streaming_with(bucket, key, &[]).await
    }

    /// GET with extra headers (a `range`), whose status and body the caller reads as they
    /// arrive, unchecked: for reads that are to fail.
    pub async fn get_streaming_with(
        &self,
        bucket: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> Download {
        let path = object_path(bucket, key);
        let mut request = Request::new(Method::GET, &path);
        for (name, value) in headers {
            request = request.header(
                http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                http::HeaderValue::from_str(value).expect("a header value"),
            );
        }
        let (conn, response) = self
            .client
            .stream(request)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Download { conn, response }
    }

    /// GET that must return exactly `expected`.
    pub async fn assert_object(&self, bucket: &str, key: &str, expected: &[u8]) {
        let resp = self.get(bucket, key).await;
        resp.assert_status(StatusCode::OK);
        assert_eq!(resp.body.len(), expected.len(), "length of {bucket}/{key}");
        assert!(
            resp.body == expected,
            "{bucket}/{key} differs from what was written (sha256 {} != {})",
            sha256_hex(&resp.body),
            sha256_hex(expected)
        );
    }

    pub async fn head(&self, bucket: &str, key: &str) -> Resp {
        self.request(Method::HEAD, &object_path(bucket, key))
            .send()
            .await
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Resp {
        self.request(Method::DELETE, &object_path(bucket, key))
            .send()
            .await
    }

    /// CreateMultipartUpload that must succeed; returns the upload id.
    pub async fn create_upload(&self, bucket: &str, key: &str) -> String {
        let resp = self
            .request(Method::POST, &object_path(bucket, key))
            .query("uploads")
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        resp.xml_value("UploadId").expect("UploadId")
    }

    /// DeleteObjects with `body` as the request's XML, sent with its Content-MD5 as S3 requires.
    pub async fn delete_objects(&self, bucket: &str, body: Vec<u8>) -> Resp {
        self.request(Method::POST, &format!("/{bucket}"))
            .query("delete")
            .header("content-md5", &content_md5(&body))
            .body(body)
            .send()
            .await
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &[u8],
    ) -> Resp {
        self.request(Method::PUT, &object_path(bucket, key))
            .query(&query_string(&[
                ("partNumber", &number.to_string()),
                ("uploadId", upload_id),
            ]))
            .body(body.to_vec())
            .payload(PayloadHash::Unsigned)
            .send()
            .await
    }

    /// UploadPart that must succeed; returns the part's quoted ETag.
    pub async fn upload_part_ok(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &[u8],
    ) -> String {
        let resp = self.upload_part(bucket, key, upload_id, number, body).await;
        resp.assert_status(StatusCode::OK);
        resp.header("etag").expect("ETag on UploadPart").to_owned()
    }

    pub async fn complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Resp {
        self.request(Method::POST, &object_path(bucket, key))
            .query(&query_string(&[("uploadId", upload_id)]))
            .body(complete_xml(parts).into_bytes())
            .send()
            .await
    }

    /// Uploads `data` as parts of `part_size` bytes (the last one shorter) and completes the
    /// upload; returns the object's quoted ETag.
    pub async fn multipart_put(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        part_size: usize,
    ) -> String {
        let upload_id = self.create_upload(bucket, key).await;
        let mut parts = Vec::new();
        let pieces: Vec<&[u8]> = if data.is_empty() {
            vec![data]
        } else {
            data.chunks(part_size).collect()
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            let number = i as u32 + 1;
            let etag = self
                .upload_part_ok(bucket, key, &upload_id, number, piece)
                .await;
            parts.push((number, etag));
        }
        let resp = self.complete(bucket, key, &upload_id, &parts).await;
        resp.assert_status(StatusCode::OK);
        resp.xml_value("ETag")
            .expect("ETag in CompleteMultipartUploadResult")
    }

    /// ListObjectsV2 (or v1 when `v2` is false) with the given query pairs.
    pub async fn list(&self, bucket: &str, v2: bool, pairs: &[(&str, &str)]) -> Resp {
        let mut all: Vec<(&str, &str)> = Vec::new();
        if v2 {
            all.push(("list-type", "2"));
        }
        all.extend_from_slice(pairs);
        let resp = self
            .request(Method::GET, &format!("/{bucket}"))
            .query(&query_string(&all))
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        resp
    }

    /// The keys ListObjectsV2 returns (one page).
    pub async fn list_keys(&self, bucket: &str) -> Vec<String> {
        self.list(bucket, true, &[("max-keys", "1000")])
            .await
            .xml_values("Key")
    }
}

/// The body of a CompleteMultipartUpload.
pub fn complete_xml(parts: &[(u32, String)]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            xml_escape(etag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

impl RequestBuilder<'_> {
    /// The raw query string, already encoded (`uploads`, `partNumber=1&uploadId=..`).
    pub fn query(mut self, raw: &str) -> Self {
        self.request = self.request.query(raw);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        let value = HeaderValue::from_str(value).expect("header value");
        self.request = self.request.header(name, value);
        self
    }

    /// A header whose value is raw bytes, e.g. latin-1 text as botocore sends it.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        let value = HeaderValue::from_bytes(value).expect("header value");
        self.request = self.request.header(name, value);
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.request = self.request.body(body);
        self
    }

    pub fn payload(mut self, payload: PayloadHash) -> Self {
        self.request = self.request.payload(payload);
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.request = self.request.auth(auth);
        self
    }

    /// Drops a header after signing.
    pub fn without(mut self, name: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        self.request = self.request.without(name);
        self
    }

    /// The request's headers, signed as `auth` says (Host included, Content-Length not).
    pub fn signed_headers(&self) -> HeaderMap {
        self.request
            .signed_headers(self.client.client.endpoint())
            .expect("a request that can be signed")
    }

    pub async fn send(self) -> Resp {
        self.client.send_request(self.request).await
    }

    /// As [`RequestBuilder::send`], with a connection refused or cut (a server killed
    /// mid-request) returned instead of a panic; a response is checked as `send` checks it.
    pub async fn try_send(self) -> Result<Resp, Error> {
        self.client.try_send_request(self.request).await
    }

    /// The request head (request line and headers, signed), with `Content-Length` when given
    /// and `unsigned` headers added after signing (e.g. `expect`, `transfer-encoding`), for
    /// tests that write the body themselves over a raw connection.
    pub fn raw_head(&self, content_length: Option<u64>, unsigned: &[(&str, &str)]) -> String {
        self.request
            .raw_head(self.client.client.endpoint(), content_length, unsigned)
            .expect("a request that can be written out")
    }
}

impl Resp {
    fn checked(status: StatusCode, headers: HeaderMap, body: Bytes, method: &Method) -> Resp {
        let resp = Resp {
            status,
            headers,
            body: body.to_vec(),
        };
        // What every S3 response carries, errors included.
        assert!(
            resp.header("x-amz-request-id")
                .is_some_and(|v| !v.is_empty()),
            "{method} answered {status} without x-amz-request-id: {resp:?}"
        );
        assert!(
            resp.header("date")
                .and_then(cairn::s3::date::parse_http_date)
                .is_some(),
            "{method} answered {status} without a valid Date: {resp:?}"
        );
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{method} answered 500: {}",
            resp.text()
        );
        resp
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an error body.
    pub fn code(&self) -> Option<String> {
        self.xml_value("Code")
    }

    pub fn xml_value(&self, tag: &str) -> Option<String> {
        xml_values(&self.text(), tag).into_iter().next()
    }

    pub fn xml_values(&self, tag: &str) -> Vec<String> {
        xml_values(&self.text(), tag)
    }

    pub fn assert_status(&self, expected: StatusCode) {
        assert_eq!(
            self.status,
            expected,
            "unexpected status; body: {}",
            self.text()
        );
    }

    /// Asserts an S3 error: the status, the `<Code>` (when the response has a body) and an
    /// XML content type.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        self.assert_status(status);
        assert_eq!(
            self.code().as_deref(),
            Some(code),
            "expected {code}; body: {}",
            self.text()
        );
        assert_eq!(self.header("content-type"), Some("application/xml"));
        assert!(
            self.xml_value("RequestId")
                .is_some_and(|id| Some(id.as_str()) == self.header("x-amz-request-id")),
            "RequestId in the body must match x-amz-request-id: {}",
            self.text()
        );
    }

    pub fn content_length(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("Content-Length")
    }
}

impl Download {
    pub fn status(&self) -> StatusCode {
        self.response.status
    }

    pub fn content_length(&self) -> Option<u64> {
        self.response
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.conn.data(&mut self.response).await
    }
}

/// The raw inner text of every `<tag>...</tag>` (not nested in itself), in document order.
pub fn xml_elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// As [`xml_elements`], with entities and character references resolved.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    xml_elements(xml, tag)
        .into_iter()
        .map(xml_unescape)
        .collect()
}

pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let end = tail.find(';').expect("entity ends with ;");
        let entity = &tail[1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).expect("hex reference")
                } else {
                    entity
                        .strip_prefix('#')
                        .expect("character reference")
                        .parse()
                        .expect("decimal reference")
                };
                char::from_u32(n).expect("valid character")
            }
        };
        out.push(c);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

pub fn xml_escape(s: &str) -> String {
    cairn::client::escape(s)
}

/// Writes a request head and `body_sent` bytes of the body over a raw connection, then shuts
/// the socket down as a client that disconnects mid-upload would. Returns whatever the server
/// answered before closing (possibly nothing).
pub fn send_truncated(host: &str, head: &str, body_sent: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer and close before all of the body is written; that is allowed.
    let _ = stream.write_all(body_sent);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Splits what a server sent into head and body; `None` when it sent nothing.
    pub fn parse(bytes: &[u8]) -> Option<RawResponse> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some(RawResponse {
            status,
            head,
            body: bytes[end + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn code(&self) -> Option<String> {
        xml_values(&String::from_utf8_lossy(&self.body), "Code")
            .into_iter()
            .next()
    }
}

/// Sends `head` and `body` on a new connection that the server is asked to close after its
/// answer, and reads that answer.
pub fn raw_exchange(host: &str, head: &str, body: &[u8]) -> RawResponse {
    let head = head.replacen("\r\n", "\r\nconnection: close\r\n", 1);
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    RawResponse::parse(&answer)
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&answer)))
}
