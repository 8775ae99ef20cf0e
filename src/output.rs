//! Rendering a transcript in OpenAI's response formats: `json`, `text`, `srt`,
//! `verbose_json`, `vtt`. SRT and VTT differ only in the header, numbering and the
//! millisecond separator (openai/whisper `whisper/utils.py` `WriteSRT`/`WriteVTT`).

use serde_json::{json, Value};

use crate::decode::Task;
use crate::diarize::Speakers;
use crate::error::Error;
use crate::tokenizer;
use crate::transcribe::{Segment, Transcript};
use crate::words::Word;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
    /// OpenAI's diarized transcript: segments with a `speaker` each.
    DiarizedJson,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "" | "json" => OutputFormat::Json,
            "text" => OutputFormat::Text,
            "srt" => OutputFormat::Srt,
            "verbose_json" => OutputFormat::VerboseJson,
            "vtt" => OutputFormat::Vtt,
            "diarized_json" => OutputFormat::DiarizedJson,
            other => {
                return Err(Error::bad_param(
                    "response_format",
                    format!("unknown response_format '{other}': use json, text, srt, verbose_json, vtt or diarized_json"),
                ))
            }
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Json | OutputFormat::VerboseJson | OutputFormat::DiarizedJson => "application/json",
            OutputFormat::Text => "text/plain; charset=utf-8",
            OutputFormat::Srt => "application/x-subrip; charset=utf-8",
            OutputFormat::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

/// What `verbose_json` includes (`timestamp_granularities[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granularities {
    pub segment: bool,
    pub word: bool,
}

impl Default for Granularities {
    fn default() -> Self {
        Granularities { segment: true, word: false }
    }
}

#[derive(Clone, Copy)]
enum Style {
    Srt,
    Vtt,
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (VTT), from seconds.
fn fmt_timestamp(seconds: f32, style: Style) -> String {
    let ms = (seconds.max(0.0) as f64 * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let sep = match style {
        Style::Srt => ',',
        Style::Vtt => '.',
    };
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

/// A cue's text: with a speaker, `<v A>text` in VTT (its voice span) and `[A] text` in SRT.
fn cue_text(text: &str, speaker: Option<&str>, style: Style) -> String {
    let text = text.trim().replace("-->", "->");
    match (speaker, style) {
        (None, _) => text,
        (Some(who), Style::Vtt) => format!("<v {}>{text}", who.replace(['<', '>', '&'], "")),
        (Some(who), Style::Srt) => format!("[{who}] {text}"),
    }
}

fn cues(t: &Transcript, style: Style, speakers: Option<&Speakers>) -> String {
    let mut out = String::new();
    if let Style::Vtt = style {
        out.push_str("WEBVTT\n\n");
    }
    for (i, seg) in t.segments.iter().enumerate() {
        if let Style::Srt = style {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            fmt_timestamp(seg.start, style),
            fmt_timestamp(seg.end, style),
            cue_text(&seg.text, speakers.and_then(|s| s.segments.get(i)).map(String::as_str), style)
        ));
    }
    out
}

/// `x` rounded to `digits` decimals, as JSON numbers are reported.
pub fn round(x: f32, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x as f64 * f).round() / f
}

pub fn render(t: &Transcript, format: OutputFormat, task: Task, g: Granularities) -> (Vec<u8>, &'static str) {
    render_speakers(t, format, task, g, None)
}

/// As [`render`], with each segment's (and word's) speaker in `verbose_json`, `srt`, `vtt` and
/// `diarized_json` when the request was diarized.
pub fn render_speakers(
    t: &Transcript,
    format: OutputFormat,
    task: Task,
    g: Granularities,
    speakers: Option<&Speakers>,
) -> (Vec<u8>, &'static str) {
    let body = match format {
        OutputFormat::Json => json!({ "text": t.text.trim() }).to_string(),
        OutputFormat::Text => format!("{}\n", t.text.trim()),
        OutputFormat::Srt => cues(t, Style::Srt, speakers),
        OutputFormat::Vtt => cues(t, Style::Vtt, speakers),
        OutputFormat::VerboseJson => with_speakers(verbose_json(t, task, g), speakers).to_string(),
        OutputFormat::DiarizedJson => diarized_json(t, task, speakers.unwrap_or(&Speakers::default())).to_string(),
    };
    (body.into_bytes(), format.content_type())
}

/// OpenAI's `diarized_json`: `{"task","duration","text","segments":[{"type":
/// "transcript.text.segment","id","start","end","speaker","text"}]}` (ids `seg_0`, `seg_1`, …).
pub fn diarized_json(t: &Transcript, task: Task, speakers: &Speakers) -> Value {
    let segments: Vec<Value> = t
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "type": "transcript.text.segment", "id": format!("seg_{i}"), "start": round(s.start, 3),
                "end": round(s.end, 3), "speaker": speakers.segments.get(i).map_or("A", String::as_str),
                "text": s.text.trim(),
            })
        })
        .collect();
    json!({"task": task.as_str(), "duration": round(t.duration, 3), "text": t.text.trim(), "segments": segments})
}

