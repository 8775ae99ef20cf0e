//! The whole server, in process, serving a real component: tests/guest (spin-sdk 5.2
//! `#[http_component]` + wasi:nn), built here for wasm32-wasip2, with the generated test graphs
//! as the model `test`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmtime::component::Component;
use wasmtime::Engine;
use whisper_host::{build_engine, load_component, load_models, proxy_pre, serve, EngineOptions, Limits, Models, Server};

/// Builds tests/guest once per test process; `Err` = skip (no wasm32-wasip2 target, …).
fn guest_component() -> Result<PathBuf, String> {
    static WASM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    WASM.get_or_init(|| {
        let guest = common::repo_root().join("host/tests/guest");
        let target_dir = common::repo_root().join("target/test-guest");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(guest.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "building the test guest failed (is the wasm32-wasip2 target installed?):\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(target_dir.join("wasm32-wasip2/release/whisper_host_test_guest.wasm"))
    })
    .clone()
}

struct Shared {
    engine: Engine,
    component: Component,
    models: Arc<Models>,
}

fn shared() -> Option<&'static Shared> {
    static SHARED: OnceLock<Option<Shared>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let backend = common::require(common::backend())?;
            let dir = common::require(common::test_models_dir())?;
            let wasm = common::require(guest_component())?;
            let models = load_models(backend, &dir, &["test".into()]).expect("test graphs load");
            let engine = build_engine(&EngineOptions::default()).expect("engine");
            let component = load_component(&engine, &wasm).expect("component compiles");
            Some(Shared { engine, component, models: Arc::new(models) })
        })
        .as_ref()
}

/// Starts a server with `limits` on a free port; returns its address.
async fn start(limits: Limits) -> Option<std::net::SocketAddr> {
    let shared = shared()?;
    let pre = proxy_pre(&shared.engine, &shared.component).expect("the test guest links");
    let env = vec![("WHISPER_TEST_VAR".to_string(), "42".to_string())];
    let server = Server::new(pre, shared.models.clone(), env, limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, server, std::future::pending()));
    Some(address)
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    fn json_code(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body));
        assert_eq!(v["error"]["type"].as_str().is_some(), true, "{}", self.body);
        assert!(v["error"]["message"].as_str().is_some(), "{}", self.body);
        v["error"]["code"].as_str().unwrap().to_string()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
