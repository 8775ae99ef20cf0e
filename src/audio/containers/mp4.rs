//! MP4/M4A (ISO BMFF): one box iterator, the tags we never read, the edit list symphonia
//! ignores, and the sample entry it leaves unnamed.

use std::ops::Range;

use crate::audio::sink::Trim;

/// One box: where it starts, its type and its payload (up to the end of the data).
#[derive(Debug, Clone, PartialEq)]
pub(in crate::audio) struct Mp4Box {
    pub start: usize,
    pub kind: [u8; 4],
    pub payload: Range<usize>,
}

/// The boxes in `data[range]`, up to the first malformed header, read the way symphonia reads
/// them. It reads a box to its declared end even past its parent's (found by fuzzing:
/// mp4-stsd-past-stbl-esds-panic.bin, an `stsd` running out of a 24-byte `stbl` still had its
/// `esds` read), so a payload is taken as declared, up to the end of the data; siblings stop
/// at the parent's end. A size of 0 ("to the end of the file", an `mdat`) is read as empty.
pub(in crate::audio) struct Boxes<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Boxes<'a> {
    pub(in crate::audio) fn new(data: &'a [u8], range: Range<usize>) -> Self {
        Boxes {
            data,
            pos: range.start,
            end: range.end.min(data.len()),
        }
    }
}

impl Iterator for Boxes<'_> {
    type Item = Mp4Box;

    fn next(&mut self) -> Option<Mp4Box> {
        let (b, pos) = (self.data, self.pos);
        if pos + 8 > self.end {
            return None;
        }
        let size32 = u32::from_be_bytes(b[pos..pos + 4].try_into().expect("4 bytes"));
        let kind: [u8; 4] = b[pos + 4..pos + 8].try_into().expect("4 bytes");
        let (header, size) = match size32 {
            0 => {
                self.pos = self.end;
                return Some(Mp4Box {
                    start: pos,
                    kind,
                    payload: pos + 8..pos + 8,
                });
            }
            1 if pos + 16 <= self.end => {
                let size = u64::from_be_bytes(b[pos + 8..pos + 16].try_into().expect("8 bytes"));
                (16, usize::try_from(size).unwrap_or(usize::MAX))
            }
            1 => return None,
            n => (8, n as usize),
        };
        if size < header {
            self.pos = self.end;
            return None;
        }
        let declared_end = pos.saturating_add(size);
        self.pos = declared_end.min(self.end);
        Some(Mp4Box {
            start: pos,
            kind,
            payload: pos + header..declared_end.min(b.len()),
        })
    }
}

/// The payload of the first `kind` box in `data[within]`.
fn find(data: &[u8], within: Range<usize>, kind: &[u8; 4]) -> Option<Range<usize>> {
    Boxes::new(data, within)
        .find(|x| &x.kind == kind)
        .map(|x| x.payload)
}

/// Turns an MP4/M4A's metadata boxes (`udta`, `meta`: tags, cover art) into `free` boxes, in
/// place, which symphonia skips unread: we use no tags.
pub(in crate::audio) fn tags_to_free(b: &mut [u8]) {
    fn walk(b: &mut [u8], range: Range<usize>, depth: usize) {
        let children: Vec<Mp4Box> = Boxes::new(b, range).collect();
        for Mp4Box { start, kind, payload, .. } in children {
            match &kind {
                b"udta" | b"meta" => b[start + 4..start + 8].copy_from_slice(b"free"),
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" if depth < 8 => {
                    walk(b, payload, depth + 1)
                }
                _ => {}
            }
        }
    }
    walk(b, 0..b.len(), 0)
}

