//! Sample formats, rates, resampling, downmix, truncation, the cap and clipping.

use super::*;

#[test]
fn all_wav_sample_formats_and_rates() {
    let formats = [Fmt::U8, Fmt::I16, Fmt::I24, Fmt::I32, Fmt::F32, Fmt::F64];
    let rates = [8_000u32, 16_000, 22_050, 44_100, 48_000, 96_000];
    for fmt in formats {
        for rate in rates {
            let secs = 1.5;
            let n = (secs * rate as f64) as usize;
            let bytes = wav(fmt, rate, 1, n, sine(440.0, rate, 0.5));
            let pcm = decode_to_pcm16k(&bytes, Some("wav"), 60.0)
                .unwrap_or_else(|e| panic!("{fmt:?} {rate}: {e}"));
            let what = format!("{fmt:?} {rate} Hz");
            assert_eq!(pcm.source_rate, rate, "{what}");
            assert_eq!(pcm.source_channels, 1, "{what}");
            assert!(
                (pcm.duration_s - secs as f32).abs() < 1e-3,
                "{what}: {}",
                pcm.duration_s
            );
            let want_len = (n as u64 * 16_000 + rate as u64 / 2) / rate as u64;
            assert_eq!(pcm.samples.len() as u64, want_len, "{what}");
            assert!(!pcm.truncated && pcm.skipped_packets == 0, "{what}");
            check_sine(&pcm, 440.0, 0.5, &what);
        }
    }
}

#[test]
fn codec_names() {
    let bytes = wav(Fmt::I16, 16_000, 1, 1600, sine(440.0, 16_000, 0.5));
    assert_eq!(
        decode_to_pcm16k(&bytes, None, 10.0).unwrap().codec,
        "pcm_s16le"
    );
    let bytes = wav(Fmt::F32, 16_000, 1, 1600, sine(440.0, 16_000, 0.5));
    assert_eq!(
        decode_to_pcm16k(&bytes, None, 10.0).unwrap().codec,
        "pcm_f32le"
    );
}

#[test]
fn passthrough_at_16k_is_exact() {
    let bytes = wav(Fmt::F32, 16_000, 1, 16_000, sine(1000.0, 16_000, 0.25));
    let pcm = decode_to_pcm16k(&bytes, Some("audio/wav"), 10.0).unwrap();
    assert_eq!(pcm.samples.len(), 16_000);
    for (i, &s) in pcm.samples.iter().enumerate() {
        assert_eq!(
            s,
            (0.25 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16_000.0).sin()) as f32
        );
    }
}

#[test]
fn resampling_keeps_timing() {
    // A click at exactly 0.5 s must come out at 0.5 s (the resampler delay is removed).
    for rate in [8_000u32, 44_100, 48_000] {
        let click = (rate / 2) as usize;
        let bytes = wav(Fmt::F32, rate, 1, rate as usize, |i, _| {
            if i == click {
                1.0
            } else {
                0.0
            }
        });
        let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
        let peak = peak_index(&pcm.samples);
        assert!(
            (peak as i64 - 8000).abs() <= 1,
            "{rate} Hz: click at {peak}, want 8000"
        );
    }
}

#[test]
fn anti_aliasing() {
    // 7.5 kHz survives 48 → 16 kHz; 10 kHz (would alias to 6 kHz) must be removed.
    let bytes = wav(Fmt::F32, 48_000, 1, 48_000, |i, _| {
        let t = i as f64 / 48_000.0;
        0.4 * (2.0 * std::f64::consts::PI * 7_500.0 * t).sin()
            + 0.4 * (2.0 * std::f64::consts::PI * 10_000.0 * t).sin()
    });
    let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
    let m = middle(&pcm.samples);
    let kept = tone_amplitude(m, 7_500.0);
    let alias = tone_amplitude(m, 6_000.0);
    assert!(
        db(kept / 0.4).abs() < 1.0,
        "7.5 kHz passband: {:+.2} dB",
        db(kept / 0.4)
    );
    assert!(
        db(alias / 0.4) < -60.0,
        "alias of 10 kHz at 6 kHz: {:.1} dB",
        db(alias / 0.4)
    );
}

