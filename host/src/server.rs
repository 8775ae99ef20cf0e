//! The HTTP server: compile the component once, build a `ProxyPre` once, then one `Store` per
//! request, run on a blocking-pool thread so wasi-nn's synchronous calls never stall the async
//! workers that accept and stream other requests.

use crate::limits::{self, Admission, CancelFlag, Cancelled, Limits, Slot};
use crate::metrics::{parse_audio_duration, GuestRequest, Metrics, Rejection};
use crate::nn::Models;
use crate::state::{add_to_linker, GuestConfig, RequestState};
use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

/// The body type of every response (the guest's, or a host error as JSON).
pub type ResponseBody = HyperOutgoingBody;

/// How to set up Wasmtime.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// Use the pooling allocator, sized for `max_instances` live instances of up to
    /// `max_memory_bytes` each.
    pub pooling: bool,
    pub max_instances: u32,
    pub max_memory_bytes: usize,
    /// Cache compiled code in Wasmtime's default cache directory.
    pub compile_cache: bool,
    /// Expose compiled guest code to a native profiler.
    pub profile: Option<crate::config::WasmProfile>,
}

/// An engine with epoch interruption (the request deadline; the ticker thread starts here) and,
/// optionally, pooling.
pub fn build_engine(options: &EngineOptions) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if let Some(profile) = options.profile {
        config.profiler(match profile {
            crate::config::WasmProfile::Perfmap => wasmtime::ProfilingStrategy::PerfMap,
            crate::config::WasmProfile::Jitdump => wasmtime::ProfilingStrategy::JitDump,
        });
    }
    if options.pooling {
        let instances = options.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 16)
            .total_memories(instances * 4)
            .total_tables(instances * 16)
            .total_stacks(instances)
            .max_memory_size(options.max_memory_bytes.max(1 << 16));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    if options.compile_cache {
        config.cache(Some(wasmtime::Cache::from_file(None).map_err(anyhow_from)?));
    }
    let engine = Engine::new(&config).map_err(anyhow_from).context("configuring Wasmtime")?;
    limits::start_epoch_ticker(&engine);
    Ok(engine)
}

/// Gives the memory a finished request freed back to the system. glibc keeps freed memory in
/// the malloc arena of the thread that used it, and requests run on whichever blocking thread
/// is free, so without this the resident set grows towards (arenas × a request's peak): with
/// base-int8, 212 MiB at rest became 334 MiB after a few requests and peaked at 428 MiB; with
/// it, 198 MiB after them and a 332 MiB peak. Costs about a millisecond per request.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Compiles the component at `path`.
pub fn load_component(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    check_component_file(path)?;
    Component::from_file(engine, path)
        .map_err(anyhow_from)
        .with_context(|| format!("compiling the component `{}`", path.display()))
}

/// Checks, without compiling, that `path` is a binary WebAssembly component (not a directory,
/// a core module or text): the clear message for each is cheaper than Wasmtime's parse error.
pub fn check_component_file(path: &Path) -> anyhow::Result<()> {
    const BUILD: &str = "build it with `cargo build --release --target wasm32-wasip2 -p whisper-component`, \
                         or pass --component PATH";
    if path.is_dir() {
        bail!("the component `{}` is a directory, not a .wasm file: {BUILD}", path.display());
    }
    if !path.is_file() {
        bail!("the component `{}` does not exist: {BUILD}", path.display());
    }
    // Only binary components: Wasmtime would otherwise parse anything else as WAT text and
    // report a syntax error. Header: "\0asm", then version 0x0d and layer 1 for components.
    let mut header = [0u8; 8];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut header))
        .with_context(|| format!("reading the component `{}`", path.display()))?;
    if read < 8 || &header[..4] != b"\0asm" {
        bail!("`{}` is not a WebAssembly component (no `\\0asm` header): {BUILD}", path.display());
    }
    if header[6..8] == [0, 0] {
        bail!(
            "`{}` is a core WebAssembly module, not a component: build for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)",
            path.display()
        );
    }
    Ok(())
}

