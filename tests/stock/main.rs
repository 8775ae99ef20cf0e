//! End-to-end on a stock host: the composed component (`make edge`: our Whisper component with
//! the pure-wasm wasi:nn provider plugged in) served by stock `wasmtime serve` from crates.io,
//! which has no wasi:nn of ours, over HTTP on loopback, with the real base model and real speech.
//! Also the static checks of the composed file: its imports, the app inside it, Spin's world.
//!
//! And the two embedding examples (host/examples/): a plain Wasmtime embedder serving the
//! composed component, and our host library serving the app with ONNX Runtime.
//!
//! Run with `make test-stock` (part of `make test`). Needs `WASMTIME_BIN`, `WASM_TOOLS_BIN`,
//! `WHISPER_EDGE_WASM` (the composed base component), `WHISPER_COMPONENT` (the app alone),
//! `WHISPER_EXAMPLES_DIR`, `WHISPER_MODELS_DIR` and `ORT_DYLIB_PATH`; missing pieces fail under
//! `CI=true` and skip otherwise. Arguments filter cases by substring.

#[path = "../e2e/harness.rs"]
mod harness;

use harness::{env_path, fixture, free_addr, jfk_repeated_wav, normalize, Server, Suite};
use std::process::Command;

const JFK: &str = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
/// The memory cap of every linear memory in the stock server (`-W max-memory-size`).
const MAX_MEMORY: &str = "2147483648";

fn main() {
    let mut suite = Suite::from_env();
    suite.add("composed_imports_no_wasi_nn_and_no_filesystem", composed_imports_no_wasi_nn_and_no_filesystem);
    suite.add("composed_holds_the_app_our_host_serves", composed_holds_the_app_our_host_serves);
    suite.add("composed_targets_spins_http_world", composed_targets_spins_http_world);
    suite.add("stock_seed_curl_jfk_exact", stock_seed_curl_jfk_exact);
    suite.add("stock_two_files_in_one_request", stock_two_files_in_one_request);
    suite.add("stock_openai_json_and_srt", stock_openai_json_and_srt);
    suite.add("stock_german_is_detected", stock_german_is_detected);
    suite.add("stock_random_bytes_then_healthy", stock_random_bytes_then_healthy);
    suite.add("stock_timeout_ends_only_its_request", stock_timeout_ends_only_its_request);
    suite.add("stock_api_keys_refused_and_accepted", stock_api_keys_refused_and_accepted);
    suite.add("embedder_plain_wasmtime_serves_the_composed_component", embedder_plain_wasmtime_serves_the_composed_component);
    suite.add("embedder_host_library_serves_the_app", embedder_host_library_serves_the_app);
    std::process::exit(suite.run_with(start_stock));
}

/// Stock `wasmtime serve` with the composed component: WASI cli (a Rust std component needs it),
/// nothing else of ours, every linear memory capped at [`MAX_MEMORY`].
fn start_stock() -> Result<Server, String> {
    launch_stock(&[]).map(|(server, _)| server)
}

/// [`start_stock`] with `extra` arguments to `wasmtime serve`; also returns its address.
fn launch_stock(extra: &[&str]) -> Result<(Server, String), String> {
    let addr = free_addr()?;
    let mut cmd = Command::new(env_path("WASMTIME_BIN")?);
    cmd.args(["serve", "-S", "cli", "--addr", &addr, "--env", "WHISPER_MODEL=base"])
        .args(extra)
        .args(["-W", &format!("max-memory-size={MAX_MEMORY}")])
        .arg(env_path("WHISPER_EDGE_WASM")?);
    Ok((Server::launch(cmd, &addr)?, addr))
}

fn composed() -> Vec<u8> {
    std::fs::read(env_path("WHISPER_EDGE_WASM").unwrap()).unwrap()
}

