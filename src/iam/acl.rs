//! Access control lists: an owner and up to 100 grants, from a canned ACL (`x-amz-acl`), from
//! `x-amz-grant-*` headers or from an AccessControlPolicy XML body; stored as JSON in the bucket's
//! or object's row.

use serde::{Deserialize, Serialize};

use super::Caller;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// An account by canonical id.
    CanonicalUser(String),
    /// `http://acs.amazonaws.com/groups/global/AllUsers`: everyone, anonymous included.
    AllUsers,
    /// `http://acs.amazonaws.com/groups/global/AuthenticatedUsers`: any signed request.
    AuthenticatedUsers,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// Canonical id of the owner.
    pub owner: String,
    pub grants: Vec<Grant>,
}

/// A refused ACL, with the S3 error code AWS answers (`InvalidArgument`, `MalformedACLError`,
/// `UnresolvableGrantByEmailAddress`, `NotImplemented`) and its message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AclError {
    pub code: &'static str,
    pub message: String,
}

impl Acl {
    /// `private`: the owner with FULL_CONTROL.
    pub fn private(_owner: &str) -> Acl {
        unimplemented!("iam helper")
    }

    /// A canned ACL (`private`, `public-read`, `public-read-write`, `authenticated-read`,
    /// `bucket-owner-read`, `bucket-owner-full-control`, `aws-exec-read`, `log-delivery-write`).
    pub fn canned(_name: &str, _owner: &str, _bucket_owner: &str) -> Result<Acl, AclError> {
        unimplemented!("iam helper")
    }

    /// From `x-amz-grant-read`, `-write`, `-read-acp`, `-write-acp`, `-full-control` header
    /// values (`id="..."`, `uri="http://acs.amazonaws.com/groups/global/AllUsers"`, comma
    /// separated). `known_account` says whether a canonical id exists.
    pub fn from_grant_headers(
        _owner: &str,
        _headers: &[(Permission, &str)],
        _known_account: &dyn Fn(&str) -> bool,
    ) -> Result<Acl, AclError> {
        unimplemented!("iam helper")
    }

    /// An AccessControlPolicy XML body (PutBucketAcl, PutObjectAcl).
    pub fn parse_xml(_body: &[u8], _known_account: &dyn Fn(&str) -> bool) -> Result<Acl, AclError> {
        unimplemented!("iam helper")
    }

    /// The AccessControlPolicy XML answered by GetBucketAcl and GetObjectAcl;
    /// `display_name` gives an account's display name from its canonical id.
    pub fn to_xml(&self, _display_name: &dyn Fn(&str) -> Option<String>) -> String {
        unimplemented!("iam helper")
    }

    /// Whether the ACL grants `permission` (FULL_CONTROL grants all) to `caller`;
    /// `ignore_public` drops AllUsers and AuthenticatedUsers grants (IgnorePublicAcls).
    pub fn allows(&self, _caller: &Caller<'_>, _permission: Permission, _ignore_public: bool) -> bool {
        unimplemented!("iam helper")
    }

    /// Whether any grant goes to AllUsers or AuthenticatedUsers (BlockPublicAcls).
    pub fn is_public(&self) -> bool {
        unimplemented!("iam helper")
    }
}
