//! IAM policy documents: parsed and validated once (on PutBucketPolicy, `cairn admin policy
//! create`, and when a cached document is loaded), then evaluated per request.
//!
//! The grammar is AWS's (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html>),
//! refused documents carry the messages S3 answers in MalformedPolicy. Limits of this version:
//! only `s3:` actions may appear in a bucket policy (any `service:name` in an identity one, where
//! other services simply never match); action names are checked for shape, not against S3's
//! list, so a misspelt action is accepted and never matches; Principal forms are the ones of
//! `notes/design18.md` (account ids and names, no IAM users of their own: `user/ANY` names the
//! account); `${aws:username}` is substituted in `Resource` and string condition values of
//! Version 2012-10-17 documents.

use serde_json::{Map, Value};

use super::condition::{self, Cidr, Condition, Operator, Qualifier};
use super::wildcard;
use super::{AccessRequest, Caller, Context, Decision};

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

/// S3's limit on a bucket policy: 20 KB of the normalized document (whitespace outside strings
/// dropped), with this message (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/add-bucket-policy.html>).
pub const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;

const S3_ARN_PREFIX: &str = "arn:aws:s3:::";

#[derive(Clone, Debug)]
pub struct Policy {
    statements: Vec<Statement>,
    /// Version 2012-10-17: policy variables are substituted (2008-10-17 reads them literally).
    variables: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// The principals a `Principal` names: everyone, or accounts by canonical id or name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Principals {
    Everyone,
    Accounts(Vec<String>),
}

impl Principals {
    fn includes(&self, caller: &Caller<'_>) -> bool {
        match (self, caller) {
            (Principals::Everyone, _) => true,
            (Principals::Accounts(_), Caller::Anonymous) => false,
            (Principals::Accounts(names), Caller::Account(account)) => names
                .iter()
                .any(|name| name == account.id || name == account.name),
        }
    }
}

#[derive(Clone, Debug)]
struct Statement {
    effect: Effect,
    /// None in identity policies; `(principals, negated)` for Principal / NotPrincipal.
    principal: Option<(Principals, bool)>,
    /// Lowercase patterns; `not` for NotAction.
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

fn err(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

fn syntax() -> PolicyError {
    err("Invalid policy syntax.")
}

impl Policy {
    pub fn parse(document: &str, kind: PolicyKind<'_>) -> Result<Policy, PolicyError> {
        let first_byte = "Policies must be valid JSON and the first byte must be '{'";
        if !document.trim_start().starts_with('{') {
            return Err(err(first_byte));
        }
        let value: Value =
            serde_json::from_str(document).map_err(|_| err("This policy contains invalid Json"))?;
        if let PolicyKind::Bucket(_) = kind {
            let normalized = serde_json::to_string(&value).map_err(|_| syntax())?;
            if normalized.len() > MAX_BUCKET_POLICY_BYTES {
                return Err(err(format!(
                    "Normalized policy document exceeds the maximum allowed size of \
                     {MAX_BUCKET_POLICY_BYTES} bytes"
                )));
            }
        }
        let Value::Object(top) = value else {
            return Err(err(first_byte));
        };
        let mut variables = false;
        let mut statements = None;
        for (name, value) in &top {
            match name.as_str() {
                "Version" => {
                    variables = match value.as_str() {
                        Some("2012-10-17") => true,
                        Some("2008-10-17") => false,
                        _ => return Err(err("The policy must contain a valid version string")),
                    };
                }
                "Id" => {
                    value.as_str().ok_or_else(syntax)?;
                }
                "Statement" => statements = Some(value),
                other => return Err(err(format!("Unknown field {other}"))),
            }
        }
        let statements = match statements {
            None => return Err(err("Missing required field Statement")),
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(single @ Value::Object(_)) => vec![single],
            Some(_) => return Err(syntax()),
        };
        if statements.is_empty() {
            return Err(err("Could not parse the policy: Statement is empty!"));
        }
        let statements = statements
            .into_iter()
            .map(|statement| match statement {
                Value::Object(fields) => Statement::parse(fields, kind),
                _ => Err(syntax()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            statements,
            variables,
        })
    }

    pub fn evaluate(&self, request: &AccessRequest<'_>) -> Decision {
        let mut decision = Decision::NotApplicable;
        for statement in &self.statements {
            if statement.applies(request, self.variables) {
                match statement.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }

    /// Whether the policy grants anything to everyone (AWS's "public" test for
    /// GetBucketPolicyStatus, BlockPublicPolicy and RestrictPublicBuckets).
    ///
    /// After "The meaning of public" (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html#access-control-block-public-access-policy-status>):
    /// an Allow statement is public when its principal is `*` (or it uses NotPrincipal), unless a
    /// condition pins the request to fixed values (no wildcard, no policy variable) of a key
    /// that identifies the caller or its network: `aws:SourceIp` (a block no wider than /8 in
    /// IPv4 or /32 in IPv6, an approximation of AWS's rule), `aws:SourceArn`, `aws:SourceVpc`,
    /// `aws:SourceVpce`, `aws:SourceOwner`, `aws:SourceAccount`, `aws:userid`,
    /// `aws:PrincipalOrgID`, `aws:PrincipalAccount`, `aws:PrincipalArn`,
    /// `s3:DataAccessPointArn`, `s3:DataAccessPointAccount`.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|statement| {
            statement.effect == Effect::Allow
                && match &statement.principal {
                    Some((Principals::Everyone, false)) | Some((_, true)) => {
                        !statement.conditions.iter().any(restricts_to_fixed_values)
                    }
                    _ => false,
                }
        })
    }

    /// The account names or canonical ids the `Principal`s name (not `*`), so the caller can
    /// refuse a bucket policy naming an account that does not exist.
    pub fn principals(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for statement in &self.statements {
            if let Some((Principals::Accounts(accounts), _)) = &statement.principal {
                for account in accounts {
                    if !names.contains(account) {
                        names.push(account.clone());
                    }
                }
            }
        }
        names
    }

    /// The document of a canned identity policy: `readonly`, `readwrite` or `writeonly`.
    ///
    /// - `readonly` is MinIO's (`s3:GetBucketLocation`, `s3:GetObject`) plus `s3:ListBucket`
    ///   and `s3:ListAllMyBuckets`, so a backup reader can find and list what it copies.
    /// - `writeonly` is MinIO's `s3:PutObject` plus what a multipart upload needs to be
    ///   finished or cleaned up (`s3:AbortMultipartUpload`, `s3:ListMultipartUploadParts`,
    ///   `s3:ListBucketMultipartUploads`) and `s3:GetBucketLocation`, which SDKs ask before
    ///   writing; it reads, lists and deletes nothing.
    /// - `readwrite` is `s3:*` on every bucket and object.
    pub fn canned(name: &str) -> Option<&'static str> {
        match name {
            "readonly" => Some(CANNED_READONLY),
            "writeonly" => Some(CANNED_WRITEONLY),
            "readwrite" => Some(CANNED_READWRITE),
            _ => None,
        }
    }
}

const CANNED_READONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetBucketLocation","s3:GetObject","s3:ListBucket","s3:ListAllMyBuckets"],"Resource":["arn:aws:s3:::*"]}]}"#;
const CANNED_WRITEONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts","s3:ListBucketMultipartUploads","s3:GetBucketLocation"],"Resource":["arn:aws:s3:::*"]}]}"#;
const CANNED_READWRITE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}"#;

