//! Access control, pure: who may do what. IAM-style policies (`policy.rs`: parsing, validation
//! and evaluation of identity and bucket policies, the canned `readonly`, `readwrite` and
//! `writeonly` ones) and ACLs (`acl.rs`: grants, canned ACLs, `x-amz-grant-*` headers, the
//! AccessControlPolicy XML). Nothing here touches the network or the metadata store: the
//! gateway's `access.rs` loads and caches what these functions judge.

pub mod acl;
pub mod condition;
pub mod policy;
pub mod wildcard;

use std::collections::HashMap;

/// An authenticated account as policies and ACLs see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRef<'a> {
    /// The canonical id (64 hex digits), as ACLs name accounts.
    pub id: &'a str,
    /// The account's name (`admin`, `alice`), as `arn:aws:iam::NAME:root` also names it.
    pub name: &'a str,
}

/// Who sends a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller<'a> {
    /// No signature at all.
    Anonymous,
    Account(AccountRef<'a>),
}

/// The values of condition keys for one request, by key name in lowercase (`aws:sourceip`,
/// `aws:securetransport`, `aws:currenttime`, `s3:prefix`, `s3:delimiter`, `s3:x-amz-acl`, ...).
/// A key that is absent from the request is absent from the map.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub values: HashMap<String, Vec<String>>,
}

impl Context {
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
    }
}

/// One request to judge: an action (`s3:GetObject`) on a resource
/// (`arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket`, or `*` for ListAllMyBuckets).
#[derive(Clone, Debug)]
pub struct AccessRequest<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub caller: Caller<'a>,
    pub context: &'a Context,
}

/// What one policy says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No statement applies.
    NotApplicable,
    Allow,
    /// An explicit Deny: beats every Allow.
    Deny,
}
