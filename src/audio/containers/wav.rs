//! WAV (RIFF/WAVE): format-chunk checks and codec names for messages.

use crate::audio::{unsupported, AudioError};

/// Prepares a WAV for symphonia, in place: rejects a `fmt ` chunk declaring 0 channels,
/// a sample rate of 0 Hz or a block size of 0 (it panics on a 0 Hz rate, `TimeBase::new(1, 0)`,
/// and divides by the others; found by fuzzing, in a first and in a second `fmt ` chunk: it
/// reads them all: wav-rate-0-panic.wav, wav-second-fmt-rate-0-panic.wav), and turns `LIST` chunks (INFO tags) into `JUNK`, which it skips unread:
/// its INFO reader allocates each string's declared length first (800 MB, found by fuzzing:
/// wav-info-string-800mb-oom.wav).
/// ADPCM with more than 2 channels is refused (415).
pub(in crate::audio) fn harden(b: &mut [u8]) -> Result<(), AudioError> {
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
            // fuzzing: wav-ima-adpcm-3ch-unreachable-panic.wav). (WAVE_FORMAT_EXTENSIBLE carries its sub-format 24 bytes in.)
            let sub = if tag == 0xFFFE {
                b.get(pos + 32..pos + 34)
                    .map(|t| u16::from_le_bytes([t[0], t[1]]))
            } else {
                Some(tag)
            };
            if matches!(sub, Some(0x0002 | 0x0011)) && channels > 2 {
                return Err(unsupported(format!(
                    "{} audio with {channels} channels (1 or 2 are supported)",
                    codec_name(sub.unwrap_or(tag))
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
pub(in crate::audio) fn format_tag(b: &[u8]) -> Option<u16> {
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

pub(in crate::audio) fn codec_name(tag: u16) -> &'static str {
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
