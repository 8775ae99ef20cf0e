//! MP4/M4A (ISO BMFF): one box iterator, the hardening of what symphonia reads with lengths it
//! trusts, the edit list it ignores, and the sample entry it leaves unnamed.

use std::ops::Range;

use crate::audio::sink::Trim;
use crate::audio::AudioError;

/// One box: where it starts, its type, its payload and whether it runs past the end of the
/// data (a cut file).
#[derive(Debug, Clone, PartialEq)]
pub(in crate::audio) struct Mp4Box {
    pub start: usize,
    pub kind: [u8; 4],
    pub payload: Range<usize>,
    pub cut: bool,
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
                    cut: false,
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
            cut: declared_end > b.len(),
        })
    }
}

/// The payload of the first `kind` box in `data[within]`.
fn find(data: &[u8], within: Range<usize>, kind: &[u8; 4]) -> Option<Range<usize>> {
    Boxes::new(data, within)
        .find(|x| &x.kind == kind)
        .map(|x| x.payload)
}

/// Makes an MP4/M4A safe to hand to symphonia, in place: its metadata boxes (`udta`, `meta`:
/// tags, cover art) become `free` boxes, which it skips unread, and the sample tables and
/// `hdlr` boxes it reads must be as long as they declare. symphonia allocates a table from its
/// declared entry count before reading it (mp4-stsc-count-oom.m4a: a 28-byte `stsc` claiming
/// 2.6 G entries asked for 42 GB) and subtracts `hdlr`'s fixed fields from its length without
/// a check (mp4-hdlr-size-0-capacity-overflow.m4a). Such a file is corrupt, whatever else is
/// in it.
pub(in crate::audio) fn harden(b: &mut [u8]) -> Result<(), AudioError> {
    fn walk(b: &mut [u8], range: Range<usize>, depth: usize) -> Result<(), AudioError> {
        let children: Vec<Mp4Box> = Boxes::new(b, range).collect();
        for Mp4Box {
            start,
            kind,
            payload,
            cut,
        } in children
        {
            match &kind {
                b"udta" | b"meta" => b[start + 4..start + 8].copy_from_slice(b"free"),
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" if depth < 8 => {
                    walk(b, payload, depth + 1)?
                }
                // symphonia allocates `hdlr`'s declared name length before reading it.
                b"hdlr" if cut => {
                    return Err(AudioError::Corrupt {
                        detail: "MP4 'hdlr' box runs past the end of the file".into(),
                    })
                }
                _ => check_box(&kind, &b[payload], b.len())?,
            }
        }
        Ok(())
    }
    walk(b, 0..b.len(), 0)
}

