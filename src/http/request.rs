//! A request's options, read once from the form and the query string (the form wins), and
//! its audio prepared for the model: decode → 16 kHz → (voice activity detection) → log-mel.

use super::message::HttpRequest;
use crate::audio;
use crate::config::Config;
use crate::decode::Task;
use crate::error::Error;
use crate::form::{self, Form};
use crate::live::LiveVad;
use crate::mel::{self, LogMel, N_FRAMES};
use crate::model::Model;
use crate::diarize::{self, DiarizeOptions, Speakers};
use crate::nn::{Engine, Inference, SpeakerNet, VadNet};
use crate::tokenizer;
use crate::transcribe::{self, batched, Segment, TranscribeOptions, Transcript};
use crate::vad::{self, SpeechMap, VadMode};

/// The request's body as a form, and its options from the query string and the form's text
/// fields (the form wins).
pub async fn read_form(req: HttpRequest, config: &Config) -> Result<(Form, Vec<(String, String)>), Error> {
    let query = req.query();
    let content_type = req.header("content-type").map(str::to_string);
    let body = req.body.read_all()?;
    let form = form::parse(content_type.as_deref(), body, config.form_limits).await?;
    if form.files.is_empty() {
        return Err(Error::bad_param("file", "no file in the form: send the audio as a file field (curl -F file=@audio.mp3)"));
    }
    Ok((form, query))
}

/// Looks a request option up in the form, then the query string.
pub fn option(form: &Form, query: &[(String, String)], name: &str) -> Option<String> {
    form.field_values(name)
        .last()
        .map(str::to_string)
        .or_else(|| query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .map(|v| v.trim().to_string())
}

/// Options both APIs share: model, language, task, beam, temperature, prompt.
pub fn common_options(form: &Form, query: &[(String, String)], config: &Config) -> Result<(String, TranscribeOptions), Error> {
    let get = |name: &str| option(form, query, name);
    let mut t = TranscribeOptions::default();
    if let Some(lang) = get("language").filter(|l| !l.is_empty() && l != "auto") {
        let code = tokenizer::language_code(&lang).ok_or_else(|| {
            Error::bad_param("language", format!("unknown language '{lang}': use an ISO-639-1 code such as 'en' or 'de', or omit it to detect"))
        })?;
        t.language = Some(code.to_string());
    }
    if let Some(task) = get("task") {
        t.task = match task.as_str() {
            "transcribe" | "" => Task::Transcribe,
            "translate" => Task::Translate,
            other => return Err(Error::bad_param("task", format!("unknown task '{other}': use 'transcribe' or 'translate'"))),
        };
    }
    if let Some(b) = get("beam_size").filter(|s| !s.is_empty()) {
        let n: usize = b.parse().ok().filter(|n| (1..=16).contains(n)).ok_or_else(|| {
            Error::bad_param("beam_size", format!("beam_size must be an integer from 1 to 16, not '{b}'"))
        })?;
        t.beam_size = Some(n);
    }
    if let Some(p) = get("patience").filter(|s| !s.is_empty()) {
        t.patience = p.parse().ok().filter(|v: &f32| (1.0..=10.0).contains(v)).ok_or_else(|| {
            Error::bad_param("patience", format!("patience must be a number from 1 to 10, not '{p}'"))
        })?;
    }
    if let Some(temp) = get("temperature").filter(|s| !s.is_empty()) {
        let v: f32 = temp.parse().ok().filter(|v: &f32| (0.0..=1.0).contains(v)).ok_or_else(|| {
            Error::bad_param("temperature", format!("temperature must be a number from 0 to 1, not '{temp}'"))
        })?;
        if v > 0.0 {
            // Start sampling at that temperature and fall back upwards from there.
            t.temperatures = (0..=5).map(|i| v + 0.2 * i as f32).take_while(|x| *x <= 1.0 + 1e-6).collect();
        }
    }
    if let Some(p) = get("prompt").or_else(|| get("initial_prompt")).filter(|p| !p.is_empty()) {
        t.initial_prompt = Some(p);
    }
    if let Some(v) = get("without_timestamps") {
        t.without_timestamps = parse_bool("without_timestamps", &v)?;
    }
    let model = get("model").filter(|m| !m.is_empty() && m != "whisper-1").unwrap_or_else(|| config.default_model.clone());
    Ok((model, t))
}

/// The most chunks one batch may hold (each holds its cross-attention K/V: 37 MB for base).
pub const MAX_BATCH_SIZE: usize = 16;
/// Chunks per batch unless the request says: one, so memory stays as the sequential path's
/// (`make bench-long`, base-int8, two cores: a batch of 4 is 12–18 % faster and peaks 336 MiB
/// higher: its cross-attention K/V, 37 MB a chunk for base, and the graphs' larger activations).
pub const DEFAULT_BATCH_SIZE: usize = 1;

/// The long-form path (`transcribe::batched` or the sequential one): batched by default when
/// VAD filters the audio; `batch_size` sets the chunks per network call; faster-whisper's
/// `condition_on_previous_text=true` asks for the sequential path, which feeds each window the
/// text before it. Batching packs VAD's speech regions, so it cannot be asked for with VAD off.
pub fn long_form(form: &Form, query: &[(String, String)], vad: &VadMode, opts: &mut TranscribeOptions) -> Result<(), Error> {
    let get = |name: &str| option(form, query, name).filter(|v| !v.is_empty());
    let batch = match get("batch_size") {
        Some(b) => Some(b.parse().ok().filter(|n| (1..=MAX_BATCH_SIZE).contains(n)).ok_or_else(|| {
            Error::bad_param("batch_size", format!("batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, not '{b}'"))
        })?),
        None => None,
    };
    let sequential = match get("condition_on_previous_text") {
        Some(v) => parse_bool("condition_on_previous_text", &v)?,
        None => false,
    };
    if sequential && batch.is_some() {
        return Err(Error::bad_param(
            "batch_size",
            "condition_on_previous_text=true decodes one window after another, each after the text before it; batch_size decodes chunks independently: give one of them",
        ));
    }
    if batch.is_some() && *vad == VadMode::Off {
        return Err(Error::bad_param(
            "batch_size",
            "batch_size decodes VAD's speech regions in batches, and vad_filter=false turns VAD off: give one of them",
        ));
    }
    opts.batch_size = if sequential { None } else { Some(batch.unwrap_or(DEFAULT_BATCH_SIZE)) };
    Ok(())
}

pub fn parse_bool(param: &'static str, v: &str) -> Result<bool, Error> {
    match v.to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(Error::bad_param(param, format!("{param} must be true or false, not '{other}'"))),
    }
}

