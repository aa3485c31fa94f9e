//! S3's XML: a small writer for response bodies and parsers for the request bodies S3 accepts
//! (CompleteMultipartUpload, DeleteObjects, CreateBucket). Handlers collect a request body
//! through the `MAX_XML_BODY` cap, parse it here, and map every [`XmlError::Malformed`] to
//! `MalformedXML`; the parsers are pure and never panic on client input.
//!
//! Parsing goes through a small element tree so element order, the S3 namespace (or none),
//! namespace prefixes and inter-element whitespace do not matter. Unknown elements are ignored,
//! as newer SDKs add members (e.g. `ETag` in conditional deletes); DTDs are refused outright, so
//! no entity beyond XML's five predefined ones and character references can ever expand.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use crate::checksum::ChecksumAlgorithm;

/// The namespace of every S3 response document except `<Error>`.
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Upper bound on a collected XML request body, sized for the two largest legitimate bodies:
/// DeleteObjects with 1000 keys of 1024 bytes (≈1.1 MB with `<Object><Key>` markup) and
/// CompleteMultipartUpload with 10,000 parts, each with a quoted ETag written as `&quot;` and
/// a SHA-256 checksum (≈175 bytes a part, 1.75 MB). 2 MiB would leave that last one only 16%
/// headroom, so 4 MiB; it also admits 1000 keys dense with `&amp;`-style escapes. The memory is
/// transient and bounded by the connection limit.
pub const MAX_XML_BODY: usize = 4 * 1024 * 1024;

/// DeleteObjects accepts at most this many keys; more is MalformedXML on AWS.
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html>
pub const MAX_DELETE_KEYS: usize = 1000;

/// S3 request documents nest at most four levels; the cap keeps a hostile body from building
/// a tree so deep that dropping it recurses off the stack.
const MAX_DEPTH: usize = 32;

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Builds one response document. Element names are trusted literals from our own code; only
/// text is escaped.
#[derive(Debug)]
pub struct XmlWriter {
    out: String,
    open: Vec<String>,
}

impl XmlWriter {
    /// Starts `<root xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` after the declaration.
    pub fn new(root: &str) -> Self {
        Self::start(root, Some(S3_XMLNS))
    }

    /// Starts a document whose root carries no namespace, as S3's `<Error>` does.
    pub fn without_namespace(root: &str) -> Self {
        Self::start(root, None)
    }

    fn start(root: &str, namespace: Option<&str>) -> Self {
        let mut out = String::with_capacity(256);
        out.push_str(XML_DECLARATION);
        out.push('<');
        out.push_str(root);
        if let Some(namespace) = namespace {
            out.push_str(" xmlns=\"");
            out.push_str(namespace);
            out.push('"');
        }
        out.push('>');
        Self {
            out,
            open: vec![root.to_owned()],
        }
    }

    pub fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.open.push(name.to_owned());
    }

    /// Closes the innermost open element, which must be `name`.
    pub fn close(&mut self, name: &str) {
        let innermost = self.open.pop();
        debug_assert_eq!(
            innermost.as_deref(),
            Some(name),
            "XmlWriter: unbalanced close"
        );
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Writes `<name>text</name>` with `text` escaped.
    pub fn element(&mut self, name: &str, text: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape_text_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Closes whatever is still open, the root last, and returns the document.
    pub fn finish(mut self) -> String {
        while let Some(name) = self.open.pop() {
            self.out.push_str("</");
            self.out.push_str(&name);
            self.out.push('>');
        }
        self.out
    }
}

/// Escapes text content. Besides the five markup characters:
/// - `\r` becomes `&#13;`, because parsers turn a literal CR into LF and the key would change;
/// - characters XML 1.0 cannot carry at all (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF)
///   become hex references such as `&#x1;`. That is what AWS S3 itself emits (e.g.
///   `...LA&#x1b;` in aws/aws-sdk-php#169, `&#x8;` in aws/aws-sdk-java-v2#1172). It is not
///   well-formed XML 1.0 and strict parsers (expat in botocore, Go's encoding/xml) reject the
///   whole response, which is why S3 clients list such keys with `encoding-type=url`; lenient
///   parsers recover the exact key. Replacing the character or dropping the key would instead
///   silently hand back a key that does not exist.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_text_into(&mut out, s);
    out
}

