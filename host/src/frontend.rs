//! What answers on the listener: the host's own endpoints, and the [`Server`] once it exists.
//!
//! - `GET /health`: 200 `{"status":"ok"}` as soon as the listener accepts (the process is alive);
//! - `GET /ready`: 503 `{"status":"loading"}` + `Retry-After` until the component is compiled
//!   and the models are loaded, then 200 `{"status":"ready"}`, and 503 `{"status":"draining"}`
//!   once shutdown has begun;
//! - `GET /metrics`: Prometheus text ([`Metrics`]);
//! - anything else: the guest, through [`Server::handle`]; while loading, 503 `loading` +
//!   `Retry-After`.
//!
//! None of these take an admission slot or instantiate the component.

use crate::access::Access;
use crate::cors::Cors;
use crate::limits::Limits;
use crate::linger;
use crate::metrics::{self, Metrics, Rejection};
use crate::server::{json_error, ResponseBody, Server};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, ORIGIN, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Readiness and the host's own routes in front of a [`Server`] that may not exist yet.
pub struct Frontend {
    metrics: Arc<Metrics>,
    server: OnceLock<Arc<Server>>,
    draining: AtomicBool,
    retry_after_secs: u64,
    pub(crate) read_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    access: Arc<Access>,
    cors: Cors,
    ids: RequestIds,
}

/// What `/ready` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Loading,
    Ready,
    Draining,
}

impl Readiness {
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Loading => "loading",
            Readiness::Ready => "ready",
            Readiness::Draining => "draining",
        }
    }
}

impl Frontend {
    /// A frontend whose server is still loading; `limits` gives `Retry-After`, the read
    /// timeout and the shutdown's grace period. Give it the server with [`Frontend::set_ready`]; that server should record into
    /// the same `metrics` ([`Server::with_metrics`]).
    pub fn loading(metrics: Arc<Metrics>, limits: &Limits) -> Arc<Self> {
        metrics.set_ready(false);
        Arc::new(Self {
            metrics,
            server: OnceLock::new(),
            draining: AtomicBool::new(false),
            retry_after_secs: limits.retry_after_secs,
            read_timeout: limits.read_timeout,
            shutdown_grace: limits.shutdown_grace,
            access: limits.access.clone(),
            cors: limits.cors.clone(),
            ids: RequestIds::new(),
        })
    }

    /// A frontend for a server that is ready.
    pub fn ready(server: Arc<Server>) -> Arc<Self> {
        let frontend = Self::loading(server.metrics().clone(), server.limits());
        frontend.set_ready(server);
        frontend
    }

    /// Hands over the loaded server: from now on requests reach it and `/ready` says 200.
    /// Returns `false` (and changes nothing) if a server was set before.
    pub fn set_ready(&self, server: Arc<Server>) -> bool {
        let set = self.server.set(server).is_ok();
        if set && !self.draining.load(Ordering::Acquire) {
            self.metrics.set_ready(true);
        }
        set
    }

