//! CORS for browser clients on other origins (`--cors-origin`, off by default). The host answers
//! preflights itself — no key, no body, no slot, no guest — and adds the CORS headers to the
//! responses of allowed origins. Off, nothing changes: same-origin pages (the component's own)
//! need none of it.

use crate::server::{json_error, ResponseBody};
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use hyper::{Method, Request, Response, StatusCode};

/// Headers a page may send: the key, the upload's type, and its own request id.
const ALLOW_HEADERS: &str = "authorization, content-type, x-api-key, x-request-id";
/// Headers a page may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "x-request-id, retry-after, server-timing, x-audio-duration, x-route";
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";

/// The allowed origins.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    any: bool,
    origins: Vec<String>,
}

impl Cors {
    /// `*` allows every origin; otherwise exact origins (`scheme://host[:port]`, no trailing `/`).
    pub fn new(origins: &[String]) -> Self {
        let any = origins.iter().any(|o| o.trim() == "*");
        let origins = origins.iter().map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty() && o != "*").collect();
        Self { any, origins }
    }

    pub fn is_enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    fn allow(&self, origin: &str) -> Option<HeaderValue> {
        if self.any {
            Some(HeaderValue::from_static("*"))
        } else if self.origins.iter().any(|o| o == origin) {
            HeaderValue::from_str(origin).ok()
        } else {
            None
        }
    }

    /// The answer to a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), or `None` for any other request or when CORS is off.
    pub fn preflight<B>(&self, req: &Request<B>) -> Option<Response<ResponseBody>> {
        if !self.is_enabled() || req.method() != Method::OPTIONS || !req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok())?;
        let Some(allowed) = self.allow(origin) else {
            let mut response = json_error(StatusCode::FORBIDDEN, "invalid_request_error", "origin_not_allowed", "this origin may not call the API (see --cors-origin)");
            response.headers_mut().insert(VARY, HeaderValue::from_static("Origin"));
            return Some(response);
        };
        let mut response = Response::new(crate::frontend::body(String::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        headers.insert(VARY, HeaderValue::from_static("Origin"));
        Some(response)
    }

    /// Adds the CORS headers to the response to a request from `origin`, if it is allowed.
    pub fn decorate<B>(&self, origin: Option<&HeaderValue>, response: &mut Response<B>) {
        if !self.is_enabled() {
            return;
        }
        let headers = response.headers_mut();
        headers.append(VARY, HeaderValue::from_static("Origin"));
        let Some(allowed) = origin.and_then(|o| o.to_str().ok()).and_then(|o| self.allow(o)) else { return };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight(origin: &str) -> Request<()> {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/audio/transcriptions")
            .header(ORIGIN, origin)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(())
            .unwrap()
    }

    #[test]
    fn preflights_and_headers() {
        let cors = Cors::new(&["https://app.example.com/".into()]);
        let ok = cors.preflight(&preflight("https://app.example.com")).unwrap();
        assert_eq!(ok.status(), 204);
        assert_eq!(ok.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert!(ok.headers()[ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().contains("authorization"));
        assert_eq!(cors.preflight(&preflight("https://evil.example")).unwrap().status(), 403);
        let plain = Request::builder().method("OPTIONS").uri("/").body(()).unwrap();
        assert!(cors.preflight(&plain).is_none());
        assert!(Cors::default().preflight(&preflight("https://app.example.com")).is_none());

        let mut response = Response::new(());
        cors.decorate(Some(&HeaderValue::from_static("https://app.example.com")), &mut response);
        assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert!(response.headers()[ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap().contains("x-request-id"));
        let mut response = Response::new(());
        cors.decorate(Some(&HeaderValue::from_static("https://evil.example")), &mut response);
        assert!(response.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let any = Cors::new(&["*".into()]);
        assert_eq!(any.preflight(&preflight("https://x.example")).unwrap().headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