/// `verbose_json` with `speaker` on every segment and word, and `speaker_turns` (who spoke when,
/// from the voices alone, also where nothing was transcribed).
fn with_speakers(mut v: Value, speakers: Option<&Speakers>) -> Value {
    let Some(sp) = speakers else { return v };
    v["speaker_turns"] =
        sp.turns.iter().map(|t| json!({"speaker": t.speaker, "start": round(t.start, 3), "end": round(t.end, 3)})).collect();
    if let Some(segs) = v.get_mut("segments").and_then(Value::as_array_mut) {
        for (s, who) in segs.iter_mut().zip(&sp.segments) {
            s["speaker"] = who.as_str().into();
        }
    }
    if let Some(words) = v.get_mut("words").and_then(Value::as_array_mut) {
        for (w, who) in words.iter_mut().zip(sp.words.iter().flatten()) {
            w["speaker"] = who.as_str().into();
        }
    }
    v
}

pub fn verbose_json(t: &Transcript, task: Task, g: Granularities) -> Value {
    let mut v = json!({
        "task": task.as_str(),
        "language": tokenizer::language_name(&t.language).unwrap_or(&t.language),
        "duration": round(t.duration, 3),
        "text": t.text.trim(),
    });
    if g.segment {
        v["segments"] = t.segments.iter().map(segment_json).collect();
    }
    if g.word {
        v["words"] = words_json(t.segments.iter().flat_map(|s| s.words.iter()));
    }
    v
}