/// Links the component against WASI p2, wasi-http and wasi-nn and pre-instantiates it.
pub fn proxy_pre(engine: &Engine, component: &Component) -> anyhow::Result<ProxyPre<RequestState>> {
    let mut linker = Linker::<RequestState>::new(engine);
    add_to_linker(&mut linker).map_err(anyhow_from)?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(anyhow_from)
        .context("the component imports something this host does not provide")?;
    ProxyPre::new(pre)
        .map_err(anyhow_from)
        .context("the component does not export wasi:http/incoming-handler@0.2.x (is it an HTTP component?)")
}

pub(crate) fn anyhow_from(e: wasmtime::Error) -> anyhow::Error {
    anyhow::Error::from(e)
}

/// Everything a request needs, shared by all of them.
pub struct Server {
    pre: ProxyPre<RequestState>,
    models: Arc<Models>,
    guest: GuestConfig,
    limits: Limits,
    admission: Admission,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    /// Set when a shutdown gives up waiting: every running guest stops at its next tick.
    stopping: CancelFlag,
}

impl Server {
    /// A server with its own [`Metrics`] (whose `backend` label is `unknown`).
    pub fn new(pre: ProxyPre<RequestState>, models: Arc<Models>, env: Vec<(String, String)>, limits: Limits) -> Arc<Self> {
        Self::with_metrics(pre, models, env, limits, Arc::new(Metrics::new("unknown")))
    }

