//! Listing: pages of keys in UTF-8 byte order, rolled up into common prefixes at a delimiter.
//! After a common prefix the scan jumps past every key that shares it, so a page costs the same
//! whether a prefix holds one key or millions.

use super::{Gateway, GatewayResult};
use crate::meta::{ListStart, ObjectMeta, Upload, prefix_successor};

/// Keys fetched from the metadata store per round trip, at most (plus one to see whether a page
/// is truncated).
const SCAN_PAGE: usize = 1000;

/// Keys of the first round trip of a listing with a delimiter. Its batches end at the first key
/// that rolls up into a common prefix, the scan then jumping past that prefix, so they start
/// small and double while they hold only plain keys.
const FIRST_ROLLUP_SCAN: usize = 16;

#[derive(Clone, Debug)]
pub struct ListQuery<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Where the previous page stopped (a marker, start-after or continuation token): a key or
    /// a common prefix already returned; the page starts after it.
    pub after: Option<&'a str>,
    pub max_keys: usize,
}

#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix of the page, where the next page starts after.
    pub last: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct UploadPage {
    pub uploads: Vec<Upload>,
    pub truncated: bool,
}

/// The common prefix that `key` rolls up into, if any.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    rest.find(d).map(|i| &key[..prefix.len() + i + d.len()])
}

impl Gateway {
    pub async fn list_objects(&self, q: &ListQuery<'_>) -> GatewayResult<ListPage> {
        self.require_bucket(q.bucket).await?;
        let mut page = ListPage::default();
        // The scan position: (key, inclusive).
        let mut cursor: (String, bool) = match q.after {
            None => (q.prefix.to_owned(), true),
            // A marker inside a rolled-up prefix means that whole prefix was returned already.
            Some(after) => match common_prefix(after, q.prefix, q.delimiter) {
                Some(cp) if after.starts_with(q.prefix) => match prefix_successor(cp) {
                    Some(next) => (next, true),
                    None => return Ok(page),
                },
                _ => (after.to_owned(), false),
            },
        };
        let mut count = 0usize;
        let mut scan = match q.delimiter {
            Some(d) if !d.is_empty() => FIRST_ROLLUP_SCAN,
            _ => SCAN_PAGE,
        };
        'scan: loop {
            let start = ListStart {
                key: &cursor.0,
                inclusive: cursor.1,
            };
            // One key more than the page still needs tells whether it is truncated without
            // another round trip.
            let limit = (q.max_keys - count).min(scan) + 1;
            let batch = self
                .meta
                .list_objects(q.bucket, q.prefix, start, limit)
                .await?;
            let exhausted = batch.len() < limit;
            if batch.is_empty() {
                break;
            }
            let mut next_cursor = None;
            let mut rolled_up = false;
            for object in batch {
                if count == q.max_keys {
                    // With max-keys=0 there is no last key to continue after, so nothing is
                    // reported truncated (a token-less IsTruncated would loop clients).
                    page.truncated = count > 0;
                    break 'scan;
                }
                if let Some(cp) = common_prefix(&object.key, q.prefix, q.delimiter) {
                    let cp = cp.to_owned();
                    count += 1;
                    page.last = Some(cp.clone());
                    match prefix_successor(&cp) {
                        Some(next) => next_cursor = Some((next, true)),
                        None => {
                            page.common_prefixes.push(cp);
                            break 'scan;
                        }
                    }
                    page.common_prefixes.push(cp);
                    // Jump past every key under this prefix.
                    rolled_up = true;
                    break;
                }
                count += 1;
                page.last = Some(object.key.clone());
                next_cursor = Some((object.key.clone(), false));
                page.objects.push(object);
            }
            match next_cursor {
                Some(c) => cursor = c,
                None => break,
            }
            if !rolled_up {
                scan = (scan * 2).min(SCAN_PAGE);
            }
            if exhausted && page.common_prefixes.last() != page.last.as_ref() {
                break;
            }
        }
        Ok(page)
    }

    /// In-progress uploads ordered by key then upload id, after the markers.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max_uploads: usize,
    ) -> GatewayResult<UploadPage> {
        self.require_bucket(bucket).await?;
        let mut uploads = self
            .meta
            .list_uploads(
                bucket,
                prefix,
                key_marker,
                upload_id_marker,
                max_uploads + 1,
            )
            .await?;
        let truncated = uploads.len() > max_uploads;
        uploads.truncate(max_uploads);
        Ok(UploadPage { uploads, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_up_at_the_delimiter_after_the_prefix() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a", "", Some("/")), None);
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(common_prefix("a/b", "", Some("")), None);
        assert_eq!(common_prefix("a--b--c", "a", Some("--")), Some("a--"));
    }
}
