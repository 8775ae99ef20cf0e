//! The container workarounds: every input fuzzing found is an error or audio, never a crash.

use super::*;

#[test]
fn matroska_seekhead_reproducer_is_an_error() {
    // Found by fuzzing (fuzz/regressions/audio/mkv-seekhead-panic.webm): symphonia 0.5's
    // Matroska demuxer panicked on a SeekHead pointing past the end, so 0.5 refused Matroska
    // unread. 0.6's demuxer reads it as a (broken) file: an error, no panic.
    let bytes = include_bytes!("../../../fuzz/regressions/audio/mkv-seekhead-panic.webm");
    assert!(decode_to_pcm16k(bytes, None, 10.0).is_err());
    let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84];
    webm.extend_from_slice(b"webm....A_VORBIS....");
    assert!(decode_to_pcm16k(&webm, None, 10.0).is_err());
}

#[test]
fn flac_tags_are_not_parsed() {
    // Found by fuzzing (fuzz/regressions/audio/flac-comment-length-oom.flac): a VORBIS_COMMENT
    // block whose comment declares 352 MB made symphonia allocate that much before failing.
    let bytes = include_bytes!("../../../fuzz/regressions/audio/flac-comment-length-oom.flac");
    assert!(bytes.starts_with(b"fLaC"));
    // Any result, without the allocation.
    let _ = decode_to_pcm16k(bytes, None, 10.0);
    // A block list: STREAMINFO, VORBIS_COMMENT, PICTURE (last). Only STREAMINFO survives.
    let mut b = b"fLaC".to_vec();
    for (kind, len) in [(0u8, 34usize), (4, 8), (0x80 | 6, 4)] {
        b.push(kind);
        b.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        b.extend(std::iter::repeat_n(0xEE, len));
    }
    b.extend_from_slice(&[0xFF, 0xF8, 0x69]); // first frame header bytes: untouched
    let before = b.clone();
    flac::metadata_to_padding(&mut b);
    assert_eq!((b[4], b[42], b[54]), (0, 1, 0x81));
    assert_eq!(b.len(), before.len());
    assert!(b
        .iter()
        .zip(&before)
        .enumerate()
        .all(|(i, (x, y))| x == y || i == 42 || i == 54));
    flac::metadata_to_padding(&mut b"fLaC\x84\xff".to_vec()); // cut header: no panic
}