/// The file's format hint for the decoder: its extension, else its content type.
pub fn format_hint(file: &form::FilePart) -> Option<&str> {
    file.file_name.as_deref().and_then(|n| n.rsplit_once('.').map(|(_, ext)| ext)).or(file.content_type.as_deref())
}

/// The VAD options (`vad_filter`, `vad_parameters`, `chunking_strategy`; see `vad::params`).
pub fn vad_mode(form: &Form, query: &[(String, String)]) -> Result<VadMode, Error> {
    let get = |name: &str| option(form, query, name);
    let filter = match get("vad_filter").filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_bool("vad_filter", &v)?),
        None => None,
    };
    let bracketed: Vec<(String, String)> = form
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .filter_map(|(k, v)| Some((k.strip_prefix("chunking_strategy[")?.strip_suffix(']')?.to_string(), v.trim().to_string())))
        .collect();
    vad::params::parse(filter, &get, &bracketed)
}

/// Voice activity detection for this request: the network when it may be used, an error when
/// it was asked for and the host has no VAD graph.
pub struct Vad {
    mode: VadMode,
    net: Option<Box<dyn VadNet>>,
    /// For batched long-form: regions are cut to fit a 30 s chunk.
    batched: bool,
}

impl Vad {
    /// `opts` tells whether the request is batched (its regions must fit a chunk).
    pub fn open(mode: VadMode, engine: &mut dyn Engine, opts: &TranscribeOptions) -> Result<Self, Error> {
        let net = match &mode {
            VadMode::Off => None,
            VadMode::Auto(_) => engine.open_vad()?,
            VadMode::On { param, .. } => Some(engine.open_vad()?.ok_or_else(|| {
                Error::bad_param(
                    param,
                    format!(
                        "voice activity detection is not available on this host (it has no wasi-nn graph `{}`; \
                         our host loads it with `--model vad`, see models/README.md); leave {param} out to transcribe without it",
                        vad::GRAPH
                    ),
                )
            })?),
        };
        Ok(Self { mode, net, batched: opts.batch_size.is_some() })
    }

    /// The network and options that cut a live upload at pauses: unless VAD was turned off,
    /// when the host has the graph.
    pub fn into_live(self) -> Option<LiveVad> {
        let options = match self.mode {
            VadMode::Off => return None,
            VadMode::Auto(options) | VadMode::On { options, .. } => options,
        };
        Some(LiveVad { net: self.net?, options })
    }

