//! Ogg: whether the upload ends where its last logical stream ends, and the Vorbis setup headers
//! its demuxer reads.

use crate::audio::vorbis;
use crate::audio::AudioError;

/// Refuses an Ogg upload with a Vorbis setup header that symphonia's demuxer would panic on
/// while skipping its codebooks ([`vorbis::check_setup`]).
pub(in crate::audio) fn harden(b: &[u8]) -> Result<(), AudioError> {
    vorbis_setup_headers(b)
        .iter()
        .try_for_each(|packet| vorbis::check_setup(packet))
}

/// Each Vorbis stream's setup header (its third packet), reassembled from the pages as the
/// demuxer does: packets are the page segments up to one shorter than 255 bytes, across pages;
/// pages are found wherever they are, as the demuxer resyncs (and as the probe finds an Ogg
/// stream after data it does not recognise). A beginning-of-stream page starts the serial
/// number's packets afresh (chained streams).
fn vorbis_setup_headers(b: &[u8]) -> Vec<Vec<u8>> {
    /// A logical stream's headers so far.
    struct Stream {
        serial: [u8; 4],
        packets: usize,
        vorbis: bool,
        packet: Vec<u8>,
    }
    let mut streams: Vec<Stream> = Vec::new();
    let mut setups = Vec::new();
    let mut pos = 0usize;
    while let Some(h) = b.get(pos..pos + 27) {
        if &h[..4] != b"OggS" {
            // Lost sync (or data before the first page): the demuxer scans for the next page.
            match b[pos + 1..].windows(4).position(|w| w == b"OggS") {
                Some(skip) => pos += 1 + skip,
                None => break,
            }
            continue;
        }
        let serial: [u8; 4] = h[14..18].try_into().expect("4 bytes");
        let Some(table) = b.get(pos + 27..pos + 27 + usize::from(h[26])) else {
            break;
        };
        if h[5] & 0x02 != 0 {
            streams.retain(|s| s.serial != serial);
            streams.push(Stream {
                serial,
                packets: 0,
                vorbis: false,
                packet: Vec::new(),
            });
        }
        let mut at = pos + 27 + table.len();
        let mut stream = streams
            .iter_mut()
            .find(|s| s.serial == serial && s.packets < 3);
        for &lace in table {
            let segment = b
                .get(at..at + usize::from(lace))
                .unwrap_or(&b[at.min(b.len())..]);
            at += usize::from(lace);
            let Some(s) = stream.as_deref_mut() else {
                continue;
            };
            s.packet.extend_from_slice(segment);
            if lace == 255 {
                continue;
            }
            s.packets += 1;
            let packet = std::mem::take(&mut s.packet);
            if s.packets == 1 {
                s.vorbis = packet.starts_with(b"\x01vorbis");
            } else if s.packets == 3 {
                if s.vorbis {
                    setups.push(packet);
                }
                stream = None;
            }
        }
        pos = at;
    }
    setups
}

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