fn escape_text_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("&#x{:x};", u32::from(c)));
            }
            _ => out.push(c),
        }
    }
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed, or not the document S3's schema describes: answer `MalformedXML`.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A CompleteMultipartUpload `<PartNumber>` below 1. AWS answers this one with
    /// `InvalidArgument` "PartNumber must be >= 1" rather than MalformedXML (mirrored by
    /// versity/versitygw#1072); a non-integer part number is a schema failure, MalformedXML.
    #[error("part number {0} must be >= 1")]
    InvalidPartNumber(i32),
}

fn malformed(reason: impl Into<String>) -> XmlError {
    XmlError::Malformed(reason.into())
}

/// One `<Part>` of a CompleteMultipartUpload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    /// As the client sent it, surrounding whitespace and double quotes removed.
    pub etag: String,
    /// `ChecksumCRC32` ... `ChecksumSHA256` elements present in the part, base64 text as sent.
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

/// Parses `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"…"</ETag></Part>…`.
/// Parts come back in document order; ascending order and existence are the caller's checks
/// (InvalidPartOrder, InvalidPart). No parts at all is MalformedXML, as on AWS.
pub fn parse_complete_multipart_upload(body: &[u8]) -> Result<Vec<CompletedPart>, XmlError> {
    let root = parse_document(body, "CompleteMultipartUpload")?;
    let parts = root
        .children_named("Part")
        .map(parse_completed_part)
        .collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Err(malformed("CompleteMultipartUpload lists no Part"));
    }
    Ok(parts)
}

fn parse_completed_part(part: &Element) -> Result<CompletedPart, XmlError> {
    let number_text = part.required_text("PartNumber")?;
    let number: i32 = number_text
        .trim_matches(is_xml_whitespace)
        .parse()
        .map_err(|_| malformed(format!("PartNumber {number_text:?} is not an integer")))?;
    let part_number = u32::try_from(number)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or(XmlError::InvalidPartNumber(number))?;
    let etag = part
        .required_text("ETag")?
        .trim_matches(is_xml_whitespace)
        .trim_matches('"')
        .to_owned();
    let mut checksums = Vec::new();
    for algorithm in ChecksumAlgorithm::ALL {
        let name = format!("Checksum{}", algorithm.as_str());
        if let Some(value) = part.optional_text(&name)? {
            checksums.push((algorithm, value.trim_matches(is_xml_whitespace).to_owned()));
        }
    }
    Ok(CompletedPart {
        part_number,
        etag,
        checksums,
    })
}

/// A DeleteObjects request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub quiet: bool,
    pub keys: Vec<String>,
}

/// Parses `<Delete><Quiet>true</Quiet><Object><Key>k</Key></Object>…</Delete>`.
/// Keys are taken verbatim (a key may be all spaces), with entities and character references
/// resolved. `<VersionId>` and the conditional-delete members are ignored. Refused as
/// MalformedXML: no `<Object>`, more than [`MAX_DELETE_KEYS`], an `<Object>` without `<Key>`,
/// and an empty `<Key>` (S3's model gives ObjectKey a minimum length of 1).
pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, XmlError> {
    let root = parse_document(body, "Delete")?;
    let quiet = match root.optional_text("Quiet")? {
        None => false,
        Some(text) => match text.trim_matches(is_xml_whitespace) {
            // xsd:boolean's four lexical forms.
            "true" | "1" => true,
            "false" | "0" => false,
            other => return Err(malformed(format!("Quiet {other:?} is not a boolean"))),
        },
    };
    let mut keys = Vec::new();
    for object in root.children_named("Object") {
        if keys.len() == MAX_DELETE_KEYS {
            return Err(malformed(format!(
                "Delete lists more than {MAX_DELETE_KEYS} objects"
            )));
        }
        let key = object.required_text("Key")?;
        if key.is_empty() {
            return Err(malformed("Object has an empty Key"));
        }
        keys.push(key.to_owned());
    }
    if keys.is_empty() {
        return Err(malformed("Delete lists no Object"));
    }
    Ok(DeleteRequest { quiet, keys })
}

/// Parses `<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>…`.
/// Returns the constraint, or `None` when it is absent or empty. An empty body means "no
/// configuration" and is the caller's case, since it is not an XML document.
pub fn parse_create_bucket_configuration(body: &[u8]) -> Result<Option<String>, XmlError> {
    let root = parse_document(body, "CreateBucketConfiguration")?;
    Ok(root
        .optional_text("LocationConstraint")?
        .map(|text| text.trim_matches(is_xml_whitespace))
        .filter(|constraint| !constraint.is_empty())
        .map(str::to_owned))
}

