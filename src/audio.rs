//! Decode an uploaded audio file into Whisper's input: mono f32 PCM at 16 kHz.
//!
//! Stage: `bytes → Pcm16k` (see `mel.rs` for the next one). Everything runs in the sandbox on
//! one thread, over the in-memory upload:
//!
//! * **Demux + decode** with symphonia (WAV incl. 8/16/24/32-bit int and 32/64-bit float, A-law,
//!   µ-law and ADPCM; MP3; FLAC; Ogg Vorbis; MP4/M4A with AAC or ALAC). Encoder delay/padding
//!   is removed where the container records it: symphonia's gapless mode (MP3 LAME/Xing header,
//!   Ogg granule positions) plus our own reading of the MP4 edit list, which symphonia 0.5
//!   ignores (AAC would otherwise start 1024 samples late). Raw ADTS AAC keeps its priming
//!   (≈ 23 ms). Matroska/WebM is refused (415 naming the codec): symphonia 0.5's demuxer panics
//!   on malformed files (found by fuzzing, see `fuzz/`), and a panic is a trap in wasm.
//! * **Tags are never parsed**: leading ID3v2 tags are cut off, FLAC metadata blocks other than
//!   STREAMINFO become padding and MP4 `udta`/`meta` boxes become `free` before symphonia sees
//!   them (its tag readers allocate whatever length a field declares, up to 4 GiB, before
//!   reading it); MP4 sample tables must hold the entries they declare, a WAV's format must
//!   be plausible, and sample rates lie in 1–768 kHz ([`harden`]). All found by fuzzing
//!   (`fuzz/`, reproducers in `fuzz/regressions/audio/`).
//! * **Downmix** every channel by averaging (as `ffmpeg -ac 1` does for openai-whisper), not by
//!   keeping channel 0. Float samples are first clipped to full scale and NaN zeroed, as the
//!   references' 16-bit conversion does, so the log-mel stays finite for any input.
//! * **Resample** to 16 kHz with rubato's `FftFixedIn`: a synchronous (exact-ratio) resampler
//!   that multiplies the spectrum by a Blackman-Harris-windowed sinc low-pass whose cutoff sits
//!   just under the lower Nyquist frequency, i.e. a proper band-limited resampler with strong
//!   anti-aliasing. It runs on the mono signal, in chunks as packets arrive, so memory stays
//!   bounded: we never hold the whole source-rate signal, only the 16 kHz mono output.
//! * **Cap** the duration while decoding: as soon as the decoded input exceeds `max_seconds` we
//!   stop with [`AudioError::TooLong`] instead of decoding the rest.
//!
//! Errors are not swallowed: end of stream is symphonia's `IoError(UnexpectedEof)`; a
//! `DecodeError` on one packet skips that packet (counted in [`Pcm16k::skipped_packets`]); a
//! demuxer failure midway keeps what was decoded so far ([`Pcm16k::truncated`]); if nothing
//! usable comes out the result is [`AudioError::Corrupt`]. Formats we cannot read are named in
//! [`AudioError::Unsupported`], recognised from their magic bytes where possible.

use std::io::{Cursor, ErrorKind};
use std::sync::Arc;

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::{AudioBuffer, AudioBufferRef};
use symphonia::core::codecs::{self, CodecType, Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::conv::IntoSample;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Track};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::sample::Sample;

/// Whisper's sample rate in Hz (openai-whisper `audio.SAMPLE_RATE`).
pub const TARGET_RATE: u32 = 16_000;

/// Source sample rates we resample (outside: [`AudioError::Unsupported`]).
const MIN_SOURCE_RATE: u32 = 1_000;
const MAX_SOURCE_RATE: u32 = 768_000;

/// Source frames fed to the resampler per call (≈ 21–128 ms of input, depending on the rate).
const RESAMPLE_CHUNK: usize = 1024;

/// Decoded audio, ready for the log-mel stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm16k {
    /// Mono samples at [`TARGET_RATE`] (16 kHz), nominally in [-1, 1] (a resampled full-scale
    /// signal can overshoot slightly). Always finite: float input beyond full scale is clipped
    /// to [-1, 1] and NaN becomes 0 before resampling (see [`full_scale`]).
    pub samples: Vec<f32>,
    /// Sample rate of the input in Hz (of the first decoded packet if it changed midway).
    pub source_rate: u32,
    /// Channel count of the input (the largest seen), before downmixing.
    pub source_channels: usize,
    /// Duration of the decoded input in seconds (source frames / source rate).
    pub duration_s: f32,
    /// Codec short name as symphonia reports it, e.g. `"pcm_s16le"`, `"mp3"`, `"flac"`,
    /// `"vorbis"`, `"aac"`.
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
    /// e.g. "Opus audio in an Ogg container" or "not an audio file (looks like HTML)".
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
/// and the copy is hardened for symphonia ([`harden`]).
pub fn decode_to_pcm16k(
    bytes: &[u8],
    hint: Option<&str>,
    max_seconds: f32,
) -> Result<Pcm16k, AudioError> {
    // Check the cheap rejections before copying.
    let sniffed = sniff(bytes);
    reject_early(bytes, &sniffed)?;
    // Leading ID3v2 tags are dropped unread; what follows is hardened for its kind.
    let mut body = bytes[leading_id3v2_len(bytes)..].to_vec();
    if body.is_empty() {
        return Err(AudioError::Empty);
    }
    harden(&mut body)?;
    decode_source(Arc::new(body), sniffed, hint, max_seconds)
}

/// Length of the ID3v2 tags at the start of `b` (header, syncsafe size, optional footer), at
/// most `b.len()`. symphonia's ID3v2 reader allocates each frame's declared size (up to
/// 256 MiB) before reading it; we use no tags, so they are cut off instead.
fn leading_id3v2_len(b: &[u8]) -> usize {
    let mut pos = 0usize;
    while let Some(h) = b.get(pos..pos + 10) {
        if &h[..3] != b"ID3" {
            break;
        }
        let size = h[6..10]
            .iter()
            .fold(0usize, |n, &x| (n << 7) | usize::from(x & 0x7F));
        pos += 10 + size + if h[5] & 0x10 != 0 { 10 } else { 0 };
    }
    pos.min(b.len())
}

/// Prepares an upload (after its ID3v2 tags) for symphonia 0.5, in place, by what it starts
/// with: FLAC tags become padding, MP4 tags become `free` boxes and its tables are checked,
/// a WAV's format chunk is checked and its `LIST` chunks become `JUNK`. symphonia's probe scans data it does not recognise for a
/// container marker anywhere in it and reads the container from there, so such data is
/// hardened at every marker (and ID3v2 tags in it are unmarked); a failed check there means
/// "not audio".
fn harden(b: &mut [u8]) -> Result<(), AudioError> {
    match sniff(b) {
        Sniff::Audio("FLAC") => flac_metadata_to_padding(b),
        Sniff::Audio("MP4/M4A") => mp4_harden(b)?,
        Sniff::Audio("WAV") => wav_harden(b)?,
        // The probe reads these from the first byte. MPEG/ADTS only if the first two bytes
        // are one of its markers: else it scans on (found by fuzzing: a sync word of a layer
        // we sniff as MPEG but it does not register, then a FLAC with a 2 GB picture block).
        Sniff::Audio("Ogg") => {}
        _ if probe_marker_at_start(b) => {}
        _ => {
            let unrecognised = |_| unsupported("unrecognised data (no known audio signature)");
            let marks: Vec<(usize, &[u8; 4])> = b
                .windows(4)
                .enumerate()
                .filter_map(|(i, w)| match w {
                    b"fLaC" => Some((i, b"fLaC")),
                    b"ftyp" if i >= 4 => Some((i - 4, b"ftyp")),
                    b"RIFF" => Some((i, b"RIFF")),
                    [b'I', b'D', b'3', 2..=4] => Some((i, b"ID3 ")),
                    _ => None,
                })
                .collect();
            for (at, mark) in marks {
                match mark {
                    b"fLaC" => flac_metadata_to_padding(&mut b[at..]),
                    b"ftyp" => mp4_harden(&mut b[at..]).map_err(unrecognised)?,
                    // An ID3v2 tag: symphonia reads it (frames of up to 4 GiB, allocated
                    // first; found by fuzzing). Unmark it so the probe passes over it.
                    b"ID3 " => b[at..at + 3].copy_from_slice(b"id3"),
                    _ => wav_harden(&mut b[at..]).map_err(unrecognised)?,
                }
            }
        }
    }
    Ok(())
}

/// Whether `b` starts with one of the MPEG audio (layers I–III) or ADTS markers symphonia's
/// probe registers, so that it reads the stream from there rather than scanning further.
fn probe_marker_at_start(b: &[u8]) -> bool {
    match b {
        [0xFF, 0xF1, ..] => true, // ADTS (MPEG-4)
        // 11 sync bits, a version other than "reserved" (01), a layer other than 00.
        [0xFF, x, ..] => x & 0xE0 == 0xE0 && x & 0x18 != 0x08 && x & 0x06 != 0,
        _ => false,
    }
}

/// Makes an MP4/M4A safe to hand to symphonia 0.5, in place: its metadata boxes (`udta`,
/// `meta`: tags, cover art) become `free` boxes, which it skips unread, and the sample tables
/// and `hdlr` boxes it reads must be as long as they declare. symphonia allocates a table
/// from its declared entry count before reading it (a 28-byte `stsc` claiming 2.6 G entries
/// asked for 42 GB) and subtracts `hdlr`'s fixed fields from its length without a check (found
/// by fuzzing). Such a file is corrupt, whatever else is in it.
fn mp4_harden(b: &mut [u8]) -> Result<(), AudioError> {
    fn walk(b: &mut [u8], range: std::ops::Range<usize>, depth: usize) -> Result<(), AudioError> {
        for (start, kind, payload, cut) in mp4_children(b, range) {
            match &kind {
                b"udta" | b"meta" => b[start + 4..start + 8].copy_from_slice(b"free"),
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" if depth < 8 => {
                    walk(b, payload, depth + 1)?
                }
                // symphonia allocates `hdlr`'s declared name length before reading it.
                b"hdlr" if cut => {
                    return Err(AudioError::Corrupt {
                        detail: "MP4 'hdlr' box runs past the end of the file".into(),
                    })
                }
                _ => mp4_check_box(&kind, &b[payload], b.len())?,
            }
        }
        Ok(())
    }
    walk(b, 0..b.len(), 0)
}

/// The boxes in `b[range]`: (start of the box, type, payload range, whether it runs past the
/// end of `b`), up to the first malformed header.
#[allow(clippy::type_complexity)]
fn mp4_children(
    b: &[u8],
    range: std::ops::Range<usize>,
) -> Vec<(usize, [u8; 4], std::ops::Range<usize>, bool)> {
    let (mut pos, end) = (range.start, range.end.min(b.len()));
    let mut out = Vec::new();
    while pos + 8 <= end {
        let size32 = u32::from_be_bytes(b[pos..pos + 4].try_into().expect("4 bytes"));
        let kind: [u8; 4] = b[pos + 4..pos + 8].try_into().expect("4 bytes");
        let (header, size) = match size32 {
            // "To the end of the file" (an `mdat`); symphonia reads such a box as empty.
            0 => {
                out.push((pos, kind, pos + 8..pos + 8, false));
                break;
            }
            1 if pos + 16 <= end => {
                let size = u64::from_be_bytes(b[pos + 8..pos + 16].try_into().expect("8 bytes"));
                (16, usize::try_from(size).unwrap_or(usize::MAX))
            }
            1 => break,
            n => (8, n as usize),
        };
        if size < header {
            break;
        }
        // symphonia reads a box to its declared end even past its parent's (found by fuzzing:
        // an `stsd` running out of a 24-byte `stbl` still had its `esds` read), so the payload
        // is taken as declared, up to the end of the data; siblings stop at the parent's end.
        let declared_end = pos.saturating_add(size);
        out.push((
            pos,
            kind,
            pos + header..declared_end.min(b.len()),
            declared_end > b.len(),
        ));
        pos = declared_end.min(end);
    }
    out
}

