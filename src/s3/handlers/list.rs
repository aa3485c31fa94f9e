//! ListObjects (v1) and ListObjectsV2. Both page through the same scan; they differ in how the
//! place to resume is spelled (marker vs. an opaque continuation token) and in a few elements.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;

use super::bucket::write_owner;
use super::request::{Request, query_number};
use super::response::{S3Result, xml_response};
use crate::gateway::{Gateway, ListQuery};
use crate::s3::date::iso8601;
use crate::s3::error::{ErrorCode, S3Error};
use crate::s3::sigv4::uri_encode;
use crate::s3::xml::XmlWriter;

/// S3 returns at most 1000 keys per page, whatever max-keys asks for.
const MAX_KEYS: usize = 1000;

pub async fn list_objects(gw: &Gateway, req: Request, v2: bool) -> S3Result {
    let prefix = req.query("prefix").unwrap_or_default();
    let delimiter = req.query("delimiter").filter(|d| !d.is_empty());
    let url_encode = match req.query("encoding-type") {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("url") => true,
        Some(_) => {
            return Err(S3Error::new(ErrorCode::InvalidArgument)
                .with_message("Invalid Encoding Method specified in Request")
                .with_extra("ArgumentName", "encoding-type"));
        }
    };
    let max_keys = match query_number::<i64>(&req, "max-keys")? {
        None => MAX_KEYS,
        Some(n) if n < 0 => {
            return Err(S3Error::new(ErrorCode::InvalidArgument)
                .with_message("Argument maxKeys must be an integer between 0 and 2147483647")
                .with_extra("ArgumentName", "maxKeys"));
        }
        Some(n) => (n as usize).min(MAX_KEYS),
    };
    let token = req.query("continuation-token");
    let token_key = match token {
        Some(t) if v2 => Some(decode_token(t)?),
        _ => None,
    };
    let start_after = req.query("start-after").filter(|s| !s.is_empty());
    let marker = req.query("marker").filter(|s| !s.is_empty());
    let after = if v2 {
        token_key.as_deref().or(start_after)
    } else {
        marker
    };
    let page = gw
        .list_objects(&ListQuery {
            bucket: req.bucket(),
            prefix,
            delimiter,
            after,
            max_keys,
        })
        .await?;

    let enc = |s: &str| {
        if url_encode {
            uri_encode(s, false)
        } else {
            s.to_owned()
        }
    };
    let mut x = XmlWriter::new("ListBucketResult");
    x.element("Name", req.bucket());
    x.element("Prefix", &enc(prefix));
    if v2 {
        if let Some(t) = token {
            x.element("ContinuationToken", t);
        }
        if let Some(s) = start_after {
            x.element("StartAfter", &enc(s));
        }
        x.element(
            "KeyCount",
            &(page.objects.len() + page.common_prefixes.len()).to_string(),
        );
    } else {
        x.element("Marker", &enc(marker.unwrap_or_default()));
    }
    x.element("MaxKeys", &max_keys.to_string());
    if let Some(d) = delimiter {
        x.element("Delimiter", &enc(d));
    }
    if url_encode {
        x.element("EncodingType", "url");
    }
    x.element("IsTruncated", if page.truncated { "true" } else { "false" });
    if page.truncated
        && let Some(last) = &page.last
    {
        if v2 {
            x.element("NextContinuationToken", &URL_SAFE_NO_PAD.encode(last));
        } else {
            // AWS documents NextMarker only with a delimiter; clients paging without one
            // use the last key, which is the same value, so it is always sent.
            x.element("NextMarker", &enc(last));
        }
    }
    let fetch_owner = !v2 || req.query("fetch-owner") == Some("true");
    let accounts = gw.access().accounts().await?;
    for o in &page.objects {
        x.open("Contents");
        x.element("Key", &enc(&o.key));
        x.element("LastModified", &iso8601(o.last_modified));
        x.element("ETag", &format!("\"{}\"", o.etag));
        x.element("Size", &o.size.to_string());
        x.element("StorageClass", o.headers.storage_class());
        if fetch_owner {
            write_owner(&mut x, "Owner", &o.owner, &accounts);
        }
        x.close("Contents");
    }
    for p in &page.common_prefixes {
        x.open("CommonPrefixes");
        x.element("Prefix", &enc(p));
        x.close("CommonPrefixes");
    }
    xml_response(StatusCode::OK, x.finish())
}

fn decode_token(token: &str) -> Result<String, S3Error> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::new(ErrorCode::InvalidArgument)
                .with_message("The continuation token provided is incorrect")
                .with_extra("ArgumentName", "continuation-token")
        })
}