/// The first audio sample entry (`stsd`) fourcc of an MP4/MOV file, named; None if not found.
pub(in crate::audio) fn audio_sample_entry(b: &[u8]) -> Option<&'static str> {
    // stsd box: size(4) "stsd" version/flags(4) entry_count(4) | entry: size(4) fourcc(4) …
    let mut from = 0;
    while let Some(i) = b[from..]
        .windows(4)
        .position(|w| w == b"stsd")
        .map(|i| i + from)
    {
        from = i + 4;
        let Some(fourcc) = b.get(i + 16..i + 20) else {
            break;
        };
        let name = match fourcc {
            b"ac-3" => "AC-3 (Dolby Digital)",
            b"ec-3" => "E-AC-3 (Dolby Digital Plus)",
            b"ac-4" => "AC-4",
            b"samr" => "AMR (Adaptive Multi-Rate speech)",
            b"sawb" => "AMR-WB (wideband Adaptive Multi-Rate speech)",
            b"sevc" | b"sqcp" => "EVRC/QCELP speech",
            b"Opus" => "Opus",
            b"dtsc" | b"dtsh" | b"dtsl" | b"dtse" => "DTS",
            b"mp4a" => "MPEG-4 audio (AAC variant)",
            b"fLaC" => "FLAC",
            b"alac" => "ALAC",
            b"ima4" => "IMA4 ADPCM",
            b"QDM2" | b"QDMC" => "QDesign",
            b"ulaw" => "µ-law",
            b"alaw" => "A-law",
            b"sowt" | b"twos" | b"lpcm" | b"in24" | b"in32" | b"fl32" | b"fl64" | b"raw " => "PCM",
            _ => continue, // video or unknown entries: keep looking
        };
        return Some(name);
    }
    None
}

/// The edit list (`moov/trak/edts/elst`) of the first sound track of an MP4/M4A file.
///
/// symphonia (0.5 and 0.6) parses but ignores edit lists, so AAC comes out with the encoder's priming
/// samples in front (1024 for AAC-LC: 23 ms at 44.1 kHz, which would shift every timestamp)
/// and its padding at the end. We apply a single-segment edit: skip `media_time` (in the media
/// timescale) and keep `segment_duration` (in the movie timescale). Anything more complex
/// (several segments, a leading empty edit) is left alone.
pub(in crate::audio) fn audio_trim(b: &[u8]) -> Option<Trim> {
    let moov = find(b, 0..b.len(), b"moov")?;
    let movie_timescale = timescale(&b[find(b, moov.clone(), b"mvhd")?])?;
    for trak in Boxes::new(b, moov)
        .filter(|x| &x.kind == b"trak")
        .map(|x| x.payload)
    {
        let Some(mdia) = find(b, trak.clone(), b"mdia") else {
            continue;
        };
        let hdlr = find(b, mdia.clone(), b"hdlr");
        if hdlr.and_then(|h| b[h].get(8..12)) != Some(b"soun") {
            continue;
        }
        let media_timescale = timescale(&b[find(b, mdia, b"mdhd")?])?;
        let elst = &b[find(b, find(b, trak, b"edts")?, b"elst")?];
        let version = *elst.first()?;
        let count = u32::from_be_bytes(elst.get(4..8)?.try_into().ok()?) as usize;
        let entry_len = if version == 1 { 20 } else { 12 };
        let mut entries = (0..count.min(16)).map(|i| {
            let e = elst.get(8 + i * entry_len..8 + (i + 1) * entry_len)?;
            Some(if version == 1 {
                let duration = u64::from_be_bytes(e[0..8].try_into().ok()?);
                (duration, i64::from_be_bytes(e[8..16].try_into().ok()?))
            } else {
                let duration = u64::from(u32::from_be_bytes(e[0..4].try_into().ok()?));
                (
                    duration,
                    i64::from(i32::from_be_bytes(e[4..8].try_into().ok()?)),
                )
            })
        });
        let (duration, media_time) = entries.next()??;
        if count != 1 || media_time < 0 {
            return None;
        }
        let skip_s = media_time as f64 / f64::from(media_timescale);
        let keep_s = (duration > 0).then(|| duration as f64 / f64::from(movie_timescale));
        // Priming is a few thousand samples; ignore anything implausible.
        return (skip_s <= 10.0).then_some(Trim { skip_s, keep_s, drop_end_s: 0.0 });
    }
    None
}

/// The timescale field of an `mvhd` or `mdhd` payload.
fn timescale(payload: &[u8]) -> Option<u32> {
    let at = if *payload.first()? == 1 { 20 } else { 12 };
    let ts = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?);
    (ts > 0).then_some(ts)
}