#[test]
fn stereo_antiphase_downmixes_to_silence() {
    let bytes = wav(Fmt::I16, 44_100, 2, 44_100, |i, c| {
        let s = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 44_100.0).sin();
        if c == 0 {
            s
        } else {
            -s
        }
    });
    let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
    assert_eq!(pcm.source_channels, 2);
    assert!(rms(&pcm.samples) < 1e-4, "rms {}", rms(&pcm.samples));
    // In-phase stereo keeps the tone.
    let bytes = wav(Fmt::I16, 44_100, 2, 44_100, sine(440.0, 44_100, 0.5));
    check_sine(
        &decode_to_pcm16k(&bytes, None, 10.0).unwrap(),
        440.0,
        0.5,
        "stereo in phase",
    );
}

#[test]
fn six_channels_average_all() {
    // Only channel 5 carries the tone: the average is amplitude / 6 (not dropped).
    let bytes = wav(Fmt::I24, 48_000, 6, 48_000, |i, c| {
        if c == 5 {
            0.6 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin()
        } else {
            0.0
        }
    });
    let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
    assert_eq!(pcm.source_channels, 6);
    assert!((pcm.duration_s - 1.0).abs() < 1e-4);
    check_sine(&pcm, 440.0, 0.1, "6 channels");
}

#[test]
fn truncated_wav_returns_what_is_there() {
    let bytes = wav(Fmt::I16, 44_100, 2, 3 * 44_100, sine(440.0, 44_100, 0.5));
    let cut = &bytes[..bytes.len() * 2 / 3 + 1]; // odd cut: mid-sample
    let pcm = decode_to_pcm16k(cut, Some("wav"), 10.0).unwrap();
    assert!(pcm.truncated, "header says 3 s");
    assert!(
        pcm.duration_s > 1.8 && pcm.duration_s <= 2.0 + 1e-3,
        "{}",
        pcm.duration_s
    );
    assert!((pcm.output_duration_s() - pcm.duration_s).abs() < 1e-3);
    check_sine(&pcm, 440.0, 0.5, "truncated");
}

#[test]
fn too_long_is_rejected_while_decoding() {
    let bytes = wav(Fmt::I16, 8_000, 1, 8_000 * 12, sine(440.0, 8_000, 0.5));
    assert_eq!(
        decode_to_pcm16k(&bytes, None, 10.0),
        Err(AudioError::TooLong { max_seconds: 10.0 })
    );
    // Exactly at the limit is fine.
    let pcm = decode_to_pcm16k(&bytes, None, 12.0).unwrap();
    assert_eq!(pcm.samples.len(), 16_000 * 12);
    assert!(decode_to_pcm16k(&bytes, None, f32::INFINITY).is_ok());
}

#[test]
fn float_samples_beyond_full_scale_are_clipped() {
    // Found by fuzzing (fuzz/regressions/audio/float-wav-huge-sample-mel-inf.wav): a float WAV
    // holding 1e30 decoded "fine", but its log-mel was inf everywhere.
    let bad = [1e30f64, f64::NAN, f64::INFINITY, -3e38, -1e300, 0.5, 2.0];
    for (fmt, bytes_per) in [(Fmt::F32, 4), (Fmt::F64, 8)] {
        for (rate, channels) in [(16_000, 1), (44_100, 2)] {
            let n = 4_000;
            let mut bytes = wav(fmt, rate, channels, n, sine(440.0, rate, 0.5));
            let data = bytes.len() - n * channels as usize * bytes_per;
            for (k, &x) in bad.iter().enumerate() {
                let at = data + (500 * k + 7) * channels as usize * bytes_per;
                match fmt {
                    Fmt::F32 => bytes[at..at + 4].copy_from_slice(&(x as f32).to_le_bytes()),
                    _ => bytes[at..at + 8].copy_from_slice(&x.to_le_bytes()),
                }
            }
            let pcm = decode_to_pcm16k(&bytes, None, 10.0).unwrap();
            let peak = pcm.samples.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(
                pcm.samples.iter().all(|x| x.is_finite()) && peak <= 1.2,
                "{fmt:?} {rate}: peak {peak}"
            );
            let mel = crate::mel::log_mel(&pcm.samples, 80);
            assert!(
                mel.data().iter().all(|v| v.is_finite()),
                "{fmt:?} {rate} Hz: non-finite log-mel"
            );
        }
    }
    assert_eq!(
        (
            full_scale(f32::NAN),
            full_scale(f32::NEG_INFINITY),
            full_scale(-0.25)
        ),
        (0.0, -1.0, -0.25)
    );
}