    /// A server that records into `metrics` (which also get the models' load times).
    pub fn with_metrics(
        pre: ProxyPre<RequestState>,
        models: Arc<Models>,
        env: Vec<(String, String)>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let guest = GuestConfig { env, max_memory_bytes: limits.max_memory_bytes };
        metrics.set_models(&models);
        Arc::new(Self {
            pre,
            admission: Admission::new(limits.max_concurrent, limits.max_queue),
            models,
            guest,
            limits,
            next_id: AtomicU64::new(1),
            metrics,
            stopping: CancelFlag::default(),
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Requests running in the guest now.
    pub fn running(&self) -> usize {
        self.admission.running()
    }

    pub fn models(&self) -> &Models {
        &self.models
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Requests admitted and not finished (running or queued).
    pub fn in_flight(&self) -> usize {
        self.admission.admitted()
    }

    /// Stops every request: running guests end at their next epoch tick and answer 503
    /// `shutting_down`, queued ones get that answer without running. For the end of a shutdown
    /// whose grace period ran out.
    pub fn stop_all(&self) {
        self.stopping.cancel();
    }

    /// Handles one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResponseBody> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let received = Instant::now();
        let path = req.uri().path().to_owned();
        // Set by the Frontend (the client's own, or a new one); else this server's counter.
        let request_id: Arc<str> = match req.headers().get("x-request-id").and_then(|v| v.to_str().ok()) {
            Some(given) => given.into(),
            None => id.to_string().into(),
        };
        let reject = |response: Response<ResponseBody>, why: Rejection| {
            self.metrics.host_reply(&path, response.status().as_u16(), received.elapsed(), Some(why));
            response
        };
        let length = match content_length(&req) {
            Ok(length) => length,
            Err(()) => {
                let response = json_error(StatusCode::BAD_REQUEST, "invalid_request_error", "bad_content_length", "invalid Content-Length");
                return reject(response, Rejection::BadRequest);
            }
        };
        if length.is_some_and(|n| n > self.limits.max_body_bytes) {
            tracing::warn!(%request_id, length, limit = self.limits.max_body_bytes, "request body too large");
            crate::linger::discard(req.into_body());
            return reject(self.too_large(), Rejection::TooLarge);
        }
        let Some(ticket) = self.admission.try_admit() else {
            tracing::warn!(%request_id, path, "busy: all slots and the queue are full");
            crate::linger::discard(req.into_body());
            return reject(self.busy(), Rejection::Busy);
        };
        // Dropped with this future: when the client goes away, hyper drops it, and the guard
        // stops the guest (or logs the request that never ran).
        let mut client = ClientGuard {
            server: &self,
            request_id: &request_id,
            path: &path,
            received,
            flag: CancelFlag::default(),
            phase: Phase::Waiting,
        };
        // The body is read before the request takes a slot, so slow or stalled uploads wait in
        // the queue rather than hold a slot that running requests need; a live recording is
        // the exception (see `streams_body`).
        let req = if streams_body(&req, length) {
            self.stream_body(&request_id, req)
        } else {
            match self.read_body(&request_id, req, length).await {
                Ok(req) => req,
                Err((response, why)) => {
                    client.phase = Phase::Answered;
                    return reject(response, why);
                }
            }
        };
        let waiting = Instant::now();
        let slot = ticket.wait().await;
        let queued = waiting.elapsed();
        if self.stopping.is_cancelled() {
            client.phase = Phase::Answered;
            self.metrics.host_reply(&path, 503, received.elapsed(), None);
            self.metrics.cancelled(Cancelled::Shutdown);
            tracing::warn!(%request_id, path, "shutting down: a queued request was not run");
            return Failure::Cancelled(Cancelled::Shutdown).response(&self.limits, &request_id);
        }

        let (send, receive) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let job = Job { request_id: request_id.clone(), received, queued, slot, client: client.flag.clone() };
        client.phase = Phase::Running;
        let task = tokio::task::spawn_blocking(move || runtime.block_on(this.run_guest(req, send, job)));
        let response = match receive.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                tracing::error!(%request_id, ?code, "the guest answered with an error");
                server_error(StatusCode::INTERNAL_SERVER_ERROR, "guest_error", "the request handler failed", &request_id)
            }
            // The guest never set a response: it trapped, timed out, or could not start.
            Err(_) => match task.await {
                Ok(failure) => failure.response(&self.limits, &request_id),
                Err(join) => {
                    tracing::error!(%request_id, error = %join, "the guest task failed");
                    self.metrics.host_reply(&path, 500, received.elapsed(), None);
                    server_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error", &request_id)
                }
            },
        };
        client.phase = Phase::Answered;
        response
    }

    /// The guest's configuration now: the current API keys (which SIGHUP may have changed) are
    /// its `WHISPER_API_KEY`, so it applies the same keys to the routes the host lets through.
    fn guest_config(&self) -> std::borrow::Cow<'_, GuestConfig> {
        let keys = self.limits.access.keys();
        if keys.is_empty() {
            return std::borrow::Cow::Borrowed(&self.guest);
        }
        let mut guest = self.guest.clone();
        guest.env.retain(|(k, _)| k != "WHISPER_API_KEY");
        guest.env.push(("WHISPER_API_KEY".into(), keys.to_list().into()));
        std::borrow::Cow::Owned(guest)
    }

