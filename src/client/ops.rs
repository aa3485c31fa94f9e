//! The S3 operations `cairn bench` drives, on one [`Conn`]: each builds its request, checks the
//! status it expects and turns anything else into the S3 error the body carries. Bodies are
//! declared `UNSIGNED-PAYLOAD`, as SDKs send large ones.

use std::ops::Range;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, RANGE};
use http::{HeaderValue, Method, StatusCode};

use super::{Body, Conn, Error, PayloadHash, Request, Response};
use crate::s3::sigv4::uri_encode;

/// Error and XML control bodies are read up to this size; a listing page of 1000 long keys
/// stays well below it.
const MAX_CONTROL_BODY: usize = 4 << 20;

/// One listing page, as counted by the bench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub keys: usize,
    pub common_prefixes: usize,
    /// The continuation token when the listing is truncated.
    pub next: Option<String>,
}

/// A path-style request for `key` in `bucket` (the bucket itself when `key` is empty).
fn request(method: Method, bucket: &str, key: &str) -> Request {
    let mut path = format!("/{bucket}");
    if !key.is_empty() {
        path.push('/');
        path.push_str(&uri_encode(key, false));
    }
    Request::new(method, &path).payload(PayloadHash::Unsigned)
}

impl Conn {
    /// The response if its status is one of `expected`, else the S3 error it carries.
    async fn expect(
        &mut self,
        operation: &str,
        response: Response,
        expected: &[StatusCode],
    ) -> Result<Response, Error> {
        if expected.contains(&response.status) {
            return Ok(response);
        }
        let status = response.status;
        let body = self.read_body(response, MAX_CONTROL_BODY).await?;
        let text = String::from_utf8_lossy(&body);
        Err(Error::Status {
            operation: operation.to_owned(),
            status,
            code: element(&text, "Code").unwrap_or_default(),
            message: element(&text, "Message").unwrap_or_default(),
        })
    }

    /// Sends `request` and reads its whole (small) body, if the status is one of `expected`.
    async fn call(
        &mut self,
        operation: &str,
        request: Request,
        expected: &[StatusCode],
    ) -> Result<(http::HeaderMap, Bytes), Error> {
        let response = self.send(request).await?;
        let mut response = self.expect(operation, response, expected).await?;
        let headers = std::mem::take(&mut response.headers);
        let body = self.read_body(response, MAX_CONTROL_BODY).await?;
        Ok((headers, body))
    }

    /// Whether `bucket` exists and the key may use it.
    pub async fn head_bucket(&mut self, bucket: &str) -> Result<bool, Error> {
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let response = self.send(request(Method::HEAD, bucket, "")).await?;
        let response = self.expect("HeadBucket", response, &ok).await?;
        Ok(response.status == StatusCode::OK)
    }

    /// Creates `bucket`; one the key already owns is fine.
    pub async fn create_bucket(&mut self, bucket: &str) -> Result<(), Error> {
        let region = &self.endpoint().region;
        let body = if region == "us-east-1" {
            Body::empty()
        } else {
            Body::full(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            ))
        };
        let create = request(Method::PUT, bucket, "").body(body);
        match self.call("CreateBucket", create, &[StatusCode::OK]).await {
            Err(Error::Status { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    pub async fn put_object(&mut self, bucket: &str, key: &str, body: Body) -> Result<(), Error> {
        let put = request(Method::PUT, bucket, key)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .body(body);
        self.call("PutObject", put, &[StatusCode::OK])
            .await
            .map(|_| ())
    }

    /// Starts reading `key` (bytes `range` of it, when given); the caller reads the body with
    /// [`Conn::data`].
    pub async fn get_object(
        &mut self,
        bucket: &str,
        key: &str,
        range: Option<&Range<u64>>,
    ) -> Result<Response, Error> {
        let mut get = request(Method::GET, bucket, key);
        let status = match range {
            Some(r) if r.end > r.start => {
                let value = format!("bytes={}-{}", r.start, r.end - 1);
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| Error::Protocol(format!("invalid range {value}")))?;
                get = get.header(RANGE, value);
                StatusCode::PARTIAL_CONTENT
            }
            _ => StatusCode::OK,
        };
        let response = self.send(get).await?;
        self.expect("GetObject", response, &[status]).await
    }

    /// The size of `key`, or `None` if it does not exist.
    pub async fn head_object(&mut self, bucket: &str, key: &str) -> Result<Option<u64>, Error> {
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let response = self.send(request(Method::HEAD, bucket, key)).await?;
        let response = self.expect("HeadObject", response, &ok).await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let len = response
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Protocol(format!("HEAD {key}: no Content-Length")))?;
        Ok(Some(len))
    }

    pub async fn delete_object(&mut self, bucket: &str, key: &str) -> Result<(), Error> {
        let ok = [StatusCode::NO_CONTENT, StatusCode::OK];
        self.call("DeleteObject", request(Method::DELETE, bucket, key), &ok)
            .await
            .map(|_| ())
    }

    /// Starts a multipart upload; returns its upload id.
    pub async fn create_multipart_upload(
        &mut self,
        bucket: &str,
        key: &str,
    ) -> Result<String, Error> {
        let create = request(Method::POST, bucket, key).query("uploads");
        let (_, body) = self
            .call("CreateMultipartUpload", create, &[StatusCode::OK])
            .await?;
        element(&String::from_utf8_lossy(&body), "UploadId")
            .ok_or_else(|| Error::Protocol("CreateMultipartUpload: no UploadId".to_owned()))
    }

    /// Uploads part `number`; returns its ETag.
    pub async fn upload_part(
        &mut self,
        (bucket, key): (&str, &str),
        upload_id: &str,
        number: u32,
        body: Body,
    ) -> Result<String, Error> {
        let query = format!(
            "partNumber={number}&uploadId={}",
            uri_encode(upload_id, true)
        );
        let upload = request(Method::PUT, bucket, key).query(&query).body(body);
        let (headers, _) = self.call("UploadPart", upload, &[StatusCode::OK]).await?;
        headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol(format!("UploadPart {number}: no ETag")))
    }

