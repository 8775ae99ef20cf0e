#!/usr/bin/env python3
"""Reference values for src/mel.rs, from faster-whisper's FeatureExtractor.

Run from the repo root with the project venv:

    .venv/bin/python tests/reference/mel_reference.py            # writes src/testdata/mel_reference.json
    .venv/bin/python tests/reference/mel_reference.py --check    # only prints a summary

The signals are regenerated bit-for-bit by `reference_signal` in src/mel.rs (same LCG, same
formulas in float64, rounded to float32). The fixture keeps a few whole frames, a few mel rows
at a stride, whole-spectrogram statistics and the non-zero mel filter weights, to stay small.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import faster_whisper
from faster_whisper.feature_extractor import FeatureExtractor

SR = 16000
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "src" / "testdata" / "mel_reference.json"


def lcg_noise(n):
    state = 12345
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = (state >> 8) / float(1 << 24) * 2.0 - 1.0
    return out


def reference_signal(kind, n):
    t = np.arange(n, dtype=np.float64) / SR
    noise = lcg_noise(n)
    tau = 2.0 * math.pi
    if kind == "mix":
        env = np.where((t >= 2.0) & (t < 2.5), 0.0, 1.0)
        chirp = np.sin(tau * (100.0 * t + 0.5 * 1500.0 * t * t))
        ramp = np.minimum(t / 3.0, 1.0)
        x = env * (
            0.3 * np.sin(tau * 440.0 * t)
            + 0.2 * ramp * chirp
            + 0.05 * np.sin(tau * 3000.0 * t)
            + 0.01 * noise
        )
    elif kind == "short":
        x = 0.5 * np.sin(tau * 1000.0 * t) + 0.1 * noise
    else:
        raise ValueError(kind)
    return x.astype(np.float32)


def f32list(a):
    return [float("%.7g" % v) for v in np.asarray(a, dtype=np.float32).ravel()]


def make_case(name, kind, n_samples, n_mels, frames, rows, row_stride):
    fe = FeatureExtractor(feature_size=n_mels)
    x = reference_signal(kind, n_samples)
    mel = fe(x)  # as WhisperModel.transcribe calls it: padding=160
    # the unnormalized global max, recovered from the normalized max: max = (max_log10 + 4) / 4
    n_frames = mel.shape[1]
    frames = sorted({f if f >= 0 else n_frames + f for f in frames if -n_frames <= f < n_frames})
    return {
        "name": name,
        "signal": kind,
        "n_samples": n_samples,
        "n_mels": n_mels,
        "n_frames": n_frames,
        "max_log10": float(mel.max()) * 4.0 - 4.0,
        "max": float(mel.max()),
        "min": float(mel.min()),
        "mean": float(mel.astype(np.float64).mean()),
        "frames": [{"frame": f, "values": f32list(mel[:, f])} for f in frames],
        "row_stride": row_stride,
        "rows": [{"mel": m, "values": f32list(mel[m, ::row_stride])} for m in rows],
    }


def make_filters(n_mels):
    w = FeatureExtractor.get_mel_filters(SR, 400, n_mels=n_mels).astype(np.float32)
    mels, bins = np.nonzero(w)
    return {
        "n_mels": n_mels,
        "mel": [int(m) for m in mels],
        "bin": [int(k) for k in bins],
        "value": f32list(w[mels, bins]),
    }


def main():
    n_mix = 7 * SR + 123  # 7.0077 s: not a multiple of the hop; silence at 2.0-2.5 s
    edge = [0, 1, 2, 3, 150, 199, 201, 225, 249, 251, 300, 450, -4, -3, -2, -1]
    fixture = {
        "generator": "tests/reference/mel_reference.py",
        "reference": f"faster-whisper {faster_whisper.__version__} FeatureExtractor (padding=160), numpy {np.__version__}",
        "filters": [make_filters(80), make_filters(128)],
        "cases": [
            make_case("mix-80", "mix", n_mix, 80, edge, [0, 1, 2, 10, 30, 50, 79], 7),
            make_case("mix-128", "mix", n_mix, 128, edge[:4] + edge[-4:] + [225, 300], [0, 1, 64, 127], 9),
            make_case("short-10-samples", "short", 10, 80, [0], [0, 40], 1),
            make_case("short-1000-samples", "short", 1000, 80, list(range(7)), [3, 79], 1),
        ],
    }
    text = json.dumps(fixture, separators=(",", ":"))
    for c in fixture["cases"]:
        print(f"{c['name']}: n_frames={c['n_frames']} max_log10={c['max_log10']:.5f} "
              f"min={c['min']:.5f} mean={c['mean']:.6f}")
    print(f"fixture: {len(text)} bytes")
    if "--check" not in sys.argv:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
