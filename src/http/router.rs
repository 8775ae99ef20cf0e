//! Routes and the API key. Every reply names its route in `x-route` (a fixed set of templates,
//! so a host may label metrics by it without unbounded label values).

use serde_json::json;

use super::api::{live, meta, openai, page, seed};
use super::message::{HttpRequest, Reply};
use crate::config::Config;
use crate::decode::Task;
use crate::error::Error;
use crate::nn::Engine;

/// The route template a request matched (`unmatched` when none did) and its result.
pub async fn route(req: HttpRequest, config: &Config, engine: &mut dyn Engine) -> (&'static str, Result<Reply, Error>) {
    let path = req.path().trim_end_matches('/').to_string();
    let method = req.method.clone();
    let only = |allowed: &'static str| {
        if method == allowed { Ok(()) } else { Err(Error::MethodNotAllowed { method: method.clone(), allowed }) }
    };
    let get = || only("GET");
    let post = || only("POST");
    match path.as_str() {
        "" if method == "GET" && req.wants_html() => ("/", Ok(page::index())),
        "" => ("/", async { post()?; check_api_key(&req, config)?; seed::transcribe_files(req, config, engine).await }.await),
        "/v1/audio/transcriptions" | "/v1/audio/translations" => {
            let (template, task) = if path.ends_with("translations") {
                ("/v1/audio/translations", Task::Translate)
            } else {
                ("/v1/audio/transcriptions", Task::Transcribe)
            };
            (template, async {
                post()?;
                check_api_key(&req, config)?;
                if live::is_live(&req) {
                    return live::transcription(req, task, config, engine);
                }
                openai::transcription(req, task, config, engine).await
            }
            .await)
        }
        "/v1/models" => ("/v1/models", get().and_then(|()| check_api_key(&req, config)).map(|()| Reply::json(200, &openai::models(config, engine)))),
        "/health" => ("/health", get().map(|()| Reply::json(200, &json!({"status": "ok"})))),
        "/ready" => ("/ready", get().map(|()| meta::ready(config, engine))),
        "/openapi.json" => ("/openapi.json", get().map(|()| meta::openapi())),
        p if p.starts_with(page::ASSETS) => match page::asset(p) {
            Some(reply) => ("/assets", get().map(|()| reply)),
            None => ("unmatched", Err(Error::NotFound { method: method.clone(), path: req.path().to_string() })),
        },
        _ => ("unmatched", Err(Error::NotFound { method: method.clone(), path: req.path().to_string() })),
    }
}

/// The API key rule (the `api-keys` crate, as whisper-host applies it before reading a body).
fn check_api_key(req: &HttpRequest, config: &Config) -> Result<(), Error> {
    let keys = config.api_keys.as_ref().map_err(|e| Error::Internal(format!("WHISPER_API_KEY is invalid: {e}")))?;
    let query = req.path_with_query.split_once('?').map(|(_, q)| q);
    if keys.check(api_keys::presented(|name| req.header(name), query).as_deref()).is_allowed() {
        Ok(())
    } else {
        Err(Error::Unauthorized)
    }
}
