//! The host's Prometheus metrics (`GET /metrics`, text exposition format 0.0.4), kept with the
//! `prometheus-client` crate.
//!
//! The host knows no Whisper: what it learns about a request comes from its own limits and
//! counters, and from two response headers of the guest (the component's contract):
//! `x-route` (the route template the request matched, e.g. `/v1/audio/transcriptions`, or
//! `unmatched`) and, on a successful transcription, `x-audio-duration` (seconds of audio).
//!
//! Labels are bounded: `route` is one of at most [`MAX_ROUTES`] templates the guest has reported
//! (or the host's own `/health`, `/ready`, `/metrics`), else `other`; `graph` is a graph loaded
//! at start-up; `status`, `reason` and `kind` come from small fixed sets.

use crate::limits::Cancelled;
use crate::nn::{GraphCounters, Models};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// The Wasmtime version this host is built with (kept equal to host/Cargo.toml's pin by a test).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// At most this many distinct `route` labels reported by the guest; later ones count as `other`.
pub const MAX_ROUTES: usize = 64;

/// The `route` label of requests whose route is not known.
pub const OTHER_ROUTE: &str = "other";

/// The routes the host answers itself (before and besides the guest).
pub const HOST_ROUTES: [&str; 3] = ["/health", "/ready", "/metrics"];

/// `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Why the host answered a request itself with an error, without running the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// 503: all slots and the queue were full.
    Busy,
    /// 413: the body was over `--max-body`.
    TooLarge,
    /// 408: the body stalled.
    Stalled,
    /// 503: the component or the models were still loading.
    Loading,
    /// 400: an invalid `Content-Length` or an unreadable body.
    BadRequest,
    /// 401: no valid API key on a request that may carry a body (not read).
    Unauthorized,
    /// 429: over `--rate-limit` or `--max-client-concurrent`.
    RateLimited,
}

impl Rejection {
    pub const ALL: [Rejection; 7] = [
        Rejection::Busy,
        Rejection::TooLarge,
        Rejection::Stalled,
        Rejection::Loading,
        Rejection::BadRequest,
        Rejection::Unauthorized,
        Rejection::RateLimited,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Rejection::Busy => "busy",
            Rejection::TooLarge => "too_large",
            Rejection::Stalled => "stalled",
            Rejection::Loading => "loading",
            Rejection::BadRequest => "bad_request",
            Rejection::Unauthorized => "unauthorized",
            Rejection::RateLimited => "rate_limited",
        }
    }
}

/// The `kind` label of `whisper_guest_failures_total`.
pub const FAILURE_KINDS: [&str; 5] = ["trap", "timeout", "memory_limit", "instantiate", "error_response"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphLabel {
    graph: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    wasmtime: String,
    backend: String,
}

type F64Counter = Counter<f64, AtomicU64>;
type F64Gauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 5 ms … ~330 s
    Histogram::new(exponential_buckets(0.005, 2.0, 17))
}

