//! The S3 HTTP server: accepts connections, authenticates each request (SigV4 header or
//! presigned URL), routes it, runs its handler and turns any error into AWS's XML error body.
//! Every response carries x-amz-request-id and Date. Shutdown stops accepting, then lets
//! in-flight requests finish within a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::{HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::{TlsAcceptor, rustls};

use super::date::http_date;
use super::error::{ErrorCode, S3Error};
use super::handlers::body::aws_chunked_stats;
use super::handlers::dispatch;
use super::handlers::request::Request;
use super::handlers::response::{Response, S3Result, empty, full};
use super::router::{parse_query, path_below_bucket, route};
use super::sigv2;
use super::sigv4::{Credentials, PayloadHash, RequestParts, parse_credentials};
use crate::gateway::{Gateway, GatewayError, now};
use crate::meta::AccessKey;

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

/// How long a client has to send a request's headers (also how long an idle keep-alive
/// connection is kept).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Serves S3 on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: Arc<S3Service>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    crate::net::accept_until(listener, shutdown, move |stream, peer, watcher| {
        let service = service.clone();
        let tls = tls.clone();
        async move {
            let result = match tls {
                None => serve_connection(stream, service, watcher).await,
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, service, watcher).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
    })
    .await
}

async fn serve_connection<IO>(
    io: IO,
    service: Arc<S3Service>,
    watcher: Watcher,
) -> hyper::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(
            TokioIo::new(io),
            service_fn(move |req| handle(service.clone(), req)),
        );
    watcher.watch(conn).await
}

fn request_id() -> String {
    let id = uuid::Uuid::new_v4();
    hex::encode_upper(&id.as_bytes()[..8])
}

async fn handle(
    service: Arc<S3Service>,
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
    let mut close_after = expects_continue && empty_body;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // A panic is a bug, but it must cost one request an error, not the connection a reply.
    let outcome = std::panic::AssertUnwindSafe(respond(&service, req))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(%method, %path, %request_id, "request handler panicked");
            Err(S3Error::new(ErrorCode::InternalError))
        });
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

async fn respond(service: &S3Service, req: http::Request<Incoming>) -> S3Result {
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
    let (payload, verified) = if let Some(presigned) = sigv2::parse(raw_query) {
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
            &key.secret,
            now().unix_timestamp(),
        )?;
        (PayloadHash::Unsigned, None)
    } else {
        let request_parts = RequestParts {
            method: &parts.method,
            raw_path,
            raw_query,
            headers: &parts.headers,
        };
        let pending = match parse_credentials(&request_parts)? {
            Credentials::Anonymous => {
                return Err(S3Error::new(ErrorCode::AccessDenied)
                    .with_message("Anonymous access is not allowed"));
            }
            Credentials::Header(p) | Credentials::Presigned(p) => p,
        };
        let key = access_key(service, pending.access_key_id()).await?;
        let verified = pending.verify(&request_parts, &key.secret, now())?;
        (verified.payload.clone(), Some(verified))
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
    };
    dispatch(&service.gateway, request).await
}

async fn access_key(service: &S3Service, id: &str) -> Result<AccessKey, S3Error> {
    service
        .gateway
        .meta()
        .key(id)
        .await
        .map_err(GatewayError::from)?
        .ok_or_else(|| S3Error::new(ErrorCode::InvalidAccessKeyId).with_extra("AWSAccessKeyId", id))
}
