//! Admission of connections to a listener, shared by the S3 server and the data node: up to a
//! cap they are served as usual; a few more are let in to be answered quickly (each listener
//! says how: the gateway's 503 SlowDown, the data node's health check or 503) under a short
//! header timeout and closed; beyond those, a connection is closed as soon as it is accepted.
//! Idle sockets so cost a bounded number of slots, and only for a while. Also the serving of an
//! admitted connection: the TLS handshake, if any, then HTTP/1.1 under its header timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Connections beyond the cap that are still read and answered, so that clients learn to back
/// off (and a coordinator still sees a busy data node up); any beyond these are closed at once.
pub const OVERFLOW_CONNECTIONS: usize = 64;
/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's admission of connections, counted by permits held for each connection's life,
/// with how it serves those it admits: over TLS or not, under which header timeouts.
#[derive(Clone)]
pub struct ConnectionLimit {
    served: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
    timeouts: HeaderTimeouts,
}

/// How one accepted connection is to be handled; it holds its slot until dropped.
#[derive(Debug)]
pub enum Admission {
    /// Within the cap: serve it as usual.
    Served(OwnedSemaphorePermit),
    /// Beyond the cap: answer one request quickly, then close.
    Overflow(OwnedSemaphorePermit),
    /// Beyond the cap and the overflow: close it now.
    Refused,
}

/// Which slot a request's connection holds: the listener's service answers a request on an
/// overflow connection its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Served,
    Overflow,
}

/// How long a connection has to send a request's headers (from its start or the end of the
/// previous response, so also how long an idle keep-alive connection is kept), by its slot.
#[derive(Debug, Clone, Copy)]
pub struct HeaderTimeouts {
    pub served: Duration,
    /// Short: a health check sends its headers at once, an idle socket loses its slot quickly.
    pub overflow: Duration,
}

impl ConnectionLimit {
    /// At most `max` connections served and `overflow` more answered quickly; over TLS when
    /// `tls` is given.
    pub fn new(
        max: usize,
        overflow: usize,
        tls: Option<TlsAcceptor>,
        timeouts: HeaderTimeouts,
    ) -> Self {
        ConnectionLimit {
            served: Arc::new(Semaphore::new(max)),
            overflow: Arc::new(Semaphore::new(overflow)),
            tls,
            timeouts,
        }
    }

    /// To be called on the accept loop, before the connection's task exists, so the count of
    /// connections served can never pass the cap.
    pub fn admit(&self) -> Admission {
        if let Ok(permit) = self.served.clone().try_acquire_owned() {
            return Admission::Served(permit);
        }
        match self.overflow.clone().try_acquire_owned() {
            Ok(permit) => Admission::Overflow(permit),
            Err(_) => Admission::Refused,
        }
    }

    /// The task that serves one accepted connection as `admission` says (`serve_connection`);
    /// it borrows nothing of `self`, so the accept loop can spawn it.
    pub fn serve<F, Fut, B>(
        &self,
        admission: Admission,
        stream: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        service: F,
    ) -> impl Future<Output = ()> + Send + use<F, Fut, B>
    where
        F: Fn(http::Request<Incoming>, Slot) -> Fut + Send + 'static,
        Fut: Future<Output = Result<http::Response<B>, Infallible>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tls = self.tls.clone();
        serve_connection(
            admission,
            stream,
            peer,
            tls,
            self.timeouts,
            watcher,
            service,
        )
    }
}

/// Serves one accepted connection as `admission` says, holding its slot until it ends: a
/// refused one is closed unread; any other goes through the TLS handshake when `tls` is given,
/// then is served HTTP/1.1 by `service`, told the connection's slot. An overflow connection is
/// served one request under the overflow header timeout, then closed.
async fn serve_connection<F, Fut, B>(
    admission: Admission,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    timeouts: HeaderTimeouts,
    watcher: Watcher,
    service: F,
) where
    F: Fn(http::Request<Incoming>, Slot) -> Fut + Send + 'static,
    Fut: Future<Output = Result<http::Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (slot, _permit) = match admission {
        Admission::Served(permit) => (Slot::Served, permit),
        Admission::Overflow(permit) => (Slot::Overflow, permit),
        Admission::Refused => {
            tracing::debug!(%peer, "connection closed: too many connections");
            return;
        }
    };
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    match slot {
        Slot::Served => builder.header_read_timeout(timeouts.served),
        Slot::Overflow => builder
            .header_read_timeout(timeouts.overflow)
            .keep_alive(false),
    };
    let service = service_fn(move |req| service(req, slot));
    let result = match tls {
        None => serve_http(&builder, stream, service, watcher).await,
        Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
            Ok(Ok(stream)) => serve_http(&builder, stream, service, watcher).await,
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// One connection's HTTP/1.1, over whichever stream the handshake left; registered with the
/// watcher so shutdown can drain it.
async fn serve_http<IO, S, B>(
    builder: &http1::Builder,
    io: IO,
    service: S,
    watcher: Watcher,
) -> hyper::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    watcher
        .watch(builder.serve_connection(TokioIo::new(io), service))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_up_to_the_cap_then_overflows_then_refuses() {
        let timeouts = HeaderTimeouts {
            served: Duration::from_secs(1),
            overflow: Duration::from_secs(1),
        };
        let limit = ConnectionLimit::new(2, 1, None, timeouts);
        let first = limit.admit();
        let second = limit.admit();
        assert!(matches!(first, Admission::Served(_)));
        assert!(matches!(second, Admission::Served(_)));
        let third = limit.admit();
        assert!(matches!(third, Admission::Overflow(_)));
        assert!(matches!(limit.admit(), Admission::Refused));
        // Slots come back when connections end.
        drop(third);
        assert!(matches!(limit.admit(), Admission::Overflow(_)));
        drop(first);
        assert!(matches!(limit.admit(), Admission::Served(_)));
    }
}
