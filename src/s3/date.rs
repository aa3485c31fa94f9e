//! The two date formats S3 speaks: HTTP-dates in headers (`Last-Modified`, `Date`,
//! `If-Modified-Since`...), read and written by the `httpdate` crate, and ISO 8601 in XML
//! bodies (`LastModified`, `Initiated`). Times are `time::OffsetDateTime` everywhere else.

use std::time::SystemTime;

use time::macros::datetime;
use time::{OffsetDateTime, UtcOffset};

/// The last instant an HTTP-date can carry: its year has four digits, and none is before 1970
/// in `httpdate`.
const LAST_HTTP_DATE: OffsetDateTime = datetime!(9999-12-31 23:59:59 UTC);

fn utc(t: OffsetDateTime) -> OffsetDateTime {
    // Only dates within hours of the supported range's ends fail to convert.
    t.checked_to_offset(UtcOffset::UTC).unwrap_or(t)
}

/// IMF-fixdate, as in `Last-Modified`: `Tue, 15 Nov 1994 08:12:31 GMT`. Sub-second precision
/// is dropped; times outside 1970-9999 are clamped to that range.
pub fn http_date(t: OffsetDateTime) -> String {
    let t = t.clamp(OffsetDateTime::UNIX_EPOCH, LAST_HTTP_DATE);
    httpdate::fmt_http_date(SystemTime::from(t))
}

/// Parses the three HTTP-date forms of RFC 9110 section 5.6.7: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`, years 70-99
/// meaning 19xx and 00-69 20xx) and asctime (`Sun Nov  6 08:49:37 1994`). Surrounding
/// whitespace is ignored; anything else that does not follow the grammar is `None`.
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    httpdate::parse_http_date(s).ok().map(OffsetDateTime::from)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Times an HTTP-date cannot carry are clamped to its range.
        assert_eq!(
            http_date(datetime!(-9999-01-01 00:00:00 +01:00)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            http_date(datetime!(9999-12-31 23:59:59 -01:00)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
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
            parse_http_date("Tuesday, 31-Dec-69 23:59:59 GMT"),
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
            // RFC 9110's grammar is case-sensitive, has two-digit days, and a weekday must be
            // that of the date; before 1970 is out of range.
            "sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Wednesday, 31-Dec-69 23:59:59 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
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
}
