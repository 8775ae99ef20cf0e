//! Audio that arrives while it is decoded: a WAV stream (`audio/wav`, as `arecord` or
//! `ffmpeg -f wav -` write it, whose data size is 0, a placeholder or the real one) or raw
//! `audio/L16;rate=…;channels=…` (RFC 2586: signed 16-bit big-endian), turned into 16 kHz mono
//! piece by piece with the same downmix and resampler as whole files (`sink`, `resample`).
//!
//! symphonia reads whole files (it seeks and probes); these two formats need no demuxer, and
//! their header is all that must be read before the samples, so they are parsed here.

use super::resample::RateStage;
use super::{unsupported, AudioError};

/// The media types a live upload may have (their parameters aside).
pub const MEDIA_TYPES: [&str; 6] = ["audio/wav", "audio/wave", "audio/x-wav", "audio/vnd.wave", "audio/l16", "audio/pcm"];

/// A WAV header longer than this (before its `data` chunk) is refused rather than buffered.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// How the samples are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    /// Signed little-endian integers of this many bytes (8-bit WAV is unsigned).
    IntLe(usize),
    /// Signed 16-bit big-endian (L16).
    I16Be,
    F32Le,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    encoding: Encoding,
    channels: usize,
    rate: u32,
}

impl Layout {
    fn frame_bytes(&self) -> usize {
        self.channels
            * match self.encoding {
                Encoding::IntLe(n) => n,
                Encoding::I16Be => 2,
                Encoding::F32Le => 4,
            }
    }

    fn sample(&self, b: &[u8]) -> f32 {
        match self.encoding {
            Encoding::IntLe(1) => (b[0] as f32 - 128.0) / 128.0,
            Encoding::IntLe(2) => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            Encoding::IntLe(3) => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
            Encoding::IntLe(_) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Encoding::I16Be => i16::from_be_bytes([b[0], b[1]]) as f32 / 32768.0,
            Encoding::F32Le => {
                let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) }
            }
        }
    }
}

/// Decodes a live upload as its bytes arrive.
pub struct LiveDecoder {
    /// Bytes not yet used: the header while it is incomplete, then a partial frame.
    buf: Vec<u8>,
    /// Known once the header is read.
    layout: Option<Layout>,
    stage: Option<RateStage>,
    /// Data bytes still to read when the WAV header gave a real size.
    data_left: Option<u64>,
    max_seconds: f64,
}

impl LiveDecoder {
    /// For a request's `Content-Type`; an unsupported one is [`AudioError::Unsupported`].
    pub fn new(content_type: &str, max_seconds: f32) -> Result<Self, AudioError> {
        let mut parts = content_type.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("").to_ascii_lowercase();
        let max_seconds = if max_seconds.is_nan() { f64::INFINITY } else { max_seconds as f64 };
        let mut d = LiveDecoder { buf: Vec::new(), layout: None, stage: None, data_left: None, max_seconds };
        match essence.as_str() {
            "audio/wav" | "audio/wave" | "audio/x-wav" | "audio/vnd.wave" => Ok(d),
            "audio/l16" | "audio/pcm" => {
                let (mut rate, mut channels) = (None, 1usize);
                for p in parts {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    let v = v.trim().trim_matches('"');
                    match k.trim().to_ascii_lowercase().as_str() {
                        "rate" => rate = v.parse().ok(),
                        "channels" => channels = v.parse().map_err(|_| unsupported(format!("{essence} with channels={v}")))?,
                        _ => {}
                    }
                }
                let rate = rate.ok_or_else(|| unsupported(format!("{essence} without a rate (send e.g. {essence};rate=16000)")))?;
                d.start(Layout { encoding: Encoding::I16Be, channels, rate })?;
                Ok(d)
            }
            _ => Err(unsupported(format!(
                "'{essence}' as a live upload (a streamed body must be audio/wav or audio/L16;rate=…; \
                 other formats can be sent whole, as a file)"
            ))),
        }
    }

    /// Whether the header has been read (always, for L16).
    pub fn started(&self) -> bool {
        self.layout.is_some()
    }

    /// Seconds of audio received so far.
    pub fn seconds(&self) -> f64 {
        self.layout.map_or(0.0, |l| self.frames() as f64 / l.rate as f64)
    }

    /// Source frames received (the resampler counts them).
    fn frames(&self) -> u64 {
        self.stage.as_ref().map_or(0, |s| s.n_in)
    }

