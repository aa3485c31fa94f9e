//! IAM policy documents, as PutBucketPolicy and `cairn admin policy create` receive them. Any
//! document is refused or parsed without panicking; what parses is evaluated against a request
//! built from the input by an anonymous and a signed caller, and the answers hold together: a
//! bucket policy never names `*` among its principals, parsing twice judges alike, and an
//! accepted bucket policy fits S3's 20 KB limit once normalized.
//!
//! Input: bucket name (empty for an identity policy), document, action, resource, then
//! condition key and value pairs.

use cairn::iam::policy::{MAX_BUCKET_POLICY_BYTES, Policy, PolicyKind};
use cairn::iam::{AccessRequest, AccountRef, Caller, Context, Decision};

use crate::input::Fields;

pub fn run(data: &[u8]) {
    let mut fields = Fields::new(data);
    let bucket = fields.text();
    let document = fields.text();
    let action = fields.text();
    let resource = fields.text();
    let mut context = Context::default();
    for _ in 0..4 {
        let key = fields.text();
        let value = fields.text();
        if !key.is_empty() {
            context.set(&key, value);
        }
    }
    let kind = if bucket.is_empty() {
        PolicyKind::Identity
    } else {
        PolicyKind::Bucket(&bucket)
    };
    let Ok(policy) = Policy::parse(&document, kind) else {
        return;
    };
    if let PolicyKind::Bucket(_) = kind {
        let value: serde_json::Value = serde_json::from_str(&document).expect("accepted is JSON");
        let normalized = serde_json::to_string(&value).expect("serializable");
        assert!(normalized.len() <= MAX_BUCKET_POLICY_BYTES);
    }
    assert!(
        policy
            .principals()
            .iter()
            .all(|p| !p.is_empty() && p != "*")
    );
    let again = Policy::parse(&document, kind).expect("parses again");
    let _ = policy.is_public();
    for caller in [
        Caller::Anonymous,
        Caller::Account(AccountRef {
            id: "0000000000000000000000000000000000000000000000000000000000000001",
            name: "alice",
        }),
    ] {
        let request = AccessRequest {
            action: &action,
            resource: &resource,
            caller,
            context: &context,
        };
        let decision = policy.evaluate(&request);
        assert_eq!(
            decision,
            again.evaluate(&request),
            "evaluation is deterministic"
        );
        if let PolicyKind::Identity = kind {
            assert!(matches!(
                decision,
                Decision::Allow | Decision::Deny | Decision::NotApplicable
            ));
        }
    }
}
