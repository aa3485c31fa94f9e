//! Presigned URLs of AWS Signature Version 2 (`?AWSAccessKeyId=..&Expires=..&Signature=..`).
//! Only query-string authentication: aws-cli v1's `aws s3 presign` still produces these by
//! default, and users fetch them with curl. Every other request must use SigV4.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html#RESTAuthenticationQueryStringAuth>

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::error::{ErrorCode, S3Error};
use super::router::{parse_query, query_get};
use super::sigv4::MAX_PRESIGNED_EXPIRY_SECS;

/// Query parameters that are part of the signed resource (the "sub-resources").
const SUB_RESOURCES: [&str; 26] = [
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
    "list-type",
];

/// The furthest `Expires` may lie ahead, SigV4's limit (the cast is of a small constant).
const MAX_EXPIRY_FROM_NOW_SECS: i64 = MAX_PRESIGNED_EXPIRY_SECS as i64;

/// A SigV2 presigned request, parsed but not yet verified.
#[derive(Debug)]
pub struct PresignedV2 {
    pub access_key_id: String,
    expires: i64,
    signature: Vec<u8>,
}

/// Recognises a SigV2 presigned query; `None` when the request is not one. Parameter names
/// are read decoded, as the router reads them.
pub fn parse(raw_query: &str) -> Option<Result<PresignedV2, S3Error>> {
    let query = parse_query(raw_query);
    let access = query_get(&query, "AWSAccessKeyId")?;
    let malformed = || {
        S3Error::new(ErrorCode::AccessDenied)
            .with_message("Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters")
    };
    let parsed = (|| {
        let signature = STANDARD.decode(query_get(&query, "Signature")?).ok()?;
        let expires = query_get(&query, "Expires")?.parse().ok()?;
        Some(PresignedV2 {
            access_key_id: access.to_owned(),
            expires,
            signature,
        })
    })();
    Some(parsed.ok_or_else(malformed))
}

