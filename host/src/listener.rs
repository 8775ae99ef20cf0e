//! The accept loop and the graceful shutdown.
//!
//! On the `shutdown` signal: `/ready` turns 503 `draining`, the listener closes (no new
//! connections), every open connection is told to close once its current response is sent
//! (idle keep-alive connections close at once), and the requests already admitted — running or
//! queued — get the frontend's grace period to finish. When the grace period runs out, or the
//! `force` signal comes (e.g. a second SIGTERM), the guests still running are stopped: each
//! answers 503 `shutting_down` if its response had not started, and the log names how many.

use crate::frontend::{Frontend, Peer};
use crate::server::ResponseBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
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
    serve(listener, None, frontend, shutdown, force).await
}

/// As [`serve_frontend`], over TLS ([`crate::tls::server_config`]): HTTP/2 or HTTP/1.1 as the
/// client's ALPN asks. A handshake must finish within the read timeout.
pub async fn serve_frontend_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    frontend: Arc<Frontend>,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> anyhow::Result<Stopped> {
    serve(listener, Some(tokio_rustls::TlsAcceptor::from(tls)), frontend, shutdown, force).await
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
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
        let (frontend, closing) = (frontend.clone(), closing.subscribe());
        match &tls {
            None => connections.spawn(http1(frontend, stream, peer, closing)),
            Some(tls) => connections.spawn(https(frontend, tls.clone(), stream, peer, closing)),
        };
    }
    frontend.begin_draining();
    drop(listener);
    let _ = closing.send(true);
    Ok(drain(&frontend, &mut connections, force).await)
}

/// The service of one connection: each request gets the client's address and goes to
/// `frontend`.
fn service(
    frontend: Arc<Frontend>,
    peer: SocketAddr,
) -> impl hyper::service::Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible, Future: Send> + Clone {
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let frontend = frontend.clone();
        req.extensions_mut().insert(Peer(peer));
        async move { Ok::<_, Infallible>(frontend.handle(req).await) }
    })
}

/// Serves one plain connection (HTTP/1.1) until it ends, or until `closing` turns true: then
/// it closes after the response in progress.
async fn http1(frontend: Arc<Frontend>, stream: TcpStream, peer: SocketAddr, closing: watch::Receiver<bool>) {
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(frontend.read_timeout)
        .serve_connection(TokioIo::new(stream), service(frontend, peer));
    until_closed(connection, peer, closing).await;
}

/// Serves one TLS connection: the handshake, then HTTP/2 or HTTP/1.1 by ALPN; closes as
/// [`http1`] does.
async fn https(frontend: Arc<Frontend>, tls: tokio_rustls::TlsAcceptor, stream: TcpStream, peer: SocketAddr, closing: watch::Receiver<bool>) {
    let stream = match tokio::time::timeout(frontend.read_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().keep_alive(true).timer(TokioTimer::new()).header_read_timeout(frontend.read_timeout);
    builder.http2().timer(TokioTimer::new());
    until_closed(builder.serve_connection(TokioIo::new(stream), service(frontend, peer)), peer, closing).await;
}

/// Drives `connection` until it ends, or until `closing` turns true: then it closes after the
/// response in progress (idle at once).
async fn until_closed<C>(connection: C, peer: SocketAddr, mut closing: watch::Receiver<bool>)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
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
