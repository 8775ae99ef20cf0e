//! Bare MPEG audio and ADTS AAC streams: where symphonia starts reading them.

/// Whether `b` starts with one of the MPEG audio (layers I–III) or ADTS markers symphonia's
/// probe registers, so that it reads the stream from there rather than scanning further.
pub(in crate::audio) fn probe_marker_at_start(b: &[u8]) -> bool {
    match b {
        [0xFF, 0xF1, ..] => true, // ADTS (MPEG-4)
        // 11 sync bits, a version other than "reserved" (01), a layer other than 00.
        [0xFF, x, ..] => x & 0xE0 == 0xE0 && x & 0x18 != 0x08 && x & 0x06 != 0,
        _ => false,
    }
}

/// Whether an ADTS sync word (12 set bits, layer 00) sits where symphonia's ADTS reader
/// would panic on finding its first frame (found by fuzzing: adts-midfile-step-by-0-panic.bin; see `demux::decode`).
pub(in crate::audio) fn adts_midpoint_hazard(b: &[u8]) -> bool {
    let len = b.len();
    (len.saturating_sub(3).div_ceil(2)..=len / 2)
        .any(|p| matches!(b.get(p..p + 2), Some(&[0xFF, x]) if x & 0xF6 == 0xF0))
}
