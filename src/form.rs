//! Request bodies → typed parts: multipart/form-data (files and text fields, in order) or a
//! raw audio body. Caps on the number and size of parts are checked here, before any audio
//! is decoded. Multipart parsing is `multer` over the in-memory body.

use crate::error::Error;

/// One uploaded file: the form field's name (the seed's `filename`), the client's file name
/// and content type if it sent them, and the bytes.
#[derive(Debug, Clone)]
pub struct FilePart {
    pub field: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Form {
    pub files: Vec<FilePart>,
    /// Text fields in order (`language=de`, `timestamp_granularities[]=word`, …).
    pub fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    pub max_files: usize,
    pub max_fields: usize,
    pub max_field_bytes: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        Self { max_files: 16, max_fields: 64, max_field_bytes: 64 * 1024 }
    }
}

impl Form {
    /// Values of a text field (several for repeated names such as `timestamp_granularities[]`).
    pub fn field_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A known speaker's reference (`known_speaker_references[]`) is a data URL of up to 10 s of
/// audio: it may be this large (a 10 s 48 kHz stereo WAV is 2.6 MB in base64), other fields not.
pub const MAX_REFERENCE_FIELD_BYTES: usize = 4 * 1024 * 1024;

/// Text fields the APIs read, so an error about one names it as its `param`.
const OPTION_FIELDS: [&str; 21] = [
    "model", "language", "task", "prompt", "initial_prompt", "response_format", "temperature", "beam_size",
    "timestamps", "stream", "without_timestamps", "timestamp_granularities[]", "timestamp_granularities",
    "diarize", "num_speakers", "min_speakers", "max_speakers", "known_speaker_names[]", "known_speaker_names",
    "known_speaker_references[]", "known_speaker_references",
];

/// Parses a request body by its content type.
pub async fn parse(content_type: Option<&str>, body: Vec<u8>, limits: FormLimits) -> Result<Form, Error> {
    let ct = content_type.unwrap_or("").trim();
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "multipart/form-data" {
        let boundary = multer::parse_boundary(ct)
            .map_err(|e| Error::bad_request(format!("malformed multipart/form-data content type: {e}")))?;
        return parse_multipart(body, &boundary, limits).await;
    }
    if mime.starts_with("audio/") || mime.starts_with("video/") || mime == "application/octet-stream" {
        if body.is_empty() {
            return Err(Error::bad_request("the request body is empty: send audio bytes or a multipart form with a file"));
        }
        return Ok(Form {
            files: vec![FilePart { field: "file".into(), file_name: None, content_type: Some(mime), data: body }],
            fields: Vec::new(),
        });
    }
    if body.is_empty() {
        return Err(Error::bad_request(
            "no audio: send multipart/form-data with a file field (curl -F file=@audio.mp3) or a raw audio body",
        ));
    }
    Err(Error::UnsupportedMedia(format!(
        "unsupported content type '{}': send multipart/form-data or an audio/* body",
        if ct.is_empty() { "(none)" } else { ct }
    )))
}

async fn parse_multipart(body: Vec<u8>, boundary: &str, limits: FormLimits) -> Result<Form, Error> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes::Bytes::from(body)) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    let malformed = |e: multer::Error| Error::bad_request(format!("malformed multipart body: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.essence_str().to_string());
        if file_name.is_some() {
            if form.files.len() == limits.max_files {
                return Err(Error::bad_request(format!(
                    "too many files: at most {} per request",
                    limits.max_files
                )));
            }
            let data = field.bytes().await.map_err(malformed)?.to_vec();
            let field = if name.is_empty() { "file".to_string() } else { name };
            form.files.push(FilePart { field, file_name, content_type, data });
        } else {
            if form.fields.len() == limits.max_fields {
                return Err(Error::bad_request(format!("too many form fields: at most {}", limits.max_fields)));
            }
            let data = field.bytes().await.map_err(malformed)?;
            let cap = if name.starts_with("known_speaker_references") { MAX_REFERENCE_FIELD_BYTES } else { limits.max_field_bytes };
            if data.len() > cap {
                return Err(Error::TooLarge(format!(
                    "form field '{name}' is {} bytes; at most {} are accepted",
                    data.len(),
                    cap
                )));
            }
            let value = String::from_utf8(data.to_vec()).map_err(|_| {
                let param = OPTION_FIELDS.iter().copied().find(|f| *f == name).unwrap_or("form");
                Error::bad_param(param, format!("form field '{name}' is not valid UTF-8"))
            })?;
            form.fields.push((name, value));
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The body is in memory, so every poll is ready: a no-op waker suffices.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
        let b = "XyZboundary";
        let mut body = Vec::new();
        for (name, file, data) in parts {
            body.extend_from_slice(format!("--{b}\r\n").as_bytes());
            match file {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={b}"), body)
    }

    #[test]
    fn files_keep_their_field_names_and_order() {
        let (ct, body) = multipart(&[("file", Some("a.mp3"), b"AAA"), ("language", None, b"de"), ("other", Some("b.mp3"), b"BB")]);
        let form = block_on(parse(Some(&ct), body, FormLimits::default())).unwrap();
        let names: Vec<_> = form.files.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["file", "other"]);
        assert_eq!(form.files[1].data, b"BB");
        assert_eq!(form.files[0].file_name.as_deref(), Some("a.mp3"));
        assert_eq!(form.field_values("language").collect::<Vec<_>>(), ["de"]);
    }

    #[test]
    fn raw_audio_body_is_one_file() {
        let form = block_on(parse(Some("audio/wav"), b"RIFF".to_vec(), FormLimits::default())).unwrap();
        assert_eq!(form.files.len(), 1);
        assert_eq!(form.files[0].field, "file");
    }

    #[test]
    fn bad_bodies_are_client_errors() {
        let lim = FormLimits::default();
        assert!(matches!(block_on(parse(None, vec![], lim)), Err(Error::BadRequest { .. })));
        assert!(matches!(block_on(parse(Some("text/plain"), b"hi".to_vec(), lim)), Err(Error::UnsupportedMedia(_))));
        assert!(matches!(block_on(parse(Some("multipart/form-data"), b"x".to_vec(), lim)), Err(Error::BadRequest { .. })));
        let (ct, _) = multipart(&[]);
        assert!(matches!(block_on(parse(Some(&ct), b"--nope\r\ngarbage".to_vec(), lim)), Err(Error::BadRequest { .. })));
        let (ct, body) = multipart(&[("prompt", None, b"a\xffb"), ("other", None, b"\xfe")]);
        let err = block_on(parse(Some(&ct), body, lim)).unwrap_err();
        assert!(matches!(&err, Error::BadRequest { param: Some("prompt"), .. }), "{err}");
        assert!(err.to_string().contains("'prompt' is not valid UTF-8"), "{err}");
        let many: Vec<(&str, Option<&str>, &[u8])> = (0..20).map(|_| ("f", Some("x.wav"), &b"1"[..])).collect();
        let (ct, body) = multipart(&many);
        let err = block_on(parse(Some(&ct), body, lim)).unwrap_err();
        assert!(err.to_string().contains("too many files"), "{err}");
    }
}
