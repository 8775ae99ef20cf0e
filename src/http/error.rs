//! The one status table: every `Error` becomes a status and OpenAI's error object, for JSON
//! replies and SSE `error` events alike. 5xx details are logged, not sent.

use serde_json::{json, Value};

use super::message::Reply;
use crate::error::Error;

/// The status and `{"message","type","param","code"}` of an error.
pub fn error_object(e: &Error) -> (u16, Value) {
    let (status, kind, code) = match e {
        Error::BadRequest { .. } => (400, "invalid_request_error", "invalid_request"),
        Error::Unauthorized => (401, "invalid_request_error", "invalid_api_key"),
        Error::NotFound { .. } => (404, "invalid_request_error", "not_found"),
        Error::UnknownModel(_) => (404, "invalid_request_error", "model_not_found"),
        Error::MethodNotAllowed { .. } => (405, "invalid_request_error", "method_not_allowed"),
        Error::TooLarge(_) => (413, "invalid_request_error", "too_large"),
        Error::UnsupportedMedia(_) => (415, "invalid_request_error", "unsupported_media_type"),
        Error::Undecodable(_) => (422, "invalid_request_error", "undecodable_audio"),
        Error::Inference(_) | Error::Internal(_) => (500, "server_error", "internal_error"),
    };
    let message = if status >= 500 {
        eprintln!("error: {e}");
        "the server failed to process the request; see its logs".to_string()
    } else {
        e.to_string()
    };
    let param = match e {
        Error::BadRequest { param, .. } => param.map(Value::from).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, json!({"message": message, "type": kind, "param": param, "code": code}))
}

/// The error as a JSON reply: `{"error": {…}}` with its status (and `Allow` on a 405).
pub fn error_reply(e: &Error) -> Reply {
    let (status, error) = error_object(e);
    let reply = Reply::json(status, &json!({ "error": error }));
    match e {
        Error::MethodNotAllowed { allowed, .. } => reply.with_header("allow", *allowed),
        _ => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_status_and_openai_shape() {
        let r = error_reply(&Error::bad_param("language", "unknown language 'xx'"));
        assert_eq!(r.status(), 400);
        let Reply::Full { body, .. } = &r else { panic!() };
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["error"]["param"], "language");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let r = error_reply(&Error::Inference("onnx said no".into()));
        assert_eq!(r.status(), 500);
        let Reply::Full { body, .. } = &r else { panic!() };
        assert!(!String::from_utf8_lossy(body).contains("onnx"));
        assert_eq!(error_reply(&Error::UnsupportedMedia("opus".into())).status(), 415);
        assert_eq!(error_reply(&Error::TooLarge("big".into())).status(), 413);
        let (status, obj) = error_object(&Error::Unauthorized);
        assert_eq!((status, obj["code"].as_str()), (401, Some("invalid_api_key")));
        let r = error_reply(&Error::MethodNotAllowed { method: "POST".into(), allowed: "GET" });
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers(), &[("allow", "GET".to_string())]);
    }
}
