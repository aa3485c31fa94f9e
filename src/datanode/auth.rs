//! Authentication between gateways and data nodes. Every request carries
//! `x-cairn-auth: <unix seconds>:<nonce>:<hex HMAC-SHA256(key, "cairn-request" METHOD
//! path-and-query seconds nonce)>` (fields joined by newlines), where the key is derived once
//! from `CAIRN_CLUSTER_SECRET`, so the secret itself never travels. The nonce (128 random bits)
//! makes every request unique: a node remembers the nonces it accepted for as long as their time
//! is within the window (`ReplayGuard`) and refuses a second use, so a captured header cannot be
//! sent again. An upload's body is covered by a second HMAC, sent in the trailer
//! `x-cairn-body-auth` once the body is complete, over the same request and the body's length
//! and CRC32C; the node checks it before it commits the chunk.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The request header holding the timestamp, nonce and signature.
pub const AUTH_HEADER: &str = "x-cairn-auth";
/// The upload trailer (or header, when the body is known up front) holding the body's HMAC.
pub const BODY_AUTH_HEADER: &str = "x-cairn-body-auth";

/// The environment variable every gateway and data node of one cluster shares.
pub const SECRET_ENV: &str = "CAIRN_CLUSTER_SECRET";

/// The shortest secret accepted: 16 bytes leave a guessing attack no chance even when the
/// secret is a typed passphrase rather than random bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// How far a request's timestamp may be from the node's clock, either way. Tolerates the drift
/// of NTP-synchronised machines; short, because a node remembers every nonce it accepted for
/// this long after the request's time (`ReplayGuard`).
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Nonces remembered at most: about 40 MB, a node answering some 15,000 requests a second for
/// the whole window. Beyond it a node refuses requests (503) until old nonces age out, rather
/// than forget one that could then be replayed.
pub const MAX_REMEMBERED_NONCES: usize = 1_000_000;

/// Seconds of request time per set of remembered nonces: old nonces are dropped a set at a time.
const NONCE_BUCKET_SECS: u64 = 10;

/// Separates the derived key from any other use of the same secret, and versions the scheme.
const KEY_LABEL: &[u8] = b"cairn data node v1";
/// Keep the two kinds of MAC apart: a request's signature is never a valid body signature.
const REQUEST_LABEL: &str = "cairn-request";
const BODY_LABEL: &str = "cairn-body";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing x-cairn-auth header")]
    Missing,
    #[error("malformed x-cairn-auth header")]
    Malformed,
    #[error("x-cairn-auth timestamp is more than 60 seconds from the node's clock")]
    Expired,
    #[error("x-cairn-auth signature does not match")]
    BadSignature,
    #[error("x-cairn-auth was used before: a request is accepted once")]
    Replayed,
    #[error("x-cairn-body-auth is required with an upload")]
    MissingBody,
    #[error("x-cairn-body-auth does not match the body received")]
    BadBodySignature,
    /// Not the client's fault: the node remembers as many nonces as it can.
    #[error("too many requests to remember their nonces; try again shortly")]
    Busy,
}

/// What a verified `x-cairn-auth` header vouches for besides method and target: when the
/// request was made, and its nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    pub seconds: u64,
    pub nonce: u128,
}

impl Signed {
    /// A new request made now, with a fresh random nonce.
    pub fn now() -> Self {
        Signed {
            seconds: unix_now(),
            nonce: rand::random(),
        }
    }
}