/// Checks one leaf box symphonia reads with a length it trusts (see [`harden`]).
pub(in crate::audio) fn check_box(
    kind: &[u8; 4],
    payload: &[u8],
    file_len: usize,
) -> Result<(), AudioError> {
    let u32_at = |i: usize| {
        payload
            .get(i..i + 4)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    };
    // symphonia reads each sample into a buffer of the size `stsz` gives it, allocated first:
    // no sample can be larger than the file (3 GB was found by fuzzing:
    // mp4-sample-size-3gb-oom.m4a).
    if kind == b"stsz" {
        let too_big = |size: u32| size as usize > file_len;
        let count = u32_at(8).unwrap_or(0) as usize;
        let sizes = payload
            .get(12..)
            .unwrap_or_default()
            .chunks_exact(4)
            .take(count);
        if u32_at(4).is_some_and(too_big)
            || sizes
                .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
                .any(too_big)
        {
            return Err(AudioError::Corrupt {
                detail: format!(
                    "MP4 'stsz' declares a sample larger than the {file_len}-byte file"
                ),
            });
        }
    }
    // (entry count offset, table offset, bytes per entry); `stsz` has a table only when its
    // common sample size is 0.
    let table = match kind {
        b"stts" => Some((4, 8, 8)),
        b"stsc" => Some((4, 8, 12)),
        b"stco" => Some((4, 8, 4)),
        b"co64" => Some((4, 8, 8)),
        b"stsz" if u32_at(4) == Some(0) => Some((8, 12, 4)),
        b"stsz" => Some((8, 12, 0)),
        // The sample descriptions: `esds` sits inside an `mp4a` entry (after its fixed fields,
        // whose length depends on the entry's version), so look for the box by its type.
        b"stsd" => {
            let mut from = 4;
            // (`get`: an `stsd` shorter than its 4-byte header was found by fuzzing: mp4-short-stsd-slice-panic.m4a.)
            while let Some(i) = payload
                .get(from..)
                .and_then(|p| p.windows(4).position(|w| w == b"esds"))
                .map(|i| i + from)
            {
                from = i + 4;
                let size =
                    u32::from_be_bytes(payload[i - 4..i].try_into().expect("4 bytes")) as usize;
                if size < 8 {
                    continue;
                }
                // One running past its sample description is read by symphonia from whatever
                // follows (found by fuzzing: mp4-esds-past-stsd-panic.m4a): corrupt either way.
                let Some(esds) = payload.get(i + 4..(i - 4).saturating_add(size)) else {
                    return Err(AudioError::Corrupt {
                        detail: "MP4 'esds' box runs past its sample description".into(),
                    });
                };
                if !esds_ok(esds) {
                    return Err(AudioError::Corrupt {
                        detail: "MP4 'esds' box without a readable ES descriptor".into(),
                    });
                }
            }
            None
        }
        // symphonia makes the track's time base from it: `TimeBase::new(1, 0)` panics (found
        // by fuzzing: mp4-mdhd-timescale-0-panic.m4a).
        b"mdhd"
            if payload
                .first()
                .is_some_and(|&v| payload.len() >= if v == 1 { 24 } else { 16 })
                && timescale(payload).is_none() =>
        {
            return Err(AudioError::Corrupt {
                detail: "MP4 'mdhd' declares a timescale of 0".into(),
            })
        }
        b"hdlr" if payload.len() < 24 => {
            return Err(AudioError::Corrupt {
                detail: format!(
                    "MP4 'hdlr' box of {} bytes is shorter than its fields",
                    payload.len()
                ),
            })
        }
        _ => None,
    };
    let Some((count_at, table_at, entry)) = table else {
        return Ok(());
    };
    let name = String::from_utf8_lossy(kind);
    let count = u32_at(count_at).ok_or_else(|| AudioError::Corrupt {
        detail: format!("MP4 '{name}' box of {} bytes is cut short", payload.len()),
    })?;
    let need = table_at as u64 + u64::from(count) * entry;
    if need > payload.len() as u64 {
        return Err(AudioError::Corrupt {
            detail: format!(
                "MP4 '{name}' table declares {count} entries but holds {} bytes",
                payload.len()
            ),
        });
    }
    Ok(())
}

/// Whether symphonia can read an `esds` payload (after the box header) without trusting
/// a length past the data. Its reader unwraps a missing ES descriptor (found by fuzzing:
/// mp4-esds-without-es-descriptor-panic.m4a),
/// allocates a decoder-specific info's declared length (up to 256 MiB) before reading it, and
/// subtracts the fixed fields from descriptor lengths unchecked; this walks the descriptors
/// the way it does (ES → decoder config → decoder-specific info) and requires each to fit.
pub(in crate::audio) fn esds_ok(payload: &[u8]) -> bool {
    /// (tag, content) of the descriptors in `b` while more than 2 bytes are left, as symphonia
    /// reads them; None if a length (1–4 bytes of 7 bits) or a content runs past `b`.
    fn descriptors(b: &[u8]) -> Option<Vec<(u8, &[u8])>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while b.len() - pos > 2 {
            let tag = b[pos];
            pos += 1;
            let mut len = 0usize;
            for _ in 0..4 {
                let x = *b.get(pos)?;
                pos += 1;
                len = (len << 7) | usize::from(x & 0x7F);
                if x & 0x80 == 0 {
                    break;
                }
            }
            out.push((tag, b.get(pos..pos.checked_add(len)?)?));
            pos += len;
        }
        Some(out)
    }
    let Some(top) = payload.get(4..).and_then(descriptors) else {
        return false;
    };
    let mut found = false;
    for (_, es) in top.into_iter().filter(|(tag, _)| *tag == 3) {
        // ES_ID (2), flags (1), then the optional fields the flags announce.
        let Some(&flags) = es.get(2) else {
            return false;
        };
        let mut at = 3;
        if flags & 0x80 != 0 {
            at += 2;
        }
        if flags & 0x40 != 0 {
            at += 1 + es.get(at).map_or(0, |&n| usize::from(n));
        }
        if flags & 0x20 != 0 {
            at += 2;
        }
        let Some(children) = es.get(at.min(es.len())..).and_then(descriptors) else {
            return false;
        };
        for (_, config) in children.into_iter().filter(|(tag, _)| *tag == 4) {
            // 13 bytes of fields, then the decoder-specific info among its descriptors.
            if config.len() < 13 || descriptors(&config[13..]).is_none() {
                return false;
            }
        }
        found = true;
    }
    found
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
