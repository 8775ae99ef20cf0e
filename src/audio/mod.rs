//! Decode an uploaded audio file into Whisper's input: mono f32 PCM at 16 kHz.
//!
//! Stage: `bytes → Pcm16k` (see `mel.rs` for the next one). Everything runs in the sandbox on
//! one thread, over the in-memory upload, in this order:
//!
//! 1. [`sniff`]: name the container from its magic bytes ([`sniff::Container`]) and refuse, by
//!    name, what we know we cannot decode (AMR, WMA, MIDI, …) or what is not audio at all.
//! 2. [`containers`]: cut leading ID3v2 tags, turn the tags we never read into padding, in
//!    place, and refuse the Vorbis setup headers symphonia 0.6.1 panics on ([`vorbis`]; found
//!    by fuzzing, with reproducers in `fuzz/regressions/audio/`, which `make test` runs).
//! 3. [`demux`]: symphonia 0.6 reads the container (WAV, AIFF, CAF, FLAC, Ogg, WebM/Matroska,
//!    MP4/M4A, MPEG audio, ADTS) and decodes the first audio track it has a decoder for: PCM
//!    (8–32-bit int, 32/64-bit float, A-law, µ-law), ADPCM, MP1/MP2/MP3, FLAC, Vorbis, AAC,
//!    ALAC and — through [`opus`], over `ropus` (libopus in Rust) — Opus. Encoder delay and
//!    padding are removed where the container records them (symphonia's gapless trims for MP3
//!    and Ogg, Opus pre-skip, and our reading of what symphonia ignores: the MP4 edit list and
//!    the DiscardPadding of a WebM's last block).
//! 4. [`sink`]: downmix every channel by averaging (as `ffmpeg -ac 1` does for
//!    openai-whisper), clip float samples to full scale and zero NaN (as the references' 16-bit
//!    conversion does), apply the container's edit and cap the duration while decoding: past
//!    `max_seconds` we stop with [`AudioError::TooLong`] instead of decoding the rest.
//! 5. [`resample`]: rubato's `FftFixedIn`, a synchronous band-limited resampler, in chunks as
//!    packets arrive: we never hold the whole source-rate signal, only the 16 kHz output.
//!
//! Errors are not swallowed: a packet that fails to decode is skipped and counted
//! ([`Pcm16k::skipped_packets`]); a demuxer failure midway keeps what was decoded so far
//! ([`Pcm16k::truncated`]); if nothing usable comes out the result is [`AudioError::Corrupt`];
//! formats we cannot read are named in [`AudioError::Unsupported`].

mod containers;
mod demux;
mod describe;
pub mod live;
mod opus;
mod resample;
mod sink;
mod sniff;
#[cfg(test)]
mod tests;
mod vorbis;

/// Whisper's sample rate in Hz (openai-whisper `audio.SAMPLE_RATE`).
pub const TARGET_RATE: u32 = 16_000;

/// Decoded audio, ready for the log-mel stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm16k {
    /// Mono samples at [`TARGET_RATE`] (16 kHz), nominally in [-1, 1] (a resampled full-scale
    /// signal can overshoot slightly). Always finite: float input beyond full scale is clipped
    /// to [-1, 1] and NaN becomes 0 before resampling.
    pub samples: Vec<f32>,
    /// Sample rate of the input in Hz (of the first decoded packet if it changed midway).
    pub source_rate: u32,
    /// Channel count of the input (the largest seen), before downmixing.
    pub source_channels: usize,
    /// Duration of the decoded input in seconds (source frames / source rate).
    pub duration_s: f32,
    /// Codec short name as the decoder reports it, e.g. `"pcm_s16le"`, `"mp3"`, `"flac"`,
    /// `"vorbis"`, `"aac"`, `"opus"`.
    pub codec: String,
    /// Packets that failed to decode and were skipped (0 for a clean file).
    pub skipped_packets: usize,
    /// True when the stream ended early: a demuxer error after some audio, or clearly fewer
    /// frames than the container declared (e.g. a cut-off upload). The audio decoded so far is
    /// still returned.
    pub truncated: bool,
}

impl Pcm16k {
    /// Duration of `samples` in seconds.
    pub fn output_duration_s(&self) -> f32 {
        self.samples.len() as f32 / TARGET_RATE as f32
    }
}

/// Why an upload could not be turned into [`Pcm16k`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    /// The container or codec cannot be read; `format` names it when it was recognised,
    /// e.g. "Speex audio in an Ogg container" or "not an audio file (looks like HTML)".
    #[error("unsupported audio format: {format}")]
    Unsupported { format: String },
    /// The format was recognised but decoding failed such that no usable audio came out.
    #[error("corrupt audio: {detail}")]
    Corrupt { detail: String },
    /// The input decoded to zero samples (or was zero bytes long).
    #[error("the audio contains no samples")]
    Empty,
    /// The input is longer than the allowed maximum; decoding stopped at that point.
    #[error("audio is longer than the maximum of {max_seconds} s")]
    TooLong { max_seconds: f32 },
}

/// Decodes `bytes` (a whole audio file) to mono 16 kHz f32.
///
/// `hint` is a file extension (`"mp3"`, `".wav"`, `"clip.m4a"`) or a MIME type (`"audio/mpeg"`);
/// it only helps symphonia's probe, which also recognises content on its own.
/// `max_seconds` caps the decoded input duration ([`AudioError::TooLong`]); pass
/// `f32::INFINITY` for no cap.
///
/// The bytes are copied once (symphonia wants an owned source), after their leading ID3v2 tags,
/// and the copy is hardened for symphonia ([`containers::harden`]).
pub fn decode_to_pcm16k(
    bytes: &[u8],
    hint: Option<&str>,
    max_seconds: f32,
) -> Result<Pcm16k, AudioError> {
    // Check the cheap rejections before copying.
    let sniffed = sniff::sniff(bytes);
    reject_early(bytes, &sniffed)?;
    // Leading ID3v2 tags are dropped unread; what follows is hardened for its kind.
    let mut body = bytes[containers::id3::leading_id3v2_len(bytes)..].to_vec();
    if body.is_empty() {
        return Err(AudioError::Empty);
    }
    containers::harden(&mut body)?;
    demux::decode(body.into(), sniffed, hint, max_seconds)
}

fn reject_early(bytes: &[u8], sniffed: &sniff::Sniff) -> Result<(), AudioError> {
    use sniff::Sniff;
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    match sniffed {
        Sniff::UnsupportedAudio(name) => Err(unsupported(name.clone())),
        Sniff::NotAudio(what) => Err(unsupported(format!(
            "not an audio file (looks like {what})"
        ))),
        Sniff::Audio(_) | Sniff::Unknown => Ok(()),
    }
}

fn unsupported(format: impl Into<String>) -> AudioError {
    AudioError::Unsupported {
        format: format.into(),
    }
}
