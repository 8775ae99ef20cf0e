//! Start-up failures (issue 7 "Faults"): the real `whisper-host` binary started with one thing
//! wrong — no ONNX Runtime library, no model, a corrupt graph, no component or not a component,
//! a port in use — must exit non-zero within seconds, say on stderr what is wrong (naming the
//! file, and what to install or build), and never panic.
//!
//! `host/tests/backend.rs` checks the same model errors at the library level (`load_models`);
//! these run the binary as a user does: its exit code, its stderr, how long it takes to give up,
//! and a real model directory in which only one graph is broken.
//!
//! Each case spawns its own host in a fresh temporary working directory (so nothing is found by
//! accident relative to the repository), with every path absolute. The suite's server is only
//! used by the port-in-use case.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Server, Suite};

/// A failing start-up must end within this (the slowest cases load `base`'s decoder first).
const QUICK: Duration = Duration::from_secs(20);
/// A host still running after this is killed and the case fails.
const GIVE_UP: Duration = Duration::from_secs(60);

pub fn register(s: &mut Suite) {
    s.add("startup_ort_lib_flag_to_nothing", ort_lib_flag_to_nothing);
    s.add("startup_ort_dylib_path_to_nothing", ort_dylib_path_to_nothing);
    s.add("startup_ort_lib_not_configured", ort_lib_not_configured);
    s.add("startup_ort_lib_not_a_library", ort_lib_not_a_library);
    s.add("startup_openvino_lib_to_nothing", openvino_lib_to_nothing);
    s.add("startup_models_dir_empty", models_dir_empty);
    s.add("startup_models_dir_missing", models_dir_missing);
    s.add("startup_model_encoder_corrupt", model_encoder_corrupt);
    s.add("startup_model_missing_a_graph", model_missing_a_graph);
    s.add("startup_component_missing", component_missing);
    s.add("startup_component_is_a_directory", component_is_a_directory);
    s.add("startup_component_not_a_component", component_not_a_component);
    s.add("startup_component_without_http_export", component_without_http_export);
    s.add("startup_listen_address_in_use", listen_address_in_use);
}

/// The pieces a good start-up would use, all absolute (the hosts run in a temporary directory).
struct Setup {
    bin: PathBuf,
    component: PathBuf,
    models: PathBuf,
    ort: PathBuf,
}

fn setup() -> Setup {
    let path = |name: &str| {
        let p = std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
        std::fs::canonicalize(&p).unwrap_or_else(|e| panic!("{name}={p}: {e}"))
    };
    Setup {
        bin: path("WHISPER_HOST_BIN"),
        component: path("WHISPER_COMPONENT"),
        models: path("WHISPER_MODELS_DIR"),
        ort: path("ORT_DYLIB_PATH"),
    }
}

/// A start-up that worked but for the changes a case makes.
struct Start {
    listen: String,
    component: PathBuf,
    models: PathBuf,
    model: &'static str,
    /// `Some(path)`: `--ort-lib path`; `None`: no flag (then `ORT_DYLIB_PATH` decides).
    ort_flag: Option<PathBuf>,
    /// `Some(Some(v))`: `ORT_DYLIB_PATH=v`; `Some(None)`: unset; `None`: the suite's value.
    ort_env: Option<Option<PathBuf>>,
    /// More flags.
    flags: Vec<&'static str>,
}

impl Start {
    fn new(s: &Setup) -> Start {
        Start {
            listen: "127.0.0.1:0".into(),
            component: s.component.clone(),
            models: s.models.clone(),
            model: "tiny.en",
            ort_flag: Some(s.ort.clone()),
            ort_env: None,
            flags: Vec::new(),
        }
    }