    /// The options to filter `seconds` of audio with, if it is to be filtered. Batched, no
    /// region is longer than a chunk (as faster-whisper's batched pipeline sets
    /// `max_speech_duration_s` to its chunk length).
    fn options_for(&self, seconds: f32) -> Option<vad::VadOptions> {
        self.net.as_ref()?;
        let mut options = match &self.mode {
            VadMode::Off => None,
            VadMode::Auto(o) => (seconds > vad::AUTO_MIN_SECONDS).then_some(o),
            VadMode::On { options, .. } => Some(options),
        }?
        .clone();
        if self.batched {
            options.max_speech_duration_s = options.max_speech_duration_s.min(N_FRAMES as f64 / mel::FRAMES_PER_SECOND as f64);
        }
        Some(options)
    }
}

/// One file's audio ready for the model.
pub struct Prepared {
    /// Of the speech only, when VAD filtered it.
    pub mel: LogMel,
    /// Back to the original times, when VAD filtered the audio.
    pub speech: Option<SpeechMap>,
    /// Seconds of the original audio.
    pub duration: f32,
    /// The original audio at 16 kHz, kept only for diarization.
    pub pcm: Option<Vec<f32>>,
    /// Its VAD scores, when VAD filtered it and the audio is kept: diarization finds its own
    /// speech regions in them instead of running the network again.
    pub speech_probs: Option<Vec<f32>>,
}

impl Prepared {
    /// Transcribes the audio, with every time (also those `on_segment` sees) in the original's.
    pub fn transcribe(
        &self,
        nn: &mut dyn Inference,
        model: &Model,
        opts: &TranscribeOptions,
        on_segment: &mut dyn FnMut(&Segment),
    ) -> Result<Transcript, Error> {
        let Some(map) = &self.speech else { return transcribe::transcribe(nn, model, &self.mel, opts, on_segment) };
        let mut restored = |segment: &Segment| {
            let mut s = segment.clone();
            map.restore(&mut s);
            on_segment(&s)
        };
        let mut t = match opts.batch_size {
            Some(batch) => {
                let chunks = batched::pack(&map.glued_end_frames(), N_FRAMES);
                batched::transcribe_chunks(nn, model, &self.mel, &chunks, opts, batch, &mut restored)?
            }
            None => transcribe::transcribe(nn, model, &self.mel, opts, &mut restored)?,
        };
        vad::restore_transcript(map, &mut t);
        Ok(t)
    }
}

/// Decode → 16 kHz → (VAD) → log-mel, for one file; `keep_pcm` keeps the 16 kHz audio in
/// [`Prepared::pcm`] (for diarization).
pub fn prepare_audio(file: &form::FilePart, model: &Model, config: &Config, vad: &mut Vad, keep_pcm: bool) -> Result<Prepared, Error> {
    let pcm = audio::decode_to_pcm16k(&file.data, format_hint(file), config.max_audio_seconds)
        .map_err(|e| prefix_error(e.into(), &file.field))?;
    let n_mels = model.config.dims.n_mels;
    let duration = vad::map::seconds(pcm.samples.len());
    if let Some(options) = vad.options_for(duration) {
        let net = vad.net.as_deref_mut().expect("options_for checked the network");
        let probs = vad::speech_probs(net, &pcm.samples)?;
        let (speech, map) = vad::keep_speech(&probs, &pcm.samples, &options);
        let mel = mel::log_mel(&speech, n_mels);
        let (pcm, speech_probs) = if keep_pcm { (Some(pcm.samples), Some(probs)) } else { (None, None) };
        return Ok(Prepared { mel, speech: Some(map), duration, pcm, speech_probs });
    }
    let mel = mel::log_mel(&pcm.samples, n_mels);
    Ok(Prepared { mel, speech: None, duration, pcm: keep_pcm.then_some(pcm.samples), speech_probs: None })
}

/// Diarization for this request (`diarize::params`): the speaker encoder, a VAD of its own for
/// the speech regions (when the host has the graph) and the options.
pub struct Diarizer {
    net: Box<dyn SpeakerNet>,
    vad: Option<Box<dyn VadNet>>,
    pub options: DiarizeOptions,
}

impl Diarizer {
    /// The options are read (and checked, references decoded) before the host is asked for
    /// the graph, so a bad value is a 400 on any host; `param` names the field that asked for it.
    pub fn open(form: &Form, query: &[(String, String)], param: &'static str, engine: &mut dyn Engine) -> Result<Self, Error> {
        let get = |name: &str| option(form, query, name);
        let list = |name: &str| -> Vec<String> {
            let bracketed = format!("{name}[]");
            let from_form: Vec<String> =
                form.field_values(name).chain(form.field_values(&bracketed)).map(str::to_string).collect();
            if !from_form.is_empty() {
                return from_form;
            }
            query.iter().filter(|(k, _)| k == name || *k == bracketed).map(|(_, v)| v.clone()).collect()
        };
        let options = diarize::params::parse(&get, &list)?;
        let net = engine.open_speaker()?.ok_or_else(|| {
            Error::bad_param(
                param,
                format!(
                    "speaker diarization is not available on this host (it has no wasi-nn graph `{}`; our host loads it \
                     with `--model speaker`, see models/README.md)",
                    diarize::GRAPH
                ),
            )
        })?;
        Ok(Self { net, vad: engine.open_vad()?, options })
    }

