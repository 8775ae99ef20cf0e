//! Whisper speech-to-text as a WASI HTTP component.
//!
//! A request's audio is decoded, resampled and turned into a log-mel spectrogram inside the
//! sandbox; the network runs in the host behind wasi:nn. The stages hand typed values to
//! each other: bytes → `audio::Pcm16k` → `mel::LogMel` → `transcribe::Transcript` → JSON.
//! Everything but the wasm glue below (and `wasi_nn`) also builds natively for tests.

pub mod audio;
pub mod config;
pub mod decode;
pub mod error;
pub mod form;
pub mod http;
pub mod mel;
pub mod model;
pub mod nn;
pub mod tokenizer;
pub mod transcribe;

#[cfg(target_arch = "wasm32")]
mod wasi_nn;

#[cfg(target_arch = "wasm32")]
mod component {
    use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
    use spin_sdk::http_component;

    use crate::config::Config;
    use crate::http::{self, HttpRequest};

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
        let fields = Fields::from_list(&[("content-type".to_owned(), reply.content_type.as_bytes().to_vec())])
            .expect("static header is valid");
        let response = OutgoingResponse::new(fields);
        let _ = response.set_status_code(reply.status);
        let _ = out.set_with_body(response, reply.body).await;
    }
}
