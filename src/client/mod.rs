//! Cairn's S3 client: path-style requests signed with the server's own SigV4 signer
//! (`s3::sigv4`), over HTTP/1.1 keep-alive connections of hyper. `cairn bench` drives its
//! workloads through [`Conn`] and the operations of `ops.rs`; the integration tests send
//! [`Request`]s through a [`Client`], including deliberately broken ones (a wrong secret, a
//! skewed clock, a lying payload hash, a replaced or missing `Authorization`, raw heads).

mod body;
mod conn;
mod ops;
mod request;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

pub use body::Body;
pub use conn::{Client, Conn, Response};
pub use ops::{ListPage, escape};
pub use request::{Auth, PayloadHash, Request};

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

/// The key requests are signed with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret: String,
}

/// Where requests go and how they are signed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host` header requests carry and sign: the endpoint's authority as given, or a
    /// virtual-hosted name (`bucket.domain:port`) that resolves to `addr`.
    pub host: String,
    pub region: String,
    pub credentials: Credentials,
    /// The longest a single request may take, body included.
    pub timeout: Duration,
}

impl Endpoint {
    /// Resolves `endpoint` (`http://HOST[:PORT]`, no path).
    pub async fn resolve(
        endpoint: &str,
        region: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Endpoint, Error> {
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
        Ok(Endpoint {
            addr,
            host,
            region: region.to_owned(),
            credentials,
            timeout,
        })
    }
}

/// The authority of an `http://` endpoint.
fn parse_endpoint(endpoint: &str) -> Result<String, Error> {
    if endpoint.starts_with("https://") {
        return Err(Error::Protocol(
            "the client speaks plain HTTP only; give an http:// endpoint".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn endpoint_resolves_with_and_without_port() {
        let credentials = || Credentials {
            access_key_id: "id".to_owned(),
            secret: "secret".to_owned(),
        };
        let e = Endpoint::resolve(
            "http://127.0.0.1:9000",
            "us-east-1",
            credentials(),
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(e.addr, "127.0.0.1:9000".parse().unwrap());
        let e = Endpoint::resolve(
            "http://127.0.0.1",
            "us-east-1",
            credentials(),
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(e.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(e.host, "127.0.0.1");
    }
}
