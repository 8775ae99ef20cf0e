//! Diarization options of a request: `num_speakers`, `min_speakers`, `max_speakers` (pyannote's
//! names), `known_speaker_names[]` with `known_speaker_references[]` (OpenAI's: data URLs of 2–10 s
//! audio samples, decoded with the component's own audio decoder). Every bad value is a 400 that
//! names its field, before the audio is decoded.

use crate::audio;
use crate::error::Error;

use super::cluster::{SpeakerCount, DEFAULT_MAX_SPEAKERS};

/// Largest speaker count that may be asked for.
pub const MAX_SPEAKERS: usize = 20;
/// Known speakers at most (OpenAI: 4).
pub const MAX_KNOWN: usize = 8;
/// A reference's length (OpenAI: "between 2 and 10 seconds"; a little slack for encoders' padding).
pub const REFERENCE_SECONDS: (f32, f32) = (1.9, 10.5);

#[derive(Debug, Clone)]
pub struct KnownSpeaker {
    pub name: String,
    /// The reference at 16 kHz.
    pub samples: Vec<f32>,
}

#[derive(Debug, Clone, Default)]
pub struct DiarizeOptions {
    pub count: SpeakerCount,
    pub known: Vec<KnownSpeaker>,
}

fn count(param: &'static str, v: Option<String>) -> Result<Option<usize>, Error> {
    let Some(v) = v.filter(|v| !v.is_empty()) else { return Ok(None) };
    v.parse().ok().filter(|n| (1..=MAX_SPEAKERS).contains(n)).map(Some).ok_or_else(|| {
        Error::bad_param(param, format!("{param} must be an integer from 1 to {MAX_SPEAKERS}, not '{v}'"))
    })
}

/// Reads the options; `get` looks a single option up, `list` every value of an array field.
pub fn parse(get: &dyn Fn(&str) -> Option<String>, list: &dyn Fn(&str) -> Vec<String>) -> Result<DiarizeOptions, Error> {
    let num = count("num_speakers", get("num_speakers"))?;
    let min = count("min_speakers", get("min_speakers"))?;
    let max = count("max_speakers", get("max_speakers"))?;
    let mut c = SpeakerCount { min: min.unwrap_or(1), max: max.unwrap_or(DEFAULT_MAX_SPEAKERS.max(min.unwrap_or(1))) };
    if c.min > c.max {
        return Err(Error::bad_param("min_speakers", format!("min_speakers ({}) is more than max_speakers ({})", c.min, c.max)));
    }
    if let Some(n) = num {
        if min.is_some_and(|m| m > n) || max.is_some_and(|m| m < n) {
            return Err(Error::bad_param("num_speakers", format!("num_speakers ({n}) is outside min_speakers..max_speakers")));
        }
        c = SpeakerCount { min: n, max: n };
    }
    let names = list("known_speaker_names");
    let refs = list("known_speaker_references");
    if names.len() > refs.len() {
        return Err(Error::bad_param(
            "known_speaker_names",
            format!("{} known_speaker_names[] but {} known_speaker_references[]: give one reference per name", names.len(), refs.len()),
        ));
    }
    if refs.len() > names.len() {
        return Err(Error::bad_param(
            "known_speaker_references",
            format!("{} known_speaker_references[] but {} known_speaker_names[]: give one name per reference", refs.len(), names.len()),
        ));
    }
    if names.len() > MAX_KNOWN {
        return Err(Error::bad_param("known_speaker_names", format!("at most {MAX_KNOWN} known speakers")));
    }
    let mut known = Vec::with_capacity(names.len());
    for (i, (name, url)) in names.into_iter().zip(refs).enumerate() {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 64 || known.iter().any(|k: &KnownSpeaker| k.name == name) {
            return Err(Error::bad_param(
                "known_speaker_names",
                format!("known_speaker_names[{i}] must be a distinct, non-empty name of at most 64 characters"),
            ));
        }
        known.push(KnownSpeaker { name, samples: reference(i, &url)? });
    }
    Ok(DiarizeOptions { count: c, known })
}

