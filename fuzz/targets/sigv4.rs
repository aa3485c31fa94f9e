//! SigV4, header and presigned forms: any request parses and verifies without panicking, and a
//! request signed by Cairn's own signer (which follows AWS's published examples, see the unit
//! tests of `s3::sigv4`) verifies whatever its path, query and headers, so the server's
//! canonicalisation agrees with the client's for every input. The canonical URI and query are
//! fixed points of their own canonicalisation.
//!
//! Input fields: selector, method, path, query, headers (`Name: value` lines), host, region,
//! payload choice, time.

use cairn::s3::router::decode_query;
use cairn::s3::sigv4::{
    self, Credentials, RequestParts, SigningParams, UNSIGNED_PAYLOAD, canonical_query,
    canonical_uri, parse_credentials,
};
use http::{HeaderMap, HeaderValue, Method, header};
use time::OffsetDateTime;

use crate::input::{self, Fields};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
/// The time of AWS's published examples, so that a corpus built from them verifies its dates.
const EXAMPLE_TIME: i64 = 1_369_353_600;
/// 9999-12-31T23:59:59Z: an `x-amz-date` has a four-digit year.
const LAST_SIGNABLE: i64 = 253_402_300_799;

pub fn run(data: &[u8]) {
    let mut f = Fields::new(data);
    let selector = f.bytes().first().copied().unwrap_or(0);
    let method = input::method(f.bytes());
    let path = f.text();
    let query = f.text();
    let headers = input::headers(f.bytes());
    let host = f.text();
    let region = f.text();
    let payload = f.number();
    let seconds = f.number();
    let now = time_at(EXAMPLE_TIME + (seconds % 1800) as i64 - 900);

    // Whatever arrives: parsing and verifying must not panic.
    let parts = RequestParts {
        method: &method,
        raw_path: &path,
        raw_query: &query,
        headers: &headers,
    };
    if let Ok(Credentials::Header(pending) | Credentials::Presigned(pending)) =
        parse_credentials(&parts)
    {
        let _ = pending.verify(&parts, SECRET, now);
    }

    let uri = canonical_uri(&path);
    assert_eq!(canonical_uri(&uri), uri, "canonical URI of {path:?}");
    let canonical = canonical_query(&query);
    assert_eq!(
        canonical_query(&canonical),
        canonical,
        "canonical query of {query:?}"
    );

    let region = if !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        region
    } else {
        "us-east-1".to_owned()
    };
    let signing_time = time_at((seconds % LAST_SIGNABLE as u64) as i64);
    let params = SigningParams {
        access_key_id: ACCESS_KEY,
        secret: SECRET,
        region: &region,
        now: signing_time,
    };
    let host = HeaderValue::from_str(&host)
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or(HeaderValue::from_static("s3.example.com"));
    if selector % 2 == 0 {
        header_round_trip(&method, &path, &query, headers, host, payload, &params);
    } else {
        presigned_round_trip(&method, &path, &query, host, payload, &params);
    }
}

fn time_at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("within the range of an x-amz-date")
}

/// Whether the query carries parameters that decide how a request authenticates; a client
/// signing with the Authorization header does not send them.
fn has_auth_parameters(query: &str) -> bool {
    decode_query(query).iter().any(|(name, _)| {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        name.starts_with("x-amz-") || name == "awsaccesskeyid" || name == "signature"
    })
}

fn payload_hash(choice: u64) -> String {
    match choice % 4 {
        0 => UNSIGNED_PAYLOAD.to_owned(),
        1 => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned(),
        2 => "STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_owned(),
        _ => format!("{:064x}", choice),
    }
}

fn header_round_trip(
    method: &Method,
    path: &str,
    query: &str,
    mut headers: HeaderMap,
    host: HeaderValue,
    payload: u64,
    params: &SigningParams<'_>,
) {
    if has_auth_parameters(query) {
        return;
    }
    headers.remove(header::AUTHORIZATION);
    headers.insert(header::HOST, host);
    sigv4::sign_request(
        method,
        path,
        query,
        &mut headers,
        &payload_hash(payload),
        params,
    );
    let parts = RequestParts {
        method,
        raw_path: path,
        raw_query: query,
        headers: &headers,
    };
    let pending = match parse_credentials(&parts) {
        Ok(Credentials::Header(pending)) => pending,
        other => panic!("a signed request parsed as {other:?}"),
    };
    if let Err(e) = pending.verify(&parts, SECRET, params.now) {
        panic!("a signed request failed to verify: {e} ({path:?} {query:?} {headers:?})");
    }
}

fn presigned_round_trip(
    method: &Method,
    path: &str,
    query: &str,
    host: HeaderValue,
    expires: u64,
    params: &SigningParams<'_>,
) {
    if has_auth_parameters(query) {
        return;
    }
    let Ok(host_text) = host.to_str() else {
        return;
    };
    let expires = expires % (sigv4::MAX_PRESIGNED_EXPIRY_SECS + 1);
    let presigned = sigv4::presign(method, host_text, path, query, expires, params);
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, host.clone());
    let parts = RequestParts {
        method,
        raw_path: path,
        raw_query: &presigned,
        headers: &headers,
    };
    let pending = match parse_credentials(&parts) {
        Ok(Credentials::Presigned(pending)) => pending,
        other => panic!("a presigned URL parsed as {other:?}: {presigned:?}"),
    };
    if let Err(e) = pending.verify(&parts, SECRET, params.now) {
        panic!("a presigned URL failed to verify: {e} ({path:?} {presigned:?})");
    }
}
