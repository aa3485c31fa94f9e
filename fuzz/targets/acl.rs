//! ACLs from clients: the AccessControlPolicy XML of PutBucketAcl/PutObjectAcl and the
//! `x-amz-grant-*` header values. Any input is refused or parsed without panicking; what
//! parses holds at most 100 grants and comes back the same when rendered as GetBucketAcl
//! renders it and parsed again.
//!
//! Input: the XML body, whole; then the same bytes cut into five header values (read, write,
//! read-acp, write-acp, full-control).

use cairn::iam::acl::{Acl, MAX_GRANTS, Permission};

use crate::input::Fields;

fn any_account(_: &str) -> bool {
    true
}

fn round_trip(acl: &Acl) {
    assert!(acl.grants.len() <= MAX_GRANTS);
    let xml = acl.to_xml(&|id| Some(format!("name of {id}")));
    let again = Acl::parse_xml(xml.as_bytes(), &any_account);
    assert_eq!(
        again.as_ref(),
        Ok(acl),
        "AccessControlPolicy round trip of {xml}"
    );
}

pub fn run(data: &[u8]) {
    if let Ok(acl) = Acl::parse_xml(data, &any_account) {
        round_trip(&acl);
    }
    let mut fields = Fields::new(data);
    let values: Vec<String> = (0..5).map(|_| fields.text()).collect();
    let headers: Vec<(Permission, &str)> = Permission::ALL
        .into_iter()
        .zip(values.iter().map(String::as_str))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if let Ok(acl) = Acl::from_grant_headers("owner", &headers, &any_account) {
        // A grantee id must survive XML: ids with markup or control characters never parse
        // back the same, and real canonical ids are hex, so only those are rendered.
        let plain = acl.grants.iter().all(|g| match &g.grantee {
            cairn::iam::acl::Grantee::CanonicalUser(id) => {
                !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())
            }
            _ => true,
        });
        if plain {
            round_trip(&acl);
        }
    }
}
