//! Real encoders (ffmpeg, when installed) against our decoders.

use super::*;

/// mp3 / flac / ogg-vorbis / ogg-opus / webm-opus / mkv-vorbis / mkv-flac / m4a-aac /
/// m4a-alac / aiff / caf / mp2 made by ffmpeg from a generated WAV. Skips (with a message) when ffmpeg is missing, unless `CI=true`, where it fails.
#[test]
fn compressed_formats_via_ffmpeg() {
    use std::process::Command;
    let have_ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_ffmpeg {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("ffmpeg is required under CI=true (apt-get install -y ffmpeg)");
        }
        eprintln!("skipping compressed_formats_via_ffmpeg: ffmpeg not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("audio-rs-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // `ffmpeg -i src <args> out`, true when it succeeded.
    let ffmpeg = |src: &std::path::Path, args: &[&str], out: &std::path::Path| {
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(src)
            .args(args)
            .arg(out)
            .status()
            .is_ok_and(|s| s.success())
    };
    let secs = 3.0;
    let rate = 44_100;
    let src = dir.join("src.wav");
    std::fs::write(
        &src,
        wav(
            Fmt::I16,
            rate,
            2,
            (secs * rate as f64) as usize,
            sine(440.0, rate, 0.5),
        ),
    )
    .unwrap();
    let variants: &[(&str, &[&str])] = &[
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("flac", &["-c:a", "flac"]),
        ("ogg", &["-c:a", "libvorbis", "-q:a", "4"]),
        ("m4a", &["-c:a", "aac", "-b:a", "128k"]),
        ("m4a", &["-c:a", "alac"]),
        ("opus", &["-c:a", "libopus", "-b:a", "64k"]),
        ("webm", &["-c:a", "libopus", "-b:a", "64k"]),
        ("mka", &["-c:a", "libopus", "-ac", "1", "-b:a", "32k"]),
        ("webm", &["-c:a", "libvorbis"]),
        ("mkv", &["-c:a", "flac"]),
        ("aiff", &["-c:a", "pcm_s16be"]),
        ("caf", &["-c:a", "pcm_s16le"]),
        ("mp2", &["-c:a", "mp2", "-b:a", "192k"]),
    ];
    let mut failures = Vec::new();
    for (i, (ext, args)) in variants.iter().enumerate() {
        let out = dir.join(format!("v{i}.{ext}"));
        assert!(ffmpeg(&src, args, &out), "ffmpeg {args:?}");
        let bytes = std::fs::read(&out).unwrap();
        let what = format!("{ext} {args:?}");
        match decode_to_pcm16k(&bytes, Some(ext), 60.0) {
            Ok(pcm) => {
                eprintln!(
                    "{what}: codec={} duration={:.4}s out={:.4}s rate={} ch={} skipped={} truncated={}",
                    pcm.codec, pcm.duration_s, pcm.output_duration_s(), pcm.source_rate,
                    pcm.source_channels, pcm.skipped_packets, pcm.truncated
                );
                if (pcm.duration_s - secs as f32).abs() > 0.05
                    || (pcm.output_duration_s() - secs as f32).abs() > 0.05
                {
                    failures.push(format!("{what}: duration {} s", pcm.duration_s));
                }
                check_sine(&pcm, 440.0, 0.5, &what);
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    // Timing: a click at 1.0 s comes out at 1.0 s (encoder delay / AAC priming removed).
    let click_src = dir.join("click.wav");
    let click = wav(Fmt::I16, rate, 1, 2 * rate as usize, |i, _| {
        if (rate as usize - 2..=rate as usize + 2).contains(&i) {
            0.9
        } else {
            0.0
        }
    });
    std::fs::write(&click_src, click).unwrap();
    for (ext, codec) in [
        ("mp3", "libmp3lame"),
        ("flac", "flac"),
        ("ogg", "libvorbis"),
        ("m4a", "aac"),
        ("opus", "libopus"),
        ("webm", "libopus"),
    ] {
        let out = dir.join(format!("click.{ext}"));
        assert!(ffmpeg(&click_src, &["-c:a", codec], &out), "ffmpeg {codec}");
        let pcm = decode_to_pcm16k(&std::fs::read(&out).unwrap(), Some(ext), 60.0).unwrap();
        let peak = peak_index(&pcm.samples);
        if (peak as i64 - 16_000).abs() > 16 {
            failures.push(format!(
                "{ext}: click at sample {peak}, want 16000 ± 16 (1 ms)"
            ));
        }
        if (pcm.duration_s - 2.0).abs() > 0.05 {
            failures.push(format!("{ext}: click file lasts {} s", pcm.duration_s));
        }
    }

    // Cut-off uploads: the audio before the cut comes back, flagged as truncated.
    // (m4a with the index first = `-movflags +faststart`; with the index last, a cut file has
    // no index and nothing can be decoded: Corrupt, naming the missing moov box.)
    let cut_variants: &[(&str, &[&str])] = &[
        ("mp3", &["-c:a", "libmp3lame"]),
        ("flac", &["-c:a", "flac"]),
        ("m4a", &["-c:a", "aac", "-movflags", "+faststart"]),
        ("m4a", &["-c:a", "aac"]),
        ("opus", &["-c:a", "libopus"]),
        ("webm", &["-c:a", "libopus"]),
    ];
    for (i, (ext, args)) in cut_variants.iter().enumerate() {
        let out = dir.join(format!("cut{i}.{ext}"));
        assert!(ffmpeg(&src, args, &out), "ffmpeg {args:?}");
        let bytes = std::fs::read(&out).unwrap();
        let cut = &bytes[..bytes.len() * 6 / 10];
        let what = format!("cut {ext} {args:?}");
        let index_last = *ext == "m4a" && !args.contains(&"+faststart");
        match decode_to_pcm16k(cut, Some(ext), 60.0) {
            Ok(pcm) if !index_last => {
                if !pcm.truncated || !(0.9..2.5).contains(&pcm.duration_s) {
                    failures.push(format!(
                        "{what}: {} s, truncated={}",
                        pcm.duration_s, pcm.truncated
                    ));
                }
                check_sine(&pcm, 440.0, 0.5, &what);
            }
            Err(AudioError::Corrupt { detail }) if index_last && detail.contains("moov") => {}
            other => failures.push(format!("{what}: {other:?}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Opus through our decoder gives libopus's decode (ffmpeg `-c:a libopus` as the decoder): the
/// same length after pre-skip and end trimming (Ogg to the sample; WebM within one 16 kHz
/// sample), and the same samples within 16-bit rounding (we take 16-bit PCM from the decoder). Both go through the same downmix and resampler, so any
/// difference is the decoder's. Mono and stereo, Ogg and WebM.
#[test]
fn opus_matches_libopus() {
    use std::process::Command;
    let run = |args: &[&str]| {
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !run(&["-version"]) {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "ffmpeg is required under CI=true"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("audio-rs-opus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rate = 48_000;
    let src = dir.join("src.wav");
    let tone = wav(Fmt::I16, rate, 2, (2.5 * rate as f64) as usize, |i, c| {
        let t = i as f64 / rate as f64;
        0.4 * (2.0 * std::f64::consts::PI * (300.0 + 200.0 * c as f64) * t).sin()
    });
    std::fs::write(&src, tone).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    for (name, channels) in [
        ("mono.opus", "1"),
        ("stereo.opus", "2"),
        ("stereo.webm", "2"),
    ] {
        let enc = dir.join(name);
        let reference = dir.join(format!("{name}.wav"));
        assert!(run(&[
            "-i",
            &s(&src),
            "-ac",
            channels,
            "-c:a",
            "libopus",
            "-b:a",
            "48k",
            &s(&enc)
        ]));
        assert!(run(&[
            "-c:a",
            "libopus",
            "-i",
            &s(&enc),
            "-c:a",
            "pcm_f32le",
            &s(&reference)
        ]));
        let ours = decode_to_pcm16k(&std::fs::read(&enc).unwrap(), None, 60.0).unwrap();
        let theirs = decode_to_pcm16k(&std::fs::read(&reference).unwrap(), None, 60.0).unwrap();
        assert_eq!(ours.codec, "opus");
        assert_eq!(ours.source_channels.to_string(), channels, "{name}");
        // Ogg trims to the sample. In WebM we drop the last block's DiscardPadding after
        // resampling, which rounds to the 16 kHz sample.
        let slack = if name.ends_with(".webm") { 1 } else { 0 };
        let (n, m) = (ours.samples.len(), theirs.samples.len());
        assert!(n.abs_diff(m) <= slack, "{name}: {n} samples, libopus {m}");
        let worst = ours
            .samples
            .iter()
            .zip(&theirs.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-3, "{name}: max difference {worst} from libopus");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
