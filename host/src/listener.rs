//! The accept loop and the graceful shutdown.
//!
//! On the `shutdown` signal: `/ready` turns 503 `draining`, the listener closes (no new
//! connections), every open connection is told to close once its current response is sent
//! (idle keep-alive connections close at once), and the requests already admitted — running or
//! queued — get the frontend's grace period to finish. When the grace period runs out, or the
//! `force` signal comes (e.g. a second SIGTERM), the guests still running are stopped: each
//! answers 503 `shutting_down` if its response had not started, and the log names how many.

use crate::frontend::{Frontend, Peer};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How a server stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Requests that were still admitted when the drain gave up (0: every one finished).
    pub abandoned: usize,
}

/// How long stopped guests get to send their 503 before the connections are dropped.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// How often the drain looks at what is left.
const POLL: Duration = Duration::from_millis(20);

/// Accepts connections on `listener` and serves HTTP/1.1 through `frontend` until `shutdown`
/// resolves, then drains as the module documentation says; `force` ends the drain early
/// (`std::future::pending()` if nothing should).
pub async fn serve_frontend(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> anyhow::Result<Stopped> {
    tokio::pin!(shutdown);
    let (closing, _) = watch::channel(false);
    let mut connections = JoinSet::new();
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
            // Reap finished connections so the set stays as large as the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(frontend.clone(), stream, peer, closing.subscribe()));
    }
    frontend.begin_draining();
    drop(listener);
    let _ = closing.send(true);
    Ok(drain(&frontend, &mut connections, force).await)
}

/// Serves one connection until it ends, or until `closing` turns true: then it closes after the
/// response in progress.
async fn connection(frontend: Arc<Frontend>, stream: tokio::net::TcpStream, peer: std::net::SocketAddr, mut closing: watch::Receiver<bool>) {
    let read_timeout = frontend.read_timeout;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let frontend = frontend.clone();
        req.extensions_mut().insert(Peer(peer));
        async move { Ok::<_, std::convert::Infallible>(frontend.handle(req).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Waits for the admitted requests and the open connections, at most the grace period or until
/// `force`; then stops what is left.
async fn drain(frontend: &Frontend, connections: &mut JoinSet<()>, force: impl Future<Output = ()>) -> Stopped {
    let admitted = || frontend.server().map_or(0, |s| s.in_flight());
    let grace = frontend.shutdown_grace;
    tracing::info!(
        admitted = admitted(),
        connections = connections.len(),
        grace_s = grace.as_secs_f64(),
        "shutting down: not accepting; waiting for the admitted requests"
    );
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline, force);
    let why = loop {
        while connections.try_join_next().is_some() {}
        if connections.is_empty() && admitted() == 0 {
            tracing::info!("shutdown: every admitted request finished");
            return Stopped::default();
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = &mut deadline => break "the grace period is over",
            () = &mut force => break "a second signal came",
        }
    };
    let abandoned = admitted();
    tracing::warn!(abandoned, connections = connections.len(), "shutdown: {why}; stopping the requests still running");
    if let Some(server) = frontend.server() {
        server.stop_all();
    }
    // The stopped guests answer 503 at their next epoch tick; let those answers go out.
    let _ = tokio::time::timeout(STOP_WAIT, async {
        while !(connections.is_empty() && admitted() == 0) {
            while connections.try_join_next().is_some() {}
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    connections.abort_all();
    Stopped { abandoned }
}
