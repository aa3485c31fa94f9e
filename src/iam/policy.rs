//! IAM policy documents: parsed and validated once (on PutBucketPolicy, `cairn admin policy
//! create`, and when a cached document is loaded), then evaluated per request.

use super::{AccessRequest, Decision};

/// Where a document is used: identity policies have no `Principal`; a bucket policy must name
/// one in every statement and only resources of its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind<'a> {
    Identity,
    Bucket(&'a str),
}

/// Why a document was refused: the message AWS's MalformedPolicy error carries
/// (e.g. "Policy has invalid action", "Invalid principal in policy").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

#[derive(Clone, Debug)]
pub struct Policy {}

impl Policy {
    pub fn parse(_document: &str, _kind: PolicyKind<'_>) -> Result<Policy, PolicyError> {
        unimplemented!("iam helper")
    }

    pub fn evaluate(&self, _request: &AccessRequest<'_>) -> Decision {
        unimplemented!("iam helper")
    }

    /// Whether the policy grants anything to everyone (AWS's "public" test for
    /// GetBucketPolicyStatus, BlockPublicPolicy and RestrictPublicBuckets).
    pub fn is_public(&self) -> bool {
        unimplemented!("iam helper")
    }

    /// The account names or canonical ids the `Principal`s name (not `*`), so the caller can
    /// refuse a bucket policy naming an account that does not exist.
    pub fn principals(&self) -> Vec<String> {
        unimplemented!("iam helper")
    }

    /// The document of a canned identity policy: `readonly`, `readwrite` or `writeonly`.
    pub fn canned(_name: &str) -> Option<&'static str> {
        unimplemented!("iam helper")
    }
}
