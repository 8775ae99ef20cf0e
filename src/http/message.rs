//! The request and the reply as plain types, so the whole HTTP layer runs natively in tests;
//! `lib.rs` adapts them to wasi:http.

use serde_json::Value;

use crate::error::Error;

pub struct HttpRequest {
    pub method: String,
    /// Path and query, e.g. `/?language=de`.
    pub path_with_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// A request body: in memory, or read as it arrives (wasi:http), so a live upload is
/// transcribed while it is still being sent (`api::live`).
pub enum Body {
    Bytes(Vec<u8>),
    Stream(Box<dyn BodyStream>),
}

/// A body read piece by piece; blocks until the next piece arrives.
pub trait BodyStream {
    /// The next piece, `None` at the end; an error when the host or client ended it early
    /// (e.g. the host's size limit or its read timeout).
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error>;
}

impl<F: FnMut() -> Result<Option<Vec<u8>>, Error>> BodyStream for F {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        self()
    }
}

impl Body {
    /// The next piece of the body (all of it, for one in memory).
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Body::Bytes(b) if b.is_empty() => Ok(None),
            Body::Bytes(b) => Ok(Some(std::mem::take(b))),
            Body::Stream(s) => s.next_chunk(),
        }
    }

    /// The body, when it is in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Body::Bytes(b) => Some(b),
            Body::Stream(_) => None,
        }
    }

    /// The whole body.
    pub fn read_all(self) -> Result<Vec<u8>, Error> {
        match self {
            Body::Bytes(b) => Ok(b),
            Body::Stream(mut s) => {
                let mut all = Vec::new();
                while let Some(piece) = s.next_chunk()? {
                    all.extend_from_slice(&piece);
                }
                Ok(all)
            }
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::Bytes(b)
    }
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.path_with_query.split('?').next().unwrap_or("/")
    }

    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.path_with_query.split_once('?') else { return Vec::new() };
        q.split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// The media type without its parameters, lower case (`audio/wav`).
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }

    /// Whether the client prefers HTML (a browser's navigation), by its `Accept` header.
    pub fn wants_html(&self) -> bool {
        self.header("accept").is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("text/html")))
    }
}

/// A full reply, or a stream whose body is produced while the request is processed
/// (Server-Sent Events as segments are decoded). `headers` are sent besides `content-type`.
pub enum Reply {
    Full { status: u16, content_type: &'static str, headers: Vec<(&'static str, String)>, body: Vec<u8> },
    Stream { content_type: &'static str, headers: Vec<(&'static str, String)>, job: StreamJob },
}

/// Runs after the stream's headers are sent; writes body chunks through `write`.
pub type StreamJob = Box<dyn FnOnce(&mut dyn FnMut(&[u8]))>;

impl Reply {
    pub fn full(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Reply::Full { status, content_type, headers: Vec::new(), body }
    }

    pub fn json(status: u16, v: &Value) -> Self {
        Reply::full(status, "application/json", v.to_string().into_bytes())
    }

    pub fn status(&self) -> u16 {
        match self {
            Reply::Full { status, .. } => *status,
            Reply::Stream { .. } => 200,
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Reply::Full { content_type, .. } | Reply::Stream { content_type, .. } => content_type,
        }
    }

    pub fn headers(&self) -> &[(&'static str, String)] {
        match self {
            Reply::Full { headers, .. } | Reply::Stream { headers, .. } => headers,
        }
    }

    /// Adds a header (e.g. `x-audio-duration`, `x-route`).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        match &mut self {
            Reply::Full { headers, .. } | Reply::Stream { headers, .. } => headers.push((name, value.into())),
        }
        self
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, accept: Option<&str>) -> HttpRequest {
        let headers = accept.map(|a| vec![("Accept".to_string(), a.to_string())]).unwrap_or_default();
        HttpRequest { method: "GET".into(), path_with_query: path.into(), headers, body: Vec::new().into() }
    }

    #[test]
    fn query_parsing_and_percent_decoding() {
        let q = req("/?language=de&prompt=hello%20world+again&x", None).query();
        assert_eq!(q[0], ("language".into(), "de".into()));
        assert_eq!(q[1].1, "hello world again");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn html_is_wanted_only_when_accepted() {
        assert!(req("/", Some("text/html,application/xhtml+xml,*/*;q=0.8")).wants_html());
        assert!(!req("/", Some("*/*")).wants_html());
        assert!(!req("/", Some("application/json")).wants_html());
        assert!(!req("/", None).wants_html());
    }
}
