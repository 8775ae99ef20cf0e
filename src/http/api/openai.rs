//! OpenAI's audio API: `POST /v1/audio/transcriptions`, `POST /v1/audio/translations`
//! (multipart: `file`, `model`, `language`, `prompt`, `response_format`, `temperature`,
//! `timestamp_granularities[]`, `stream`, `chunking_strategy`, and ours such as `vad_filter`)
//! and `GET /v1/models`.

use serde_json::{json, Value};

use crate::config::Config;
use crate::decode::Task;
use crate::error::Error;
use crate::http::error::error_object;
use crate::http::message::{HttpRequest, Reply};
use crate::http::request;
use crate::nn::Engine;
use crate::output::{self, Granularities, OutputFormat};
use crate::form::Form;
use crate::transcribe::{self, Segment, Transcript};

/// Model names `GET /v1/models` looks for when `WHISPER_MODELS` does not list them: wasi-nn
/// has no way to enumerate a host's graphs, so the component asks for each by name.
const KNOWN_MODELS: [&str; 12] = [
    "tiny", "tiny.en", "base", "base.en", "base-int8", "tiny.en-int8", "small", "small.en", "medium", "medium.en",
    "large-v2", "large-v3",
];

pub fn models(config: &Config, engine: &mut dyn Engine) -> Value {
    let candidates: Vec<String> = match &config.models {
        Some(list) => list.clone(),
        None => KNOWN_MODELS.iter().map(|s| s.to_string()).collect(),
    };
    let mut data: Vec<Value> = candidates
        .into_iter()
        .filter(|m| engine.has_model(m))
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "whisper-edge"}))
        .collect();
    if engine.has_model(&config.default_model) {
        data.push(json!({"id": "whisper-1", "object": "model", "created": 0, "owned_by": "whisper-edge"}));
    }
    json!({"object": "list", "data": data})
}

/// `timestamp_granularities[]` (form or query) and whether it was given at all.
pub(super) fn granularities(form: &Form, query: &[(String, String)]) -> Result<(Granularities, bool), Error> {
    let mut given: Vec<String> = form
        .field_values("timestamp_granularities[]")
        .chain(form.field_values("timestamp_granularities"))
        .map(str::to_string)
        .collect();
    given.extend(query.iter().filter(|(k, _)| k.starts_with("timestamp_granularities")).map(|(_, v)| v.clone()));
    if given.is_empty() {
        return Ok((Granularities::default(), false));
    }
    let mut g = Granularities { segment: false, word: false };
    for v in given.iter().flat_map(|v| v.split(',')).map(str::trim) {
        match v {
            "segment" => g.segment = true,
            "word" => g.word = true,
            other => {
                return Err(Error::bad_param(
                    "timestamp_granularities",
                    format!("unknown timestamp granularity '{other}': use 'segment' and/or 'word'"),
                ))
            }
        }
    }
    Ok((g, true))
}

/// The SSE events of one decoded segment: its text as OpenAI's `transcript.text.delta`, then
/// (`segments`) the segment as `transcript.text.segment`, with its words when `words`.
pub(super) fn segment_events(seg: &Segment, segments: bool, words: bool) -> Vec<Value> {
    let mut events = vec![json!({"type": "transcript.text.delta", "delta": seg.text, "logprobs": null})];
    if segments {
        let mut event = output::segment_json(seg);
        event["type"] = "transcript.text.segment".into();
        if words {
            event["words"] = output::words_json(seg.words.iter());
        }
        events.push(event);
    }
    events
}

/// `transcript.text.done`; with segment events also the language and duration.
pub(super) fn done_event(t: &Transcript, segments: bool) -> Value {
    let mut done = json!({"type": "transcript.text.done", "text": t.text.trim(), "logprobs": null});
    if segments {
        done["language"] = t.language.as_str().into();
        done["language_probability"] = output::round(t.language_probability, 4).into();
        done["duration"] = output::round(t.duration, 3).into();
    }
    done
}

