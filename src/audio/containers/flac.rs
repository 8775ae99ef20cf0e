//! FLAC: metadata blocks the decoder has no use for are never parsed.

/// Turns every FLAC metadata block but STREAMINFO into PADDING (same length, so the audio
/// frames stay where they are), in place. symphonia then skips them unread: we use no tags,
/// pictures, cue sheets or seek tables, and its tag parsers trust the lengths inside them (flac-comment-length-oom.flac).
pub(in crate::audio) fn metadata_to_padding(b: &mut [u8]) {
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
