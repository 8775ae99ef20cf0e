//! Demux + decode with symphonia 0.6: probe the container, pick the first audio track we have
//! a decoder for, and feed its packets to the [`Sink`].
//!
//! End of stream is `Ok(None)` (or an unexpected EOF); a `DecodeError` on one packet skips that
//! packet (counted in [`Pcm16k::skipped_packets`]); a demuxer failure midway keeps what was
//! decoded so far ([`Pcm16k::truncated`]); a changed track list (chained Ogg) picks the track
//! again.

use std::io::{Cursor, ErrorKind};
use std::sync::{Arc, OnceLock};

use symphonia::core::codecs::audio::well_known::CODEC_ID_VORBIS;
use symphonia::core::codecs::audio::CODEC_ID_NULL_AUDIO;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use super::containers::{matroska, mp4, ogg};
use super::describe::{codec_display_name, nothing_decoded, probe_error, unsupported_tracks};
use super::opus::OpusAudioDecoder;
use super::sink::{Decoded, Sink, Trim};
use super::sniff::{Container, Sniff};
use super::vorbis;
use super::{unsupported, AudioError, Pcm16k};

/// symphonia's decoders plus ours (Opus).
fn codecs() -> &'static CodecRegistry {
    static REGISTRY: OnceLock<CodecRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_audio_decoder::<OpusAudioDecoder>();
        registry
    })
}

