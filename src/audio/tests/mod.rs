//! Unit tests of the audio stage, over bytes made here (a WAV writer, sine tones) and, where
//! ffmpeg is installed, real encoders. Helpers shared by the files below.

mod ffmpeg;
mod hardening;
mod naming;
mod signal;

use super::containers::{flac, id3, mp4, wav};
use super::sink::{full_scale, initial_reserve};
use super::*;

/// Decoding `bytes` fails as [`AudioError::Corrupt`] with a detail containing `needle`.
#[track_caller]
fn assert_corrupt(bytes: &[u8], needle: &str) {
    match decode_to_pcm16k(bytes, None, 10.0) {
        Err(AudioError::Corrupt { detail }) => assert!(detail.contains(needle), "{detail}"),
        other => panic!("{other:?}"),
    }
}

/// Decoding `bytes` fails as [`AudioError::Unsupported`] naming `needle`.
#[track_caller]
fn assert_unsupported(bytes: &[u8], needle: &str) {
    match decode_to_pcm16k(bytes, None, 10.0) {
        Err(AudioError::Unsupported { format }) => assert!(format.contains(needle), "{format}"),
        other => panic!("{other:?}"),
    }
}

// ---- a tiny WAV writer -------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Fmt {
    U8,
    I16,
    I24,
    I32,
    F32,
    F64,
}

/// WAV bytes for interleaved `frames` (each inner Vec = one frame of `channels` samples).
fn wav(
    fmt: Fmt,
    rate: u32,
    channels: u16,
    n_frames: usize,
    sample: impl Fn(usize, usize) -> f64,
) -> Vec<u8> {
    let (bits, tag): (u16, u16) = match fmt {
        Fmt::U8 => (8, 1),
        Fmt::I16 => (16, 1),
        Fmt::I24 => (24, 1),
        Fmt::I32 => (32, 1),
        Fmt::F32 => (32, 3),
        Fmt::F64 => (64, 3),
    };
    let block = channels as u32 * bits as u32 / 8;
    let data_len = block * n_frames as u32;
    // WAVE_FORMAT_EXTENSIBLE for > 2 channels, as real multichannel files use.
    let extensible = channels > 2;
    let fmt_len: u32 = if extensible { 40 } else { 16 };
    let mut v = Vec::with_capacity(44 + data_len as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(4 + 8 + fmt_len + 8 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&fmt_len.to_le_bytes());
    v.extend_from_slice(&(if extensible { 0xFFFEu16 } else { tag }).to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * block).to_le_bytes());
    v.extend_from_slice(&(block as u16).to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        v.extend_from_slice(&22u16.to_le_bytes()); // cbSize
        v.extend_from_slice(&bits.to_le_bytes()); // valid bits
        let mask: u32 = (1u32 << channels) - 1; // FL FR FC LFE BL BR …
        v.extend_from_slice(&mask.to_le_bytes());
        // Sub-format GUID: {tag}-0000-0010-8000-00AA00389B71
        v.extend_from_slice(&(tag as u32).to_le_bytes());
        v.extend_from_slice(&[
            0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
    }
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n_frames {
        for c in 0..channels as usize {
            let x = sample(i, c).clamp(-1.0, 1.0);
            match fmt {
                Fmt::U8 => v.push((x * 127.0 + 128.0).round() as u8),
                Fmt::I16 => v.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes()),
                Fmt::I24 => {
                    v.extend_from_slice(&((x * 8_388_607.0).round() as i32).to_le_bytes()[..3])
                }
                Fmt::I32 => {
                    v.extend_from_slice(&((x * 2_147_483_647.0).round() as i32).to_le_bytes())
                }
                Fmt::F32 => v.extend_from_slice(&(x as f32).to_le_bytes()),
                Fmt::F64 => v.extend_from_slice(&x.to_le_bytes()),
            }
        }
    }
    v
}

fn sine(freq: f64, rate: u32, amp: f64) -> impl Fn(usize, usize) -> f64 {
    move |i, _| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()
}

// ---- signal measurements -----------------------------------------------------------------

/// Amplitude of the `freq` component of `x` (16 kHz), by a single DFT bin over a Hann window.
fn tone_amplitude(x: &[f32], freq: f64) -> f64 {
    let n = x.len();
    let (mut re, mut im, mut wsum) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &s) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
        let ph = 2.0 * std::f64::consts::PI * freq * i as f64 / TARGET_RATE as f64;
        re += w * s as f64 * ph.cos();
        im -= w * s as f64 * ph.sin();
        wsum += w;
    }
    2.0 * (re * re + im * im).sqrt() / wsum
}

/// Frequency estimated from zero crossings (with linear interpolation) of `x` at 16 kHz.
fn zero_crossing_freq(x: &[f32]) -> f64 {
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        if x[i - 1] < 0.0 && x[i] >= 0.0 {
            let frac = x[i - 1] as f64 / (x[i - 1] as f64 - x[i] as f64);
            crossings.push(i as f64 - 1.0 + frac);
        }
    }
    let periods = (crossings.len() - 1) as f64;
    periods * TARGET_RATE as f64 / (crossings.last().unwrap() - crossings[0])
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// Middle part of the signal, away from the edges.
fn middle(x: &[f32]) -> &[f32] {
    &x[x.len() / 10..x.len() * 9 / 10]
}

fn check_sine(pcm: &Pcm16k, freq: f64, amp: f64, what: &str) {
    let m = middle(&pcm.samples);
    let f = zero_crossing_freq(m);
    assert!(
        (f - freq).abs() < 0.5,
        "{what}: frequency {f} Hz, want {freq}"
    );
    let a = tone_amplitude(m, freq);
    assert!(
        db(a / amp).abs() < 1.0,
        "{what}: amplitude {a} vs {amp} ({:+.2} dB)",
        db(a / amp)
    );
}

/// Index of the sample with the largest magnitude.
fn peak_index(x: &[f32]) -> usize {
    x.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).map_or(0, |(i, _)| i)
}
