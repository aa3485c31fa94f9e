//! Connections: a [`Conn`] is one HTTP/1.1 keep-alive connection with TCP_NODELAY (a small
//! response must not wait for a delayed ACK), reopened after an error or when the server
//! closed it; `cairn bench` gives each worker one. A [`Client`] shares a few idle `Conn`s
//! between callers, for tests that send requests from many places at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::{Body, Endpoint, Error, Request};

/// A pooled connection idle longer than this is closed rather than reused: a server may be
/// closing it at the very moment a request is written on it (hyper's server closes idle
/// connections after 30 s).
const MAX_IDLE: Duration = Duration::from_secs(5);

/// A response whose body is still to be read, by the deadline of its request.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    deadline: Instant,
}

/// Why a request got no response.
enum Failure {
    /// Nothing of it was written, so it may go again.
    Unsent(hyper::Error, Box<http::Request<Body>>),
    Failed(hyper::Error),
}

/// One connection to an endpoint.
#[derive(Debug)]
pub struct Conn {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Body>>,
}

impl Conn {
    pub fn new(endpoint: Arc<Endpoint>) -> Conn {
        Conn {
            endpoint,
            sender: None,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens the connection now, so that it is not opened inside a timed request.
    pub async fn connect(&mut self) -> Result<(), Error> {
        self.open().await.map(|_| ())
    }

    /// Opens the connection unless it is open; returns whether it opened it.
    async fn open(&mut self) -> Result<bool, Error> {
        if self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(false);
        }
        self.sender = None;
        let addr = self.endpoint.addr;
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
        Ok(true)
    }

    /// Signs and sends `request`; returns the response head, its body unread.
    ///
    /// A server may close a kept-alive connection while a request is on its way to it; a
    /// request that was not written yet is sent again once, on a new connection.
    pub async fn send(&mut self, request: Request) -> Result<Response, Error> {
        let deadline = Instant::now() + self.endpoint.timeout;
        let mut request = request.into_http(&self.endpoint)?;
        loop {
            let fresh = self.open().await?;
            let Some(sender) = self.sender.as_mut() else {
                return Err(Error::Protocol("no connection".to_owned()));
            };
            let ready = match timeout_at(deadline, sender.ready()).await {
                Ok(ready) => ready,
                Err(_) => {
                    self.sender = None;
                    return Err(Error::Timeout(self.endpoint.timeout));
                }
            };
            let failure = match ready {
                Err(e) => Failure::Unsent(e, Box::new(request)),
                Ok(()) => match timeout_at(deadline, sender.try_send_request(request)).await {
                    Ok(Ok(response)) => {
                        let (parts, body) = response.into_parts();
                        return Ok(Response {
                            status: parts.status,
                            headers: parts.headers,
                            body,
                            deadline,
                        });
                    }
                    Ok(Err(mut e)) => match e.take_message() {
                        Some(unsent) => Failure::Unsent(e.into_error(), Box::new(unsent)),
                        None => Failure::Failed(e.into_error()),
                    },
                    Err(_) => {
                        self.sender = None;
                        return Err(Error::Timeout(self.endpoint.timeout));
                    }
                },
            };
            self.sender = None;
            match failure {
                Failure::Unsent(_, again) if !fresh => request = *again,
                Failure::Unsent(e, _) | Failure::Failed(e) => return Err(e.into()),
            }
        }
    }

    /// The next piece of `response`'s body, `None` at its end.
    pub async fn data(&mut self, response: &mut Response) -> Result<Option<Bytes>, Error> {
        loop {
            match timeout_at(response.deadline, response.body.frame()).await {
                Err(_) => {
                    self.sender = None;
                    return Err(Error::Timeout(self.endpoint.timeout));
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    self.sender = None;
                    return Err(e.into());
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Reads the whole body of `response`, refusing one larger than `limit` bytes.
    pub async fn read_body(
        &mut self,
        mut response: Response,
        limit: usize,
    ) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        while let Some(data) = self.data(&mut response).await? {
            if out.len() + data.len() > limit {
                self.discard();
                return Err(Error::Protocol(format!(
                    "response body larger than {limit} bytes"
                )));
            }
            out.extend_from_slice(&data);
        }
        Ok(out.freeze())
    }

    /// Forgets the connection, e.g. when a body is left unread, so it is not reused.
    pub fn discard(&mut self) {
        self.sender = None;
    }
}

/// Connections to one endpoint shared by whoever holds a clone.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Arc<Endpoint>,
    /// Connections whose last response was read to its end, with the instant it was.
    idle: Arc<Mutex<Vec<(Conn, Instant)>>>,
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Client {
        Client {
            endpoint: Arc::new(endpoint),
            idle: Arc::default(),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// An idle connection, or a new one.
    fn take(&self) -> Conn {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE {
                return conn;
            }
        }
        Conn::new(self.endpoint.clone())
    }

    /// Sends `request` and reads its whole body (at most `limit` bytes).
    pub async fn fetch(
        &self,
        request: Request,
        limit: usize,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Error> {
        let mut conn = self.take();
        let mut response = conn.send(request).await?;
        let (status, headers) = (response.status, std::mem::take(&mut response.headers));
        let body = conn.read_body(response, limit).await?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push((conn, Instant::now()));
        Ok((status, headers, body))
    }

    /// Sends `request` on a connection of its own, whose body the caller reads with
    /// [`Conn::data`] as it arrives.
    pub async fn stream(&self, request: Request) -> Result<(Conn, Response), Error> {
        let mut conn = Conn::new(self.endpoint.clone());
        let response = conn.send(request).await?;
        Ok((conn, response))
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::client::Credentials;

    #[tokio::test]
    async fn a_client_opens_a_new_connection_when_the_server_closed_the_kept_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Answers one request per connection, then closes it without saying so in a header.
        let server = tokio::spawn(async move {
            for _ in 0..3 {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8];
                    stream.read_exact(&mut byte).await.unwrap();
                    head.push(byte[0]);
                }
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                stream.write_all(answer).await.unwrap();
            }
        });
        let client = Client::new(Endpoint {
            addr,
            host: addr.to_string(),
            region: "us-east-1".to_owned(),
            credentials: Credentials {
                access_key_id: "AKID".to_owned(),
                secret: "secret".to_owned(),
            },
            timeout: Duration::from_secs(10),
        });
        for _ in 0..3 {
            let request = Request::new(Method::GET, "/b/k");
            let (status, _, body) = client.fetch(request, 16).await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        }
        server.await.unwrap();
        // The last connection waits for the next request; the two closed ones are gone.
        assert_eq!(client.idle.lock().unwrap().len(), 1);
        // A body larger than the caller's limit is refused.
        let listener = TcpListener::bind(addr).await.unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4];
            while &head != b"\r\n\r\n" {
                head.rotate_left(1);
                stream.read_exact(&mut head[3..]).await.unwrap();
            }
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789";
            stream.write_all(answer).await.unwrap();
        });
        let request = Request::new(Method::GET, "/b/k");
        assert!(matches!(
            client.fetch(request, 16).await,
            Err(Error::Protocol(_))
        ));
        server.await.unwrap();
    }
}
