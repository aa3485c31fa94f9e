//! The read path's `Range` header, kept pure: parsing and resolution against an object's size,
//! and the `Content-Range` of the answer. Byte ranges are half-open (`start..end`) everywhere
//! past parsing; the inclusive form exists only in the `Range` and `Content-Range` headers.
//! Whether a range is honoured at all (`If-Range`) is decided in `conditions.rs`.

use std::ops::Range;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
