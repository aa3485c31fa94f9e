//! The XML request bodies the gateway parses: CompleteMultipartUpload, Delete (DeleteObjects)
//! and CreateBucketConfiguration. Any body is refused or parsed without panicking, and what
//! parses comes back the same when written out again with Cairn's own escaping and parsed anew
//! (keys with control characters, entities and CDATA included).
//!
//! Input: the body, whole.

use cairn::s3::xml::{
    CompletedPart, DeleteRequest, XmlWriter, parse_complete_multipart_upload,
    parse_create_bucket_configuration, parse_delete,
};

pub fn run(data: &[u8]) {
    if let Ok(parts) = parse_complete_multipart_upload(data) {
        let again = parse_complete_multipart_upload(complete_document(&parts).as_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&parts),
            "CompleteMultipartUpload round trip"
        );
    }
    if let Ok(delete) = parse_delete(data) {
        assert!(!delete.keys.is_empty() && delete.keys.iter().all(|k| !k.is_empty()));
        let again = parse_delete(delete_document(&delete).as_bytes());
        assert_eq!(again.as_ref(), Ok(&delete), "Delete round trip");
    }
    if let Ok(constraint) = parse_create_bucket_configuration(data) {
        let mut x = XmlWriter::new("CreateBucketConfiguration");
        if let Some(constraint) = &constraint {
            x.element("LocationConstraint", constraint);
        }
        let again = parse_create_bucket_configuration(x.finish().as_bytes());
        assert_eq!(
            again,
            Ok(constraint),
            "CreateBucketConfiguration round trip"
        );
    }
}

fn complete_document(parts: &[CompletedPart]) -> String {
    let mut x = XmlWriter::new("CompleteMultipartUpload");
    for part in parts {
        assert!(part.part_number >= 1);
        x.open("Part");
        x.element("PartNumber", &part.part_number.to_string());
        x.element("ETag", &format!("\"{}\"", part.etag));
        for (algorithm, value) in &part.checksums {
            x.element(&format!("Checksum{}", algorithm.as_str()), value);
        }
        x.close("Part");
    }
    x.finish()
}

fn delete_document(delete: &DeleteRequest) -> String {
    let mut x = XmlWriter::new("Delete");
    x.element("Quiet", if delete.quiet { "true" } else { "false" });
    for key in &delete.keys {
        x.open("Object");
        x.element("Key", key);
        x.close("Object");
    }
    x.finish()
}