/// The keys whose fixed values make an Allow to `*` non-public.
const RESTRICTING_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:sourcearn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceowner",
    "aws:sourceaccount",
    "aws:userid",
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
    "s3:dataaccesspointarn",
    "s3:dataaccesspointaccount",
];

fn restricts_to_fixed_values(condition: &Condition) -> bool {
    use Operator::*;
    if condition.if_exists
        || condition.qualifier == Qualifier::ForAllValues
        || !RESTRICTING_KEYS.contains(&condition.key.as_str())
    {
        return false;
    }
    let fixed = |v: &String| !wildcard::has_wildcard(v) && !v.contains("${");
    match condition.operator {
        StringEquals | StringEqualsIgnoreCase | StringLike => condition.values.iter().all(fixed),
        IpAddress => condition.values.iter().all(|v| {
            Cidr::parse(v).is_some_and(|cidr| cidr.prefix() >= if cidr.is_ipv4() { 8 } else { 32 })
        }),
        _ => false,
    }
}

impl Statement {
    fn parse(fields: &Map<String, Value>, kind: PolicyKind<'_>) -> Result<Statement, PolicyError> {
        for name in fields.keys() {
            if !matches!(
                name.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(err(format!("Unknown field {name}")));
            }
        }
        if let Some(sid) = fields.get("Sid") {
            sid.as_str().ok_or_else(syntax)?;
        }
        let effect = match fields.get("Effect") {
            None => return Err(err("Missing required field Effect")),
            Some(Value::String(e)) if e == "Allow" => Effect::Allow,
            Some(Value::String(e)) if e == "Deny" => Effect::Deny,
            Some(Value::String(e)) => return Err(err(format!("Invalid effect: {e}"))),
            Some(_) => return Err(syntax()),
        };
        let principal = match (kind, fields.get("Principal"), fields.get("NotPrincipal")) {
            (_, Some(_), Some(_)) => return Err(syntax()),
            (PolicyKind::Identity, Some(_), None) => {
                return Err(err("Has prohibited field Principal"));
            }
            (PolicyKind::Identity, None, Some(_)) => {
                return Err(err("Has prohibited field NotPrincipal"));
            }
            (PolicyKind::Identity, None, None) => None,
            (PolicyKind::Bucket(_), None, None) => {
                return Err(err("Missing required field Principal"));
            }
            (PolicyKind::Bucket(_), Some(p), None) => Some((parse_principal(p)?, false)),
            (PolicyKind::Bucket(_), None, Some(p)) => Some((parse_principal(p)?, true)),
        };
        let (actions, not_action) = match (fields.get("Action"), fields.get("NotAction")) {
            (Some(_), Some(_)) => return Err(syntax()),
            (None, None) => return Err(err("Missing required field Action")),
            (Some(a), None) => (string_list(a)?, false),
            (None, Some(a)) => (string_list(a)?, true),
        };
        for action in &actions {
            if !valid_action(action, kind) {
                return Err(err("Policy has invalid action"));
            }
        }
        let actions: Vec<String> = actions.iter().map(|a| a.to_ascii_lowercase()).collect();
        let (resources, not_resource) = match (fields.get("Resource"), fields.get("NotResource")) {
            (Some(_), Some(_)) => return Err(syntax()),
            (None, None) => return Err(err("Missing required field Resource")),
            (Some(r), None) => (string_list(r)?, false),
            (None, Some(r)) => (string_list(r)?, true),
        };
        for resource in &resources {
            if !valid_resource(resource, kind) {
                return Err(err("Policy has invalid resource"));
            }
        }
        if let PolicyKind::Bucket(_) = kind
            && !not_action
            && !not_resource
        {
            check_actions_apply(&actions, &resources)?;
        }
        let conditions = match fields.get("Condition") {
            None => Vec::new(),
            Some(block) => condition::parse_block(block).map_err(PolicyError)?,
        };
        Ok(Statement {
            effect,
            principal,
            actions,
            not_action,
            resources,
            not_resource,
            conditions,
        })
    }