    /// Decodes `bytes`, appending 16 kHz samples to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), AudioError> {
        if self.layout.is_some() {
            self.append_data(bytes);
            return self.samples(out);
        }
        self.buf.extend_from_slice(bytes);
        let Some((layout, data_at, data_size)) = parse_wav_header(&self.buf)? else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(corrupt(format!("no WAV data chunk in the first {MAX_HEADER_BYTES} bytes")));
            }
            return Ok(());
        };
        // 0 and the all-ones placeholders mean "until the stream ends".
        self.data_left = match data_size {
            0 | 0xFFFF_FFFF | 0x7FFF_FFFF => None,
            n => Some(u64::from(n)),
        };
        self.start(layout)?;
        let data = self.buf.split_off(data_at);
        self.buf.clear();
        self.append_data(&data);
        self.samples(out)
    }

    /// Appends sample bytes, up to the data chunk's declared end.
    fn append_data(&mut self, bytes: &[u8]) {
        let keep = match self.data_left {
            Some(left) => (left as usize).min(bytes.len()),
            None => bytes.len(),
        };
        if let Some(left) = self.data_left.as_mut() {
            *left -= keep as u64;
        }
        self.buf.extend_from_slice(&bytes[..keep]);
    }

    /// The end of the upload: the resampler's tail is flushed. Audio that never got past its
    /// header, or held no sample, is an error.
    pub fn finish(mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        if self.layout.is_none() {
            return Err(if self.buf.is_empty() { AudioError::Empty } else { corrupt("the WAV header is incomplete".into()) });
        }
        if self.frames() == 0 {
            return Err(AudioError::Empty);
        }
        if let Some(stage) = self.stage.take() {
            stage.finish(out);
        }
        Ok(())
    }

    fn start(&mut self, layout: Layout) -> Result<(), AudioError> {
        if !(1..=32).contains(&layout.channels) {
            return Err(unsupported(format!("audio with {} channels", layout.channels)));
        }
        self.stage = Some(RateStage::new(layout.rate)?);
        self.layout = Some(layout);
        Ok(())
    }

    fn samples(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let (Some(layout), Some(stage)) = (self.layout, self.stage.as_mut()) else { return Ok(()) };
        let width = layout.frame_bytes();
        let whole = self.buf.len() / width * width;
        let step = width / layout.channels;
        for frame in self.buf[..whole].chunks_exact(width) {
            let sum: f32 = frame.chunks_exact(step).map(|s| layout.sample(s)).sum();
            stage.pending.push(sum / layout.channels as f32);
        }
        stage.n_in += (whole / width) as u64;
        self.buf.drain(..whole);
        stage.drain(out);
        if self.seconds() > self.max_seconds {
            return Err(AudioError::TooLong { max_seconds: self.max_seconds as f32 });
        }
        Ok(())
    }
}

fn corrupt(detail: String) -> AudioError {
    AudioError::Corrupt { detail }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The layout, where the samples start and the data chunk's declared size, once `b` holds
/// the whole header; `None` while more is needed.
fn parse_wav_header(b: &[u8]) -> Result<Option<(Layout, usize, u32)>, AudioError> {
    if b.len() < 12 {
        return Ok(None);
    }
    if &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(unsupported("a live upload that is not a RIFF WAVE stream (send audio/wav or audio/L16;rate=…)"));
    }
    let mut at = 12;
    let mut layout = None;
    loop {
        if b.len() < at + 8 {
            return Ok(None);
        }
        let (id, size) = (&b[at..at + 4], u32_at(b, at + 4));
        let body = at + 8;
        if id == b"data" {
            let layout = layout.ok_or_else(|| corrupt("the WAV data chunk comes before its fmt chunk".into()))?;
            return Ok(Some((layout, body, size)));
        }
        // Chunks are padded to even sizes.
        let next = body + size as usize + (size as usize & 1);
        if next > MAX_HEADER_BYTES {
            return Err(corrupt(format!("a WAV header chunk of {size} bytes")));
        }
        if b.len() < next {
            return Ok(None);
        }
        if id == b"fmt " {
            layout = Some(fmt_chunk(&b[body..body + size as usize])?);
        }
        at = next;
    }
}