/// One segment as `verbose_json` lists it (and the stream's `transcript.text.segment` event).
pub fn segment_json(s: &Segment) -> Value {
    json!({
        "id": s.id, "seek": s.seek, "start": round(s.start, 3), "end": round(s.end, 3),
        "text": s.text, "tokens": s.tokens, "temperature": s.temperature,
        "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    })
}

/// Words as `verbose_json` lists them: `[{"word","start","end"}]`.
pub fn words_json<'a>(words: impl Iterator<Item = &'a Word>) -> Value {
    words.map(|w| json!({"word": w.word.trim(), "start": round(w.start, 3), "end": round(w.end, 3)})).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript() -> Transcript {
        let seg = |id, start, end, text: &str| Segment {
            id,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![50364, 1, 2],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.1,
            no_speech_prob: 0.01,
            words: Vec::new(),
        };
        Transcript {
            language: "en".into(),
            language_probability: 0.9,
            duration: 3725.5,
            text: " Hello there. General Kenobi.".into(),
            segments: vec![seg(0, 0.0, 1.5, " Hello there."), seg(1, 3661.25, 3662.0, " General Kenobi.")],
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(fmt_timestamp(3661.25, Style::Srt), "01:01:01,250");
        assert_eq!(fmt_timestamp(0.0016, Style::Vtt), "00:00:00.002");
        assert_eq!(fmt_timestamp(-1.0, Style::Vtt), "00:00:00.000");
    }

    #[test]
    fn srt_and_vtt_goldens() {
        let t = transcript();
        let (srt, _) = render(&t, OutputFormat::Srt, Task::Transcribe, Granularities::default());
        assert_eq!(
            String::from_utf8(srt).unwrap(),
            "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:01:01,250 --> 01:01:02,000\nGeneral Kenobi.\n\n"
        );
        let (vtt, ct) = render(&t, OutputFormat::Vtt, Task::Transcribe, Granularities::default());
        assert_eq!(
            String::from_utf8(vtt).unwrap(),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n01:01:01.250 --> 01:01:02.000\nGeneral Kenobi.\n\n"
        );
        assert!(ct.starts_with("text/vtt"));
    }

    #[test]
    fn json_text_and_verbose() {
        let t = transcript();
        let (j, _) = render(&t, OutputFormat::Json, Task::Transcribe, Granularities::default());
        assert_eq!(String::from_utf8(j).unwrap(), r#"{"text":"Hello there. General Kenobi."}"#);
        let (txt, _) = render(&t, OutputFormat::Text, Task::Transcribe, Granularities::default());
        assert_eq!(String::from_utf8(txt).unwrap(), "Hello there. General Kenobi.\n");
        let v = verbose_json(&t, Task::Translate, Granularities { segment: false, word: true });
        assert_eq!(v["task"], "translate");
        assert_eq!(v["language"], "english");
        assert!(v.get("segments").is_none());
        assert_eq!(v["words"].as_array().unwrap().len(), 0);
        let v = verbose_json(&t, Task::Transcribe, Granularities::default());
        assert_eq!(v["segments"][1]["start"], 3661.25);
        assert_eq!(v["segments"][0]["tokens"][0], 50364);
    }

    #[test]
    fn speakers_in_every_format_that_has_segments() {
        let t = transcript();
        let turn = crate::diarize::Turn { speaker: "A".into(), start: 0.0, end: 1.5 };
        let sp = Speakers { segments: vec!["A".into(), "kennedy".into()], words: vec![vec![], vec![]], turns: vec![turn] };
        let g = Granularities::default();
        let (vtt, _) = render_speakers(&t, OutputFormat::Vtt, Task::Transcribe, g, Some(&sp));
        assert!(String::from_utf8(vtt).unwrap().contains("\n<v A>Hello there.\n\n01:01:01.250 --> 01:01:02.000\n<v kennedy>General Kenobi."));
        let (srt, _) = render_speakers(&t, OutputFormat::Srt, Task::Transcribe, g, Some(&sp));
        assert!(String::from_utf8(srt).unwrap().contains("\n[A] Hello there.\n"));
        let (d, ct) = render_speakers(&t, OutputFormat::DiarizedJson, Task::Transcribe, g, Some(&sp));
        let d: Value = serde_json::from_slice(&d).unwrap();
        assert_eq!(ct, "application/json");
        assert_eq!(d["task"], "transcribe");
        assert_eq!(d["segments"][1], json!({"type": "transcript.text.segment", "id": "seg_1", "start": 3661.25, "end": 3662.0, "speaker": "kennedy", "text": "General Kenobi."}));
        let (v, _) = render_speakers(&t, OutputFormat::VerboseJson, Task::Transcribe, g, Some(&sp));
        let v: Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(v["segments"][0]["speaker"], "A");
        assert_eq!(v["speaker_turns"], json!([{"speaker": "A", "start": 0.0, "end": 1.5}]));
    }

    #[test]
    fn unknown_format_is_a_400_on_the_param() {
        assert!(matches!(OutputFormat::parse("xml"), Err(Error::BadRequest { param: Some("response_format"), .. })));
        assert_eq!(OutputFormat::parse("").unwrap(), OutputFormat::Json);
    }
}