    /// Runs the guest for one request; returns why it failed if it did.
    async fn run_guest(
        self: Arc<Self>,
        req: Request<GuestBody>,
        send: tokio::sync::oneshot::Sender<Result<Response<ResponseBody>, ErrorCode>>,
        job: Job,
    ) -> Failure {
        let Job { request_id, received, queued, slot, client } = job;
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let state = RequestState::new(&self.guest_config(), &self.models);
        let stats = state.stats.clone();
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        limits::watch_deadline(&mut store, self.limits.timeout, client, self.stopping.clone());

        let status = Arc::new(AtomicU16::new(0));
        let instantiate = Arc::new(AtomicU64::new(0));
        // What the guest's response says about itself (the component's contract, metrics.rs).
        let labels = Arc::new(Mutex::new(ReplyLabels::default()));
        let error_response = Arc::new(AtomicBool::new(false));
        let prepared = (|| {
            let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
            let (status, instantiate, stats) = (status.clone(), instantiate.clone(), stats.clone());
            let (labels, error_response) = (labels.clone(), error_response.clone());
            let out = store.data_mut().http().new_response_outparam_from_callback(move |mut result| {
                match &mut result {
                    Ok(response) => {
                        status.store(response.status().as_u16(), Ordering::Relaxed);
                        *labels.lock().unwrap_or_else(|e| e.into_inner()) = ReplyLabels::of(response);
                        let timing = server_timing(queued, instantiate.load(Ordering::Relaxed), &stats, received.elapsed());
                        if let Ok(value) = HeaderValue::from_str(&timing) {
                            response.headers_mut().insert("server-timing", value);
                        }
                    }
                    Err(_) => {
                        status.store(500, Ordering::Relaxed);
                        error_response.store(true, Ordering::Relaxed);
                    }
                }
                let _ = send.send(result);
            })?;
            wasmtime::Result::Ok((req, out))
        })();

        let started = Instant::now();
        let result = match prepared {
            Ok((req, out)) => match self.pre.instantiate_async(&mut store).await {
                Ok(proxy) => {
                    instantiate.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
                }
                Err(e) => Err(e.context("instantiating the component")),
            },
            Err(e) => Err(e),
        };
        let processing = started.elapsed();
        let failure = Failure::classify(&result, store.data().limits.hit());
        let guest_memory_mib = store.data().limits.peak_memory() as f64 / (1024.0 * 1024.0);
        drop(store);
        release_freed_memory();
        drop(slot);

        let total = stats.total();
        let status = match status.load(Ordering::Relaxed) {
            0 => failure.status().as_u16(),
            s => s,
        };
        let instantiate_ms = instantiate.load(Ordering::Relaxed) as f64 / 1e6;
        tracing::info!(
            %request_id,
            %method,
            path,
            status,
            total_ms = received.elapsed().as_secs_f64() * 1e3,
            queue_ms = queued.as_secs_f64() * 1e3,
            instantiate_ms,
            guest_memory_mib,
            nn_ms = total.time.as_secs_f64() * 1e3,
            nn_computes = total.computes,
            nn_bytes_in = total.bytes_in,
            nn_bytes_out = total.bytes_out,
            nn = %stats.summary(),
            "request"
        );
        match (&result, failure) {
            (_, Failure::Cancelled(why)) => {
                self.metrics.cancelled(why);
                tracing::warn!(%request_id, code = failure.code(), "{why}; its guest was stopped");
            }
            (Err(e), _) => tracing::error!(%request_id, code = failure.code(), error = %format!("{e:#}"), "the guest failed"),
            (Ok(()), _) => {}
        }
        let labels = std::mem::take(&mut *labels.lock().unwrap_or_else(|e| e.into_inner()));
        let route = match &labels.route {
            Some(route) => self.metrics.routes().reported(route),
            None => self.metrics.routes().for_path(&path),
        };
        let nn = stats.snapshot();
        self.metrics.guest_request(&GuestRequest {
            route: &route,
            status,
            duration: received.elapsed(),
            queued,
            processing,
            audio_seconds: labels.audio_seconds.filter(|_| (200..300).contains(&status)),
            failure: failure.kind().or(error_response.load(Ordering::Relaxed).then_some("error_response")),
            nn: &nn,
        });
        failure
    }

