//! The one place where a failure becomes what an S3 client sees: an AWS error code, its HTTP
//! status and the `<Error>` XML body. The protocol layers' errors (SigV4's `AuthError`, the
//! aws-chunked `ChunkedError`) name their [`ErrorCode`] and convert with `From`; the object
//! service's are mapped in `handlers/error.rs` (internal causes become `InternalError` and are
//! logged, never echoed).
//! Codes, statuses and default messages follow
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList>.

use std::fmt::{self, Write as _};

use http::StatusCode;

/// The AWS error codes Cairn answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    BadDigest,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    ConditionalRequestConflict,
    EntityTooLarge,
    EntityTooSmall,
    IncompleteBody,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    InvalidDigest,
    InvalidObjectState,
    InvalidPart,
    InvalidPartOrder,
    /// `?partNumber=N` on GET or HEAD past the object's last part.
    InvalidPartNumber,
    InvalidRange,
    InvalidRequest,
    InvalidStorageClass,
    InvalidURI,
    KeyTooLongError,
    MalformedTrailerError,
    MalformedXML,
    MaxMessageLengthExceeded,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingContentLength,
    MissingRequestBodyError,
    MissingSecurityHeader,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NotImplemented,
    /// 304 for a failed `If-None-Match`/`If-Modified-Since` on GET or HEAD; the response carries
    /// no body, so [`S3Error::to_xml`] must not be sent for it.
    NotModified,
    OperationAborted,
    PreconditionFailed,
    RequestTimeTooSkewed,
    RequestTimeout,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SlowDown,
    XAmzContentSHA256Mismatch,
    /// No room left for a write, in the chunk store or the metadata store. AWS has no such code
    /// (its storage never fills); this is MinIO's, with 507 Insufficient Storage, so clients
    /// and tools that know MinIO recognize it. A 507 is also outside what botocore and the AWS
    /// SDKs retry (500, 502, 503, 504 and the throttling codes), so a client stops at once
    /// instead of resending a body that cannot fit; reads and deletes keep working to free space.
    XMinioStorageFull,
    AccessControlListNotSupported,
    InvalidBucketAclWithObjectOwnership,
    MalformedACLError,
    MalformedPolicy,
    NoSuchBucketPolicy,
    NoSuchPublicAccessBlockConfiguration,
    OwnershipControlsNotFoundError,
    UnresolvableGrantByEmailAddress,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            NotModified => StatusCode::NOT_MODIFIED,
            AuthorizationHeaderMalformed
            | AuthorizationQueryParametersError
            | BadDigest
            | EntityTooLarge
            | EntityTooSmall
            | IncompleteBody
            | InvalidArgument
            | InvalidBucketName
            | InvalidDigest
            | InvalidPart
            | InvalidPartOrder
            | InvalidPartNumber
            | InvalidRequest
            | InvalidStorageClass
            | InvalidURI
            | KeyTooLongError
            | MalformedTrailerError
            | MalformedXML
            | MaxMessageLengthExceeded
            | MetadataTooLarge
            | MissingRequestBodyError
            | MissingSecurityHeader
            | RequestTimeout
            | XAmzContentSHA256Mismatch
            | AccessControlListNotSupported
            | InvalidBucketAclWithObjectOwnership
            | MalformedACLError
            | MalformedPolicy
            | UnresolvableGrantByEmailAddress => StatusCode::BAD_REQUEST,
            AccessDenied
            | InvalidAccessKeyId
            | InvalidObjectState
            | RequestTimeTooSkewed
            | SignatureDoesNotMatch => StatusCode::FORBIDDEN,
            NoSuchBucket
            | NoSuchKey
            | NoSuchUpload
            | NoSuchBucketPolicy
            | NoSuchPublicAccessBlockConfiguration
            | OwnershipControlsNotFoundError => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            BucketAlreadyExists
            | BucketAlreadyOwnedByYou
            | BucketNotEmpty
            | ConditionalRequestConflict
            | OperationAborted => StatusCode::CONFLICT,
            MissingContentLength => StatusCode::LENGTH_REQUIRED,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ServiceUnavailable | SlowDown => StatusCode::SERVICE_UNAVAILABLE,
            XMinioStorageFull => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// The `<Code>` string, identical to the variant name.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            AccessDenied => "AccessDenied",
            AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            BadDigest => "BadDigest",
            BucketAlreadyExists => "BucketAlreadyExists",
            BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            BucketNotEmpty => "BucketNotEmpty",
            ConditionalRequestConflict => "ConditionalRequestConflict",
            EntityTooLarge => "EntityTooLarge",
            EntityTooSmall => "EntityTooSmall",
            IncompleteBody => "IncompleteBody",
            InternalError => "InternalError",
            InvalidAccessKeyId => "InvalidAccessKeyId",
            InvalidArgument => "InvalidArgument",
            InvalidBucketName => "InvalidBucketName",
            InvalidDigest => "InvalidDigest",
            InvalidObjectState => "InvalidObjectState",
            InvalidPart => "InvalidPart",
            InvalidPartOrder => "InvalidPartOrder",
            InvalidPartNumber => "InvalidPartNumber",
            InvalidRange => "InvalidRange",
            InvalidRequest => "InvalidRequest",
            InvalidStorageClass => "InvalidStorageClass",
            InvalidURI => "InvalidURI",
            KeyTooLongError => "KeyTooLongError",
            MalformedTrailerError => "MalformedTrailerError",
            MalformedXML => "MalformedXML",
            MaxMessageLengthExceeded => "MaxMessageLengthExceeded",
            MetadataTooLarge => "MetadataTooLarge",
            MethodNotAllowed => "MethodNotAllowed",
            MissingContentLength => "MissingContentLength",
            MissingRequestBodyError => "MissingRequestBodyError",
            MissingSecurityHeader => "MissingSecurityHeader",
            NoSuchBucket => "NoSuchBucket",
            NoSuchKey => "NoSuchKey",
            NoSuchUpload => "NoSuchUpload",
            NotImplemented => "NotImplemented",
            NotModified => "NotModified",
            OperationAborted => "OperationAborted",
            PreconditionFailed => "PreconditionFailed",
            RequestTimeTooSkewed => "RequestTimeTooSkewed",
            RequestTimeout => "RequestTimeout",
            ServiceUnavailable => "ServiceUnavailable",
            SignatureDoesNotMatch => "SignatureDoesNotMatch",
            SlowDown => "SlowDown",
            XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
            XMinioStorageFull => "XMinioStorageFull",
            AccessControlListNotSupported => "AccessControlListNotSupported",
            InvalidBucketAclWithObjectOwnership => "InvalidBucketAclWithObjectOwnership",
            MalformedACLError => "MalformedACLError",
            MalformedPolicy => "MalformedPolicy",
            NoSuchBucketPolicy => "NoSuchBucketPolicy",
            NoSuchPublicAccessBlockConfiguration => "NoSuchPublicAccessBlockConfiguration",
            OwnershipControlsNotFoundError => "OwnershipControlsNotFoundError",
            UnresolvableGrantByEmailAddress => "UnresolvableGrantByEmailAddress",
        }
    }

    pub fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            AccessDenied => "Access Denied",
            AuthorizationHeaderMalformed => "The authorization header you provided is invalid.",
            AuthorizationQueryParametersError => {
                "The authorization query parameters that you provided are not valid."
            }
            BadDigest => "The Content-MD5 you specified did not match what we received.",
            BucketAlreadyExists => {
                "The requested bucket name is not available. The bucket namespace is shared by \
                 all users of the system. Please select a different name and try again."
            }
            BucketAlreadyOwnedByYou => {
                "Your previous request to create the named bucket succeeded and you already own it."
            }
            BucketNotEmpty => "The bucket you tried to delete is not empty",
            ConditionalRequestConflict => {
                "A conflicting operation occurred. If using PutObject you can retry the request. \
                 If using multipart upload you should initiate another CreateMultipartUpload \
                 request and re-upload each part."
            }
            EntityTooLarge => "Your proposed upload exceeds the maximum allowed object size.",
            EntityTooSmall => {
                "Your proposed upload is smaller than the minimum allowed object size."
            }
            IncompleteBody => {
                "You did not provide the number of bytes specified by the Content-Length HTTP \
                 header."
            }
            InternalError => "We encountered an internal error. Please try again.",
            InvalidAccessKeyId => {
                "The AWS Access Key Id you provided does not exist in our records."
            }
            InvalidArgument => "Invalid Argument",
            InvalidBucketName => "The specified bucket is not valid.",
            InvalidDigest => "The Content-MD5 you specified is not valid.",
            InvalidObjectState => "The operation is not valid for the current state of the object.",
            InvalidPart => {
                "One or more of the specified parts could not be found. The part might not have \
                 been uploaded, or the specified entity tag might not have matched the part's \
                 entity tag."
            }
            InvalidPartOrder => {
                "The list of parts was not in ascending order. The parts list must be specified \
                 in order by part number."
            }
            InvalidPartNumber => "The requested partnumber is not satisfiable",
            InvalidRange => "The requested range is not satisfiable",
            InvalidRequest => "Invalid Request",
            InvalidStorageClass => "The storage class you specified is not valid.",
            InvalidURI => "Couldn't parse the specified URI.",
            KeyTooLongError => "Your key is too long.",
            MalformedTrailerError => {
                "The request contained trailing data that was not well-formed or did not conform \
                 to our published schema."
            }
            MalformedXML => {
                "The XML you provided was not well-formed or did not validate against our \
                 published schema."
            }
            MaxMessageLengthExceeded => "Your request was too big.",
            MetadataTooLarge => "Your metadata headers exceed the maximum allowed metadata size.",
            MethodNotAllowed => "The specified method is not allowed against this resource.",
            MissingContentLength => "You must provide the Content-Length HTTP header.",
            MissingRequestBodyError => "Request Body is empty.",
            MissingSecurityHeader => "Your request is missing a required header.",
            NoSuchBucket => "The specified bucket does not exist",
            NoSuchKey => "The specified key does not exist.",
            NoSuchUpload => {
                "The specified upload does not exist. The upload ID may be invalid, or the \
                 upload may have been aborted or completed."
            }
            NotImplemented => "A header you provided implies functionality that is not implemented",
            NotModified => "Not Modified",
            OperationAborted => {
                "A conflicting conditional operation is currently in progress against this \
                 resource. Try again."
            }
            PreconditionFailed => "At least one of the pre-conditions you specified did not hold",
            RequestTimeTooSkewed => {
                "The difference between the request time and the current time is too large."
            }
            RequestTimeout => {
                "Your socket connection to the server was not read from or written to within \
                 the timeout period. Idle connections will be closed."
            }
            ServiceUnavailable => "Service is unable to handle request.",
            SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method."
            }
            SlowDown => "Please reduce your request rate.",
            XAmzContentSHA256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            }
            AccessControlListNotSupported => "The bucket does not allow ACLs",
            InvalidBucketAclWithObjectOwnership => "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            MalformedACLError => "The XML you provided was not well-formed or did not validate against our published schema",
            MalformedPolicy => "Policies must be valid JSON and the first byte must be '{'",
            NoSuchBucketPolicy => "The bucket policy does not exist",
            NoSuchPublicAccessBlockConfiguration => "The public access block configuration was not found",
            OwnershipControlsNotFoundError => "The bucket ownership controls were not found",
            UnresolvableGrantByEmailAddress => "The email address you provided does not match any account on record.",
            XMinioStorageFull => {
                "The store has no room left for this write. Delete objects to free space, \
                 then retry."
            }
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the client sees it. `extra` carries the code-specific elements AWS adds after
/// `<Resource>` (e.g. `BucketName`, `Key`, `ActualObjectSize`, `RangeRequested`, `Method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: ErrorCode,
    pub message: String,
    /// The request path as AWS reports it, e.g. `/bucket/key`.
    pub resource: Option<String>,
    pub extra: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(code: ErrorCode) -> Self {
        S3Error {
            code,
            message: code.default_message().to_owned(),
            resource: None,
            extra: Vec::new(),
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Appends `<name>value</name>`; `name` must be a plain XML element name.
    pub fn with_extra(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The XML body AWS sends with an error. Not to be sent for `NotModified` or in answer to
    /// HEAD, whose responses have no body.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut xml = String::with_capacity(256);
        xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
        push_element(&mut xml, "Code", self.code.as_str());
        push_element(&mut xml, "Message", &self.message);
        if let Some(resource) = &self.resource {
            push_element(&mut xml, "Resource", resource);
        }
        for (name, value) in &self.extra {
            push_element(&mut xml, name, value);
        }
        push_element(&mut xml, "RequestId", request_id);
        xml.push_str("</Error>");
        xml
    }
}

impl From<ErrorCode> for S3Error {
    fn from(code: ErrorCode) -> Self {
        S3Error::new(code)
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

fn push_element(xml: &mut String, name: &str, value: &str) {
    xml.push('<');
    xml.push_str(name);
    xml.push('>');
    xml.push_str(&xml_escape(value));
    xml.push_str("</");
    xml.push_str(name);
    xml.push('>');
}

/// Escapes text for XML element content or attribute values. Control characters, which XML 1.0
/// cannot carry literally, become character references, as does `\r`, which parsers would
/// otherwise normalise to `\n` and so change a key.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {
                // Writing to a String cannot fail.
                let _ = write!(out, "&#x{:X};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_aws_table() {
        use ErrorCode::*;
        let table = [
            (AccessDenied, 403),
            (AuthorizationHeaderMalformed, 400),
            (AuthorizationQueryParametersError, 400),
            (BadDigest, 400),
            (BucketAlreadyExists, 409),
            (BucketAlreadyOwnedByYou, 409),
            (BucketNotEmpty, 409),
            (ConditionalRequestConflict, 409),
            (EntityTooLarge, 400),
            (EntityTooSmall, 400),
            (IncompleteBody, 400),
            (InternalError, 500),
            (InvalidAccessKeyId, 403),
            (InvalidArgument, 400),
            (InvalidBucketName, 400),
            (InvalidDigest, 400),
            (InvalidObjectState, 403),
            (InvalidPart, 400),
            (InvalidPartOrder, 400),
            (InvalidPartNumber, 400),
            (InvalidRange, 416),
            (InvalidRequest, 400),
            (InvalidStorageClass, 400),
            (InvalidURI, 400),
            (KeyTooLongError, 400),
            (MalformedTrailerError, 400),
            (MalformedXML, 400),
            (MaxMessageLengthExceeded, 400),
            (MetadataTooLarge, 400),
            (MethodNotAllowed, 405),
            (MissingContentLength, 411),
            (MissingRequestBodyError, 400),
            (MissingSecurityHeader, 400),
            (NoSuchBucket, 404),
            (NoSuchKey, 404),
            (NoSuchUpload, 404),
            (NotImplemented, 501),
            (NotModified, 304),
            (OperationAborted, 409),
            (PreconditionFailed, 412),
            (RequestTimeTooSkewed, 403),
            (RequestTimeout, 400),
            (ServiceUnavailable, 503),
            (SignatureDoesNotMatch, 403),
            (SlowDown, 503),
            (XAmzContentSHA256Mismatch, 400),
            (XMinioStorageFull, 507),
            (AccessControlListNotSupported, 400),
            (InvalidBucketAclWithObjectOwnership, 400),
            (MalformedACLError, 400),
            (MalformedPolicy, 400),
            (NoSuchBucketPolicy, 404),
            (NoSuchPublicAccessBlockConfiguration, 404),
            (OwnershipControlsNotFoundError, 404),
            (UnresolvableGrantByEmailAddress, 400),
        ];
        for (code, status) in table {
            assert_eq!(code.status().as_u16(), status, "{code}");
            assert_eq!(format!("{code:?}"), code.as_str());
            assert!(!code.default_message().is_empty());
            assert_eq!(S3Error::new(code).status().as_u16(), status);
        }
    }

    #[test]
    fn xml_body_has_aws_shape() {
        let err = S3Error::new(ErrorCode::NoSuchKey)
            .with_resource("/photos/2006/February/sample.jpg")
            .with_extra("Key", "2006/February/sample.jpg");
        assert_eq!(
            err.to_xml("4442587FB7D0A2F9"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>The specified key does not exist.</Message>\
             <Resource>/photos/2006/February/sample.jpg</Resource>\
             <Key>2006/February/sample.jpg</Key>\
             <RequestId>4442587FB7D0A2F9</RequestId></Error>"
        );
    }

    #[test]
    fn xml_body_without_resource_and_with_several_extras() {
        let err = S3Error::new(ErrorCode::InvalidRange)
            .with_extra("RangeRequested", "bytes=10-")
            .with_extra("ActualObjectSize", "5");
        assert_eq!(
            err.to_xml("r"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidRange</Code>\
             <Message>The requested range is not satisfiable</Message>\
             <RangeRequested>bytes=10-</RangeRequested><ActualObjectSize>5</ActualObjectSize>\
             <RequestId>r</RequestId></Error>"
        );
    }

    #[test]
    fn xml_body_escapes_everything_client_controlled() {
        let err = S3Error::new(ErrorCode::NoSuchKey)
            .with_message("a<b>&\"c'")
            .with_resource("/b/<&>")
            .with_extra("Key", "</Key><Evil/>");
        let xml = err.to_xml("id&<");
        assert!(xml.contains("<Message>a&lt;b&gt;&amp;&quot;c&apos;</Message>"));
        assert!(xml.contains("<Resource>/b/&lt;&amp;&gt;</Resource>"));
        assert!(xml.contains("<Key>&lt;/Key&gt;&lt;Evil/&gt;</Key>"));
        assert!(xml.contains("<RequestId>id&amp;&lt;</RequestId>"));
        assert!(!xml.contains("<Evil/>"));
    }

    #[test]
    fn builders_and_display() {
        let err = S3Error::new(ErrorCode::InvalidArgument)
            .with_message("Part number must be an integer between 1 and 10000, inclusive")
            .with_resource("/b/k");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert_eq!(err.resource.as_deref(), Some("/b/k"));
        assert_eq!(
            err.to_string(),
            "InvalidArgument: Part number must be an integer between 1 and 10000, inclusive"
        );
        let from: S3Error = ErrorCode::SlowDown.into();
        assert_eq!(from.message, "Please reduce your request rate.");
        assert!(from.extra.is_empty() && from.resource.is_none());
    }

    #[test]
    fn escape_cases() {
        assert_eq!(xml_escape(""), "");
        assert_eq!(xml_escape("plain/key é 🦀"), "plain/key é 🦀");
        assert_eq!(xml_escape("&&"), "&amp;&amp;");
        assert_eq!(xml_escape("<>\"'"), "&lt;&gt;&quot;&apos;");
        assert_eq!(xml_escape("a\tb\nc"), "a\tb\nc");
        assert_eq!(xml_escape("a\rb"), "a&#xD;b");
        assert_eq!(xml_escape("\u{1}\u{1f}\u{7f}"), "&#x1;&#x1F;&#x7F;");
        assert_eq!(xml_escape("&amp;"), "&amp;amp;");
    }
}
