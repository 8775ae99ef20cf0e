//! HTTP in, HTTP out: the only module that knows status codes. Imports run one way:
//! `router` → `api/*` → {`message`, `error`, `request`}.
//!
//! - `message`: the request and reply as plain types (natively testable; `lib.rs` adapts them
//!   to wasi:http);
//! - `error`: the one status table, for JSON replies and SSE events;
//! - `request`: options from the form and query string, and the audio prepared per file;
//! - `router`: routes and the API key;
//! - `api/`: the seed's `POST /`, OpenAI's `/v1/*`, the page and its assets, health, readiness
//!   and the OpenAPI document.

mod api;
mod error;
mod message;
mod request;
mod router;

pub use error::{error_object, error_reply};
pub use message::{Body, BodyStream, HttpRequest, Reply, StreamJob};

use crate::config::Config;
use crate::nn::Engine;

/// Handles one request; never fails: errors become error replies. Every reply carries
/// `x-route`, the route template it matched.
pub async fn handle(req: HttpRequest, config: &Config, engine: &mut dyn Engine) -> Reply {
    let (route, result) = router::route(req, config, engine).await;
    match result {
        Ok(reply) => reply,
        Err(e) => error_reply(&e),
    }
    .with_header("x-route", route)
}
