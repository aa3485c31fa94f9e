//! Access control lists: an owner and up to 100 grants, from a canned ACL (`x-amz-acl`), from
//! `x-amz-grant-*` headers or from an AccessControlPolicy XML body; stored as JSON in the bucket's
//! or object's row.
//!
//! Canned ACLs are AWS's (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html#canned-acl>).
//! The XML parser builds a small element tree like `s3/xml.rs` (DTDs refused, depth capped,
//! namespaces and prefixes ignored) but also keeps attributes, for the grantee's `xsi:type`.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};

use super::Caller;
use crate::s3::xml::{S3_XMLNS, escape_text};

/// AWS: "An ACL can have up to 100 grants."
pub const MAX_GRANTS: usize = 100;

pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS_URI: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Nesting of an AccessControlPolicy is four levels; the cap keeps a hostile body shallow.
const MAX_DEPTH: usize = 16;

const MALFORMED_ACL: &str = "The XML you provided was not well-formed or did not validate \
                             against our published schema";

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

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::Read,
        Permission::Write,
        Permission::ReadAcp,
        Permission::WriteAcp,
        Permission::FullControl,
    ];

    /// The name on the wire: `READ`, `WRITE`, `READ_ACP`, `WRITE_ACP`, `FULL_CONTROL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl AclError {
    fn new(code: &'static str, message: impl Into<String>) -> AclError {
        AclError {
            code,
            message: message.into(),
        }
    }

    fn malformed() -> AclError {
        AclError::new("MalformedACLError", MALFORMED_ACL)
    }

    fn invalid_id() -> AclError {
        AclError::new("InvalidArgument", "Invalid id")
    }

    fn email() -> AclError {
        // Cairn's accounts have no e-mail addresses, so none can ever be resolved.
        AclError::new(
            "UnresolvableGrantByEmailAddress",
            "The e-mail address you provided does not match any account on record.",
        )
    }
}

fn group(uri: &str) -> Result<Grantee, AclError> {
    match uri {
        ALL_USERS_URI => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
        _ => Err(AclError::new("InvalidArgument", "Invalid group uri")),
    }
}

impl Acl {
    /// `private`: the owner with FULL_CONTROL.
    pub fn private(owner: &str) -> Acl {
        Acl {
            owner: owner.to_owned(),
            grants: vec![Grant {
                grantee: Grantee::CanonicalUser(owner.to_owned()),
                permission: Permission::FullControl,
            }],
        }
    }

    /// A canned ACL (`private`, `public-read`, `public-read-write`, `authenticated-read`,
    /// `bucket-owner-read`, `bucket-owner-full-control`, `aws-exec-read`, `log-delivery-write`).
    ///
    /// `bucket-owner-*` add the bucket owner's grant only when the writer is someone else (AWS:
    /// otherwise they are `private`). `aws-exec-read` and `log-delivery-write` add grants to
    /// AWS's EC2 and log-delivery services, which Cairn does not have, so they leave the
    /// owner's FULL_CONTROL alone.
    pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> Result<Acl, AclError> {
        let mut acl = Acl::private(owner);
        let mut add = |grantee: Grantee, permission: Permission| {
            acl.grants.push(Grant {
                grantee,
                permission,
            })
        };
        match name {
            "private" | "aws-exec-read" | "log-delivery-write" => {}
            "public-read" => add(Grantee::AllUsers, Permission::Read),
            "public-read-write" => {
                add(Grantee::AllUsers, Permission::Read);
                add(Grantee::AllUsers, Permission::Write);
            }
            "authenticated-read" => add(Grantee::AuthenticatedUsers, Permission::Read),
            "bucket-owner-read" if bucket_owner != owner => add(
                Grantee::CanonicalUser(bucket_owner.to_owned()),
                Permission::Read,
            ),
            "bucket-owner-full-control" if bucket_owner != owner => add(
                Grantee::CanonicalUser(bucket_owner.to_owned()),
                Permission::FullControl,
            ),
            "bucket-owner-read" | "bucket-owner-full-control" => {}
            _ => return Err(AclError::new("InvalidArgument", "Invalid canned ACL")),
        }
        Ok(acl)
    }

