//! Matroska/WebM: whether the upload holds the whole Segment it declares, and the end padding
//! of its last block, which symphonia's reader ignores.

/// An EBML variable-length integer at `b[0..]`: (value, length); `None` for the unknown size
/// (all value bits set) or a malformed one.
fn vint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut value = u64::from(first) & (0xFF >> len);
    for &x in b.get(1..len)? {
        value = (value << 8) | u64::from(x);
    }
    let unknown = value == (1u64 << (7 * len)) - 1;
    (!unknown).then_some((value, len))
}

/// False when the Segment declares a size that runs past the end of the data (a cut upload).
/// A live recording (MediaRecorder) writes the unknown size: nothing to compare, true.
pub(in crate::audio) fn holds_declared_segment(b: &[u8]) -> bool {
    // EBML header: ID 1A 45 DF A3, size, payload; then the Segment: ID 18 53 80 67, size.
    let Some((header, n)) = b.get(4..).and_then(vint) else {
        return true;
    };
    let Some(seg) = usize::try_from(header)
        .ok()
        .and_then(|h| h.checked_add(4 + n))
    else {
        return true;
    };
    if b.get(seg..seg + 4) != Some(&[0x18, 0x53, 0x80, 0x67]) {
        return true;
    }
    match b.get(seg + 4..).and_then(vint) {
        Some((size, n)) => (seg + 4 + n) as u64 + size <= b.len() as u64,
        None => true,
    }
}

/// An EBML element header at `b[pos..]`: (ID with its marker bits, where its body starts, its
/// size or `None` for the unknown size). `None` at the end of the data or for a malformed header.
fn element(b: &[u8], pos: usize) -> Option<(u32, usize, Option<u64>)> {
    let first = *b.get(pos)?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return None;
    }
    let id = b.get(pos..pos + id_len)?.iter().fold(0u32, |id, &x| (id << 8) | u32::from(x));
    let size_at = pos + id_len;
    let size_len = b.get(size_at)?.leading_zeros() as usize + 1;
    if size_len > 8 {
        return None;
    }
    Some((id, size_at + size_len, vint(b.get(size_at..)?).map(|(size, _)| size)))
}

/// Seconds of padding at the end of track `track`: the DiscardPadding of its last block, when
/// that block is in a BlockGroup that has one (ffmpeg writes it for Opus, whose last frame runs
/// past the end of the audio). symphonia's Matroska reader decodes the padding as audio.
/// 0 when the last block has none (a SimpleBlock: Chrome's MediaRecorder writes only those).
pub(in crate::audio) fn end_padding_s(b: &[u8], track: u64) -> f64 {
    const SEGMENT: u32 = 0x1853_8067;
    const CLUSTER: u32 = 0x1F43_B675;
    const BLOCK_GROUP: u32 = 0xA0;
    const SIMPLE_BLOCK: u32 = 0xA3;
    let mut padding_ns = 0i64;
    let mut pos = 0usize;
    while let Some((id, body, size)) = element(b, pos) {
        if id == SEGMENT || id == CLUSTER {
            pos = body; // read their children in place, whether their size is known or not
            continue;
        }
        // Another element of unknown size: nothing after it can be placed.
        let Some(end) = size.and_then(|n| usize::try_from(n).ok()).and_then(|n| body.checked_add(n)) else {
            break;
        };
        let payload = b.get(body..end.min(b.len())).unwrap_or_default();
        match id {
            SIMPLE_BLOCK if block_track(payload) == Some(track) => padding_ns = 0,
            BLOCK_GROUP => {
                if let Some(padding) = group_padding(payload, track) {
                    padding_ns = padding;
                }
            }
            _ => {}
        }
        pos = end;
    }
    padding_ns.max(0) as f64 / 1e9
}

/// The track number a (Simple)Block's payload starts with.
fn block_track(payload: &[u8]) -> Option<u64> {
    vint(payload).map(|(track, _)| track)
}

