//! The operator's routes the component answers on every host: `GET /ready` and
//! `GET /openapi.json`. (`GET /health` is a constant in the router; our host answers
//! `/health`, `/ready` and `/metrics` itself, before any instance starts.)

use serde_json::json;

use crate::config::Config;
use crate::http::message::Reply;
use crate::nn::Engine;

/// The OpenAPI 3.1 document of every route (tests/python/test_openapi.py checks it against
/// the live server).
const OPENAPI: &str = include_str!("../openapi.json");

pub fn openapi() -> Reply {
    Reply::full(200, "application/json", OPENAPI.as_bytes().to_vec())
}

/// 200 once the default model's graphs can be opened through wasi-nn, else 503 with a retry
/// time: on a stock host the provider holds the graphs from the start; a host loading them
/// later answers 503 until they are there.
pub fn ready(config: &Config, engine: &mut dyn Engine) -> Reply {
    if engine.has_model(&config.default_model) {
        Reply::json(200, &json!({"status": "ready", "model": config.default_model}))
    } else {
        Reply::json(503, &json!({"status": "unavailable", "model": config.default_model}))
            .with_header("retry-after", "5")
    }
}
