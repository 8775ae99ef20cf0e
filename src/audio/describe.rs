//! Error messages that name what we recognised: the container, the codec we lack, the reason
//! nothing decoded.

use std::io::ErrorKind;

use symphonia::core::codecs::audio::well_known as codec;
use symphonia::core::codecs::audio::{AudioCodecId, CODEC_ID_NULL_AUDIO};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::Track;

use super::containers::{mp4, wav};
use super::sniff::{Container, Sniff};
use super::{unsupported, AudioError};

/// Error for a stream that produced no audio at all.
pub(super) fn nothing_decoded(
    sniffed: &Sniff,
    codec: &str,
    skipped: usize,
    err: String,
) -> AudioError {
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

/// Maps a probe failure to an error naming what we recognised.
pub(super) fn probe_error(sniffed: &Sniff, bytes: &[u8], err: SymphoniaError) -> AudioError {
    let Some(container) = sniffed.container() else {
        return unsupported("unrecognised data (no known audio signature)");
    };
    let name = container.name();
    match err {
        _ if container == Container::Mp4 && !bytes.windows(4).any(|w| w == b"moov") => {
            AudioError::Corrupt {
                detail:
                    "MP4/M4A file without its index (moov box): probably cut off before the end"
                        .into(),
            }
        }
        SymphoniaError::Unsupported(msg) if container == Container::Wav => {
            match wav::format_tag(bytes) {
                Some(tag) => unsupported(format!(
                    "{} audio in a WAV container (format tag 0x{tag:04X})",
                    wav::codec_name(tag)
                )),
                None => unsupported(format!("WAV variant not supported by the decoder ({msg})")),
            }
        }
        SymphoniaError::Unsupported(msg) => unsupported(format!(
            "{name} variant not supported by the decoder ({msg})"
        )),
        SymphoniaError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => AudioError::Corrupt {
            detail: format!("{name} file ends inside its header"),
        },
        e => AudioError::Corrupt {
            detail: format!("{name} header could not be read: {e}"),
        },
    }
}

/// Why no track can be decoded: "Speex audio in an Ogg container", "WebM file without an
/// audio track", "AC-3 (Dolby Digital) audio in an MP4/M4A container".
pub(super) fn unsupported_tracks(tracks: &[Track], sniffed: &Sniff, bytes: &[u8]) -> String {
    let container = sniffed.container();
    let name = container.map_or("unrecognised", Container::name);
    let audio: Vec<AudioCodecId> = tracks
        .iter()
        .filter_map(|t| match &t.codec_params {
            Some(CodecParameters::Audio(p)) => Some(p.codec),
            _ => None,
        })
        .collect();
    let codec = match audio.iter().find(|&&c| c != CODEC_ID_NULL_AUDIO) {
        Some(&c) => Some(codec_display_name(c)),
        // symphonia's MP4 reader leaves codecs it does not know as NULL: read the sample entry.
        None if container == Some(Container::Mp4) => mp4::audio_sample_entry(bytes),
        None => None,
    };
    match (codec, container) {
        (Some(codec), Some(c)) if c.is_elementary() => format!("{codec} audio"),
        (Some(codec), Some(c)) => format!("{codec} audio in {} container", c.with_article()),
        (Some(codec), None) => format!("{codec} audio"),
        // Only video (or subtitles), or nothing at all.
        (None, _) if audio.is_empty() => format!("{name} file without an audio track"),
        (None, _) => format!("{name} file with an audio codec we cannot identify"),
    }
}

/// A human name for a codec, including ones we have no decoder for.
pub(super) fn codec_display_name(id: AudioCodecId) -> &'static str {
    match id {
        codec::CODEC_ID_OPUS => "Opus",
        codec::CODEC_ID_SPEEX => "Speex",
        codec::CODEC_ID_VORBIS => "Vorbis",
        codec::CODEC_ID_MP1 => "MPEG-1 Layer I",
        codec::CODEC_ID_MP2 => "MPEG-1 Layer II (MP2)",
        codec::CODEC_ID_MP3 => "MP3",
        codec::CODEC_ID_AAC => "AAC",
        codec::CODEC_ID_FLAC => "FLAC",
        codec::CODEC_ID_ALAC => "ALAC",
        codec::CODEC_ID_WAVPACK => "WavPack",
        codec::CODEC_ID_MONKEYS_AUDIO => "Monkey's Audio",
        codec::CODEC_ID_TTA => "TTA",
        codec::CODEC_ID_MUSEPACK => "Musepack",
        codec::CODEC_ID_ATRAC1
        | codec::CODEC_ID_ATRAC3
        | codec::CODEC_ID_ATRAC3PLUS
        | codec::CODEC_ID_ATRAC9 => "ATRAC",
        codec::CODEC_ID_AC3 => "AC-3 (Dolby Digital)",
        codec::CODEC_ID_EAC3 => "E-AC-3 (Dolby Digital Plus)",
        codec::CODEC_ID_AC4 => "AC-4",
        codec::CODEC_ID_DCA => "DTS",
        codec::CODEC_ID_WMA => "WMA",
        codec::CODEC_ID_TRUEHD => "Dolby TrueHD",
        codec::CODEC_ID_COOK
        | codec::CODEC_ID_RA10
        | codec::CODEC_ID_RA20
        | codec::CODEC_ID_SIPR => "RealAudio",
        codec::CODEC_ID_ADPCM_MS => "Microsoft ADPCM",
        codec::CODEC_ID_ADPCM_IMA_WAV | codec::CODEC_ID_ADPCM_IMA_QT => "IMA ADPCM",
        codec::CODEC_ID_ADPCM_G722 | codec::CODEC_ID_ADPCM_G726 | codec::CODEC_ID_ADPCM_G726LE => {
            "G.72x ADPCM"
        }
        _ => "an unsupported codec's",
    }
}
