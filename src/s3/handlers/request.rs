//! The request a handler receives: authenticated by the server, routed to one operation, its
//! body not yet read. Handlers read its headers and query through the accessors here and take
//! its body through `body.rs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::{HeaderMap, Method};
use hyper::body::Incoming;

use crate::gateway::access::{BucketAuth, Requester, object_acl_allows};
use crate::iam::Context;
use crate::iam::acl::Permission;
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::router::{Route, query_get};
use crate::s3::sigv4::{PayloadHash, Verified};

/// An authenticated, routed request.
pub struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub route: Route,
    pub payload: PayloadHash,
    /// The SigV4 signature that authenticated the request (none for SigV2 presigned URLs);
    /// signed aws-chunked bodies continue its chain.
    pub verified: Option<Verified>,
    /// Taken by whichever helper reads it.
    pub body: Option<Incoming>,
    /// Set once anything asks for the body's bytes: under `Expect: 100-continue` that is
    /// what tells the client to send them, so only then is a body worth draining.
    pub body_polled: Arc<AtomicBool>,
    /// How long an XML body may send nothing (`--body-timeout`).
    pub body_timeout: Duration,
    /// Who signed the request, if anyone.
    pub requester: Requester,
    /// The client's address, as `aws:SourceIp` sees it.
    pub source_ip: IpAddr,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure: bool,
    /// The request's condition values (set by `authorize`).
    pub context: Context,
    /// The bucket the request names, with its access settings, when it exists.
    pub bucket_access: Option<Arc<BucketAuth>>,
    /// The permission the object's ACL must grant for the request to go on (no policy or
    /// ownership allowed it; see `authorize.rs`).
    pub object_check: Option<Permission>,
    /// Likewise for a copy's source object, with the source's bucket.
    pub source_check: Option<(Arc<BucketAuth>, Permission)>,
}

impl Request {
    pub fn bucket(&self) -> &str {
        self.route.bucket.as_deref().unwrap_or_default()
    }

    pub fn key(&self) -> &str {
        self.route.key.as_deref().unwrap_or_default()
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        query_get(&self.query, name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Settles the object ACL check `authorize` left for once the object is loaded: AccessDenied
    /// unless the object's ACL grants what the request needs.
    pub fn check_object_acl(&self, owner: &str, acl: Option<&str>) -> Result<(), S3Error> {
        let check = self.object_check.zip(self.bucket_access.as_deref());
        acl_check(&self.requester, check, owner, acl)
    }

    /// The same for a copy's source object.
    pub fn check_source_acl(&self, owner: &str, acl: Option<&str>) -> Result<(), S3Error> {
        let check = self.source_check.as_ref().map(|(b, p)| (*p, b.as_ref()));
        acl_check(&self.requester, check, owner, acl)
    }

    /// The resource named in error bodies: "/bucket" or "/bucket/key".
    pub fn resource(&self) -> String {
        match (&self.route.bucket, &self.route.key) {
            (Some(b), Some(k)) => format!("/{b}/{k}"),
            (Some(b), None) => format!("/{b}"),
            _ => "/".to_owned(),
        }
    }
}

/// No check left (`None`) passes; else the object's ACL must grant the permission.
fn acl_check(
    requester: &Requester,
    check: Option<(Permission, &BucketAuth)>,
    owner: &str,
    acl: Option<&str>,
) -> Result<(), S3Error> {
    match check {
        None => Ok(()),
        Some((permission, bucket))
            if object_acl_allows(requester, bucket, owner, acl, permission) =>
        {
            Ok(())
        }
        Some(_) => Err(S3Error::new(ErrorCode::AccessDenied)),
    }
}

/// Parses an optional integer query parameter, answering InvalidArgument for garbage.
pub fn query_number<T: std::str::FromStr>(req: &Request, name: &str) -> Result<Option<T>, S3Error> {
    match req.query(name) {
        None => Ok(None),
        Some(v) => v.parse::<T>().map(Some).map_err(|_| {
            S3Error::new(ErrorCode::InvalidArgument)
                .with_message(format!(
                    "Provided {name} not an integer or within integer range"
                ))
                .with_extra("ArgumentName", name)
                .with_extra("ArgumentValue", v)
        }),
    }
}