/// Parses `<OwnershipControls><Rule><ObjectOwnership>X</ObjectOwnership></Rule>…`: the one
/// rule's ownership setting, as written (the caller checks it is one S3 knows).
pub fn parse_ownership_controls(body: &[u8]) -> Result<String, XmlError> {
    let root = parse_document(body, "OwnershipControls")?;
    let mut rules = root.children_named("Rule");
    let rule = rules
        .next()
        .ok_or_else(|| malformed("OwnershipControls lacks Rule"))?;
    if rules.next().is_some() {
        return Err(malformed("OwnershipControls holds one Rule"));
    }
    Ok(rule
        .required_text("ObjectOwnership")?
        .trim_matches(is_xml_whitespace)
        .to_owned())
}

/// The four settings of a `<PublicAccessBlockConfiguration>`, in document order of S3's schema:
/// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets; an absent one is
/// false, as S3 reads it.
pub fn parse_public_access_block(body: &[u8]) -> Result<[bool; 4], XmlError> {
    let root = parse_document(body, "PublicAccessBlockConfiguration")?;
    let mut flags = [false; 4];
    for (flag, name) in flags.iter_mut().zip([
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ]) {
        *flag = match root
            .optional_text(name)?
            .map(|t| t.trim_matches(is_xml_whitespace))
        {
            None => false,
            Some(t) if t.eq_ignore_ascii_case("true") => true,
            Some(t) if t.eq_ignore_ascii_case("false") => false,
            Some(t) => return Err(malformed(format!("{name} must be true or false, not {t:?}"))),
        };
    }
    Ok(flags)
}

fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// One element: its local name (prefix dropped), child elements and concatenated text.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn open(start: &BytesStart<'_>) -> Result<Self, XmlError> {
        // Attributes carry nothing S3 needs (only xmlns), but a broken one is still malformed.
        for attribute in start.attributes() {
            attribute.map_err(|e| malformed(format!("bad attribute: {e}")))?;
        }
        Ok(Self {
            name: start.local_name().into_inner().to_owned(),
            ..Self::default()
        })
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// The text of the only child `name`, if there is one; a repeated or non-leaf child is
    /// malformed.
    fn optional_text(&self, name: &str) -> Result<Option<&str>, XmlError> {
        let mut matching = self.children.iter().filter(|child| child.name == name);
        let Some(child) = matching.next() else {
            return Ok(None);
        };
        if matching.next().is_some() {
            return Err(malformed(format!("{} repeats {name}", self.name)));
        }
        if !child.children.is_empty() {
            return Err(malformed(format!("{name} must hold text, not elements")));
        }
        Ok(Some(&child.text))
    }

    fn required_text(&self, name: &str) -> Result<&str, XmlError> {
        self.optional_text(name)?
            .ok_or_else(|| malformed(format!("{} lacks {name}", self.name)))
    }
}

