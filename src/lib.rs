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
    use crate::http::{self, HttpRequest, Reply};

    #[http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let method = req.method().to_string();
        let path_with_query = req.path_with_query().unwrap_or_else(|| "/".into());
        let headers = req
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let reply = match req.into_body().await {
            Ok(body) => {
                let request = HttpRequest { method, path_with_query, headers, body };
                http::handle(request, &Config::from_env(), &mut crate::wasi_nn::WasiNnEngine).await
            }
            Err(e) => http::error_reply(&crate::error::Error::bad_request(format!("could not read the request body: {e:?}"))),
        };
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
