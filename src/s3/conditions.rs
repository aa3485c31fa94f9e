//! Conditional requests on the read path, kept pure: `If-Match`, `If-None-Match`,
//! `If-Modified-Since` and `If-Unmodified-Since` (also in their `x-amz-copy-source-` form),
//! evaluated against an object's ETag and Last-Modified once its row is loaded, and `If-Range`,
//! which decides whether a `Range` is honoured. Conditional writes are in `handlers/headers.rs`.

use http::HeaderMap;
use time::OffsetDateTime;

use crate::s3::date::parse_http_date;
use crate::s3::error::ErrorCode;

/// The conditional headers of a request. Dates that do not parse are dropped, as RFC 9110
/// sections 13.1.3 and 13.1.4 ask; an unreadable `If-Match` is kept so that it fails rather
/// than being ignored. Repeated list headers are joined with commas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<OffsetDateTime>,
    pub if_unmodified_since: Option<OffsetDateTime>,
}

impl Preconditions {
    /// `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`.
    pub fn from_headers(h: &HeaderMap) -> Self {
        Self::read(
            h,
            [
                "if-match",
                "if-none-match",
                "if-modified-since",
                "if-unmodified-since",
            ],
        )
    }

    /// The `x-amz-copy-source-if-*` headers of `CopyObject` and `UploadPartCopy`, which apply to
    /// the source object. Evaluate them with [`Preconditions::evaluate_copy_source`].
    pub fn from_copy_source_headers(h: &HeaderMap) -> Self {
        Self::read(
            h,
            [
                "x-amz-copy-source-if-match",
                "x-amz-copy-source-if-none-match",
                "x-amz-copy-source-if-modified-since",
                "x-amz-copy-source-if-unmodified-since",
            ],
        )
    }

    fn read(h: &HeaderMap, [m, nm, ms, us]: [&str; 4]) -> Self {
        let list = |name: &str| {
            let values: Vec<String> = h
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let date = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_http_date)
        };
        Preconditions {
            if_match: list(m),
            if_none_match: list(nm),
            if_modified_since: date(ms),
            if_unmodified_since: date(us),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Preconditions::default()
    }

    /// Evaluates the conditions for a GET or HEAD of an existing object in the order of
    /// RFC 9110 section 13.2.2, which is also S3's
    /// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>):
    ///
    /// 1. `If-Match` does not match: 412.
    /// 2. Only without `If-Match`: `If-Unmodified-Since` fails: 412. So `If-Match` true with
    ///    `If-Unmodified-Since` false is 200, as the `GetObject` page states.
    /// 3. `If-None-Match` matches: 304.
    /// 4. Only without `If-None-Match`: `If-Modified-Since` fails: 304. So `If-None-Match`
    ///    false with `If-Modified-Since` true is 304, also as documented.
    ///
    /// A 412 therefore outranks a 304. `etag` is the stored ETag, quoted; the client's tags
    /// may be quoted or not, `*` matches any, lists are comma-separated. Dates compare at
    /// whole seconds, the precision of an HTTP-date.
    pub fn evaluate(&self, etag: &str, last_modified: OffsetDateTime) -> Result<(), ErrorCode> {
        let modified = last_modified.unix_timestamp();
        if let Some(list) = &self.if_match {
            if !etag_list_matches(list, etag, Comparison::Strong) {
                return Err(ErrorCode::PreconditionFailed);
            }
        } else if let Some(since) = self.if_unmodified_since
            && modified > since.unix_timestamp()
        {
            return Err(ErrorCode::PreconditionFailed);
        }
        if let Some(list) = &self.if_none_match {
            if etag_list_matches(list, etag, Comparison::Weak) {
                return Err(ErrorCode::NotModified);
            }
        } else if let Some(since) = self.if_modified_since
            && modified <= since.unix_timestamp()
        {
            return Err(ErrorCode::NotModified);
        }
        Ok(())
    }

    /// As [`Preconditions::evaluate`], but every failure is 412: S3 answers so for the
    /// `x-amz-copy-source-if-*` headers, and RFC 9110 for `If-None-Match` on methods other
    /// than GET and HEAD (S3's conditional writes).
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>
    pub fn evaluate_copy_source(
        &self,
        etag: &str,
        last_modified: OffsetDateTime,
    ) -> Result<(), ErrorCode> {
        self.evaluate(etag, last_modified)
            .map_err(|_| ErrorCode::PreconditionFailed)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// A weak tag (`W/"..."`) never matches: `If-Match` and `If-Range`.
    Strong,
    /// The `W/` prefix is ignored: `If-None-Match`.
    Weak,
}

fn etag_list_matches(list: &str, etag: &str, comparison: Comparison) -> bool {
    let etag = unquote(etag);
    list.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = match tag.strip_prefix("W/") {
            Some(_) if comparison == Comparison::Strong => return false,
            Some(weak) => weak,
            None => tag,
        };
        !tag.is_empty() && unquote(tag) == etag
    })
}

fn unquote(tag: &str) -> &str {
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
}