/// Reads a whole document into an element tree and checks it is well-formed with the given
/// root element.
fn parse_document(body: &[u8], root_name: &str) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| malformed(format!("not UTF-8: {e}")))?;
    // XML 1.0 has no U+0000, raw or as `&#0;` (which the reader refuses); the reader passes a
    // raw one through, and a key holding it would reach the metadata store, which cannot hold it.
    if text.contains('\0') {
        return Err(malformed("the character U+0000 is not permitted in XML"));
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_comments = true;
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut first_event = true;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(format!("{e} at byte {}", reader.error_position())))?;
        let is_first = std::mem::replace(&mut first_event, false);
        match event {
            Event::Eof => break,
            Event::Decl(decl) => {
                if !is_first {
                    return Err(malformed("XML declaration after the start"));
                }
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| malformed(format!("declaration: {e}")))?;
                    if !encoding.eq_ignore_ascii_case("utf-8") {
                        return Err(malformed(format!("unsupported encoding {encoding:?}")));
                    }
                }
            }
            Event::DocType(_) => return Err(malformed("DOCTYPE is not allowed")),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Start(start) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                if open.len() == MAX_DEPTH {
                    return Err(malformed(format!("nested deeper than {MAX_DEPTH}")));
                }
                open.push(Element::open(&start)?);
            }
            Event::Empty(start) => {
                let element = Element::open(&start)?;
                attach(&mut open, &mut root, element)?;
            }
            Event::End(_) => {
                // The reader has already matched the end tag's name against its start tag.
                let element = open
                    .pop()
                    .ok_or_else(|| malformed("end tag without a start tag"))?;
                if !element.children.is_empty() && !element.text.chars().all(is_xml_whitespace) {
                    return Err(malformed(format!(
                        "{} mixes text and elements",
                        element.name
                    )));
                }
                attach(&mut open, &mut root, element)?;
            }
            Event::Text(raw) => {
                let content = raw.xml10_content();
                match open.last_mut() {
                    Some(parent) => parent.text.push_str(&content),
                    None if content.chars().all(is_xml_whitespace) => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::CData(raw) => {
                let parent = open
                    .last_mut()
                    .ok_or_else(|| malformed("CDATA outside the root element"))?;
                parent.text.push_str(&raw.xml10_content());
            }
            Event::GeneralRef(reference) => {
                let parent = open
                    .last_mut()
                    .ok_or_else(|| malformed("reference outside the root element"))?;
                // Character references to C0 controls are accepted although XML 1.0 forbids
                // them (as are the raw characters, which ElementTree-based clients write): that
                // is the only way a client can name a key holding one (see `escape_text`).
                match reference.resolve_char_ref() {
                    Ok(Some(c)) => parent.text.push(c),
                    Ok(None) => {
                        let entity = resolve_predefined_entity(&reference).ok_or_else(|| {
                            malformed(format!("undefined entity &{};", &*reference))
                        })?;
                        parent.text.push_str(entity);
                    }
                    Err(e) => return Err(malformed(format!("bad character reference: {e}"))),
                }
            }
        }
    }
    if let Some(unclosed) = open.last() {
        return Err(malformed(format!(
            "element {} is never closed",
            unclosed.name
        )));
    }
    let root = root.ok_or_else(|| malformed("no root element"))?;
    if root.name != root_name {
        return Err(malformed(format!(
            "root element is {}, expected {root_name}",
            root.name
        )));
    }
    Ok(root)
}

