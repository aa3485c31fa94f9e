//! SigV2 presigned URLs (the only SigV2 form Cairn accepts): any query parses and verifies
//! without panicking, and a URL signed over any path, query and `x-amz-*` headers verifies.
//!
//! Input fields: method, resource path, query, headers, expiry, signature bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cairn::s3::router::parse_query;
use cairn::s3::sigv2;

use crate::input::{self, Fields};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const NOW: i64 = 1_700_000_000;

pub fn run(data: &[u8]) {
    let mut f = Fields::new(data);
    let method = input::method(f.bytes());
    let path = f.text();
    let query = f.text();
    let headers = input::headers(f.bytes());
    let expires = NOW + (f.number() % 700_000) as i64 - 1000;

    if let Some(Ok(presigned)) = sigv2::parse(&query) {
        let _ = presigned.verify(method.as_str(), &headers, &path, &query, SECRET, NOW);
    }

    // Parameters SigV2 reads itself are the signer's to add.
    let own = ["AWSAccessKeyId", "Expires", "Signature"];
    if parse_query(&query)
        .iter()
        .any(|(name, _)| own.contains(&name.as_str()))
    {
        return;
    }
    let to_sign = sigv2::string_to_sign(method.as_str(), &headers, expires, &path, &query);
    let signature = STANDARD.encode(sigv2::sign(SECRET, &to_sign));
    let signature = signature
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let separator = if query.is_empty() { "" } else { "&" };
    let signed =
        format!("{query}{separator}AWSAccessKeyId=K&Expires={expires}&Signature={signature}");
    let presigned = match sigv2::parse(&signed) {
        Some(Ok(presigned)) => presigned,
        other => panic!("a presigned URL parsed as {other:?}: {signed:?}"),
    };
    let verdict = presigned.verify(method.as_str(), &headers, &path, &signed, SECRET, NOW);
    let valid_now = expires >= NOW && expires - NOW <= 604_800;
    assert_eq!(
        verdict.is_ok(),
        valid_now,
        "{signed:?} expiring at {expires}: {verdict:?}"
    );
}
