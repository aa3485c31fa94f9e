//! Turns a fuzzer's bytes into the fields of a request. Fields are separated by a 0x00 byte,
//! which no parser under test gives a meaning to, so the fuzzer can grow and shrink each field
//! independently; missing fields are empty.

pub struct Fields<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Fields { rest: Some(data) }
    }

    /// The next field's bytes, empty once the input is used up.
    pub fn bytes(&mut self) -> &'a [u8] {
        let Some(rest) = self.rest else {
            return &[];
        };
        match rest.iter().position(|&b| b == 0) {
            Some(end) => {
                self.rest = Some(&rest[end + 1..]);
                &rest[..end]
            }
            None => {
                self.rest = None;
                rest
            }
        }
    }

    /// The next field as text, invalid UTF-8 replaced.
    pub fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    /// The next field read as a little-endian number (up to 8 bytes), 0 when empty.
    pub fn number(&mut self) -> u64 {
        self.bytes()
            .iter()
            .take(8)
            .rev()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b))
    }
}

/// `Name: value` lines as a header map; lines whose name or value HTTP cannot carry are
/// dropped, as hyper would refuse them before any parser saw them.
pub fn headers(text: &[u8]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// The method a request line could carry: a few common ones, or any token.
pub fn method(text: &[u8]) -> http::Method {
    match text.first() {
        None => http::Method::GET,
        Some(b'0') => http::Method::PUT,
        Some(b'1') => http::Method::POST,
        Some(b'2') => http::Method::DELETE,
        Some(b'3') => http::Method::HEAD,
        _ => http::Method::from_bytes(text).unwrap_or(http::Method::GET),
    }
}