    /// Completes an upload from its parts' numbers and ETags, in order.
    pub async fn complete_multipart_upload(
        &mut self,
        (bucket, key): (&str, &str),
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                escape(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let query = format!("uploadId={}", uri_encode(upload_id, true));
        let complete = request(Method::POST, bucket, key)
            .query(&query)
            .body(xml.into_bytes());
        let (_, body) = self
            .call("CompleteMultipartUpload", complete, &[StatusCode::OK])
            .await?;
        // S3 may report a failed completion in a 200 response, once the body has started.
        let text = String::from_utf8_lossy(&body);
        if text.contains("<Error>") {
            return Err(Error::Status {
                operation: "CompleteMultipartUpload".to_owned(),
                status: StatusCode::OK,
                code: element(&text, "Code").unwrap_or_default(),
                message: element(&text, "Message").unwrap_or_default(),
            });
        }
        Ok(())
    }

    pub async fn abort_multipart_upload(
        &mut self,
        (bucket, key): (&str, &str),
        upload_id: &str,
    ) -> Result<(), Error> {
        let query = format!("uploadId={}", uri_encode(upload_id, true));
        let ok = [StatusCode::NO_CONTENT, StatusCode::OK];
        let abort = request(Method::DELETE, bucket, key).query(&query);
        self.call("AbortMultipartUpload", abort, &ok)
            .await
            .map(|_| ())
    }

    /// One ListObjectsV2 page of at most `max_keys` keys, continuing from `token` or starting
    /// after the key `start_after`.
    pub async fn list_objects_v2(
        &mut self,
        bucket: &str,
        (prefix, delimiter): (&str, Option<&str>),
        token: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<ListPage, Error> {
        let mut query = format!("list-type=2&max-keys={max_keys}");
        let params = [
            ("continuation-token", token),
            ("delimiter", delimiter),
            ("prefix", Some(prefix)),
            ("start-after", start_after),
        ];
        for (name, value) in params {
            if let Some(value) = value {
                query.push_str(&format!("&{name}={}", uri_encode(value, true)));
            }
        }
        let list = request(Method::GET, bucket, "").query(&query);
        let (_, body) = self.call("ListObjectsV2", list, &[StatusCode::OK]).await?;
        parse_list_page(&String::from_utf8_lossy(&body))
    }
}

fn parse_list_page(xml: &str) -> Result<ListPage, Error> {
    let truncated = element(xml, "IsTruncated")
        .ok_or_else(|| Error::Protocol("ListObjectsV2: no IsTruncated".to_owned()))?;
    let next = if truncated == "true" {
        let token = element(xml, "NextContinuationToken").ok_or_else(|| {
            Error::Protocol("ListObjectsV2: truncated without NextContinuationToken".to_owned())
        })?;
        Some(token)
    } else {
        None
    };
    Ok(ListPage {
        keys: xml.matches("<Key>").count(),
        common_prefixes: xml.matches("<CommonPrefixes>").count(),
        next,
    })
}

/// The unescaped text of the first `<tag>` element of `xml`. Enough for the flat, attribute-free
/// elements read from S3's responses.
fn element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(unescape(&xml[start..start + len]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// `text` as XML character data or an attribute value.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages() {
        let xml = "<ListBucketResult><Name>b</Name><Prefix>list/</Prefix>\
            <IsTruncated>true</IsTruncated><NextContinuationToken>a&amp;b</NextContinuationToken>\
            <Contents><Key>list/a</Key></Contents><Contents><Key>list/b</Key></Contents>\
            </ListBucketResult>";
        assert_eq!(
            parse_list_page(xml).unwrap(),
            ListPage {
                keys: 2,
                common_prefixes: 0,
                next: Some("a&b".to_owned())
            }
        );
        let xml = "<ListBucketResult><Prefix>list/</Prefix><IsTruncated>false</IsTruncated>\
            <CommonPrefixes><Prefix>list/p0/</Prefix></CommonPrefixes>\
            <CommonPrefixes><Prefix>list/p1/</Prefix></CommonPrefixes></ListBucketResult>";
        assert_eq!(
            parse_list_page(xml).unwrap(),
            ListPage {
                keys: 0,
                common_prefixes: 2,
                next: None
            }
        );
        assert!(parse_list_page("<ListBucketResult/>").is_err());
        assert!(parse_list_page("<IsTruncated>true</IsTruncated>").is_err());
    }

    #[test]
    fn elements_and_escaping() {
        let xml = "<Error><Code>NoSuchKey</Code><Message>a &lt;b&gt; &amp; c</Message></Error>";
        assert_eq!(element(xml, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(element(xml, "Message").as_deref(), Some("a <b> & c"));
        assert_eq!(element(xml, "Missing"), None);
        assert_eq!(escape("\"e&t\""), "&quot;e&amp;t&quot;");
        assert_eq!(unescape(&escape("<\"&'>")), "<\"&'>");
    }
}
