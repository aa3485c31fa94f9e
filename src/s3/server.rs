//! The S3 HTTP server: accepts connections, authenticates each request (SigV4 header or
//! presigned URL), routes it, runs its handler and turns any error into AWS's XML error body.
//! Every response carries x-amz-request-id and Date. Shutdown stops accepting, then lets
//! in-flight requests finish within a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::{TlsAcceptor, rustls};

use super::date::http_date;
use super::error::{ErrorCode, S3Error};
use super::handlers::body::aws_chunked_stats;
use super::handlers::dispatch;
use super::handlers::request::Request;
use super::handlers::response::{Response, S3Result, empty, full};
use super::router::{Route, parse_query, path_below_bucket, query_get, route};
use super::sigv2;
use super::sigv4::{Credentials, PayloadHash, RequestParts, Verified, parse_credentials};
use crate::audit::RateLimitedLog;
use crate::gateway::{Gateway, now};
use crate::limits::{Admission, ConnectionLimit, HeaderTimeouts, OVERFLOW_CONNECTIONS, Slot};
use crate::gateway::access::{Identity, Requester};

/// An unauthenticated readiness probe; `_` cannot start a bucket name, so it shadows none.
pub const HEALTH_PATH: &str = "/_cairn/health";
/// Unauthenticated counters (no object data, no names) for tests and operators.
pub const STATS_PATH: &str = "/_cairn/stats";

pub struct S3Service {
    pub gateway: Arc<Gateway>,
    /// Enables virtual-hosted-style addressing under this domain.
    pub domain: Option<String>,
    /// Set while this gateway runs the cluster's coordinator (reported in the stats).
    pub coordinator: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// What a gateway lets its clients hold at once and how long it waits for them; validated by
/// the command line.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; a connection past them is answered 503 SlowDown and closed.
    pub max_connections: usize,
    /// Request body bytes buffered or being processed at once, each request counted at most
    /// [`WRITE_MEMORY`]; a request that would pass it is answered 503 SlowDown.
    pub max_inflight_bytes: u64,
    /// How long a client has to send a request's headers, counted from the connection's start
    /// or the end of the previous response, so also how long an idle keep-alive connection is
    /// kept.
    pub header_timeout: Duration,
    /// How long an XML request body may send nothing before the request fails with 400
    /// RequestTimeout.
    pub body_timeout: Duration,
}

/// What one request with a body holds in memory while it is processed, whatever the body's
/// length: a write streams through the hashing queue (8 batches of 256 KiB), the chunk
/// writer's buffers (two chunks' worth while one commits behind the next) and the replication
/// queue of each replica, a few MiB in all; an XML body is collected whole, up to 4 MiB. So the
/// bytes in flight are bounded by counting each request at its declared length, at most this.
pub const WRITE_MEMORY: u64 = 8 << 20;

/// How long a connection past `max_connections` (one of `OVERFLOW_CONNECTIONS`, answered 503
/// SlowDown so clients learn to back off) has to send its request's headers.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed authentications logged at once, then per second; the rest are counted.
const AUDIT_BURST: u32 = 20;
const AUDIT_PER_SECOND: u32 = 5;
/// The longest access key id an audit line repeats from a request (real ones are 16 to 128
/// characters; a forged one could be anything).
const MAX_LOGGED_KEY_ID: usize = 128;

/// The S3 service with its limits and the state that enforces them.
struct Server {
    service: S3Service,
    limits: Limits,
    /// Permits are bytes of request bodies in flight.
    body_bytes: Arc<Semaphore>,
    audit: RateLimitedLog,
    refusals: RateLimitedLog,
    /// Whether clients reach this server over TLS (`aws:SecureTransport`).
    secure: bool,
}

/// One accepted connection as its requests see it.
#[derive(Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    /// `Overflow` past the connection limit: every request is answered 503 SlowDown.
    slot: Slot,
}

/// Loads a PEM certificate chain and private key into a TLS acceptor for HTTP/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(&cert.display().to_string(), &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&cert.display().to_string(), &e))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(&key.display().to_string(), &e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("TLS certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves S3 on `listener` (over TLS when `tls` is given) within `limits` until `shutdown`
/// completes, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S3Service,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server = Arc::new(Server {
        service,
        limits,
        body_bytes: Arc::new(Semaphore::new(
            usize::try_from(limits.max_inflight_bytes)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS),
        )),
        audit: RateLimitedLog::new("failed authentication", AUDIT_BURST, AUDIT_PER_SECOND),
        refusals: RateLimitedLog::new("refused connection", AUDIT_BURST, AUDIT_PER_SECOND),
        secure: tls.is_some(),
    });
    let timeouts = HeaderTimeouts {
        served: limits.header_timeout,
        overflow: limits.header_timeout.min(OVERFLOW_HEADER_TIMEOUT),
    };
    let limit = ConnectionLimit::new(limits.max_connections, OVERFLOW_CONNECTIONS, tls, timeouts);
    crate::net::accept_until(listener, shutdown, move |stream, addr, watcher| {
        let admission = limit.admit();
        if !matches!(admission, Admission::Served(_)) {
            server.refusals.log(|| {
                tracing::warn!(
                    target: "cairn::audit",
                    peer = %addr,
                    max_connections = limits.max_connections,
                    "connection limit reached: answering 503 SlowDown"
                );
            });
        }
        let server = server.clone();
        limit.serve(admission, stream, addr, watcher, move |req, slot| {
            handle(server.clone(), Peer { addr, slot }, req)
        })
    })
    .await
}