/// The key requests are signed with: HMAC-SHA256(secret, "cairn data node v1").
#[derive(Clone)]
pub struct ClusterKey([u8; 32]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    pub fn from_secret(secret: &str) -> Self {
        ClusterKey(hmac_sha256(secret.as_bytes(), KEY_LABEL))
    }

    /// The `x-cairn-auth` value for a request.
    pub fn sign(&self, method: &str, path_and_query: &str, signed: Signed) -> String {
        let mac = self.request_mac(method, path_and_query, signed);
        format!(
            "{}:{:032x}:{}",
            signed.seconds,
            signed.nonce,
            hex::encode(mac)
        )
    }

    /// Checks an `x-cairn-auth` value (`None` when the header is absent) against the request it
    /// came with, at the node's time `now`. Whether the nonce was seen before is the
    /// `ReplayGuard`'s to say.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        header: Option<&str>,
        now: u64,
    ) -> Result<Signed, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let mut fields = header.split(':');
        let (Some(seconds), Some(nonce), Some(signature), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(AuthError::Malformed);
        };
        // Digits only: `u64::from_str` would also take a leading `+`, giving one timestamp
        // several spellings.
        if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::Malformed);
        }
        let seconds: u64 = seconds.parse().map_err(|_| AuthError::Malformed)?;
        let mut nonce_bytes = [0u8; 16];
        hex::decode_to_slice(nonce, &mut nonce_bytes).map_err(|_| AuthError::Malformed)?;
        let mut given = [0u8; 32];
        hex::decode_to_slice(signature, &mut given).map_err(|_| AuthError::Malformed)?;
        if seconds.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
            return Err(AuthError::Expired);
        }
        let signed = Signed {
            seconds,
            nonce: u128::from_be_bytes(nonce_bytes),
        };
        let expected = self.request_mac(method, path_and_query, signed);
        if bool::from(expected.ct_eq(&given)) {
            Ok(signed)
        } else {
            Err(AuthError::BadSignature)
        }
    }

    /// The `x-cairn-body-auth` value of an upload whose body is `length` bytes with CRC32C
    /// `crc`, for the request signed as `signed`.
    pub fn sign_body(
        &self,
        method: &str,
        path_and_query: &str,
        signed: Signed,
        length: u64,
        crc: u32,
    ) -> String {
        hex::encode(self.body_mac(method, path_and_query, signed, length, crc))
    }

    /// Checks an upload's `x-cairn-body-auth` (`None` when absent) against the body the node
    /// received: its length and the CRC32C the node computed.
    pub fn verify_body(
        &self,
        method: &str,
        path_and_query: &str,
        signed: Signed,
        length: u64,
        crc: u32,
        given: Option<&str>,
    ) -> Result<(), AuthError> {
        let given = given.ok_or(AuthError::MissingBody)?;
        let mut mac = [0u8; 32];
        hex::decode_to_slice(given, &mut mac).map_err(|_| AuthError::BadBodySignature)?;
        let expected = self.body_mac(method, path_and_query, signed, length, crc);
        if bool::from(expected.ct_eq(&mac)) {
            Ok(())
        } else {
            Err(AuthError::BadBodySignature)
        }
    }

    fn request_mac(&self, method: &str, path_and_query: &str, signed: Signed) -> [u8; 32] {
        let message = format!(
            "{REQUEST_LABEL}\n{method}\n{path_and_query}\n{}\n{:032x}",
            signed.seconds, signed.nonce
        );
        hmac_sha256(&self.0, message.as_bytes())
    }

    fn body_mac(
        &self,
        method: &str,
        path_and_query: &str,
        signed: Signed,
        length: u64,
        crc: u32,
    ) -> [u8; 32] {
        let message = format!(
            "{BODY_LABEL}\n{method}\n{path_and_query}\n{}\n{:032x}\n{length}\n{crc:08x}",
            signed.seconds, signed.nonce
        );
        hmac_sha256(&self.0, message.as_bytes())
    }
}

/// The nonces a node accepted whose time is still within the window, so that it accepts each
/// once. Grouped by request time in sets of `NONCE_BUCKET_SECS`, a set is dropped whole once
/// every time in it is too old to be accepted again, which bounds memory by the request rate
/// over the window, and by `MAX_REMEMBERED_NONCES` in any case.
#[derive(Debug)]
pub struct ReplayGuard {
    limit: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_bucket: BTreeMap<u64, HashSet<u128>>,
    count: usize,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::with_limit(MAX_REMEMBERED_NONCES)
    }
}

impl ReplayGuard {
    pub fn with_limit(limit: usize) -> Self {
        ReplayGuard {
            limit,
            seen: Mutex::default(),
        }
    }

    /// Records the nonce of a verified request at the node's time `now`; `Replayed` if it was
    /// recorded before.
    pub fn remember(&self, signed: Signed, now: u64) -> Result<(), AuthError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // A bucket's last second plus the skew is the last moment any of its requests verifies.
        while let Some(entry) = seen.by_bucket.first_entry() {
            let last_second = entry.key() * NONCE_BUCKET_SECS + NONCE_BUCKET_SECS - 1;
            if last_second.saturating_add(MAX_CLOCK_SKEW_SECS) >= now {
                break;
            }
            let dropped = entry.remove().len();
            seen.count -= dropped;
        }
        let bucket = signed.seconds / NONCE_BUCKET_SECS;
        if seen
            .by_bucket
            .get(&bucket)
            .is_some_and(|nonces| nonces.contains(&signed.nonce))
        {
            return Err(AuthError::Replayed);
        }
        if seen.count >= self.limit {
            return Err(AuthError::Busy);
        }
        seen.by_bucket
            .entry(bucket)
            .or_default()
            .insert(signed.nonce);
        seen.count += 1;
        Ok(())
    }
}

/// The cluster secret from `CAIRN_CLUSTER_SECRET`; an error naming the variable when it is
/// missing or too short.
pub fn cluster_secret_from_env() -> Result<String, String> {
    check_secret(std::env::var(SECRET_ENV).ok())
}

