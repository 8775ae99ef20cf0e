//! Matroska/WebM: whether the upload holds the whole Segment it declares.

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
}