/// Checks one leaf box symphonia reads with a length it trusts (see [`mp4_harden`]).
fn mp4_check_box(kind: &[u8; 4], payload: &[u8], file_len: usize) -> Result<(), AudioError> {
    let u32_at = |i: usize| {
        payload
            .get(i..i + 4)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    };
    // symphonia reads each sample into a buffer of the size `stsz` gives it, allocated first:
    // no sample can be larger than the file (3 GB was found by fuzzing).
    if kind == b"stsz" {
        let too_big = |size: u32| size as usize > file_len;
        let count = u32_at(8).unwrap_or(0) as usize;
        let sizes = payload
            .get(12..)
            .unwrap_or_default()
            .chunks_exact(4)
            .take(count);
        if u32_at(4).is_some_and(too_big)
            || sizes
                .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
                .any(too_big)
        {
            return Err(AudioError::Corrupt {
                detail: format!(
                    "MP4 'stsz' declares a sample larger than the {file_len}-byte file"
                ),
            });
        }
    }
    // (entry count offset, table offset, bytes per entry); `stsz` has a table only when its
    // common sample size is 0.
    let table = match kind {
        b"stts" => Some((4, 8, 8)),
        b"stsc" => Some((4, 8, 12)),
        b"stco" => Some((4, 8, 4)),
        b"co64" => Some((4, 8, 8)),
        b"stsz" if u32_at(4) == Some(0) => Some((8, 12, 4)),
        b"stsz" => Some((8, 12, 0)),
        // The sample descriptions: `esds` sits inside an `mp4a` entry (after its fixed fields,
        // whose length depends on the entry's version), so look for the box by its type.
        b"stsd" => {
            let mut from = 4;
            // (`get`: an `stsd` shorter than its 4-byte header was found by fuzzing.)
            while let Some(i) = payload
                .get(from..)
                .and_then(|p| p.windows(4).position(|w| w == b"esds"))
                .map(|i| i + from)
            {
                from = i + 4;
                let size =
                    u32::from_be_bytes(payload[i - 4..i].try_into().expect("4 bytes")) as usize;
                if size < 8 {
                    continue;
                }
                // One running past its sample description is read by symphonia from whatever
                // follows (found by fuzzing): corrupt either way.
                let Some(esds) = payload.get(i + 4..(i - 4).saturating_add(size)) else {
                    return Err(AudioError::Corrupt {
                        detail: "MP4 'esds' box runs past its sample description".into(),
                    });
                };
                if !mp4_esds_ok(esds) {
                    return Err(AudioError::Corrupt {
                        detail: "MP4 'esds' box without a readable ES descriptor".into(),
                    });
                }
            }
            None
        }
        // symphonia makes the track's time base from it: `TimeBase::new(1, 0)` panics (found
        // by fuzzing).
        b"mdhd"
            if payload
                .first()
                .is_some_and(|&v| payload.len() >= if v == 1 { 24 } else { 16 })
                && mp4_timescale(payload).is_none() =>
        {
            return Err(AudioError::Corrupt {
                detail: "MP4 'mdhd' declares a timescale of 0".into(),
            })
        }
        b"hdlr" if payload.len() < 24 => {
            return Err(AudioError::Corrupt {
                detail: format!(
                    "MP4 'hdlr' box of {} bytes is shorter than its fields",
                    payload.len()
                ),
            })
        }
        _ => None,
    };
    let Some((count_at, table_at, entry)) = table else {
        return Ok(());
    };
    let name = String::from_utf8_lossy(kind);
    let count = u32_at(count_at).ok_or_else(|| AudioError::Corrupt {
        detail: format!("MP4 '{name}' box of {} bytes is cut short", payload.len()),
    })?;
    let need = table_at as u64 + u64::from(count) * entry;
    if need > payload.len() as u64 {
        return Err(AudioError::Corrupt {
            detail: format!(
                "MP4 '{name}' table declares {count} entries but holds {} bytes",
                payload.len()
            ),
        });
    }
    Ok(())
}

/// Whether symphonia 0.5 can read an `esds` payload (after the box header) without trusting
/// a length past the data. Its reader unwraps a missing ES descriptor (found by fuzzing),
/// allocates a decoder-specific info's declared length (up to 256 MiB) before reading it, and
/// subtracts the fixed fields from descriptor lengths unchecked; this walks the descriptors
/// the way it does (ES → decoder config → decoder-specific info) and requires each to fit.
fn mp4_esds_ok(payload: &[u8]) -> bool {
    /// (tag, content) of the descriptors in `b` while more than 2 bytes are left, as symphonia
    /// reads them; None if a length (1–4 bytes of 7 bits) or a content runs past `b`.
    fn descriptors(b: &[u8]) -> Option<Vec<(u8, &[u8])>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while b.len() - pos > 2 {
            let tag = b[pos];
            pos += 1;
            let mut len = 0usize;
            for _ in 0..4 {
                let x = *b.get(pos)?;
                pos += 1;
                len = (len << 7) | usize::from(x & 0x7F);
                if x & 0x80 == 0 {
                    break;
                }
            }
            out.push((tag, b.get(pos..pos.checked_add(len)?)?));
            pos += len;
        }
        Some(out)
    }
    let Some(top) = payload.get(4..).and_then(descriptors) else {
        return false;
    };
    let mut found = false;
    for (_, es) in top.into_iter().filter(|(tag, _)| *tag == 3) {
        // ES_ID (2), flags (1), then the optional fields the flags announce.
        let Some(&flags) = es.get(2) else {
            return false;
        };
        let mut at = 3;
        if flags & 0x80 != 0 {
            at += 2;
        }
        if flags & 0x40 != 0 {
            at += 1 + es.get(at).map_or(0, |&n| usize::from(n));
        }
        if flags & 0x20 != 0 {
            at += 2;
        }
        let Some(children) = es.get(at.min(es.len())..).and_then(descriptors) else {
            return false;
        };
        for (_, config) in children.into_iter().filter(|(tag, _)| *tag == 4) {
            // 13 bytes of fields, then the decoder-specific info among its descriptors.
            if config.len() < 13 || descriptors(&config[13..]).is_none() {
                return false;
            }
        }
        found = true;
    }
    found
}

/// Turns every FLAC metadata block but STREAMINFO into PADDING (same length, so the audio
/// frames stay where they are), in place. symphonia then skips them unread: we use no tags,
/// pictures, cue sheets or seek tables, and its tag parsers trust the lengths inside them.
fn flac_metadata_to_padding(b: &mut [u8]) {
    const STREAMINFO: u8 = 0;
    const PADDING: u8 = 1;
    let mut pos = 4; // after "fLaC"
    while pos + 4 <= b.len() {
        let (last, kind) = (b[pos] & 0x80, b[pos] & 0x7F);
        if kind != STREAMINFO {
            b[pos] = last | PADDING;
        }
        let len = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        if last != 0 {
            break;
        }
        pos += 4 + len;
    }
}

/// The upload, shared between symphonia's reader and our error messages (no copy).
type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// `AsRef<[u8]>` view of [`SharedBytes`] for `std::io::Cursor` (symphonia's `MediaSource`).
struct SharedCursorData(SharedBytes);

impl AsRef<[u8]> for SharedCursorData {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

fn reject_early(bytes: &[u8], sniffed: &Sniff) -> Result<(), AudioError> {
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

fn decode_source(
    data: SharedBytes,
    sniffed: Sniff,
    hint: Option<&str>,
    max_seconds: f32,
) -> Result<Pcm16k, AudioError> {
    let bytes: &[u8] = (*data).as_ref();
    let mut probe_hint = Hint::new();
    if let Some(h) = hint {
        apply_hint(&mut probe_hint, h);
    }
    // symphonia's ADTS reader estimates the duration by seeking to sample points spaced
    // `(len - 2·pos) / 4` apart (its frame position subtracted twice) and panics on a spacing
    // of 0 (`step_by(0)`, found by fuzzing), i.e. when it finds the first frame within 2 bytes
    // of the middle of the data (after ID3 tags, junk, …). Only then read the data as a
    // non-seekable stream, which takes its other branch.
    let seekable = !adts_midpoint_hazard(bytes);
    let mut format = match open_format(&data, &probe_hint, seekable) {
        Ok(format) => format,
        // Retry reading linearly (a source that cannot seek), which needs less of the file:
        // - MP4 whose `mdat` runs past the end (a cut-off upload with the index first): the
        //   reader then stops parsing at `mdat` instead of seeking past it;
        // - Ogg: the reader no longer scans the end of the file for the duration, so a damaged
        //   tail cannot fail the whole file.
        Err(first) if seekable && matches!(sniffed, Sniff::Audio("MP4/M4A" | "Ogg")) => {
            open_format(&data, &probe_hint, false)
                .map_err(|_| probe_error(&sniffed, bytes, first))?
        }
        Err(e) => return Err(probe_error(&sniffed, bytes, e)),
    };

    let mut track = open_track(format.as_ref(), &sniffed, bytes)?;
    let trim = match sniffed {
        Sniff::Audio("MP4/M4A") => mp4_audio_trim(bytes),
        _ => None,
    };
    let mut sink = Sink::new(max_seconds, trim);
    sink.reserve_for(&track, bytes.len());
    let mut skipped_packets = 0usize;
    let mut unsupported_packets = 0usize;
    let mut last_decode_error: Option<String> = None;
    let mut stream_error: Option<String> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            // symphonia reports the end of the stream as an unexpected EOF.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            // The track list changed (e.g. chained Ogg streams): pick the track again.
            Err(SymphoniaError::ResetRequired) => {
                let switches = track.switches + 1;
                match open_track(format.as_ref(), &sniffed, bytes) {
                    Ok(next) => track = OpenTrack { switches, ..next },
                    // A later link we cannot decode: keep what the earlier ones gave.
                    Err(e) if sink.total_frames > 0 => {
                        stream_error = Some(e.to_string());
                        break;
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            Err(e) => {
                stream_error = Some(e.to_string());
                break;
            }
        };
        if packet.track_id() != track.id {
            continue;
        }
        match track.decoder.decode(&packet) {
            Ok(decoded) => sink.push(decoded)?,
            // A bad packet: skip it and go on. `Unsupported` counts too: mid-stream it is almost
            // always damaged data parsed as an exotic feature; if no packet decodes at all it
            // is reported as unsupported below.
            Err(SymphoniaError::DecodeError(msg)) => {
                skipped_packets += 1;
                last_decode_error = Some(format!("malformed packet: {msg}"));
            }
            Err(SymphoniaError::Unsupported(msg)) => {
                skipped_packets += 1;
                unsupported_packets += 1;
                last_decode_error = Some(format!("unsupported feature: {msg}"));
            }
            // A packet cut short inside the decoder (truncated data).
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                skipped_packets += 1;
                last_decode_error = Some(format!("packet cut short: {e}"));
            }
            Err(SymphoniaError::ResetRequired) => {
                track.decoder.reset();
            }
            Err(e) => {
                stream_error = Some(e.to_string());
                break;
            }
        }
    }

    let decoded_source_frames = sink.total_frames;
    let out = sink.finish();
    let Some(Decoded {
        samples,
        source_rate,
        source_channels,
        duration_s,
    }) = out
    else {
        // Nothing decoded at all.
        if skipped_packets > 0 && unsupported_packets == skipped_packets {
            return Err(unsupported(format!(
                "{} stream using a feature the decoder lacks ({})",
                track.codec_name,
                last_decode_error.unwrap_or_default()
            )));
        }
        if let Some(err) = stream_error.or(last_decode_error) {
            return Err(nothing_decoded(
                &sniffed,
                &track.codec_name,
                skipped_packets,
                err,
            ));
        }
        return Err(AudioError::Empty);
    };
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    // Declared length (after gapless trimming) vs what we got: > 100 ms short = cut off.
    let short_of_declared = track.switches == 0
        && track
            .n_frames
            .is_some_and(|n| decoded_source_frames + u64::from(source_rate) / 10 < n);
    Ok(Pcm16k {
        samples,
        source_rate,
        source_channels,
        duration_s: duration_s as f32,
        codec: track.codec_name,
        skipped_packets,
        truncated: stream_error.is_some() || short_of_declared,
    })
}

/// Whether an ADTS sync word (12 set bits, layer 00) sits where symphonia's ADTS reader
/// would panic on finding its first frame (see `decode_source`).
fn adts_midpoint_hazard(b: &[u8]) -> bool {
    let len = b.len();
    (len.saturating_sub(3).div_ceil(2)..=len / 2)
        .any(|p| matches!(b.get(p..p + 2), Some(&[0xFF, x]) if x & 0xF6 == 0xF0))
}

/// Error for a stream that produced no audio at all.
fn nothing_decoded(sniffed: &Sniff, codec: &str, skipped: usize, err: String) -> AudioError {
    match sniffed {
        // Something symphonia latched onto inside data we do not recognise (e.g. a stray MP3
        // sync word in random bytes): not an audio file rather than a corrupt one.
        Sniff::Unknown => unsupported("unrecognised data (no known audio signature)"),
        _ if skipped > 0 => AudioError::Corrupt {
            detail: format!("all {skipped} {codec} packets failed to decode (last error: {err})"),
        },
        _ => AudioError::Corrupt {
            detail: format!("{codec}: {err}"),
        },
    }
}

/// Probes the container over the shared bytes, optionally hiding that the source can seek.
fn open_format(
    data: &SharedBytes,
    hint: &Hint,
    seekable: bool,
) -> Result<Box<dyn FormatReader>, SymphoniaError> {
    let cursor = Cursor::new(SharedCursorData(data.clone()));
    let source: Box<dyn MediaSource> = if seekable {
        Box::new(cursor)
    } else {
        Box::new(ReadOnlySource::new(cursor))
    };
    let mss = MediaSourceStream::new(source, Default::default());
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    symphonia::default::get_probe()
        .format(hint, mss, &format_opts, &MetadataOptions::default())
        .map(|probed| probed.format)
}

fn apply_hint(hint: &mut Hint, h: &str) {
    let h = h.trim();
    let h = h.split(';').next().unwrap_or(h).trim(); // drop MIME parameters
    if h.contains('/') {
        hint.mime_type(&h.to_ascii_lowercase());
    } else {
        let ext = h.rsplit('.').next().unwrap_or(h);
        if !ext.is_empty() {
            hint.with_extension(&ext.to_ascii_lowercase());
        }
    }
}

/// Maps a probe failure to an error naming what we recognised.
fn probe_error(sniffed: &Sniff, bytes: &[u8], err: SymphoniaError) -> AudioError {
    match (sniffed, err) {
        (Sniff::Audio("WAV"), SymphoniaError::Unsupported(msg)) => match wav_format_tag(bytes) {
            Some(tag) => unsupported(format!(
                "{} audio in a WAV container (format tag 0x{tag:04X})",
                wav_codec_name(tag)
            )),
            None => unsupported(format!("WAV variant not supported by the decoder ({msg})")),
        },
        (Sniff::Audio(container), SymphoniaError::Unsupported(msg)) => unsupported(format!(
            "{container} variant not supported by the decoder ({msg})"
        )),
        (Sniff::Audio("MP4/M4A"), _) if !bytes.windows(4).any(|w| w == b"moov") => {
            AudioError::Corrupt {
                detail:
                    "MP4/M4A file without its index (moov box): probably cut off before the end"
                        .into(),
            }
        }
        (Sniff::Audio(container), SymphoniaError::IoError(e))
            if e.kind() == ErrorKind::UnexpectedEof =>
        {
            AudioError::Corrupt {
                detail: format!("{container} file ends inside its header"),
            }
        }
        (Sniff::Audio(container), e) => AudioError::Corrupt {
            detail: format!("{container} header could not be read: {e}"),
        },
        _ => unsupported("unrecognised data (no known audio signature)"),
    }
}

/// The selected track and its decoder.
struct OpenTrack {
    id: u32,
    decoder: Box<dyn Decoder>,
    codec_name: String,
    /// Frames the container declares for the track, if any.
    n_frames: Option<u64>,
    /// Sample rate the container declares, if any.
    sample_rate: Option<u32>,
    /// How many times the track was re-selected (chained streams): then `n_frames` is per link.
    switches: usize,
}

/// Picks the first track with a decoder we have; otherwise names the codec we lack.
fn open_track(
    format: &dyn FormatReader,
    sniffed: &Sniff,
    bytes: &[u8],
) -> Result<OpenTrack, AudioError> {
    let registry = symphonia::default::get_codecs();
    let tracks = format.tracks();
    let usable = tracks.iter().find(|t| {
        t.codec_params.codec != CODEC_TYPE_NULL
            && registry.get_codec(t.codec_params.codec).is_some()
    });
    let Some(track) = usable else {
        return Err(unsupported(describe_unsupported_tracks(
            tracks, sniffed, bytes,
        )));
    };
    let decoder = registry
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(msg) => unsupported(format!(
                "{} variant not supported ({msg})",
                codec_display_name(track.codec_params.codec)
            )),
            e => AudioError::Corrupt {
                detail: format!("cannot start the decoder: {e}"),
            },
        })?;
    let codec_name = registry
        .get_codec(track.codec_params.codec)
        .map(|d| d.short_name.to_string())
        .unwrap_or_else(|| codec_display_name(track.codec_params.codec).to_string());
    Ok(OpenTrack {
        id: track.id,
        decoder,
        codec_name,
        n_frames: track.codec_params.n_frames,
        sample_rate: track.codec_params.sample_rate,
        switches: 0,
    })
}

