//! Whisper speech-to-text as a WASI HTTP component.
//!
//! A request's audio is decoded, resampled and turned into a log-mel spectrogram inside the
//! sandbox; the network runs in the host behind wasi:nn. The stages hand typed values to
//! each other: bytes → `audio::Pcm16k` → `mel::LogMel` → `transcribe::Transcript` → JSON.
//! Everything but the wasm glue below (and `wasi_nn`) also builds natively for tests.

pub mod audio;
pub mod config;
pub mod decode;
pub mod diarize;
pub mod error;
pub mod form;
/// Entry points for `fuzz/` (cargo-fuzz) and its seed/regression test; not an API.
#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod live;
pub mod mel;
pub mod model;
pub mod nn;
pub mod output;
pub mod tokenizer;
pub mod transcribe;
pub mod vad;
pub mod words;

#[cfg(target_arch = "wasm32")]
mod wasi_nn;

#[cfg(target_arch = "wasm32")]
mod component {
    use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
    use spin_sdk::http_component;

    use crate::config::Config;
    use crate::http::{self, Body, HttpRequest, Reply};
    use crate::error::Error;
    use spin_sdk::wit::wasi::http0_2_0::types::{http_error_code, ErrorCode, IncomingBody};
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasi_io::io::streams::{InputStream, StreamError};

    #[http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let method = req.method().to_string();
        let path_with_query = req.path_with_query().unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> = req
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        // The body is read when the route needs it: whole for a form, piece by piece for a
        // live upload (`http::api::live`), which is transcribed while it arrives.
        let announced = headers_len(&headers);
        let (body, open) = match body_stream(req) {
            Ok(body) => body,
            Err(e) => {
                let reply = http::error_reply(&e);
                return send(reply, out);
            }
        };
        let request = HttpRequest { method, path_with_query, headers, body };
        let reply = http::handle(request, &Config::from_env(), &mut crate::wasi_nn::WasiNnEngine).await;
        if let Reply::Full { .. } = reply {
            drain_unread(&open, announced);
        }
        send(reply, out);
    }

    /// The request's stream and its body while unread to the end (the stream is a child of
    /// the body: dropped first, as tuple fields drop in order).
    type OpenBody = Rc<RefCell<Option<(InputStream, IncomingBody)>>>;

    /// Bodies a refusal still reads to the end (see [`drain_unread`]).
    const DRAIN_LIMIT: u64 = 64 << 20;

    fn headers_len(headers: &[(String, String)]) -> Option<u64> {
        let (_, v) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length"))?;
        v.trim().parse().ok()
    }

    /// A reply sent before the body was read to its end (a 401, 404 or 405 from the head, a
    /// 400 from the first bytes): stock hosts close such a connection, so a client that sends
    /// its whole body before it reads (Python's http.client, the OpenAI SDK, ureq) would see a
    /// broken pipe instead of the reply. A body that announced its length, up to
    /// [`DRAIN_LIMIT`], is read and dropped first, as nginx's lingering close does; chunked
    /// uploads (live ones may never end) and larger bodies are not.
    fn drain_unread(open: &OpenBody, announced: Option<u64>) {
        let Some(len) = announced.filter(|&n| n <= DRAIN_LIMIT) else { return };
        let Some((stream, body)) = open.borrow_mut().take() else { return };
        let mut read = 0u64;
        while read < len {
            match stream.blocking_read(64 * 1024) {
                Ok(piece) => read += piece.len() as u64,
                Err(_) => break,
            }
        }
        drop(stream);
        let _ = IncomingBody::finish(body);
    }

    /// The request body as a [`Body::Stream`] of blocking reads, and its handle while unread.
    fn body_stream(req: IncomingRequest) -> Result<(Body, OpenBody), Error> {
        let body = req.consume().map_err(|()| Error::bad_request("the request body was already read"))?;
        let stream = body.stream().map_err(|()| Error::bad_request("the request body cannot be read"))?;
        let open: OpenBody = Rc::new(RefCell::new(Some((stream, body))));
        let reading = open.clone();
        let next = move || -> Result<Option<Vec<u8>>, Error> {
            let mut slot = reading.borrow_mut();
            let Some((stream, _)) = slot.as_ref() else { return Ok(None) };
            match stream.blocking_read(64 * 1024) {
                Ok(piece) => Ok(Some(piece)),
                Err(StreamError::Closed) => {
                    if let Some((stream, body)) = slot.take() {
                        drop(stream);
                        let _ = IncomingBody::finish(body);
                    }
                    Ok(None)
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    *slot = None;
                    Err(read_error(http_error_code(&e), e.to_debug_string()))
                }
            }
        };
        Ok((Body::Stream(Box::new(next)), open))
    }

    /// What a failed body read says: the host's limits by name. Hosts differ in how they
    /// report them: wasi:http's error code when the host attaches one, else its message
    /// (wasmtime-wasi-http 48 gives "connection read timeout" without a code).
    fn read_error(code: Option<ErrorCode>, debug: String) -> Error {
        let message = debug.lines().next().unwrap_or_default().to_string();
        let lower = message.to_ascii_lowercase();
        match code {
            Some(ErrorCode::HttpRequestBodySize(Some(n))) => {
                Error::TooLarge(format!("the request body is larger than the {n} byte limit"))
            }
            Some(ErrorCode::HttpRequestBodySize(None)) => Error::TooLarge("the request body is larger than the host allows".into()),
            _ if lower.contains("body size") || lower.contains("too large") => {
                Error::TooLarge(format!("the request body is larger than the host allows ({message})"))
            }
            Some(ErrorCode::ConnectionReadTimeout) => stalled(),
            _ if lower.contains("read timeout") => stalled(),
            _ => Error::bad_request(format!("the request body could not be read: {message}")),
        }
    }

    fn stalled() -> Error {
        Error::bad_request("the request body stalled: nothing was received for longer than the host waits")
    }

    fn send(reply: Reply, out: ResponseOutparam) {
        let mut headers = vec![("content-type".to_owned(), reply.content_type().as_bytes().to_vec())];
        headers.extend(reply.headers().iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())));
        if let Reply::Stream { .. } = reply {
            headers.push(("cache-control".to_owned(), b"no-cache".to_vec()));
        }
        let status = reply.status();
        let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(fields);
        let _ = response.set_status_code(status);
        let Ok(body) = response.body() else { return };
        out.set(response);
        // Blocking writes: the token loop is synchronous (wasi-nn calls block), so a stream's
        // chunks are written as segments are decoded, from inside the loop.
        {
            let Ok(stream) = body.write() else { return };
            let mut write = |bytes: &[u8]| {
                for chunk in bytes.chunks(4096) {
                    if stream.blocking_write_and_flush(chunk).is_err() {
                        return;
                    }
                }
            };
            match reply {
                Reply::Full { body, .. } => write(&body),
                Reply::Stream { job, .. } => job(&mut write),
            }
        }
        let _ = spin_sdk::http::OutgoingBody::finish(body, None);
    }
}
