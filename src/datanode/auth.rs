//! Authentication between gateways and data nodes. Every request carries
//! `x-cairn-auth: <unix seconds>:<hex HMAC-SHA256(key, METHOD "\n" path-and-query "\n" seconds)>`,
//! where the key is derived once from `CAIRN_CLUSTER_SECRET`, so the secret itself never travels
//! and a leaked header is good for one method and target for a few minutes only. The body is not
//! covered: chunk bytes are protected end to end by their CRC32C instead.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The request header holding the timestamp and signature.
pub const AUTH_HEADER: &str = "x-cairn-auth";

/// The environment variable every gateway and data node of one cluster shares.
pub const SECRET_ENV: &str = "CAIRN_CLUSTER_SECRET";

/// The shortest secret accepted: 16 bytes leave a guessing attack no chance even when the
/// secret is a typed passphrase rather than random bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// How far a request's timestamp may be from the node's clock, either way. Bounds how long a
/// captured header can be replayed, while tolerating ordinary clock drift between machines.
pub const MAX_CLOCK_SKEW_SECS: u64 = 5 * 60;

/// Separates the derived key from any other use of the same secret, and versions the scheme.
const KEY_LABEL: &[u8] = b"cairn data node v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing x-cairn-auth header")]
    Missing,
    #[error("malformed x-cairn-auth header")]
    Malformed,
    #[error("x-cairn-auth timestamp is more than 5 minutes from the node's clock")]
    Expired,
    #[error("x-cairn-auth signature does not match")]
    BadSignature,
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

    /// The `x-cairn-auth` value for a request made at `now` (unix seconds).
    pub fn sign(&self, method: &str, path_and_query: &str, now: u64) -> String {
        let mac = self.mac(method, path_and_query, now);
        format!("{now}:{}", hex::encode(mac))
    }

    /// Checks an `x-cairn-auth` value (`None` when the header is absent) against the request it
    /// came with, at the node's time `now`.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        header: Option<&str>,
        now: u64,
    ) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (seconds, signature) = header.split_once(':').ok_or(AuthError::Malformed)?;
        // Digits only: `u64::from_str` would also take a leading `+`, giving one timestamp
        // several spellings.
        if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::Malformed);
        }
        let seconds: u64 = seconds.parse().map_err(|_| AuthError::Malformed)?;
        let mut given = [0u8; 32];
        hex::decode_to_slice(signature, &mut given).map_err(|_| AuthError::Malformed)?;
        if seconds.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
            return Err(AuthError::Expired);
        }
        let expected = self.mac(method, path_and_query, seconds);
        if bool::from(expected.ct_eq(&given)) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn mac(&self, method: &str, path_and_query: &str, seconds: u64) -> [u8; 32] {
        let message = format!("{method}\n{path_and_query}\n{seconds}");
        hmac_sha256(&self.0, message.as_bytes())
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
    const TARGET: &str = "/chunks/0123456789abcdef0123456789abcdef";

    fn key() -> ClusterKey {
        ClusterKey::from_secret("correct horse battery staple")
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
    fn signs_method_target_and_time() {
        let header = key().sign("PUT", TARGET, NOW);
        let (seconds, signature) = header.split_once(':').unwrap();
        assert_eq!(seconds, NOW.to_string());
        let message = format!("PUT\n{TARGET}\n{NOW}");
        assert_eq!(
            signature,
            hex::encode(hmac_sha256(&key().0, message.as_bytes()))
        );
        assert_eq!(signature.len(), 64);
    }

    #[test]
    fn accepts_its_own_signature_within_the_skew() {
        let header = key().sign("GET", "/chunks?after=00&limit=5", NOW);
        for now in [NOW, NOW - 300, NOW + 300] {
            assert_eq!(
                key().verify("GET", "/chunks?after=00&limit=5", Some(&header), now),
                Ok(())
            );
        }
        // Uppercase hex is the same signature.
        let upper = header.to_uppercase();
        assert_eq!(
            key().verify("GET", "/chunks?after=00&limit=5", Some(&upper), NOW),
            Ok(())
        );
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        let header = key().sign("GET", TARGET, NOW);
        for now in [NOW - 301, NOW + 301, 0, u64::MAX] {
            assert_eq!(
                key().verify("GET", TARGET, Some(&header), now),
                Err(AuthError::Expired)
            );
        }
    }

    #[test]
    fn rejects_any_change_to_what_was_signed() {
        let header = key().sign("GET", TARGET, NOW);
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
        // The signature of another second, presented as this one.
        let (_, signature) = header.split_once(':').unwrap();
        let moved = format!("{}:{signature}", NOW + 1);
        assert_eq!(
            key().verify("GET", TARGET, Some(&moved), NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn rejects_missing_and_malformed_headers() {
        assert_eq!(
            key().verify("GET", TARGET, None, NOW),
            Err(AuthError::Missing)
        );
        let signature = hex::encode([7u8; 32]);
        for bad in [
            String::new(),
            "garbage".to_owned(),
            format!("{NOW}"),
            format!("{NOW}:"),
            format!(":{signature}"),
            format!("+{NOW}:{signature}"),
            format!("-{NOW}:{signature}"),
            format!("{NOW}:{}", &signature[..62]),
            format!("{NOW}:{signature}00"),
            format!("{NOW}:{}zz", &signature[..62]),
            format!("99999999999999999999999:{signature}"),
        ] {
            assert_eq!(
                key().verify("GET", TARGET, Some(&bad), NOW),
                Err(AuthError::Malformed),
                "{bad:?}"
            );
        }
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
