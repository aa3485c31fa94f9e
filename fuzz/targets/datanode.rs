//! The data node's request parsing: the `x-cairn-auth` header (any value is refused or verified
//! without panicking; any request signed with the cluster key verifies, and only for the method
//! and target it was signed for), `x-cairn-body-auth`, the route (method and path to operation,
//! chunk ids in their one canonical spelling), `Range` within a chunk (in bounds, non-empty,
//! exactly the bytes asked for), the inventory query and `x-cairn-crc32c`.
//!
//! Input fields: method, target (path and query), auth header, time, nonce, range, size,
//! another header value.

use cairn::datanode::auth::{ClusterKey, MAX_CLOCK_SKEW_SECS, Signed};
use cairn::datanode::server::{
    RangeError, Route, parse_chunk_id, parse_crc, parse_list_query, parse_range, route,
};
use http::HeaderValue;

use crate::input::{self, Fields};

const NOW: u64 = 1_700_000_000;

pub fn run(data: &[u8]) {
    let mut f = Fields::new(data);
    let method = input::method(f.bytes());
    let target = f.text();
    let auth = f.text();
    let seconds = f.number();
    let nonce = f.number();
    let range = f.text();
    let size = f.number();
    let other = f.bytes();

    let key = ClusterKey::from_secret("fuzz cluster secret");
    let _ = key.verify(method.as_str(), &target, Some(&auth), NOW);

    // A signed request verifies exactly for what was signed.
    let signed = Signed {
        seconds: NOW - MAX_CLOCK_SKEW_SECS + seconds % (2 * MAX_CLOCK_SKEW_SECS + 1),
        nonce: u128::from(nonce) << 64 | u128::from(seconds),
    };
    let header = key.sign(method.as_str(), &target, signed);
    assert_eq!(
        key.verify(method.as_str(), &target, Some(&header), NOW)
            .ok(),
        Some(signed)
    );
    let altered = format!("{target}x");
    assert!(
        key.verify(method.as_str(), &altered, Some(&header), NOW)
            .is_err()
    );
    let body = key.sign_body(method.as_str(), &target, signed, size, nonce as u32);
    assert!(
        key.verify_body(
            method.as_str(),
            &target,
            signed,
            size,
            nonce as u32,
            Some(&body)
        )
        .is_ok()
    );
    assert!(
        key.verify_body(
            method.as_str(),
            &target,
            signed,
            size ^ 1,
            nonce as u32,
            Some(&body)
        )
        .is_err()
    );
    let _ = key.verify_body(
        method.as_str(),
        &target,
        signed,
        size,
        nonce as u32,
        Some(&auth),
    );

    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    match route(&method, path) {
        Ok(
            Route::PutChunk(id)
            | Route::GetChunk(id)
            | Route::HeadChunk(id)
            | Route::DeleteChunk(id),
        ) => {
            assert_eq!(format!("/chunks/{id}"), path);
        }
        Ok(Route::ListChunks) => assert_eq!(path, "/chunks"),
        Ok(Route::Health) => assert_eq!(path, "/health"),
        Err(_) => {}
    }
    if let Some(id) = parse_chunk_id(path) {
        assert_eq!(id.to_string(), path);
    }
    if let Some((after, limit)) = parse_list_query(query) {
        assert!(limit <= cairn::datanode::server::MAX_LIST_LIMIT);
        if let Some(after) = after {
            assert!(query.contains(&after.to_string()));
        }
    }

    match parse_range(&range, size) {
        Ok(r) => {
            assert!(
                r.start < r.end && r.end <= size,
                "{range:?} in {size}: {r:?}"
            );
            let asked = range
                .strip_prefix("bytes=")
                .expect("a parsed range names bytes");
            let back = match asked.strip_suffix('-') {
                Some(_) => format!("{}-", r.start),
                None => format!("{}-{}", r.start, r.end - 1),
            };
            assert_eq!(parse_range(&format!("bytes={back}"), size), Ok(r));
        }
        Err(RangeError::Malformed | RangeError::Unsatisfiable) => {}
    }

    if let Ok(value) = HeaderValue::from_bytes(other)
        && let Some(crc) = parse_crc(&value)
    {
        assert_eq!(
            format!("{crc:08x}"),
            value.to_str().expect("hex").to_ascii_lowercase()
        );
    }
}