    /// From `x-amz-grant-read`, `-write`, `-read-acp`, `-write-acp`, `-full-control` header
    /// values (`id="..."`, `uri="http://acs.amazonaws.com/groups/global/AllUsers"`, comma
    /// separated). `known_account` says whether a canonical id exists.
    ///
    /// The ACL holds exactly the grants named, as on AWS (the owner keeps its rights as owner).
    pub fn from_grant_headers(
        owner: &str,
        headers: &[(Permission, &str)],
        known_account: &dyn Fn(&str) -> bool,
    ) -> Result<Acl, AclError> {
        let unrecognized = || AclError::new("InvalidArgument", "Argument format not recognized");
        let mut grants = Vec::new();
        for &(permission, value) in headers {
            for item in split_outside_quotes(value) {
                let (kind, target) = item.split_once('=').ok_or_else(unrecognized)?;
                let target = target.trim();
                let target = target
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or(target);
                let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                    "id" if known_account(target) => Grantee::CanonicalUser(target.to_owned()),
                    "id" => return Err(AclError::invalid_id()),
                    "uri" => group(target)?,
                    "emailaddress" => return Err(AclError::email()),
                    _ => return Err(unrecognized()),
                };
                grants.push(Grant {
                    grantee,
                    permission,
                });
            }
        }
        if grants.len() > MAX_GRANTS {
            return Err(AclError::new(
                "InvalidArgument",
                format!("An ACL can have at most {MAX_GRANTS} grants"),
            ));
        }
        Ok(Acl {
            owner: owner.to_owned(),
            grants,
        })
    }

    /// An AccessControlPolicy XML body (PutBucketAcl, PutObjectAcl).
    ///
    /// `Owner/ID` is required and returned as the ACL's owner: AWS answers AccessDenied when it
    /// is not the resource's current owner, which is the caller's check, since only it knows
    /// the owner. Anything the schema does not allow is MalformedACLError; an unknown canonical
    /// id InvalidArgument "Invalid id"; an e-mail grantee UnresolvableGrantByEmailAddress.
    pub fn parse_xml(body: &[u8], known_account: &dyn Fn(&str) -> bool) -> Result<Acl, AclError> {
        let root = parse_tree(body).ok_or_else(AclError::malformed)?;
        if root.name != "AccessControlPolicy" {
            return Err(AclError::malformed());
        }
        let owner = root
            .only_child("Owner")?
            .ok_or_else(AclError::malformed)?
            .text_of("ID")?
            .ok_or_else(AclError::malformed)?
            .trim()
            .to_owned();
        if owner.is_empty() {
            return Err(AclError::malformed());
        }
        let list = root
            .only_child("AccessControlList")?
            .ok_or_else(AclError::malformed)?;
        let mut grants = Vec::new();
        for grant in list.children.iter().filter(|c| c.name == "Grant") {
            if grants.len() == MAX_GRANTS {
                return Err(AclError::malformed());
            }
            let grantee = grant
                .only_child("Grantee")?
                .ok_or_else(AclError::malformed)?;
            let permission = grant
                .text_of("Permission")?
                .and_then(|p| Permission::parse(p.trim()))
                .ok_or_else(AclError::malformed)?;
            grants.push(Grant {
                grantee: parse_grantee(grantee, known_account)?,
                permission,
            });
        }
        Ok(Acl { owner, grants })
    }

    /// The AccessControlPolicy XML answered by GetBucketAcl and GetObjectAcl;
    /// `display_name` gives an account's display name from its canonical id.
    pub fn to_xml(&self, display_name: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::with_capacity(256 + 300 * self.grants.len());
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str("<AccessControlPolicy xmlns=\"");
        out.push_str(S3_XMLNS);
        out.push_str("\"><Owner>");
        push_account(&mut out, &self.owner, display_name);
        out.push_str("</Owner><AccessControlList>");
        for grant in &self.grants {
            out.push_str(
                "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"",
            );
            match &grant.grantee {
                Grantee::CanonicalUser(id) => {
                    out.push_str("CanonicalUser\">");
                    push_account(&mut out, id, display_name);
                }
                Grantee::AllUsers | Grantee::AuthenticatedUsers => {
                    out.push_str("Group\"><URI>");
                    out.push_str(if grant.grantee == Grantee::AllUsers {
                        ALL_USERS_URI
                    } else {
                        AUTHENTICATED_USERS_URI
                    });
                    out.push_str("</URI>");
                }
            }
            out.push_str("</Grantee><Permission>");
            out.push_str(grant.permission.as_str());
            out.push_str("</Permission></Grant>");
        }
        out.push_str("</AccessControlList></AccessControlPolicy>");
        out
    }

    /// Whether the ACL grants `permission` (FULL_CONTROL grants all) to `caller`;
    /// `ignore_public` drops AllUsers and AuthenticatedUsers grants (IgnorePublicAcls).
    pub fn allows(&self, caller: &Caller<'_>, permission: Permission, ignore_public: bool) -> bool {
        self.grants.iter().any(|grant| {
            let grants_permission =
                grant.permission == permission || grant.permission == Permission::FullControl;
            let names_caller = match (&grant.grantee, caller) {
                (Grantee::CanonicalUser(id), Caller::Account(account)) => id == account.id,
                (Grantee::CanonicalUser(_), Caller::Anonymous) => false,
                (Grantee::AllUsers, _) => !ignore_public,
                (Grantee::AuthenticatedUsers, Caller::Account(_)) => !ignore_public,
                (Grantee::AuthenticatedUsers, Caller::Anonymous) => false,
            };
            grants_permission && names_caller
        })
    }

    /// Whether any grant goes to AllUsers or AuthenticatedUsers (BlockPublicAcls).
    pub fn is_public(&self) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
    }
}