/// Hangs a finished element under its parent, or makes it the root.
fn attach(
    open: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), XmlError> {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(malformed("more than one root element")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delete_body(inner: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns=\"{S3_XMLNS}\">{inner}</Delete>"
        )
    }

    fn assert_malformed<T: std::fmt::Debug>(result: Result<T, XmlError>, what: &str) {
        match result {
            Err(XmlError::Malformed(_)) => {}
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn writer_builds_namespaced_document() {
        let mut writer = XmlWriter::new("ListBucketResult");
        writer.element("Name", "bucket");
        writer.open("Contents");
        writer.element("Key", "a&b");
        writer.element("ETag", "\"abc\"");
        writer.close("Contents");
        writer.element("Prefix", "");
        assert_eq!(
            writer.finish(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Name>bucket</Name><Contents><Key>a&amp;b</Key><ETag>&quot;abc&quot;</ETag>\
             </Contents><Prefix></Prefix></ListBucketResult>"
        );
    }

    #[test]
    fn writer_finish_closes_open_elements_and_error_has_no_namespace() {
        let mut writer = XmlWriter::without_namespace("Error");
        writer.element("Code", "NoSuchKey");
        writer.open("Detail");
        writer.element("Key", "k");
        assert_eq!(
            writer.finish(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <Error><Code>NoSuchKey</Code><Detail><Key>k</Key></Detail></Error>"
        );
    }

    #[test]
    fn escape_text_markup_and_controls() {
        assert_eq!(escape_text("plain/key é 日本"), "plain/key é 日本");
        assert_eq!(
            escape_text("a&b<c>d\"e'f"),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f"
        );
        assert_eq!(escape_text("&amp;"), "&amp;amp;");
        assert_eq!(escape_text("tab\tlf\ncr\r"), "tab\tlf\ncr&#13;");
        assert_eq!(
            escape_text("\u{0}\u{1}\u{8}\u{b}\u{c}\u{1b}\u{1f}"),
            "&#x0;&#x1;&#x8;&#xb;&#xc;&#x1b;&#x1f;"
        );
        assert_eq!(
            escape_text("\u{fffe}\u{ffff}\u{fffd}"),
            "&#xfffe;&#xffff;\u{fffd}"
        );
        // DEL and C1 controls are legal XML 1.0 characters and pass through.
        assert_eq!(escape_text("\u{7f}\u{85}"), "\u{7f}\u{85}");
    }

    #[test]
    fn written_keys_parse_back_identically() {
        let keys = [
            "a&b<c>d\"e'f é",
            "line\nbreak",
            "cr\rlf\r\n",
            "  spaces  ",
            "ctrl\u{1}\u{1f}",
            "]]>",
        ];
        let mut writer = XmlWriter::new("Delete");
        for key in keys {
            writer.open("Object");
            writer.element("Key", key);
            writer.close("Object");
        }
        let parsed = parse_delete(writer.finish().as_bytes()).unwrap();
        assert_eq!(parsed.keys, keys);
    }

    #[test]
    fn complete_multipart_upload_as_botocore_sends_it() {
        // botocore serializes without whitespace, with the namespace and quoted ETags.
        let body = format!(
            "<CompleteMultipartUpload xmlns=\"{S3_XMLNS}\"><Part><ETag>\"7e10e7d25dc4581d89b9285be5f384fd\"</ETag>\
             <PartNumber>1</PartNumber></Part><Part><ETag>\"1c0d5ee8e8e3fdbc5b8e0ea7c5d1e4f2\"</ETag>\
             <PartNumber>2</PartNumber></Part></CompleteMultipartUpload>"
        );
        let parts = parse_complete_multipart_upload(body.as_bytes()).unwrap();
        assert_eq!(
            parts,
            vec![
                CompletedPart {
                    part_number: 1,
                    etag: "7e10e7d25dc4581d89b9285be5f384fd".into(),
                    checksums: vec![],
                },
                CompletedPart {
                    part_number: 2,
                    etag: "1c0d5ee8e8e3fdbc5b8e0ea7c5d1e4f2".into(),
                    checksums: vec![],
                },
            ]
        );
    }

    #[test]
    fn complete_multipart_upload_pretty_unquoted_escaped_and_checksums() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
            <!-- written by hand -->\n\
            <CompleteMultipartUpload>\n\
              <Part>\n\
                <PartNumber> 3 </PartNumber>\n\
                <ChecksumCRC32>DUoRhQ==</ChecksumCRC32>\n\
                <ETag>&quot;abc&quot;</ETag>\n\
                <ChecksumSHA256>\n  uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=\n</ChecksumSHA256>\n\
              </Part>\n\
              <Part><ETag>def</ETag><PartNumber>10000</PartNumber>\
                <ChecksumCRC64NVME>jSnVw/bqjr4=</ChecksumCRC64NVME><ChecksumCRC32C>yZRlqg==</ChecksumCRC32C>\
                <ChecksumSHA1>Kq5sNclPz7QV2+lfQIuc6R7oRu0=</ChecksumSHA1><Unknown>x</Unknown></Part>\n\
            </CompleteMultipartUpload>\n";
        let parts = parse_complete_multipart_upload(body.as_bytes()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].part_number, 3);
        assert_eq!(parts[0].etag, "abc");
        assert_eq!(
            parts[0].checksums,
            vec![
                (ChecksumAlgorithm::Crc32, "DUoRhQ==".to_string()),
                (
                    ChecksumAlgorithm::Sha256,
                    "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=".to_string()
                ),
            ]
        );
        assert_eq!(parts[1].part_number, 10000);
        assert_eq!(parts[1].etag, "def");
        assert_eq!(
            parts[1]
                .checksums
                .iter()
                .map(|(a, _)| *a)
                .collect::<Vec<_>>(),
            vec![
                ChecksumAlgorithm::Crc32c,
                ChecksumAlgorithm::Crc64Nvme,
                ChecksumAlgorithm::Sha1
            ]
        );
    }

    #[test]
    fn complete_multipart_upload_part_numbers() {
        let with_number = |n: &str| {
            format!(
                "<CompleteMultipartUpload><Part><PartNumber>{n}</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>"
            )
        };
        for n in ["0", "-1", "-2147483648"] {
            assert!(
                matches!(
                    parse_complete_multipart_upload(with_number(n).as_bytes()),
                    Err(XmlError::InvalidPartNumber(_))
                ),
                "{n}"
            );
        }
        for n in ["", "one", "1.5", "0x1", "2147483648", "99999999999"] {
            assert_malformed(
                parse_complete_multipart_upload(with_number(n).as_bytes()),
                n,
            );
        }
        assert_eq!(
            parse_complete_multipart_upload(with_number("2147483647").as_bytes()).unwrap()[0]
                .part_number,
            2_147_483_647
        );
    }

    #[test]
    fn complete_multipart_upload_schema_failures() {
        let cases = [
            ("<CompleteMultipartUpload/>", "no parts"),
            (
                "<CompleteMultipartUpload></CompleteMultipartUpload>",
                "no parts",
            ),
            (
                "<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
                "no number",
            ),
            (
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
                "no etag",
            ),
            (
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
                "repeated number",
            ),
            (
                "<CompleteMultipartUpload><Part><PartNumber><i>1</i></PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
                "element in number",
            ),
            (
                "<CompleteMultipartUpload>junk<Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
                "mixed content",
            ),
            (
                "<Delete><Object><Key>k</Key></Object></Delete>",
                "wrong root",
            ),
        ];
        for (body, what) in cases {
            assert_malformed(parse_complete_multipart_upload(body.as_bytes()), what);
        }
    }

    #[test]
    fn delete_as_boto3_sends_it() {
        let body = delete_body(
            "<Object><Key>photos/2006/January/sample.jpg</Key></Object>\
             <Object><Key>b</Key><VersionId>3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo</VersionId></Object>\
             <Quiet>true</Quiet>",
        );
        let parsed = parse_delete(body.as_bytes()).unwrap();
        assert!(parsed.quiet);
        assert_eq!(parsed.keys, ["photos/2006/January/sample.jpg", "b"]);
    }

    #[test]
    fn delete_pretty_printed_without_namespace_or_quiet() {
        let body = "<Delete>\n  <Object>\n    <Key>k1</Key>\n  </Object>\n  <Object>\n    <Key>k2</Key>\n    \
                    <ETag>\"a0e05e3566754e04b1e0f18c6b1abe1d\"</ETag>\n  </Object>\n</Delete>\n";
        let parsed = parse_delete(body.as_bytes()).unwrap();
        assert!(!parsed.quiet);
        assert_eq!(parsed.keys, ["k1", "k2"]);

        let prefixed = "<s3:Delete xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                        <s3:Object><s3:Key>k</s3:Key></s3:Object><s3:Quiet>false</s3:Quiet></s3:Delete>";
        let parsed = parse_delete(prefixed.as_bytes()).unwrap();
        assert_eq!(
            parsed,
            DeleteRequest {
                quiet: false,
                keys: vec!["k".into()]
            }
        );
    }

    #[test]
    fn delete_keys_with_special_characters() {
        // How ElementTree-based clients (botocore) and hand-escaping clients write them.
        let body = delete_body(
            "<Object><Key>a &amp; b &lt;c&gt; \"q\" 'a' é\n2nd line</Key></Object>\
             <Object><Key>&quot;&apos;&#233;&#xE9;&#x1;&#13;</Key></Object>\
             <Object><Key>   </Key></Object>\
             <Object><Key><![CDATA[<raw & cdata>]]></Key></Object>\
             <Object><Key>crlf\r\nkept as lf</Key></Object>",
        );
        let parsed = parse_delete(body.as_bytes()).unwrap();
        assert_eq!(
            parsed.keys,
            [
                "a & b <c> \"q\" 'a' é\n2nd line",
                "\"'éé\u{1}\r",
                "   ",
                "<raw & cdata>",
                "crlf\nkept as lf",
            ]
        );
        let raw_control = delete_body("<Object><Key>\u{1}raw\u{1f}</Key></Object>");
        assert_eq!(
            parse_delete(raw_control.as_bytes()).unwrap().keys,
            ["\u{1}raw\u{1f}"]
        );
    }

    #[test]
    fn delete_quiet_values() {
        for (text, quiet) in [
            ("true", true),
            ("1", true),
            ("false", false),
            ("0", false),
            (" true\n", true),
        ] {
            let body = delete_body(&format!(
                "<Quiet>{text}</Quiet><Object><Key>k</Key></Object>"
            ));
            assert_eq!(
                parse_delete(body.as_bytes()).unwrap().quiet,
                quiet,
                "{text:?}"
            );
        }
        for text in ["yes", "TRUE", "", "truefalse"] {
            let body = delete_body(&format!(
                "<Quiet>{text}</Quiet><Object><Key>k</Key></Object>"
            ));
            assert_malformed(parse_delete(body.as_bytes()), text);
        }
    }

    #[test]
    fn delete_schema_failures() {
        let cases = [
            ("<Quiet>true</Quiet>", "no objects"),
            ("", "no objects"),
            ("<Object></Object>", "object without key"),
            (
                "<Object><VersionId>v</VersionId></Object>",
                "object without key",
            ),
            ("<Object><Key></Key></Object>", "empty key"),
            ("<Object><Key/></Object>", "empty key"),
            ("<Object><Key>a</Key><Key>b</Key></Object>", "two keys"),
            ("<Object><Key>a<b/></Key></Object>", "element in key"),
            (
                "<Quiet>true</Quiet><Quiet>true</Quiet><Object><Key>k</Key></Object>",
                "two quiets",
            ),
        ];
        for (inner, what) in cases {
            assert_malformed(parse_delete(delete_body(inner).as_bytes()), what);
        }
    }

    #[test]
    fn delete_key_count_limit() {
        let objects = |n: usize| -> String {
            (0..n)
                .map(|i| format!("<Object><Key>key-{i}</Key></Object>"))
                .collect()
        };
        let at_limit = delete_body(&objects(MAX_DELETE_KEYS));
        assert_eq!(
            parse_delete(at_limit.as_bytes()).unwrap().keys.len(),
            MAX_DELETE_KEYS
        );
        assert_malformed(
            parse_delete(delete_body(&objects(MAX_DELETE_KEYS + 1)).as_bytes()),
            "1001 keys",
        );
    }

    #[test]
    fn largest_delete_fits_the_body_cap() {
        let key = "k".repeat(1024);
        let objects: String = (0..MAX_DELETE_KEYS)
            .map(|_| format!("<Object><Key>{key}</Key></Object>"))
            .collect();
        let body = delete_body(&format!("<Quiet>true</Quiet>{objects}"));
        assert!(body.len() * 2 < MAX_XML_BODY, "{} bytes", body.len());
        assert_eq!(
            parse_delete(body.as_bytes()).unwrap().keys.len(),
            MAX_DELETE_KEYS
        );
    }

    #[test]
    fn largest_complete_multipart_upload_fits_the_body_cap() {
        let parts: String = (1..=10_000)
            .map(|n| {
                format!(
                    "<Part><ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag>\
                     <PartNumber>{n}</PartNumber><ChecksumSHA256>\
                     uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=</ChecksumSHA256></Part>"
                )
            })
            .collect();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <CompleteMultipartUpload xmlns=\"{S3_XMLNS}\">{parts}</CompleteMultipartUpload>"
        );
        assert!(body.len() * 2 < MAX_XML_BODY, "{} bytes", body.len());
        let parsed = parse_complete_multipart_upload(body.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 10_000);
        assert_eq!(parsed[9_999].part_number, 10_000);
        assert_eq!(parsed[9_999].etag, "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn create_bucket_configuration() {
        let body = format!(
            "<CreateBucketConfiguration xmlns=\"{S3_XMLNS}\"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"
        );
        assert_eq!(
            parse_create_bucket_configuration(body.as_bytes()).unwrap(),
            Some("eu-west-1".to_string())
        );
        let pretty = "<?xml version=\"1.0\"?>\n<CreateBucketConfiguration>\n  \
                      <LocationConstraint>\n    us-west-2\n  </LocationConstraint>\n</CreateBucketConfiguration>";
        assert_eq!(
            parse_create_bucket_configuration(pretty.as_bytes()).unwrap(),
            Some("us-west-2".to_string())
        );
        for empty in [
            "<CreateBucketConfiguration/>",
            "<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>",
            "<CreateBucketConfiguration><LocationConstraint> </LocationConstraint></CreateBucketConfiguration>",
            "<CreateBucketConfiguration><Bucket><Type>Directory</Type></Bucket></CreateBucketConfiguration>",
        ] {
            assert_eq!(
                parse_create_bucket_configuration(empty.as_bytes()).unwrap(),
                None,
                "{empty}"
            );
        }
        assert_malformed(
            parse_create_bucket_configuration(b"<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint><LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>"),
            "two constraints",
        );
        assert_malformed(
            parse_create_bucket_configuration(b"<BucketConfiguration><LocationConstraint>a</LocationConstraint></BucketConfiguration>"),
            "wrong root",
        );
    }

    #[test]
    fn not_well_formed_documents_are_refused() {
        let valid = "<Delete><Object><Key>k</Key></Object></Delete>";
        assert!(parse_delete(valid.as_bytes()).is_ok());
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"   \n", "whitespace only"),
            (b"not xml at all", "text garbage"),
            (b"<Delete><Object><Key>k</Key></Object>", "truncated"),
            (b"<Delete><Object><Key>k</Key></Object></Delete", "truncated end tag"),
            (b"<Delete><Object><Key>k", "truncated text"),
            (b"<Delete><Object><Key>k</Object></Key></Delete>", "mismatched"),
            (b"<Delete><Object><Key>k</Key></Object></Delete></Delete>", "extra end tag"),
            (b"<Delete><Object><Key>k</Key></Object></Delete><Delete/>", "two roots"),
            (b"<Delete><Object><Key>k</Key></Object></Delete>trailing", "trailing text"),
            (b"leading<Delete><Object><Key>k</Key></Object></Delete>", "leading text"),
            (b"<Delete><Object><Key>a & b</Key></Object></Delete>", "bare ampersand"),
            (b"<Delete><Object><Key>a < b</Key></Object></Delete>", "bare less-than"),
            (b"<Delete><Object><Key>&nbsp;</Key></Object></Delete>", "undefined entity"),
            (b"<Delete><!-- a -- b --><Object><Key>k</Key></Object></Delete>", "bad comment"),
            (b"<Delete><Object><Key>&#0;</Key></Object></Delete>", "NUL reference"),
            (b"<Delete><Object><Key>a\0b</Key></Object></Delete>", "raw NUL"),
            (b"<Delete><Object><Key>k</Key></Object></Delete>\0", "raw NUL after the root"),
            (b"<Delete><Object><Key>&#xD800;</Key></Object></Delete>", "surrogate reference"),
            (b"<Delete><Object><Key>&#x110000;</Key></Object></Delete>", "out of range reference"),
            (b"<Delete><Object><Key>&#xZZ;</Key></Object></Delete>", "bad hex reference"),
            (b"<Delete a=\"1\" a=\"2\"><Object><Key>k</Key></Object></Delete>", "duplicate attribute"),
            (b"<Delete a=1><Object><Key>k</Key></Object></Delete>", "unquoted attribute"),
            (b"<Delete><Object><Key>\xff\xfe</Key></Object></Delete>", "invalid UTF-8"),
            (
                b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Delete><Object><Key>k</Key></Object></Delete>",
                "non-UTF-8 encoding",
            ),
            (
                b"<Delete><?xml version=\"1.0\"?><Object><Key>k</Key></Object></Delete>",
                "late declaration",
            ),
        ];
        for (body, what) in cases {
            assert_malformed(parse_delete(body), what);
        }
    }

    #[test]
    fn doctype_and_entity_tricks_never_expand() {
        let billion_laughs = b"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n\
            <!ENTITY lol \"lol\">\n\
            <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n\
            <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n\
            ]>\n<Delete><Object><Key>&lol3;</Key></Object></Delete>";
        assert_malformed(parse_delete(billion_laughs), "billion laughs");
        let external =
            b"<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
            <Delete><Object><Key>&xxe;</Key></Object></Delete>";
        assert_malformed(parse_delete(external), "external entity");
        let plain_doctype = b"<!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>";
        assert_malformed(parse_delete(plain_doctype), "doctype");
        // Without a DTD an entity reference is simply undefined.
        let undeclared = b"<Delete><Object><Key>&lol3;</Key></Object></Delete>";
        assert_malformed(parse_delete(undeclared), "undeclared entity");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let depth = 100_000;
        let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        assert_malformed(parse_delete(body.as_bytes()), "deep nesting");
        let unclosed = "<a>".repeat(depth);
        assert_malformed(parse_delete(unclosed.as_bytes()), "deep unclosed");
    }

    #[test]
    fn byte_order_mark_and_comments_are_tolerated() {
        let body = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?><!-- c --><Delete><?pi x?>\
                    <Object><!-- c --><Key>k<!-- inside -->2</Key></Object></Delete><!-- after -->";
        assert_eq!(parse_delete(body.as_bytes()).unwrap().keys, ["k2"]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: truncations and byte flips of a valid document.
        let valid = delete_body(
            "<Quiet>true</Quiet><Object><Key>a&amp;b&#x1;</Key><VersionId>v</VersionId></Object>",
        )
        .into_bytes();
        for end in 0..valid.len() {
            let _ = parse_delete(&valid[..end]);
            let _ = parse_complete_multipart_upload(&valid[..end]);
            let _ = parse_create_bucket_configuration(&valid[..end]);
        }
        let mut state: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut mutated = valid.clone();
            for _ in 0..3 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = (state as usize >> 8) % mutated.len();
                mutated[at] = (state >> 24) as u8;
            }
            let _ = parse_delete(&mutated);
        }
    }
}
