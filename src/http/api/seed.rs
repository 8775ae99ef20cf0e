//! `POST /`: the seed's API. Every file part is transcribed in order; each result is named by
//! its form field: `{"results":[{"filename":"file","transcript":"…"}, …]}`, plus `language`,
//! `language_probability`, `duration`, and `segments` with `timestamps=true`. `diarize=true`
//! (or known speakers, as on OpenAI's route) adds `speaker` to every segment (and lists the
//! segments even without `timestamps`).

use serde_json::{json, Value};

use crate::config::Config;
use crate::error::Error;
use crate::http::message::{HttpRequest, Reply};
use crate::http::request;
use crate::nn::Engine;
use crate::output::round;
use crate::transcribe::{self, Transcript};

pub async fn transcribe_files(req: HttpRequest, config: &Config, engine: &mut dyn Engine) -> Result<Reply, Error> {
    let (form, query) = request::read_form(req, config).await?;
    let (model_name, mut opts) = request::common_options(&form, &query, config)?;
    let diarizing = request::wants_diarization(&form, &query)?;
    opts.word_timestamps |= diarizing;
    let vad_mode = request::vad_mode(&form, &query)?;
    request::long_form(&form, &query, &vad_mode, &mut opts)?;
    let timestamps = match request::option(&form, &query, "timestamps") {
        Some(v) => request::parse_bool("timestamps", &v)?,
        None => false,
    };
    let (model, mut nn) = engine.open(&model_name)?;
    transcribe::check_options(&model, &opts)?;
    let mut diarizer = if diarizing { Some(request::Diarizer::open(&form, &query, "diarize", engine)?) } else { None };
    let mut vad = request::Vad::open(vad_mode, engine, &opts)?;
    let mut results = Vec::with_capacity(form.files.len());
    let mut seconds = 0.0;
    for file in &form.files {
        let audio = request::prepare_audio(file, &model, config, &mut vad, diarizing)?;
        seconds += audio.duration;
        let transcript = audio.transcribe(nn.as_mut(), &model, &opts, &mut |_| {})?;
        match diarizer.as_mut() {
            Some(d) => {
                let (t, speakers) = d.run(&audio, transcript)?;
                let mut v = result_json(&file.field, &t, true);
                for (s, who) in v["segments"].as_array_mut().into_iter().flatten().zip(&speakers.segments) {
                    s["speaker"] = who.as_str().into();
                }
                results.push(v);
            }
            None => results.push(result_json(&file.field, &transcript, timestamps)),
        }
    }
    Ok(Reply::json(200, &json!({ "results": results })).with_header("x-audio-duration", format!("{seconds:.3}")))
}

fn result_json(field: &str, t: &Transcript, timestamps: bool) -> Value {
    let mut v = json!({
        "filename": field,
        "transcript": t.text.trim(),
        "language": t.language,
        "language_probability": round(t.language_probability, 4),
        "duration": round(t.duration, 3),
    });
    if timestamps {
        v["segments"] = t
            .segments
            .iter()
            .map(|s| json!({"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.trim()}))
            .collect();
    }
    v
}
