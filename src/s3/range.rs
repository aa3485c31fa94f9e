//! The read path's header logic, kept pure: `Range` parsing and resolution against an object's
//! size, conditional requests (`If-Match` and friends, also in their `x-amz-copy-source-` form),
//! `If-Range`, and the two date formats S3 speaks. Byte ranges are half-open
//! (`start..end`) everywhere past parsing; the inclusive form exists only in the `Range` and
//! `Content-Range` headers.

use std::ops::Range;

use http::HeaderMap;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::s3::error::{ErrorCode, S3Error};

/// A single byte range as the `Range` header states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=first-last`, both inclusive.
    FromTo(u64, u64),
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-length`: the last `length` bytes.
    Suffix(u64),
}

/// Parses a `Range` header. `None` means the header is to be ignored and the whole object sent
/// with 200, which is what S3 does for several ranges (`bytes=0-1,3-4`, see
/// <https://github.com/awslabs/aws-c-s3/issues/257>), other units, `last < first` and syntax
/// it cannot read (RFC 9110 section 14.2 lets a server ignore such a header). The unit is
/// case-insensitive and whitespace around the range is tolerated, per RFC 9110 section 14.1.
/// Numbers too large for a `u64` saturate: they lie beyond any object either way.
pub fn parse_range(header: &str) -> Option<RangeSpec> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(RangeSpec::Suffix(parse_position(last)?)),
        (false, true) => Some(RangeSpec::From(parse_position(first)?)),
        (false, false) => {
            let (first, last) = (parse_position(first)?, parse_position(last)?);
            (first <= last).then_some(RangeSpec::FromTo(first, last))
        }
    }
}

/// Decimal digits only (no sign, no inner whitespace), saturating at `u64::MAX`.
fn parse_position(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// A range that selects no byte of the object: 416 `InvalidRange`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsatisfiable {
    /// The object's size in bytes.
    pub size: u64,
}

impl Unsatisfiable {
    /// The `Content-Range` a 416 carries so the client can learn the size and retry.
    pub fn content_range(&self) -> String {
        format!("bytes */{}", self.size)
    }

    /// The error S3 returns, with the requested range and the actual size as extra elements.
    pub fn to_error(&self, range_header: &str) -> S3Error {
        S3Error::new(ErrorCode::InvalidRange)
            .with_extra("RangeRequested", range_header)
            .with_extra("ActualObjectSize", self.size.to_string())
    }
}

impl RangeSpec {
    /// The half-open byte range to send from an object of `size` bytes.
    ///
    /// `Ok(Some(r))`: send `r` (never empty) with 206 and [`content_range`]. `Ok(None)`: ignore
    /// the header and send the whole object with 200; that happens for a suffix range on an
    /// empty object, which RFC 9110 section 14.1.1 calls satisfiable but no `Content-Range`
    /// can describe, and for a hand-built `FromTo` with `last < first`.
    /// `Err`: 416. A first byte at or past the end is unsatisfiable, so on an empty object
    /// every non-suffix range is, as on AWS (<https://github.com/minio/minio/pull/6557>,
    /// <https://github.com/minio/minio-java/issues/636>); so is `bytes=-0`. A last byte past
    /// the end is clamped to the end.
    pub fn resolve(&self, size: u64) -> Result<Option<Range<u64>>, Unsatisfiable> {
        let unsatisfiable = Err(Unsatisfiable { size });
        match *self {
            RangeSpec::FromTo(first, last) if last < first => Ok(None),
            RangeSpec::FromTo(first, _) | RangeSpec::From(first) if first >= size => unsatisfiable,
            // `last < size` here, so `last + 1` cannot overflow.
            RangeSpec::FromTo(first, last) => Ok(Some(first..last.min(size - 1) + 1)),
            RangeSpec::From(first) => Ok(Some(first..size)),
            RangeSpec::Suffix(0) => unsatisfiable,
            RangeSpec::Suffix(_) if size == 0 => Ok(None),
            RangeSpec::Suffix(length) => Ok(Some(size.saturating_sub(length)..size)),
        }
    }
}

/// `Content-Range` of a 206: `bytes first-last/size`. `range` must be non-empty, as
/// [`RangeSpec::resolve`] guarantees.
pub fn content_range(range: &Range<u64>, size: u64) -> String {
    format!(
        "bytes {}-{}/{}",
        range.start,
        range.end.saturating_sub(1),
        size
    )
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const WEEKDAYS_LONG: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn utc(t: OffsetDateTime) -> OffsetDateTime {
    // Only dates within hours of the supported range's ends fail to convert.
    t.checked_to_offset(UtcOffset::UTC).unwrap_or(t)
}

/// IMF-fixdate, as in `Last-Modified`: `Tue, 15 Nov 1994 08:12:31 GMT`.
pub fn http_date(t: OffsetDateTime) -> String {
    let t = utc(t);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[usize::from(t.weekday().number_days_from_monday())],
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses the three HTTP-date forms of RFC 9110 section 5.6.7: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`). The weekday must be a valid name but is not checked against
/// the date. RFC 850's two-digit years 70-99 mean 19xx and 00-69 mean 20xx.
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let (day, month, year, time) = match tokens.as_slice() {
        [weekday, day, month, year, time, "GMT"] => {
            weekday_index(weekday.strip_suffix(',')?, &WEEKDAYS)?;
            (*day, *month, parse_year(year, 4)?, *time)
        }
        [weekday, date, time, "GMT"] => {
            weekday_index(weekday.strip_suffix(',')?, &WEEKDAYS_LONG)?;
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let year = parse_year(year, 2)?;
            (
                day,
                month,
                if year < 70 { 2000 + year } else { 1900 + year },
                *time,
            )
        }
        [weekday, month, day, time, year] => {
            weekday_index(weekday, &WEEKDAYS)?;
            (*day, *month, parse_year(year, 4)?, *time)
        }
        _ => return None,
    };
    if !(1..=2).contains(&day.len()) || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day: u8 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?;
    let month = Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(date.with_time(parse_time(time)?).assume_utc())
}