fn request_id() -> String {
    let id = uuid::Uuid::new_v4();
    hex::encode_upper(&id.as_bytes()[..8])
}

async fn handle(
    server: Arc<Server>,
    peer: Peer,
    req: http::Request<Incoming>,
) -> Result<Response, Infallible> {
    let request_id = request_id();
    let is_head = req.method() == Method::HEAD;
    // Two cases end with the connection closed, said so in the response:
    // - hyper sends `100 Continue` only when a body is read, and an empty body never is;
    //   botocore then takes the final response for the interim one and misreads the next
    //   response on the connection (a 60 s stall);
    // - an error may be answered before the body is read; hyper then closes the connection,
    //   and a client must not reuse it.
    let headers = req.headers();
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty_body = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    // An overflow connection is closed after its one answer.
    let overflow = peer.slot == Slot::Overflow;
    let mut close_after = (expects_continue && empty_body) || overflow;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // A panic is a bug, but it must cost one request an error, not the connection a reply.
    let outcome = if overflow {
        Err(S3Error::new(ErrorCode::SlowDown))
    } else {
        std::panic::AssertUnwindSafe(respond(&server, peer, req))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(%method, %path, %request_id, "request handler panicked");
                Err(S3Error::new(ErrorCode::InternalError))
            })
    };
    let mut resp = match outcome {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code.as_str(), %request_id, "request failed");
            close_after |= has_body;
            error_response(&e, &request_id, is_head)
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amz-request-id", v.clone());
        h.insert("x-amz-id-2", v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(now())) {
        h.insert(header::DATE, v);
    }
    h.insert(header::SERVER, HeaderValue::from_static("Cairn"));
    if close_after {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(resp)
}

