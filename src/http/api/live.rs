//! Transcribe while uploading: `POST /v1/audio/transcriptions?stream=true` (or
//! `/translations`) with a raw `audio/wav` or `audio/L16;rate=…` body of unknown length, sent
//! with chunked transfer encoding from a live source (`arecord -f S16_LE -r 16000 | curl -T - …`).
//! The reply is Server-Sent Events as in `openai`, but each window is decoded as soon as the
//! speaker pauses (`live`), while the rest of the body is still arriving; `transcript.text.done`
//! follows the end of the body. Options come from the query string (there is no form).

use serde_json::{json, Value};

use super::openai::{done_event, granularities, segment_events};
use crate::audio::live::{LiveDecoder, MEDIA_TYPES};
use crate::config::Config;
use crate::decode::Task;
use crate::error::Error;
use crate::form::Form;
use crate::http::error::error_object;
use crate::http::message::{Body, HttpRequest, Reply};
use crate::http::request;
use crate::live::Live;
use crate::nn::Engine;

/// Whether the request is a live upload: `stream=true` in the query and a body of unknown
/// length (chunked: still being recorded) of a type [`LiveDecoder`] reads as it arrives. A file
/// whose length is known is transcribed whole (`openai`), with Whisper's own long-form seeking.
pub fn is_live(req: &HttpRequest) -> bool {
    if req.header("content-length").is_some() {
        return false;
    }
    let streamed = req.query().iter().rev().find(|(k, _)| k == "stream").is_some_and(|(_, v)| matches!(request::parse_bool("stream", v), Ok(true)));
    streamed && req.media_type().is_some_and(|t| MEDIA_TYPES.contains(&t.as_str()))
}

pub fn transcription(mut req: HttpRequest, task: Task, config: &Config, engine: &mut dyn Engine) -> Result<Reply, Error> {
    let query = req.query();
    let form = Form::default();
    let (model_name, mut opts) = request::common_options(&form, &query, config)?;
    opts.task = task;
    let (g, with_segments) = granularities(&form, &query)?;
    opts.word_timestamps = g.word;
    match request::option(&form, &query, "response_format").as_deref() {
        None | Some("" | "json" | "text") => {}
        Some(other) => {
            return Err(Error::bad_param(
                "response_format",
                format!("a live upload (stream=true) answers with Server-Sent Events; response_format '{other}' needs the whole file sent as a form"),
            ))
        }
    }
    if request::wants_diarization(&form, &query)? {
        return Err(Error::bad_param("diarize", "diarization needs the whole audio: send the file as a form, without stream=true"));
    }
    if request::option(&form, &query, "batch_size").is_some() {
        return Err(Error::bad_param("batch_size", "a live upload is decoded window by window as it arrives; batch_size is for a whole file sent as a form"));
    }
    let vad = request::Vad::open(request::vad_mode(&form, &query)?, engine, &opts)?.into_live();
    let (model, mut nn) = engine.open(&model_name)?;
    crate::transcribe::check_options(&model, &opts)?;

    let content_type = req.header("content-type").unwrap_or_default().to_string();
    let mut decoder = LiveDecoder::new(&content_type, config.max_audio_seconds).map_err(Error::from)?;
    // Read up to the first samples before answering, so a body that is not the audio it says
    // is a 4xx (and a client waiting on `Expect: 100-continue` is told to go on).
    let mut samples = Vec::new();
    let mut ended = false;
    while !decoder.started() {
        match read(&mut req.body)? {
            Some(piece) => decoder.push(&piece, &mut samples).map_err(Error::from)?,
            None => {
                ended = true;
                break;
            }
        }
    }
    let job = Box::new(move |write: &mut dyn FnMut(&[u8])| {
        let mut emit = |v: Value| write(format!("data: {v}\n\n").as_bytes());
        let mut live = Live::new(nn.as_mut(), &model, opts, vad);
        let mut on_segment = |seg: &crate::transcribe::Segment| segment_events(seg, with_segments, g.word).into_iter().for_each(&mut emit);
        let result = (|| {
            live.push(&std::mem::take(&mut samples), &mut on_segment)?;
            while !ended {
                match read(&mut req.body)? {
                    Some(piece) => {
                        decoder.push(&piece, &mut samples).map_err(Error::from)?;
                        live.push(&std::mem::take(&mut samples), &mut on_segment)?;
                    }
                    None => ended = true,
                }
            }
            decoder.finish(&mut samples).map_err(Error::from)?;
            live.push(&samples, &mut on_segment)?;
            live.finish(&mut on_segment)
        })();
        match result {
            Ok(t) => emit(done_event(&t, with_segments)),
            Err(e) => emit(json!({"type": "error", "error": error_object(&e).1})),
        }
    });
    Ok(Reply::Stream { content_type: "text/event-stream", headers: Vec::new(), job })
}

fn read(body: &mut Body) -> Result<Option<Vec<u8>>, Error> {
    body.next_chunk()
}
