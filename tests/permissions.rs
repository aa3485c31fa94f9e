//! The permission matrix of issue 18: three accounts (admin, alice, bob), keys with canned and
//! custom policies, an identity policy attached to bob with an Allow and two Denys, buckets with
//! and without bucket policies and ACLs, and anonymous requests; every S3 operation the store
//! serves is tried by every principal and the answer compared with the table below, written out
//! in full. Every mismatch is collected and printed as a table before the test fails. Then the
//! cases the table cannot hold: ListBuckets' contents, CreateBucket on a taken name,
//! public-access blocks, BucketOwnerEnforced, anonymous HEAD and ranges, and revocation (a deleted
//! key, a detached policy) measured against the 5 s the issue allows. It all runs on a
//! `cairn server` (SQLite) and on a cluster of two gateways over PostgreSQL.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use cairn::client::{Auth, Client, Credentials, Endpoint, Request};
use cairn::s3::sigv4::{SigningParams, presign};
use cairn_test_support::{
    Accounts, Backend, Cluster, KEY_ID, KEY_SECRET, REGION, S3Client, Spec, TEST_KEY_ID,
    TEST_SECRET, TestServer, content_md5, report, xml_values,
};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use time::OffsetDateTime;

/// The issue's bound on how long a change of access takes to reach every gateway.
const PROPAGATION: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest body a probe reads (objects here are a few bytes).
const MAX_BODY: usize = 1 << 20;
const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

// ------------------------------------------------------------------------------- principals

/// Who sends a request: anonymous, or one access key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anon,
    /// The bootstrap key of the admin account.
    Admin,
    /// alice's key without a policy: every right of her account.
    Alice,
    /// alice's key with the canned `readonly` policy.
    AliceRo,
    /// alice's key with the canned `writeonly` policy.
    AliceWo,
    /// alice's key with the stored policy `alice-b1-only` (s3:* on alice-b1 and its objects).
    AliceLim,
    /// bob's key without a policy; bob's account has `bob-attached` attached.
    Bob,
    /// bob's key with the stored policy `bob-no-delete` (s3:* but a Deny of s3:Delete*).
    BobNd,
}

/// The matrix's columns, in this order.
const WHO: [Who; 8] = [
    Who::Anon,
    Who::Admin,
    Who::Alice,
    Who::AliceRo,
    Who::AliceWo,
    Who::AliceLim,
    Who::Bob,
    Who::BobNd,
];

impl Who {
    /// Lowercase, so it can go in bucket names.
    fn name(self) -> &'static str {
        match self {
            Who::Anon => "anon",
            Who::Admin => "admin",
            Who::Alice => "alice",
            Who::AliceRo => "alice-ro",
            Who::AliceWo => "alice-wo",
            Who::AliceLim => "alice-lim",
            Who::Bob => "bob",
            Who::BobNd => "bob-nd",
        }
    }

    /// A bucket this principal may write to, as the destination of a copy whose source side is
    /// tested (anonymous may write nowhere).
    fn writable_bucket(self) -> &'static str {
        match self {
            Who::Anon => "alice-pub",
            Who::Admin | Who::Alice | Who::AliceRo | Who::AliceWo | Who::AliceLim => "alice-b1",
            Who::Bob | Who::BobNd => "bob-b1",
        }
    }

    /// An object this principal may read, as the source of a copy whose destination side is
    /// tested (`writeonly` may read nothing).
    fn readable_object(self) -> (&'static str, &'static str) {
        match self {
            Who::Anon => ("alice-pub", "obj"),
            Who::Admin | Who::Alice | Who::AliceRo | Who::AliceWo | Who::AliceLim => {
                ("alice-b1", "obj")
            }
            Who::Bob | Who::BobNd => ("bob-b1", "obj"),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The owner's full key of a bucket of the matrix, by its name's prefix.
fn owner_of(bucket: &str) -> Who {
    if bucket.starts_with("alice") {
        Who::Alice
    } else if bucket.starts_with("bob") {
        Who::Bob
    } else {
        panic!("no owner known for {bucket}")
    }
}

// ------------------------------------------------------------------------------- operations

/// One S3 operation as the matrix sends it; the doc says what the target names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Target `-`.
    ListBuckets,
    /// Target `-`: creates `new{ROW}-{WHO}`.
    CreateBucket,
    /// Target: the account (`alice`, `bob`) whose fresh empty bucket the principal deletes.
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    ListObjects,
    ListObjectsV2,
    ListMultipartUploads,
    /// Target `BUCKET[/PREFIX]`: the owner writes a fresh key there, the principal deletes it
    /// through DeleteObjects.
    DeleteObjects,
    /// Target `BUCKET[/PREFIX]`: a fresh key.
    PutObject,
    /// PutObject with `x-amz-acl: public-read` (which also needs s3:PutObjectAcl).
    PutObjectPublicRead,
    /// Target: the source `BUCKET/KEY`; the destination is the principal's writable bucket.
    CopyObjectSource,
    /// Target: the destination bucket; the source is an object the principal may read.
    CopyObjectDest,
    /// Target `BUCKET/KEY`.
    GetObject,
    HeadObject,
    /// As DeleteObjects, one key through DeleteObject.
    DeleteObject,
    CreateMultipartUpload,
    /// Target: a bucket where the owner started a fresh upload.
    UploadPart,
    /// Target: the source `BUCKET/KEY`; the destination an upload in the principal's writable
    /// bucket.
    UploadPartCopySource,
    /// Target: the bucket of the upload; the source an object the principal may read.
    UploadPartCopyDest,
    /// Target: a bucket where the owner started an upload and sent its part 1.
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    GetBucketPolicy,
    /// Target: a bucket; the policy grants the other account s3:GetObject.
    PutBucketPolicy,
    DeleteBucketPolicy,
    GetBucketPolicyStatus,
    GetBucketAcl,
    /// `x-amz-acl: private`.
    PutBucketAcl,
    GetObjectAcl,
    /// `x-amz-acl: private` on target `BUCKET/KEY`.
    PutObjectAcl,
    GetBucketOwnershipControls,
    /// ObjectWriter, which keeps ACLs working.
    PutBucketOwnershipControls,
    DeleteBucketOwnershipControls,
    GetPublicAccessBlock,
    /// Every flag false.
    PutPublicAccessBlock,
    DeletePublicAccessBlock,
    /// A presigned GET of target `BUCKET/KEY`, sent without credentials.
    PresignedGet,
    /// A presigned PUT of a fresh key in target `BUCKET`.
    PresignedPut,
}

// ---------------------------------------------------------------------------- expectations

/// What one cell of the matrix expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Any 2xx (and, for DeleteObjects, the key among the `<Deleted>`).
    Ok,
    /// 403 AccessDenied (no body on a HEAD; for DeleteObjects also a per-key AccessDenied).
    Denied,
    /// This status and error code.
    Err(u16, &'static str),
    /// Not tried (an anonymous caller cannot presign).
    Skip,
}

const A: Expect = Expect::Ok;
const D: Expect = Expect::Denied;
const X: Expect = Expect::Skip;
const NO_POLICY: Expect = Expect::Err(404, "NoSuchBucketPolicy");
const NO_OWNERSHIP: Expect = Expect::Err(404, "OwnershipControlsNotFoundError");
const NO_PAB: Expect = Expect::Err(404, "NoSuchPublicAccessBlockConfiguration");

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Ok => f.write_str("2xx"),
            Expect::Denied => f.write_str("403 AccessDenied"),
            Expect::Err(status, code) => write!(f, "{status} {code}"),
            Expect::Skip => f.write_str("-"),
        }
    }
}