fn check_secret(secret: Option<String>) -> Result<String, String> {
    match secret {
        None => Err(format!(
            "{SECRET_ENV} is not set: every gateway and data node of a cluster needs the same secret"
        )),
        Some(secret) if secret.len() < MIN_SECRET_LEN => Err(format!(
            "{SECRET_ENV} is too short: use at least {MIN_SECRET_LEN} bytes"
        )),
        Some(secret) => Ok(secret),
    }
}

/// The current time in unix seconds, as `sign` and `verify` take it.
pub fn unix_now() -> u64 {
    // A clock before 1970 is broken; zero makes every check fail as expired rather than panic.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const NONCE: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
    const TARGET: &str = "/chunks/0123456789abcdef0123456789abcdef";

    fn key() -> ClusterKey {
        ClusterKey::from_secret("correct horse battery staple")
    }

    fn at(seconds: u64) -> Signed {
        Signed {
            seconds,
            nonce: NONCE,
        }
    }

    #[test]
    fn derives_the_key_from_the_label_not_the_raw_secret() {
        let secret = "correct horse battery staple";
        let expected = hmac_sha256(secret.as_bytes(), b"cairn data node v1");
        assert_eq!(key().0, expected);
        assert_ne!(&key().0[..], secret.as_bytes());
        assert_ne!(
            key().0,
            ClusterKey::from_secret("correct horse battery stapler").0
        );
        assert_eq!(format!("{:?}", key()), "ClusterKey(..)");
    }

    #[test]
    fn signs_method_target_time_and_nonce() {
        let header = key().sign("PUT", TARGET, at(NOW));
        let fields: Vec<&str> = header.split(':').collect();
        assert_eq!(fields[0], NOW.to_string());
        assert_eq!(fields[1], "0123456789abcdeffedcba9876543210");
        let message = format!("cairn-request\nPUT\n{TARGET}\n{NOW}\n{}", fields[1]);
        assert_eq!(
            fields[2],
            hex::encode(hmac_sha256(&key().0, message.as_bytes()))
        );
        let body = key().sign_body("PUT", TARGET, at(NOW), 5, 0xdead_beef);
        let message = format!(
            "cairn-body\nPUT\n{TARGET}\n{NOW}\n{}\n5\ndeadbeef",
            fields[1]
        );
        assert_eq!(body, hex::encode(hmac_sha256(&key().0, message.as_bytes())));
        // Fresh requests get different nonces.
        assert_ne!(Signed::now().nonce, Signed::now().nonce);
    }

    #[test]
    fn accepts_its_own_signature_within_the_skew() {
        let header = key().sign("GET", "/chunks?after=00&limit=5", at(NOW));
        for now in [NOW, NOW - 60, NOW + 60] {
            assert_eq!(
                key().verify("GET", "/chunks?after=00&limit=5", Some(&header), now),
                Ok(at(NOW))
            );
        }
        // Uppercase hex is the same signature.
        let upper = header.to_uppercase();
        assert_eq!(
            key().verify("GET", "/chunks?after=00&limit=5", Some(&upper), NOW),
            Ok(at(NOW))
        );
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        let header = key().sign("GET", TARGET, at(NOW));
        for now in [NOW - 61, NOW + 61, 0, u64::MAX] {
            assert_eq!(
                key().verify("GET", TARGET, Some(&header), now),
                Err(AuthError::Expired)
            );
        }
    }

    #[test]
    fn rejects_any_change_to_what_was_signed() {
        let header = key().sign("GET", TARGET, at(NOW));
        let other_key = ClusterKey::from_secret("another secret of enough length");
        assert_eq!(
            other_key.verify("GET", TARGET, Some(&header), NOW),
            Err(AuthError::BadSignature)
        );
        for (method, target) in [
            ("DELETE", TARGET),
            ("HEAD", TARGET),
            ("GET", "/chunks/0123456789abcdef0123456789abcdee"),
            ("GET", "/chunks/0123456789abcdef0123456789abcdef?x"),
        ] {
            assert_eq!(
                key().verify(method, target, Some(&header), NOW),
                Err(AuthError::BadSignature),
                "{method} {target}"
            );
        }
        let fields: Vec<&str> = header.split(':').collect();
        // The signature of another second, or another nonce, presented as this one.
        for moved in [
            format!("{}:{}:{}", NOW + 1, fields[1], fields[2]),
            format!("{NOW}:{:032x}:{}", NONCE + 1, fields[2]),
        ] {
            assert_eq!(
                key().verify("GET", TARGET, Some(&moved), NOW),
                Err(AuthError::BadSignature),
                "{moved}"
            );
        }
    }

    #[test]
    fn body_signatures_cover_the_request_length_and_crc() {
        let given = key().sign_body("PUT", TARGET, at(NOW), 1000, 7);
        let check = |key: &ClusterKey, target, signed, length, crc, given: Option<&str>| {
            key.verify_body("PUT", target, signed, length, crc, given)
        };
        assert_eq!(
            check(&key(), TARGET, at(NOW), 1000, 7, Some(&given)),
            Ok(())
        );
        let bad = Err(AuthError::BadBodySignature);
        assert_eq!(check(&key(), TARGET, at(NOW), 1001, 7, Some(&given)), bad);
        assert_eq!(check(&key(), TARGET, at(NOW), 1000, 8, Some(&given)), bad);
        assert_eq!(
            check(&key(), TARGET, at(NOW + 1), 1000, 7, Some(&given)),
            bad
        );
        let other = Signed {
            seconds: NOW,
            nonce: NONCE ^ 1,
        };
        assert_eq!(check(&key(), TARGET, other, 1000, 7, Some(&given)), bad);
        assert_eq!(
            check(&key(), "/chunks/x", at(NOW), 1000, 7, Some(&given)),
            bad
        );
        let stranger = ClusterKey::from_secret("another secret of enough length");
        assert_eq!(
            check(&stranger, TARGET, at(NOW), 1000, 7, Some(&given)),
            bad
        );
        assert_eq!(check(&key(), TARGET, at(NOW), 1000, 7, Some("zz")), bad);
        // The request's own signature is not a body signature.
        let request = key().sign("PUT", TARGET, at(NOW));
        let request_mac = request.rsplit(':').next().unwrap();
        assert_eq!(
            check(&key(), TARGET, at(NOW), 1000, 7, Some(request_mac)),
            bad
        );
        assert_eq!(
            check(&key(), TARGET, at(NOW), 1000, 7, None),
            Err(AuthError::MissingBody)
        );
    }

    #[test]
    fn rejects_missing_and_malformed_headers() {
        assert_eq!(
            key().verify("GET", TARGET, None, NOW),
            Err(AuthError::Missing)
        );
        let signature = hex::encode([7u8; 32]);
        let nonce = format!("{NONCE:032x}");
        for bad in [
            String::new(),
            "garbage".to_owned(),
            format!("{NOW}"),
            format!("{NOW}:"),
            format!("{NOW}:{signature}"),
            format!("{NOW}:{nonce}:"),
            format!(":{nonce}:{signature}"),
            format!("+{NOW}:{nonce}:{signature}"),
            format!("-{NOW}:{nonce}:{signature}"),
            format!("{NOW}:{}:{signature}", &nonce[..30]),
            format!("{NOW}:{nonce}:{}", &signature[..62]),
            format!("{NOW}:{nonce}:{signature}00"),
            format!("{NOW}:{nonce}:{signature}:"),
            format!("{NOW}:{nonce}:{}zz", &signature[..62]),
            format!("99999999999999999999999:{nonce}:{signature}"),
        ] {
            assert_eq!(
                key().verify("GET", TARGET, Some(&bad), NOW),
                Err(AuthError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn accepts_each_nonce_once_within_the_window() {
        let guard = ReplayGuard::with_limit(4);
        let first = at(NOW);
        assert_eq!(guard.remember(first, NOW), Ok(()));
        assert_eq!(guard.remember(first, NOW), Err(AuthError::Replayed));
        // Still refused at the last moment its header verifies.
        assert_eq!(
            guard.remember(first, NOW + MAX_CLOCK_SKEW_SECS),
            Err(AuthError::Replayed)
        );
        // Other nonces and other times are other requests.
        for nonce in [1, 2] {
            let signed = Signed {
                seconds: NOW,
                nonce,
            };
            assert_eq!(guard.remember(signed, NOW), Ok(()));
        }
        assert_eq!(guard.remember(at(NOW + 30), NOW), Ok(()));
        // Full: a new nonce is refused rather than an old one forgotten.
        let fifth = |seconds| Signed { seconds, nonce: 3 };
        assert_eq!(guard.remember(fifth(NOW), NOW), Err(AuthError::Busy));
        assert_eq!(guard.remember(first, NOW), Err(AuthError::Replayed));
        // Once NOW's bucket is out of the window it is dropped, and the room is back; the
        // request at NOW + 30 is still remembered.
        let later = NOW + 10 + MAX_CLOCK_SKEW_SECS;
        assert_eq!(guard.remember(fifth(later), later), Ok(()));
        assert_eq!(
            guard.remember(at(NOW + 30), later),
            Err(AuthError::Replayed)
        );
        assert_eq!(guard.seen.lock().unwrap().count, 2);
    }

    #[test]
    fn requires_a_long_enough_secret() {
        assert!(check_secret(None).unwrap_err().contains(SECRET_ENV));
        assert!(
            check_secret(Some("fifteen bytes!!".to_owned()))
                .unwrap_err()
                .contains("at least 16")
        );
        assert_eq!(
            check_secret(Some("sixteen bytes!!!".to_owned())).unwrap(),
            "sixteen bytes!!!"
        );
    }
}