fn describe_unsupported_tracks(tracks: &[Track], sniffed: &Sniff, bytes: &[u8]) -> String {
    let container: &str = match sniffed {
        Sniff::Audio(c) => c,
        _ => "unrecognised",
    };
    let codec = match tracks
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
    {
        Some(t) => Some(codec_display_name(t.codec_params.codec)),
        // symphonia's MP4 reader leaves codecs it does not know as NULL: read the sample entry.
        None if container == "MP4/M4A" => mp4_audio_sample_entry(bytes),
        None => None,
    };
    match codec {
        // Bare elementary streams: the codec is the format.
        Some(codec)
            if matches!(
                container,
                "MPEG audio" | "ID3-tagged MPEG audio" | "ADTS AAC"
            ) =>
        {
            format!("{codec} audio")
        }
        Some(codec) => format!("{codec} audio in {} container", with_article(container)),
        None if tracks.is_empty() => format!("{container} file without an audio track"),
        None => format!("{container} file with an audio codec we cannot identify"),
    }
}

/// Prepares a WAV for symphonia 0.5, in place: rejects a `fmt ` chunk declaring 0 channels,
/// a sample rate of 0 Hz or a block size of 0 (it panics on a 0 Hz rate, `TimeBase::new(1, 0)`,
/// and divides by the others; found by fuzzing, in a first and in a second `fmt ` chunk: it
/// reads them all), and turns `LIST` chunks (INFO tags) into `JUNK`, which it skips unread:
/// its INFO reader allocates each string's declared length first (800 MB, found by fuzzing).
/// ADPCM with more than 2 channels is refused (415).
fn wav_harden(b: &mut [u8]) -> Result<(), AudioError> {
    let mut pos = 12; // after "RIFF" size "WAVE"
    while pos + 8 <= b.len() {
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        if &b[pos..pos + 4] == b"fmt " {
            let Some(f) = b.get(pos + 8..pos + 8 + 14) else {
                return Ok(());
            };
            let tag = u16::from_le_bytes([f[0], f[1]]);
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            let block_align = u16::from_le_bytes([f[12], f[13]]);
            if channels == 0 || rate == 0 || block_align == 0 {
                return Err(AudioError::Corrupt {
                    detail: format!(
                        "WAV format chunk declares {channels} channels at {rate} Hz in blocks of {block_align} bytes"
                    ),
                });
            }
            // symphonia's ADPCM decoder hits `unreachable!()` beyond 2 channels (found by
            // fuzzing). (WAVE_FORMAT_EXTENSIBLE carries its sub-format 24 bytes in.)
            let sub = if tag == 0xFFFE {
                b.get(pos + 32..pos + 34)
                    .map(|t| u16::from_le_bytes([t[0], t[1]]))
            } else {
                Some(tag)
            };
            if matches!(sub, Some(0x0002 | 0x0011)) && channels > 2 {
                return Err(unsupported(format!(
                    "{} audio with {channels} channels (1 or 2 are supported)",
                    wav_codec_name(sub.unwrap_or(tag))
                )));
            }
        } else if &b[pos..pos + 4] == b"LIST" {
            b[pos..pos + 4].copy_from_slice(b"JUNK");
        }
        let Some(next) = pos.checked_add(8 + size + (size & 1)) else {
            return Ok(());
        };
        pos = next;
    }
    Ok(())
}

/// The WAVE `fmt ` chunk's format tag (the sub-format's for WAVE_FORMAT_EXTENSIBLE).
fn wav_format_tag(b: &[u8]) -> Option<u16> {
    let u16_at = |i: usize| b.get(i..i + 2).map(|x| u16::from_le_bytes([x[0], x[1]]));
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
    };
    let mut pos = 12; // after "RIFF" size "WAVE"
    while pos + 8 <= b.len() {
        let size = u32_at(pos + 4)? as usize;
        if &b[pos..pos + 4] == b"fmt " {
            let tag = u16_at(pos + 8)?;
            return if tag == 0xFFFE {
                u16_at(pos + 8 + 24)
            } else {
                Some(tag)
            };
        }
        pos = pos.checked_add(8 + size + (size & 1))?;
    }
    None
}

fn wav_codec_name(tag: u16) -> &'static str {
    match tag {
        0x0001 => "PCM",
        0x0002 => "Microsoft ADPCM",
        0x0003 => "IEEE float",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0022 => "TrueSpeech",
        0x0031 => "GSM 6.10",
        0x0040 | 0x0064 | 0x0045 => "G.72x ADPCM",
        0x0050 => "MPEG Layer I/II",
        0x0055 => "MP3",
        0x00FF | 0x1610 | 0x1600 => "AAC",
        0x0160..=0x0163 => "WMA",
        0x2000 => "AC-3",
        0x2001 => "DTS",
        _ => "an unknown codec's",
    }
}

/// The first audio sample entry (`stsd`) fourcc of an MP4/MOV file, named; None if not found.
fn mp4_audio_sample_entry(b: &[u8]) -> Option<&'static str> {
    // stsd box: size(4) "stsd" version/flags(4) entry_count(4) | entry: size(4) fourcc(4) …
    let mut from = 0;
    while let Some(i) = b[from..]
        .windows(4)
        .position(|w| w == b"stsd")
        .map(|i| i + from)
    {
        from = i + 4;
        let Some(fourcc) = b.get(i + 16..i + 20) else {
            break;
        };
        let name = match fourcc {
            b"ac-3" => "AC-3 (Dolby Digital)",
            b"ec-3" => "E-AC-3 (Dolby Digital Plus)",
            b"ac-4" => "AC-4",
            b"samr" => "AMR (Adaptive Multi-Rate speech)",
            b"sawb" => "AMR-WB (wideband Adaptive Multi-Rate speech)",
            b"sevc" | b"sqcp" => "EVRC/QCELP speech",
            b"Opus" => "Opus",
            b"dtsc" | b"dtsh" | b"dtsl" | b"dtse" => "DTS",
            b"mp4a" => "MPEG-4 audio (AAC variant)",
            b"fLaC" => "FLAC",
            b"alac" => "ALAC",
            b"ima4" => "IMA4 ADPCM",
            b"QDM2" | b"QDMC" => "QDesign",
            b"ulaw" => "µ-law",
            b"alaw" => "A-law",
            b"sowt" | b"twos" | b"lpcm" | b"in24" | b"in32" | b"fl32" | b"fl64" | b"raw " => "PCM",
            _ => continue, // video or unknown entries: keep looking
        };
        return Some(name);
    }
    None
}

/// "an Ogg", "a WAV", "an MP4/M4A": our container names are words or spelled-out acronyms.
fn with_article(name: &str) -> String {
    let vowel_sound = name.starts_with(|c: char| "AEIOUMaeiou".contains(c));
    format!("{} {name}", if vowel_sound { "an" } else { "a" })
}