    /// The server, once loaded.
    pub fn server(&self) -> Option<&Arc<Server>> {
        self.server.get()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Acquire) {
            Readiness::Draining
        } else if self.server.get().is_some() {
            Readiness::Ready
        } else {
            Readiness::Loading
        }
    }

    /// Shutdown has begun: `/ready` answers 503 `draining` from now on.
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.metrics.set_ready(false);
    }

    /// Handles one HTTP request. Every response carries `X-Request-Id`: the request's own (if
    /// it sent a usable one: 1–128 visible ASCII characters) or a new one; the guest sees it
    /// too, and the host's log lines and 5xx bodies name it.
    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<ResponseBody> {
        let request_id = request_id(req.headers().get(X_REQUEST_ID), &self.ids);
        req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
        let origin = req.headers().get(ORIGIN).cloned();
        let mut response = self.route(req).await;
        response.headers_mut().insert(X_REQUEST_ID, request_id);
        self.cors.decorate(origin.as_ref(), &mut response);
        response
    }

    async fn route(&self, req: Request<Incoming>) -> Response<ResponseBody> {
        let received = Instant::now();
        if let Some(response) = self.own_route(&req).or_else(|| self.cors.preflight(&req)) {
            self.metrics.host_reply(req.uri().path(), response.status().as_u16(), received.elapsed(), None);
            return response;
        }
        let Some(server) = self.server.get() else {
            let mut response = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "loading",
                "the server is starting: the component and the models are loading; retry later",
            );
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(self.retry_after_secs));
            self.metrics.host_reply(req.uri().path(), 503, received.elapsed(), Some(Rejection::Loading));
            linger::discard(req.into_body());
            return response;
        };
        // Keys and per-client limits from the head alone: before the body, before a slot.
        let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
        let pass = match self.access.admit(&req, peer, self.retry_after_secs) {
            Ok(pass) => pass,
            Err(response) => {
                let status = response.status().as_u16();
                let why = if status == 401 { Rejection::Unauthorized } else { Rejection::RateLimited };
                let request_id = req.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::warn!(request_id, path = req.uri().path(), ?peer, status, "refused from the request head ({})", why.label());
                self.metrics.host_reply(req.uri().path(), status, received.elapsed(), Some(why));
                linger::discard(req.into_body());
                return response;
            }
        };
        let response = server.clone().handle(req).await;
        drop(pass);
        response
    }

    /// `/health`, `/ready` and `/metrics` (GET or HEAD); `None` for anything else.
    fn own_route(&self, req: &Request<Incoming>) -> Option<Response<ResponseBody>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        match req.uri().path() {
            "/health" => Some(json_status(StatusCode::OK, "ok", None)),
            "/ready" => Some(match self.readiness() {
                Readiness::Ready => json_status(StatusCode::OK, "ready", None),
                not => json_status(StatusCode::SERVICE_UNAVAILABLE, not.as_str(), Some(self.retry_after_secs)),
            }),
            "/metrics" => {
                let (running, admitted) = self.server.get().map_or((0, 0), |s| (s.running(), s.in_flight()));
                let text = self.metrics.render(running, admitted.saturating_sub(running));
                let mut response = Response::new(body(text));
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
                Some(response)
            }
            _ => None,
        }
    }
}

pub(crate) fn body(text: String) -> ResponseBody {
    Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed_unsync()
}

/// The request and response header naming a request.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's address, put in each request's extensions by the listener.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

/// New request ids: a per-process random prefix and a counter (`3f9a1c2b5e7d0a14-42`), unique
/// across restarts and replicas without coordination.
struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        Self { prefix: hasher.finish(), next: AtomicU64::new(1) }
    }
}

/// The client's `X-Request-Id` if usable (1–128 visible ASCII characters), else a new one.
fn request_id(given: Option<&HeaderValue>, ids: &RequestIds) -> HeaderValue {
    if let Some(given) = given.filter(|v| (1..=128).contains(&v.len()) && v.as_bytes().iter().all(u8::is_ascii_graphic)) {
        return given.clone();
    }
    let id = format!("{:016x}-{}", ids.prefix, ids.next.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_str(&id).expect("hex digits and a dash")
}

/// `{"status": …}` with `status`, and `Retry-After` if given.
fn json_status(code: StatusCode, status: &str, retry_after: Option<u64>) -> Response<ResponseBody> {
    let mut response = Response::new(body(serde_json::json!({ "status": status }).to_string()));
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(secs) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_states() {
        let frontend = Frontend::loading(Arc::new(Metrics::new("onnx")), &Limits::default());
        assert_eq!(frontend.readiness(), Readiness::Loading);
        assert!(frontend.metrics().render(0, 0).lines().any(|l| l == "whisper_ready 0"));
        frontend.begin_draining();
        assert_eq!(frontend.readiness(), Readiness::Draining);
    }

    #[test]
    fn request_ids() {
        let ids = RequestIds::new();
        let (a, b) = (request_id(None, &ids), request_id(None, &ids));
        assert_ne!(a, b);
        assert_eq!(request_id(Some(&HeaderValue::from_static("abc-123")), &ids), "abc-123");
        let long = HeaderValue::from_str(&"x".repeat(129)).unwrap();
        assert_ne!(request_id(Some(&long), &ids), long);
        assert_ne!(request_id(Some(&HeaderValue::from_static("a b")), &ids), "a b");
    }

    #[test]
    fn status_bodies() {
        let response = json_status(StatusCode::SERVICE_UNAVAILABLE, "loading", Some(5));
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