/// The composed component's top-level imports, by name.
fn imports(wasm: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.expect("a valid component") {
            wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    names.push(import.unwrap().name.0.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

fn composed_imports_no_wasi_nn_and_no_filesystem(_: &Server) {
    let names = imports(&composed());
    println!("    imports: {names:?}");
    assert!(!names.is_empty());
    for name in &names {
        assert!(
            ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:http/"].iter().any(|p| name.starts_with(p)),
            "unexpected import {name}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("wasi:http/types")), "{names:?}");
}

fn composed_holds_the_app_our_host_serves(_: &Server) {
    let app = std::fs::read(env_path("WHISPER_COMPONENT").unwrap()).unwrap();
    let wasm = composed();
    let nested: Vec<&[u8]> = wasmparser::Parser::new(0)
        .parse_all(&wasm)
        .filter_map(|p| match p.unwrap() {
            wasmparser::Payload::ComponentSection { unchecked_range, .. } => Some(&wasm[unchecked_range]),
            _ => None,
        })
        .collect();
    assert!(nested.len() >= 2, "the app and the provider are nested components");
    assert!(nested.iter().any(|c| *c == &app[..]), "no nested component is byte-for-byte the app ({} bytes)", app.len());
}

/// Spin's HTTP trigger world, `spin:up/http-trigger@3.6.0` in the WIT of the spin-sdk crate the
/// app is built with (found through cargo's metadata, so it is the exact version in Cargo.lock):
/// the composed component targets it; the app alone does not (Spin has no wasi:nn).
fn composed_targets_spins_http_world(_: &Server) {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--filter-platform", "wasm32-wasip2", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sdk = meta["packages"].as_array().unwrap().iter().find(|p| p["name"] == "spin-sdk").expect("spin-sdk");
    assert_eq!(sdk["version"], "5.2.0");
    let wit = std::path::Path::new(sdk["manifest_path"].as_str().unwrap()).parent().unwrap().join("wit");
    let targets = |wasm: std::path::PathBuf| {
        // `clocks-timezone`: an @unstable interface the SDK's WASI 0.3 files refer to.
        let out = Command::new(env_path("WASM_TOOLS_BIN").unwrap())
            .args(["component", "targets", "--features", "clocks-timezone", "--world", "spin:up/http-trigger@3.6.0"])
            .arg(&wit)
            .arg(&wasm)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, why) = targets(env_path("WHISPER_EDGE_WASM").unwrap());
    assert!(ok, "the composed component does not target Spin's world: {why}");
    let (ok, why) = targets(env_path("WHISPER_COMPONENT").unwrap());
    assert!(!ok && why.contains("wasi:nn"), "the app alone should miss wasi:nn on Spin: {why}");
}

fn transcript(v: &serde_json::Value, i: usize) -> String {
    v["results"][i]["transcript"].as_str().unwrap_or_else(|| panic!("no transcript in {v}")).to_string()
}

fn stock_seed_curl_jfk_exact(s: &Server) {
    let v = s.transcribe("/", "gen/jfk.wav", &[]).expect(200).json();
    assert_eq!(v["results"][0]["filename"], "file");
    assert_eq!(v["results"][0]["language"], "en");
    assert_eq!(transcript(&v, 0), JFK);
}

fn stock_two_files_in_one_request(s: &Server) {
    let v = s
        .post_form(
            "/",
            &[
                ("file", Some("jfk.mp3"), fixture("gen/jfk.mp3")),
                ("other", Some("Front_Center.wav"), fixture("/usr/share/sounds/alsa/Front_Center.wav")),
                ("beam_size", None, b"1".to_vec()),
            ],
        )
        .expect(200)
        .json();
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!((&r[0]["filename"], &r[1]["filename"]), (&"file".into(), &"other".into()));
    assert_eq!(normalize(&transcript(&v, 0)), normalize(JFK));
    assert_eq!(normalize(&transcript(&v, 1)), "front center");
}

fn stock_openai_json_and_srt(s: &Server) {
    let v = s.transcribe("/v1/audio/transcriptions", "gen/jfk.flac", &[("model", "whisper-1"), ("beam_size", "1")]).expect(200).json();
    assert_eq!(normalize(v["text"].as_str().unwrap()), normalize(JFK));
    let r = s.transcribe("/v1/audio/transcriptions", "gen/jfk.ogg", &[("response_format", "srt"), ("beam_size", "1")]).expect(200);
    assert!(r.content_type.starts_with("application/x-subrip"), "{}", r.content_type);
    let srt = r.text();
    assert!(srt.starts_with("1\n00:00:00,000 --> "), "{srt}");
    let text: String = srt.lines().filter(|l| !l.is_empty() && !l.contains("-->") && l.parse::<u32>().is_err()).collect::<Vec<_>>().join(" ");
    assert_eq!(normalize(&text), normalize(JFK));
}

fn stock_german_is_detected(s: &Server) {
    let v = s.transcribe("/", "gen/espeak/de.wav", &[("beam_size", "1")]).expect(200).json();
    assert_eq!(v["results"][0]["language"], "de", "{v}");
    assert!(normalize(&transcript(&v, 0)).contains("guten morgen"), "{v}");
}

fn stock_random_bytes_then_healthy(s: &Server) {
    let noise: Vec<u8> = (0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let r = s.post_form("/", &[("file", Some("noise.bin"), noise)]);
    assert!((400..500).contains(&r.status), "status {}: {}", r.status, r.text());
    let v = r.json();
    assert!(v["error"]["message"].is_string() && v["error"]["code"].is_string(), "{v}");
    let v = s.transcribe("/", "gen/jfk.wav", &[("beam_size", "1")]).expect(200).json();
    assert_eq!(normalize(&transcript(&v, 0)), normalize(JFK));
}

/// Stock `wasmtime serve -W timeout=3s` kills an instance that runs past its deadline: a
/// 10-minute upload (minutes of work here) fails alone with a 500 after about 3 s, and the same
/// server goes on answering, through the component, at once.
fn stock_timeout_ends_only_its_request(_: &Server) {
    let (server, _) = launch_stock(&["-W", "timeout=3s"]).unwrap();
    let long = jfk_repeated_wav(600);
    let started = std::time::Instant::now();
    let r = server.post_form("/", &[("file", Some("ten-minutes.wav"), long)]);
    println!("    killed: {} after {:.1} s", r.status, started.elapsed().as_secs_f64());
    assert_eq!(r.status, 500, "{}", r.text());
    server.get("/health").unwrap().expect(200);
    let r = server.post_form("/", &[("file", Some("noise.bin"), vec![0x5A; 4096])]);
    assert!((400..500).contains(&r.status), "status {}: {}", r.status, r.text());
    assert!(r.json()["error"]["code"].is_string(), "{}", r.text());
}

/// On a stock host the component applies the key rule itself (the `api-keys` crate, as our
/// host does before reading a body): several keys, Bearer / X-API-Key / ?api_key=.
fn stock_api_keys_refused_and_accepted(_: &Server) {
    let (server, addr) = launch_stock(&["--env", "WHISPER_API_KEY=stock-k1,stock-k2"]).unwrap();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let url = |path: &str| format!("http://{addr}{path}");
    let status = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| r.unwrap().status().as_u16();
    assert_eq!(status(agent.get(&url("/v1/models")).call()), 401);
    assert_eq!(status(agent.get(&url("/v1/models")).header("authorization", "Bearer wrong").call()), 401);
    assert_eq!(status(agent.get(&url("/v1/models")).header("authorization", "Bearer stock-k1").call()), 200);
    assert_eq!(status(agent.get(&url("/v1/models")).header("x-api-key", "stock-k2").call()), 200);
    assert_eq!(status(agent.get(&url("/v1/models?api_key=stock-k2")).call()), 200);
    // ureq sends the whole body before it reads: the component reads and drops a refused body
    // (stock hosts reset a connection closed with unread bytes, a broken pipe for the client).
    for body in [fixture("gen/jfk.wav"), vec![0u8; 4_000_000]] {
        let r = server.post_form("/", &[("file", Some("jfk.wav"), body)]);
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    }
    assert_eq!(status(agent.get(&url("/health")).call()), 200);
}

fn jfk_words_from(server: &Server) {
    let v = server.transcribe("/", "gen/jfk.wav", &[("beam_size", "1")]).expect(200).json();
    assert_eq!(normalize(&transcript(&v, 0)), normalize(JFK));
}

fn embedder_plain_wasmtime_serves_the_composed_component(_: &Server) {
    let addr = free_addr().unwrap();
    let mut cmd = Command::new(env_path("WHISPER_EXAMPLES_DIR").unwrap().join("plain_wasmtime"));
    cmd.arg(env_path("WHISPER_EDGE_WASM").unwrap()).arg(&addr).env("WHISPER_MODEL", "base");
    jfk_words_from(&Server::launch(cmd, &addr).unwrap());
}

fn embedder_host_library_serves_the_app(_: &Server) {
    let addr = free_addr().unwrap();
    let mut cmd = Command::new(env_path("WHISPER_EXAMPLES_DIR").unwrap().join("embed_host"));
    cmd.arg(env_path("WHISPER_COMPONENT").unwrap()).arg(env_path("WHISPER_MODELS_DIR").unwrap()).args(["base", &addr]);
    env_path("ORT_DYLIB_PATH").unwrap();
    jfk_words_from(&Server::launch(cmd, &addr).unwrap());
}