    fn applies(&self, request: &AccessRequest<'_>, variables: bool) -> bool {
        if let Some((principals, negated)) = &self.principal
            && principals.includes(&request.caller) == *negated
        {
            return false;
        }
        let action = request.action.to_ascii_lowercase();
        let action_listed = self
            .actions
            .iter()
            .any(|pattern| wildcard::matches(pattern, &action));
        if action_listed == self.not_action {
            return false;
        }
        let resource_listed = self.resources.iter().any(|pattern| {
            if variables && pattern.contains("${") {
                substitute(pattern, request.context)
                    .is_some_and(|p| resource_matches(&p, request.resource))
            } else {
                resource_matches(pattern, request.resource)
            }
        });
        if resource_listed == self.not_resource {
            return false;
        }
        self.conditions.iter().all(|c| {
            if variables && c.values.iter().any(|v| v.contains("${")) {
                substituted(c, request.context).holds(request.context)
            } else {
                c.holds(request.context)
            }
        })
    }
}

/// Matches one `Resource` pattern. `*`, the resource of ListAllMyBuckets, is matched only by a
/// pattern that covers every S3 resource (`*`, `arn:aws:s3:::*`), not by one limited to a
/// bucket.
fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if resource == "*" {
        return wildcard::matches(pattern, S3_ARN_PREFIX) && pattern.ends_with('*');
    }
    wildcard::matches(pattern, resource)
}

/// Replaces `${aws:username}` (and the literal escapes `${*}`, `${?}`, `${$}`); None when a
/// variable has no value in the request, which AWS says matches no resource.
fn substitute(text: &str, context: &Context) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let name = &after[..end];
        match name {
            "*" | "?" | "$" => out.push_str(name),
            _ => {
                let values = context.get(name.trim())?;
                out.push_str(values.first()?);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// A condition with its variables substituted; a value whose variable has no value is
/// dropped, so StringEquals does not match it and StringNotEquals does, as AWS documents.
fn substituted(condition: &Condition, context: &Context) -> Condition {
    let mut copy = condition.clone();
    copy.values = condition
        .values
        .iter()
        .filter_map(|v| substitute(v, context))
        .collect();
    copy
}

/// `"*"`, `{"AWS": "*"}`, `{"AWS": X or [X...]}`, `{"CanonicalUser": id or [id...]}`; X an
/// account id or name, or `arn:aws:iam::X:root`, or `arn:aws:iam::X:user/ANY`.
fn parse_principal(value: &Value) -> Result<Principals, PolicyError> {
    let invalid = || err("Invalid principal in policy");
    let map = match value {
        Value::String(s) if s == "*" => return Ok(Principals::Everyone),
        Value::Object(map) if !map.is_empty() => map,
        _ => return Err(invalid()),
    };
    let mut accounts = Vec::new();
    let mut everyone = false;
    for (kind, ids) in map {
        let ids = string_list(ids).map_err(|_| invalid())?;
        for id in ids {
            match kind.as_str() {
                "AWS" if id == "*" => everyone = true,
                "AWS" => accounts.push(account_of(&id).ok_or_else(invalid)?),
                "CanonicalUser" if valid_name(&id) => accounts.push(id),
                _ => return Err(invalid()),
            }
        }
    }
    if everyone {
        Ok(Principals::Everyone)
    } else {
        Ok(Principals::Accounts(accounts))
    }
}

/// The account id or name an `AWS` principal names.
fn account_of(principal: &str) -> Option<String> {
    let Some(rest) = principal.strip_prefix("arn:aws:iam::") else {
        return valid_name(principal).then(|| principal.to_owned());
    };
    let (account, resource) = rest.split_once(':')?;
    let user_ok = resource == "root"
        || resource
            .strip_prefix("user/")
            .is_some_and(|user| !user.is_empty());
    (valid_name(account) && user_ok).then(|| account.to_owned())
}

/// Account names and canonical ids: no wildcards, separators or spaces.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '='))
}

fn string_list(value: &Value) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(syntax))
            .collect(),
        _ => Err(syntax()),
    }
}

