//! # api-keys
//!
//! One implementation of the API key rule for every host the service runs on: the component
//! applies it on stock hosts (keys from `WHISPER_API_KEY`), and `whisper-host` applies it from the
//! request head alone, before it reads a body or gives the request a queue slot.
//!
//! - A request presents a key as `Authorization: Bearer <key>`, `X-API-Key: <key>`, or the
//!   `api_key` query parameter (for clients that cannot set headers, e.g. `EventSource`), in that
//!   order of precedence ([`presented`]).
//! - Several keys may be configured ([`Keys::parse`]: comma- or newline-separated, `#` starts a
//!   comment line). A key is 1–256 visible ASCII characters other than `,`.
//! - [`Keys::check`] hashes the presented key once and compares its SHA-256 digest with every
//!   configured key's digest in constant time, without stopping at a match, so neither which
//!   key matched nor how much of a key was right shows in the time taken.
//! - Keys never appear in `Debug` output or errors: a [`KeyId`] (the key's position) names one.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 256;

/// The configured keys (possibly none: then every request is allowed).
#[derive(Clone, Default)]
pub struct Keys {
    digests: Vec<[u8; 32]>,
    /// The keys themselves, comma-joined (to hand on, e.g. as a guest's `WHISPER_API_KEY`).
    list: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} configured)", self.digests.len())
    }
}

/// Which configured key a request presented (its position, from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub usize);

/// What [`Keys::check`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No keys are configured.
    Open,
    /// The request presented this key.
    Allowed(KeyId),
    /// Keys are configured and the request presented none.
    Missing,
    /// The request presented a key that is not configured.
    Invalid,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Open | Decision::Allowed(_))
    }
}

/// Why a key list was refused; names the entry by position, never by value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// 1-based position among the entries (comment lines skipped, blank entries counted).
    pub entry: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "API key #{}: {}", self.entry, self.reason)
    }
}

impl std::error::Error for KeyError {}

impl Keys {
    /// No keys: every request is allowed.
    pub fn none() -> Self {
        Self::default()
    }

    /// Keys separated by commas or newlines; blank entries and lines starting with `#` are
    /// skipped, surrounding whitespace is trimmed. Duplicates count once.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = Keys::none();
        let entries = text.lines().filter(|line| !line.trim_start().starts_with('#')).flat_map(|line| line.split(','));
        for (i, entry) in entries.enumerate() {
            let key = entry.trim();
            if key.is_empty() {
                continue;
            }
            if key.len() > MAX_KEY_LEN {
                return Err(KeyError { entry: i + 1, reason: "longer than 256 characters" });
            }
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(KeyError { entry: i + 1, reason: "not visible ASCII (spaces and control characters are not allowed)" });
            }
            keys.add(key);
        }
        Ok(keys)
    }

    /// These keys and `other`'s.
    pub fn merged(mut self, other: &Keys) -> Self {
        for key in other.list.split(',').filter(|k| !k.is_empty()) {
            self.add(key);
        }
        self
    }

    fn add(&mut self, key: &str) {
        let digest = digest(key);
        if self.digests.contains(&digest) {
            return;
        }
        self.digests.push(digest);
        if !self.list.is_empty() {
            self.list.push(',');
        }
        self.list.push_str(key);
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The keys, comma-separated ([`Keys::parse`] reads it back).
    pub fn to_list(&self) -> &str {
        &self.list
    }

    /// Decides on the key a request presented (see [`presented`]).
    pub fn check(&self, presented: Option<&str>) -> Decision {
        if self.is_empty() {
            return Decision::Open;
        }
        let Some(presented) = presented else { return Decision::Missing };
        let given = digest(presented);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, digest) in self.digests.iter().enumerate() {
            let equal = digest.ct_eq(&given);
            index.conditional_assign(&(i as u64), equal);
            found |= equal;
        }
        if bool::from(found) {
            Decision::Allowed(KeyId(index as usize))
        } else {
            Decision::Invalid
        }
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a request presents: `Authorization: Bearer <key>` (scheme case-insensitive), else
/// `X-API-Key`, else the `api_key` parameter of the query string (percent-decoded). `header`
/// looks a header up by its lowercase name; `query` is the query string without `?`.
pub fn presented<'a>(header: impl Fn(&str) -> Option<&'a str>, query: Option<&'a str>) -> Option<Cow<'a, str>> {
    if let Some(value) = header("authorization") {
        let value = value.trim();
        if let Some((scheme, key)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() {
                return Some(Cow::Borrowed(key.trim()));
            }
        }
    }
    if let Some(key) = header("x-api-key").map(str::trim).filter(|k| !k.is_empty()) {
        return Some(Cow::Borrowed(key));
    }
    let query = query?;
    form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "api_key").map(|(_, key)| key).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    #[test]
    fn parses_lists_and_files() {
        let keys = Keys::parse("# team keys\nalpha, beta\n\n  gamma  \nalpha\n").unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.to_list(), "alpha,beta,gamma");
        assert_eq!(Keys::parse(&keys.to_list().to_owned()).unwrap().len(), 3);
        assert!(Keys::parse("").unwrap().is_empty());
        assert!(Keys::parse(" , \n# only a comment").unwrap().is_empty());
        let err = Keys::parse("good\nbad key\n").unwrap_err();
        assert_eq!(err.entry, 2);
        assert!(!err.to_string().contains("bad key"), "the key must not be in the error: {err}");
        assert_eq!(Keys::parse(&"x".repeat(257)).unwrap_err().entry, 1);
        assert!(Keys::parse("tab\there").is_err());
        assert_eq!(format!("{:?}", keys), "Keys(3 configured)");
    }

    #[test]
    fn checks_every_key() {
        let keys = Keys::parse("alpha,beta,gamma").unwrap();
        assert_eq!(keys.check(Some("alpha")), Decision::Allowed(KeyId(0)));
        assert_eq!(keys.check(Some("gamma")), Decision::Allowed(KeyId(2)));
        assert_eq!(keys.check(Some("alph")), Decision::Invalid);
        assert_eq!(keys.check(Some("alphaa")), Decision::Invalid);
        assert_eq!(keys.check(Some("")), Decision::Invalid);
        assert_eq!(keys.check(None), Decision::Missing);
        assert_eq!(Keys::none().check(None), Decision::Open);
        assert!(Decision::Open.is_allowed() && !Decision::Invalid.is_allowed());
        let more = Keys::parse("delta").unwrap().merged(&keys);
        assert_eq!(more.check(Some("beta")), Decision::Allowed(KeyId(2)));
    }

    #[test]
    fn finds_the_presented_key() {
        let h = [("authorization", "Bearer  k1 "), ("x-api-key", "k2")];
        assert_eq!(presented(headers(&h), Some("api_key=k3")).as_deref(), Some("k1"));
        let h = [("authorization", "bearer k1")];
        assert_eq!(presented(headers(&h), None).as_deref(), Some("k1"));
        let h = [("authorization", "Basic dXNlcjpwYXNz"), ("x-api-key", "k2")];
        assert_eq!(presented(headers(&h), None).as_deref(), Some("k2"));
        assert_eq!(presented(headers(&[]), Some("model=base&api_key=a%2Cb%20")).as_deref(), Some("a,b "));
        assert_eq!(presented(headers(&[]), Some("api_key=")), None);
        assert_eq!(presented(headers(&[("authorization", "Bearer")]), None), None);
        assert_eq!(presented(headers(&[]), None), None);
    }
}