fn weekday_index(name: &str, names: &[&str; 7]) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(name))
}

fn parse_year(digits: &str, len: usize) -> Option<i32> {
    if digits.len() != len || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn parse_time(s: &str) -> Option<Time> {
    let mut fields = s.split(':').map(|f| {
        (f.len() == 2 && f.bytes().all(|b| b.is_ascii_digit()))
            .then(|| f.parse::<u8>().ok())
            .flatten()
    });
    let (hour, minute, second) = (fields.next()??, fields.next()??, fields.next()??);
    if fields.next().is_some() {
        return None;
    }
    Time::from_hms(hour, minute, second).ok()
}

/// ISO 8601 with milliseconds in UTC, as S3's XML carries times: `2009-10-12T17:50:30.000Z`.
pub fn iso8601(t: OffsetDateTime) -> String {
    let t = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

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
    use super::*;
    use http::HeaderValue;
    use time::macros::datetime;

    const CHUNK: u64 = 64 * 1024 * 1024;

    type Resolved = Result<Option<Range<u64>>, Unsatisfiable>;

    fn resolve(header: &str, size: u64) -> Resolved {
        parse_range(header)
            .unwrap_or_else(|| panic!("{header} should parse"))
            .resolve(size)
    }

    #[test]
    fn parse_forms() {
        use RangeSpec::*;
        let cases = [
            ("bytes=0-0", FromTo(0, 0)),
            ("bytes=0-499", FromTo(0, 499)),
            ("bytes=500-", From(500)),
            ("bytes=-500", Suffix(500)),
            ("bytes=-0", Suffix(0)),
            ("bytes=0-", From(0)),
            ("Bytes=1-2", FromTo(1, 2)),
            ("BYTES=1-2", FromTo(1, 2)),
            ("  bytes=1-2  ", FromTo(1, 2)),
            ("bytes= 1-2", FromTo(1, 2)),
            ("bytes=1-2 ", FromTo(1, 2)),
            ("bytes =1-2", FromTo(1, 2)),
            ("bytes=1-2,", FromTo(1, 2)),
            ("bytes=, 1-2", FromTo(1, 2)),
            ("bytes=007-010", FromTo(7, 10)),
            ("bytes=5-5", FromTo(5, 5)),
            ("bytes=0-18446744073709551615", FromTo(0, u64::MAX)),
            ("bytes=0-99999999999999999999999999", FromTo(0, u64::MAX)),
            ("bytes=99999999999999999999999999-", From(u64::MAX)),
            ("bytes=-99999999999999999999999999", Suffix(u64::MAX)),
        ];
        for (header, want) in cases {
            assert_eq!(parse_range(header), Some(want), "{header}");
        }
    }

    #[test]
    fn parse_ignores_what_s3_ignores() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=0-1,3-4",
            "bytes=0-1, 3-4",
            "bytes=-1,-2",
            "items=0-1",
            "bits=0-1",
            "=0-1",
            "bytes=a-b",
            "bytes=1-a",
            "bytes=+1-2",
            "bytes=-+1",
            "bytes=--1",
            "bytes=1--2",
            "bytes=1-2-3",
            "bytes=1 - 2",
            "bytes=0x10-",
            "bytes=1.5-2",
            "bytes=5-4",
            "bytes=1-2;q=1",
            "bytes 0-1",
            "0-1",
            "bytes=١-٢",
        ] {
            assert_eq!(parse_range(header), None, "{header:?}");
        }
    }

    #[test]
    fn resolve_at_every_boundary() {
        for size in [1, 2, CHUNK - 1, CHUNK, CHUNK + 1] {
            let last = size - 1;
            let sat = |r: Range<u64>| Ok(Some(r));
            let cases: Vec<(String, Resolved)> = vec![
                ("bytes=0-0".into(), sat(0..1)),
                (format!("bytes=0-{last}"), sat(0..size)),
                (format!("bytes=0-{size}"), sat(0..size)),
                ("bytes=0-18446744073709551615".into(), sat(0..size)),
                (format!("bytes={last}-{last}"), sat(last..size)),
                (format!("bytes={last}-{size}"), sat(last..size)),
                (format!("bytes={last}-"), sat(last..size)),
                ("bytes=0-".into(), sat(0..size)),
                (format!("bytes={size}-"), Err(Unsatisfiable { size })),
                (format!("bytes={size}-{size}"), Err(Unsatisfiable { size })),
                (
                    format!("bytes={size}-{}", size + 10),
                    Err(Unsatisfiable { size }),
                ),
                (
                    "bytes=18446744073709551615-".into(),
                    Err(Unsatisfiable { size }),
                ),
                ("bytes=-0".into(), Err(Unsatisfiable { size })),
                ("bytes=-1".into(), sat(last..size)),
                (
                    format!("bytes=-{last}"),
                    if last == 0 {
                        Err(Unsatisfiable { size })
                    } else {
                        sat(1..size)
                    },
                ),
                (format!("bytes=-{size}"), sat(0..size)),
                (format!("bytes=-{}", size + 1), sat(0..size)),
                ("bytes=-18446744073709551615".into(), sat(0..size)),
            ];
            for (header, want) in cases {
                let got = resolve(&header, size);
                assert_eq!(got, want, "{header} of {size}");
                if let Ok(Some(r)) = got {
                    assert!(!r.is_empty() && r.end <= size, "{header} of {size}");
                }
            }
        }
        // Ranges with a first byte inside the object, at the chunk boundaries.
        let size = 3 * CHUNK;
        for first in [CHUNK - 1, CHUNK, CHUNK + 1] {
            assert_eq!(
                resolve(&format!("bytes={first}-{}", first + CHUNK - 1), size),
                Ok(Some(first..first + CHUNK))
            );
        }
        assert_eq!(resolve("bytes=1-1", 2), Ok(Some(1..2)));
        assert_eq!(resolve("bytes=1-1", 1), Err(Unsatisfiable { size: 1 }));
    }

    #[test]
    fn resolve_on_an_empty_object() {
        for header in [
            "bytes=0-0",
            "bytes=0-",
            "bytes=0-10",
            "bytes=1-2",
            "bytes=-0",
        ] {
            assert_eq!(
                resolve(header, 0),
                Err(Unsatisfiable { size: 0 }),
                "{header}"
            );
        }
        // A suffix range is satisfiable per RFC 9110 but has no bytes to describe: send 200.
        for header in ["bytes=-1", "bytes=-5", "bytes=-18446744073709551615"] {
            assert_eq!(resolve(header, 0), Ok(None), "{header}");
        }
        // A hand-built inverted range is ignored rather than trusted.
        assert_eq!(RangeSpec::FromTo(5, 2).resolve(10), Ok(None));
    }

    #[test]
    fn unsatisfiable_reporting() {
        let u = Unsatisfiable { size: 42 };
        assert_eq!(u.content_range(), "bytes */42");
        let err = u.to_error("bytes=50-");
        assert_eq!(err.code, ErrorCode::InvalidRange);
        assert_eq!(err.status().as_u16(), 416);
        assert_eq!(
            err.extra,
            vec![
                ("RangeRequested", "bytes=50-".to_owned()),
                ("ActualObjectSize", "42".to_owned())
            ]
        );
    }

    #[test]
    fn content_range_format() {
        assert_eq!(content_range(&(0..1), 1), "bytes 0-0/1");
        assert_eq!(content_range(&(0..500), 1000), "bytes 0-499/1000");
        assert_eq!(content_range(&(999..1000), 1000), "bytes 999-999/1000");
        assert_eq!(
            content_range(&(CHUNK..CHUNK + 1), u64::MAX),
            format!("bytes {CHUNK}-{CHUNK}/18446744073709551615")
        );
    }

    #[test]
    fn http_date_formats_imf_fixdate() {
        assert_eq!(
            http_date(datetime!(1994-11-15 08:12:31 UTC)),
            "Tue, 15 Nov 1994 08:12:31 GMT"
        );
        assert_eq!(
            http_date(datetime!(2024-02-29 23:59:59.999 UTC)),
            "Thu, 29 Feb 2024 23:59:59 GMT"
        );
        assert_eq!(
            http_date(datetime!(2000-01-02 03:04:05 +02:00)),
            "Sun, 02 Jan 2000 01:04:05 GMT"
        );
        assert_eq!(
            http_date(datetime!(1999-12-31 23:00:00 -01:30)),
            "Sat, 01 Jan 2000 00:30:00 GMT"
        );
        assert_eq!(
            http_date(OffsetDateTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        // Extreme values must not panic.
        let _ = http_date(datetime!(-9999-01-01 00:00:00 +01:00));
        let _ = iso8601(datetime!(9999-12-31 23:59:59 -01:00));
    }

    #[test]
    fn parse_http_date_forms() {
        let want = datetime!(1994-11-06 08:49:37 UTC);
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 06 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT ",
            "sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_http_date("Monday, 01-Jan-01 00:00:00 GMT"),
            Some(datetime!(2001-01-01 00:00:00 UTC))
        );
        assert_eq!(
            parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT"),
            Some(OffsetDateTime::UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Wednesday, 31-Dec-69 23:59:59 GMT"),
            Some(datetime!(2069-12-31 23:59:59 UTC))
        );
        // Round trip through our own formatter.
        let t = datetime!(2038-01-19 03:14:08 UTC);
        assert_eq!(parse_http_date(&http_date(t)), Some(t));
    }

    #[test]
    fn parse_http_date_rejects() {
        for s in [
            "",
            "garbage",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 01994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 006 Nov 1994 08:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 94",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parse_http_date(s), None, "{s:?}");
        }
    }

    #[test]
    fn iso8601_format() {
        assert_eq!(
            iso8601(datetime!(2009-10-12 17:50:30 UTC)),
            "2009-10-12T17:50:30.000Z"
        );
        assert_eq!(
            iso8601(datetime!(2009-10-12 17:50:30.123_456_789 UTC)),
            "2009-10-12T17:50:30.123Z"
        );
        assert_eq!(
            iso8601(datetime!(2009-10-13 01:00:00.5 +08:00)),
            "2009-10-12T17:00:00.500Z"
        );
    }

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