/// For a BlockGroup whose Block is of `track`: its DiscardPadding in nanoseconds (0 if none).
fn group_padding(group: &[u8], track: u64) -> Option<i64> {
    const BLOCK: u32 = 0xA1;
    const DISCARD_PADDING: u32 = 0x75A2;
    let (mut ours, mut padding) = (false, 0i64);
    let mut pos = 0usize;
    while let Some((id, body, Some(size))) = element(group, pos) {
        let end = usize::try_from(size).ok().and_then(|n| body.checked_add(n))?;
        let payload = group.get(body..end)?;
        match id {
            BLOCK => ours = block_track(payload) == Some(track),
            // A signed big-endian integer of up to 8 bytes.
            DISCARD_PADDING if (1..=8).contains(&payload.len()) => {
                let sign = if payload[0] & 0x80 != 0 { -1i64 } else { 0 };
                padding = payload.iter().fold(sign, |v, &x| (v << 8) | i64::from(x));
            }
            _ => {}
        }
        pos = end;
    }
    ours.then_some(padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vints() {
        assert_eq!(vint(&[0x81]), Some((1, 1)));
        assert_eq!(vint(&[0x40, 0x02]), Some((2, 2)));
        assert_eq!(vint(&[0xFF]), None); // unknown size
        assert_eq!(
            vint(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            None
        );
        assert_eq!(vint(&[0x00]), None);
    }

    #[test]
    fn declared_segment() {
        let mut b = vec![
            0x1A, 0x45, 0xDF, 0xA3, 0x82, 0x42, 0x86, 0x18, 0x53, 0x80, 0x67, 0x84,
        ];
        b.extend_from_slice(&[0; 4]);
        assert!(holds_declared_segment(&b));
        assert!(!holds_declared_segment(&b[..b.len() - 1]));
        b[11] = 0xFF; // unknown size: a live stream
        assert!(holds_declared_segment(&b[..b.len() - 1]));
    }

    /// An element: ID bytes, a 1-byte size, the body.
    fn el(id: &[u8], body: &[u8]) -> Vec<u8> {
        [id, &[0x80 | body.len() as u8], body].concat()
    }

    #[test]
    fn end_padding_of_the_last_block() {
        let block = |track: u8| [&[0x80 | track][..], &[0, 0, 0x80, 0xFC]].concat();
        let group = |track: u8, padding: &[u8]| {
            el(&[0xA0], &[el(&[0xA1], &block(track)), el(&[0x75, 0xA2], padding)].concat())
        };
        let cluster = |blocks: Vec<Vec<u8>>| {
            // Unknown size, as MediaRecorder writes it.
            [&[0x1F, 0x43, 0xB6, 0x75, 0xFF][..], &el(&[0xE7], &[0]), &blocks.concat()].concat()
        };
        let file = |clusters: Vec<Vec<u8>>| {
            let header = el(&[0x1A, 0x45, 0xDF, 0xA3], &el(&[0x42, 0x82], b"webm"));
            [header, vec![0x18, 0x53, 0x80, 0x67, 0xFF], clusters.concat()].concat()
        };
        // 13.5 ms of padding (0x00CD_FE60 ns, a 4-byte signed integer) on track 1's last block, in the second cluster.
        let padded = file(vec![
            cluster(vec![el(&[0xA3], &block(1))]),
            cluster(vec![el(&[0xA3], &block(1)), group(1, &[0x00, 0xCD, 0xFE, 0x60])]),
        ]);
        assert!((end_padding_s(&padded, 1) - 0.0135).abs() < 1e-12);
        // Another track's blocks do not count; a SimpleBlock after it ends with no padding.
        let other = file(vec![cluster(vec![group(1, &[0x00, 0xCD, 0xFE, 0x60]), group(2, &[0x10])])]);
        assert!((end_padding_s(&other, 1) - 0.0135).abs() < 1e-12);
        let later = file(vec![cluster(vec![group(1, &[0x10]), el(&[0xA3], &block(1))])]);
        assert_eq!(end_padding_s(&later, 1), 0.0);
        // Negative (padding at the start) and malformed values give none.
        assert_eq!(end_padding_s(&file(vec![cluster(vec![group(1, &[0xFF])])]), 1), 0.0);
        assert_eq!(end_padding_s(&padded[..padded.len() - 2], 1), 0.0);
    }
}