/// A human name for a codec, including ones we have no decoder for.
fn codec_display_name(codec: CodecType) -> &'static str {
    match codec {
        codecs::CODEC_TYPE_OPUS => "Opus",
        codecs::CODEC_TYPE_SPEEX => "Speex",
        codecs::CODEC_TYPE_VORBIS => "Vorbis",
        codecs::CODEC_TYPE_MP1 => "MPEG-1 Layer I",
        codecs::CODEC_TYPE_MP2 => "MPEG-1 Layer II (MP2)",
        codecs::CODEC_TYPE_MP3 => "MP3",
        codecs::CODEC_TYPE_AAC => "AAC",
        codecs::CODEC_TYPE_FLAC => "FLAC",
        codecs::CODEC_TYPE_ALAC => "ALAC",
        codecs::CODEC_TYPE_WAVPACK => "WavPack",
        codecs::CODEC_TYPE_MONKEYS_AUDIO => "Monkey's Audio",
        codecs::CODEC_TYPE_TTA => "TTA",
        codecs::CODEC_TYPE_MUSEPACK => "Musepack",
        codecs::CODEC_TYPE_ATRAC1
        | codecs::CODEC_TYPE_ATRAC3
        | codecs::CODEC_TYPE_ATRAC3PLUS
        | codecs::CODEC_TYPE_ATRAC9 => "ATRAC",
        codecs::CODEC_TYPE_EAC3 => "E-AC-3 (Dolby Digital Plus)",
        codecs::CODEC_TYPE_AC4 => "AC-4",
        codecs::CODEC_TYPE_DCA => "DTS",
        codecs::CODEC_TYPE_WMA => "WMA",
        _ => "an unsupported codec's",
    }
}

// ---------------------------------------------------------------------------------------------
// Downmix + resample sink
// ---------------------------------------------------------------------------------------------

/// Finished output of [`Sink`].
struct Decoded {
    samples: Vec<f32>,
    source_rate: u32,
    source_channels: usize,
    duration_s: f64,
}

/// Accumulates decoded packets: downmix → resample → 16 kHz output, enforcing the cap.
struct Sink {
    max_seconds: f64,
    out: Vec<f32>,
    /// The resampler for the current source rate (`None` before the first packet).
    stage: Option<RateStage>,
    /// Rate and channel count of the first packet.
    first_rate: Option<u32>,
    max_channels: usize,
    /// Seconds of input in finished rate segments (before a mid-stream rate change).
    done_seconds: f64,
    /// Source frames in the current rate segment.
    segment_frames: u64,
    /// Source frames over all segments.
    total_frames: u64,
    /// Container edit to apply to the decoded frames (MP4 edit list), if any.
    trim: Option<Trim>,
    /// Frames still to drop at the start / still allowed, once the rate is known.
    skip_left: u64,
    keep_left: Option<u64>,
}

impl Sink {
    fn new(max_seconds: f32, trim: Option<Trim>) -> Self {
        Sink {
            trim,
            skip_left: 0,
            keep_left: None,
            max_seconds: if max_seconds.is_nan() {
                f64::INFINITY
            } else {
                max_seconds as f64
            },
            out: Vec::new(),
            stage: None,
            first_rate: None,
            max_channels: 0,
            done_seconds: 0.0,
            segment_frames: 0,
            total_frames: 0,
        }
    }

    /// Reserves the whole output up front when the container declares a length within the cap,
    /// so the output vector is not grown by doubling (peak 2× its size in a wasm heap).
    /// See [`initial_reserve`] for how far a header is believed.
    fn reserve_for(&mut self, track: &OpenTrack, input_len: usize) {
        self.out.reserve(initial_reserve(
            track.n_frames,
            track.sample_rate,
            self.max_seconds,
            input_len,
        ));
    }

    fn push(&mut self, decoded: AudioBufferRef<'_>) -> Result<(), AudioError> {
        let frames = decoded.frames();
        if frames == 0 {
            return Ok(());
        }
        let spec = *decoded.spec();
        if spec.rate == 0 {
            return Err(AudioError::Corrupt {
                detail: "stream declares a sample rate of 0 Hz".into(),
            });
        }
        let rate_changed = self.stage.as_ref().is_some_and(|s| s.in_rate != spec.rate);
        if rate_changed {
            let stage = self.stage.take().expect("checked");
            self.done_seconds += self.segment_frames as f64 / stage.in_rate as f64;
            self.segment_frames = 0;
            stage.finish(&mut self.out);
        }
        if self.stage.is_none() {
            self.stage = Some(RateStage::new(spec.rate)?);
            if self.first_rate.is_none() {
                self.first_rate = Some(spec.rate);
                if let Some(trim) = self.trim {
                    let rate = f64::from(spec.rate);
                    self.skip_left = (trim.skip_s * rate).round() as u64;
                    self.keep_left = trim.keep_s.map(|k| (k * rate).round() as u64);
                }
            }
        }
        self.max_channels = self.max_channels.max(spec.channels.count());

        // The container's edit: drop leading frames (encoder priming), cap the length.
        let skip = self.skip_left.min(frames as u64) as usize;
        self.skip_left -= skip as u64;
        let mut take = frames - skip;
        if let Some(keep) = self.keep_left.as_mut() {
            take = take.min(*keep as usize);
            *keep -= take as u64;
        }
        if take == 0 {
            return Ok(());
        }
        let range = skip..skip + take;
        let frames = take;

        // Cap on the input duration, checked before doing any work on this packet.
        let seconds =
            self.done_seconds + (self.segment_frames + frames as u64) as f64 / spec.rate as f64;
        if seconds > self.max_seconds {
            return Err(AudioError::TooLong {
                max_seconds: self.max_seconds as f32,
            });
        }
        self.segment_frames += frames as u64;
        self.total_frames += frames as u64;

        let stage = self.stage.as_mut().expect("set above");
        match &decoded {
            AudioBufferRef::U8(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::U16(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::U24(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::U32(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::S8(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::S16(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::S24(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::S32(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::F32(b) => downmix_into(b, range.clone(), &mut stage.pending),
            AudioBufferRef::F64(b) => downmix_into(b, range.clone(), &mut stage.pending),
        }
        stage.n_in += frames as u64;
        stage.drain(&mut self.out);
        Ok(())
    }

    fn finish(mut self) -> Option<Decoded> {
        let stage = self.stage.take()?;
        let duration_s = self.done_seconds + self.segment_frames as f64 / stage.in_rate as f64;
        stage.finish(&mut self.out);
        Some(Decoded {
            samples: self.out,
            source_rate: self.first_rate.unwrap_or(TARGET_RATE),
            source_channels: self.max_channels,
            duration_s,
        })
    }
}

/// 16 kHz output samples one input byte can plausibly decode to, for the up-front reservation:
/// 8-bit 8 kHz PCM gives 2, 4-bit ADPCM at 8 kHz 4, an 8 kbit/s MP3 16. Only streams that
/// compress better (e.g. FLAC of silence) can exceed it; their output then grows by doubling.
const RESERVE_SAMPLES_PER_BYTE: usize = 16;

/// Output samples to reserve for a track that declares `n_frames` at `rate` Hz: its length
/// (+ 1 s for the resampler's tail flush, trimmed at the end) if within `max_seconds`, but no
/// more than `input_len` bytes can hold. The header is the uploader's claim: a 44-byte WAV
/// declaring 3 h must not make us reserve 3 h of output (690 MB of a wasm heap).
fn initial_reserve(
    n_frames: Option<u64>,
    rate: Option<u32>,
    max_seconds: f64,
    input_len: usize,
) -> usize {
    let (Some(n), Some(rate)) = (n_frames, rate) else {
        return 0;
    };
    let seconds = n as f64 / f64::from(rate.max(1));
    if seconds > max_seconds {
        return 0;
    }
    let declared = ((seconds + 1.0) * f64::from(TARGET_RATE)) as usize;
    declared.min(input_len.saturating_mul(RESERVE_SAMPLES_PER_BYTE))
}

/// Appends the per-frame average of all channels of `buf`, frames `range`, to `dst`.
fn downmix_into<S>(buf: &AudioBuffer<S>, range: std::ops::Range<usize>, dst: &mut Vec<f32>)
where
    S: Sample + IntoSample<f32>,
{
    let planes = buf.planes();
    let planes = planes.planes();
    let Some((first, rest)) = planes.split_first() else {
        return;
    };
    let start = dst.len();
    dst.extend(
        first[range.clone()]
            .iter()
            .map(|&s| full_scale(s.into_sample())),
    );
    let mixed = &mut dst[start..];
    for plane in rest {
        for (d, &s) in mixed.iter_mut().zip(&plane[range.clone()]) {
            *d += full_scale(s.into_sample());
        }
    }
    if !rest.is_empty() {
        let scale = 1.0 / planes.len() as f32;
        mixed.iter_mut().for_each(|d| *d *= scale);
    }
}

/// A decoded sample clipped to full scale [-1, 1], NaN as 0. Integer formats are in range
/// already; float WAV (and f64 → f32 overflow) can hold anything, and a sample of 1e30 or ±inf
/// used to make the log-mel power overflow to inf/NaN for the whole file, which the encoder
/// turns into garbage. Clipping is also what openai-whisper and faster-whisper do to such
/// input: both convert to 16-bit PCM (ffmpeg / PyAV `s16`) before the log-mel.
#[inline]
fn full_scale(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-1.0, 1.0)
    }
}

/// An edit of the decoded audio: drop `skip_s` seconds at the start, keep at most `keep_s`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Trim {
    skip_s: f64,
    keep_s: Option<f64>,
}

/// The edit list (`moov/trak/edts/elst`) of the first sound track of an MP4/M4A file.
///
/// symphonia 0.5 parses but ignores edit lists, so AAC comes out with the encoder's priming
/// samples in front (1024 for AAC-LC: 23 ms at 44.1 kHz, which would shift every timestamp)
/// and its padding at the end. We apply a single-segment edit: skip `media_time` (in the media
/// timescale) and keep `segment_duration` (in the movie timescale). Anything more complex
/// (several segments, a leading empty edit) is left alone.
fn mp4_audio_trim(b: &[u8]) -> Option<Trim> {
    let moov = mp4_find(b, b"moov")?;
    let movie_timescale = mp4_timescale(mp4_find(moov, b"mvhd")?)?;
    for trak in Mp4Boxes(moov).filter(|(t, _)| t == b"trak").map(|(_, p)| p) {
        let Some(mdia) = mp4_find(trak, b"mdia") else {
            continue;
        };
        let is_sound = mp4_find(mdia, b"hdlr").and_then(|h| h.get(8..12)) == Some(b"soun");
        if !is_sound {
            continue;
        }
        let media_timescale = mp4_timescale(mp4_find(mdia, b"mdhd")?)?;
        let elst = mp4_find(mp4_find(trak, b"edts")?, b"elst")?;
        let version = *elst.first()?;
        let count = u32::from_be_bytes(elst.get(4..8)?.try_into().ok()?) as usize;
        let entry_len = if version == 1 { 20 } else { 12 };
        let mut entries = (0..count.min(16)).map(|i| {
            let e = elst.get(8 + i * entry_len..8 + (i + 1) * entry_len)?;
            Some(if version == 1 {
                let duration = u64::from_be_bytes(e[0..8].try_into().ok()?);
                (duration, i64::from_be_bytes(e[8..16].try_into().ok()?))
            } else {
                let duration = u64::from(u32::from_be_bytes(e[0..4].try_into().ok()?));
                (
                    duration,
                    i64::from(i32::from_be_bytes(e[4..8].try_into().ok()?)),
                )
            })
        });
        let (duration, media_time) = entries.next()??;
        if count != 1 || media_time < 0 {
            return None;
        }
        let skip_s = media_time as f64 / f64::from(media_timescale);
        let keep_s = (duration > 0).then(|| duration as f64 / f64::from(movie_timescale));
        // Priming is a few thousand samples; ignore anything implausible.
        return (skip_s <= 10.0).then_some(Trim { skip_s, keep_s });
    }
    None
}

/// Iterator over the boxes in `data`: `(type, payload)`; stops at the first malformed header.
/// A box running past the end (a cut file) yields what is there.
struct Mp4Boxes<'a>(&'a [u8]);

impl<'a> Iterator for Mp4Boxes<'a> {
    type Item = ([u8; 4], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.0;
        let size32 = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
        let kind: [u8; 4] = b.get(4..8)?.try_into().ok()?;
        let (header, size) = match size32 {
            0 => (8, b.len()),
            1 => (
                16,
                usize::try_from(u64::from_be_bytes(b.get(8..16)?.try_into().ok()?)).ok()?,
            ),
            n => (8, n as usize),
        };
        if size < header {
            self.0 = &[];
            return None;
        }
        let end = size.min(b.len());
        let payload = b.get(header..end)?;
        self.0 = &b[end..];
        Some((kind, payload))
    }
}

fn mp4_find<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    Mp4Boxes(data).find(|(t, _)| t == kind).map(|(_, p)| p)
}

/// The timescale field of an `mvhd` or `mdhd` payload.
fn mp4_timescale(payload: &[u8]) -> Option<u32> {
    let at = if *payload.first()? == 1 { 20 } else { 12 };
    let ts = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?);
    (ts > 0).then_some(ts)
}

/// Streaming mono resampler from one source rate to 16 kHz (pass-through at 16 kHz).
struct RateStage {
    in_rate: u32,
    /// `None` when `in_rate == TARGET_RATE`.
    resampler: Option<FftFixedIn<f32>>,
    /// Downmixed source-rate samples not yet resampled (< `RESAMPLE_CHUNK` after `drain`).
    pending: Vec<f32>,
    /// Output scratch, `[1][output_frames_max]`.
    scratch: Vec<Vec<f32>>,
    /// Leading output samples still to drop: the resampler's group delay.
    delay_left: usize,
    /// Source frames received / output frames emitted (after the delay) in this segment.
    n_in: u64,
    n_out: u64,
}

impl RateStage {
    fn new(in_rate: u32) -> Result<Self, AudioError> {
        // rubato's FFT sizes follow the rates' ratio and gcd: a WAV declaring 1.8 GHz wanted a
        // 914 M-point FFT (found by fuzzing), 1 Hz a 16 M-point one. Real audio lies within.
        if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&in_rate) {
            return Err(unsupported(format!(
                "sample rate of {in_rate} Hz (supported: {MIN_SOURCE_RATE} Hz to {} kHz)",
                MAX_SOURCE_RATE / 1000
            )));
        }
        if in_rate == TARGET_RATE {
            return Ok(RateStage {
                in_rate,
                resampler: None,
                pending: Vec::new(),
                scratch: Vec::new(),
                delay_left: 0,
                n_in: 0,
                n_out: 0,
            });
        }
        let resampler =
            FftFixedIn::<f32>::new(in_rate as usize, TARGET_RATE as usize, RESAMPLE_CHUNK, 1, 1)
                .map_err(|e| unsupported(format!("sample rate of {in_rate} Hz ({e})")))?;
        let scratch = resampler.output_buffer_allocate(true);
        Ok(RateStage {
            in_rate,
            delay_left: resampler.output_delay(),
            resampler: Some(resampler),
            pending: Vec::with_capacity(2 * RESAMPLE_CHUNK),
            scratch,
            n_in: 0,
            n_out: 0,
        })
    }

    /// Resamples every whole chunk in `pending` into `out`.
    fn drain(&mut self, out: &mut Vec<f32>) {
        let Some(resampler) = self.resampler.as_mut() else {
            self.n_out += self.pending.len() as u64;
            out.append(&mut self.pending);
            return;
        };
        let mut used = 0;
        while self.pending.len() - used >= RESAMPLE_CHUNK {
            let input = [&self.pending[used..used + RESAMPLE_CHUNK]];
            let (_, produced) = resampler
                .process_into_buffer(&input, &mut self.scratch, None)
                .expect("buffers sized by the resampler");
            used += RESAMPLE_CHUNK;
            Self::emit(
                &self.scratch[0][..produced],
                &mut self.delay_left,
                &mut self.n_out,
                out,
            );
        }
        self.pending.drain(..used);
    }

    fn emit(produced: &[f32], delay_left: &mut usize, n_out: &mut u64, out: &mut Vec<f32>) {
        let skip = (*delay_left).min(produced.len());
        *delay_left -= skip;
        out.extend_from_slice(&produced[skip..]);
        *n_out += (produced.len() - skip) as u64;
    }

    /// Flushes the tail: zero-pads the last partial chunk, pushes the delayed samples out and
    /// trims to `round(n_in · 16000 / in_rate)` output samples.
    fn finish(mut self, out: &mut Vec<f32>) {
        self.drain(out);
        let Some(resampler) = self.resampler.as_mut() else {
            return;
        };
        let expected =
            (self.n_in * TARGET_RATE as u64 + self.in_rate as u64 / 2) / self.in_rate as u64;
        let mut first = true;
        while self.n_out < expected {
            let tail = [&self.pending[..]];
            let input = if first && !self.pending.is_empty() {
                Some(&tail[..])
            } else {
                None
            };
            first = false;
            let (_, produced) = resampler
                .process_partial_into_buffer(input, &mut self.scratch, None)
                .expect("buffers sized by the resampler");
            Self::emit(
                &self.scratch[0][..produced],
                &mut self.delay_left,
                &mut self.n_out,
                out,
            );
        }
        let extra = (self.n_out - expected) as usize;
        out.truncate(out.len() - extra);
    }
}

// ---------------------------------------------------------------------------------------------
// Magic-byte sniffing: name what we see, reject what we know we cannot decode
// ---------------------------------------------------------------------------------------------

/// What the first bytes of the upload look like.
#[derive(Debug, Clone, PartialEq)]
enum Sniff {
    /// A container symphonia can read (the name is used in messages).
    Audio(&'static str),
    /// Audio we recognise but cannot decode; the full description.
    UnsupportedAudio(String),
    /// Recognised non-audio data.
    NotAudio(&'static str),
    /// Nothing recognised (headerless or unknown data); symphonia's probe still gets a try.
    Unknown,
}

fn sniff(b: &[u8]) -> Sniff {
    let at = |off: usize, magic: &[u8]| {
        b.len() >= off + magic.len() && &b[off..off + magic.len()] == magic
    };
    let head = &b[..b.len().min(4096)];
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    let unsupported = |s: &str| Sniff::UnsupportedAudio(s.to_string());

    // Containers symphonia reads (codec-level problems are named after probing).
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Sniff::Audio("WAV");
    }
    if at(0, b"fLaC") {
        return Sniff::Audio("FLAC");
    }
    if at(0, b"OggS") {
        return if contains(b"OpusHead") {
            unsupported("Opus audio in an Ogg container")
        } else if contains(b"Speex   ") {
            unsupported("Speex audio in an Ogg container")
        } else if contains(b"\x80theora") {
            unsupported("Ogg Theora video")
        } else {
            Sniff::Audio("Ogg")
        };
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        // No Matroska demuxer (see the module docs): name the codec if the CodecID is in view.
        let codec = [
            (&b"A_OPUS"[..], "Opus"),
            (b"A_VORBIS", "Vorbis"),
            (b"A_FLAC", "FLAC"),
            (b"A_AAC", "AAC"),
            (b"A_MPEG/L3", "MP3"),
            (b"A_PCM", "PCM"),
        ]
        .into_iter()
        .find(|(id, _)| contains(id));
        return match codec {
            Some((_, name)) => unsupported(&format!("{name} audio in a WebM/Matroska container")),
            None => unsupported("WebM/Matroska"),
        };
    }
    if at(4, b"ftyp") {
        let brand = b.get(8..12).unwrap_or(b"");
        return match brand {
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" | b"avis" => {
                Sniff::NotAudio("a HEIF/AVIF image")
            }
            _ => Sniff::Audio("MP4/M4A"),
        };
    }
    if at(0, b"ID3") {
        return Sniff::Audio("ID3-tagged MPEG audio");
    }
    if b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0 {
        // MPEG audio frame sync; layer bits 00 = ADTS (AAC).
        return if b[1] & 0x06 == 0 {
            Sniff::Audio("ADTS AAC")
        } else {
            Sniff::Audio("MPEG audio")
        };
    }