/// `*`, or `service:name` with `*`/`?` allowed in the name; a bucket policy only takes `s3:`.
fn valid_action(action: &str, kind: PolicyKind<'_>) -> bool {
    if action == "*" {
        return true;
    }
    let Some((service, name)) = action.split_once(':') else {
        return false;
    };
    let service_ok = match kind {
        PolicyKind::Bucket(_) => service.eq_ignore_ascii_case("s3"),
        PolicyKind::Identity => {
            !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
        }
    };
    service_ok
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '-' | '_'))
}

/// Identity policies take `*` or any S3 ARN; a bucket policy only ARNs inside its bucket
/// (S3 refuses even `"*"` there).
fn valid_resource(resource: &str, kind: PolicyKind<'_>) -> bool {
    let arn_rest = resource.strip_prefix(S3_ARN_PREFIX);
    match kind {
        PolicyKind::Identity => resource == "*" || arn_rest.is_some_and(|rest| !rest.is_empty()),
        PolicyKind::Bucket(bucket) => arn_rest.is_some_and(|rest| {
            rest == bucket
                || rest
                    .strip_prefix(bucket)
                    .is_some_and(|key| key.starts_with('/'))
        }),
    }
}

/// S3 refuses a bucket-policy statement whose literal actions cannot apply to its resources
/// ("Action does not apply to any resource(s) in statement"): an object action with only the
/// bucket's ARN, a bucket action with only object ARNs, ListAllMyBuckets in any bucket policy.
fn check_actions_apply(actions: &[String], resources: &[String]) -> Result<(), PolicyError> {
    let has_object = resources.iter().any(|r| r.contains('/'));
    let has_bucket = resources.iter().any(|r| !r.contains('/'));
    for action in actions {
        let Some(name) = action.strip_prefix("s3:") else {
            continue;
        };
        let applies = if OBJECT_ACTIONS.contains(&name) {
            has_object
        } else if BUCKET_ACTIONS.contains(&name) {
            has_bucket
        } else {
            // ListAllMyBuckets names no bucket at all; other actions are not classified.
            name != "listallmybuckets"
        };
        if !applies {
            return Err(err("Action does not apply to any resource(s) in statement"));
        }
    }
    Ok(())
}

/// Lowercase names of S3 actions on `arn:aws:s3:::BUCKET/KEY`.
const OBJECT_ACTIONS: &[&str] = &[
    "getobject",
    "getobjectversion",
    "putobject",
    "deleteobject",
    "deleteobjectversion",
    "getobjectacl",
    "getobjectversionacl",
    "putobjectacl",
    "putobjectversionacl",
    "abortmultipartupload",
    "listmultipartuploadparts",
    "getobjecttagging",
    "putobjecttagging",
    "deleteobjecttagging",
    "getobjectattributes",
    "restoreobject",
];

/// Lowercase names of S3 actions on `arn:aws:s3:::BUCKET`.
const BUCKET_ACTIONS: &[&str] = &[
    "createbucket",
    "deletebucket",
    "listbucket",
    "listbucketversions",
    "listbucketmultipartuploads",
    "getbucketlocation",
    "getbucketpolicy",
    "putbucketpolicy",
    "deletebucketpolicy",
    "getbucketpolicystatus",
    "getbucketacl",
    "putbucketacl",
    "getbucketownershipcontrols",
    "putbucketownershipcontrols",
    "getbucketpublicaccessblock",
    "putbucketpublicaccessblock",
    "getbuckettagging",
    "putbuckettagging",
    "getbucketversioning",
    "putbucketversioning",
    "getbucketcors",
    "putbucketcors",
    "getlifecycleconfiguration",
    "putlifecycleconfiguration",
];

#[cfg(test)]
mod tests {
    use super::super::AccountRef;
    use super::*;

    const ALICE_ID: &str = "a11ce00000000000000000000000000000000000000000000000000000000000";
    const BOB_ID: &str = "b0b0000000000000000000000000000000000000000000000000000000000000";