/// Decodes `data:<type>[;base64],<data>` into 16 kHz samples of 2–10 s.
fn reference(i: usize, url: &str) -> Result<Vec<f32>, Error> {
    let bad = |m: String| Error::bad_param("known_speaker_references", format!("known_speaker_references[{i}]: {m}"));
    let rest = url.trim().strip_prefix("data:").ok_or_else(|| bad("must be a data URL (data:audio/wav;base64,…)".into()))?;
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad("a data URL needs a ',' before its data".into()))?;
    if !meta.ends_with(";base64") {
        return Err(bad("the data URL must be base64 (data:audio/…;base64,…)".into()));
    }
    let mime = meta.trim_end_matches(";base64");
    let bytes = base64(data).ok_or_else(|| bad("its data is not valid base64".into()))?;
    let hint = mime.strip_prefix("audio/").or_else(|| mime.strip_prefix("video/"));
    let pcm = audio::decode_to_pcm16k(&bytes, hint, REFERENCE_SECONDS.1 + 1.0)
        .map_err(|e| bad(format!("not audio we can decode ({e})")))?;
    let secs = pcm.samples.len() as f32 / audio::TARGET_RATE as f32;
    if !(REFERENCE_SECONDS.0..=REFERENCE_SECONDS.1).contains(&secs) {
        return Err(bad(format!("a reference must be 2 to 10 seconds of speech, this one is {secs:.1} s")));
    }
    Ok(pcm.samples)
}

/// Standard base64 (RFC 4648, padding optional, whitespace ignored).
fn base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        acc = (acc << 6) | val(c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&str, &str)]) -> Result<DiarizeOptions, Error> {
        let get = |k: &str| pairs.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let list = |k: &str| pairs.iter().filter(|(n, _)| *n == k).map(|(_, v)| v.to_string()).collect();
        parse(&get, &list)
    }

    fn param(r: Result<DiarizeOptions, Error>) -> &'static str {
        match r {
            Err(Error::BadRequest { param: Some(p), .. }) => p,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn counts() {
        assert_eq!(run(&[]).unwrap().count, SpeakerCount::default());
        assert_eq!(run(&[("num_speakers", "3")]).unwrap().count, SpeakerCount { min: 3, max: 3 });
        assert_eq!(run(&[("min_speakers", "2"), ("max_speakers", "4")]).unwrap().count, SpeakerCount { min: 2, max: 4 });
        assert_eq!(run(&[("min_speakers", "10")]).unwrap().count, SpeakerCount { min: 10, max: 10 });
        assert_eq!(param(run(&[("num_speakers", "0")])), "num_speakers");
        assert_eq!(param(run(&[("num_speakers", "two")])), "num_speakers");
        assert_eq!(param(run(&[("max_speakers", "21")])), "max_speakers");
        assert_eq!(param(run(&[("min_speakers", "3"), ("max_speakers", "2")])), "min_speakers");
        assert_eq!(param(run(&[("num_speakers", "5"), ("max_speakers", "2")])), "num_speakers");
    }

    #[test]
    fn known_speakers_need_one_decodable_reference_each() {
        assert_eq!(param(run(&[("known_speaker_names", "a")])), "known_speaker_names");
        assert_eq!(param(run(&[("known_speaker_references", "data:audio/wav;base64,AAAA")])), "known_speaker_references");
        let not_audio = format!("data:audio/wav;base64,{}", "aGVsbG8gd29ybGQ=");
        assert_eq!(param(run(&[("known_speaker_names", "a"), ("known_speaker_references", &not_audio)])), "known_speaker_references");
        assert_eq!(param(run(&[("known_speaker_names", "a"), ("known_speaker_references", "https://x/a.wav")])), "known_speaker_references");
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(base64("aGk").unwrap(), b"hi");
        assert!(base64("a*b").is_none());
    }
}
