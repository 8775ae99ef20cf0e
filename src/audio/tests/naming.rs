//! What is refused, and how it is named.

use super::*;

#[test]
fn empty_inputs() {
    assert_eq!(decode_to_pcm16k(&[], None, 10.0), Err(AudioError::Empty));
    let bytes = wav(Fmt::I16, 16_000, 1, 0, sine(440.0, 16_000, 0.5));
    assert_eq!(decode_to_pcm16k(&bytes, None, 10.0), Err(AudioError::Empty));
}

#[test]
fn garbage_is_unsupported() {
    let mut state = 0x1234_5678u32;
    let garbage: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    for hint in [None, Some("mp3"), Some("audio/wav")] {
        match decode_to_pcm16k(&garbage, hint, 10.0) {
            Err(AudioError::Unsupported { format }) => {
                assert!(format.contains("unrecognised"), "{format}")
            }
            other => panic!("{hint:?}: {other:?}"),
        }
    }
}

#[test]
fn non_audio_is_named() {
    let cases: &[(&[u8], &str)] = &[
        (b"Hello, this is a plain text file.\nNot audio.\n", "text"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        (b"  {\"error\": \"nope\"}", "JSON"),
        (b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj", "PDF"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "PNG"),
        (b"\xFF\xD8\xFF\xE0\0\x10JFIF", "JPEG"),
    ];
    for (bytes, name) in cases {
        match decode_to_pcm16k(bytes, Some("mp3"), 10.0) {
            Err(e @ AudioError::Unsupported { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("not an audio file") && msg.contains(name),
                    "{msg}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unsupported_audio_is_named() {
    let mut ogg_speex = b"OggS\0\x02".to_vec();
    ogg_speex.extend_from_slice(&[0; 22]);
    ogg_speex.extend_from_slice(b"\x50Speex   1.2");
    let cases: &[(&[u8], &str)] = &[
        (&ogg_speex, "Speex audio in an Ogg container"),
        (b"\x30\x26\xB2\x75\x8E\x66\xCF\x11\xA6\xD9", "WMA/ASF"),
        (b"#!AMR\n\x3c\x48\xf5", "AMR"),
        (b"#!AMR-WB\n\x3c\x48\xf5", "AMR-WB"),
        (b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0", "MIDI"),
    ];
    for (bytes, name) in cases {
        match decode_to_pcm16k(bytes, None, 10.0) {
            Err(AudioError::Unsupported { format }) => {
                assert!(format.contains(name), "{format} !~ {name}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn corrupt_wav_header() {
    // A WAV whose fmt chunk is cut: recognised, but nothing decodes.
    let bytes = wav(Fmt::I16, 16_000, 1, 100, sine(440.0, 16_000, 0.5));
    match decode_to_pcm16k(&bytes[..30], None, 10.0) {
        Err(AudioError::Corrupt { .. }) | Err(AudioError::Unsupported { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn hint_forms() {
    let bytes = wav(Fmt::I16, 16_000, 1, 1600, sine(440.0, 16_000, 0.5));
    for h in [
        "wav",
        ".WAV",
        "clip.wav",
        "audio/wav",
        "audio/x-wav; codecs=1",
        "",
        "bogus/type",
    ] {
        assert!(decode_to_pcm16k(&bytes, Some(h), 10.0).is_ok(), "{h}");
    }
}
