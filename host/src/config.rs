//! Command line (clap): where to listen, what to run, which models, which backend, the limits.

use crate::access::{Access, ClientLimits};
use crate::limits::Limits;
use crate::nn::ort::{OptLevel, Target};
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Prefix of the host environment variables passed through to the guest.
pub const GUEST_ENV_PREFIX: &str = "WHISPER_";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// ONNX Runtime, loaded at run time from ORT_DYLIB_PATH / --ort-lib.
    #[default]
    Onnx,
    /// OpenVINO, loaded at run time from OPENVINO_LIB / --openvino-lib, reading the same .onnx
    /// files (in builds with the `openvino` feature, the default).
    Openvino,
}

/// Serve the Whisper WebAssembly component over HTTP, with wasi-nn graphs loaded once.
///
/// Every request runs in a fresh instance of the component (no preopened directories, no
/// network, only the environment variables named below), with the models' graphs available
/// through wasi-nn `load-by-name` as `<model>/<graph>`, e.g. `base/encoder`.
#[derive(Debug, Parser)]
#[command(name = "whisper-host", version, about, long_about)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The component to serve (a wasi:http/incoming-handler@0.2.0 component).
    #[arg(long, value_name = "PATH", default_value = "target/wasm32-wasip2/release/whisper_component.wasm")]
    pub component: PathBuf,

    /// Directory holding one sub-directory of .onnx graphs per model.
    #[arg(long, value_name = "DIR", env = "MODELS_DIR", default_value = "models/build")]
    pub models: PathBuf,

    /// Model to load from the models directory (repeatable); each `<model>/<graph>.onnx` becomes
    /// the wasi-nn graph `<model>/<graph>`.
    #[arg(long = "model", value_name = "NAME", default_value = "base")]
    pub model: Vec<String>,

    /// Graphs every model must have (comma-separated; empty: no check). A model missing one
    /// stops start-up. The default is the contract of models/README.md.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', default_value = "encoder,decoder,meta")]
    pub graphs: Vec<String>,

    /// wasi-nn backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Onnx)]
    pub backend: BackendKind,

    /// Where the graphs run; `gpu` fails at start-up unless the ONNX Runtime library has CUDA or
    /// TensorRT.
    #[arg(long, value_enum, default_value_t = Target::Cpu)]
    pub target: Target,

    /// Intra-op threads of the inference thread pool [default: the number of cores].
    #[arg(long)]
    pub threads: Option<usize>,

    /// ONNX Runtime graph optimisation level.
    #[arg(long, value_enum, default_value_t = OptLevel::All)]
    pub graph_opt: OptLevel,

    /// Use ONNX Runtime's CPU memory arena (faster allocation, but each session keeps its
    /// largest run's memory for good: higher RSS, same speed here).
    #[arg(long)]
    pub ort_arena: bool,

    /// An ONNX Runtime session configuration entry for every session (repeatable), e.g.
    /// `--ort-config session.intra_op.allow_spinning=0`.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub ort_config: Vec<(String, String)>,

    /// Graphs (file names without `.onnx`, comma-separated) that run one at a time across all
    /// requests, so their large activations are allocated once however many requests are in
    /// flight; `--serial-graphs=` lets every graph run concurrently (ONNX Runtime only).
    #[arg(long, value_name = "NAMES", value_delimiter = ',', default_value = "encoder")]
    pub serial_graphs: Vec<String>,

    /// Heap blocks of at least this size get their own mapping (glibc's `M_MMAP_THRESHOLD`), so
    /// what a request frees (activations, tensors) goes back to the system at once instead of
    /// staying in the heap; `0` (the default) keeps glibc's adaptive threshold. Lower memory for
    /// some speed: 1MiB cut base-int8's peak 427 → 326 MiB with requests in flight, but made
    /// beam-5 requests ~20 % slower (bench/README.md). `MALLOC_MMAP_THRESHOLD_` wins over this.
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub malloc_mmap_threshold: u64,

    /// The ONNX Runtime shared library (libonnxruntime.so.1.22.x, from `pip install onnxruntime`).
    #[arg(long, value_name = "PATH", env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,

    /// The OpenVINO C library for `--backend openvino` (`libopenvino_c.so.<ver>` in the `openvino`
    /// wheel's openvino/libs/) [default: searched by OPENVINO_INSTALL_DIR, LD_LIBRARY_PATH].
    #[arg(long, value_name = "PATH", env = "OPENVINO_LIB")]
    pub openvino_lib: Option<PathBuf>,

    /// Environment variable for the guest, KEY=VAL (repeatable). The guest also gets the host's
    /// variables whose names start with WHISPER_, and nothing else.
    #[arg(long = "env", value_name = "KEY=VAL", value_parser = parse_key_val)]
    pub env: Vec<(String, String)>,

    /// Largest request body; larger ones get 413 (accepts B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, value_name = "SIZE", default_value = "25MiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Linear memory cap per request instance.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub max_memory: u64,

    /// Seconds a request's guest may run before it is stopped (500, code `timeout`).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub timeout: f64,

    /// Requests running at once [default: cores / --threads, at least 1: each running request's
    /// inference gets the threads it was given instead of competing for them].
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,

    /// Requests waiting for a free slot; when full, new requests get 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_queue: usize,

    /// Retry-After seconds sent with 503.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub retry_after: u64,

    /// Seconds to wait for a client sending its request head, or between two pieces of its
    /// body; a stalled head closes the connection, a stalled body gets 408.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub read_timeout: f64,

    /// On SIGTERM or SIGINT: seconds the requests already admitted (running and queued) get to
    /// finish while /ready answers 503 `draining` and no connection is accepted. Then, or at a
    /// second signal, the rest are stopped (503 `shutting_down`). Set it to at least
    /// `--timeout` to never cut a request short.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub shutdown_grace: f64,

    /// A file of API keys (one per line or comma-separated; `#` comment lines), added to
    /// `WHISPER_API_KEY`'s and re-read on SIGHUP. With any key, a request that may carry a body
    /// needs one before it is read (401 otherwise); the component checks its GET routes.
    #[arg(long, value_name = "PATH")]
    pub api_keys_file: Option<PathBuf>,

    /// Requests per minute per client (its API key, else its address); more get 429 with
    /// Retry-After [default: no limit].
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,

    /// Requests at once per client (running, queued or uploading); more get 429 [default: no
    /// limit].
    #[arg(long, value_name = "N")]
    pub max_client_concurrent: Option<usize>,

    /// Allow browser pages from this origin (e.g. `https://app.example.com`, repeatable, or `*`)
    /// to call the API: CORS preflights are answered by the host, without any work [default:
    /// none, same origin only].
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. HTTP/2 and
    /// HTTP/1.1 by ALPN. Behind a proxy or an ingress that terminates TLS, leave it off.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Use Wasmtime's pooling instance allocator (pre-reserved slots reused across requests).
    #[arg(long)]
    pub pooling: bool,

    /// Cache compiled components on disk (Wasmtime's default cache directory).
    #[arg(long)]
    pub compile_cache: bool,

    /// Log format on stderr: `text` (colours only on a terminal) or `json` (one object per line).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Let a native profiler see the component's compiled functions: `perfmap` writes
    /// /tmp/perf-<pid>.map for `perf record -p <pid>`; `jitdump` for `perf inject --jit`.
    #[arg(long, value_enum, value_name = "KIND")]
    pub wasm_profile: Option<WasmProfile>,
}