async fn request(address: std::net::SocketAddr, head: &str, body: &[u8]) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await; // the server may answer (413) before reading it
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response: {text:?}"));
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = body.to_string();
    if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Reply { status, headers: headers.to_string(), body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn get(address: std::net::SocketAddr, path: &str) -> Reply {
    request(address, &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"), b"").await
}

async fn post(address: std::net::SocketAddr, path: &str, body: &[u8], chunked: bool) -> Reply {
    if chunked {
        let mut framed = format!("{:x}\r\n", body.len()).into_bytes();
        framed.extend_from_slice(body);
        framed.extend_from_slice(b"\r\n0\r\n\r\n");
        let head = format!("POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
        request(address, &head, &framed).await
    } else {
        let head = format!("POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
        request(address, &head, body).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_component_with_nothing_but_its_own_env() {
    let Some(address) = start(Limits::default()).await else { return };
    let hello = get(address, "/hello").await;
    assert_eq!((hello.status, hello.body.as_str()), (200, "hello"));
    assert!(hello.header("server-timing").unwrap().contains("instantiate;dur="), "{}", hello.headers);

    let env = get(address, "/env").await;
    assert_eq!(env.body, "WHISPER_TEST_VAR=42\n", "only the configured variables");
    let fs = get(address, "/fs").await;
    assert!(fs.body.starts_with("error:"), "no preopened directories: {}", fs.body);
    let net = get(address, "/net").await;
    assert!(net.body.contains("HttpRequestDenied"), "outgoing HTTP is denied: {}", net.body);
    assert_eq!(get(address, "/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_nn_through_the_component() {
    let Some(address) = start(Limits::default()).await else { return };
    let nn = get(address, "/nn").await;
    assert_eq!((nn.status, nn.body.as_str()), (200, "y=[2, 3, 4]"));
    assert!(nn.header("server-timing").unwrap().contains("1 computes, 24 B in, 24 B out"), "{}", nn.headers);

    let cache = get(address, "/nn-cache").await;
    assert_eq!(cache.body, "total=[3.0] length=[1, 2] | total=[6.0] length=[1, 3]");

    let bad = get(address, "/nn-bad").await;
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (200, "fp64 ErrorCode::RuntimeError, short ErrorCode::RuntimeError, nope ErrorCode::NotFound, load ErrorCode::InvalidEncoding")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_timeouts_and_memory_are_500s_and_the_server_keeps_serving() {
    let limits = Limits { timeout: Duration::from_secs(1), max_memory_bytes: 64 << 20, ..Limits::default() };
    let Some(address) = start(limits).await else { return };

    let trap = get(address, "/trap").await;
    assert_eq!((trap.status, trap.json_code()), (500, "guest_trap".to_string()));
    assert_eq!(get(address, "/hello").await.status, 200);

    let started = Instant::now();
    let spin = get(address, "/spin").await;
    assert_eq!((spin.status, spin.json_code()), (500, "timeout".to_string()));
    assert!(started.elapsed() < Duration::from_secs(5), "stopped near the deadline: {:?}", started.elapsed());

    let big = get(address, "/alloc?mib=200").await;
    assert_eq!((big.status, big.json_code()), (500, "memory_limit".to_string()));
    let small = get(address, "/alloc?mib=8").await;
    assert_eq!((small.status, small.body.as_str()), (200, "8388608"));

    // Each failure is counted by kind; the test guest sets no x-route, so its paths are `other`.
    // A request is counted when its guest call returns, a moment after its response went out.
    let mut metrics = get(address, "/metrics").await;
    for _ in 0..40 {
        if metrics.body.contains(r#"whisper_requests_total{route="other",status="200"} 2"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        metrics = get(address, "/metrics").await;
    }
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    for line in [
        r#"whisper_guest_failures_total{kind="trap"} 1"#,
        r#"whisper_guest_failures_total{kind="timeout"} 1"#,
        r#"whisper_guest_failures_total{kind="memory_limit"} 1"#,
        r#"whisper_guest_failures_total{kind="instantiate"} 0"#,
        r#"whisper_requests_total{route="other",status="500"} 3"#,
        r#"whisper_requests_total{route="other",status="200"} 2"#,
        "whisper_requests_in_flight 0",
        "whisper_ready 1",
    ] {
        assert!(metrics.body.lines().any(|l| l == line), "no {line:?} in\n{}", metrics.body);
    }
    // The probes are the host's, not the guest's.
    assert_eq!((get(address, "/health").await.status, get(address, "/ready").await.body.as_str()), (200, r#"{"status":"ready"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let limits = Limits { max_body_bytes: 1024, ..Limits::default() };
    let Some(address) = start(limits).await else { return };
    for chunked in [false, true] {
        let ok = post(address, "/echo", &[7; 512], chunked).await;
        assert_eq!((ok.status, ok.body.as_str()), (200, "512"), "chunked={chunked}");
        let big = post(address, "/echo", &[7; 4096], chunked).await;
        assert_eq!((big.status, big.json_code()), (413, "request_too_large".to_string()), "chunked={chunked}");
    }
    let metrics = get(address, "/metrics").await.body;
    assert!(metrics.lines().any(|l| l == r#"whisper_rejections_total{reason="too_large"} 2"#), "{metrics}");
}

/// A client that stalls in its body gets 408 after the read timeout and holds no slot
/// meanwhile: with one slot, other requests are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_holds_no_slot() {
    let limits = Limits { max_concurrent: 1, read_timeout: Duration::from_millis(800), ..Limits::default() };
    let Some(address) = start(limits).await else { return };
    let head = "POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n";
    let stalled = tokio::spawn(request(address, head, b"abc"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(address, "/hello").await.status, 200);
    let started = std::time::Instant::now();
    let r = stalled.await.unwrap();
    assert_eq!((r.status, r.json_code()), (408, "request_timeout".to_string()));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_gets_503_with_retry_after() {
    let limits = Limits { max_concurrent: 1, max_queue: 0, retry_after_secs: 7, ..Limits::default() };
    let Some(address) = start(limits).await else { return };
    let slow = tokio::spawn(get(address, "/sleep?ms=1500"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let busy = get(address, "/hello").await;
    assert_eq!((busy.status, busy.json_code()), (503, "overloaded".to_string()));
    assert_eq!(busy.header("retry-after"), Some("7"));
    assert_eq!(slow.await.unwrap().body, "slept");
    // The slot frees when the guest call returns, a moment after its response went out.
    let mut status = 0;
    for _ in 0..40 {
        status = get(address, "/hello").await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}

/// The guest runs off the async workers: with a single worker thread, a guest busy for 1.5 s
/// does not hold up another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_busy_guest_does_not_stall_other_requests() {
    let Some(address) = start(Limits { max_concurrent: 2, ..Limits::default() }).await else { return };
    let busy = tokio::spawn(get(address, "/busy?ms=1500"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let hello = get(address, "/hello").await;
    assert_eq!(hello.status, 200);
    assert!(started.elapsed() < Duration::from_millis(1000), "waited {:?}", started.elapsed());
    assert_eq!(busy.await.unwrap().body, "done");
}

/// The same component on an engine with the pooling allocator (`--pooling`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooling_allocator_serves_too() {
    let Some(shared) = shared() else { return };
    let Some(wasm) = common::require(guest_component()) else { return };
    let options = EngineOptions { pooling: true, max_instances: 4, max_memory_bytes: 64 << 20, compile_cache: false, profile: None };
    let engine = build_engine(&options).expect("pooling engine");
    let component = load_component(&engine, &wasm).expect("component compiles");
    let pre = proxy_pre(&engine, &component).expect("links");
    let limits = Limits { max_memory_bytes: 64 << 20, max_concurrent: 2, ..Limits::default() };
    let server = Server::new(pre, shared.models.clone(), vec![], limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, server, std::future::pending()));
    for _ in 0..10 {
        assert_eq!(get(address, "/nn").await.body, "y=[2, 3, 4]");
    }
    assert_eq!(get(address, "/alloc?mib=8").await.status, 200);
    assert_eq!(get(address, "/alloc?mib=100").await.json_code(), "memory_limit");
    assert_eq!(get(address, "/hello").await.status, 200);
}