/// The upload, shared between symphonia's reader and our error messages (no copy).
#[derive(Clone)]
struct Shared(Arc<[u8]>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Decodes the (hardened) upload.
pub(super) fn decode(
    body: Vec<u8>,
    sniffed: Sniff,
    hint: Option<&str>,
    max_seconds: f32,
) -> Result<Pcm16k, AudioError> {
    let data = Shared(body.into());
    let mut probe_hint = Hint::new();
    if let Some(h) = hint {
        apply_hint(&mut probe_hint, h);
    }
    let first = decode_from(&data, &sniffed, &probe_hint, max_seconds, true);
    // Retry reading linearly (a source that cannot seek), which needs less of the file:
    // - MP4 whose `mdat` runs past the end (a cut-off upload with the index first): the reader
    //   then stops at `mdat` instead of seeking past it, and reads the samples that are there;
    // - Ogg and Matroska: the reader no longer scans the end of the file or follows a SeekHead
    //   to Cues past a cut, so a damaged or missing tail cannot fail the whole file.
    let linear_helps = matches!(
        sniffed.container(),
        Some(Container::Mp4 | Container::Ogg | Container::WebM | Container::Matroska)
    );
    match first {
        Err(AudioError::Corrupt { .. } | AudioError::Unsupported { .. })
            if linear_helps =>
        {
            decode_from(&data, &sniffed, &probe_hint, max_seconds, false).or(first)
        }
        result => result,
    }
}

fn decode_from(
    data: &Shared,
    sniffed: &Sniff,
    probe_hint: &Hint,
    max_seconds: f32,
    seekable: bool,
) -> Result<Pcm16k, AudioError> {
    let bytes: &[u8] = &data.0;
    let container = sniffed.container();
    let mut format =
        open_format(data, probe_hint, seekable).map_err(|e| probe_error(sniffed, bytes, e))?;

    let mut track = open_track(format.as_ref(), sniffed, bytes)?;
    let trim = match container {
        Some(Container::Mp4) => mp4::audio_trim(bytes),
        // symphonia's Matroska reader ignores the last block's DiscardPadding (Opus's end
        // padding, up to 20 ms): drop it at the end. Without one, keep what the Segment's
        // Duration says, when it has one (ffmpeg rounds it up). Other codecs decode to their
        // exact length; a wrong Duration must not cut them.
        Some(Container::WebM | Container::Matroska) if track.codec_name == "opus" => {
            match matroska::end_padding_s(bytes, u64::from(track.id)) {
                0.0 => declared_seconds(format.as_ref()).map(|keep_s| Trim {
                    keep_s: Some(keep_s),
                    ..Trim::default()
                }),
                drop_end_s => Some(Trim {
                    drop_end_s,
                    ..Trim::default()
                }),
            }
        }
        _ => None,
    };
    let mut sink = Sink::new(max_seconds, trim);
    sink.reserve_for(track.n_frames, track.sample_rate, bytes.len());
    let mut skipped_packets = 0usize;
    let mut unsupported_packets = 0usize;
    let mut last_decode_error: Option<String> = None;
    let mut stream_error: Option<String> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A stream cut inside a packet ends like a stream that ends there.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            // The track list changed (e.g. chained Ogg streams): pick the track again.
            Err(SymphoniaError::ResetRequired) => {
                let switches = track.switches + 1;
                match open_track(format.as_ref(), sniffed, bytes) {
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
        if packet.track_id != track.id {
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
            Err(SymphoniaError::ResetRequired) => track.decoder.reset(),
            Err(e) => {
                stream_error = Some(e.to_string());
                break;
            }
        }
    }

    let decoded_source_frames = sink.total_frames;
    let Some(Decoded {
        samples,
        source_rate,
        source_channels,
        duration_s,
    }) = sink.finish()
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
                sniffed,
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
    // Declared length vs what we got: > 100 ms short = cut off.
    let short_of_declared = track.switches == 0
        && track
            .n_frames
            .is_some_and(|n| decoded_source_frames + u64::from(source_rate) / 10 < n);
    // Containers that declare no length show a cut by how they end.
    let cut = match container {
        Some(Container::Ogg) => !ogg::ends_cleanly(bytes),
        Some(Container::WebM | Container::Matroska) => !matroska::holds_declared_segment(bytes),
        _ => false,
    };
    Ok(Pcm16k {
        samples,
        source_rate,
        source_channels,
        duration_s: duration_s as f32,
        codec: track.codec_name,
        skipped_packets,
        truncated: stream_error.is_some() || short_of_declared || cut,
    })
}

/// The container's declared duration in seconds, if any.
fn declared_seconds(format: &dyn FormatReader) -> Option<f64> {
    let info = format.media_info();
    let seconds = info.time_base?.calc_duration(info.duration?)?.as_secs_f64();
    (seconds > 0.0).then_some(seconds)
}

/// Probes the container over the shared bytes, optionally hiding that the source can seek.
fn open_format(
    data: &Shared,
    hint: &Hint,
    seekable: bool,
) -> Result<Box<dyn FormatReader>, SymphoniaError> {
    let cursor = Cursor::new(data.clone());
    let source: Box<dyn MediaSource> = if seekable {
        Box::new(cursor)
    } else {
        Box::new(ReadOnlySource::new(cursor))
    };
    let mss = MediaSourceStream::new(source, Default::default());
    symphonia::default::get_probe().probe(
        hint,
        mss,
        FormatOptions::default(),
        MetadataOptions::default(),
    )
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

/// The selected track and its decoder.
struct OpenTrack {
    id: u32,
    decoder: Box<dyn AudioDecoder>,
    codec_name: String,
    /// Frames the container declares for the track, if any.
    n_frames: Option<u64>,
    /// Sample rate the container declares, if any.
    sample_rate: Option<u32>,
    /// How many times the track was re-selected (chained streams): then `n_frames` is per link.
    switches: usize,
}

/// Picks the first audio track with a decoder we have; otherwise names the codec we lack.
fn open_track(
    format: &dyn FormatReader,
    sniffed: &Sniff,
    bytes: &[u8],
) -> Result<OpenTrack, AudioError> {
    let registry = codecs();
    let tracks = format.tracks();
    let usable = tracks.iter().find_map(|t| match &t.codec_params {
        Some(CodecParameters::Audio(p))
            if p.codec != CODEC_ID_NULL_AUDIO && registry.get_audio_decoder(p.codec).is_some() =>
        {
            Some((t, p))
        }
        _ => None,
    });
    let Some((track, params)) = usable else {
        return Err(unsupported(unsupported_tracks(tracks, sniffed, bytes)));
    };
    if params.codec == CODEC_ID_VORBIS {
        let setup = params
            .extra_data
            .as_deref()
            .and_then(vorbis::setup_in_codec_data);
        setup.map_or(Ok(()), vorbis::check_setup)?;
    }
    let options = AudioDecoderOptions::default(); // gapless: the demuxers' trims are applied
    let decoder = registry
        .make_audio_decoder(params, &options)
        .map_err(|e| match e {
            SymphoniaError::Unsupported(msg) => unsupported(format!(
                "{} variant not supported ({msg})",
                codec_display_name(params.codec)
            )),
            e => AudioError::Corrupt {
                detail: format!("cannot start the decoder: {e}"),
            },
        })?;
    let codec_name = decoder.codec_info().short_name.to_string();
    Ok(OpenTrack {
        id: track.id,
        decoder,
        codec_name,
        n_frames: track.num_frames,
        sample_rate: params.sample_rate,
        switches: 0,
    })
}