fn push_account(out: &mut String, id: &str, display_name: &dyn Fn(&str) -> Option<String>) {
    out.push_str("<ID>");
    out.push_str(&escape_text(id));
    out.push_str("</ID>");
    if let Some(name) = display_name(id) {
        out.push_str("<DisplayName>");
        out.push_str(&escape_text(&name));
        out.push_str("</DisplayName>");
    }
}

/// A grantee by its `xsi:type`, or, when the attribute is missing, by the element it holds.
fn parse_grantee(
    grantee: &Element,
    known_account: &dyn Fn(&str) -> bool,
) -> Result<Grantee, AclError> {
    let declared = grantee
        .attributes
        .iter()
        .find(|(name, _)| name == "type")
        .map(|(_, value)| value.as_str());
    let kind = match declared {
        Some(kind) => kind,
        None if grantee.text_of("ID")?.is_some() => "CanonicalUser",
        None if grantee.text_of("URI")?.is_some() => "Group",
        None if grantee.text_of("EmailAddress")?.is_some() => "AmazonCustomerByEmail",
        None => return Err(AclError::malformed()),
    };
    match kind {
        "CanonicalUser" => {
            let id = grantee
                .text_of("ID")?
                .ok_or_else(AclError::malformed)?
                .trim();
            if known_account(id) {
                Ok(Grantee::CanonicalUser(id.to_owned()))
            } else {
                Err(AclError::invalid_id())
            }
        }
        "Group" => group(
            grantee
                .text_of("URI")?
                .ok_or_else(AclError::malformed)?
                .trim(),
        ),
        "AmazonCustomerByEmail" => Err(AclError::email()),
        _ => Err(AclError::malformed()),
    }
}

/// Splits a grant header on the commas that are not inside double quotes.
fn split_outside_quotes(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items
}

/// One element: local name, attributes by local name, text, children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn open(start: &BytesStart<'_>) -> Option<Element> {
        let mut attributes = Vec::new();
        for attribute in start.attributes() {
            let attribute = attribute.ok()?;
            // The values that matter (`CanonicalUser`, `Group`) hold nothing to unescape.
            attributes.push((
                attribute.key.local_name().into_inner().to_owned(),
                attribute.value.into_owned(),
            ));
        }
        Some(Element {
            name: start.local_name().into_inner().to_owned(),
            attributes,
            ..Element::default()
        })
    }

    /// The only child `name`; repeated is malformed.
    fn only_child(&self, name: &str) -> Result<Option<&Element>, AclError> {
        let mut matching = self.children.iter().filter(|c| c.name == name);
        let first = matching.next();
        if matching.next().is_some() {
            return Err(AclError::malformed());
        }
        Ok(first)
    }

    /// The text of the only child `name`, which must hold no elements.
    fn text_of(&self, name: &str) -> Result<Option<&str>, AclError> {
        match self.only_child(name)? {
            Some(child) if !child.children.is_empty() => Err(AclError::malformed()),
            Some(child) => Ok(Some(&child.text)),
            None => Ok(None),
        }
    }
}

