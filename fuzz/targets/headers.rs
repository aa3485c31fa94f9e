//! The request headers the gateway reads as values: `Range` (resolved against any object size),
//! the conditional headers (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`, their `x-amz-copy-source-` forms, `If-Range`) and the HTTP-dates in
//! them, `x-amz-copy-source`, `x-amz-trailer`, `Content-MD5`, `x-amz-checksum-*` and
//! `x-amz-checksum-type`. Properties: a resolved range is non-empty, in bounds, and its
//! `Content-Range` reads back as the same range; an HTTP-date that parses formats back to the
//! same instant; a checksum value that parses is the canonical base64 of its digest.
//!
//! Input fields: a header value, an object size, headers, an ETag, a last-modified time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cairn::checksum::{Checksum, ChecksumAlgorithm, ChecksumType, parse_content_md5};
use cairn::s3::chunked::parse_trailer_header;
use cairn::s3::conditions::{Preconditions, if_range_allows};
use cairn::s3::date::{http_date, parse_http_date};
use cairn::s3::handlers::parse_copy_source;
use cairn::s3::range::{RangeSpec, content_range, parse_range};
use time::OffsetDateTime;

use crate::input::{self, Fields};

pub fn run(data: &[u8]) {
    let mut f = Fields::new(data);
    let value = f.text();
    let size = match f.number() {
        n if n & 1 == 0 => n >> 1,
        n => (n >> 1) % 100_000,
    };
    let headers = input::headers(f.bytes());
    let etag = format!("\"{}\"", f.text());
    let last_modified = OffsetDateTime::from_unix_timestamp((f.number() % 253_402_300_800) as i64)
        .expect("within 1970-9999");

    range(&value, size);

    if let Some(date) = parse_http_date(&value) {
        let formatted = http_date(date);
        assert_eq!(
            parse_http_date(&formatted).map(OffsetDateTime::unix_timestamp),
            Some(date.unix_timestamp()),
            "{value:?} formatted as {formatted:?}"
        );
    }

    for conditions in [
        Preconditions::from_headers(&headers),
        Preconditions::from_copy_source_headers(&headers),
    ] {
        let plain = conditions.evaluate(&etag, last_modified);
        let copy = conditions.evaluate_copy_source(&etag, last_modified);
        assert_eq!(plain.is_ok(), copy.is_ok());
        if conditions.is_empty() {
            assert!(plain.is_ok());
        }
    }
    let _ = if_range_allows(&value, &etag, last_modified);

    if let Ok((bucket, key)) = parse_copy_source(&value) {
        assert!(!bucket.is_empty() && !key.is_empty());
    }
    if let Ok(names) = parse_trailer_header(&value) {
        assert!(!names.is_empty());
    }
    if let Some(md5) = parse_content_md5(&value) {
        assert_eq!(STANDARD.encode(md5), value);
    }
    for algorithm in ChecksumAlgorithm::ALL {
        if let Some(checksum) = Checksum::from_base64(algorithm, &value) {
            assert_eq!(checksum.value.len(), algorithm.digest_len());
            assert_eq!(checksum.to_base64(), value);
        }
    }
    if let Some(algorithm) = ChecksumAlgorithm::parse(&value) {
        assert!(algorithm.as_str().eq_ignore_ascii_case(&value));
    }
    if let Some(kind) = ChecksumType::parse(&value) {
        assert!(kind.as_str().eq_ignore_ascii_case(&value));
    }
}

fn range(value: &str, size: u64) {
    let Some(spec) = parse_range(value) else {
        return;
    };
    match spec.resolve(size) {
        Ok(Some(range)) => {
            assert!(
                range.start < range.end && range.end <= size,
                "{value:?} on {size}: {range:?}"
            );
            if let RangeSpec::FromTo(first, _) | RangeSpec::From(first) = spec {
                assert_eq!(range.start, first);
            }
            if let RangeSpec::Suffix(length) = spec {
                assert_eq!(range.end, size);
                assert_eq!(range.end - range.start, length.min(size));
            }
            let header = content_range(&range, size);
            let spec_back = header
                .strip_prefix("bytes ")
                .and_then(|rest| rest.strip_suffix(&format!("/{size}")))
                .and_then(|span| parse_range(&format!("bytes={span}")));
            assert_eq!(
                spec_back.map(|s| s.resolve(size)),
                Some(Ok(Some(range))),
                "{header}"
            );
        }
        Ok(None) => assert!(
            matches!(spec, RangeSpec::Suffix(_)) && size == 0,
            "{value:?} ignored on {size}"
        ),
        Err(unsatisfiable) => assert_eq!(unsatisfiable.size, size),
    }
}