fn error_response(e: &S3Error, request_id: &str, is_head: bool) -> Response {
    let status = e.status();
    let no_body = is_head || status == StatusCode::NOT_MODIFIED;
    let body = if no_body {
        String::new()
    } else {
        e.to_xml(request_id)
    };
    let mut builder = http::Response::builder().status(status);
    if !no_body {
        builder = builder
            .header(header::CONTENT_TYPE, "application/xml")
            .header(header::CONTENT_LENGTH, body.len());
    }
    if e.code == ErrorCode::InvalidRange
        && let Some((_, size)) = e.extra.iter().find(|(n, _)| *n == "ActualObjectSize")
    {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes */{size}"));
    }
    builder.body(full(body)).unwrap_or_else(|_| {
        let mut r = http::Response::new(empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

async fn respond(server: &Server, peer: Peer, req: http::Request<Incoming>) -> S3Result {
    let service = &server.service;
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or_default();
    if raw_path == HEALTH_PATH && parts.method == Method::GET {
        return Ok(http::Response::new(full("ok\n")));
    }
    if raw_path == STATS_PATH && parts.method == Method::GET {
        let mut stats = aws_chunked_stats();
        if let Some(flag) = &service.coordinator {
            let leader = flag.load(std::sync::atomic::Ordering::Relaxed);
            stats.push_str(&format!("coordinator_leader {}\n", u8::from(leader)));
        }
        return Ok(http::Response::new(full(stats)));
    }

    let query = parse_query(raw_query);
    let route = route(
        &parts.method,
        raw_path,
        &query,
        &parts.headers,
        service.domain.as_deref(),
    )?;
    let (payload, verified, requester) = match authenticate(service, &parts, &route).await {
        Ok(authenticated) => authenticated,
        Err(e) => {
            let key_id = claimed_key_id(&parts.headers, &query);
            server.audit_failure(peer, &parts.method, raw_path, key_id.as_deref(), &e);
            return Err(e);
        }
    };
    // Held until the handler is done with the body, so the bytes in flight stay bounded.
    let _body_bytes = match body_weight(&parts.headers, server.limits.max_inflight_bytes) {
        0 => None,
        weight => Some(
            server
                .body_bytes
                .clone()
                .try_acquire_many_owned(weight)
                .map_err(|_| S3Error::new(ErrorCode::SlowDown))?,
        ),
    };
    let method = parts.method.clone();
    let key_id = match &requester {
        Requester::Key(identity) => identity.key.id.clone(),
        Requester::Anonymous => "-".to_owned(),
    };
    let request = Request {
        method: parts.method,
        headers: parts.headers,
        query,
        route,
        payload,
        verified,
        body: Some(body),
        body_polled: Arc::default(),
        body_timeout: server.limits.body_timeout,
        requester,
        source_ip: peer.addr.ip(),
        secure: server.secure,
        context: Default::default(),
        bucket_access: None,
        object_check: None,
        source_check: None,
    };
    let result = dispatch(&service.gateway, request).await;
    // A signed aws-chunked body is authenticated chunk by chunk as the handler reads it.
    if let Err(e) = &result
        && e.code == ErrorCode::SignatureDoesNotMatch
    {
        server.audit_failure(peer, &method, raw_path, Some(&key_id), e);
    }
    result
}

impl Server {
    /// Logs a failed authentication at warn (rate-limited): who it claimed to be, from where,
    /// what it asked and why it failed. Strings from the request are logged escaped (`?`), so
    /// a forged value cannot write lines of its own.
    fn audit_failure(
        &self,
        peer: Peer,
        method: &Method,
        path: &str,
        key_id: Option<&str>,
        e: &S3Error,
    ) {
        self.audit.log(|| {
            tracing::warn!(
                target: "cairn::audit",
                peer = %peer.addr,
                key_id = ?key_id.unwrap_or("-"),
                %method,
                path = ?path,
                code = e.code.as_str(),
                reason = ?e.message,
                "authentication failed"
            );
        });
    }
}

/// Checks a request's signature (SigV4 header or presigned URL, or a SigV2 presigned URL)
/// against the secret of the key it names; returns what the signature covers and who signed it.
/// A request with no signature at all is anonymous: authorization decides what it may do.
async fn authenticate(
    service: &S3Service,
    parts: &http::request::Parts,
    route: &Route,
) -> Result<(PayloadHash, Option<Verified>, Requester), S3Error> {
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or_default();
    if let Some(presigned) = sigv2::parse(raw_query) {
        let presigned = presigned?;
        let key = access_key(service, &presigned.access_key_id).await?;
        // SigV2 signs the resource as /bucket/key whatever the addressing style; the bucket is
        // the one the router found, so a URL signed for one bucket cannot open another.
        let resource = match &route.bucket {
            Some(bucket) => {
                let below = path_below_bucket(raw_path, &parts.headers, service.domain.as_deref());
                format!("/{bucket}{below}")
            }
            None => raw_path.to_owned(),
        };
        presigned.verify(
            parts.method.as_str(),
            &parts.headers,
            &resource,
            raw_query,
            &key.key.secret,
            now().unix_timestamp(),
        )?;
        return Ok((PayloadHash::Unsigned, None, Requester::Key(key)));
    }
    let request_parts = RequestParts {
        method: &parts.method,
        raw_path,
        raw_query,
        headers: &parts.headers,
    };
    let pending = match parse_credentials(&request_parts)? {
        Credentials::Anonymous => {
            return Ok((PayloadHash::Unsigned, None, Requester::Anonymous));
        }
        Credentials::Header(p) | Credentials::Presigned(p) => p,
    };
    let key = access_key(service, pending.access_key_id()).await?;
    let verified = pending.verify(&request_parts, &key.key.secret, now())?;
    Ok((verified.payload.clone(), Some(verified), Requester::Key(key)))
}

/// The bytes a request counts against `--max-inflight-bytes`: its declared body length, at
/// most [`WRITE_MEMORY`] (a copy writes as much as an upload, a body of unknown length may be
/// as long as any); never more than the whole limit, so one request alone always fits.
fn body_weight(headers: &HeaderMap, max_inflight_bytes: u64) -> u32 {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = if headers.contains_key("x-amz-copy-source")
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        WRITE_MEMORY
    } else {
        declared.unwrap_or(0).min(WRITE_MEMORY)
    };
    // WRITE_MEMORY is far below u32::MAX.
    u32::try_from(bytes.min(max_inflight_bytes)).unwrap_or(u32::MAX)
}

/// The access key id a request names, read loosely (the request may be malformed) from the
/// SigV4 `Credential`, the SigV2 `Authorization: AWS ID:SIGNATURE` or the presigned URL's
/// parameters, for the audit line of a failed authentication. Never the signature.
fn claimed_key_id(headers: &HeaderMap, query: &[(String, String)]) -> Option<String> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let id = match authorization {
        Some(v) if v.starts_with("AWS ") => v[4..].split(':').next(),
        Some(v) => v
            .split_once("Credential=")
            .and_then(|(_, rest)| rest.split(['/', ',']).next()),
        None => query_get(query, "X-Amz-Credential")
            .and_then(|c| c.split('/').next())
            .or_else(|| query_get(query, "AWSAccessKeyId")),
    }?;
    Some(id.trim().chars().take(MAX_LOGGED_KEY_ID).collect())
}

async fn access_key(service: &S3Service, id: &str) -> Result<Arc<Identity>, S3Error> {
    service
        .gateway
        .access()
        .identity(id)
        .await?
        .ok_or_else(|| S3Error::new(ErrorCode::InvalidAccessKeyId).with_extra("AWSAccessKeyId", id))
}
