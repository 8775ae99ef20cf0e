//! `whisper-host`: command line → backend and models → component → HTTP server.

use anyhow::Context as _;
use clap::Parser;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Instant;
use whisper_host::config::{BackendKind, LogFormat};
use whisper_host::{
    build_engine, check_component_file, load_backend_and_models, load_component, proxy_pre, serve_frontend, serve_frontend_tls, Cli, EngineOptions,
    Frontend, Limits, Metrics, Server,
};

fn main() {
    let cli = Cli::parse();
    tune_malloc(cli.malloc_mmap_threshold);
    init_logging(cli.log_format);
    let format = cli.log_format;
    if let Err(e) = run(cli) {
        match format {
            LogFormat::Text => eprintln!("error: {e:#}"),
            LogFormat::Json => tracing::error!("error: {e:#}"),
        }
        std::process::exit(1);
    }
}

/// `--malloc-mmap-threshold`, before any thread starts. A fixed threshold also turns off glibc's
/// habit of raising it after each freed large block, which otherwise leaves freed activations in
/// the heap (base-int8 with requests in flight: peak 427 → 326 MiB at 1 MiB, for ~20 % on beam 5).
fn tune_malloc(threshold: u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if threshold > 0 && std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        let threshold = libc::c_int::try_from(threshold).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes allocator parameters; it is called before any other thread.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = threshold;
}

/// Logs go to stderr: text with colours only on a terminal (and without `NO_COLOR`), or one
/// JSON object per line.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,wasmtime_wasi_nn=off".into());
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut limits = cli.limits();
    let access = Arc::new(cli.access()?);
    limits.access = access.clone();
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(whisper_host::tls::server_config(cert, key)?),
        _ => None,
    };
    // Fail fast on what is cheap to check, before the (slow) model loading: the component file
    // and the port.
    check_component_file(&cli.component)?;
    let listener = std::net::TcpListener::bind(cli.listen).with_context(|| format!("listening on {}", cli.listen))?;
    listener.set_nonblocking(true).context("listening socket")?;

    let backend = match cli.backend {
        BackendKind::Onnx => "onnx",
        BackendKind::Openvino => "openvino",
    };
    let metrics = Arc::new(Metrics::new(backend));
    // The listener answers at once: /health 200, /ready and every other route 503 until loaded.
    let frontend = Frontend::loading(metrics.clone(), &limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let cli = Arc::new(cli);
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).context("listening socket")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %listener.local_addr()?, scheme, "listening; loading the component and the models");
        reload_keys_on_sighup(access, cli.api_keys_file.is_some());
        let signals = signals();
        let first = wait_for_signal(signals.clone(), 1);
        let second = wait_for_signal(signals, 2);
        let mut serving = match tls {
            Some(tls) => tokio::spawn(serve_frontend_tls(listener, tls, frontend.clone(), first, second)),
            None => tokio::spawn(serve_frontend(listener, frontend.clone(), first, second)),
        };
        let loading = {
            let cli = cli.clone();
            tokio::task::spawn_blocking(move || load(&cli, limits, metrics))
        };
        tokio::select! {
            loaded = loading => {
                let server = match loaded {
                    Ok(Ok(server)) => server,
                    Ok(Err(e)) => {
                        serving.abort();
                        return Err(e);
                    }
                    Err(_) => {
                        serving.abort();
                        anyhow::bail!("loading the component and the models panicked");
                    }
                };
                tracing::info!(graphs = ?server.models().names().collect::<Vec<_>>(), "ready");
                frontend.set_ready(server);
                serving.await.context("the server task")?
            }
            // A shutdown signal while loading.
            served = &mut serving => served.context("the server task")?,
        }
    });
    // A guest abandoned after the grace period is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let stopped = result?;
    if stopped.abandoned > 0 {
        // Exit 1: not every admitted request was answered in full.
        anyhow::bail!("stopped with {} request(s) unfinished", stopped.abandoned);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Compiles the component while the backend loads the models, and makes the server.
fn load(cli: &Cli, limits: Limits, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Server>> {
    let start = Instant::now();
    let engine = build_engine(&EngineOptions {
        pooling: cli.pooling,
        max_instances: u32::try_from(limits.max_concurrent + 4).unwrap_or(u32::MAX),
        max_memory_bytes: limits.max_memory_bytes,
        compile_cache: cli.compile_cache,
        profile: cli.wasm_profile,
    })?;
    // Compile the component while the models load: each takes a second or two.
    let (component, models) = std::thread::scope(|scope| {
        let compiling = scope.spawn(|| {
            let component = load_component(&engine, &cli.component)?;
            tracing::info!(component = %cli.component.display(), ms = start.elapsed().as_secs_f64() * 1e3, "component compiled");
            Ok::<_, anyhow::Error>(component)
        });
        let models = load_backend_and_models(cli);
        (compiling.join(), models)
    });
    let component = component.map_err(|_| anyhow::anyhow!("compiling the component panicked"))??;
    let models = models?;
    let pre = proxy_pre(&engine, &component).with_context(|| format!("`{}`", cli.component.display()))?;
    tracing::info!(ms = start.elapsed().as_secs_f64() * 1e3, "component and models ready");

    let env = cli.guest_env();
    tracing::info!(
        vars = ?env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        max_body = limits.max_body_bytes,
        max_memory = limits.max_memory_bytes,
        timeout_s = limits.timeout.as_secs_f64(),
        max_concurrent = limits.max_concurrent,
        max_queue = limits.max_queue,
        api_keys = limits.access.keys().len(),
        "guest environment and limits"
    );
    Ok(Server::with_metrics(pre, Arc::new(models), env, limits, metrics))
}

/// Re-reads the API keys file at each SIGHUP (without a file, SIGHUP is ignored).
fn reload_keys_on_sighup(access: Arc<whisper_host::Access>, has_file: bool) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            if !has_file {
                tracing::info!("SIGHUP: no --api-keys-file to re-read");
                continue;
            }
            match access.reload() {
                Ok(keys) => tracing::info!(keys, "SIGHUP: re-read the API keys file"),
                Err(e) => tracing::error!("SIGHUP: {e:#}; keeping the keys as they were"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (access, has_file);
}

/// Counts SIGINT and SIGTERM: the first starts the graceful shutdown, the second ends it.
fn signals() -> tokio::sync::watch::Receiver<u32> {
    let (count, receiver) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let term = async {
                match term.as_mut() {
                    Some(term) => term.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let term = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            let n = *count.borrow() + 1;
            if n == 2 {
                tracing::warn!("a second signal: stopping the requests still running");
            }
            if count.send(n).is_err() {
                break;
            }
        }
    });
    receiver
}

async fn wait_for_signal(mut count: tokio::sync::watch::Receiver<u32>, n: u32) {
    if count.wait_for(|c| *c >= n).await.is_err() {
        std::future::pending::<()>().await;
    }
}