    // Audio formats without a decoder here.
    if at(0, b"#!AMR-WB") {
        return unsupported("AMR-WB (wideband Adaptive Multi-Rate speech)");
    }
    if at(0, b"#!AMR") {
        return unsupported("AMR (Adaptive Multi-Rate speech)");
    }
    if at(0, b"MThd") {
        return unsupported("MIDI (note data, not recorded audio)");
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return unsupported("AIFF");
    }
    if at(0, b"RF64") || at(0, b"BW64") {
        return unsupported("RF64/BW64 (64-bit WAV)");
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return unsupported("AVI video");
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Sniff::NotAudio("a WebP image");
    }
    let other_audio: &[(&[u8], &str)] = &[
        (b"caff", "Core Audio Format (CAF)"),
        (
            &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11],
            "WMA/ASF (Windows Media)",
        ),
        (b".snd", "Sun/NeXT AU"),
        (b"MAC ", "Monkey's Audio (APE)"),
        (b"wvpk", "WavPack"),
        (b"TTA1", "TTA"),
        (b"MPCK", "Musepack"),
        (b"MP+", "Musepack"),
        (b"DSD ", "DSF (DSD audio)"),
        (b"FRM8", "DSDIFF (DSD audio)"),
        (b".RMF", "RealMedia"),
        (b".ra\xFD", "RealAudio"),
        (b"FLV\x01", "Flash Video (FLV)"),
        (&[0x0B, 0x77], "AC-3 (Dolby Digital)"),
        (&[0x00, 0x00, 0x01, 0xBA], "MPEG program stream (video)"),
    ];
    for (magic, name) in other_audio {
        if at(0, magic) {
            return unsupported(name);
        }
    }
    if b.len() > 188 && b[0] == 0x47 && b[188] == 0x47 {
        return unsupported("MPEG transport stream");
    }