    /// Reads the whole body (at most `max_body_bytes`, else 413), waiting at most `read_timeout`
    /// for each piece of it (else 408), so the guest starts with all of it and a stalled
    /// client cannot hold a slot.
    async fn read_body(
        &self,
        request_id: &str,
        req: Request<Incoming>,
        length: Option<u64>,
    ) -> Result<Request<GuestBody>, (Response<ResponseBody>, Rejection)> {
        let max = self.limits.max_body_bytes;
        let (parts, body) = req.into_parts();
        let mut body = LimitedBody::new(body, &self.limits);
        let mut data = Vec::with_capacity(length.unwrap_or(0).min(max) as usize);
        loop {
            match body.next().await {
                Piece::Stalled => {
                    tracing::warn!(request_id, received = data.len(), length, "the request body stalled");
                    return Err((self.stalled(), Rejection::Stalled));
                }
                Piece::End => break,
                Piece::Frame(frame) => {
                    if let Ok(chunk) = frame.into_data() {
                        data.extend_from_slice(&chunk);
                    }
                }
                Piece::TooLarge => return Err((self.too_large(), Rejection::TooLarge)),
                Piece::Failed(e) => {
                    tracing::warn!(request_id, error = %e, "reading the request body failed");
                    let response = json_error(StatusCode::BAD_REQUEST, "invalid_request_error", "bad_body", "the request body could not be read");
                    return Err((response, Rejection::BadRequest));
                }
            }
        }
        let body = Full::new(Bytes::from(data)).map_err(|never| match never {}).boxed_unsync();
        Ok(Request::from_parts(parts, body))
    }

    /// Hands the body to the guest as it arrives, under the same limits as [`Self::read_body`]:
    /// past `max_body_bytes`, or when no piece arrives for `read_timeout`, the guest's next
    /// read fails (with `http-request-body-size` / `connection-read-timeout`) and it answers
    /// as it sees fit, e.g. with an error event on a stream it has begun.
    fn stream_body(&self, request_id: &str, req: Request<Incoming>) -> Request<GuestBody> {
        let (parts, body) = req.into_parts();
        let max = self.limits.max_body_bytes;
        let mut body = LimitedBody::new(body, &self.limits);
        let (send, receive) = tokio::sync::mpsc::channel(4);
        let request_id = request_id.to_owned();
        tokio::spawn(async move {
            loop {
                let piece = match body.next().await {
                    Piece::End => break,
                    Piece::Frame(frame) => Ok(frame),
                    Piece::Stalled => {
                        tracing::warn!(request_id, "the streamed request body stalled");
                        Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)
                    }
                    Piece::TooLarge => {
                        tracing::warn!(request_id, limit = max, "the streamed request body is too large");
                        Err(wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max)))
                    }
                    Piece::Failed(e) => match e.downcast::<hyper::Error>() {
                        Ok(e) => Err(wasmtime_wasi_http::Error::Hyper(*e)),
                        Err(_) => Err(wasmtime_wasi_http::Error::HttpProtocolError),
                    },
                };
                let failed = piece.is_err();
                if send.send(piece).await.is_err() || failed {
                    break;
                }
            }
        });
        Request::from_parts(parts, ChannelBody(receive).boxed_unsync())
    }

    fn stalled(&self) -> Response<ResponseBody> {
        let mut response = json_error(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            &format!("the request body stalled: nothing was received for {} seconds", self.limits.read_timeout.as_secs_f64()),
        );
        response.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    fn too_large(&self) -> Response<ResponseBody> {
        let mut response = json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            &format!("the request body is larger than the {} byte limit", self.limits.max_body_bytes),
        );
        response.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    fn busy(&self) -> Response<ResponseBody> {
        let mut response = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "overloaded",
            "the server is busy; retry later",
        );
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(self.limits.retry_after_secs));
        response
    }
}

/// The guest's `x-route` and `x-audio-duration` response headers (left on the response).
#[derive(Debug, Default)]
struct ReplyLabels {
    route: Option<String>,
    audio_seconds: Option<f64>,
}

impl ReplyLabels {
    fn of<B>(response: &Response<B>) -> Self {
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        Self {
            route: header("x-route").map(str::to_owned),
            audio_seconds: header("x-audio-duration").and_then(parse_audio_duration),
        }
    }
}

/// The request body handed to the guest.
pub type GuestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// Whether the body goes to the guest as it arrives instead of being read whole first: audio
/// (`audio/*`) of unknown length (chunked), i.e. a live recording, which the guest may process
/// while it is still being sent. Such a request takes its slot before its body arrives.
fn streams_body(req: &Request<Incoming>, length: Option<u64>) -> bool {
    let audio = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| {
        t.trim_start().get(..6).is_some_and(|p| p.eq_ignore_ascii_case("audio/"))
    });
    length.is_none() && audio
}