fn queue_histogram() -> Histogram {
    // 1 ms … ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The route labels seen so far: the guest's `x-route` values, at most [`MAX_ROUTES`].
#[derive(Debug, Default)]
pub struct RouteSet {
    known: RwLock<HashSet<String>>,
}

impl RouteSet {
    /// The label for a route the guest reported: itself if it is known or there is room (then
    /// it is remembered), else [`OTHER_ROUTE`]. Empty or overlong values are `other` as well.
    pub fn reported(&self, route: &str) -> String {
        if route.is_empty() || route.len() > 100 || route.chars().any(char::is_control) {
            return OTHER_ROUTE.into();
        }
        if self.known.read().unwrap_or_else(|e| e.into_inner()).contains(route) {
            return route.into();
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if known.len() < MAX_ROUTES || known.contains(route) {
            known.insert(route.to_owned());
            route.into()
        } else {
            OTHER_ROUTE.into()
        }
    }

    /// The label for a request the guest did not label (the host answered it, or the guest
    /// failed): the path if it is a host route or one the guest has reported, else `other`.
    pub fn for_path(&self, path: &str) -> String {
        if HOST_ROUTES.contains(&path) || self.known.read().unwrap_or_else(|e| e.into_inner()).contains(path) {
            path.into()
        } else {
            OTHER_ROUTE.into()
        }
    }

    pub fn len(&self) -> usize {
        self.known.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the host tells the metrics about one request that ran the guest.
#[derive(Clone, Debug, Default)]
pub struct GuestRequest<'a> {
    /// The route label (see [`RouteSet`]).
    pub route: &'a str,
    pub status: u16,
    /// From arrival to the end of the guest call.
    pub duration: Duration,
    /// Waiting for a slot.
    pub queued: Duration,
    /// Instantiation and the guest call.
    pub processing: Duration,
    /// The guest's `x-audio-duration`, on a 2xx reply.
    pub audio_seconds: Option<f64>,
    /// `trap`, `timeout`, `memory_limit`, `instantiate`, `error_response`, or `None`.
    pub failure: Option<&'static str>,
    /// The request's wasi-nn counters per graph.
    pub nn: &'a [GraphCounters],
}

/// Every metric of the host, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    routes: RouteSet,
    requests: Family<RouteStatus, Counter>,
    duration: HistogramFamily<RouteLabel>,
    queue_wait: Histogram,
    audio_seconds: F64Counter,
    real_time_factor: Histogram,
    in_flight: Gauge,
    queue_depth: Gauge,
    rejections: Family<ReasonLabel, Counter>,
    failures: Family<KindLabel, Counter>,
    cancelled: Family<ReasonLabel, Counter>,
    nn_seconds: Family<GraphLabel, F64Counter>,
    nn_computes: Family<GraphLabel, Counter>,
    model_load: Family<GraphLabel, F64Gauge>,
    ready: Gauge,
    /// Serialises rendering (the gauges are set just before).
    render: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a host whose wasi-nn backend is `backend` (`onnx`, `openvino`, …: the
    /// `backend` label of `whisper_build_info`).
    pub fn new(backend: &str) -> Self {
        let mut registry = Registry::with_prefix("whisper");
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register("requests", "HTTP requests by route template and status code", requests.clone());
        let duration: HistogramFamily<RouteLabel> = Family::new_with_constructor(duration_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response (to the end of the guest call for guest routes)",
            duration.clone(),
        );
        let queue_wait = queue_histogram();
        registry.register("queue_wait_seconds", "Time admitted requests waited for a free slot", queue_wait.clone());
        let audio_seconds = F64Counter::default();
        registry.register("audio_seconds", "Seconds of audio in successful replies (the guest's x-audio-duration)", audio_seconds.clone());
        let real_time_factor = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "real_time_factor",
            "Processing seconds (instantiation and guest call) per second of audio, per successful transcription",
            real_time_factor.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("requests_in_flight", "Requests running in the guest now", in_flight.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Requests admitted and not yet running (reading their body or waiting for a slot)", queue_depth.clone());
        let rejections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "rejections",
            "Requests the host refused without running the guest: busy (503), too_large (413), stalled (408), loading (503), bad_request (400), unauthorized (401), rate_limited (429)",
            rejections.clone(),
        );
        for reason in Rejection::ALL {
            let _ = rejections.get_or_create(&ReasonLabel { reason: reason.label().into() });
        }
        let failures = Family::<KindLabel, Counter>::default();
        registry.register(
            "guest_failures",
            "Guest calls that ended without a normal response: trap, timeout, memory_limit, instantiate, error_response",
            failures.clone(),
        );
        for kind in FAILURE_KINDS {
            let _ = failures.get_or_create(&KindLabel { kind: kind.into() });
        }
        let cancelled = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "cancelled",
            "Requests stopped before they finished: client_gone (the client closed the connection; logged as 499), shutdown (a shutdown's grace period ran out)",
            cancelled.clone(),
        );
        for reason in [Cancelled::ClientGone, Cancelled::Shutdown] {
            let _ = cancelled.get_or_create(&ReasonLabel { reason: reason.label().into() });
        }
        let nn_seconds = Family::<GraphLabel, F64Counter>::default();
        registry.register("nn_compute_seconds", "Time inside the wasi-nn backend's compute, by graph", nn_seconds.clone());
        let nn_computes = Family::<GraphLabel, Counter>::default();
        registry.register("nn_computes", "wasi-nn compute calls, by graph", nn_computes.clone());
        let model_load = Family::<GraphLabel, F64Gauge>::default();
        registry.register("model_load_seconds", "Time the backend took to load each graph at start-up", model_load.clone());
        let ready = Gauge::default();
        registry.register("ready", "1 once the component is compiled and the models are loaded, 0 while loading or draining", ready.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register("build_info", "The host's version, its Wasmtime version and its wasi-nn backend; always 1", build.clone());
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                wasmtime: WASMTIME_VERSION.into(),
                backend: backend.into(),
            })
            .set(1);
        Self {
            registry,
            routes: RouteSet::default(),
            requests,
            duration,
            queue_wait,
            audio_seconds,
            real_time_factor,
            in_flight,
            queue_depth,
            rejections,
            failures,
            cancelled,
            nn_seconds,
            nn_computes,
            model_load,
            ready,
            render: Mutex::new(()),
        }
    }

    /// The route labels.
    pub fn routes(&self) -> &RouteSet {
        &self.routes
    }

    /// Records the load time of every graph of `models`.
    pub fn set_models(&self, models: &Models) {
        for name in models.names() {
            if let Some(graph) = models.get(name) {
                let label = GraphLabel { graph: name.into() };
                self.model_load.get_or_create(&label).set(graph.load_time.as_secs_f64());
                // Every graph appears in the compute counters from the start, at 0.
                let _ = self.nn_seconds.get_or_create(&label);
                let _ = self.nn_computes.get_or_create(&label);
            }
        }
    }

    /// Sets the readiness gauge.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// A reply the host made itself (its own routes, or a rejection) for `path`.
    pub fn host_reply(&self, path: &str, status: u16, duration: Duration, rejection: Option<Rejection>) {
        let route = self.routes.for_path(path);
        self.count(&route, status, duration);
        if let Some(rejection) = rejection {
            self.rejections.get_or_create(&ReasonLabel { reason: rejection.label().into() }).inc();
        }
    }

    /// A request stopped before it finished.
    pub fn cancelled(&self, why: Cancelled) {
        self.cancelled.get_or_create(&ReasonLabel { reason: why.label().into() }).inc();
    }

    /// A request that ran the guest.
    pub fn guest_request(&self, r: &GuestRequest<'_>) {
        self.count(r.route, r.status, r.duration);
        self.queue_wait.observe(r.queued.as_secs_f64());
        if let Some(audio) = r.audio_seconds.filter(|a| a.is_finite() && *a > 0.0) {
            self.audio_seconds.inc_by(audio);
            self.real_time_factor.observe(r.processing.as_secs_f64() / audio);
        }
        if let Some(kind) = r.failure {
            self.failures.get_or_create(&KindLabel { kind: kind.into() }).inc();
        }
        for graph in r.nn {
            let label = GraphLabel { graph: graph.graph.to_string() };
            // Only graphs of the registry can be computed, so this set stays bounded.
            self.nn_seconds.get_or_create(&label).inc_by(graph.time.as_secs_f64());
            self.nn_computes.get_or_create(&label).inc_by(graph.computes);
        }
    }

    fn count(&self, route: &str, status: u16, duration: Duration) {
        self.requests
            .get_or_create(&RouteStatus { route: route.into(), status: status.to_string() })
            .inc();
        self.duration.get_or_create(&RouteLabel { route: route.into() }).observe(duration.as_secs_f64());
    }

    /// The exposition text, with the gauges of the moment: `running` requests in the guest and
    /// `queued` admitted requests not yet running.
    pub fn render(&self, running: usize, queued: usize) -> String {
        let _guard = self.render.lock().unwrap_or_else(|e| e.into_inner());
        self.in_flight.set(i64::try_from(running).unwrap_or(i64::MAX));
        self.queue_depth.set(i64::try_from(queued).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

/// The guest's `x-audio-duration` header value as seconds.
pub fn parse_audio_duration(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        let routes = RouteSet::default();
        assert_eq!(routes.for_path("/v1/audio/transcriptions"), OTHER_ROUTE, "unknown until the guest reports it");
        assert_eq!(routes.reported("/v1/audio/transcriptions"), "/v1/audio/transcriptions");
        assert_eq!(routes.for_path("/v1/audio/transcriptions"), "/v1/audio/transcriptions");
        assert_eq!(routes.for_path("/metrics"), "/metrics", "the host's own routes are always known");
        for i in 0..200 {
            routes.reported(&format!("/r{i}"));
        }
        assert_eq!(routes.len(), MAX_ROUTES);
        assert_eq!(routes.reported("/r199"), OTHER_ROUTE);
        assert_eq!(routes.reported("/v1/audio/transcriptions"), "/v1/audio/transcriptions", "known ones stay");
        assert_eq!(routes.for_path("/r199"), OTHER_ROUTE);
        assert_eq!(routes.reported(""), OTHER_ROUTE);
        assert_eq!(routes.reported("/a\nb"), OTHER_ROUTE);
        assert_eq!(routes.reported(&"x".repeat(500)), OTHER_ROUTE);
        assert_eq!(routes.len(), MAX_ROUTES);
    }

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new("onnx");
        let route = metrics.routes().reported("/v1/audio/transcriptions");
        let nn = [
            GraphCounters { graph: "base/encoder".into(), computes: 1, time: Duration::from_millis(300), ..Default::default() },
            GraphCounters { graph: "base/decoder".into(), computes: 24, time: Duration::from_millis(200), ..Default::default() },
        ];
        for _ in 0..2 {
            metrics.guest_request(&GuestRequest {
                route: &route,
                status: 200,
                duration: Duration::from_millis(1500),
                queued: Duration::from_millis(2),
                processing: Duration::from_millis(1100),
                audio_seconds: parse_audio_duration("11.0"),
                failure: None,
                nn: &nn,
            });
        }
        metrics.guest_request(&GuestRequest { route: "other", status: 500, failure: Some("trap"), ..Default::default() });
        metrics.host_reply("/v1/audio/transcriptions", 413, Duration::from_millis(1), Some(Rejection::TooLarge));
        metrics.host_reply("/nope/123", 503, Duration::from_millis(1), Some(Rejection::Busy));
        metrics.set_ready(true);
        let text = metrics.render(1, 3);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        has("# TYPE whisper_requests_total counter");
        has(r#"whisper_requests_total{route="/v1/audio/transcriptions",status="200"} 2"#);
        has(r#"whisper_requests_total{route="/v1/audio/transcriptions",status="413"} 1"#);
        has(r#"whisper_requests_total{route="other",status="503"} 1"#);
        has(r#"whisper_requests_total{route="other",status="500"} 1"#);
        has(r#"whisper_request_duration_seconds_count{route="/v1/audio/transcriptions"} 3"#);
        has("whisper_queue_wait_seconds_count 3");
        has("whisper_audio_seconds_total 22.0");
        has("whisper_real_time_factor_count 2");
        has("whisper_requests_in_flight 1");
        has("whisper_queue_depth 3");
        has("whisper_ready 1");
        has(r#"whisper_rejections_total{reason="too_large"} 1"#);
        has(r#"whisper_rejections_total{reason="busy"} 1"#);
        has(r#"whisper_rejections_total{reason="stalled"} 0"#);
        has(r#"whisper_guest_failures_total{kind="trap"} 1"#);
        has(r#"whisper_guest_failures_total{kind="timeout"} 0"#);
        has(r#"whisper_nn_compute_seconds_total{graph="base/encoder"} 0.6"#);
        has(r#"whisper_nn_computes_total{graph="base/decoder"} 48"#);
        has(&format!(r#"whisper_build_info{{version="{}",wasmtime="{WASMTIME_VERSION}",backend="onnx"}} 1"#, env!("CARGO_PKG_VERSION")));
        assert!(text.contains(r#"whisper_real_time_factor_bucket{le="0.16"} 2"#), "RTF 0.1 in the 0.16 bucket:\n{text}");
        assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");
    }

    #[test]
    fn audio_durations() {
        assert_eq!(parse_audio_duration("11.0"), Some(11.0));
        assert_eq!(parse_audio_duration(" 5.92 "), Some(5.92));
        assert_eq!(parse_audio_duration("NaN"), None);
        assert_eq!(parse_audio_duration("-1"), None);
        assert_eq!(parse_audio_duration("x"), None);
    }

    #[test]
    fn wasmtime_version_matches_the_pin() {
        let manifest = include_str!("../Cargo.toml");
        assert!(manifest.contains(&format!("wasmtime = \"={WASMTIME_VERSION}\"")), "update WASMTIME_VERSION");
    }
}
