//! ID3v2 tags in front of MPEG audio (or anything else): cut off unread.

/// Length of the ID3v2 tags at the start of `b` (header, syncsafe size, optional footer), at
/// most `b.len()`. symphonia's ID3v2 reader allocates each frame's declared size (up to
/// 256 MiB) before reading it; we use no tags, so they are cut off instead.
pub(crate) fn leading_id3v2_len(b: &[u8]) -> usize {
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
