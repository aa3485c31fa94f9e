//! Who may do what: the access keys, accounts, attached policies and buckets' access settings a
//! decision needs, cached per gateway, and the decision itself, made as AWS makes it (an explicit
//! Deny anywhere wins; then an Allow from an identity policy, ownership, the bucket policy or an
//! ACL; else denied). The cache is dropped whole whenever the metadata store's access generation
//! moves, which every gateway polls each [`REFRESH`], so a change made through any gateway or
//! `cairn admin` takes effect everywhere within about a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::GatewayResult;
use crate::iam::acl::{Acl, Permission};
use crate::iam::policy::{Policy, PolicyKind};
use crate::iam::{AccessRequest, AccountRef, Caller, Context, Decision};
use crate::meta::{ADMIN_ACCOUNT, AccessKey, Account, Bucket, MetaStore};

/// How often each gateway asks whether access settings changed.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Entries per map before the cache starts over: bounds what requests naming random keys or
/// buckets can make it hold.
const MAX_ENTRIES: usize = 10_000;

/// An access key with everything its requests are judged by.
#[derive(Debug)]
pub struct Identity {
    pub key: AccessKey,
    pub account: Account,
    /// The admin account has every right on everything.
    pub is_admin: bool,
    /// The policy the key is limited to, if any: it must allow every request the key makes.
    key_policy: Option<Policy>,
    /// The account's attached identity policies.
    policies: Vec<Policy>,
}

/// Who sends a request.
#[derive(Clone, Debug)]
pub enum Requester {
    Anonymous,
    Key(Arc<Identity>),
}

impl Requester {
    pub fn caller(&self) -> Caller<'_> {
        match self {
            Requester::Anonymous => Caller::Anonymous,
            Requester::Key(identity) => Caller::Account(AccountRef {
                id: &identity.account.id,
                name: &identity.account.name,
            }),
        }
    }

    /// The canonical id of the caller's account.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Requester::Anonymous => None,
            Requester::Key(identity) => Some(&identity.account.id),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Requester::Key(identity) if identity.is_admin)
    }
}

/// Who owns new objects in a bucket and whether ACLs count (S3's Object Ownership).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ownership {
    /// The writer owns what it writes. What a bucket without ownership controls does, so that
    /// apps sending `x-amz-acl: public-read` keep working (AWS made BucketOwnerEnforced the
    /// default for new buckets in 2023, which refuses such requests).
    #[default]
    ObjectWriter,
    /// The bucket owner owns objects written with `bucket-owner-full-control`.
    BucketOwnerPreferred,
    /// The bucket owner owns every object; ACLs are neither set nor evaluated.
    BucketOwnerEnforced,
}

impl Ownership {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ObjectWriter" => Some(Ownership::ObjectWriter),
            "BucketOwnerPreferred" => Some(Ownership::BucketOwnerPreferred),
            "BucketOwnerEnforced" => Some(Ownership::BucketOwnerEnforced),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::ObjectWriter => "ObjectWriter",
            Ownership::BucketOwnerPreferred => "BucketOwnerPreferred",
            Ownership::BucketOwnerEnforced => "BucketOwnerEnforced",
        }
    }
}

/// A bucket's public access block, stored as this JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicAccessBlock {
    /// Refuse requests that set a public ACL.
    pub block_public_acls: bool,
    /// Evaluate ACLs without their public grants.
    pub ignore_public_acls: bool,
    /// Refuse a public bucket policy.
    pub block_public_policy: bool,
    /// While the bucket policy is public, it grants nothing beyond the owner's account.
    pub restrict_public_buckets: bool,
}

/// A bucket with its access settings parsed.
#[derive(Debug)]
pub struct BucketAuth {
    pub bucket: Bucket,
    pub policy: Option<Policy>,
    pub acl: Acl,
    pub ownership: Ownership,
    pub block: PublicAccessBlock,
}

impl BucketAuth {
    fn load(bucket: Bucket) -> Result<Self, String> {
        let access = &bucket.access;
        let policy = access
            .policy
            .as_deref()
            .map(|doc| Policy::parse(doc, PolicyKind::Bucket(&bucket.name)))
            .transpose()
            .map_err(|e| format!("stored policy of bucket {}: {e}", bucket.name))?;
        let acl = match &access.acl {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| format!("stored ACL of bucket {}: {e}", bucket.name))?,
            None => Acl::private(&bucket.owner),
        };
        let ownership = match &access.ownership {
            Some(s) => Ownership::parse(s)
                .ok_or_else(|| format!("stored ownership of bucket {}: {s}", bucket.name))?,
            None => Ownership::default(),
        };
        let block = match &access.public_access_block {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| format!("stored public access block of {}: {e}", bucket.name))?,
            None => PublicAccessBlock::default(),
        };
        Ok(BucketAuth {
            bucket,
            policy,
            acl,
            ownership,
            block,
        })
    }

    pub fn acls_enabled(&self) -> bool {
        self.ownership != Ownership::BucketOwnerEnforced
    }
}

