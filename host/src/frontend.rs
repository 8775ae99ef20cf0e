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

use crate::limits::Limits;
use crate::metrics::{self, Metrics, Rejection};
use crate::server::{drain, json_error, ResponseBody, Server};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Readiness and the host's own routes in front of a [`Server`] that may not exist yet.
pub struct Frontend {
    metrics: Arc<Metrics>,
    server: OnceLock<Arc<Server>>,
    draining: AtomicBool,
    retry_after_secs: u64,
    read_timeout: Duration,
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
    /// A frontend whose server is still loading; `limits` gives `Retry-After` and the read
    /// timeout. Give it the server with [`Frontend::set_ready`]; that server should record into
    /// the same `metrics` ([`Server::with_metrics`]).
    pub fn loading(metrics: Arc<Metrics>, limits: &Limits) -> Arc<Self> {
        metrics.set_ready(false);
        Arc::new(Self {
            metrics,
            server: OnceLock::new(),
            draining: AtomicBool::new(false),
            retry_after_secs: limits.retry_after_secs,
            read_timeout: limits.read_timeout,
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

    /// Handles one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResponseBody> {
        let received = Instant::now();
        if let Some(response) = self.own_route(&req) {
            self.metrics.host_reply(req.uri().path(), response.status().as_u16(), received.elapsed(), None);
            return response;
        }
        match self.server.get() {
            Some(server) => server.clone().handle(req).await,
            None => {
                let mut response = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "loading",
                    "the server is starting: the component and the models are loading; retry later",
                );
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(self.retry_after_secs));
                self.metrics.host_reply(req.uri().path(), 503, received.elapsed(), Some(Rejection::Loading));
                response
            }
        }
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

fn body(text: String) -> ResponseBody {
    Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed_unsync()
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

/// Accepts connections on `listener` and serves HTTP/1.1 through `frontend` until `shutdown`
/// resolves; then `/ready` turns 503 `draining`, the listener is closed, and the requests already
/// admitted get up to [`SHUTDOWN_GRACE`](crate::server::SHUTDOWN_GRACE) to finish.
pub async fn serve_frontend(listener: TcpListener, frontend: Arc<Frontend>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // e.g. out of file descriptors: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => {
                frontend.begin_draining();
                drop(listener);
                match frontend.server() {
                    Some(server) => drain(server).await,
                    None => tracing::info!("shutting down while loading"),
                }
                return Ok(());
            }
        };
        let _ = stream.set_nodelay(true);
        let frontend = frontend.clone();
        let read_timeout = frontend.read_timeout;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let frontend = frontend.clone();
                async move { Ok::<_, std::convert::Infallible>(frontend.handle(req).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
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
    fn status_bodies() {
        let response = json_status(StatusCode::SERVICE_UNAVAILABLE, "loading", Some(5));
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