    /// Runs the host until it exits (or `GIVE_UP`); panics if it gets ready instead.
    fn run(self, s: &Setup) -> Outcome {
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(&s.bin);
        cmd.current_dir(cwd.path())
            .args(["--listen", &self.listen, "--model", self.model])
            .arg("--component")
            .arg(&self.component)
            .arg("--models")
            .arg(&self.models)
            .args(&self.flags)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(lib) = &self.ort_flag {
            cmd.arg("--ort-lib").arg(lib);
        }
        match &self.ort_env {
            None => {}
            Some(None) => {
                cmd.env_remove("ORT_DYLIB_PATH");
            }
            Some(Some(v)) => {
                cmd.env("ORT_DYLIB_PATH", v);
            }
        }
        let args: Vec<OsString> = std::iter::once(cmd.get_program().to_owned()).chain(cmd.get_args().map(|a| a.to_owned())).collect();
        let mut command = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
        match &self.ort_env {
            None => {}
            Some(None) => command = format!("env -u ORT_DYLIB_PATH {command}"),
            Some(Some(v)) => command = format!("ORT_DYLIB_PATH={} {command}", v.display()),
        }

        let t = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {command}: {e}"));
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            // The host logs (on stderr) `whisper_host: ready graphs=…` once the component and
            // models are loaded.
            let started = stderr.lock().unwrap().contains(": ready ");
            if started || t.elapsed() > GIVE_UP {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{command}\n{}\nstdout:\n{}\nstderr:\n{}",
                    if started { "got ready instead of failing" } else { "still running after 60 s" },
                    stdout.lock().unwrap(),
                    stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let secs = t.elapsed();
        // The pipes close when the process exits; give the readers a moment to drain them.
        std::thread::sleep(Duration::from_millis(50));
        let stdout = stdout.lock().unwrap().clone();
        let stderr = stderr.lock().unwrap().clone();
        println!("    $ {command}\n    exit {:?} after {:.2} s, stderr: {}", status.code(), secs.as_secs_f32(), stderr.trim_end());
        Outcome { code: status.code(), secs, stdout, stderr, command }
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let out = Arc::new(Mutex::new(String::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    out
}

struct Outcome {
    code: Option<i32>,
    secs: Duration,
    stdout: String,
    stderr: String,
    command: String,
}

impl Outcome {
    /// Exited by itself with a failure code, quickly, no panic, and an `error:` on stderr that
    /// contains every needle (case-insensitive).
    fn expect_clear_failure(&self, needles: &[&str]) {
        let ctx = || format!("{}\nexit {:?} after {:?}\nstdout:\n{}\nstderr:\n{}", self.command, self.code, self.secs, self.stdout, self.stderr);
        for out in [&self.stdout, &self.stderr] {
            assert!(!out.contains("panicked at") && !out.contains("RUST_BACKTRACE"), "the host panicked:\n{}", ctx());
        }
        match self.code {
            Some(0) => panic!("exit code 0 on a failed start-up:\n{}", ctx()),
            Some(101) => panic!("exit code 101 (a Rust panic):\n{}", ctx()),
            Some(_) => {}
            None => panic!("killed by a signal:\n{}", ctx()),
        }
        assert!(self.secs < QUICK, "took {:?} to give up (limit {QUICK:?}):\n{}", self.secs, ctx());
        assert!(self.stderr.contains("error: "), "no `error:` on stderr:\n{}", ctx());
        let lower = self.stderr.to_lowercase();
        for needle in needles {
            assert!(lower.contains(&needle.to_lowercase()), "stderr lacks {needle:?}:\n{}", ctx());
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

// ---------------------------------------------------------------- ONNX Runtime

const ORT_NOWHERE: &str = "/nonexistent/libonnxruntime.so";

fn ort_lib_flag_to_nothing(_: &Server) {
    let s = setup();
    let o = Start { ort_flag: Some(ORT_NOWHERE.into()), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[ORT_NOWHERE, "pip install onnxruntime", "ORT_DYLIB_PATH", "--ort-lib"]);
}

fn ort_dylib_path_to_nothing(_: &Server) {
    let s = setup();
    let o = Start { ort_flag: None, ort_env: Some(Some(ORT_NOWHERE.into())), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[ORT_NOWHERE, "pip install onnxruntime", "ORT_DYLIB_PATH"]);
}

fn ort_lib_not_configured(_: &Server) {
    let s = setup();
    let o = Start { ort_flag: None, ort_env: Some(None), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&["ONNX Runtime", "pip install onnxruntime", "ORT_DYLIB_PATH"]);
}

fn ort_lib_not_a_library(_: &Server) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so.1.22.1");
    std::fs::write(&fake, "not a shared library\n").unwrap();
    let o = Start { ort_flag: Some(fake.clone()), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[path_str(&fake), "ONNX Runtime", "pip install onnxruntime"]);
}

const OPENVINO_NOWHERE: &str = "/nonexistent/libopenvino_c.so.2641";

fn openvino_lib_to_nothing(_: &Server) {
    let s = setup();
    let o = Start { flags: vec!["--backend", "openvino", "--openvino-lib", OPENVINO_NOWHERE], ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[OPENVINO_NOWHERE, "pip install openvino", "OPENVINO_LIB"]);
}

// ---------------------------------------------------------------- models

fn models_dir_empty(_: &Server) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let o = Start { models: dir.path().into(), model: "base", ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&["model `base`", path_str(dir.path()), "make models"]);
}

fn models_dir_missing(_: &Server) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    let o = Start { models: nowhere.clone(), model: "base", ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[path_str(&nowhere), "does not exist", "make models"]);
}

/// `base` with its other files linked from the real model and `encoder.onnx` broken three ways:
/// truncated to 4 KiB, text, empty. The decoder loads first (alphabetically), so this also
/// checks that a half-loaded model is given up cleanly.
fn model_encoder_corrupt(_: &Server) {
    let s = setup();
    let real = s.models.join("base");
    let original = std::fs::read(real.join("encoder.onnx")).expect("base/encoder.onnx (make models)");
    for (what, bytes) in [
        ("truncated", original[..4096].to_vec()),
        ("text", b"this is not an ONNX graph\n".to_vec()),
        ("empty", Vec::new()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir(&base).unwrap();
        for entry in std::fs::read_dir(&real).unwrap() {
            let name = entry.unwrap().file_name();
            if name != "encoder.onnx" {
                std::os::unix::fs::symlink(real.join(&name), base.join(&name)).unwrap();
            }
        }
        let encoder = base.join("encoder.onnx");
        std::fs::write(&encoder, bytes).unwrap();
        println!("    encoder.onnx {what}:");
        let o = Start { models: dir.path().into(), model: "base", ..Start::new(&s) }.run(&s);
        o.expect_clear_failure(&[path_str(&encoder), "base/encoder"]);
    }
}

/// `base` without `encoder.onnx`: the host must refuse to start rather than serve a model
/// whose every request would fail.
fn model_missing_a_graph(_: &Server) {
    let s = setup();
    let real = s.models.join("base");
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir(&base).unwrap();
    for name in ["decoder.onnx", "meta.onnx"] {
        std::os::unix::fs::symlink(real.join(name), base.join(name)).unwrap();
    }
    let o = Start { models: dir.path().into(), model: "base", ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&["model `base` is incomplete", path_str(&base.join("encoder.onnx")), "make models"]);
}

// ---------------------------------------------------------------- the component

fn component_is_a_directory(_: &Server) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let o = Start { component: dir.path().into(), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[path_str(dir.path()), "is a directory", "cargo build"]);
}

fn component_missing(_: &Server) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("whisper_component.wasm");
    let o = Start { component: nowhere.clone(), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[path_str(&nowhere), "does not exist", "cargo build"]);
}

/// Files that are not a component: text, random bytes, an empty file, a core module, and a
/// component cut short. Each message must name the file and say it is about the component.
fn component_not_a_component(_: &Server) {
    let s = setup();
    let real = std::fs::read(&s.component).unwrap();
    let mut random = vec![0u8; 20_000];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = "not a WebAssembly component";
    for (name, bytes, says) in [
        ("text.wasm", b"hello, I am not WebAssembly\n".to_vec(), not_wasm),
        ("random.wasm", random, not_wasm),
        ("empty.wasm", Vec::new(), not_wasm),
        ("core-module.wasm", b"\0asm\x01\0\0\0".to_vec(), "is a core WebAssembly module, not a component"),
        ("truncated.wasm", real[..100_000.min(real.len() / 2)].to_vec(), "compiling the component"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let o = Start { component: path.clone(), ..Start::new(&s) }.run(&s);
        o.expect_clear_failure(&[path_str(&path), says]);
    }
}

/// A valid but empty component (no exports): the host must say which export it needs.
fn component_without_http_export(_: &Server) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty-component.wasm");
    std::fs::write(&path, b"\0asm\x0d\0\x01\0").unwrap();
    let o = Start { component: path.clone(), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[path_str(&path), "wasi:http/incoming-handler"]);
}

// ---------------------------------------------------------------- the address

/// A second host on the suite's server's port.
fn listen_address_in_use(server: &Server) {
    let s = setup();
    let addr = server.base.trim_start_matches("http://").to_string();
    let o = Start { listen: addr.clone(), ..Start::new(&s) }.run(&s);
    o.expect_clear_failure(&[&addr, "address already in use"]);
    server.get("/health").unwrap().expect(200);
}