/// A client's request body read under `max_body_bytes` and `read_timeout`: the one rule for
/// bodies read whole ([`Server::read_body`]) and streamed ([`Server::stream_body`]).
struct LimitedBody {
    body: Limited<Incoming>,
    timeout: Duration,
}

/// What the next read of a [`LimitedBody`] gave.
enum Piece {
    Frame(hyper::body::Frame<Bytes>),
    End,
    /// Nothing arrived for `read_timeout`.
    Stalled,
    /// Past `max_body_bytes`.
    TooLarge,
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl LimitedBody {
    fn new(body: Incoming, limits: &Limits) -> Self {
        LimitedBody { body: Limited::new(body, limits.max_body_bytes as usize), timeout: limits.read_timeout }
    }

    async fn next(&mut self) -> Piece {
        match tokio::time::timeout(self.timeout, self.body.frame()).await {
            Err(_) => Piece::Stalled,
            Ok(None) => Piece::End,
            Ok(Some(Ok(frame))) => Piece::Frame(frame),
            Ok(Some(Err(e))) if e.is::<LengthLimitError>() => Piece::TooLarge,
            Ok(Some(Err(e))) => Piece::Failed(e),
        }
    }
}

/// A body whose frames come through a channel (from the task that reads the client's).
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<hyper::body::Frame<Bytes>, wasmtime_wasi_http::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx)
    }
}

fn content_length(req: &Request<Incoming>) -> Result<Option<u64>, ()> {
    match req.headers().get(CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse().ok()).map(Some).ok_or(()),
    }
}

/// `Server-Timing` of a response: queue wait, instantiation, wasi-nn time, time to the response.
fn server_timing(queued: Duration, instantiate_ns: u64, stats: &crate::nn::NnStats, total: Duration) -> String {
    let nn = stats.total();
    format!(
        "queue;dur={:.3}, instantiate;dur={:.3}, nn;dur={:.3};desc=\"{} computes, {} B in, {} B out\", total;dur={:.3}",
        queued.as_secs_f64() * 1e3,
        instantiate_ns as f64 / 1e6,
        nn.time.as_secs_f64() * 1e3,
        nn.computes,
        nn.bytes_in,
        nn.bytes_out,
        total.as_secs_f64() * 1e3
    )
}

/// Why a guest call failed (or `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    None,
    /// The epoch deadline stopped it.
    Timeout,
    /// It trapped after the memory limit refused to grow a memory.
    MemoryLimit,
    /// Instantiation failed.
    Instantiate,
    /// Any other trap or host error.
    Trap,
    /// Stopped on purpose: the client went away, or the shutdown's grace period ran out.
    Cancelled(Cancelled),
}