/// The string SigV2 signs for a query-authenticated request.
pub fn string_to_sign(
    method: &str,
    headers: &HeaderMap,
    expires: i64,
    resource_path: &str,
    raw_query: &str,
) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let mut amz: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-amz-"))
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_owned(),
            )
        })
        .collect();
    amz.sort();
    let mut s = format!(
        "{method}\n{}\n{}\n{expires}\n",
        header("content-md5"),
        header("content-type")
    );
    for (n, v) in &amz {
        s.push_str(&format!("{n}:{v}\n"));
    }
    s.push_str(resource_path);
    // Sub-resources are picked by their decoded names, the names the router and the handlers
    // act on: `upload%49d` is `uploadId` there, so it must be `uploadId` here too.
    let mut subs: Vec<(String, String)> = parse_query(raw_query)
        .into_iter()
        .filter(|(name, _)| SUB_RESOURCES.contains(&name.as_str()))
        .collect();
    subs.sort();
    for (i, (k, v)) in subs.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        if !v.is_empty() {
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

pub fn sign(secret: &str, string_to_sign: &str) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl PresignedV2 {
    /// Checks expiry and the signature; `resource_path` is `/bucket` (the bucket the request is
    /// routed to) followed by the path below it as the client encoded it.
    pub fn verify(
        &self,
        method: &str,
        headers: &HeaderMap,
        resource_path: &str,
        raw_query: &str,
        secret: &str,
        now_unix: i64,
    ) -> Result<(), S3Error> {
        if now_unix > self.expires {
            return Err(S3Error::new(ErrorCode::AccessDenied).with_message("Request has expired"));
        }
        // SigV2 carries no signing time, so the week SigV4 allows is counted from now: a URL
        // that would outlive a leaked or revoked key by years is refused.
        if self.expires.saturating_sub(now_unix) > MAX_EXPIRY_FROM_NOW_SECS {
            return Err(S3Error::new(ErrorCode::AccessDenied).with_message(
                "Expires must be less than a week (in seconds) from now; the maximum is 604800 \
                 seconds",
            ));
        }
        let expected = sign(
            secret,
            &string_to_sign(method, headers, self.expires, resource_path, raw_query),
        );
        if bool::from(expected.ct_eq(&self.signature)) {
            Ok(())
        } else {
            Err(S3Error::new(ErrorCode::SignatureDoesNotMatch))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn aws_published_signature() {
        // The GET example of AWS's SigV2 documentation (header form: the Date line stands
        // where a presigned URL has Expires; the HMAC is the same).
        let sts = "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg";
        assert_eq!(
            STANDARD.encode(sign(SECRET, sts)),
            "bWq2s1WEIj+Ydj0vQ697zp+IXMU="
        );
    }

    #[test]
    fn presigned_url_verifies() {
        // The query-string example of the same page, signed with the example secret.
        let raw_query = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=fScKGHCDI0NY5E7CYp9Vc8VKMbY%3D";
        let sts = string_to_sign(
            "GET",
            &HeaderMap::new(),
            1141889120,
            "/johnsmith/photos/puppy.jpg",
            raw_query,
        );
        assert_eq!(sts, "GET\n\n\n1141889120\n/johnsmith/photos/puppy.jpg");
        let p = parse(raw_query).unwrap().unwrap();
        assert_eq!(p.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        let h = HeaderMap::new();
        let path = "/johnsmith/photos/puppy.jpg";
        assert!(
            p.verify("GET", &h, path, raw_query, SECRET, 1141889000)
                .is_ok()
        );
        let e = p
            .verify("GET", &h, path, raw_query, SECRET, 1141889121)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDenied);
        // Checked a moment before expiry, which lies well within a week.
        let now = 1141889000;
        let kitten = "/johnsmith/photos/kitten.jpg";
        let e = p
            .verify("GET", &h, kitten, raw_query, SECRET, now)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::SignatureDoesNotMatch);
        let e = p
            .verify("PUT", &h, path, raw_query, SECRET, now)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::SignatureDoesNotMatch);
        let e = p
            .verify("GET", &h, path, raw_query, "other", now)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::SignatureDoesNotMatch);
    }

    #[test]
    fn sub_resources_are_signed_sorted_and_decoded() {
        let q = "uploadId=abc&AWSAccessKeyId=K&partNumber=2&x-id=GetObject&response-content-type=text%2Fplain";
        let sts = string_to_sign("GET", &HeaderMap::new(), 5, "/b/k", q);
        assert_eq!(
            sts,
            "GET\n\n\n5\n/b/k?partNumber=2&response-content-type=text/plain&uploadId=abc"
        );
    }

    #[test]
    fn sub_resources_are_picked_by_decoded_name() {
        // Escaped names are the sub-resources the router acts on, so they are signed.
        let q = "upload%49d=u&part%4Eumber=1&response-content-typ%65=text%2Fhtml&x%2Did=1";
        let sts = string_to_sign("PUT", &HeaderMap::new(), 5, "/b/k", q);
        assert_eq!(
            sts,
            "PUT\n\n\n5\n/b/k?partNumber=1&response-content-type=text/html&uploadId=u"
        );
    }

    #[test]
    fn expiry_is_at_most_a_week_from_now() {
        let now = 1_700_000_000;
        let h = HeaderMap::new();
        for (expires, allowed) in [
            (now + 604_800, true),
            (now + 604_801, false),
            (i64::MAX, false),
        ] {
            let sts = string_to_sign("GET", &h, expires, "/b/k", "");
            let signature = STANDARD.encode(sign(SECRET, &sts));
            let q = format!(
                "AWSAccessKeyId=K&Expires={expires}&Signature={}",
                signature
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            );
            let result = parse(&q)
                .unwrap()
                .unwrap()
                .verify("GET", &h, "/b/k", &q, SECRET, now);
            match result {
                Ok(()) => assert!(allowed, "{expires}"),
                Err(e) => {
                    assert!(!allowed, "{expires}: {e:?}");
                    assert_eq!(e.code, ErrorCode::AccessDenied);
                }
            }
        }
    }

    #[test]
    fn not_sigv2_or_malformed() {
        assert!(parse("X-Amz-Signature=abc").is_none());
        assert!(parse("").is_none());
        assert!(parse("AWSAccessKeyId=K&Expires=1").unwrap().is_err());
        assert!(
            parse("AWSAccessKeyId=K&Signature=%%%&Expires=1")
                .unwrap()
                .is_err()
        );
        assert!(
            parse("AWSAccessKeyId=K&Signature=AAAA&Expires=soon")
                .unwrap()
                .is_err()
        );
    }
}