pub async fn transcription(req: HttpRequest, task: Task, config: &Config, engine: &mut dyn Engine) -> Result<Reply, Error> {
    let (form, query) = request::read_form(req, config).await?;
    let get = |name: &str| request::option(&form, &query, name);
    let (model_name, mut opts) = request::common_options(&form, &query, config)?;
    let vad_mode = request::vad_mode(&form, &query)?;
    request::long_form(&form, &query, &vad_mode, &mut opts)?;
    opts.task = task;
    let format = OutputFormat::parse(&get("response_format").unwrap_or_default())?;
    let (g, granularities_given) = granularities(&form, &query)?;
    // Diarization (response_format=diarized_json, diarize=true or known speakers) splits
    // segments at words, so it always aligns words; they are listed only when asked for.
    let diarizing = format == OutputFormat::DiarizedJson || request::wants_diarization(&form, &query)?;
    if format == OutputFormat::DiarizedJson && task == Task::Translate {
        return Err(Error::bad_param("response_format", "diarized_json is for transcriptions, not translations"));
    }
    opts.word_timestamps = g.word || diarizing;
    let stream = match get("stream") {
        Some(v) => request::parse_bool("stream", &v)?,
        None => false,
    };
    let file = form
        .files
        .iter()
        .find(|f| f.field == "file")
        .ok_or_else(|| Error::bad_param("file", "the audio must be sent in the `file` field"))?;

    let (model, mut nn) = engine.open(&model_name)?;
    transcribe::check_options(&model, &opts)?;
    let mut diarizer = if diarizing {
        let param = if format == OutputFormat::DiarizedJson { "response_format" } else { "diarize" };
        Some(request::Diarizer::open(&form, &query, param, engine)?)
    } else {
        None
    };
    let mut vad = request::Vad::open(vad_mode, engine, &opts)?;
    let audio = request::prepare_audio(file, &model, config, &mut vad, diarizing)?;
    let seconds = format!("{:.3}", audio.duration);

    if stream {
        // With timestamp_granularities[] given, each segment also comes as OpenAI's
        // `transcript.text.segment` event (with its words when asked for); the done event adds
        // the language and duration. Without it the stream is exactly OpenAI's.
        // Diarized, the segment events (with `speaker`) come after the whole audio was
        // transcribed and its speakers found, before the done event.
        let with_segments = granularities_given && diarizer.is_none();
        let job = Box::new(move |write: &mut dyn FnMut(&[u8])| {
            let mut emit = |v: Value| write(format!("data: {v}\n\n").as_bytes());
            let result = audio.transcribe(nn.as_mut(), &model, &opts, &mut |seg| {
                segment_events(seg, with_segments, g.word).into_iter().for_each(&mut emit)
            });
            let result = match (result, diarizer.as_mut()) {
                (Ok(t), Some(d)) => d.run(&audio, t).map(|(t, speakers)| {
                    let diarized = output::diarized_json(&t, task, &speakers);
                    for seg in diarized["segments"].as_array().into_iter().flatten() {
                        emit(seg.clone());
                    }
                    t
                }),
                (r, _) => r,
            };
            match result {
                Ok(t) => emit(done_event(&t, with_segments)),
                Err(e) => emit(json!({"type": "error", "error": error_object(&e).1})),
            }
        });
        let reply = Reply::Stream { content_type: "text/event-stream", headers: Vec::new(), job };
        return Ok(reply.with_header("x-audio-duration", seconds));
    }

    let transcript = audio.transcribe(nn.as_mut(), &model, &opts, &mut |_| {})?;
    let (transcript, speakers) = match diarizer.as_mut() {
        Some(d) => {
            let (t, s) = d.run(&audio, transcript)?;
            (t, Some(s))
        }
        None => (transcript, None),
    };
    let (body, content_type) = output::render_speakers(&transcript, format, task, g, speakers.as_ref());
    Ok(Reply::full(200, content_type, body).with_header("x-audio-duration", seconds))
}