impl Failure {
    fn classify(result: &wasmtime::Result<()>, memory_limit_hit: bool) -> Self {
        let Err(e) = result else { return Failure::None };
        if let Some(why) = e.downcast_ref::<Cancelled>() {
            Failure::Cancelled(*why)
        } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            Failure::Timeout
        } else if memory_limit_hit {
            Failure::MemoryLimit
        } else if e.chain().any(|c| c.to_string() == "instantiating the component") {
            Failure::Instantiate
        } else {
            Failure::Trap
        }
    }

    fn code(self) -> &'static str {
        match self {
            Failure::None => "guest_no_response",
            Failure::Timeout => "timeout",
            Failure::MemoryLimit => "memory_limit",
            Failure::Instantiate => "instantiate_failed",
            Failure::Trap => "guest_trap",
            Failure::Cancelled(Cancelled::ClientGone) => "client_closed_request",
            Failure::Cancelled(Cancelled::Shutdown) => "shutting_down",
        }
    }

    /// The `kind` label of `whisper_guest_failures_total` (cancellations are counted in
    /// `whisper_cancelled_total` instead).
    fn kind(self) -> Option<&'static str> {
        match self {
            Failure::None | Failure::Cancelled(_) => None,
            Failure::Timeout => Some("timeout"),
            Failure::MemoryLimit => Some("memory_limit"),
            Failure::Instantiate => Some("instantiate"),
            Failure::Trap => Some("trap"),
        }
    }

    fn status(self) -> StatusCode {
        match self {
            // nginx's "client closed request": only the log and the metrics see it.
            Failure::Cancelled(Cancelled::ClientGone) => StatusCode::from_u16(499).expect("a valid status code"),
            Failure::Cancelled(Cancelled::Shutdown) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn response(self, limits: &Limits, request_id: &str) -> Response<ResponseBody> {
        if self == Failure::Cancelled(Cancelled::Shutdown) {
            let mut response = server_error(
                self.status(),
                self.code(),
                "the server is shutting down and could not finish this request; retry it",
                request_id,
            );
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(limits.retry_after_secs));
            response.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        let message = match self {
            Failure::None => "the request handler sent no response".to_string(),
            Failure::Timeout => format!("the request took longer than the {:.0} s limit", limits.timeout.as_secs_f64()),
            Failure::MemoryLimit => format!("the request needed more than the {} MiB memory limit", limits.max_memory_bytes >> 20),
            Failure::Instantiate => "the request handler could not start".to_string(),
            Failure::Trap => "the request handler failed".to_string(),
            Failure::Cancelled(why) => why.to_string(),
        };
        server_error(self.status(), self.code(), &message, request_id)
    }
}

/// A request on its way to the guest.
struct Job {
    request_id: Arc<str>,
    received: Instant,
    queued: Duration,
    slot: Slot,
    /// Set when the client goes away.
    client: CancelFlag,
}

/// A 5xx of the host: `{"error":{"message","type":"server_error","code","request_id"}}`, so a
/// user can quote the id that the log line has too.
fn server_error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({"error": {"message": message, "type": "server_error", "code": code, "request_id": request_id}});
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"error":{"message":…,"type":…,"code":…}}` with `status`.
pub fn json_error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({"error": {"message": message, "type": kind, "code": code}}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Accepts connections on `listener` and serves HTTP/1.1 until `shutdown` resolves, then drains
/// (up to the limits' `shutdown_grace`) the requests already admitted. The host answers
/// `/health`, `/ready` and `/metrics` itself ([`Frontend`](crate::Frontend)); to listen before
/// the component and models are loaded, or to end a drain early, use
/// [`serve_frontend`](crate::serve_frontend).
pub async fn serve(listener: TcpListener, server: Arc<Server>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let frontend = crate::frontend::Frontend::ready(server);
    crate::listener::serve_frontend(listener, frontend, shutdown, std::future::pending()).await.map(|_| ())
}

/// Where a request is, for [`ClientGuard`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading its body or queued.
    Waiting,
    /// Its guest runs (or is about to).
    Running,
    /// Its response was handed to hyper.
    Answered,
}

/// Lives as long as a request's future. hyper drops that future when the client closes the
/// connection before the response; then a running guest is told to stop (its slot frees within
/// one compute and one epoch tick, and it is logged with status 499), and a request that never
/// ran is logged and counted here.
struct ClientGuard<'a> {
    server: &'a Server,
    request_id: &'a str,
    path: &'a str,
    received: Instant,
    flag: CancelFlag,
    phase: Phase,
}

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        match self.phase {
            Phase::Answered => {}
            Phase::Running => self.flag.cancel(),
            Phase::Waiting => {
                let (request_id, path) = (self.request_id, self.path);
                tracing::info!(request_id, path, status = 499, "the client closed the connection before its request ran");
                self.server.metrics.host_reply(path, 499, self.received.elapsed(), None);
                self.server.metrics.cancelled(Cancelled::ClientGone);
            }
        }
    }
}