/// Whether a `Range` may be honoured under `If-Range` (RFC 9110 section 13.1.5): its validator,
/// an ETag (strong comparison, quoted or not) or an HTTP-date (equal to `Last-Modified` at
/// whole seconds), must match; otherwise the whole object is sent with 200.
pub fn if_range_allows(if_range: &str, etag: &str, last_modified: OffsetDateTime) -> bool {
    let validator = if_range.trim();
    if validator.is_empty() {
        return false;
    }
    if !validator.starts_with('"')
        && !validator.starts_with("W/")
        && let Some(date) = parse_http_date(validator)
    {
        return date.unix_timestamp() == last_modified.unix_timestamp();
    }
    // One validator, not a list, and `*` (an If-Match form) validates nothing here.
    validator != "*"
        && !validator.contains(',')
        && etag_list_matches(validator, etag, Comparison::Strong)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use time::macros::datetime;

    use super::*;

    const ETAG: &str = "\"9b2cf535f27731c974343645a3985328\"";
    const LM: OffsetDateTime = datetime!(2024-05-01 12:00:00.750 UTC);
    const BEFORE: OffsetDateTime = datetime!(2024-05-01 11:59:59 UTC);
    const SAME: OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);
    const AFTER: OffsetDateTime = datetime!(2024-05-01 12:00:01 UTC);

    fn pre(
        if_match: Option<&str>,
        if_none_match: Option<&str>,
        if_modified_since: Option<OffsetDateTime>,
        if_unmodified_since: Option<OffsetDateTime>,
    ) -> Preconditions {
        Preconditions {
            if_match: if_match.map(str::to_owned),
            if_none_match: if_none_match.map(str::to_owned),
            if_modified_since,
            if_unmodified_since,
        }
    }

    #[test]
    fn each_condition_alone() {
        use ErrorCode::{NotModified as NM, PreconditionFailed as PF};
        let unquoted = ETAG.trim_matches('"');
        let other = "\"0000\"";
        let cases: Vec<(Preconditions, Result<(), ErrorCode>)> = vec![
            (Preconditions::default(), Ok(())),
            (pre(Some(ETAG), None, None, None), Ok(())),
            (pre(Some(unquoted), None, None, None), Ok(())),
            (pre(Some("*"), None, None, None), Ok(())),
            (
                pre(Some(&format!("{other}, {ETAG}")), None, None, None),
                Ok(()),
            ),
            (
                pre(Some(&format!("{other},{unquoted}")), None, None, None),
                Ok(()),
            ),
            (pre(Some(other), None, None, None), Err(PF)),
            (pre(Some(""), None, None, None), Err(PF)),
            (pre(Some(&format!("W/{ETAG}")), None, None, None), Err(PF)),
            (
                pre(
                    Some("\"9B2CF535F27731C974343645A3985328\""),
                    None,
                    None,
                    None,
                ),
                Err(PF),
            ),
            (pre(None, Some(ETAG), None, None), Err(NM)),
            (pre(None, Some(unquoted), None, None), Err(NM)),
            (pre(None, Some("*"), None, None), Err(NM)),
            (pre(None, Some(&format!("W/{ETAG}")), None, None), Err(NM)),
            (
                pre(None, Some(&format!("{other}, {ETAG}")), None, None),
                Err(NM),
            ),
            (pre(None, Some(other), None, None), Ok(())),
            (pre(None, None, Some(BEFORE), None), Ok(())),
            // Same second as Last-Modified (whose milliseconds are dropped): not modified.
            (pre(None, None, Some(SAME), None), Err(NM)),
            (pre(None, None, Some(AFTER), None), Err(NM)),
            (pre(None, None, None, Some(BEFORE)), Err(PF)),
            (pre(None, None, None, Some(SAME)), Ok(())),
            (pre(None, None, None, Some(AFTER)), Ok(())),
        ];
        for (p, want) in cases {
            assert_eq!(p.evaluate(ETAG, LM), want, "{p:?}");
        }
    }

    #[test]
    fn condition_pairs_and_precedence() {
        use ErrorCode::{NotModified as NM, PreconditionFailed as PF};
        let other = "\"0000\"";
        let cases: Vec<(Preconditions, Result<(), ErrorCode>)> = vec![
            // S3's documented exception: If-Match true wins over If-Unmodified-Since false.
            (pre(Some(ETAG), None, None, Some(BEFORE)), Ok(())),
            (pre(Some(other), None, None, Some(AFTER)), Err(PF)),
            // S3's documented case: If-None-Match false with If-Modified-Since true is 304.
            (pre(None, Some(ETAG), Some(BEFORE), None), Err(NM)),
            // If-None-Match true makes If-Modified-Since irrelevant.
            (pre(None, Some(other), Some(AFTER), None), Ok(())),
            // 412 outranks 304.
            (pre(Some(other), Some(ETAG), None, None), Err(PF)),
            (pre(None, Some(ETAG), None, Some(BEFORE)), Err(PF)),
            (pre(None, None, Some(AFTER), Some(BEFORE)), Err(PF)),
            (pre(Some(other), None, Some(AFTER), None), Err(PF)),
            // Passing 412 checks still lead to 304 checks.
            (pre(Some(ETAG), Some(ETAG), None, None), Err(NM)),
            (pre(Some(ETAG), None, Some(SAME), None), Err(NM)),
            (pre(None, None, Some(SAME), Some(AFTER)), Err(NM)),
            (
                pre(Some("*"), Some(other), Some(BEFORE), Some(AFTER)),
                Ok(()),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(p.evaluate(ETAG, LM), want, "{p:?}");
        }
    }

    #[test]
    fn copy_source_failures_are_all_412() {
        let other = "\"0000\"";
        let cases = [
            (
                pre(None, Some(ETAG), None, None),
                Err(ErrorCode::PreconditionFailed),
            ),
            (
                pre(None, None, Some(AFTER), None),
                Err(ErrorCode::PreconditionFailed),
            ),
            // S3's documented copy case: if-none-match false, if-modified-since true: 412.
            (
                pre(None, Some(ETAG), Some(BEFORE), None),
                Err(ErrorCode::PreconditionFailed),
            ),
            (pre(Some(ETAG), None, None, Some(BEFORE)), Ok(())),
            (
                pre(Some(other), None, None, None),
                Err(ErrorCode::PreconditionFailed),
            ),
            (pre(None, Some(other), Some(BEFORE), Some(AFTER)), Ok(())),
        ];
        for (p, want) in cases {
            assert_eq!(p.evaluate_copy_source(ETAG, LM), want, "{p:?}");
        }
    }

    #[test]
    fn preconditions_from_headers() {
        let mut h = HeaderMap::new();
        assert!(Preconditions::from_headers(&h).is_empty());
        h.append("if-match", HeaderValue::from_static("\"a\""));
        h.append("if-match", HeaderValue::from_static("\"b\""));
        h.insert("if-none-match", HeaderValue::from_static("*"));
        h.insert(
            "if-modified-since",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        h.insert("if-unmodified-since", HeaderValue::from_static("yesterday"));
        h.insert(
            "x-amz-copy-source-if-match",
            HeaderValue::from_static("\"c\""),
        );
        h.insert(
            "x-amz-copy-source-if-unmodified-since",
            HeaderValue::from_static("Sunday, 06-Nov-94 08:49:37 GMT"),
        );
        let p = Preconditions::from_headers(&h);
        assert_eq!(p.if_match.as_deref(), Some("\"a\", \"b\""));
        assert_eq!(p.if_none_match.as_deref(), Some("*"));
        assert_eq!(
            p.if_modified_since,
            Some(datetime!(1994-11-06 08:49:37 UTC))
        );
        assert_eq!(p.if_unmodified_since, None);
        assert!(!p.is_empty());
        assert_eq!(p.evaluate("\"b\"", LM), Err(ErrorCode::NotModified));
        assert_eq!(p.evaluate("\"c\"", LM), Err(ErrorCode::PreconditionFailed));

        let c = Preconditions::from_copy_source_headers(&h);
        assert_eq!(
            c,
            pre(
                Some("\"c\""),
                None,
                None,
                Some(datetime!(1994-11-06 08:49:37 UTC))
            )
        );
        // A non-ASCII If-Match is kept, and so fails instead of being ignored.
        let mut h = HeaderMap::new();
        h.insert("if-match", HeaderValue::from_bytes(b"\"\xe9\"").unwrap());
        let p = Preconditions::from_headers(&h);
        assert!(p.if_match.is_some());
        assert_eq!(p.evaluate(ETAG, LM), Err(ErrorCode::PreconditionFailed));
    }

    #[test]
    fn if_range_validators() {
        let unquoted = ETAG.trim_matches('"');
        assert!(if_range_allows(ETAG, ETAG, LM));
        assert!(if_range_allows(&format!(" {ETAG} "), ETAG, LM));
        assert!(if_range_allows(unquoted, ETAG, LM));
        assert!(!if_range_allows("\"0000\"", ETAG, LM));
        assert!(!if_range_allows(&format!("W/{ETAG}"), ETAG, LM));
        assert!(!if_range_allows("*", ETAG, LM));
        assert!(!if_range_allows("", ETAG, LM));
        assert!(!if_range_allows(&format!("\"0000\", {ETAG}"), ETAG, LM));
        // Dates must equal Last-Modified at whole seconds.
        assert!(if_range_allows("Wed, 01 May 2024 12:00:00 GMT", ETAG, LM));
        assert!(!if_range_allows("Wed, 01 May 2024 12:00:01 GMT", ETAG, LM));
        assert!(!if_range_allows("Wed, 01 May 2024 11:59:59 GMT", ETAG, LM));
        assert!(if_range_allows(
            "Wednesday, 01-May-24 12:00:00 GMT",
            ETAG,
            LM
        ));
        assert!(!if_range_allows("not a date", ETAG, LM));
    }
}