fn fmt_chunk(f: &[u8]) -> Result<Layout, AudioError> {
    if f.len() < 16 {
        return Err(corrupt("the WAV fmt chunk is too short".into()));
    }
    let mut tag = u16_at(f, 0);
    let (channels, rate, bits) = (u16_at(f, 2) as usize, u32_at(f, 4), u16_at(f, 14));
    if tag == 0xFFFE && f.len() >= 26 {
        tag = u16_at(f, 24); // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag
    }
    let encoding = match (tag, bits) {
        (1, 8 | 16 | 24 | 32) => Encoding::IntLe(bits as usize / 8),
        (3, 32) => Encoding::F32Le,
        _ => return Err(unsupported(format!("WAV format {tag:#06x} with {bits}-bit samples as a live upload (16-bit PCM is what recorders write)"))),
    };
    Ok(Layout { encoding, channels, rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, samples: &[i16], data_size: Option<u32>) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
        let riff = (4 + 12 + 24 + 8 + data.len()) as u32;
        b[4..8].copy_from_slice(&riff.to_le_bytes());
        b.extend(b"LIST\x04\0\0\0INFO");
        b.extend(b"fmt \x10\0\0\0");
        b.extend(1u16.to_le_bytes());
        b.extend(channels.to_le_bytes());
        b.extend(rate.to_le_bytes());
        b.extend((rate * 2 * channels as u32).to_le_bytes());
        b.extend((2 * channels).to_le_bytes());
        b.extend(16u16.to_le_bytes());
        b.extend(b"data");
        b.extend(data_size.unwrap_or(data.len() as u32).to_le_bytes());
        b.extend(data);
        b
    }

    fn decode_in_pieces(content_type: &str, bytes: &[u8], piece: usize) -> Result<Vec<f32>, AudioError> {
        let mut d = LiveDecoder::new(content_type, f32::INFINITY)?;
        let mut out = Vec::new();
        for p in bytes.chunks(piece) {
            d.push(p, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    fn tone(n: usize, channels: usize) -> Vec<i16> {
        (0..n * channels).map(|i| (((i / channels) as f32 * 0.05).sin() * 8000.0) as i16).collect()
    }

    #[test]
    fn a_wav_stream_in_any_pieces_decodes_as_the_whole_file_does() {
        for (rate, channels) in [(16_000, 1), (44_100, 2), (8_000, 1)] {
            let file = wav(rate, channels, &tone(rate as usize, channels as usize), None);
            let whole = crate::audio::decode_to_pcm16k(&file, Some("wav"), f32::INFINITY).unwrap().samples;
            for piece in [1, 7, 4096, file.len()] {
                let live = decode_in_pieces("audio/wav", &file, piece).unwrap();
                assert_eq!(live.len(), whole.len(), "{rate} Hz ×{channels}, pieces of {piece}");
                let worst = live.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-4, "{rate} Hz ×{channels}, pieces of {piece}: differs by {worst}");
            }
        }
    }

    #[test]
    fn a_placeholder_data_size_reads_to_the_end_and_a_real_one_stops_there() {
        let samples = tone(1600, 1);
        for placeholder in [0, 0xFFFF_FFFF, 0x7FFF_FFFF] {
            let out = decode_in_pieces("audio/x-wav", &wav(16_000, 1, &samples, Some(placeholder)), 100).unwrap();
            assert_eq!(out.len(), 1600);
        }
        let mut file = wav(16_000, 1, &samples, Some(800 * 2));
        file.extend(b"LIST\x10\0\0\0trailing chunk..");
        assert_eq!(decode_in_pieces("audio/wav", &file, 333).unwrap().len(), 800);
    }

    #[test]
    fn l16_is_big_endian_with_its_rate_and_channels_from_the_media_type() {
        let samples = tone(16_000, 2);
        let be: Vec<u8> = samples.iter().flat_map(|s| s.to_be_bytes()).collect();
        let out = decode_in_pieces("audio/L16; rate=32000; channels=2", &be, 999).unwrap();
        assert_eq!(out.len(), 8_000);
        let le = wav(32_000, 2, &samples, None);
        let whole = crate::audio::decode_to_pcm16k(&le, Some("wav"), f32::INFINITY).unwrap().samples;
        assert!(out.iter().zip(&whole).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn bad_live_uploads_are_named() {
        let e = |ct: &str, b: &[u8]| decode_in_pieces(ct, b, 64).unwrap_err().to_string();
        assert!(e("audio/mpeg", b"ID3").contains("'audio/mpeg' as a live upload"));
        assert!(e("audio/L16", b"").contains("without a rate"));
        assert!(e("audio/wav", b"OggS\0\0\0\0\0\0\0\0\0\0").contains("not a RIFF WAVE"));
        assert!(e("audio/wav", b"RIFF\0\0\0\0WAVEfmt ").contains("header is incomplete"));
        assert_eq!(decode_in_pieces("audio/wav", &wav(16_000, 1, &[], None), 64).unwrap_err(), AudioError::Empty);
        let mut float64 = wav(16_000, 1, &tone(10, 1), None);
        float64[32] = 3;
        float64[46] = 64;
        assert!(e("audio/wav", &float64).contains("0x0003 with 64-bit"));
        let mut d = LiveDecoder::new("audio/L16;rate=16000", 1.0).unwrap();
        let second: Vec<u8> = tone(16_001, 1).iter().flat_map(|s| s.to_be_bytes()).collect();
        assert_eq!(d.push(&second, &mut Vec::new()), Err(AudioError::TooLong { max_seconds: 1.0 }));
    }
}
