//! `whisper-host`: command line → backend and models → component → HTTP server.

use anyhow::Context as _;
use clap::Parser;
use std::sync::Arc;
use std::time::Instant;
use whisper_host::{
    build_engine, check_component_file, load_backend_and_models, load_component, proxy_pre, serve, Cli, EngineOptions, Server,
};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,wasmtime_wasi_nn=off".into()),
        )
        .init();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let limits = cli.limits();
    // Fail fast on what is cheap to check, before the (slow) model loading: the component file
    // and the port.
    check_component_file(&cli.component)?;
    let listener = std::net::TcpListener::bind(cli.listen).with_context(|| format!("listening on {}", cli.listen))?;
    listener.set_nonblocking(true).context("listening socket")?;

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
        let models = load_backend_and_models(&cli);
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
        "guest environment and limits"
    );
    let server = Server::new(pre, Arc::new(models), env, limits);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).context("listening socket")?;
        tracing::info!(address = %listener.local_addr()?, graphs = ?server.models().names().collect::<Vec<_>>(), "listening");
        serve(listener, server, shutdown_signal()).await
    });
    // A guest abandoned after the grace period is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
