//! Per-container workarounds, applied to the upload in place before symphonia sees it.
//!
//! Every check here answers a crash, an out-of-memory or a panic that fuzzing found in
//! symphonia (each cites its reproducer in `fuzz/regressions/audio/`; `make test` runs them
//! all through `fuzzing::tests`). They rewrite what we never use (tags, pictures) into padding
//! the demuxers skip unread, and refuse as corrupt what declares lengths it does not hold.

pub(super) mod flac;
pub(super) mod id3;
pub(super) mod matroska;
pub(super) mod mp4;
pub(super) mod mpeg;
pub(super) mod ogg;
pub(super) mod wav;

use super::sniff::{sniff, Container, Sniff};
use super::{unsupported, AudioError};

/// Prepares an upload (after its ID3v2 tags) for symphonia, in place, by what it starts with:
/// FLAC tags become padding, MP4 tags become `free` boxes and its tables are checked, a WAV's
/// format chunk is checked and its `LIST` chunks become `JUNK`. symphonia's probe scans data
/// it does not recognise for a container marker anywhere in it and reads the container from
/// there, so such data is hardened at every marker (and ID3v2 tags in it are unmarked); a
/// failed check there means "not audio".
pub(super) fn harden(b: &mut [u8]) -> Result<(), AudioError> {
    match sniff(b) {
        Sniff::Audio(Container::Flac) => flac::metadata_to_padding(b),
        Sniff::Audio(Container::Mp4) => mp4::harden(b)?,
        Sniff::Audio(Container::Wav) => wav::harden(b)?,
        // The probe reads these from the first byte. MPEG/ADTS only if the first two bytes
        // are one of its markers: else it scans on (found by fuzzing: a sync word of a layer
        // we sniff as MPEG but it does not register, then a FLAC with a 2 GB picture block,
        // unregistered-sync-then-flac-picture-oom.bin).
        Sniff::Audio(Container::Ogg) => ogg::harden(b)?,
        Sniff::Audio(Container::WebM | Container::Matroska | Container::Aiff | Container::Caf) => {}
        _ if mpeg::probe_marker_at_start(b) => {}
        _ => harden_every_marker(b)?,
    }
    Ok(())
}

/// Data we do not recognise: harden the container at every marker the probe could latch onto
/// (junk-then-mp4-stsc-oom.bin, id3-after-junk-654mb-frame-oom.bin).
fn harden_every_marker(b: &mut [u8]) -> Result<(), AudioError> {
    let unrecognised = |_| unsupported("unrecognised data (no known audio signature)");
    let marks: Vec<(usize, &[u8; 4])> = b
        .windows(4)
        .enumerate()
        .filter_map(|(i, w)| match w {
            b"fLaC" => Some((i, b"fLaC")),
            b"ftyp" if i >= 4 => Some((i - 4, b"ftyp")),
            b"RIFF" => Some((i, b"RIFF")),
            [b'I', b'D', b'3', 2..=4] => Some((i, b"ID3 ")),
            _ => None,
        })
        .collect();
    for (at, mark) in marks {
        match mark {
            b"fLaC" => flac::metadata_to_padding(&mut b[at..]),
            b"ftyp" => mp4::harden(&mut b[at..]).map_err(unrecognised)?,
            // An ID3v2 tag: symphonia reads it (frames of up to 4 GiB, allocated first; found
            // by fuzzing). Unmark it so the probe passes over it.
            b"ID3 " => b[at..at + 3].copy_from_slice(b"id3"),
            _ => wav::harden(&mut b[at..]).map_err(unrecognised)?,
        }
    }
    Ok(())
}
