//! WAV (RIFF/WAVE): the tags we never read, and codec names for messages.

/// Turns a WAV's `LIST` chunks (INFO tags) into `JUNK`, in place, which symphonia skips unread:
/// we use no tags (symphonia 0.5 allocated each INFO string's declared length first:
/// wav-info-string-800mb-oom.wav).
pub(in crate::audio) fn tags_to_junk(b: &mut [u8]) {
    let mut pos = 12; // after "RIFF" size "WAVE"
    while pos + 8 <= b.len() {
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        if &b[pos..pos + 4] == b"LIST" {
            b[pos..pos + 4].copy_from_slice(b"JUNK");
        }
        let Some(next) = pos.checked_add(8 + size + (size & 1)) else {
            return;
        };
        pos = next;
    }
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
