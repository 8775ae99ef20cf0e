//! Per-container preparation, applied to the upload in place before symphonia sees it.
//!
//! - Tags we never use (FLAC metadata blocks but STREAMINFO, MP4 `udta`/`meta`, WAV `LIST`)
//!   become padding that the demuxers skip unread. symphonia 0.5's tag readers trusted the
//!   lengths inside them (flac-comment-length-oom.flac, wav-info-string-800mb-oom.wav); 0.6's
//!   fail cleanly on those, but reading what we never use can only cost.
//! - Vorbis setup headers that symphonia 0.6.1 panics on are refused ([`ogg::harden`],
//!   `../vorbis.rs`), wherever its probe could find an Ogg stream.
//!
//! The checks symphonia 0.5 needed were retired with 0.6: MP4 sample tables, `esds`, `hdlr`
//! and `mdhd`; WAV format chunks; ADTS read as a stream; data hardened at every container
//! marker. With them off, each of their reproducers in `fuzz/regressions/audio/` fails cleanly
//! (under a 120 MB address-space limit), and so did 1.2 M fuzz executions. `make test` runs
//! every reproducer (`fuzzing::tests`).

pub(super) mod flac;
pub(super) mod id3;
pub(super) mod matroska;
pub(super) mod mp4;
pub(super) mod ogg;
pub(super) mod wav;

use super::sniff::{sniff, Container, Sniff};
use super::AudioError;

/// Prepares an upload (after its ID3v2 tags) for symphonia, in place, by what it starts with:
/// FLAC tags become padding, MP4 tags become `free` boxes, a WAV's `LIST` chunks become `JUNK`.
/// symphonia's probe reads these containers (and WebM, Matroska, AIFF, CAF) from the first
/// byte; anything else it may scan for a container marker anywhere in it, an Ogg page among
/// them (found by writing the Vorbis check: junk-then-vorbis-lookup1-panic.bin), so the Ogg
/// check covers it too.
pub(super) fn harden(b: &mut [u8]) -> Result<(), AudioError> {
    match sniff(b) {
        Sniff::Audio(Container::Flac) => flac::metadata_to_padding(b),
        Sniff::Audio(Container::Mp4) => mp4::tags_to_free(b),
        Sniff::Audio(Container::Wav) => wav::tags_to_junk(b),
        Sniff::Audio(
            Container::WebM | Container::Matroska | Container::Aiff | Container::Caf,
        ) => {}
        _ => ogg::harden(b)?,
    }
    Ok(())
}