    /// The transcript split at speaker changes, and who speaks each segment and word. The
    /// speech regions come from the transcription's VAD scores when it filtered the audio, else
    /// from a VAD pass of our own (when the host has the graph), else the whole audio is speech.
    pub fn run(&mut self, audio: &Prepared, t: Transcript) -> Result<(Transcript, Speakers), Error> {
        let samples = audio.pcm.as_deref().ok_or_else(|| Error::Internal("diarization without the audio".into()))?;
        let scored;
        let probs = match (&audio.speech_probs, self.vad.as_mut()) {
            (Some(probs), _) => Some(probs.as_slice()),
            (None, Some(net)) => {
                scored = vad::speech_probs(net.as_mut(), samples)?;
                Some(scored.as_slice())
            }
            (None, None) => None,
        };
        diarize::diarize(self.net.as_mut(), probs, samples, t, &self.options)
    }
}

/// Whether the request asks for diarization with `diarize=true` (or known speakers).
pub fn wants_diarization(form: &Form, query: &[(String, String)]) -> Result<bool, Error> {
    let asked = match option(form, query, "diarize") {
        Some(v) => parse_bool("diarize", &v)?,
        None => false,
    };
    let known = form.fields.iter().map(|(k, _)| k).chain(query.iter().map(|(k, _)| k)).any(|k| k.starts_with("known_speaker_"));
    Ok(asked || known)
}

fn prefix_error(e: Error, field: &str) -> Error {
    let p = |m: String| format!("file '{field}': {m}");
    match e {
        Error::UnsupportedMedia(m) => Error::UnsupportedMedia(p(m)),
        Error::Undecodable(m) => Error::Undecodable(p(m)),
        Error::TooLarge(m) => Error::TooLarge(p(m)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated() {
        let cfg = Config::default();
        let form = Form::default();
        let q = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(common_options(&form, &q("language", "German"), &cfg).unwrap().1.language.as_deref(), Some("de"));
        assert!(common_options(&form, &q("language", "auto"), &cfg).unwrap().1.language.is_none());
        for (k, v) in [("language", "xx"), ("task", "summarize"), ("temperature", "-1"), ("beam_size", "0"), ("patience", "0.5"), ("without_timestamps", "maybe")] {
            let e = common_options(&form, &q(k, v), &cfg).unwrap_err();
            assert!(matches!(e, Error::BadRequest { param: Some(p), .. } if p == k), "{k}={v}: {e}");
        }
        let (model, _) = common_options(&form, &q("model", "whisper-1"), &cfg).unwrap();
        assert_eq!(model, cfg.default_model);
        let (_, t) = common_options(&form, &q("temperature", "0.5"), &cfg).unwrap();
        assert_eq!(t.temperatures.len(), 3);
    }

    #[test]
    fn long_form_is_batched_unless_asked_otherwise() {
        let form = Form::default();
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let auto = VadMode::Auto(vad::VadOptions::default());
        let run = |pairs: &[(&str, &str)], vad: &VadMode| {
            let mut t = TranscribeOptions::default();
            long_form(&form, &q(pairs), vad, &mut t).map(|_| t.batch_size)
        };
        assert_eq!(run(&[], &auto).unwrap(), Some(DEFAULT_BATCH_SIZE));
        assert_eq!(run(&[("batch_size", "8")], &auto).unwrap(), Some(8));
        assert_eq!(run(&[("condition_on_previous_text", "true")], &auto).unwrap(), None);
        // VAD off: sequential, and asking for batches is an error.
        assert_eq!(run(&[], &VadMode::Off).unwrap(), Some(DEFAULT_BATCH_SIZE));
        for pairs in [
            &[("batch_size", "0")][..],
            &[("batch_size", "17")],
            &[("batch_size", "four")],
            &[("batch_size", "2"), ("condition_on_previous_text", "true")],
            &[("condition_on_previous_text", "maybe")],
        ] {
            assert!(run(pairs, &auto).is_err(), "{pairs:?}");
        }
        assert!(run(&[("batch_size", "2")], &VadMode::Off).is_err());
    }
}