    fn alice() -> Caller<'static> {
        Caller::Account(AccountRef {
            id: ALICE_ID,
            name: "alice",
        })
    }

    fn bob() -> Caller<'static> {
        Caller::Account(AccountRef {
            id: BOB_ID,
            name: "bob",
        })
    }

    fn bucket(doc: &str) -> Result<Policy, PolicyError> {
        Policy::parse(doc, PolicyKind::Bucket("b1"))
    }

    fn identity(doc: &str) -> Result<Policy, PolicyError> {
        Policy::parse(doc, PolicyKind::Identity)
    }

    fn message(result: Result<Policy, PolicyError>) -> String {
        result.expect_err("refused").0
    }

    fn decide(
        policy: &Policy,
        caller: Caller<'_>,
        action: &str,
        resource: &str,
        context: &Context,
    ) -> Decision {
        policy.evaluate(&AccessRequest {
            action,
            resource,
            caller,
            context,
        })
    }

    fn eval(policy: &Policy, action: &str, resource: &str) -> Decision {
        decide(policy, alice(), action, resource, &Context::default())
    }

    fn stmt(body: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#)
    }

    #[test]
    fn document_shape_errors() {
        let first = "Policies must be valid JSON and the first byte must be '{'";
        assert_eq!(message(bucket("")), first);
        assert_eq!(message(bucket("invalid json")), first);
        assert_eq!(message(bucket("[]")), first);
        assert_eq!(message(bucket("{")), "This policy contains invalid Json");
        assert_eq!(message(bucket("{}")), "Missing required field Statement");
        assert_eq!(
            message(bucket(r#"{"Statement":[]}"#)),
            "Could not parse the policy: Statement is empty!"
        );
        assert_eq!(
            message(bucket(r#"{"Version":"2020-01-01","Statement":[]}"#)),
            "The policy must contain a valid version string"
        );
        assert_eq!(
            message(bucket(r#"{"Statement":"x"}"#)),
            "Invalid policy syntax."
        );
        assert_eq!(
            message(bucket(r#"{"Statement":[1]}"#)),
            "Invalid policy syntax."
        );
        assert_eq!(
            message(bucket(r#"{"Foo":1,"Statement":[]}"#)),
            "Unknown field Foo"
        );
        assert_eq!(
            message(bucket(r#"{"Id":5,"Statement":[]}"#)),
            "Invalid policy syntax."
        );
    }

    #[test]
    fn statement_errors() {
        let ok = r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*""#;
        assert!(bucket(&stmt(&format!("{{{ok}}}"))).is_ok());
        let cases = [
            (
                r#"{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#,
                "Missing required field Effect",
            ),
            (
                r#"{"Effect":"allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#,
                "Invalid effect: allow",
            ),
            (
                r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#,
                "Missing required field Principal",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::b1/*"}"#,
                "Missing required field Action",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#,
                "Missing required field Resource",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"GetObject","Resource":"arn:aws:s3:::b1/*"}"#,
                "Policy has invalid action",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"iam:PassRole","Resource":"arn:aws:s3:::b1/*"}"#,
                "Policy has invalid action",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:","Resource":"arn:aws:s3:::b1/*"}"#,
                "Policy has invalid action",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b2/*"}"#,
                "Policy has invalid resource",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1x/*"}"#,
                "Policy has invalid resource",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":["*"]}"#,
                "Policy has invalid resource",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1"}"#,
                "Action does not apply to any resource(s) in statement",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b1/*"}"#,
                "Action does not apply to any resource(s) in statement",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListAllMyBuckets","Resource":"arn:aws:s3:::b1"}"#,
                "Action does not apply to any resource(s) in statement",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","NotAction":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#,
                "Invalid policy syntax.",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":null,"Resource":"arn:aws:s3:::b1/*"}"#,
                "Invalid policy syntax.",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":[],"Resource":"arn:aws:s3:::b1/*"}"#,
                "Invalid policy syntax.",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Bogus":1}"#,
                "Unknown field Bogus",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"Foo":{"aws:SourceIp":"1.2.3.4"}}}"#,
                "Invalid Condition type : Foo",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"IpAddress":{"aws:SourceIp":"1.2.3"}}}"#,
                "Invalid IP address in Conditions",
            ),
        ];
        for (statement, expected) in cases {
            assert_eq!(message(bucket(&stmt(statement))), expected, "{statement}");
        }
        // Mixed object and bucket resources let both kinds of action apply.
        assert!(bucket(&stmt(r#"{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::b1","arn:aws:s3:::b1/*"]}"#)).is_ok());
    }

    #[test]
    fn principal_forms() {
        let with = |principal: &str| {
            bucket(&stmt(&format!(
                r#"{{"Effect":"Allow","Principal":{principal},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}}"#
            )))
        };
        let anonymous = Caller::Anonymous;
        let ctx = Context::default();
        let object = "arn:aws:s3:::b1/k";
        for everyone in [r#""*""#, r#"{"AWS":"*"}"#, r#"{"AWS":["alice","*"]}"#] {
            let p = with(everyone).expect(everyone);
            assert_eq!(
                decide(&p, anonymous.clone(), "s3:GetObject", object, &ctx),
                Decision::Allow,
                "{everyone}"
            );
            assert_eq!(
                decide(&p, bob(), "s3:GetObject", object, &ctx),
                Decision::Allow,
                "{everyone}"
            );
            assert!(p.principals().is_empty());
        }
        for alice_only in [
            r#"{"AWS":"alice"}"#,
            &format!(r#"{{"AWS":"{ALICE_ID}"}}"#),
            r#"{"AWS":["arn:aws:iam::alice:root"]}"#,
            &format!(r#"{{"AWS":"arn:aws:iam::{ALICE_ID}:user/backup"}}"#),
            &format!(r#"{{"CanonicalUser":"{ALICE_ID}"}}"#),
        ] {
            let p = with(alice_only).expect(alice_only);
            assert_eq!(
                decide(&p, alice(), "s3:GetObject", object, &ctx),
                Decision::Allow,
                "{alice_only}"
            );
            assert_eq!(
                decide(&p, bob(), "s3:GetObject", object, &ctx),
                Decision::NotApplicable,
                "{alice_only}"
            );
            assert_eq!(
                decide(&p, anonymous.clone(), "s3:GetObject", object, &ctx),
                Decision::NotApplicable,
                "{alice_only}"
            );
            assert_eq!(p.principals().len(), 1);
        }
        let both = with(r#"{"AWS":["alice","arn:aws:iam::bob:root","alice"]}"#).expect("two");
        assert_eq!(both.principals(), ["alice", "bob"]);
        for invalid in [
            r#""alice""#,
            r#"{}"#,
            r#"{"AWS":""}"#,
            r#"{"AWS":"al*ce"}"#,
            r#"{"AWS":"arn:aws:iam::alice:role/x"}"#,
            r#"{"AWS":"arn:aws:iam::alice:user/"}"#,
            r#"{"AWS":"arn:aws:iam:::root"}"#,
            r#"{"Service":"s3.amazonaws.com"}"#,
            r#"{"Federated":"x"}"#,
            r#"{"AWS":5}"#,
            r#"["*"]"#,
        ] {
            assert_eq!(
                message(with(invalid)),
                "Invalid principal in policy",
                "{invalid}"
            );
        }
    }

    #[test]
    fn not_principal() {
        let p = bucket(&stmt(r#"{"Effect":"Deny","NotPrincipal":{"AWS":"alice"},"Action":"s3:*","Resource":"arn:aws:s3:::b1/*"}"#)).expect("valid");
        let ctx = Context::default();
        assert_eq!(
            decide(&p, alice(), "s3:GetObject", "arn:aws:s3:::b1/k", &ctx),
            Decision::NotApplicable
        );
        assert_eq!(
            decide(&p, bob(), "s3:GetObject", "arn:aws:s3:::b1/k", &ctx),
            Decision::Deny
        );
        assert_eq!(
            decide(
                &p,
                Caller::Anonymous,
                "s3:GetObject",
                "arn:aws:s3:::b1/k",
                &ctx
            ),
            Decision::Deny
        );
        assert_eq!(p.principals(), ["alice"]);
    }

    #[test]
    fn identity_policies_refuse_principal() {
        let body = r#""Effect":"Allow","Action":"s3:*","Resource":"*""#;
        assert!(identity(&stmt(&format!("{{{body}}}"))).is_ok());
        assert_eq!(
            message(identity(&stmt(&format!(r#"{{{body},"Principal":"*"}}"#)))),
            "Has prohibited field Principal"
        );
        assert_eq!(
            message(identity(&stmt(&format!(
                r#"{{{body},"NotPrincipal":"*"}}"#
            )))),
            "Has prohibited field NotPrincipal"
        );
        // Identity documents may name other services and any S3 ARN.
        assert!(
            identity(&stmt(
                r#"{"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:s3:::b2/*"}"#
            ))
            .is_ok()
        );
        assert_eq!(
            message(identity(&stmt(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:iam::x:root"}"#
            ))),
            "Policy has invalid resource"
        );
        assert_eq!(
            message(identity(&stmt(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::"}"#
            ))),
            "Policy has invalid resource"
        );
    }

    #[test]
    fn statement_may_be_a_single_object() {
        let p = identity(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#).expect("valid");
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::x/y"),
            Decision::Allow
        );
        // Version defaults to 2008-10-17; Id and Sid are accepted.
        assert!(identity(r#"{"Id":"p1","Statement":[{"Sid":"one two","Effect":"Allow","Action":"*","Resource":"*"}]}"#).is_ok());
    }

    #[test]
    fn action_wildcards_case_insensitive() {
        let p = identity(&stmt(
            r#"{"Effect":"Allow","Action":["s3:Get*","S3:LISTBUCKET"],"Resource":"*"}"#,
        ))
        .expect("valid");
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert_eq!(
            eval(&p, "S3:getobjectacl", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert_eq!(eval(&p, "s3:ListBucket", "arn:aws:s3:::b"), Decision::Allow);
        assert_eq!(
            eval(&p, "s3:PutObject", "arn:aws:s3:::b/k"),
            Decision::NotApplicable
        );
        let all =
            identity(&stmt(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#)).expect("valid");
        assert_eq!(
            eval(&all, "s3:DeleteBucket", "arn:aws:s3:::b"),
            Decision::Allow
        );
        let s3 = identity(&stmt(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
        ))
        .expect("valid");
        assert_eq!(
            eval(&s3, "s3:DeleteBucket", "arn:aws:s3:::b"),
            Decision::Allow
        );
        let q = identity(&stmt(
            r#"{"Effect":"Allow","Action":"s3:?etObject","Resource":"*"}"#,
        ))
        .expect("valid");
        assert_eq!(
            eval(&q, "s3:GetObject", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert_eq!(
            eval(&q, "s3:PutObject", "arn:aws:s3:::b/k"),
            Decision::NotApplicable
        );
    }

    #[test]
    fn resource_wildcards() {
        let p = identity(&stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::b1","arn:aws:s3:::b1/home/*","arn:aws:s3:::b2/file-?.txt"]}"#)).expect("valid");
        assert_eq!(
            eval(&p, "s3:ListBucket", "arn:aws:s3:::b1"),
            Decision::Allow
        );
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::b1/home/a/b"),
            Decision::Allow
        );
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::b1/other"),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::b2/file-1.txt"),
            Decision::Allow
        );
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::b2/file-10.txt"),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&p, "s3:ListBucket", "arn:aws:s3:::b10"),
            Decision::NotApplicable
        );
        // Object keys compare with case.
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::b1/HOME/a"),
            Decision::NotApplicable
        );
        // ListAllMyBuckets (resource `*`) needs a pattern covering all of S3.
        assert_eq!(
            eval(&p, "s3:ListAllMyBuckets", "*"),
            Decision::NotApplicable
        );
        let all = identity(&stmt(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::*"}"#,
        ))
        .expect("valid");
        assert_eq!(eval(&all, "s3:ListAllMyBuckets", "*"), Decision::Allow);
        let star = identity(&stmt(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
        ))
        .expect("valid");
        assert_eq!(eval(&star, "s3:ListAllMyBuckets", "*"), Decision::Allow);
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = identity(&stmt(
            r#"{"Effect":"Allow","NotAction":["s3:Delete*","s3:Put*"],"Resource":"*"}"#,
        ))
        .expect("valid");
        assert_eq!(
            eval(&p, "s3:GetObject", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert_eq!(
            eval(&p, "s3:DeleteObject", "arn:aws:s3:::b/k"),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&p, "s3:PutObject", "arn:aws:s3:::b/k"),
            Decision::NotApplicable
        );
        let q = identity(&stmt(r#"{"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::b1","arn:aws:s3:::b1/*"]}"#)).expect("valid");
        assert_eq!(
            eval(&q, "s3:GetObject", "arn:aws:s3:::b1/k"),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&q, "s3:GetObject", "arn:aws:s3:::b2/k"),
            Decision::Deny
        );
        // NotAction in a bucket policy skips the action/resource pairing check.
        assert!(bucket(&stmt(r#"{"Effect":"Deny","Principal":"*","NotAction":"s3:GetObject","Resource":"arn:aws:s3:::b1"}"#)).is_ok());
    }

    #[test]
    fn deny_beats_allow_in_any_order() {
        for order in [
            r#"{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"},{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}"#,
        ] {
            let p = identity(&stmt(order)).expect("valid");
            assert_eq!(
                eval(&p, "s3:DeleteObject", "arn:aws:s3:::b/k"),
                Decision::Deny
            );
            assert_eq!(
                eval(&p, "s3:GetObject", "arn:aws:s3:::b/k"),
                Decision::Allow
            );
        }
    }

    #[test]
    fn conditions_gate_statements() {
        let p = bucket(&stmt(r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b1","Condition":{"StringLike":{"s3:prefix":"public/*"},"Bool":{"aws:SecureTransport":"true"}}}"#)).expect("valid");
        let mut ctx = Context::default();
        ctx.set("s3:prefix", "public/x");
        ctx.set("aws:SecureTransport", "true");
        assert_eq!(
            decide(
                &p,
                Caller::Anonymous,
                "s3:ListBucket",
                "arn:aws:s3:::b1",
                &ctx
            ),
            Decision::Allow
        );
        ctx.set("aws:SecureTransport", "false");
        assert_eq!(
            decide(
                &p,
                Caller::Anonymous,
                "s3:ListBucket",
                "arn:aws:s3:::b1",
                &ctx
            ),
            Decision::NotApplicable
        );
        let deny_plain = bucket(&stmt(r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b1","arn:aws:s3:::b1/*"],"Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#)).expect("valid");
        let mut inside = Context::default();
        inside.set("aws:SourceIp", "10.1.2.3");
        let mut outside = Context::default();
        outside.set("aws:SourceIp", "192.0.2.1");
        assert_eq!(
            decide(
                &deny_plain,
                bob(),
                "s3:GetObject",
                "arn:aws:s3:::b1/k",
                &inside
            ),
            Decision::NotApplicable
        );
        assert_eq!(
            decide(
                &deny_plain,
                bob(),
                "s3:GetObject",
                "arn:aws:s3:::b1/k",
                &outside
            ),
            Decision::Deny
        );
    }

    #[test]
    fn policy_variables() {
        let doc = stmt(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*","Condition":{"StringLike":{"s3:prefix":"${aws:username}/*"}}}"#,
        );
        let p = identity(&doc).expect("valid");
        let mut ctx = Context::default();
        ctx.set("aws:username", "alice");
        ctx.set("s3:prefix", "alice/docs");
        assert_eq!(
            decide(
                &p,
                alice(),
                "s3:GetObject",
                "arn:aws:s3:::home/alice/x",
                &ctx
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(&p, alice(), "s3:GetObject", "arn:aws:s3:::home/bob/x", &ctx),
            Decision::NotApplicable
        );
        ctx.set("s3:prefix", "bob/docs");
        assert_eq!(
            decide(
                &p,
                alice(),
                "s3:GetObject",
                "arn:aws:s3:::home/alice/x",
                &ctx
            ),
            Decision::NotApplicable
        );
        // No value: the resource matches nothing.
        let mut anonymous = Context::default();
        anonymous.set("s3:prefix", "/x");
        assert_eq!(
            decide(
                &p,
                Caller::Anonymous,
                "s3:GetObject",
                "arn:aws:s3:::home//x",
                &anonymous
            ),
            Decision::NotApplicable
        );
        // Under 2008-10-17 the variable is literal text.
        let old = identity(&doc.replace("2012-10-17", "2008-10-17")).expect("valid");
        assert_eq!(
            decide(
                &old,
                alice(),
                "s3:GetObject",
                "arn:aws:s3:::home/alice/x",
                &ctx
            ),
            Decision::NotApplicable
        );
    }

    #[test]
    fn size_limit_for_bucket_policies() {
        let resources: Vec<String> = (0..1200)
            .map(|i| format!("\"arn:aws:s3:::b1/k{i:05}\""))
            .collect();
        let doc = stmt(&format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":[{}]}}"#,
            resources.join(",")
        ));
        assert!(doc.len() > MAX_BUCKET_POLICY_BYTES);
        assert_eq!(
            message(bucket(&doc)),
            "Normalized policy document exceeds the maximum allowed size of 20480 bytes"
        );
        assert!(identity(&doc.replace(r#""Principal":"*","#, "")).is_ok());
        // Whitespace does not count.
        let small = stmt(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#,
        );
        let padded = small.replace(',', &format!(",{}", " ".repeat(6000)));
        assert!(padded.len() > MAX_BUCKET_POLICY_BYTES);
        assert!(bucket(&padded).is_ok());
    }

    #[test]
    fn public_policies() {
        let public = |statement: &str| bucket(&stmt(statement)).expect(statement).is_public();
        assert!(public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#
        ));
        assert!(public(
            r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#
        ));
        assert!(public(
            r#"{"Effect":"Allow","NotPrincipal":{"AWS":"bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#
        ));
        assert!(!public(
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#
        ));
        assert!(!public(
            r#"{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}"#
        ));
        assert!(!public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#
        ));
        assert!(public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/1"}}}"#
        ));
        assert!(public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#
        ));
        assert!(!public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"StringEquals":{"aws:SourceAccount":"alice"}}}"#
        ));
        assert!(public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"StringLike":{"aws:SourceAccount":"a*"}}}"#
        ));
        assert!(public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"StringEqualsIfExists":{"aws:SourceAccount":"alice"}}}"#
        ));
        assert!(public(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*","Condition":{"StringEquals":{"s3:prefix":"x"}}}"#
        ));
    }

    #[test]
    fn canned_policies() {
        assert!(Policy::canned("admin").is_none());
        let readonly = identity(Policy::canned("readonly").expect("readonly")).expect("valid");
        let writeonly = identity(Policy::canned("writeonly").expect("writeonly")).expect("valid");
        let readwrite = identity(Policy::canned("readwrite").expect("readwrite")).expect("valid");
        let object = "arn:aws:s3:::b/k";
        let bucket_arn = "arn:aws:s3:::b";
        let table = [
            (
                "s3:GetObject",
                object,
                Decision::Allow,
                Decision::NotApplicable,
            ),
            (
                "s3:ListBucket",
                bucket_arn,
                Decision::Allow,
                Decision::NotApplicable,
            ),
            (
                "s3:GetBucketLocation",
                bucket_arn,
                Decision::Allow,
                Decision::Allow,
            ),
            (
                "s3:ListAllMyBuckets",
                "*",
                Decision::Allow,
                Decision::NotApplicable,
            ),
            (
                "s3:PutObject",
                object,
                Decision::NotApplicable,
                Decision::Allow,
            ),
            (
                "s3:AbortMultipartUpload",
                object,
                Decision::NotApplicable,
                Decision::Allow,
            ),
            (
                "s3:ListMultipartUploadParts",
                object,
                Decision::NotApplicable,
                Decision::Allow,
            ),
            (
                "s3:ListBucketMultipartUploads",
                bucket_arn,
                Decision::NotApplicable,
                Decision::Allow,
            ),
            (
                "s3:DeleteObject",
                object,
                Decision::NotApplicable,
                Decision::NotApplicable,
            ),
            (
                "s3:DeleteBucket",
                bucket_arn,
                Decision::NotApplicable,
                Decision::NotApplicable,
            ),
            (
                "s3:PutBucketPolicy",
                bucket_arn,
                Decision::NotApplicable,
                Decision::NotApplicable,
            ),
        ];
        for (action, resource, read, write) in table {
            assert_eq!(eval(&readonly, action, resource), read, "readonly {action}");
            assert_eq!(
                eval(&writeonly, action, resource),
                write,
                "writeonly {action}"
            );
            assert_eq!(
                eval(&readwrite, action, resource),
                Decision::Allow,
                "readwrite {action}"
            );
        }
    }
}