/// The whole document as a tree, or None when it is not well-formed XML.
fn parse_tree(body: &[u8]) -> Option<Element> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains('\0') {
        return None;
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_comments = true;
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        match reader.read_event().ok()? {
            Event::Eof => break,
            Event::DocType(_) => return None,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Start(start) => {
                if root.is_some() || open.len() == MAX_DEPTH {
                    return None;
                }
                open.push(Element::open(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return None;
                }
                attach(&mut open, &mut root, Element::open(&start)?);
            }
            Event::End(_) => {
                let element = open.pop()?;
                attach(&mut open, &mut root, element);
            }
            Event::Text(raw) => {
                let content = raw.xml10_content();
                match open.last_mut() {
                    Some(parent) => parent.text.push_str(&content),
                    None if content.chars().all(|c| c.is_ascii_whitespace()) => {}
                    None => return None,
                }
            }
            Event::CData(raw) => open.last_mut()?.text.push_str(&raw.xml10_content()),
            Event::GeneralRef(reference) => {
                let parent = open.last_mut()?;
                match reference.resolve_char_ref().ok()? {
                    Some(c) => parent.text.push(c),
                    None => parent.text.push_str(resolve_predefined_entity(&reference)?),
                }
            }
        }
    }
    if !open.is_empty() {
        return None;
    }
    root
}

