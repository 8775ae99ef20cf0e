//! Lingering close, as nginx's `lingering_close`: a refusal sent from the request head (401,
//! 413, 429, 503) leaves the body unread, and a connection closed with unread bytes in it is
//! reset, so a client that sends its whole body before it reads the reply (Python's
//! http.client, the OpenAI SDKs, ureq) saw a broken pipe instead of the refusal. The body is
//! read and dropped in the background while the reply goes out — nothing is kept, no guest
//! runs — until it ends, the client goes away, [`LINGER_BYTES`] have been read or
//! [`LINGER_TIME`] has passed; then hyper closes the connection as the reply asked.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The most a refused body is read for.
pub const LINGER_TIME: Duration = Duration::from_secs(10);
/// The most of a refused body that is read (the default body limit's size, and a little more).
pub const LINGER_BYTES: u64 = 32 << 20;

/// Reads `body` to its end in the background and drops every byte (see the module's note).
pub fn discard(mut body: Incoming) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let drain = async {
            let mut read = 0u64;
            while read < LINGER_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Some(Err(_)) | None => break,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}
