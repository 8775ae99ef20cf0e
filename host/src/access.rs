//! Who may use the server, decided from the request head alone — before the body is read and
//! before the request takes a queue slot: API keys (the `api-keys` crate, the same rule the
//! component applies on stock hosts) and per-client limits (requests per minute, requests at
//! once).
//!
//! With keys configured, every request that may carry a body (any method but GET, HEAD and
//! OPTIONS) must present one, else 401 from the head (`Connection: close`; the body is read
//! and dropped while the reply goes out, `linger`, so the client sees the 401). GET requests
//! go on to the component, which checks the same keys where its routes need them (its page and
//! assets are public) — the host hands it the current keys as `WHISPER_API_KEY`.
//!
//! A client is its key when it presented a valid one, else its address.

use crate::server::{json_error, ResponseBody};
use api_keys::{Decision, KeyId, Keys};
use hyper::header::{HeaderValue, CONNECTION, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Per-client limits; `None`: no limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientLimits {
    /// Requests per minute per client (a token bucket holding one minute's worth).
    pub per_minute: Option<u32>,
    /// Requests at once per client (running, queued or uploading).
    pub concurrent: Option<usize>,
}

/// Keys and client limits, shared by every request.
pub struct Access {
    keys: RwLock<Arc<Keys>>,
    /// Keys from `WHISPER_API_KEY` (fixed) and the keys file (re-read by [`Access::reload`]).
    fixed: Keys,
    file: Option<PathBuf>,
    limits: ClientLimits,
    clients: Mutex<HashMap<Client, ClientState>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("keys", &self.keys().len()).field("file", &self.file).field("limits", &self.limits).finish()
    }
}

impl Default for Access {
    fn default() -> Self {
        Self::open()
    }
}

/// Who a request is, for the per-client limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    Key(KeyId),
    Address(IpAddr),
    Unknown,
}

#[derive(Debug)]
struct ClientState {
    tokens: f64,
    refilled: Instant,
    running: usize,
}

/// Held while a request is served: its place in its client's concurrency count.
#[derive(Debug)]
pub struct Pass {
    access: Option<Arc<Access>>,
    client: Client,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let Some(access) = &self.access else { return };
        let mut clients = access.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = clients.get_mut(&self.client) {
            state.running = state.running.saturating_sub(1);
        }
    }
}

/// Largest number of clients remembered; beyond, full and idle ones are forgotten.
const MAX_CLIENTS: usize = 10_000;

impl Access {
    /// No keys and no limits.
    pub fn open() -> Self {
        Self::new(Keys::none(), None, ClientLimits::default()).expect("no file to read")
    }

    /// `fixed` keys plus those of `file` (see [`Keys::parse`]); fails if the file cannot be read
    /// or holds an invalid key (named by line, never by value).
    pub fn new(fixed: Keys, file: Option<&Path>, limits: ClientLimits) -> anyhow::Result<Self> {
        let keys = Self::read(&fixed, file)?;
        Ok(Self { keys: RwLock::new(Arc::new(keys)), fixed, file: file.map(Path::to_path_buf), limits, clients: Mutex::default() })
    }

    fn read(fixed: &Keys, file: Option<&Path>) -> anyhow::Result<Keys> {
        let Some(file) = file else { return Ok(fixed.clone()) };
        let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading the API keys file `{}`: {e}", file.display()))?;
        let keys = Keys::parse(&text).map_err(|e| anyhow::anyhow!("the API keys file `{}`: {e}", file.display()))?;
        Ok(keys.merged(fixed))
    }