fn attach(open: &mut [Element], root: &mut Option<Element>, element: Element) {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

#[cfg(test)]
mod tests {
    use super::super::AccountRef;
    use super::*;

    const OWNER: &str = "0000000000000000000000000000000000000000000000000000000000000001";
    const OTHER: &str = "0000000000000000000000000000000000000000000000000000000000000002";

    fn account(id: &str) -> Caller<'_> {
        Caller::Account(AccountRef { id, name: "x" })
    }

    fn known(id: &str) -> bool {
        id == OWNER || id == OTHER
    }

    fn grants(acl: &Acl) -> Vec<(Grantee, Permission)> {
        acl.grants
            .iter()
            .map(|g| (g.grantee.clone(), g.permission))
            .collect()
    }

    fn user(id: &str) -> Grantee {
        Grantee::CanonicalUser(id.to_owned())
    }

    #[test]
    fn every_canned_acl() {
        use Permission::*;
        let owner_fc = (user(OWNER), FullControl);
        let cases: [(&str, Vec<(Grantee, Permission)>); 8] = [
            ("private", vec![owner_fc.clone()]),
            (
                "public-read",
                vec![owner_fc.clone(), (Grantee::AllUsers, Read)],
            ),
            (
                "public-read-write",
                vec![
                    owner_fc.clone(),
                    (Grantee::AllUsers, Read),
                    (Grantee::AllUsers, Write),
                ],
            ),
            (
                "authenticated-read",
                vec![owner_fc.clone(), (Grantee::AuthenticatedUsers, Read)],
            ),
            (
                "bucket-owner-read",
                vec![owner_fc.clone(), (user(OTHER), Read)],
            ),
            (
                "bucket-owner-full-control",
                vec![owner_fc.clone(), (user(OTHER), FullControl)],
            ),
            ("aws-exec-read", vec![owner_fc.clone()]),
            ("log-delivery-write", vec![owner_fc.clone()]),
        ];
        for (name, expected) in cases {
            let acl = Acl::canned(name, OWNER, OTHER).expect(name);
            assert_eq!(acl.owner, OWNER);
            assert_eq!(grants(&acl), expected, "{name}");
        }
        // Written by the bucket owner, the bucket-owner ACLs are private.
        for name in ["bucket-owner-read", "bucket-owner-full-control"] {
            assert_eq!(
                Acl::canned(name, OWNER, OWNER).expect(name),
                Acl::private(OWNER)
            );
        }
        let refused = Acl::canned("public", OWNER, OWNER).unwrap_err();
        assert_eq!(refused.code, "InvalidArgument");
    }

    #[test]
    fn allows_and_public() {
        let private = Acl::private(OWNER);
        assert!(private.allows(&account(OWNER), Permission::Read, false));
        assert!(private.allows(&account(OWNER), Permission::WriteAcp, true));
        assert!(!private.allows(&account(OTHER), Permission::Read, false));
        assert!(!private.allows(&Caller::Anonymous, Permission::Read, false));
        assert!(!private.is_public());

        let public = Acl::canned("public-read", OWNER, OWNER).expect("canned");
        assert!(public.is_public());
        assert!(public.allows(&Caller::Anonymous, Permission::Read, false));
        assert!(public.allows(&account(OTHER), Permission::Read, false));
        assert!(!public.allows(&Caller::Anonymous, Permission::Write, false));
        assert!(!public.allows(&Caller::Anonymous, Permission::Read, true));
        assert!(public.allows(&account(OWNER), Permission::Read, true));

        let authenticated = Acl::canned("authenticated-read", OWNER, OWNER).expect("canned");
        assert!(authenticated.is_public());
        assert!(authenticated.allows(&account(OTHER), Permission::Read, false));
        assert!(!authenticated.allows(&account(OTHER), Permission::Read, true));
        assert!(!authenticated.allows(&Caller::Anonymous, Permission::Read, false));

        let shared = Acl::canned("bucket-owner-read", OWNER, OTHER).expect("canned");
        assert!(shared.allows(&account(OTHER), Permission::Read, true));
        assert!(!shared.allows(&account(OTHER), Permission::Write, true));
        assert!(!shared.is_public());
    }

    #[test]
    fn grant_headers() {
        let acl = Acl::from_grant_headers(
            OWNER,
            &[
                (Permission::Read, "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\", id=\"0000000000000000000000000000000000000000000000000000000000000002\""),
                (Permission::FullControl, &format!("id={OWNER}")),
                (Permission::WriteAcp, &format!("ID = \"{OTHER}\"")),
            ],
            &known,
        )
        .expect("valid");
        assert_eq!(
            grants(&acl),
            [
                (Grantee::AllUsers, Permission::Read),
                (user(OTHER), Permission::Read),
                (user(OWNER), Permission::FullControl),
                (user(OTHER), Permission::WriteAcp),
            ]
        );
        let auth = Acl::from_grant_headers(
            OWNER,
            &[(
                Permission::Read,
                "uri=http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
            )],
            &known,
        )
        .expect("valid");
        assert_eq!(
            grants(&auth),
            [(Grantee::AuthenticatedUsers, Permission::Read)]
        );

        let error = |value: &str| {
            Acl::from_grant_headers(OWNER, &[(Permission::Read, value)], &known).unwrap_err()
        };
        assert_eq!(error("id=\"ffff\""), AclError::invalid_id());
        assert_eq!(
            error("emailAddress=\"a@example.com\"").code,
            "UnresolvableGrantByEmailAddress"
        );
        assert_eq!(
            error("uri=\"http://acs.amazonaws.com/groups/s3/LogDelivery\"").message,
            "Invalid group uri"
        );
        assert_eq!(error("nonsense").code, "InvalidArgument");
        assert_eq!(error("name=\"x\"").code, "InvalidArgument");
        assert_eq!(error("").code, "InvalidArgument");
        let many = vec![format!("id={OWNER}"); MAX_GRANTS + 1].join(",");
        assert_eq!(error(&many).code, "InvalidArgument");
    }

    fn policy_body(owner: &str, grants: &str) -> String {
        format!(
            "<AccessControlPolicy xmlns=\"{S3_XMLNS}\"><Owner><ID>{owner}</ID></Owner>\
             <AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
        )
    }

    #[test]
    fn xml_parse_forms() {
        let body = policy_body(
            OWNER,
            &format!(
                "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{OWNER}</ID><DisplayName>me</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>\
                 <Grant><Grantee xmlns:x=\"http://www.w3.org/2001/XMLSchema-instance\" x:type=\"Group\"><URI>{ALL_USERS_URI}</URI></Grantee><Permission>READ</Permission></Grant>\
                 <Grant><Grantee><URI>{AUTHENTICATED_USERS_URI}</URI></Grantee><Permission>READ_ACP</Permission></Grant>\
                 <Grant><Grantee><ID> {OTHER} </ID></Grantee><Permission>WRITE</Permission></Grant>"
            ),
        );
        let acl = Acl::parse_xml(body.as_bytes(), &known).expect("valid");
        assert_eq!(acl.owner, OWNER);
        assert_eq!(
            grants(&acl),
            [
                (user(OWNER), Permission::FullControl),
                (Grantee::AllUsers, Permission::Read),
                (Grantee::AuthenticatedUsers, Permission::ReadAcp),
                (user(OTHER), Permission::Write),
            ]
        );
        // Prefixed S3 elements and an empty list.
        let prefixed = format!(
            "<?xml version=\"1.0\"?><s3:AccessControlPolicy xmlns:s3=\"{S3_XMLNS}\"><s3:Owner><s3:ID>{OWNER}</s3:ID></s3:Owner><s3:AccessControlList/></s3:AccessControlPolicy>"
        );
        let empty = Acl::parse_xml(prefixed.as_bytes(), &known).expect("valid");
        assert!(empty.grants.is_empty());
    }

    #[test]
    fn xml_errors() {
        let code = |body: &str| Acl::parse_xml(body.as_bytes(), &known).unwrap_err().code;
        let grant = |grantee: &str, permission: &str| {
            policy_body(
                OWNER,
                &format!(
                    "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" {grantee}</Grantee><Permission>{permission}</Permission></Grant>"
                ),
            )
        };
        assert_eq!(code(""), "MalformedACLError");
        assert_eq!(code("not xml"), "MalformedACLError");
        assert_eq!(code("<AccessControlPolicy>"), "MalformedACLError");
        assert_eq!(code("<Other/>"), "MalformedACLError");
        assert_eq!(
            code("<!DOCTYPE x><AccessControlPolicy/>"),
            "MalformedACLError"
        );
        assert_eq!(
            code("<AccessControlPolicy><AccessControlList/></AccessControlPolicy>"),
            "MalformedACLError"
        );
        assert_eq!(
            code(&format!(
                "<AccessControlPolicy><Owner><ID>{OWNER}</ID></Owner></AccessControlPolicy>"
            )),
            "MalformedACLError"
        );
        assert_eq!(code(&policy_body("", "")), "MalformedACLError");
        assert_eq!(
            code(&grant(
                &format!("xsi:type=\"CanonicalUser\"><ID>{OWNER}</ID>"),
                "EVERYTHING"
            )),
            "MalformedACLError"
        );
        assert_eq!(
            code(&grant(
                &format!("xsi:type=\"CanonicalUser\"><ID>{OWNER}</ID>"),
                ""
            )),
            "MalformedACLError"
        );
        assert_eq!(
            code(&grant("xsi:type=\"CanonicalUser\"><ID>ffff</ID>", "READ")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&grant(
                "xsi:type=\"Group\"><URI>http://example.com/everyone</URI>",
                "READ"
            )),
            "InvalidArgument"
        );
        assert_eq!(
            code(&grant(
                "xsi:type=\"AmazonCustomerByEmail\"><EmailAddress>a@b.c</EmailAddress>",
                "READ"
            )),
            "UnresolvableGrantByEmailAddress"
        );
        assert_eq!(
            code(&grant("xsi:type=\"Robot\"><ID>x</ID>", "READ")),
            "MalformedACLError"
        );
        assert_eq!(
            code(&grant("xsi:type=\"CanonicalUser\"><URI>x</URI>", "READ")),
            "MalformedACLError"
        );
        assert_eq!(code(&grant(">", "READ")), "MalformedACLError");
        let many = format!(
            "<Grant><Grantee><ID>{OWNER}</ID></Grantee><Permission>READ</Permission></Grant>"
        )
        .repeat(MAX_GRANTS + 1);
        assert_eq!(code(&policy_body(OWNER, &many)), "MalformedACLError");
        let hundred = format!(
            "<Grant><Grantee><ID>{OWNER}</ID></Grantee><Permission>READ</Permission></Grant>"
        )
        .repeat(MAX_GRANTS);
        assert!(Acl::parse_xml(policy_body(OWNER, &hundred).as_bytes(), &known).is_ok());
    }

    #[test]
    fn xml_render_and_round_trip() {
        let mut acl = Acl::canned("public-read-write", OWNER, OWNER).expect("canned");
        acl.grants.push(Grant {
            grantee: Grantee::AuthenticatedUsers,
            permission: Permission::ReadAcp,
        });
        acl.grants.push(Grant {
            grantee: user(OTHER),
            permission: Permission::WriteAcp,
        });
        let names = |id: &str| (id == OWNER).then(|| "owner <&>".to_owned());
        let xml = acl.to_xml(&names);
        assert!(xml.starts_with(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AccessControlPolicy xmlns=\"{S3_XMLNS}\"><Owner><ID>{OWNER}</ID><DisplayName>owner &lt;&amp;&gt;</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{OWNER}</ID><DisplayName>owner &lt;&amp;&gt;</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
        )), "{xml}");
        assert!(xml.contains(&format!(
            "xsi:type=\"Group\"><URI>{ALL_USERS_URI}</URI></Grantee><Permission>WRITE</Permission>"
        )));
        assert!(xml.contains(&format!("xsi:type=\"CanonicalUser\"><ID>{OTHER}</ID></Grantee><Permission>WRITE_ACP</Permission>")));
        assert_eq!(Acl::parse_xml(xml.as_bytes(), &known), Ok(acl));
    }

    #[test]
    fn json_storage_round_trip() {
        let acl = Acl::canned("authenticated-read", OWNER, OTHER).expect("canned");
        let json = serde_json::to_string(&acl).expect("serialize");
        assert_eq!(serde_json::from_str::<Acl>(&json).expect("parse"), acl);
    }

    #[test]
    fn permission_names() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("read"), None);
    }
}