/// [`Cli::log_format`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What [`Cli::wasm_profile`] sets up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WasmProfile {
    Perfmap,
    Jitdump,
}

impl Cli {
    pub fn limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            max_body_bytes: self.max_body,
            max_memory_bytes: usize::try_from(self.max_memory).unwrap_or(usize::MAX),
            timeout: Duration::from_secs_f64(self.timeout.max(0.001)),
            max_concurrent: self.max_concurrent.unwrap_or_else(|| self.default_concurrency(defaults.max_concurrent)).max(1),
            max_queue: self.max_queue,
            retry_after_secs: self.retry_after,
            read_timeout: Duration::from_secs_f64(self.read_timeout.max(0.001)),
            shutdown_grace: Duration::try_from_secs_f64(self.shutdown_grace.max(0.0)).unwrap_or(Duration::MAX),
            // Set from [`Cli::access`], which can fail (the keys file).
            access: Default::default(),
            cors: crate::cors::Cors::new(&self.cors_origins),
        }
    }

    /// The API keys (`WHISPER_API_KEY` as the guest would see it, and `--api-keys-file`) and
    /// the per-client limits.
    pub fn access(&self) -> anyhow::Result<Access> {
        let env = self.guest_env();
        let fixed = match env.iter().find(|(k, _)| k == "WHISPER_API_KEY") {
            Some((_, v)) => api_keys::Keys::parse(v).map_err(|e| anyhow::anyhow!("WHISPER_API_KEY: {e}"))?,
            None => api_keys::Keys::none(),
        };
        let limits = ClientLimits { per_minute: self.rate_limit.filter(|&n| n > 0), concurrent: self.max_client_concurrent.filter(|&n| n > 0) };
        Access::new(fixed, self.api_keys_file.as_deref(), limits)
    }

    /// Requests that can run at once without oversubscribing the cores: `cores / threads`.
    /// Measured on 2 cores (base-int8, 8 clients × 30 s clips): 2 threads × 2 requests gave
    /// 46 audio s/s against 55 for one request at a time; 2 threads × 1 request 54, and
    /// `--threads 1 --max-concurrent 2` 59 (at 1.6× the latency of a lone request).
    fn default_concurrency(&self, cores: usize) -> usize {
        let threads = self.threads.filter(|&t| t > 0).unwrap_or(cores);
        (cores / threads).max(1)
    }

    /// The guest's environment: the host's `WHISPER_*` variables, then the `--env` flags (which win).
    pub fn guest_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(GUEST_ENV_PREFIX))
            .collect();
        for (k, v) in &self.env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        env.sort();
        env
    }
}