/// What a request may do, before any object's ACL is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Allowed only if the object's ACL grants this permission to the caller.
    IfObjectAcl(Permission),
}

/// One access question: an action on a resource of a bucket (none for ListBuckets), with the
/// request's condition values.
pub struct Question<'a> {
    pub action: &'a str,
    pub bucket: Option<&'a BucketAuth>,
    /// None for the bucket itself.
    pub key: Option<&'a str>,
    pub context: &'a Context,
}

/// The bucket permission an ACL grant must give for a bucket-level action (or an object write).
fn bucket_acl_permission(action: &str) -> Option<Permission> {
    Some(match action {
        "s3:ListBucket" | "s3:ListBucketMultipartUploads" => Permission::Read,
        "s3:PutObject"
        | "s3:DeleteObject"
        | "s3:AbortMultipartUpload"
        | "s3:ListMultipartUploadParts" => Permission::Write,
        "s3:GetBucketAcl" => Permission::ReadAcp,
        "s3:PutBucketAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

/// The object permission an object ACL grant must give for an action on the object.
pub fn object_acl_permission(action: &str) -> Option<Permission> {
    Some(match action {
        "s3:GetObject" => Permission::Read,
        "s3:GetObjectAcl" => Permission::ReadAcp,
        "s3:PutObjectAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

/// Actions the bucket owner and the admin keep even under an explicit Deny, so that a bucket
/// policy can always be repaired (AWS keeps them for the account's root user).
const UNLOCKABLE: [&str; 3] = [
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
];

/// Decides `question` for `requester` (see the module's comment).
pub fn decide(requester: &Requester, question: &Question<'_>) -> Verdict {
    let resource = match (question.bucket, question.key) {
        (None, _) => "*".to_owned(),
        (Some(b), None) => format!("arn:aws:s3:::{}", b.bucket.name),
        (Some(b), Some(key)) => format!("arn:aws:s3:::{}/{key}", b.bucket.name),
    };
    let request = AccessRequest {
        action: question.action,
        resource: &resource,
        caller: requester.caller(),
        context: question.context,
    };
    let owner = match (requester, question.bucket) {
        (Requester::Key(identity), Some(b)) => identity.account.id == b.bucket.owner,
        _ => false,
    };
    let unlockable = (owner || requester.is_admin()) && UNLOCKABLE.contains(&question.action);
    let mut allowed = false;
    if let Requester::Key(identity) = requester {
        for policy in &identity.policies {
            match policy.evaluate(&request) {
                Decision::Deny if !unlockable => return Verdict::Deny,
                Decision::Allow => allowed = true,
                _ => {}
            }
        }
        if let Some(policy) = &identity.key_policy
            && policy.evaluate(&request) != Decision::Allow
        {
            return Verdict::Deny;
        }
        // Every account may list its own buckets and create buckets unless a policy denies it.
        allowed |= identity.is_admin
            || owner
            || matches!(question.action, "s3:ListAllMyBuckets" | "s3:CreateBucket");
    }
    let Some(bucket) = question.bucket else {
        return if allowed { Verdict::Allow } else { Verdict::Deny };
    };
    if let Some(policy) = &bucket.policy {
        let restricted = bucket.block.restrict_public_buckets && policy.is_public();
        match policy.evaluate(&request) {
            Decision::Deny if !unlockable => return Verdict::Deny,
            Decision::Allow if !restricted => allowed = true,
            _ => {}
        }
    }
    if allowed {
        return Verdict::Allow;
    }
    if !bucket.acls_enabled() {
        return Verdict::Deny;
    }
    if question.key.is_some()
        && let Some(permission) = object_acl_permission(question.action)
    {
        return Verdict::IfObjectAcl(permission);
    }
    let caller = requester.caller();
    match bucket_acl_permission(question.action) {
        Some(permission)
            if bucket
                .acl
                .allows(&caller, permission, bucket.block.ignore_public_acls) =>
        {
            Verdict::Allow
        }
        _ => Verdict::Deny,
    }
}

/// Whether an object's stored ACL (private to `owner` when none was set) grants `permission`.
pub fn object_acl_allows(
    requester: &Requester,
    bucket: &BucketAuth,
    owner: &str,
    acl: Option<&str>,
    permission: Permission,
) -> bool {
    let acl = match acl.map(serde_json::from_str::<Acl>) {
        Some(Ok(acl)) => acl,
        Some(Err(e)) => {
            tracing::error!(bucket = %bucket.bucket.name, "stored object ACL is invalid: {e}");
            return false;
        }
        None => Acl::private(owner),
    };
    acl.allows(
        &requester.caller(),
        permission,
        bucket.block.ignore_public_acls,
    )
}

#[derive(Default)]
struct CacheState {
    generation: u64,
    identities: HashMap<String, Option<Arc<Identity>>>,
    buckets: HashMap<String, Option<Arc<BucketAuth>>>,
    accounts: Option<Arc<HashMap<String, Account>>>,
}

/// The per-gateway cache of what access decisions read.
pub struct AccessCache {
    meta: Arc<dyn MetaStore>,
    state: Mutex<CacheState>,
}

impl AccessCache {
    /// A cache that starts polling the store's access generation when a runtime is running.
    pub fn start(meta: Arc<dyn MetaStore>) -> Arc<Self> {
        let cache = Arc::new(AccessCache {
            meta,
            state: Mutex::default(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(poll_generation(Arc::downgrade(&cache)));
        }
        cache
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock leaves plain maps behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Forgets everything if the store's generation moved.
    async fn refresh(&self) -> GatewayResult<()> {
        let current = self.meta.access_generation().await?;
        let mut state = self.state();
        if state.generation != current {
            *state = CacheState {
                generation: current,
                ..CacheState::default()
            };
        }
        Ok(())
    }

    /// Keeps `value` unless the generation moved while it was loaded.
    fn keep<T: Clone>(
        &self,
        loaded_at: u64,
        map: impl FnOnce(&mut CacheState) -> &mut HashMap<String, T>,
        name: &str,
        value: &T,
    ) {
        let mut state = self.state();
        if state.generation != loaded_at {
            return;
        }
        let entries = map(&mut state);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(name.to_owned(), value.clone());
    }

    /// The access key `id` with its account and policies, or None if there is no such key.
    pub async fn identity(&self, id: &str) -> GatewayResult<Option<Arc<Identity>>> {
        if let Some(found) = self.state().identities.get(id) {
            return Ok(found.clone());
        }
        let generation = self.generation();
        let identity = self.load_identity(id).await?.map(Arc::new);
        self.keep(generation, |s| &mut s.identities, id, &identity);
        Ok(identity)
    }

    async fn load_identity(&self, id: &str) -> GatewayResult<Option<Identity>> {
        let Some(key) = self.meta.key(id).await? else {
            return Ok(None);
        };
        let Some(account) = self.meta.account(&key.account).await? else {
            // A key outliving its account (deleted meanwhile) opens nothing.
            return Ok(None);
        };
        let key_policy = match &key.policy {
            None => None,
            Some(name) => Some(self.named_policy(name).await?),
        };
        let mut policies = Vec::new();
        for (name, document) in self.meta.account_policies(&account.id).await? {
            policies.push(parse_stored(&name, &document));
        }
        Ok(Some(Identity {
            is_admin: account.name == ADMIN_ACCOUNT,
            key,
            account,
            key_policy,
            policies,
        }))
    }

    /// A key's policy by name: canned, or stored. One that is missing or invalid allows nothing.
    async fn named_policy(&self, name: &str) -> GatewayResult<Policy> {
        let document = match Policy::canned(name) {
            Some(canned) => Some(canned.to_owned()),
            None => self.meta.policy(name).await?,
        };
        Ok(match document {
            Some(document) => parse_stored(name, &document),
            None => {
                tracing::error!(policy = name, "a key names a policy that does not exist");
                deny_all()
            }
        })
    }

    /// The bucket `name` with its access settings, or None if there is no such bucket.
    pub async fn bucket(&self, name: &str) -> GatewayResult<Option<Arc<BucketAuth>>> {
        if let Some(found) = self.state().buckets.get(name) {
            return Ok(found.clone());
        }
        let generation = self.generation();
        let access = match self.meta.bucket(name).await? {
            None => None,
            Some(bucket) => Some(Arc::new(BucketAuth::load(bucket).map_err(|e| {
                super::GatewayError::Meta(crate::meta::MetaError::Corrupt(e))
            })?)),
        };
        self.keep(generation, |s| &mut s.buckets, name, &access);
        Ok(access)
    }

    /// Every account by canonical id (a store has few): display names for Owner fields and
    /// ACLs, and which canonical ids a grant may name.
    pub async fn accounts(&self) -> GatewayResult<Arc<HashMap<String, Account>>> {
        if let Some(accounts) = &self.state().accounts {
            return Ok(accounts.clone());
        }
        let generation = self.generation();
        let accounts: Arc<HashMap<String, Account>> = Arc::new(
            self.meta
                .list_accounts()
                .await?
                .into_iter()
                .map(|a| (a.id.clone(), a))
                .collect(),
        );
        let mut state = self.state();
        if state.generation == generation {
            state.accounts = Some(accounts.clone());
        }
        Ok(accounts)
    }
}

/// A stored policy; one that no longer parses (it was valid when stored) allows nothing.
fn parse_stored(name: &str, document: &str) -> Policy {
    Policy::parse(document, PolicyKind::Identity).unwrap_or_else(|e| {
        tracing::error!(policy = name, "stored policy is invalid: {e}");
        deny_all()
    })
}

fn deny_all() -> Policy {
    Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
        PolicyKind::Identity,
    )
    .unwrap_or_else(|e| unreachable!("the deny-all policy parses: {e}"))
}

async fn poll_generation(cache: Weak<AccessCache>) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        if let Err(e) = cache.refresh().await {
            tracing::debug!("access generation not read: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::BucketAccess as StoredAccess;

    fn account(name: &str) -> Account {
        Account {
            id: format!("{name:0>64}"),
            name: name.to_owned(),
            display_name: name.to_owned(),
            created: crate::gateway::now(),
        }
    }

    fn key(name: &str, key_policy: Option<&str>, attached: &[&str]) -> Requester {
        let account = account(name);
        let parse = |doc: &str| Policy::parse(doc, PolicyKind::Identity).unwrap();
        Requester::Key(Arc::new(Identity {
            key: AccessKey {
                id: format!("KEY{name}"),
                secret: "s".to_owned(),
                name: name.to_owned(),
                created: crate::gateway::now(),
                account: account.id.clone(),
                policy: key_policy.map(str::to_owned),
            },
            is_admin: name == ADMIN_ACCOUNT,
            key_policy: key_policy.map(|name| parse(Policy::canned(name).unwrap())),
            policies: attached.iter().map(|doc| parse(doc)).collect(),
            account,
        }))
    }

    fn bucket(name: &str, owner: &str, access: StoredAccess) -> BucketAuth {
        BucketAuth::load(Bucket {
            name: name.to_owned(),
            created: crate::gateway::now(),
            owner: account(owner).id,
            access,
        })
        .unwrap()
    }

    fn ask(who: &Requester, action: &str, bucket: &BucketAuth, key: Option<&str>) -> Verdict {
        let context = Context::default();
        decide(
            who,
            &Question {
                action,
                bucket: Some(bucket),
                key,
                context: &context,
            },
        )
    }

    const DENY_DELETE: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}]}"#;

    #[test]
    fn owners_and_the_admin_may_everything_others_nothing() {
        let b = bucket("alice-b1", "alice", StoredAccess::default());
        let alice = key("alice", None, &[]);
        let admin = key(ADMIN_ACCOUNT, None, &[]);
        let bob = key("bob", None, &[]);
        for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] {
            assert_eq!(ask(&alice, action, &b, Some("k")), Verdict::Allow);
            assert_eq!(ask(&admin, action, &b, Some("k")), Verdict::Allow);
        }
        assert_eq!(ask(&bob, "s3:PutObject", &b, Some("k")), Verdict::Deny);
        assert_eq!(ask(&bob, "s3:ListBucket", &b, None), Verdict::Deny);
        // Reads by others depend on the object's ACL, which is private unless set.
        assert_eq!(
            ask(&bob, "s3:GetObject", &b, Some("k")),
            Verdict::IfObjectAcl(Permission::Read)
        );
        assert_eq!(
            ask(&Requester::Anonymous, "s3:GetObject", &b, Some("k")),
            Verdict::IfObjectAcl(Permission::Read)
        );
    }

    #[test]
    fn a_key_policy_limits_even_the_owner_and_a_deny_beats_ownership() {
        let b = bucket("alice-b1", "alice", StoredAccess::default());
        let reader = key("alice", Some("readonly"), &[]);
        assert_eq!(ask(&reader, "s3:GetObject", &b, Some("k")), Verdict::Allow);
        assert_eq!(ask(&reader, "s3:ListBucket", &b, None), Verdict::Allow);
        assert_eq!(ask(&reader, "s3:PutObject", &b, Some("k")), Verdict::Deny);
        assert_eq!(ask(&reader, "s3:DeleteObject", &b, Some("k")), Verdict::Deny);
        let denied = key("alice", None, &[DENY_DELETE]);
        assert_eq!(ask(&denied, "s3:DeleteObject", &b, Some("k")), Verdict::Deny);
        assert_eq!(ask(&denied, "s3:PutObject", &b, Some("k")), Verdict::Allow);
    }

    #[test]
    fn bucket_policies_grant_and_deny() {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}},
            {{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/public/*"}},
            {{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::shared/keep/*"}}]}}"#,
            account("bob").id
        );
        let access = StoredAccess {
            policy: Some(policy),
            ..StoredAccess::default()
        };
        let b = bucket("shared", "alice", access.clone());
        let bob = key("bob", None, &[]);
        let alice = key("alice", None, &[]);
        let anonymous = Requester::Anonymous;
        assert_eq!(ask(&bob, "s3:GetObject", &b, Some("x")), Verdict::Allow);
        assert_eq!(ask(&bob, "s3:PutObject", &b, Some("x")), Verdict::Deny);
        assert_eq!(ask(&anonymous, "s3:GetObject", &b, Some("public/x")), Verdict::Allow);
        assert_eq!(
            ask(&anonymous, "s3:GetObject", &b, Some("x")),
            Verdict::IfObjectAcl(Permission::Read)
        );
        assert_eq!(ask(&alice, "s3:DeleteObject", &b, Some("keep/x")), Verdict::Deny);
        assert_eq!(ask(&alice, "s3:DeleteObject", &b, Some("x")), Verdict::Allow);
        // The owner can always repair its bucket policy.
        assert_eq!(ask(&alice, "s3:PutBucketPolicy", &b, None), Verdict::Allow);

        let restricted = bucket(
            "shared",
            "alice",
            StoredAccess {
                public_access_block: Some(r#"{"RestrictPublicBuckets":true}"#.to_owned()),
                ..access
            },
        );
        assert_eq!(
            ask(&anonymous, "s3:GetObject", &restricted, Some("public/x")),
            Verdict::IfObjectAcl(Permission::Read)
        );
        assert_eq!(ask(&bob, "s3:GetObject", &restricted, Some("x")), Verdict::IfObjectAcl(Permission::Read));
        assert_eq!(ask(&alice, "s3:GetObject", &restricted, Some("x")), Verdict::Allow);
    }

    #[test]
    fn acls_grant_unless_ignored_or_disabled() {
        let owner = account("alice").id;
        let public_read = serde_json::to_string(
            &Acl::canned("public-read-write", &owner, &owner).unwrap(),
        )
        .unwrap();
        let anonymous = Requester::Anonymous;
        let open = bucket(
            "open",
            "alice",
            StoredAccess {
                acl: Some(public_read.clone()),
                ..StoredAccess::default()
            },
        );
        assert_eq!(ask(&anonymous, "s3:ListBucket", &open, None), Verdict::Allow);
        assert_eq!(ask(&anonymous, "s3:PutObject", &open, Some("k")), Verdict::Allow);
        let ignored = bucket(
            "open",
            "alice",
            StoredAccess {
                acl: Some(public_read.clone()),
                public_access_block: Some(r#"{"IgnorePublicAcls":true}"#.to_owned()),
                ..StoredAccess::default()
            },
        );
        assert_eq!(ask(&anonymous, "s3:ListBucket", &ignored, None), Verdict::Deny);
        let enforced = bucket(
            "open",
            "alice",
            StoredAccess {
                acl: Some(public_read),
                ownership: Some("BucketOwnerEnforced".to_owned()),
                ..StoredAccess::default()
            },
        );
        assert_eq!(ask(&anonymous, "s3:ListBucket", &enforced, None), Verdict::Deny);
        assert_eq!(ask(&anonymous, "s3:GetObject", &enforced, Some("k")), Verdict::Deny);

        let object_acl = serde_json::to_string(&Acl::canned("public-read", &owner, &owner).unwrap()).unwrap();
        assert!(object_acl_allows(&anonymous, &open, &owner, Some(&object_acl), Permission::Read));
        assert!(!object_acl_allows(&anonymous, &open, &owner, None, Permission::Read));
        assert!(!object_acl_allows(&anonymous, &ignored, &owner, Some(&object_acl), Permission::Read));
        let alice = key("alice", None, &[]);
        assert!(object_acl_allows(&alice, &open, &owner, None, Permission::WriteAcp));
    }

    #[test]
    fn the_deny_all_policy_parses() {
        let request = AccessRequest {
            action: "s3:GetObject",
            resource: "arn:aws:s3:::b/k",
            caller: Caller::Anonymous,
            context: &Context::default(),
        };
        assert_eq!(deny_all().evaluate(&request), Decision::Deny);
    }
}
