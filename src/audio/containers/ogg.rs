//! Ogg: whether the upload ends where its last logical stream ends.

/// False when the page walk from the start does not end exactly at the end of the data on a
/// page flagged end-of-stream: the upload was cut (a partial page is dropped by the demuxer,
/// and an Ogg file declares no length, so this is how a cut shows).
pub(in crate::audio) fn ends_cleanly(b: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut last_eos = false;
    while pos < b.len() {
        let Some(h) = b.get(pos..pos + 27) else {
            return false;
        };
        if &h[..4] != b"OggS" {
            return false;
        }
        let segments = usize::from(h[26]);
        let Some(table) = b.get(pos + 27..pos + 27 + segments) else {
            return false;
        };
        let body: usize = table.iter().map(|&x| usize::from(x)).sum();
        last_eos = h[5] & 0x04 != 0;
        pos += 27 + segments + body;
    }
    pos == b.len() && last_eos
}

#[cfg(test)]
mod tests {
    use super::ends_cleanly;

    fn page(flags: u8, body: &[u8]) -> Vec<u8> {
        let mut p = b"OggS\0".to_vec();
        p.push(flags);
        p.extend_from_slice(&[0; 20]);
        p.push(1);
        p.push(body.len() as u8);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn cut_and_whole_streams() {
        let whole = [page(0x02, b"head"), page(0, b"audio"), page(0x04, b"end")].concat();
        assert!(ends_cleanly(&whole));
        assert!(!ends_cleanly(&whole[..whole.len() - 1]));
        assert!(!ends_cleanly(&whole[..whole.len() - 30]));
        let no_eos = [page(0x02, b"head"), page(0, b"audio")].concat();
        assert!(!ends_cleanly(&no_eos));
    }
}