fn parse_key_val(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VAL"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses `1048576`, `512KiB`, `25MiB`, `1GiB`, `10MB`, `1.5GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    Ok((number * factor as f64).round() as u64)
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("25MiB").unwrap(), 25 * 1024 * 1024);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("10 MB").unwrap(), 10_000_000);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1TiB").is_err());
    }

    #[test]
    fn cli_defaults_and_help() {
        let cli = Cli::try_parse_from(["whisper-host", "--model", "tiny.en", "--env", "WHISPER_X=1"]).unwrap();
        assert_eq!(cli.model, vec!["tiny.en"]);
        assert_eq!(cli.limits().max_body_bytes, 25 << 20);
        assert_eq!(cli.limits().read_timeout, Duration::from_secs(30));
        assert!(cli.guest_env().contains(&("WHISPER_X".into(), "1".into())));
        assert!(!cli.ort_arena && cli.ort_config.is_empty());
        assert_eq!(cli.serial_graphs, vec!["encoder"]);
        assert_eq!(cli.malloc_mmap_threshold, 0);
        assert_eq!(Cli::try_parse_from(["whisper-host", "--malloc-mmap-threshold", "1MiB"]).unwrap().malloc_mmap_threshold, 1 << 20);
        let serial = |arg: &str| Cli::try_parse_from(["whisper-host", arg]).unwrap().serial_graphs;
        assert_eq!(serial("--serial-graphs=encoder,speaker"), vec!["encoder", "speaker"]);
        assert_eq!(serial("--serial-graphs="), vec![""], "none (lib.rs drops the empty name)");
        assert_eq!(cli.log_format, LogFormat::Text);
        assert_eq!(Cli::try_parse_from(["whisper-host", "--log-format", "json"]).unwrap().log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["whisper-host", "--log-format", "xml"]).is_err());
        assert_eq!(cli.default_concurrency(8), 1, "threads default to the cores");
        let threads = |t: &str| Cli::try_parse_from(["whisper-host", "--threads", t]).unwrap();
        assert_eq!(threads("2").default_concurrency(8), 4);
        assert_eq!(threads("3").default_concurrency(8), 2);
        assert_eq!(threads("16").default_concurrency(8), 1);
        assert_eq!(threads("0").default_concurrency(8), 1);
        let explicit = Cli::try_parse_from(["whisper-host", "--threads", "1", "--max-concurrent", "3"]).unwrap();
        assert_eq!(explicit.limits().max_concurrent, 3);
        let cli = Cli::try_parse_from(["whisper-host", "--ort-arena", "--ort-config", "session.a=1", "--ort-config=b = x=y"]).unwrap();
        assert!(cli.ort_arena);
        assert_eq!(cli.ort_config, vec![("session.a".into(), "1".into()), ("b".into(), "x=y".into())]);
        assert!(Cli::try_parse_from(["whisper-host", "--ort-config", "novalue"]).is_err());
        assert!(Cli::try_parse_from(["whisper-host", "--ort-config", "=1"]).is_err());
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