    /// Re-reads the keys file (on SIGHUP); on an error the keys stay as they were.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let keys = Self::read(&self.fixed, self.file.as_deref())?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// The keys now.
    pub fn keys(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Decides on a request from its head: `Ok` with its pass (keep it until the response is
    /// done), or the 401/429 to send instead.
    pub fn admit<B>(self: &Arc<Self>, req: &Request<B>, peer: Option<IpAddr>, retry_after_secs: u64) -> Result<Pass, hyper::Response<ResponseBody>> {
        let keys = self.keys();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let decision = keys.check(api_keys::presented(header, req.uri().query()).as_deref());
        let may_have_body = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let client = match decision {
            Decision::Allowed(id) => Client::Key(id),
            Decision::Missing | Decision::Invalid if may_have_body => return Err(unauthorized(decision)),
            _ => peer.map_or(Client::Unknown, Client::Address),
        };
        if self.limits.per_minute.is_none() && self.limits.concurrent.is_none() {
            return Ok(Pass { access: None, client });
        }
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS {
            let full = self.limits.per_minute.map_or(0.0, f64::from);
            clients.retain(|_, s| s.running > 0 || s.tokens + refill(self.limits, s.refilled, now) < full);
        }
        let state = clients.entry(client).or_insert_with(|| ClientState {
            tokens: self.limits.per_minute.map_or(0.0, f64::from),
            refilled: now,
            running: 0,
        });
        if let Some(max) = self.limits.concurrent {
            if state.running >= max {
                return Err(too_many(&format!("more than {max} requests at once from this client"), retry_after_secs));
            }
        }
        if let Some(per_minute) = self.limits.per_minute {
            state.tokens = (state.tokens + refill(self.limits, state.refilled, now)).min(f64::from(per_minute));
            state.refilled = now;
            if state.tokens < 1.0 {
                let wait = ((1.0 - state.tokens) * 60.0 / f64::from(per_minute.max(1))).ceil() as u64;
                return Err(too_many(&format!("more than {per_minute} requests per minute from this client"), wait.max(1)));
            }
            state.tokens -= 1.0;
        }
        state.running += 1;
        Ok(Pass { access: Some(self.clone()), client })
    }
}

/// Tokens earned since `since`.
fn refill(limits: ClientLimits, since: Instant, now: Instant) -> f64 {
    let per_minute = limits.per_minute.map_or(0.0, f64::from);
    now.saturating_duration_since(since).as_secs_f64() * per_minute / 60.0
}

fn unauthorized(decision: Decision) -> hyper::Response<ResponseBody> {
    let message = match decision {
        Decision::Invalid => "invalid API key",
        _ => "missing API key; send `Authorization: Bearer <key>` (or `X-API-Key: <key>`, or `?api_key=<key>`)",
    };
    let mut response = json_error(StatusCode::UNAUTHORIZED, "invalid_request_error", "invalid_api_key", message);
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    // The body is dropped unread by anything (`linger`), then the connection closes.
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

fn too_many(message: &str, retry_after_secs: u64) -> hyper::Response<ResponseBody> {
    let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limit_exceeded", message);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(auth: Option<&str>) -> Request<()> {
        let mut req = Request::builder().method("POST").uri("/v1/audio/transcriptions");
        if let Some(key) = auth {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        req.body(()).unwrap()
    }

    #[test]
    fn keys_before_any_work() {
        let access = Arc::new(Access::new(Keys::parse("k1,k2").unwrap(), None, ClientLimits::default()).unwrap());
        assert_eq!(access.admit(&post(None), None, 5).unwrap_err().status(), 401);
        assert_eq!(access.admit(&post(Some("nope")), None, 5).unwrap_err().status(), 401);
        assert_eq!(access.admit(&post(Some("k2")), None, 5).unwrap().client, Client::Key(KeyId(1)));
        // GET goes on to the component (its page is public; its API routes check the key).
        let get = Request::builder().uri("/v1/models").body(()).unwrap();
        assert!(access.admit(&get, None, 5).is_ok());
        let query = Request::builder().method("POST").uri("/v1/audio/transcriptions?api_key=k1").body(()).unwrap();
        assert!(access.admit(&query, None, 5).is_ok());
    }

    #[test]
    fn per_client_limits() {
        let limits = ClientLimits { per_minute: Some(2), concurrent: Some(1) };
        let access = Arc::new(Access::new(Keys::none(), None, limits).unwrap());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let first = access.admit(&post(None), Some(ip), 5).unwrap();
        let busy = access.admit(&post(None), Some(ip), 5).unwrap_err();
        assert_eq!(busy.status(), 429);
        drop(first);
        let second = access.admit(&post(None), Some(ip), 5).unwrap();
        drop(second);
        let limited = access.admit(&post(None), Some(ip), 5).unwrap_err();
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()[RETRY_AFTER], "30");
        // Another client is not affected.
        assert!(access.admit(&post(None), Some("10.0.0.2".parse().unwrap()), 5).is_ok());
    }

    #[test]
    fn reloads_the_keys_file() {
        let dir = std::env::temp_dir().join(format!("access-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "# keys\nold\n").unwrap();
        let access = Arc::new(Access::new(Keys::parse("env").unwrap(), Some(&file), ClientLimits::default()).unwrap());
        assert!(access.admit(&post(Some("old")), None, 5).is_ok());
        std::fs::write(&file, "new\n").unwrap();
        assert_eq!(access.reload().unwrap(), 2);
        assert_eq!(access.admit(&post(Some("old")), None, 5).unwrap_err().status(), 401);
        assert!(access.admit(&post(Some("new")), None, 5).is_ok());
        assert!(access.admit(&post(Some("env")), None, 5).is_ok());
        std::fs::write(&file, "bad key\n").unwrap();
        let err = access.reload().unwrap_err().to_string();
        assert!(err.contains("API key #1") && !err.contains("bad key"), "{err}");
        assert!(access.admit(&post(Some("new")), None, 5).is_ok(), "an invalid file keeps the keys");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