/// One row: an operation on a target, and what each principal of [`WHO`] gets, in that order.
type Row = (Op, &'static str, [Expect; 8]);

/// The whole table. The canned policies are those `iam::policy::Policy::canned` documents:
/// `readonly` = s3:GetBucketLocation, s3:GetObject, s3:ListBucket, s3:ListAllMyBuckets;
/// `writeonly` = s3:PutObject, s3:AbortMultipartUpload, s3:ListMultipartUploadParts,
/// s3:ListBucketMultipartUploads, s3:GetBucketLocation. `alice-b1-only` allows s3:* on alice-b1 and its objects and
/// nothing else. `bob-attached` (on bob's account, so on both of bob's keys) allows s3:GetObject
/// on alice-b1/shared/*, denies s3:GetObject on alice-b2/secret/* and s3:DeleteObject on
/// bob-b1/keep/*. alice-b2's bucket policy grants bob s3:GetObject and s3:ListBucket; alice-pub's
/// grants `*` s3:GetObject; in alice-acl, `pub` is public-read and `bobs` grants bob READ and
/// READ_ACP. alice-cfg and bob-cfg take the configuration writes, which nothing else reads.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                             anon admin alice a-ro a-wo a-lim bob bob-nd
    (Op::ListBuckets,            "-",                   [D, A, A, A, D, D, A, A]),
    (Op::CreateBucket,           "-",                   [D, A, A, D, D, D, A, A]),
    (Op::DeleteBucket,           "alice",               [D, A, A, D, D, D, D, D]),
    (Op::DeleteBucket,           "bob",                 [D, A, D, D, D, D, A, D]),

    (Op::HeadBucket,             "alice-b1",            [D, A, A, A, D, A, D, D]),
    (Op::HeadBucket,             "alice-b2",            [D, A, A, A, D, D, A, A]),
    (Op::HeadBucket,             "alice-pub",           [D, A, A, A, D, D, D, D]),
    (Op::HeadBucket,             "alice-acl",           [D, A, A, A, D, D, D, D]),
    (Op::HeadBucket,             "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::GetBucketLocation,      "alice-b1",            [D, A, A, A, A, A, D, D]),
    (Op::GetBucketLocation,      "alice-b2",            [D, A, A, A, A, D, D, D]),
    (Op::GetBucketLocation,      "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::ListObjects,            "alice-b1",            [D, A, A, A, D, A, D, D]),
    (Op::ListObjects,            "alice-b2",            [D, A, A, A, D, D, A, A]),
    (Op::ListObjects,            "alice-pub",           [D, A, A, A, D, D, D, D]),
    (Op::ListObjects,            "alice-acl",           [D, A, A, A, D, D, D, D]),
    (Op::ListObjects,            "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::ListObjectsV2,          "alice-b1",            [D, A, A, A, D, A, D, D]),
    (Op::ListObjectsV2,          "alice-b2",            [D, A, A, A, D, D, A, A]),
    (Op::ListObjectsV2,          "alice-pub",           [D, A, A, A, D, D, D, D]),
    (Op::ListObjectsV2,          "alice-acl",           [D, A, A, A, D, D, D, D]),
    (Op::ListObjectsV2,          "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::ListMultipartUploads,   "alice-b1",            [D, A, A, D, A, A, D, D]),
    (Op::ListMultipartUploads,   "alice-b2",            [D, A, A, D, A, D, D, D]),
    (Op::ListMultipartUploads,   "bob-b1",              [D, A, D, D, D, D, A, A]),

    (Op::GetObject,              "alice-b1/obj",        [D, A, A, A, D, A, D, D]),
    (Op::GetObject,              "alice-b1/shared/obj", [D, A, A, A, D, A, A, A]),
    (Op::GetObject,              "alice-b2/obj",        [D, A, A, A, D, D, A, A]),
    (Op::GetObject,              "alice-b2/secret/obj", [D, A, A, A, D, D, D, D]),
    (Op::GetObject,              "alice-pub/obj",       [A, A, A, A, D, D, A, A]),
    (Op::GetObject,              "alice-acl/obj",       [D, A, A, A, D, D, D, D]),
    (Op::GetObject,              "alice-acl/pub",       [A, A, A, A, D, D, A, A]),
    (Op::GetObject,              "alice-acl/bobs",      [D, A, A, A, D, D, A, A]),
    (Op::GetObject,              "bob-b1/obj",          [D, A, D, D, D, D, A, A]),
    (Op::HeadObject,             "alice-b1/obj",        [D, A, A, A, D, A, D, D]),
    (Op::HeadObject,             "alice-b1/shared/obj", [D, A, A, A, D, A, A, A]),
    (Op::HeadObject,             "alice-b2/obj",        [D, A, A, A, D, D, A, A]),
    (Op::HeadObject,             "alice-b2/secret/obj", [D, A, A, A, D, D, D, D]),
    (Op::HeadObject,             "alice-pub/obj",       [A, A, A, A, D, D, A, A]),
    (Op::HeadObject,             "alice-acl/obj",       [D, A, A, A, D, D, D, D]),
    (Op::HeadObject,             "alice-acl/pub",       [A, A, A, A, D, D, A, A]),
    (Op::HeadObject,             "alice-acl/bobs",      [D, A, A, A, D, D, A, A]),
    (Op::HeadObject,             "bob-b1/obj",          [D, A, D, D, D, D, A, A]),

    (Op::PutObject,              "alice-b1",            [D, A, A, D, A, A, D, D]),
    (Op::PutObject,              "alice-b2",            [D, A, A, D, A, D, D, D]),
    (Op::PutObject,              "alice-pub",           [D, A, A, D, A, D, D, D]),
    (Op::PutObject,              "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::PutObjectPublicRead,    "alice-b1",            [D, A, A, D, D, A, D, D]),
    (Op::PutObjectPublicRead,    "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::CopyObjectDest,         "alice-b1",            [D, A, A, D, D, A, D, D]),
    (Op::CopyObjectDest,         "alice-b2",            [D, A, A, D, D, D, D, D]),
    (Op::CopyObjectDest,         "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::CopyObjectSource,       "alice-b1/obj",        [D, A, A, D, D, A, D, D]),
    (Op::CopyObjectSource,       "alice-b1/shared/obj", [D, A, A, D, D, A, A, A]),
    (Op::CopyObjectSource,       "alice-b2/obj",        [D, A, A, D, D, D, A, A]),
    (Op::CopyObjectSource,       "alice-b2/secret/obj", [D, A, A, D, D, D, D, D]),
    (Op::CopyObjectSource,       "alice-pub/obj",       [D, A, A, D, D, D, A, A]),
    (Op::CopyObjectSource,       "alice-acl/bobs",      [D, A, A, D, D, D, A, A]),
    (Op::CopyObjectSource,       "bob-b1/obj",          [D, A, D, D, D, D, A, A]),
    (Op::DeleteObject,           "alice-b1",            [D, A, A, D, D, A, D, D]),
    (Op::DeleteObject,           "alice-b2",            [D, A, A, D, D, D, D, D]),
    (Op::DeleteObject,           "bob-b1",              [D, A, D, D, D, D, A, D]),
    (Op::DeleteObject,           "bob-b1/keep/",        [D, A, D, D, D, D, D, D]),
    (Op::DeleteObjects,          "alice-b1",            [D, A, A, D, D, A, D, D]),
    (Op::DeleteObjects,          "alice-b2",            [D, A, A, D, D, D, D, D]),
    (Op::DeleteObjects,          "bob-b1",              [D, A, D, D, D, D, A, D]),
    (Op::DeleteObjects,          "bob-b1/keep/",        [D, A, D, D, D, D, D, D]),

    (Op::CreateMultipartUpload,  "alice-b1",            [D, A, A, D, A, A, D, D]),
    (Op::CreateMultipartUpload,  "alice-b2",            [D, A, A, D, A, D, D, D]),
    (Op::CreateMultipartUpload,  "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::UploadPart,             "alice-b1",            [D, A, A, D, A, A, D, D]),
    (Op::UploadPart,             "alice-b2",            [D, A, A, D, A, D, D, D]),
    (Op::UploadPart,             "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::UploadPartCopyDest,     "alice-b1",            [D, A, A, D, D, A, D, D]),
    (Op::UploadPartCopyDest,     "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::UploadPartCopySource,   "alice-b1/shared/obj", [D, A, A, D, D, A, A, A]),
    (Op::UploadPartCopySource,   "alice-b2/secret/obj", [D, A, A, D, D, D, D, D]),
    (Op::UploadPartCopySource,   "bob-b1/obj",          [D, A, D, D, D, D, A, A]),
    (Op::CompleteMultipartUpload,"alice-b1",            [D, A, A, D, A, A, D, D]),
    (Op::CompleteMultipartUpload,"alice-b2",            [D, A, A, D, A, D, D, D]),
    (Op::CompleteMultipartUpload,"bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::AbortMultipartUpload,   "alice-b1",            [D, A, A, D, A, A, D, D]),
    (Op::AbortMultipartUpload,   "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::ListParts,              "alice-b1",            [D, A, A, D, A, A, D, D]),
    (Op::ListParts,              "bob-b1",              [D, A, D, D, D, D, A, A]),

    (Op::GetBucketPolicy,        "alice-b2",            [D, A, A, D, D, D, D, D]),
    (Op::GetBucketPolicy,        "alice-pub",           [D, A, A, D, D, D, D, D]),
    (Op::GetBucketPolicy,        "alice-b1",            [D, NO_POLICY, NO_POLICY, D, D, NO_POLICY, D, D]),
    (Op::GetBucketPolicyStatus,  "alice-pub",           [D, A, A, D, D, D, D, D]),
    (Op::GetBucketPolicyStatus,  "alice-b2",            [D, A, A, D, D, D, D, D]),
    (Op::PutBucketPolicy,        "alice-cfg",           [D, A, A, D, D, D, D, D]),
    (Op::PutBucketPolicy,        "bob-cfg",             [D, A, D, D, D, D, A, A]),
    (Op::DeleteBucketPolicy,     "alice-cfg",           [D, A, A, D, D, D, D, D]),
    (Op::DeleteBucketPolicy,     "bob-cfg",             [D, A, D, D, D, D, A, D]),
    (Op::GetBucketAcl,           "alice-b1",            [D, A, A, D, D, A, D, D]),
    (Op::GetBucketAcl,           "bob-b1",              [D, A, D, D, D, D, A, A]),
    (Op::PutBucketAcl,           "alice-cfg",           [D, A, A, D, D, D, D, D]),
    (Op::PutBucketAcl,           "bob-cfg",             [D, A, D, D, D, D, A, A]),
    (Op::GetObjectAcl,           "alice-b1/obj",        [D, A, A, D, D, A, D, D]),
    (Op::GetObjectAcl,           "alice-acl/pub",       [D, A, A, D, D, D, D, D]),
    (Op::GetObjectAcl,           "alice-acl/bobs",      [D, A, A, D, D, D, A, A]),
    (Op::GetObjectAcl,           "bob-b1/obj",          [D, A, D, D, D, D, A, A]),
    (Op::PutObjectAcl,           "alice-cfg/obj",       [D, A, A, D, D, D, D, D]),
    (Op::PutObjectAcl,           "bob-cfg/obj",         [D, A, D, D, D, D, A, A]),
    (Op::GetBucketOwnershipControls, "alice-b1",        [D, NO_OWNERSHIP, NO_OWNERSHIP, D, D, NO_OWNERSHIP, D, D]),
    (Op::GetBucketOwnershipControls, "bob-b1",          [D, NO_OWNERSHIP, D, D, D, D, NO_OWNERSHIP, NO_OWNERSHIP]),
    (Op::PutBucketOwnershipControls, "alice-cfg",       [D, A, A, D, D, D, D, D]),
    (Op::PutBucketOwnershipControls, "bob-cfg",         [D, A, D, D, D, D, A, A]),
    (Op::DeleteBucketOwnershipControls, "alice-cfg",    [D, A, A, D, D, D, D, D]),
    (Op::DeleteBucketOwnershipControls, "bob-cfg",      [D, A, D, D, D, D, A, A]),
    (Op::GetPublicAccessBlock,   "alice-b1",            [D, NO_PAB, NO_PAB, D, D, NO_PAB, D, D]),
    (Op::GetPublicAccessBlock,   "bob-b1",              [D, NO_PAB, D, D, D, D, NO_PAB, NO_PAB]),
    (Op::PutPublicAccessBlock,   "alice-cfg",           [D, A, A, D, D, D, D, D]),
    (Op::PutPublicAccessBlock,   "bob-cfg",             [D, A, D, D, D, D, A, A]),
    (Op::DeletePublicAccessBlock,"alice-cfg",           [D, A, A, D, D, D, D, D]),
    (Op::DeletePublicAccessBlock,"bob-cfg",             [D, A, D, D, D, D, A, A]),

    (Op::PresignedGet,           "alice-b1/obj",        [X, A, A, A, D, A, D, D]),
    (Op::PresignedGet,           "alice-pub/obj",       [X, A, A, A, D, D, A, A]),
    (Op::PresignedPut,           "alice-b1",            [X, A, A, D, A, A, D, D]),
];

// ------------------------------------------------------------------------------ the world

/// A store under test: where to send S3 requests and how to run `cairn admin` on it.
struct Store {
    /// Every gateway's `127.0.0.1:PORT` (one for `cairn server`); the matrix uses the first.
    addrs: Vec<String>,
    admin_key: (String, String),
    accounts: Accounts,
    label: &'static str,
}

/// The accounts, keys, buckets and objects the matrix runs against.
struct World {
    addr: String,
    keys: BTreeMap<Who, (String, String)>,
    alice_id: String,
    bob_id: String,
    label: &'static str,
    /// Buckets whose owner was refused right after creating them, with how long that lasted:
    /// the setup waits them out (so that the matrix judges policies, not freshness) and the
    /// test reports them as failures.
    late_buckets: std::sync::Mutex<Vec<(String, Option<Duration>)>>,
}

/// What a request got.
#[derive(Clone, Debug)]
struct Observed {
    status: u16,
    code: Option<String>,
    /// For DeleteObjects: the code of the key's `<Error>` in a 200 answer.
    per_key: Option<String>,
    /// What else is wrong (a body that differs, a transport error).
    note: Option<String>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(code) = &self.per_key {
            write!(f, " (key: {code})")?;
        }
        if let Some(note) = &self.note {
            write!(f, " [{note}]")?;
        }
        Ok(())
    }
}

fn matches(expect: Expect, obs: &Observed, head: bool) -> bool {
    if obs.note.is_some() {
        return false;
    }
    match expect {
        Expect::Skip => true,
        Expect::Ok => (200..300).contains(&obs.status) && obs.per_key.is_none(),
        Expect::Denied => {
            (obs.status == 403
                && (obs.code.as_deref() == Some("AccessDenied") || (head && obs.code.is_none())))
                || (obs.status == 200 && obs.per_key.as_deref() == Some("AccessDenied"))
        }
        Expect::Err(status, code) => {
            obs.status == status && (obs.code.as_deref() == Some(code) || head)
        }
    }
}

/// The body every seeded object holds: its own name.
fn body_of(bucket: &str, key: &str) -> Vec<u8> {
    format!("{bucket}/{key}").into_bytes()
}

/// `/bucket/key` as the path of a request (the matrix's names need no escaping).
fn path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{key}")
}

fn header(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_bytes(name.as_bytes()).expect("header name"),
        HeaderValue::from_str(value).expect("header value"),
    )
}

impl World {
    fn key(&self, who: Who) -> (&str, &str) {
        let (id, secret) = &self.keys[&who];
        (id, secret)
    }

    /// A client signing with `who`'s key (the admin key for anonymous, whose requests are
    /// sent unsigned).
    fn client(&self, who: Who) -> Client {
        let who = if who == Who::Anon { Who::Admin } else { who };
        let (id, secret) = self.key(who);
        Client::new(Endpoint {
            addr: self.addr.parse().expect("a socket address"),
            host: self.addr.clone(),
            region: REGION.to_owned(),
            credentials: Credentials {
                access_key_id: id.to_owned(),
                secret: secret.to_owned(),
            },
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// The panicking test client of `who`, for setting things up.
    fn s3(&self, who: Who) -> S3Client {
        let (id, secret) = self.key(who);
        S3Client::new(&self.addr, id, secret, REQUEST_TIMEOUT)
    }

    /// CreateBucket as `owner`, then HeadBucket as `owner` until it answers 200: AWS serves
    /// a bucket to its creator at once, so a refusal is noted in `late_buckets`.
    async fn create_bucket(&self, owner: Who, name: &str) {
        let s3 = self.s3(owner);
        s3.create_bucket(name).await;
        let head = || async {
            s3.request(Method::HEAD, &format!("/{name}"))
                .send()
                .await
                .status
                == StatusCode::OK
        };
        if head().await {
            return;
        }
        let took = time_until(PROPAGATION, head).await;
        self.late_buckets
            .lock()
            .expect("late buckets")
            .push((format!("{owner} {name}"), took));
    }

    /// Sends `request` as `who`; never panics, so that a whole table can be collected.
    async fn send(&self, who: Who, mut request: Request) -> (Observed, Vec<u8>) {
        if who == Who::Anon {
            request = request.auth(Auth::Anonymous);
        }
        match self.client(who).fetch(request, MAX_BODY).await {
            Ok((status, _, body)) => {
                let text = String::from_utf8_lossy(&body);
                let code = if status.is_success() {
                    None
                } else {
                    xml_values(&text, "Code").into_iter().next()
                };
                (
                    Observed {
                        status: status.as_u16(),
                        code,
                        per_key: None,
                        note: None,
                    },
                    body.to_vec(),
                )
            }
            Err(e) => (
                Observed {
                    status: 0,
                    code: None,
                    per_key: None,
                    note: Some(format!("transport: {e}")),
                },
                Vec::new(),
            ),
        }
    }

    /// An upload started by the owner of `bucket`; with `part`, its part 1 sent too (returns
    /// the part's ETag).
    async fn owner_upload(&self, bucket: &str, key: &str, part: bool) -> (String, Option<String>) {
        let owner = self.s3(owner_of(bucket));
        let id = owner.create_upload(bucket, key).await;
        let etag = if part {
            Some(
                owner
                    .upload_part_ok(bucket, key, &id, 1, &body_of(bucket, key))
                    .await,
            )
        } else {
            None
        };
        (id, etag)
    }

    /// Runs one cell of the matrix: any setup as the target's owner, then the principal's
    /// request.
    async fn probe(&self, row: usize, op: Op, target: &str, who: Who) -> Observed {
        let (bucket, rest) = target.split_once('/').unwrap_or((target, ""));
        // A key no other cell uses, for the operations that write or delete.
        let fresh = format!("{rest}r{row}-{who}");
        let request = match op {
            Op::ListBuckets => Request::new(Method::GET, "/"),
            Op::CreateBucket => Request::new(Method::PUT, &format!("/new{row}-{who}")),
            Op::DeleteBucket => {
                let name = format!("del{row}-{who}");
                let owner = if target == "alice" {
                    Who::Alice
                } else {
                    Who::Bob
                };
                self.create_bucket(owner, &name).await;
                Request::new(Method::DELETE, &format!("/{name}"))
            }
            Op::HeadBucket => Request::new(Method::HEAD, &format!("/{bucket}")),
            Op::GetBucketLocation => {
                Request::new(Method::GET, &format!("/{bucket}")).query("location")
            }
            Op::ListObjects => Request::new(Method::GET, &format!("/{bucket}")),
            Op::ListObjectsV2 => {
                Request::new(Method::GET, &format!("/{bucket}")).query("list-type=2")
            }
            Op::ListMultipartUploads => {
                Request::new(Method::GET, &format!("/{bucket}")).query("uploads")
            }
            Op::DeleteObjects => {
                self.s3(owner_of(bucket))
                    .put_ok(bucket, &fresh, &body_of(bucket, &fresh))
                    .await;
                let xml = format!(
                    "<Delete xmlns=\"{S3_NS}\"><Object><Key>{fresh}</Key></Object></Delete>"
                )
                .into_bytes();
                let (name, value) = header("content-md5", &content_md5(&xml));
                let request = Request::new(Method::POST, &format!("/{bucket}"))
                    .query("delete")
                    .header(name, value)
                    .body(xml);
                let (mut obs, body) = self.send(who, request).await;
                if obs.status == 200 {
                    let text = String::from_utf8_lossy(&body);
                    let deleted = xml_values(&text, "Deleted");
                    obs.per_key = per_key_error_code(&text);
                    if obs.per_key.is_none() && !deleted.iter().any(|d| d.contains(&fresh)) {
                        obs.note = Some(format!("neither Deleted nor Error: {text}"));
                    }
                }
                return obs;
            }
            Op::PutObject => {
                Request::new(Method::PUT, &path(bucket, &fresh)).body(body_of(bucket, &fresh))
            }
            Op::PutObjectPublicRead => {
                let (name, value) = header("x-amz-acl", "public-read");
                Request::new(Method::PUT, &path(bucket, &fresh))
                    .header(name, value)
                    .body(body_of(bucket, &fresh))
            }
            Op::CopyObjectSource => {
                let (name, value) = header("x-amz-copy-source", &format!("/{target}"));
                Request::new(Method::PUT, &path(who.writable_bucket(), &fresh)).header(name, value)
            }
            Op::CopyObjectDest => {
                let (src_bucket, src_key) = who.readable_object();
                let (name, value) =
                    header("x-amz-copy-source", &format!("/{src_bucket}/{src_key}"));
                Request::new(Method::PUT, &path(bucket, &fresh)).header(name, value)
            }
            Op::GetObject => {
                let (mut obs, body) = self
                    .send(who, Request::new(Method::GET, &path(bucket, rest)))
                    .await;
                if obs.status == 200 && body != body_of(bucket, rest) {
                    obs.note = Some(format!("body {:?}", String::from_utf8_lossy(&body)));
                }
                return obs;
            }
            Op::HeadObject => Request::new(Method::HEAD, &path(bucket, rest)),
            Op::DeleteObject => {
                self.s3(owner_of(bucket))
                    .put_ok(bucket, &fresh, &body_of(bucket, &fresh))
                    .await;
                Request::new(Method::DELETE, &path(bucket, &fresh))
            }
            Op::CreateMultipartUpload => {
                Request::new(Method::POST, &path(bucket, &fresh)).query("uploads")
            }
            Op::UploadPart => {
                let (id, _) = self.owner_upload(bucket, &fresh, false).await;
                Request::new(Method::PUT, &path(bucket, &fresh))
                    .query(&format!("partNumber=1&uploadId={id}"))
                    .body(body_of(bucket, &fresh))
            }
            Op::UploadPartCopySource => {
                let dest = who.writable_bucket();
                let (id, _) = self.owner_upload(dest, &fresh, false).await;
                let (name, value) = header("x-amz-copy-source", &format!("/{target}"));
                Request::new(Method::PUT, &path(dest, &fresh))
                    .query(&format!("partNumber=1&uploadId={id}"))
                    .header(name, value)
            }
            Op::UploadPartCopyDest => {
                let (id, _) = self.owner_upload(bucket, &fresh, false).await;
                let (src_bucket, src_key) = who.readable_object();
                let (name, value) =
                    header("x-amz-copy-source", &format!("/{src_bucket}/{src_key}"));
                Request::new(Method::PUT, &path(bucket, &fresh))
                    .query(&format!("partNumber=1&uploadId={id}"))
                    .header(name, value)
            }
            Op::CompleteMultipartUpload => {
                let (id, etag) = self.owner_upload(bucket, &fresh, true).await;
                let etag = etag.expect("part 1 was sent");
                let xml = cairn_test_support::complete_xml(&[(1, etag)]);
                Request::new(Method::POST, &path(bucket, &fresh))
                    .query(&format!("uploadId={id}"))
                    .body(xml.into_bytes())
            }
            Op::AbortMultipartUpload => {
                let (id, _) = self.owner_upload(bucket, &fresh, false).await;
                Request::new(Method::DELETE, &path(bucket, &fresh)).query(&format!("uploadId={id}"))
            }
            Op::ListParts => {
                let (id, _) = self.owner_upload(bucket, &fresh, true).await;
                Request::new(Method::GET, &path(bucket, &fresh)).query(&format!("uploadId={id}"))
            }
            Op::GetBucketPolicy => Request::new(Method::GET, &format!("/{bucket}")).query("policy"),
            Op::PutBucketPolicy => {
                let grantee = if owner_of(bucket) == Who::Alice {
                    &self.bob_id
                } else {
                    &self.alice_id
                };
                let document = grant_get_policy(bucket, grantee);
                with_md5(
                    Request::new(Method::PUT, &format!("/{bucket}")).query("policy"),
                    document.into_bytes(),
                )
            }
            Op::DeleteBucketPolicy => {
                Request::new(Method::DELETE, &format!("/{bucket}")).query("policy")
            }
            Op::GetBucketPolicyStatus => {
                Request::new(Method::GET, &format!("/{bucket}")).query("policyStatus")
            }
            Op::GetBucketAcl => Request::new(Method::GET, &format!("/{bucket}")).query("acl"),
            Op::PutBucketAcl => {
                let (name, value) = header("x-amz-acl", "private");
                Request::new(Method::PUT, &format!("/{bucket}"))
                    .query("acl")
                    .header(name, value)
            }
            Op::GetObjectAcl => Request::new(Method::GET, &path(bucket, rest)).query("acl"),
            Op::PutObjectAcl => {
                let (name, value) = header("x-amz-acl", "private");
                Request::new(Method::PUT, &path(bucket, rest))
                    .query("acl")
                    .header(name, value)
            }
            Op::GetBucketOwnershipControls => {
                Request::new(Method::GET, &format!("/{bucket}")).query("ownershipControls")
            }
            Op::PutBucketOwnershipControls => with_md5(
                Request::new(Method::PUT, &format!("/{bucket}")).query("ownershipControls"),
                ownership_xml("ObjectWriter").into_bytes(),
            ),
            Op::DeleteBucketOwnershipControls => {
                Request::new(Method::DELETE, &format!("/{bucket}")).query("ownershipControls")
            }
            Op::GetPublicAccessBlock => {
                Request::new(Method::GET, &format!("/{bucket}")).query("publicAccessBlock")
            }
            Op::PutPublicAccessBlock => with_md5(
                Request::new(Method::PUT, &format!("/{bucket}")).query("publicAccessBlock"),
                pab_xml([false; 4]).into_bytes(),
            ),
            Op::DeletePublicAccessBlock => {
                Request::new(Method::DELETE, &format!("/{bucket}")).query("publicAccessBlock")
            }
            Op::PresignedGet | Op::PresignedPut => {
                let (method, key, body) = if op == Op::PresignedGet {
                    (Method::GET, rest.to_owned(), Vec::new())
                } else {
                    (Method::PUT, fresh.clone(), body_of(bucket, &fresh))
                };
                let query = self.presigned_query(who, &method, &path(bucket, &key));
                let (mut obs, got) = self
                    .send(
                        Who::Anon,
                        Request::new(method.clone(), &path(bucket, &key))
                            .query(&query)
                            .body(body),
                    )
                    .await;
                if method == Method::GET && obs.status == 200 && got != body_of(bucket, &key) {
                    obs.note = Some(format!("body {:?}", String::from_utf8_lossy(&got)));
                }
                return obs;
            }
        };
        self.send(who, request).await.0
    }

    /// The query of a presigned URL for `method path`, signed with `who`'s key, valid 5 min.
    fn presigned_query(&self, who: Who, method: &Method, path: &str) -> String {
        let (id, secret) = self.key(who);
        let params = SigningParams {
            access_key_id: id,
            secret,
            region: REGION,
            now: OffsetDateTime::now_utc(),
        };
        presign(method, &self.addr, path, "", 300, &params)
    }
}

/// The `<Code>` of the first `<Error>` of a DeleteObjects answer.
fn per_key_error_code(text: &str) -> Option<String> {
    xml_values(text, "Error")
        .first()
        .and_then(|e| xml_values(e, "Code").into_iter().next())
}

fn with_md5(request: Request, body: Vec<u8>) -> Request {
    let (name, value) = header("content-md5", &content_md5(&body));
    request.header(name, value).body(body)
}

/// A bucket policy granting one account (by canonical id) s3:GetObject on the bucket's objects.
fn grant_get_policy(bucket: &str, account_id: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"grant","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account_id}:root"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    )
}

/// A bucket policy granting everyone s3:GetObject on the bucket's objects.
fn public_read_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"public","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    )
}

fn ownership_xml(rule: &str) -> String {
    format!(
        "<OwnershipControls xmlns=\"{S3_NS}\"><Rule><ObjectOwnership>{rule}</ObjectOwnership>\
         </Rule></OwnershipControls>"
    )
}

/// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets.
fn pab_xml(flags: [bool; 4]) -> String {
    let [bpa, ipa, bpp, rpb] = flags;
    format!(
        "<PublicAccessBlockConfiguration xmlns=\"{S3_NS}\">\
         <BlockPublicAcls>{bpa}</BlockPublicAcls><IgnorePublicAcls>{ipa}</IgnorePublicAcls>\
         <BlockPublicPolicy>{bpp}</BlockPublicPolicy>\
         <RestrictPublicBuckets>{rpb}</RestrictPublicBuckets></PublicAccessBlockConfiguration>"
    )
}

/// Polls `probe` until it returns true; returns how long that took, or `None` after `limit`.
async fn time_until<F, Fut>(limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if probe().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

// ------------------------------------------------------------------------------ the setup

/// `alice-b1-only`: everything on alice-b1 and its objects, nothing else.
const ALICE_B1_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::alice-b1","arn:aws:s3:::alice-b1/*"]}]}"#;
/// Attached to bob's account: an Allow beyond his own buckets and two Denys, one of which
/// beats alice-b2's bucket policy and one his ownership of bob-b1.
const BOB_ATTACHED: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"shared","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::alice-b1/shared/*"},
  {"Sid":"nosecret","Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::alice-b2/secret/*"},
  {"Sid":"keep","Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::bob-b1/keep/*"}]}"#;
/// The policy of bob's second key: everything but deletions.
const BOB_NO_DELETE: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"s3:*","Resource":"*"},
  {"Effect":"Deny","Action":"s3:Delete*","Resource":"*"}]}"#;

const ALICE_BUCKETS: [&str; 5] = [
    "alice-acl",
    "alice-b1",
    "alice-b2",
    "alice-cfg",
    "alice-pub",
];
const BOB_BUCKETS: [&str; 2] = ["bob-b1", "bob-cfg"];

/// Makes the accounts, keys, policies, buckets and objects of the matrix.
async fn build_world(store: &Store) -> World {
    let accounts = &store.accounts;
    let alice = accounts.create_user("alice").await;
    let bob = accounts.create_user("bob").await;
    assert_ne!(alice.id, bob.id, "canonical ids are unique");
    let users = accounts.list_users().await;
    for name in ["admin", "alice", "bob"] {
        assert!(
            users.iter().any(|u| u.name == name),
            "user list shows {name}: {users:?}"
        );
    }
    accounts.create_policy("alice-b1-only", ALICE_B1_ONLY).await;
    accounts.create_policy("bob-attached", BOB_ATTACHED).await;
    accounts.create_policy("bob-no-delete", BOB_NO_DELETE).await;
    accounts.attach_policy("bob-attached", "bob").await;

    let mut keys = BTreeMap::new();
    keys.insert(Who::Admin, store.admin_key.clone());
    for (who, user, policy) in [
        (Who::Alice, "alice", None),
        (Who::AliceRo, "alice", Some("readonly")),
        (Who::AliceWo, "alice", Some("writeonly")),
        (Who::AliceLim, "alice", Some("alice-b1-only")),
        (Who::Bob, "bob", None),
        (Who::BobNd, "bob", Some("bob-no-delete")),
    ] {
        let key = accounts.create_key(who.name(), user, policy).await;
        keys.insert(who, (key.id, key.secret));
    }
    let world = World {
        addr: store.addrs[0].clone(),
        keys,
        alice_id: alice.id,
        bob_id: bob.id,
        label: store.label,
        late_buckets: Default::default(),
    };

    // A new key is usable at once on a gateway that never saw it: its lookup misses the cache.
    let (alice_s3, bob_s3) = (world.s3(Who::Alice), world.s3(Who::Bob));
    for bucket in ALICE_BUCKETS {
        world.create_bucket(Who::Alice, bucket).await;
    }
    for bucket in BOB_BUCKETS {
        world.create_bucket(Who::Bob, bucket).await;
    }
    for (bucket, key) in [
        ("alice-b1", "obj"),
        ("alice-b1", "shared/obj"),
        ("alice-b2", "obj"),
        ("alice-b2", "secret/obj"),
        ("alice-pub", "obj"),
        ("alice-acl", "obj"),
        ("alice-cfg", "obj"),
    ] {
        alice_s3.put_ok(bucket, key, &body_of(bucket, key)).await;
    }
    for (bucket, key) in [("bob-b1", "obj"), ("bob-cfg", "obj")] {
        bob_s3.put_ok(bucket, key, &body_of(bucket, key)).await;
    }
    alice_s3
        .put_with(
            "alice-acl",
            "pub",
            &body_of("alice-acl", "pub"),
            &[("x-amz-acl", "public-read")],
        )
        .await
        .assert_status(StatusCode::OK);
    let bob_grant = format!("id=\"{}\"", world.bob_id);
    alice_s3
        .put_with(
            "alice-acl",
            "bobs",
            &body_of("alice-acl", "bobs"),
            &[
                ("x-amz-grant-read", &bob_grant),
                ("x-amz-grant-read-acp", &bob_grant),
            ],
        )
        .await
        .assert_status(StatusCode::OK);
    let bob_reads = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"bob-reads","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:root"}},"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::alice-b2","arn:aws:s3:::alice-b2/*"]}}]}}"#,
        world.bob_id
    );
    for (bucket, document) in [
        ("alice-b2", bob_reads),
        ("alice-pub", public_read_policy("alice-pub")),
    ] {
        let resp = alice_s3
            .send(
                Method::PUT,
                &format!("/{bucket}"),
                "policy",
                &[("content-md5", &content_md5(document.as_bytes()))],
                Some(document.into_bytes()),
            )
            .await;
        assert!(
            resp.status.is_success(),
            "PutBucketPolicy on {bucket}: {} {}",
            resp.status,
            resp.text()
        );
    }

    // The policies just written are in force on the gateway within the issue's bound.
    for (who, target) in [
        (Who::Bob, "alice-b2/obj"),
        (Who::Bob, "alice-b1/shared/obj"),
        (Who::Anon, "alice-pub/obj"),
    ] {
        let took = time_until(PROPAGATION, || async {
            world.probe(0, Op::GetObject, target, who).await.status == 200
        })
        .await;
        assert!(
            took.is_some(),
            "[{}] {who} GET {target} still refused {PROPAGATION:?} after its grant",
            world.label
        );
    }
    world
}

// ------------------------------------------------------------------------------ the checks

/// Tries every cell; returns the mismatches as printable rows.
async fn run_matrix(world: &World) -> Vec<[String; 5]> {
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for (row, (op, target, expected)) in MATRIX.iter().enumerate() {
        for (who, expect) in WHO.iter().zip(expected) {
            if *expect == Expect::Skip {
                continue;
            }
            cells += 1;
            let obs = world.probe(row + 1, *op, target, *who).await;
            let head = matches!(op, Op::HeadBucket | Op::HeadObject);
            if !matches(*expect, &obs, head) {
                mismatches.push([
                    format!("{}", row + 1),
                    who.to_string(),
                    format!("{op:?} {target}"),
                    expect.to_string(),
                    obs.to_string(),
                ]);
            }
        }
    }
    report!(
        "[{}] permission matrix: {} rows, {cells} requests, {} mismatches",
        world.label,
        MATRIX.len(),
        mismatches.len()
    );
    mismatches
}

fn print_table(label: &str, title: &str, rows: &[[String; 5]]) {
    let header = [
        "row".to_owned(),
        "principal".to_owned(),
        "operation target".to_owned(),
        "expected".to_owned(),
        "got".to_owned(),
    ];
    let mut widths = [0usize; 5];
    for r in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    report!("[{label}] {title}:");
    for r in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        report!("  {}", line.join(" | ").trim_end());
    }
}

/// Collects failures of the checks outside the matrix, so one run shows them all.
#[derive(Default)]
struct Findings(Vec<[String; 5]>);

impl Findings {
    /// Records a mismatch of `what` unless `ok`.
    fn check(&mut self, ok: bool, who: &str, what: &str, expected: &str, got: impl fmt::Display) {
        if !ok {
            self.0.push([
                "-".to_owned(),
                who.to_owned(),
                what.to_owned(),
                expected.to_owned(),
                got.to_string(),
            ]);
        }
    }
}

/// ListBuckets shows only the caller's buckets, with the caller as Owner.
async fn check_list_buckets(world: &World, findings: &mut Findings) {
    for (who, id, expected) in [
        (Who::Alice, &world.alice_id, ALICE_BUCKETS.to_vec()),
        (Who::AliceRo, &world.alice_id, ALICE_BUCKETS.to_vec()),
        (Who::Bob, &world.bob_id, BOB_BUCKETS.to_vec()),
    ] {
        let resp = world.s3(who).request(Method::GET, "/").send().await;
        let names = resp.xml_values("Name");
        findings.check(
            resp.status == StatusCode::OK && names == expected,
            who.name(),
            "ListBuckets names",
            &expected.join(","),
            format!("{} {}", resp.status, names.join(",")),
        );
        let owner = resp.xml_value("ID");
        findings.check(
            owner.as_deref() == Some(id.as_str()),
            who.name(),
            "ListBuckets Owner/ID",
            id,
            format!("{owner:?}"),
        );
    }
    let resp = world.s3(Who::Admin).request(Method::GET, "/").send().await;
    let names = resp.xml_values("Name");
    findings.check(
        resp.status == StatusCode::OK
            && names
                .iter()
                .all(|n| !n.starts_with("alice") && !n.starts_with("bob")),
        "admin",
        "ListBuckets lists only admin's own buckets",
        "no alice-*/bob-*",
        names.join(","),
    );
    // AWS's 2024 paging: max-buckets and prefix.
    let resp = world
        .s3(Who::Alice)
        .request(Method::GET, "/")
        .query("max-buckets=2&prefix=alice-")
        .send()
        .await;
    let names = resp.xml_values("Name");
    findings.check(
        resp.status == StatusCode::OK
            && names == ALICE_BUCKETS[..2]
            && resp.xml_value("ContinuationToken").is_some(),
        "alice",
        "ListBuckets max-buckets=2 prefix=alice-",
        "alice-acl,alice-b1 + ContinuationToken",
        format!("{} {} {}", resp.status, names.join(","), resp.text()),
    );
}

/// CreateBucket of another account's name, and of one's own.
async fn check_create_conflicts(world: &World, findings: &mut Findings) {
    let alice = world.s3(Who::Alice);
    let resp = alice.request(Method::PUT, "/bob-b1").send().await;
    findings.check(
        resp.status == StatusCode::CONFLICT
            && resp.code().as_deref() == Some("BucketAlreadyExists"),
        "alice",
        "CreateBucket bob-b1 (bob's)",
        "409 BucketAlreadyExists",
        format!("{} {:?}", resp.status, resp.code()),
    );
    // AWS answers 200 to the owner's re-creation in us-east-1 only: ask the server its region.
    let location = alice
        .request(Method::GET, "/alice-b1")
        .query("location")
        .send()
        .await;
    location.assert_status(StatusCode::OK);
    let region = location
        .xml_value("LocationConstraint")
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let resp = alice.request(Method::PUT, "/alice-b1").send().await;
    let (expected, ok) = if region == "us-east-1" {
        ("200 (us-east-1)", resp.status == StatusCode::OK)
    } else {
        (
            "409 BucketAlreadyOwnedByYou",
            resp.status == StatusCode::CONFLICT
                && resp.code().as_deref() == Some("BucketAlreadyOwnedByYou"),
        )
    };
    report!("[{}] the server reports region {region}", world.label);
    findings.check(
        ok,
        "alice",
        "CreateBucket alice-b1 (her own)",
        expected,
        format!("{} {:?}", resp.status, resp.code()),
    );
}

/// Sends a configuration PUT as alice; returns (status, code).
async fn alice_put_config(world: &World, bucket: &str, sub: &str, body: String) -> (u16, String) {
    let resp = world
        .s3(Who::Alice)
        .send(
            Method::PUT,
            &format!("/{bucket}"),
            sub,
            &[("content-md5", &content_md5(body.as_bytes()))],
            Some(body.into_bytes()),
        )
        .await;
    (resp.status.as_u16(), resp.code().unwrap_or_default())
}

async fn anon_status(world: &World, bucket: &str, key: &str) -> u16 {
    world
        .send(Who::Anon, Request::new(Method::GET, &path(bucket, key)))
        .await
        .0
        .status
}

/// Polls `attempt` until it reports success or [`PROPAGATION`] has passed: a configuration a
/// gateway caches may take that long to apply. Returns the last answer and whether it passed.
async fn settle<F, Fut>(mut attempt: F) -> (bool, String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let started = Instant::now();
    loop {
        let (ok, got) = attempt().await;
        if ok || started.elapsed() > PROPAGATION {
            return (ok, got);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a response is this error, and how it reads.
fn is_error(resp: &cairn_test_support::Resp, status: u16, code: &str) -> (bool, String) {
    let got = format!(
        "{} {}",
        resp.status.as_u16(),
        resp.code().unwrap_or_default()
    );
    (
        resp.status.as_u16() == status && resp.code().as_deref() == Some(code),
        got,
    )
}

/// Public-access blocks, BucketOwnerEnforced, GetBucketPolicyStatus and anonymous HEAD and
/// ranges.
async fn check_public_access(world: &World, findings: &mut Findings) {
    let alice = world.s3(Who::Alice);
    let alice = &alice;
    for bucket in [
        "alice-bpp",
        "alice-ipa",
        "alice-bpa",
        "alice-boe",
        "alice-rpb",
    ] {
        world.create_bucket(Who::Alice, bucket).await;
    }

    // BlockPublicPolicy refuses a public policy, not a policy naming an account.
    let got = alice_put_config(
        world,
        "alice-bpp",
        "publicAccessBlock",
        pab_xml([false, false, true, false]),
    )
    .await;
    findings.check(
        got.0 == 200,
        "alice",
        "PutPublicAccessBlock BlockPublicPolicy",
        "200",
        format!("{got:?}"),
    );
    let (ok, got) = settle(|| async {
        let got = alice_put_config(
            world,
            "alice-bpp",
            "policy",
            public_read_policy("alice-bpp"),
        )
        .await;
        (got == (403, "AccessDenied".to_owned()), format!("{got:?}"))
    })
    .await;
    findings.check(
        ok,
        "alice",
        "PutBucketPolicy public under BlockPublicPolicy",
        "403 AccessDenied",
        got,
    );
    let got = alice_put_config(
        world,
        "alice-bpp",
        "policy",
        grant_get_policy("alice-bpp", &world.bob_id),
    )
    .await;
    findings.check(
        (200..300).contains(&got.0),
        "alice",
        "PutBucketPolicy naming bob under BlockPublicPolicy",
        "2xx",
        format!("{got:?}"),
    );
    let resp = alice
        .request(Method::GET, "/alice-bpp")
        .query("publicAccessBlock")
        .send()
        .await;
    findings.check(
        resp.status == StatusCode::OK
            && resp.xml_value("BlockPublicPolicy").as_deref() == Some("true"),
        "alice",
        "GetPublicAccessBlock",
        "200 BlockPublicPolicy=true",
        format!("{} {}", resp.status, resp.text()),
    );

    // IgnorePublicAcls hides a public-read object from anonymous callers, and only while set.
    alice
        .put_with(
            "alice-ipa",
            "pub",
            b"public bytes",
            &[("x-amz-acl", "public-read")],
        )
        .await
        .assert_status(StatusCode::OK);
    let got = anon_status(world, "alice-ipa", "pub").await;
    findings.check(
        got == 200,
        "anon",
        "GET alice-ipa/pub (public-read)",
        "200",
        got,
    );
    let got = alice_put_config(
        world,
        "alice-ipa",
        "publicAccessBlock",
        pab_xml([false, true, false, false]),
    )
    .await;
    findings.check(
        got.0 == 200,
        "alice",
        "PutPublicAccessBlock IgnorePublicAcls",
        "200",
        format!("{got:?}"),
    );
    let took = time_until(PROPAGATION, || async {
        anon_status(world, "alice-ipa", "pub").await == 403
    })
    .await;
    findings.check(
        took.is_some(),
        "anon",
        "GET alice-ipa/pub under IgnorePublicAcls",
        "403 within 5 s",
        anon_status(world, "alice-ipa", "pub").await,
    );
    let resp = alice
        .request(Method::DELETE, "/alice-ipa")
        .query("publicAccessBlock")
        .send()
        .await;
    findings.check(
        resp.status.is_success(),
        "alice",
        "DeletePublicAccessBlock",
        "2xx",
        resp.status,
    );
    let took = time_until(PROPAGATION, || async {
        anon_status(world, "alice-ipa", "pub").await == 200
    })
    .await;
    findings.check(
        took.is_some(),
        "anon",
        "GET alice-ipa/pub once the block is gone",
        "200 within 5 s",
        "still refused",
    );

    // BlockPublicAcls refuses public ACLs on objects and on the bucket; private ones pass.
    let got = alice_put_config(
        world,
        "alice-bpa",
        "publicAccessBlock",
        pab_xml([true, false, false, false]),
    )
    .await;
    findings.check(
        got.0 == 200,
        "alice",
        "PutPublicAccessBlock BlockPublicAcls",
        "200",
        format!("{got:?}"),
    );
    let (ok, got) = settle(|| async {
        is_error(
            &alice
                .put_with("alice-bpa", "pub", b"x", &[("x-amz-acl", "public-read")])
                .await,
            403,
            "AccessDenied",
        )
    })
    .await;
    findings.check(
        ok,
        "alice",
        "PutObject x-amz-acl: public-read under BlockPublicAcls",
        "403 AccessDenied",
        got,
    );
    let resp = alice
        .put_with("alice-bpa", "priv", b"x", &[("x-amz-acl", "private")])
        .await;
    findings.check(
        resp.status == StatusCode::OK,
        "alice",
        "PutObject x-amz-acl: private under BlockPublicAcls",
        "200",
        resp.status,
    );
    let resp = alice
        .send(
            Method::PUT,
            "/alice-bpa/priv",
            "acl",
            &[("x-amz-acl", "public-read")],
            None,
        )
        .await;
    let (ok, got) = is_error(&resp, 403, "AccessDenied");
    findings.check(
        ok,
        "alice",
        "PutObjectAcl public-read under BlockPublicAcls",
        "403 AccessDenied",
        got,
    );
    let resp = alice
        .send(
            Method::PUT,
            "/alice-bpa",
            "acl",
            &[("x-amz-acl", "public-read")],
            None,
        )
        .await;
    let (ok, got) = is_error(&resp, 403, "AccessDenied");
    findings.check(
        ok,
        "alice",
        "PutBucketAcl public-read under BlockPublicAcls",
        "403 AccessDenied",
        got,
    );

    // BucketOwnerEnforced: ACLs are off; setting one is AccessControlListNotSupported, except
    // bucket-owner-full-control, which AWS still accepts.
    let got = alice_put_config(
        world,
        "alice-boe",
        "ownershipControls",
        ownership_xml("BucketOwnerEnforced"),
    )
    .await;
    findings.check(
        got.0 == 200,
        "alice",
        "PutBucketOwnershipControls BucketOwnerEnforced",
        "200",
        format!("{got:?}"),
    );
    let (ok, got) = settle(|| async {
        let resp = alice
            .request(Method::GET, "/alice-boe")
            .query("ownershipControls")
            .send()
            .await;
        let owner = resp.xml_value("ObjectOwnership");
        let ok = resp.status == StatusCode::OK && owner.as_deref() == Some("BucketOwnerEnforced");
        (ok, format!("{} {:?} {:?}", resp.status, resp.code(), owner))
    })
    .await;
    findings.check(
        ok,
        "alice",
        "GetBucketOwnershipControls",
        "200 BucketOwnerEnforced",
        got,
    );
    let (ok, got) = settle(|| async {
        is_error(
            &alice
                .put_with("alice-boe", "pub", b"x", &[("x-amz-acl", "public-read")])
                .await,
            400,
            "AccessControlListNotSupported",
        )
    })
    .await;
    findings.check(
        ok,
        "alice",
        "PutObject x-amz-acl: public-read under BucketOwnerEnforced",
        "400 AccessControlListNotSupported",
        got,
    );
    let resp = alice
        .put_with(
            "alice-boe",
            "owned",
            b"x",
            &[("x-amz-acl", "bucket-owner-full-control")],
        )
        .await;
    findings.check(
        resp.status == StatusCode::OK,
        "alice",
        "PutObject x-amz-acl: bucket-owner-full-control under BucketOwnerEnforced",
        "200",
        format!("{} {:?}", resp.status, resp.code()),
    );
    let resp = alice
        .send(
            Method::PUT,
            "/alice-boe/owned",
            "acl",
            &[("x-amz-acl", "public-read")],
            None,
        )
        .await;
    let (ok, got) = is_error(&resp, 400, "AccessControlListNotSupported");
    findings.check(
        ok,
        "alice",
        "PutObjectAcl public-read under BucketOwnerEnforced",
        "400 AccessControlListNotSupported",
        got,
    );

    // RestrictPublicBuckets: a public bucket policy then grants only the owner's account.
    let got = alice_put_config(
        world,
        "alice-rpb",
        "policy",
        public_read_policy("alice-rpb"),
    )
    .await;
    findings.check(
        (200..300).contains(&got.0),
        "alice",
        "PutBucketPolicy public on alice-rpb",
        "2xx",
        format!("{got:?}"),
    );
    alice.put_ok("alice-rpb", "obj", b"restricted").await;
    let took = time_until(PROPAGATION, || async {
        anon_status(world, "alice-rpb", "obj").await == 200
    })
    .await;
    findings.check(
        took.is_some(),
        "anon",
        "GET alice-rpb/obj (public policy)",
        "200 within 5 s",
        "refused",
    );
    let got = alice_put_config(
        world,
        "alice-rpb",
        "publicAccessBlock",
        pab_xml([false, false, false, true]),
    )
    .await;
    findings.check(
        got.0 == 200,
        "alice",
        "PutPublicAccessBlock RestrictPublicBuckets",
        "200",
        format!("{got:?}"),
    );
    let took = time_until(PROPAGATION, || async {
        anon_status(world, "alice-rpb", "obj").await == 403
    })
    .await;
    findings.check(
        took.is_some(),
        "anon",
        "GET alice-rpb/obj under RestrictPublicBuckets",
        "403 within 5 s",
        "still served",
    );
    let got = world
        .probe(0, Op::GetObject, "alice-rpb/obj", Who::Bob)
        .await;
    findings.check(
        got.status == 403,
        "bob",
        "GET alice-rpb/obj under RestrictPublicBuckets",
        "403 AccessDenied",
        got,
    );
    alice.assert_object("alice-rpb", "obj", b"restricted").await;

    // GetBucketPolicyStatus tells a public policy from one naming an account.
    for (bucket, public) in [("alice-pub", "true"), ("alice-b2", "false")] {
        let resp = alice
            .request(Method::GET, &format!("/{bucket}"))
            .query("policyStatus")
            .send()
            .await;
        findings.check(
            resp.status == StatusCode::OK && resp.xml_value("IsPublic").as_deref() == Some(public),
            "alice",
            &format!("GetBucketPolicyStatus {bucket}"),
            &format!("200 IsPublic={public}"),
            format!("{} {}", resp.status, resp.text()),
        );
    }

    // Anonymous HEAD and a range of a public object, by bucket policy and by ACL.
    for (bucket, key) in [("alice-pub", "obj"), ("alice-acl", "pub")] {
        let whole = body_of(bucket, key);
        let (obs, _) = world
            .send(Who::Anon, Request::new(Method::HEAD, &path(bucket, key)))
            .await;
        findings.check(
            obs.status == 200,
            "anon",
            &format!("HEAD {bucket}/{key}"),
            "200",
            obs,
        );
        let (name, value) = header("range", "bytes=2-5");
        let (obs, body) = world
            .send(
                Who::Anon,
                Request::new(Method::GET, &path(bucket, key)).header(name, value),
            )
            .await;
        findings.check(
            obs.status == 206 && body == whole[2..6],
            "anon",
            &format!("GET {bucket}/{key} Range: bytes=2-5"),
            &format!("206 {:?}", String::from_utf8_lossy(&whole[2..6])),
            format!("{obs} {:?}", String::from_utf8_lossy(&body)),
        );
    }
    // Public read is not public listing.
    let (obs, _) = world
        .send(Who::Anon, Request::new(Method::GET, "/alice-pub"))
        .await;
    findings.check(
        obs.status == 403,
        "anon",
        "ListObjects alice-pub (GetObject only)",
        "403 AccessDenied",
        obs,
    );
}

/// A deleted key and a detached policy stop working on every gateway within 5 s.
async fn check_revocation(store: &Store, world: &World, findings: &mut Findings) {
    let key = store.accounts.create_key("revoked", "alice", None).await;
    let clients: Vec<S3Client> = store
        .addrs
        .iter()
        .map(|addr| S3Client::new(addr, &key.id, &key.secret, REQUEST_TIMEOUT))
        .collect();
    for client in &clients {
        client
            .request(Method::GET, "/")
            .send()
            .await
            .assert_status(StatusCode::OK);
    }
    store.accounts.delete_key(&key.id).await;
    // Each gateway's time counts from the change, not from the previous gateway's answer.
    let changed = Instant::now();
    for (i, client) in clients.iter().enumerate() {
        let took = time_until(PROPAGATION.saturating_sub(changed.elapsed()), || async {
            client.request(Method::GET, "/").send().await.status == StatusCode::FORBIDDEN
        })
        .await
        .map(|_| changed.elapsed());
        let last = client.request(Method::GET, "/").send().await;
        report!(
            "[{}] deleted key refused on gateway {i} after {took:?}",
            world.label
        );
        findings.check(
            took.is_some() && last.code().as_deref() == Some("InvalidAccessKeyId"),
            "revoked",
            &format!("ListBuckets on gateway {i} after key delete"),
            "403 InvalidAccessKeyId within 5 s",
            format!("{} {:?} (took {took:?})", last.status, last.code()),
        );
    }

    let (bob_id, bob_secret) = world.key(Who::Bob);
    let bobs: Vec<S3Client> = store
        .addrs
        .iter()
        .map(|addr| S3Client::new(addr, bob_id, bob_secret, REQUEST_TIMEOUT))
        .collect();
    for bob in &bobs {
        bob.get("alice-b1", "shared/obj")
            .await
            .assert_status(StatusCode::OK);
    }
    store.accounts.detach_policy("bob-attached", "bob").await;
    let changed = Instant::now();
    for (i, bob) in bobs.iter().enumerate() {
        let took = time_until(PROPAGATION.saturating_sub(changed.elapsed()), || async {
            bob.get("alice-b1", "shared/obj").await.status == StatusCode::FORBIDDEN
        })
        .await
        .map(|_| changed.elapsed());
        report!(
            "[{}] detached policy out of force on gateway {i} after {took:?}",
            world.label
        );
        findings.check(
            took.is_some(),
            "bob",
            &format!("GET alice-b1/shared/obj on gateway {i} after detach"),
            "403 AccessDenied within 5 s",
            format!("took {took:?}"),
        );
        // The Deny went with it: alice-b2's policy alone now decides secret/obj.
        let took = time_until(PROPAGATION, || async {
            bob.get("alice-b2", "secret/obj").await.status == StatusCode::OK
        })
        .await;
        findings.check(
            took.is_some(),
            "bob",
            &format!("GET alice-b2/secret/obj on gateway {i} after detach"),
            "200 within 5 s",
            format!("took {took:?}"),
        );
    }
}

async fn run_all(store: Store) {
    let world = build_world(&store).await;
    let mut findings = Findings::default();
    // Before the matrix, which adds buckets of its own.
    check_list_buckets(&world, &mut findings).await;
    let mismatches = run_matrix(&world).await;
    check_create_conflicts(&world, &mut findings).await;
    check_public_access(&world, &mut findings).await;
    check_revocation(&store, &world, &mut findings).await;
    let late = world.late_buckets.lock().expect("late buckets").clone();
    if let Some((bucket, took)) = late
        .iter()
        .max_by_key(|(_, took)| took.unwrap_or(Duration::MAX))
    {
        findings.check(
            false,
            "alice, bob",
            &format!(
                "HeadBucket by its creator right after CreateBucket ({} buckets)",
                late.len()
            ),
            "200 at once",
            format!("403 at first; slowest {bucket}: 200 after {took:?}"),
        );
    }
    if !mismatches.is_empty() {
        print_table(world.label, "permission matrix mismatches", &mismatches);
    }
    if !findings.0.is_empty() {
        print_table(world.label, "other access checks failed", &findings.0);
    }
    assert!(
        mismatches.is_empty() && findings.0.is_empty(),
        "[{}] {} matrix mismatches and {} other failed checks (tables above)",
        world.label,
        mismatches.len(),
        findings.0.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permissions_on_sqlite_server() {
    let server = TestServer::start().await;
    run_all(Store {
        addrs: vec![server.host.clone()],
        admin_key: (TEST_KEY_ID.to_owned(), TEST_SECRET.to_owned()),
        accounts: Accounts::of_server(&server),
        label: "server, SQLite",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permissions_on_postgres_cluster() {
    let spec = Spec {
        gateways: 2,
        ..Spec::new(Backend::Postgres, 2)
    };
    let cluster = Cluster::start(spec).await;
    run_all(Store {
        addrs: cluster.gateways.iter().map(|g| g.addr.clone()).collect(),
        admin_key: (KEY_ID.to_owned(), KEY_SECRET.to_owned()),
        accounts: Accounts::of_cluster(&cluster),
        label: "cluster gateway, PostgreSQL",
    })
    .await;
}