#[test]
fn mp4_tags_become_free_boxes() {
    let boxed = |kind: &[u8; 4], payload: &[u8]| {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    };
    // Tags inside moov/trak are neutralised; the tables beside them are untouched.
    let stbl = boxed(b"stbl", &boxed(b"stco", &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
    let trak = boxed(
        b"trak",
        &[boxed(b"udta", b"tags"), boxed(b"mdia", &boxed(b"minf", &stbl))].concat(),
    );
    let mut file = [
        boxed(b"ftyp", b"M4A "),
        boxed(b"moov", &[trak, boxed(b"meta", b"x")].concat()),
    ]
    .concat();
    let before = file.clone();
    mp4::tags_to_free(&mut file);
    let types: Vec<_> = file
        .windows(4)
        .filter(|w| matches!(*w, b"udta" | b"meta" | b"free"))
        .collect();
    assert_eq!(types, [b"free", b"free"]);
    assert_eq!(file.len(), before.len());
    mp4::tags_to_free(&mut b"\0\0\0\x01moov\0\0".to_vec()); // cut large-size header
}

#[test]
fn symphonia_0_5_reproducers_are_errors_on_0_6() {
    // Each panicked or ran out of memory inside symphonia 0.5 (fuzz/regressions/audio/), and
    // was refused by a check of ours before it. symphonia 0.6 reads them without help: each is
    // an error (unit tests run with overflow checks, so a wrapped length would panic here).
    let reg = |name: &str| {
        std::fs::read(format!(
            "{}/fuzz/regressions/audio/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    assert_corrupt(&reg("wav-rate-0-panic.wav"), "0 Hz");
    assert_unsupported(
        &reg("wav-ima-adpcm-3ch-unreachable-panic.wav"),
        "IMA ADPCM variant not supported (adpcm: up to two channels are supported)",
    );
    assert_corrupt(&reg("wav-second-fmt-rate-0-panic.wav"), "WAV header could not be read");
    assert_corrupt(&reg("mp4-stsc-count-oom.m4a"), "MP4/M4A header could not be read");
    assert_corrupt(&reg("mp4-mdhd-timescale-0-panic.m4a"), "timescale is zero");
    assert_corrupt(&reg("mp4-hdlr-size-0-capacity-overflow.m4a"), "MP4/M4A header could not be read");
    assert_corrupt(&reg("mp4-esds-without-es-descriptor-panic.m4a"), "descriptor");
    assert_corrupt(&reg("mp4-short-stsd-slice-panic.m4a"), "MP4/M4A header could not be read");
    for name in [
        "mp4-esds-past-stsd-panic.m4a",
        "mp4-sample-size-3gb-oom.m4a",
        "mp4-stsd-past-stbl-esds-panic.bin",
        "junk-then-mp4-stsc-oom.bin",
        "id3-after-junk-654mb-frame-oom.bin",
        "unregistered-sync-then-flac-picture-oom.bin",
        "adts-midfile-step-by-0-panic.bin",
        "id3-id3-adts-midfile-step-by-0-panic.mp3",
        "wav-info-string-800mb-oom.wav",
        "flac-comment-length-oom.flac",
    ] {
        assert!(decode_to_pcm16k(&reg(name), None, 10.0).is_err(), "{name}");
    }
    // Ours, not symphonia's: rubato would plan a 914 M-point FFT for a 1.8 GHz rate.
    assert_unsupported(&reg("wav-rate-1.8ghz-oom.wav"), "sample rate of 1828738594 Hz");
    // Rates at the bounds still decode.
    for (rate, ok) in [
        (0, false),
        (999, false),
        (1_000, true),
        (768_000, true),
        (768_001, false),
    ] {
        let mut bytes = wav(Fmt::I16, 16_000, 1, 2_000, sine(440.0, 16_000, 0.5));
        bytes[24..28].copy_from_slice(&(rate as u32).to_le_bytes());
        assert_eq!(decode_to_pcm16k(&bytes, None, 1e6).is_ok(), ok, "{rate} Hz");
    }
}

#[test]
fn wav_tags_become_junk() {
    // An honest LIST chunk becomes JUNK and the audio still decodes.
    let mut listed = wav(Fmt::I16, 16_000, 1, 100, sine(440.0, 16_000, 0.5));
    let at = listed.len() - 200 - 8; // where the data chunk starts
    let mut list = b"LIST\x0c\0\0\0INFOINAM\0\0\0\0".to_vec();
    list.extend_from_slice(&listed[at..]);
    listed.truncate(at);
    listed.extend_from_slice(&list);
    let riff = (listed.len() - 8) as u32;
    listed[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut hardened = listed.clone();
    wav::tags_to_junk(&mut hardened);
    assert_eq!(&hardened[at..at + 4], b"JUNK");
    assert_eq!(
        decode_to_pcm16k(&listed, None, 10.0).unwrap().samples.len(),
        100
    );
}

#[test]
fn leading_id3_tags_are_cut_unread() {
    // A WAV behind two tags decodes, and a tag declaring 200 MB over a 30-byte file is simply
    // the end of it.
    let audio = wav(Fmt::I16, 16_000, 1, 1_600, sine(440.0, 16_000, 0.5));
    let mut tagged = b"ID3\x04\0\0\0\0\0\x02ab".to_vec();
    tagged.extend_from_slice(&tagged.clone());
    assert_eq!(id3::leading_id3v2_len(&tagged), 24);
    tagged.extend_from_slice(&audio);
    assert_eq!(
        decode_to_pcm16k(&tagged, None, 10.0).unwrap().samples.len(),
        1_600
    );
    let huge = b"ID3\x03\0\0\x5f\x7f\x7f\x7fTIT2\x0b\xeb\xc2\0\0\0\0\0\0\0\0\0";
    assert_eq!(id3::leading_id3v2_len(huge), huge.len());
    assert_eq!(decode_to_pcm16k(huge, None, 10.0), Err(AudioError::Empty));
}

#[test]
fn lying_length_header_reserves_by_input_size() {
    // A 44-byte WAV whose data chunk claims 3 h at 8 kHz (the default cap is 3 h): before,
    // the sink reserved 3 h of 16 kHz output (691 MB) for it.
    let three_hours = 3 * 3600 * 8_000u64;
    assert_eq!(
        initial_reserve(Some(three_hours), Some(8_000), 10_800.0, 44),
        44 * 16
    );
    let mut lying = wav(Fmt::I16, 8_000, 1, 0, sine(440.0, 8_000, 0.5));
    let data_len = (three_hours * 2) as u32;
    let n = lying.len();
    lying[n - 4..].copy_from_slice(&data_len.to_le_bytes());
    assert!(decode_to_pcm16k(&lying, None, 10_800.0).is_err());
    // With no cap (WHISPER_MAX_AUDIO_SECONDS=inf) a data chunk of u32::MAX bytes was
    // believed whole: 17 GB reserved before decoding anything.
    lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode_to_pcm16k(&lying, None, f32::INFINITY).is_err());
    // Honest files still get their whole output reserved up front, nothing over the cap.
    assert_eq!(
        initial_reserve(Some(16_000), Some(16_000), 10.0, 32_044),
        32_000
    );
    assert_eq!(
        initial_reserve(Some(44_100 * 60), Some(44_100), 60.0, 44_100 * 60 * 4),
        61 * 16_000
    );
    assert_eq!(
        initial_reserve(Some(16_000 * 20), Some(16_000), 10.0, 640_044),
        0
    );
    assert_eq!(initial_reserve(None, Some(16_000), 10.0, 1_000), 0);
    assert_eq!(
        initial_reserve(Some(u64::MAX), Some(0), f64::INFINITY, 100),
        1_600
    );
}

#[test]
fn vorbis_codebooks_symphonia_panics_on_are_corrupt() {
    // Found by fuzzing (fuzz/regressions/audio/mkv-vorbis-codeword-length-oob.mkv): a Matroska
    // Vorbis setup header whose length-ordered codewords count past 32 bits; symphonia's
    // decoder indexed its 33-entry codeword table with the length.
    let mkv = include_bytes!("../../../fuzz/regressions/audio/mkv-vorbis-codeword-length-oob.mkv");
    assert_corrupt(mkv, "invalid Vorbis setup header: a codeword 55 bits long");
    // Made from seed-16k.ogg with a setup header of one lookup type 1 codebook each: the Ogg
    // demuxer's table size assertions failed (an f32 root rounded up, 0 dimensions, and
    // (value + 1)^dimensions overflowing a u32).
    for (bytes, entries) in [
        (
            &include_bytes!("../../../fuzz/regressions/audio/vorbis-lookup1-f32-root-panic.ogg")[..],
            "1953124 entries in 3",
        ),
        (
            include_bytes!("../../../fuzz/regressions/audio/vorbis-lookup1-0-dimensions-panic.ogg"),
            "4 entries in 0",
        ),
        (
            include_bytes!("../../../fuzz/regressions/audio/vorbis-lookup1-u32-overflow-panic.ogg"),
            "5 entries in 32",
        ),
    ] {
        assert_corrupt(bytes, &format!("a lookup table over {entries} dimensions"));
    }
    // The first of those after 300 bytes of junk: symphonia's probe scans unrecognised data
    // for an Ogg page too (junk-then-vorbis-lookup1-panic.bin).
    let junk = include_bytes!("../../../fuzz/regressions/audio/junk-then-vorbis-lookup1-panic.bin");
    assert_corrupt(junk, "a lookup table over 1953124 entries in 3 dimensions");
}