    // Things that are not audio at all.
    let not_audio: &[(&[u8], &str)] = &[
        (b"%PDF", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (&[0xFF, 0xD8, 0xFF], "a JPEG image"),
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (b"II*\0", "a TIFF image"),
        (b"MM\0*", "a TIFF image"),
        (b"PK\x03\x04", "a ZIP archive or Office document"),
        (&[0x1F, 0x8B], "a gzip archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!", "a RAR archive"),
        (b"\x7FELF", "an ELF executable"),
        (b"\0asm", "a WebAssembly module"),
        (b"{\\rtf", "an RTF document"),
    ];
    for (magic, what) in not_audio {
        if at(0, magic) {
            return Sniff::NotAudio(what);
        }
    }
    if let Some(kind) = sniff_text(head) {
        return Sniff::NotAudio(kind);
    }
    Sniff::Unknown
}

/// Recognises text uploads (HTML, XML, JSON, plain text) from their first bytes.
fn sniff_text(head: &[u8]) -> Option<&'static str> {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head); // UTF-8 BOM
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        // The 4 KiB cut may split a multi-byte character.
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
            std::str::from_utf8(&body[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0C'))
    {
        return None;
    }
    let start: String = text
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    Some(
        if start.starts_with("<!doctype html")
            || start.starts_with("<html")
            || start.starts_with("<head")
            || start.starts_with("<body")
        {
            "HTML"
        } else if start.starts_with("<svg") || (start.starts_with("<?xml") && text.contains("<svg"))
        {
            "an SVG image"
        } else if start.starts_with("<?xml") || start.starts_with('<') {
            "XML"
        } else if start.starts_with('{') || start.starts_with('[') {
            "JSON"
        } else {
            "text"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding `bytes` fails as [`AudioError::Corrupt`] with a detail containing `needle`.
    #[track_caller]
    fn assert_corrupt(bytes: &[u8], needle: &str) {
        match decode_to_pcm16k(bytes, None, 10.0) {
            Err(AudioError::Corrupt { detail }) => assert!(detail.contains(needle), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    /// Decoding `bytes` fails as [`AudioError::Unsupported`] naming `needle`.
    #[track_caller]
    fn assert_unsupported(bytes: &[u8], needle: &str) {
        match decode_to_pcm16k(bytes, None, 10.0) {
            Err(AudioError::Unsupported { format }) => assert!(format.contains(needle), "{format}"),
            other => panic!("{other:?}"),
        }
    }

    // ---- a tiny WAV writer -------------------------------------------------------------------

    #[derive(Clone, Copy, Debug)]
    enum Fmt {
        U8,
        I16,
        I24,
        I32,
        F32,
        F64,
    }

    /// WAV bytes for interleaved `frames` (each inner Vec = one frame of `channels` samples).
    fn wav(
        fmt: Fmt,
        rate: u32,
        channels: u16,
        n_frames: usize,
        sample: impl Fn(usize, usize) -> f64,
    ) -> Vec<u8> {
        let (bits, tag): (u16, u16) = match fmt {
            Fmt::U8 => (8, 1),
            Fmt::I16 => (16, 1),
            Fmt::I24 => (24, 1),
            Fmt::I32 => (32, 1),
            Fmt::F32 => (32, 3),
            Fmt::F64 => (64, 3),
        };
        let block = channels as u32 * bits as u32 / 8;
        let data_len = block * n_frames as u32;
        // WAVE_FORMAT_EXTENSIBLE for > 2 channels, as real multichannel files use.
        let extensible = channels > 2;
        let fmt_len: u32 = if extensible { 40 } else { 16 };
        let mut v = Vec::with_capacity(44 + data_len as usize);
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(4 + 8 + fmt_len + 8 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&fmt_len.to_le_bytes());
        v.extend_from_slice(&(if extensible { 0xFFFEu16 } else { tag }).to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * block).to_le_bytes());
        v.extend_from_slice(&(block as u16).to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        if extensible {
            v.extend_from_slice(&22u16.to_le_bytes()); // cbSize
            v.extend_from_slice(&bits.to_le_bytes()); // valid bits
            let mask: u32 = (1u32 << channels) - 1; // FL FR FC LFE BL BR …
            v.extend_from_slice(&mask.to_le_bytes());
            // Sub-format GUID: {tag}-0000-0010-8000-00AA00389B71
            v.extend_from_slice(&(tag as u32).to_le_bytes());
            v.extend_from_slice(&[
                0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]);
        }
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        for i in 0..n_frames {
            for c in 0..channels as usize {
                let x = sample(i, c).clamp(-1.0, 1.0);
                match fmt {
                    Fmt::U8 => v.push((x * 127.0 + 128.0).round() as u8),
                    Fmt::I16 => v.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes()),
                    Fmt::I24 => {
                        v.extend_from_slice(&((x * 8_388_607.0).round() as i32).to_le_bytes()[..3])
                    }
                    Fmt::I32 => {
                        v.extend_from_slice(&((x * 2_147_483_647.0).round() as i32).to_le_bytes())
                    }
                    Fmt::F32 => v.extend_from_slice(&(x as f32).to_le_bytes()),
                    Fmt::F64 => v.extend_from_slice(&x.to_le_bytes()),
                }
            }
        }
        v
    }

    fn sine(freq: f64, rate: u32, amp: f64) -> impl Fn(usize, usize) -> f64 {
        move |i, _| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()
    }

    // ---- signal measurements -----------------------------------------------------------------

    /// Amplitude of the `freq` component of `x` (16 kHz), by a single DFT bin over a Hann window.
    fn tone_amplitude(x: &[f32], freq: f64) -> f64 {
        let n = x.len();
        let (mut re, mut im, mut wsum) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &s) in x.iter().enumerate() {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            let ph = 2.0 * std::f64::consts::PI * freq * i as f64 / TARGET_RATE as f64;
            re += w * s as f64 * ph.cos();
            im -= w * s as f64 * ph.sin();
            wsum += w;
        }
        2.0 * (re * re + im * im).sqrt() / wsum
    }

    /// Frequency estimated from zero crossings (with linear interpolation) of `x` at 16 kHz.
    fn zero_crossing_freq(x: &[f32]) -> f64 {
        let mut crossings = Vec::new();
        for i in 1..x.len() {
            if x[i - 1] < 0.0 && x[i] >= 0.0 {
                let frac = x[i - 1] as f64 / (x[i - 1] as f64 - x[i] as f64);
                crossings.push(i as f64 - 1.0 + frac);
            }
        }
        let periods = (crossings.len() - 1) as f64;
        periods * TARGET_RATE as f64 / (crossings.last().unwrap() - crossings[0])
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// Middle part of the signal, away from the edges.
    fn middle(x: &[f32]) -> &[f32] {
        &x[x.len() / 10..x.len() * 9 / 10]
    }

    fn check_sine(pcm: &Pcm16k, freq: f64, amp: f64, what: &str) {
        let m = middle(&pcm.samples);
        let f = zero_crossing_freq(m);
        assert!(
            (f - freq).abs() < 0.5,
            "{what}: frequency {f} Hz, want {freq}"
        );
        let a = tone_amplitude(m, freq);
        assert!(
            db(a / amp).abs() < 1.0,
            "{what}: amplitude {a} vs {amp} ({:+.2} dB)",
            db(a / amp)
        );
    }

    // ---- tests ---------------------------------------------------------------------------------

    #[test]
    fn all_wav_sample_formats_and_rates() {
        let formats = [Fmt::U8, Fmt::I16, Fmt::I24, Fmt::I32, Fmt::F32, Fmt::F64];
        let rates = [8_000u32, 16_000, 22_050, 44_100, 48_000, 96_000];
        for fmt in formats {
            for rate in rates {
                let secs = 1.5;
                let n = (secs * rate as f64) as usize;
                let bytes = wav(fmt, rate, 1, n, sine(440.0, rate, 0.5));
                let pcm = decode_to_pcm16k(&bytes, Some("wav"), 60.0)
                    .unwrap_or_else(|e| panic!("{fmt:?} {rate}: {e}"));
                let what = format!("{fmt:?} {rate} Hz");
                assert_eq!(pcm.source_rate, rate, "{what}");
                assert_eq!(pcm.source_channels, 1, "{what}");
                assert!(
                    (pcm.duration_s - secs as f32).abs() < 1e-3,
                    "{what}: {}",
                    pcm.duration_s
                );
                let want_len = (n as u64 * 16_000 + rate as u64 / 2) / rate as u64;
                assert_eq!(pcm.samples.len() as u64, want_len, "{what}");
                assert!(!pcm.truncated && pcm.skipped_packets == 0, "{what}");
                check_sine(&pcm, 440.0, 0.5, &what);
            }
        }
    }

    #[test]
    fn codec_names() {
        let bytes = wav(Fmt::I16, 16_000, 1, 1600, sine(440.0, 16_000, 0.5));
        assert_eq!(
            decode_to_pcm16k(&bytes, None, 10.0).unwrap().codec,
            "pcm_s16le"
        );
        let bytes = wav(Fmt::F32, 16_000, 1, 1600, sine(440.0, 16_000, 0.5));
        assert_eq!(
            decode_to_pcm16k(&bytes, None, 10.0).unwrap().codec,
            "pcm_f32le"
        );
    }

    #[test]
    fn passthrough_at_16k_is_exact() {
        let bytes = wav(Fmt::F32, 16_000, 1, 16_000, sine(1000.0, 16_000, 0.25));
        let pcm = decode_to_pcm16k(&bytes, Some("audio/wav"), 10.0).unwrap();
        assert_eq!(pcm.samples.len(), 16_000);
        for (i, &s) in pcm.samples.iter().enumerate() {
            assert_eq!(
                s,
                (0.25 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16_000.0).sin()) as f32
            );
        }
    }

    #[test]
    fn resampling_keeps_timing() {
        // A click at exactly 0.5 s must come out at 0.5 s (the resampler delay is removed).
        for rate in [8_000u32, 44_100, 48_000] {
            let click = (rate / 2) as usize;
            let bytes = wav(Fmt::F32, rate, 1, rate as usize, |i, _| {
                if i == click {
                    1.0
                } else {
                    0.0
                }
            });
            let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
            let peak = pcm
                .samples
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap()
                .0;
            assert!(
                (peak as i64 - 8000).abs() <= 1,
                "{rate} Hz: click at {peak}, want 8000"
            );
        }
    }

    #[test]
    fn anti_aliasing() {
        // 7.5 kHz survives 48 → 16 kHz; 10 kHz (would alias to 6 kHz) must be removed.
        let bytes = wav(Fmt::F32, 48_000, 1, 48_000, |i, _| {
            let t = i as f64 / 48_000.0;
            0.4 * (2.0 * std::f64::consts::PI * 7_500.0 * t).sin()
                + 0.4 * (2.0 * std::f64::consts::PI * 10_000.0 * t).sin()
        });
        let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
        let m = middle(&pcm.samples);
        let kept = tone_amplitude(m, 7_500.0);
        let alias = tone_amplitude(m, 6_000.0);
        assert!(
            db(kept / 0.4).abs() < 1.0,
            "7.5 kHz passband: {:+.2} dB",
            db(kept / 0.4)
        );
        assert!(
            db(alias / 0.4) < -60.0,
            "alias of 10 kHz at 6 kHz: {:.1} dB",
            db(alias / 0.4)
        );
    }

    #[test]
    fn stereo_antiphase_downmixes_to_silence() {
        let bytes = wav(Fmt::I16, 44_100, 2, 44_100, |i, c| {
            let s = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 44_100.0).sin();
            if c == 0 {
                s
            } else {
                -s
            }
        });
        let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
        assert_eq!(pcm.source_channels, 2);
        assert!(rms(&pcm.samples) < 1e-4, "rms {}", rms(&pcm.samples));
        // In-phase stereo keeps the tone.
        let bytes = wav(Fmt::I16, 44_100, 2, 44_100, sine(440.0, 44_100, 0.5));
        check_sine(
            &decode_to_pcm16k(&bytes, None, 10.0).unwrap(),
            440.0,
            0.5,
            "stereo in phase",
        );
    }

    #[test]
    fn six_channels_average_all() {
        // Only channel 5 carries the tone: the average is amplitude / 6 (not dropped).
        let bytes = wav(Fmt::I24, 48_000, 6, 48_000, |i, c| {
            if c == 5 {
                0.6 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin()
            } else {
                0.0
            }
        });
        let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
        assert_eq!(pcm.source_channels, 6);
        assert!((pcm.duration_s - 1.0).abs() < 1e-4);
        check_sine(&pcm, 440.0, 0.1, "6 channels");
    }

    #[test]
    fn truncated_wav_returns_what_is_there() {
        let bytes = wav(Fmt::I16, 44_100, 2, 3 * 44_100, sine(440.0, 44_100, 0.5));
        let cut = &bytes[..bytes.len() * 2 / 3 + 1]; // odd cut: mid-sample
        let pcm = decode_to_pcm16k(cut, Some("wav"), 10.0).unwrap();
        assert!(pcm.truncated, "header says 3 s");
        assert!(
            pcm.duration_s > 1.8 && pcm.duration_s <= 2.0 + 1e-3,
            "{}",
            pcm.duration_s
        );
        assert!((pcm.output_duration_s() - pcm.duration_s).abs() < 1e-3);
        check_sine(&pcm, 440.0, 0.5, "truncated");
    }

    #[test]
    fn too_long_is_rejected_while_decoding() {
        let bytes = wav(Fmt::I16, 8_000, 1, 8_000 * 12, sine(440.0, 8_000, 0.5));
        assert_eq!(
            decode_to_pcm16k(&bytes, None, 10.0),
            Err(AudioError::TooLong { max_seconds: 10.0 })
        );
        // Exactly at the limit is fine.
        let pcm = decode_to_pcm16k(&bytes, None, 12.0).unwrap();
        assert_eq!(pcm.samples.len(), 16_000 * 12);
        assert!(decode_to_pcm16k(&bytes, None, f32::INFINITY).is_ok());
    }

    #[test]
    fn float_samples_beyond_full_scale_are_clipped() {
        // Found by fuzzing (fuzz/regressions/audio/float-wav-huge-sample-mel-inf.wav): a float WAV
        // holding 1e30 decoded "fine", but its log-mel was inf everywhere.
        let bad = [1e30f64, f64::NAN, f64::INFINITY, -3e38, -1e300, 0.5, 2.0];
        for (fmt, bytes_per) in [(Fmt::F32, 4), (Fmt::F64, 8)] {
            for (rate, channels) in [(16_000, 1), (44_100, 2)] {
                let n = 4_000;
                let mut bytes = wav(fmt, rate, channels, n, sine(440.0, rate, 0.5));
                let data = bytes.len() - n * channels as usize * bytes_per;
                for (k, &x) in bad.iter().enumerate() {
                    let at = data + (500 * k + 7) * channels as usize * bytes_per;
                    match fmt {
                        Fmt::F32 => bytes[at..at + 4].copy_from_slice(&(x as f32).to_le_bytes()),
                        _ => bytes[at..at + 8].copy_from_slice(&x.to_le_bytes()),
                    }
                }
                let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
                let peak = pcm.samples.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(
                    pcm.samples.iter().all(|x| x.is_finite()) && peak <= 1.2,
                    "{fmt:?} {rate}: peak {peak}"
                );
                let mel = crate::mel::log_mel(&pcm.samples, 80);
                assert!(
                    mel.data().iter().all(|v| v.is_finite()),
                    "{fmt:?} {rate} Hz: non-finite log-mel"
                );
            }
        }
        assert_eq!(
            (
                full_scale(f32::NAN),
                full_scale(f32::NEG_INFINITY),
                full_scale(-0.25)
            ),
            (0.0, -1.0, -0.25)
        );
    }

    #[test]
    fn matroska_is_refused_without_parsing() {
        // Found by fuzzing (fuzz/regressions/audio/mkv-seekhead-panic.webm): symphonia 0.5's
        // Matroska demuxer panicked ("EBML header must be read before calling this function")
        // on a SeekHead pointing past the end; a panic traps the whole component.
        let bytes = include_bytes!("../fuzz/regressions/audio/mkv-seekhead-panic.webm");
        assert_unsupported(bytes, "WebM/Matroska");
        let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84];
        webm.extend_from_slice(b"webm....A_VORBIS....");
        assert_eq!(
            decode_to_pcm16k(&webm, None, 10.0),
            Err(unsupported("Vorbis audio in a WebM/Matroska container"))
        );
    }

    #[test]
    fn flac_tags_are_not_parsed() {
        // Found by fuzzing (fuzz/regressions/audio/flac-comment-length-oom.flac): a VORBIS_COMMENT
        // block whose comment declares 352 MB made symphonia allocate that much before failing.
        let bytes = include_bytes!("../fuzz/regressions/audio/flac-comment-length-oom.flac");
        assert!(bytes.starts_with(b"fLaC"));
        // Any result, without the allocation.
        let _ = decode_to_pcm16k(bytes, None, 10.0);
        // A block list: STREAMINFO, VORBIS_COMMENT, PICTURE (last). Only STREAMINFO survives.
        let mut b = b"fLaC".to_vec();
        for (kind, len) in [(0u8, 34usize), (4, 8), (0x80 | 6, 4)] {
            b.push(kind);
            b.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
            b.extend(std::iter::repeat_n(0xEE, len));
        }
        b.extend_from_slice(&[0xFF, 0xF8, 0x69]); // first frame header bytes: untouched
        let before = b.clone();
        flac_metadata_to_padding(&mut b);
        assert_eq!((b[4], b[42], b[54]), (0, 1, 0x81));
        assert_eq!(b.len(), before.len());
        assert!(b
            .iter()
            .zip(&before)
            .enumerate()
            .all(|(i, (x, y))| x == y || i == 42 || i == 54));
        flac_metadata_to_padding(&mut b"fLaC\x84\xff".to_vec()); // cut header: no panic
    }

    #[test]
    fn mp4_lying_tables_are_corrupt_not_allocated() {
        // Found by fuzzing (fuzz/regressions/audio/mp4-stsc-count-oom.m4a): an `stsc` declaring
        // 2.6 G entries made symphonia reserve 42 GB before reading it.
        let bytes = include_bytes!("../fuzz/regressions/audio/mp4-stsc-count-oom.m4a");
        assert_corrupt(bytes, "'stsc' table declares");
        let boxed = |kind: &[u8; 4], payload: &[u8]| {
            let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(kind);
            v.extend_from_slice(payload);
            v
        };
        // Honest tables pass; one entry short fails; a short hdlr fails.
        let stco = |count: u32, entries: usize| {
            let mut p = vec![0, 0, 0, 0];
            p.extend_from_slice(&count.to_be_bytes());
            p.extend(std::iter::repeat_n(0, 4 * entries));
            p
        };
        assert!(mp4_check_box(b"stco", &stco(3, 3), 1_000).is_ok());
        assert!(mp4_check_box(b"stco", &stco(3, 2), 1_000).is_err());
        assert!(mp4_check_box(b"stco", &stco(u32::MAX, 1), 1_000).is_err());
        assert!(mp4_check_box(b"stsz", &[0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 9], 100_000).is_ok()); // fixed size
        assert!(mp4_check_box(b"stsz", &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9], 1_000).is_err());
        assert!(mp4_check_box(b"hdlr", &[0; 20], 1_000).is_err());
        // Found by fuzzing: a sample declaring 3 GB was allocated before being read.
        assert!(mp4_check_box(
            b"stsz",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 3, 0xE8],
            1_000
        )
        .is_ok());
        assert!(mp4_check_box(
            b"stsz",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 3, 0xE9],
            1_000
        )
        .is_err());
        assert!(mp4_check_box(b"stsz", &[0, 0, 0, 0, 0xB4, 0, 0, 0, 0, 0, 0, 1], 1_000).is_err());
        let path = format!(
            "{}/fuzz/regressions/audio/mp4-sample-size-3gb-oom.m4a",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(decode_to_pcm16k(&std::fs::read(path).unwrap(), None, 10.0).is_err());
        assert!(mp4_check_box(b"stsd", &[0, 0], 1_000).is_ok()); // found by fuzzing: sliced past its end
        assert!(mp4_check_box(b"hdlr", &[0; 25], 1_000).is_ok());
        // Tags are neutralised, tables inside moov/trak/mdia/minf/stbl are found.
        let stbl = boxed(b"stbl", &boxed(b"stco", &stco(1, 1)));
        let trak = boxed(
            b"trak",
            &[
                boxed(b"udta", b"tags"),
                boxed(b"mdia", &boxed(b"minf", &stbl)),
            ]
            .concat(),
        );
        let mut file = [
            boxed(b"ftyp", b"M4A "),
            boxed(b"moov", &[trak, boxed(b"meta", b"x")].concat()),
        ]
        .concat();
        mp4_harden(&mut file).unwrap();
        let types: Vec<_> = file
            .windows(4)
            .filter(|w| matches!(*w, b"udta" | b"meta" | b"free"))
            .collect();
        assert_eq!(types, [b"free", b"free"]);
        let at = file.windows(4).position(|w| w == b"stco").unwrap() + 8;
        file[at..at + 4].copy_from_slice(&2u32.to_be_bytes());
        assert!(mp4_harden(&mut file).is_err());
        mp4_harden(&mut b"\0\0\0\x01moov\0\0".to_vec()).unwrap(); // cut large-size header
    }

    #[test]
    fn malformed_headers_found_by_fuzzing_are_errors() {
        // Each panicked or ran out of memory inside symphonia 0.5 / rubato before (see
        // fuzz/regressions/audio/): now each is refused before they see it.
        let reg = |name: &str| {
            std::fs::read(format!(
                "{}/fuzz/regressions/audio/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        assert_corrupt(&reg("wav-rate-0-panic.wav"), "at 0 Hz");
        assert_unsupported(
            &reg("wav-ima-adpcm-3ch-unreachable-panic.wav"),
            "IMA ADPCM audio with 3 channels",
        );
        assert_unsupported(
            &reg("wav-rate-1.8ghz-oom.wav"),
            "sample rate of 1828738594 Hz",
        );
        assert_corrupt(&reg("mp4-esds-without-es-descriptor-panic.m4a"), "esds");
        assert_corrupt(&reg("wav-second-fmt-rate-0-panic.wav"), "at 0 Hz");
        // A LIST/INFO string declaring 800 MB: the chunk is skipped unread (any result).
        let _ = decode_to_pcm16k(&reg("wav-info-string-800mb-oom.wav"), None, 10.0);
        // An honest LIST chunk becomes JUNK and the audio still decodes.
        let mut listed = wav(Fmt::I16, 16_000, 1, 100, sine(440.0, 16_000, 0.5));
        let at = listed.len() - 200 - 8; // where the data chunk starts
        let mut list = b"LIST\x0c\0\0\0INFOINAM\0\0\0\0".to_vec();
        list.extend_from_slice(&listed[at..]);
        listed.truncate(at);
        listed.extend_from_slice(&list);
        let riff = (listed.len() - 8) as u32;
        listed[4..8].copy_from_slice(&riff.to_le_bytes());
        let mut hardened = listed.clone();
        wav_harden(&mut hardened).unwrap();
        assert_eq!(&hardened[at..at + 4], b"JUNK");
        assert_eq!(
            decode_to_pcm16k(&listed, None, 10.0).unwrap().samples.len(),
            100
        );
        assert_corrupt(&reg("mp4-mdhd-timescale-0-panic.m4a"), "timescale of 0");
        assert_corrupt(&reg("mp4-esds-past-stsd-panic.m4a"), "esds");
        assert_unsupported(&reg("mp4-stsd-past-stbl-esds-panic.bin"), "unrecognised");
        // An unregistered MPEG sync word, then a FLAC with a 2 GB picture block.
        assert!(decode_to_pcm16k(
            &reg("unregistered-sync-then-flac-picture-oom.bin"),
            None,
            10.0
        )
        .is_err());
        assert!(probe_marker_at_start(&[0xFF, 0xFB, 0x90]) && probe_marker_at_start(&[0xFF, 0xF1]));
        assert!(!probe_marker_at_start(&[0xFF, 0xF9]) && !probe_marker_at_start(&[0xFF, 0xEB]));
        assert_corrupt(&reg("mp4-hdlr-size-0-capacity-overflow.m4a"), "hdlr");
        assert!(decode_to_pcm16k(&reg("adts-midfile-step-by-0-panic.bin"), None, 10.0).is_err());
        let _ = decode_to_pcm16k(&reg("id3-id3-adts-midfile-step-by-0-panic.mp3"), None, 10.0);
        // The same checks on synthetic headers; rates at the bounds still decode.
        for (rate, ok) in [
            (0, false),
            (999, false),
            (1_000, true),
            (768_000, true),
            (768_001, false),
        ] {
            let mut bytes = wav(Fmt::I16, 16_000, 1, 2_000, sine(440.0, 16_000, 0.5));
            bytes[24..28].copy_from_slice(&(rate as u32).to_le_bytes());
            assert_eq!(decode_to_pcm16k(&bytes, None, 1e6).is_ok(), ok, "{rate} Hz");
        }
        assert!(mp4_esds_ok(&[
            0, 0, 0, 0, 0x03, 0x80, 0x80, 0x80, 0x05, 0, 1, 0, 4, 0
        ]));
        assert!(!mp4_esds_ok(&[
            0, 0, 0, 0, 0x04, 0x01, 0x00, 0x06, 0x01, 0x02
        ]));
        assert!(!mp4_esds_ok(&[0, 0, 0, 0, 0x04, 0xFF]));
        // ES → decoder config → decoder-specific info claiming 256 MiB: refused, not allocated.
        let mut esds = vec![0, 0, 0, 0, 0x03, 22, 0, 1, 0, 0x04, 17];
        esds.extend_from_slice(&[0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        esds.extend_from_slice(&[0x05, 0x02, 0x12, 0x10]);
        assert!(mp4_esds_ok(&esds));
        esds[9 + 2 + 13 + 1] = 0xFF; // the info's length, continued: 16 KB past the data
        assert!(!mp4_esds_ok(&esds));
        let mut tags = b"ID3\x04\0\0\0\0\0\x03abc".to_vec();
        tags.extend_from_slice(&tags.clone()); // two tags, then a frame at the middle
        tags.extend_from_slice(&[0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC]);
        tags.resize(2 * 26 + 1, 0);
        assert!(adts_midpoint_hazard(&tags));
        tags.extend_from_slice(&[0, 0]); // len − 2·26 = 3: still a step of 0
        assert!(adts_midpoint_hazard(&tags));
        tags.push(0);
        assert!(!adts_midpoint_hazard(&tags));
        assert!(!adts_midpoint_hazard(&[]) && !adts_midpoint_hazard(&[0xFF]));
    }

    #[test]
    fn junk_before_a_container_is_hardened_too() {
        // Found by fuzzing (fuzz/regressions/audio/junk-then-mp4-stsc-oom.bin): symphonia's probe
        // found an MP4 `ftyp` after 1.8 KB of junk and asked for 57 GB for its `stsc` table.
        let reg = std::fs::read(format!(
            "{}/fuzz/regressions/audio/junk-then-mp4-stsc-oom.bin",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_unsupported(&reg, "unrecognised");
        // Leading ID3v2 tags are cut off unread: a WAV behind two tags decodes, and a tag
        // declaring 200 MB over a 30-byte file is simply the end of it.
        let audio = wav(Fmt::I16, 16_000, 1, 1_600, sine(440.0, 16_000, 0.5));
        let mut tagged = b"ID3\x04\0\0\0\0\0\x02ab".to_vec();
        tagged.extend_from_slice(&tagged.clone());
        assert_eq!(leading_id3v2_len(&tagged), 24);
        tagged.extend_from_slice(&audio);
        assert_eq!(
            decode_to_pcm16k(&tagged, None, 10.0).unwrap().samples.len(),
            1_600
        );
        let huge = b"ID3\x03\0\0\x5f\x7f\x7f\x7fTIT2\x0b\xeb\xc2\0\0\0\0\0\0\0\0\0";
        assert_eq!(leading_id3v2_len(huge), huge.len());
        assert_eq!(decode_to_pcm16k(huge, None, 10.0), Err(AudioError::Empty));
        // Found by fuzzing (id3-after-junk-654mb-frame-oom.bin): a tag after one junk byte was
        // read by the probe, with a 654 MB frame. Now it is not read at all.
        let path = format!(
            "{}/fuzz/regressions/audio/id3-after-junk-654mb-frame-oom.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut junk = std::fs::read(path).unwrap();
        assert!(decode_to_pcm16k(&junk, None, 10.0).is_err());
        harden(&mut junk).unwrap();
        assert_eq!(&junk[1..4], b"id3");
    }

    #[test]
    fn lying_length_header_reserves_by_input_size() {
        // A 44-byte WAV whose data chunk claims 3 h at 8 kHz (the default cap is 3 h): before,
        // the sink reserved 3 h of 16 kHz output (691 MB) for it.
        let three_hours = 3 * 3600 * 8_000u64;
        assert_eq!(
            initial_reserve(Some(three_hours), Some(8_000), 10_800.0, 44),
            44 * 16
        );
        let mut lying = wav(Fmt::I16, 8_000, 1, 0, sine(440.0, 8_000, 0.5));
        let data_len = (three_hours * 2) as u32;
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&data_len.to_le_bytes());
        assert!(decode_to_pcm16k(&lying, None, 10_800.0).is_err());
        // With no cap (WHISPER_MAX_AUDIO_SECONDS=inf) a data chunk of u32::MAX bytes was
        // believed whole: 17 GB reserved before decoding anything.
        lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_to_pcm16k(&lying, None, f32::INFINITY).is_err());
        // Honest files still get their whole output reserved up front, nothing over the cap.
        assert_eq!(
            initial_reserve(Some(16_000), Some(16_000), 10.0, 32_044),
            32_000
        );
        assert_eq!(
            initial_reserve(Some(44_100 * 60), Some(44_100), 60.0, 44_100 * 60 * 4),
            61 * 16_000
        );
        assert_eq!(
            initial_reserve(Some(16_000 * 20), Some(16_000), 10.0, 640_044),
            0
        );
        assert_eq!(initial_reserve(None, Some(16_000), 10.0, 1_000), 0);
        assert_eq!(
            initial_reserve(Some(u64::MAX), Some(0), f64::INFINITY, 100),
            1_600
        );
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(decode_to_pcm16k(&[], None, 10.0), Err(AudioError::Empty));
        let bytes = wav(Fmt::I16, 16_000, 1, 0, sine(440.0, 16_000, 0.5));
        assert_eq!(decode_to_pcm16k(&bytes, None, 10.0), Err(AudioError::Empty));
    }

    #[test]
    fn garbage_is_unsupported() {
        let mut state = 0x1234_5678u32;
        let garbage: Vec<u8> = (0..20_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        for hint in [None, Some("mp3"), Some("audio/wav")] {
            match decode_to_pcm16k(&garbage, hint, 10.0) {
                Err(AudioError::Unsupported { format }) => {
                    assert!(format.contains("unrecognised"), "{format}")
                }
                other => panic!("{hint:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn non_audio_is_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"Hello, this is a plain text file.\nNot audio.\n", "text"),
            (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
            (b"  {\"error\": \"nope\"}", "JSON"),
            (b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj", "PDF"),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "PNG"),
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF", "JPEG"),
        ];
        for (bytes, name) in cases {
            match decode_to_pcm16k(bytes, Some("mp3"), 10.0) {
                Err(e @ AudioError::Unsupported { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("not an audio file") && msg.contains(name),
                        "{msg}"
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn unsupported_audio_is_named() {
        let mut ogg_opus = b"OggS\0\x02".to_vec();
        ogg_opus.extend_from_slice(&[0; 22]);
        ogg_opus.extend_from_slice(b"\x13OpusHead\x01\x01");
        let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84];
        webm.extend_from_slice(b"webm....A_OPUS....");
        let cases: &[(&[u8], &str)] = &[
            (&ogg_opus, "Opus audio in an Ogg container"),
            (&webm, "Opus audio in a WebM/Matroska container"),
            (b"#!AMR\n\x3c\x48\xf5", "AMR"),
            (b"#!AMR-WB\n\x3c\x48\xf5", "AMR-WB"),
            (b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0", "MIDI"),
            (b"FORM\0\0\0\x10AIFFCOMM", "AIFF"),
        ];
        for (bytes, name) in cases {
            match decode_to_pcm16k(bytes, None, 10.0) {
                Err(AudioError::Unsupported { format }) => {
                    assert!(format.contains(name), "{format} !~ {name}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn corrupt_wav_header() {
        // A WAV whose fmt chunk is cut: recognised, but nothing decodes.
        let bytes = wav(Fmt::I16, 16_000, 1, 100, sine(440.0, 16_000, 0.5));
        match decode_to_pcm16k(&bytes[..30], None, 10.0) {
            Err(AudioError::Corrupt { .. }) | Err(AudioError::Unsupported { .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hint_forms() {
        let bytes = wav(Fmt::I16, 16_000, 1, 1600, sine(440.0, 16_000, 0.5));
        for h in [
            "wav",
            ".WAV",
            "clip.wav",
            "audio/wav",
            "audio/x-wav; codecs=1",
            "",
            "bogus/type",
        ] {
            assert!(decode_to_pcm16k(&bytes, Some(h), 10.0).is_ok(), "{h}");
        }
    }

    /// mp3 / flac / ogg-vorbis / m4a-aac / m4a-alac made by ffmpeg from a generated
    /// WAV. Skips (with a message) when ffmpeg is missing, unless `CI=true`, where it fails.
    #[test]
    fn compressed_formats_via_ffmpeg() {
        use std::process::Command;
        let have_ffmpeg = Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_ffmpeg {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("ffmpeg is required under CI=true (apt-get install -y ffmpeg)");
            }
            eprintln!("skipping compressed_formats_via_ffmpeg: ffmpeg not found");
            return;
        }
        let dir = std::env::temp_dir().join(format!("audio-rs-ffmpeg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // `ffmpeg -i src <args> out`, true when it succeeded.
        let ffmpeg = |src: &std::path::Path, args: &[&str], out: &std::path::Path| {
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(src)
                .args(args)
                .arg(out)
                .status()
                .is_ok_and(|s| s.success())
        };
        let secs = 3.0;
        let rate = 44_100;
        let src = dir.join("src.wav");
        std::fs::write(
            &src,
            wav(
                Fmt::I16,
                rate,
                2,
                (secs * rate as f64) as usize,
                sine(440.0, rate, 0.5),
            ),
        )
        .unwrap();
        let variants: &[(&str, &[&str])] = &[
            ("mp3", &["-c:a", "libmp3lame", "-b:a", "128k"]),
            ("flac", &["-c:a", "flac"]),
            ("ogg", &["-c:a", "libvorbis", "-q:a", "4"]),
            ("m4a", &["-c:a", "aac", "-b:a", "128k"]),
            ("m4a", &["-c:a", "alac"]),
        ];
        let mut failures = Vec::new();
        for (i, (ext, args)) in variants.iter().enumerate() {
            let out = dir.join(format!("v{i}.{ext}"));
            assert!(ffmpeg(&src, args, &out), "ffmpeg {args:?}");
            let bytes = std::fs::read(&out).unwrap();
            let what = format!("{ext} {args:?}");
            match decode_to_pcm16k(&bytes, Some(ext), 60.0) {
                Ok(pcm) => {
                    eprintln!(
                        "{what}: codec={} duration={:.4}s out={:.4}s rate={} ch={} skipped={} truncated={}",
                        pcm.codec, pcm.duration_s, pcm.output_duration_s(), pcm.source_rate,
                        pcm.source_channels, pcm.skipped_packets, pcm.truncated
                    );
                    if (pcm.duration_s - secs as f32).abs() > 0.05
                        || (pcm.output_duration_s() - secs as f32).abs() > 0.05
                    {
                        failures.push(format!("{what}: duration {} s", pcm.duration_s));
                    }
                    check_sine(&pcm, 440.0, 0.5, &what);
                }
                Err(e) => failures.push(format!("{what}: {e}")),
            }
        }
        // Matroska/WebM is refused, naming the codec (no demuxer: see the module docs).
        for (ext, codec, name) in [("webm", "libvorbis", "Vorbis"), ("mkv", "flac", "FLAC")] {
            let out = dir.join(format!("refused.{ext}"));
            assert!(ffmpeg(&src, &["-c:a", codec], &out), "ffmpeg {codec}");
            match decode_to_pcm16k(&std::fs::read(&out).unwrap(), Some(ext), 60.0) {
                Err(AudioError::Unsupported { format })
                    if format == format!("{name} audio in a WebM/Matroska container") => {}
                other => failures.push(format!("{ext}/{codec}: {other:?}")),
            }
        }
        // Opus is recognised and named, not mis-decoded.
        let opus = dir.join("opus.ogg");
        let ok = ffmpeg(&src, &["-c:a", "libopus"], &opus);
        if ok {
            match decode_to_pcm16k(&std::fs::read(&opus).unwrap(), Some("ogg"), 60.0) {
                Err(AudioError::Unsupported { format }) if format.contains("Opus") => {}
                other => failures.push(format!("ogg/opus: {other:?}")),
            }
        }
        // Timing: a click at 1.0 s comes out at 1.0 s (encoder delay / AAC priming removed).
        let click_src = dir.join("click.wav");
        let click = wav(Fmt::I16, rate, 1, 2 * rate as usize, |i, _| {
            if (rate as usize - 2..=rate as usize + 2).contains(&i) {
                0.9
            } else {
                0.0
            }
        });
        std::fs::write(&click_src, click).unwrap();
        for (ext, codec) in [
            ("mp3", "libmp3lame"),
            ("flac", "flac"),
            ("ogg", "libvorbis"),
            ("m4a", "aac"),
        ] {
            let out = dir.join(format!("click.{ext}"));
            assert!(ffmpeg(&click_src, &["-c:a", codec], &out), "ffmpeg {codec}");
            let pcm = decode_to_pcm16k(&std::fs::read(&out).unwrap(), Some(ext), 60.0).unwrap();
            let peak = pcm
                .samples
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap()
                .0;
            if (peak as i64 - 16_000).abs() > 16 {
                failures.push(format!(
                    "{ext}: click at sample {peak}, want 16000 ± 16 (1 ms)"
                ));
            }
            if (pcm.duration_s - 2.0).abs() > 0.05 {
                failures.push(format!("{ext}: click file lasts {} s", pcm.duration_s));
            }
        }

        // Cut-off uploads: the audio before the cut comes back, flagged as truncated.
        // (m4a with the index first = `-movflags +faststart`; with the index last, a cut file has
        // no index and nothing can be decoded: Corrupt, naming the missing moov box.)
        let cut_variants: &[(&str, &[&str])] = &[
            ("mp3", &["-c:a", "libmp3lame"]),
            ("flac", &["-c:a", "flac"]),
            ("m4a", &["-c:a", "aac", "-movflags", "+faststart"]),
            ("m4a", &["-c:a", "aac"]),
        ];
        for (i, (ext, args)) in cut_variants.iter().enumerate() {
            let out = dir.join(format!("cut{i}.{ext}"));
            assert!(ffmpeg(&src, args, &out), "ffmpeg {args:?}");
            let bytes = std::fs::read(&out).unwrap();
            let cut = &bytes[..bytes.len() * 6 / 10];
            let what = format!("cut {ext} {args:?}");
            let index_last = *ext == "m4a" && !args.contains(&"+faststart");
            match decode_to_pcm16k(cut, Some(ext), 60.0) {
                Ok(pcm) if !index_last => {
                    if !pcm.truncated || !(1.0..2.5).contains(&pcm.duration_s) {
                        failures.push(format!(
                            "{what}: {} s, truncated={}",
                            pcm.duration_s, pcm.truncated
                        ));
                    }
                    check_sine(&pcm, 440.0, 0.5, &what);
                }
                Err(AudioError::Corrupt { detail }) if index_last && detail.contains("moov") => {}
                other => failures.push(format!("{what}: {other:?}")),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
