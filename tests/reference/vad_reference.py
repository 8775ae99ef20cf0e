#!/usr/bin/env python3
"""Reference speech regions for src/vad/regions.rs, from faster-whisper 1.2.1's
`get_speech_timestamps` run on given frame probabilities (its Silero model replaced by them).

    .venv/bin/python tests/reference/vad_reference.py     # writes src/testdata/vad_reference.json

Probabilities: the Silero graph's (`models/build/vad/silero.onnx`, `make models`) on jfk.wav +
2 s of silence + jfk.wav (tests/fixtures/gen, `make fixtures`), and seeded random walks that
cross the thresholds often, rounded to 4 decimals (then to float32, as the component parses
them). Each is scored under several option sets.
"""
import json
import wave
from pathlib import Path

import numpy as np
import onnxruntime as ort
import faster_whisper.vad as fv

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "src" / "testdata" / "vad_reference.json"
OPTION_SETS = [
    {},
    {"min_silence_duration_ms": 160, "max_speech_duration_s": 30},  # the batched pipeline's
    {"min_silence_duration_ms": 100, "max_speech_duration_s": 3, "speech_pad_ms": 30},
    {"threshold": 0.3, "min_speech_duration_ms": 250, "min_silence_duration_ms": 300},
    {"threshold": 0.7, "neg_threshold": 0.6, "speech_pad_ms": 0, "min_silence_duration_ms": 50},
]


def silero_probs() -> tuple[np.ndarray, int]:
    with wave.open(str(ROOT / "tests/fixtures/gen/jfk.wav")) as w:
        jfk = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    audio = np.concatenate([jfk, np.zeros(32000, np.float32), jfk])
    padded = np.pad(audio, (0, 512 - len(audio) % 512)).reshape(-1, 512)
    context = np.zeros((len(padded), 64), np.float32)
    context[1:] = padded[:-1, -64:]
    sess = ort.InferenceSession(str(ROOT / "models/build/vad/silero.onnx"), providers=["CPUExecutionProvider"])
    zeros = np.zeros((1, 1, 128), np.float32)
    probs = sess.run(["speech_probs"], {"input": np.concatenate([context, padded], 1), "past_h": zeros, "past_c": zeros})[0]
    return probs.astype(np.float32), len(audio)


def random_walk(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.clip(np.cumsum(rng.normal(0, 0.12, n)) % 2.0, 0, 2)
    return np.where(p > 1, 2 - p, p).astype(np.float32)


def regions(probs: np.ndarray, n_samples: int, options: dict) -> list:
    class Fixed:
        def __call__(self, audio):
            assert len(audio) // 512 == len(probs), (len(audio), len(probs))
            return probs.reshape(-1, 1)

    original = fv.get_vad_model
    fv.get_vad_model = lambda: Fixed()
    try:
        out = fv.get_speech_timestamps(np.zeros(n_samples, np.float32), fv.VadOptions(**options))
    finally:
        fv.get_vad_model = original
    return [[r["start"], r["end"]] for r in out]


def main() -> None:
    inputs = [("silero jfk + 2 s + jfk", *silero_probs())]
    for seed in (1, 2, 3):
        n = 700 * 512 - 123
        inputs.append((f"random walk {seed}", random_walk(seed, n // 512 + 1), n))
    audios, cases = [], []
    for name, probs, n_samples in inputs:
        probs = np.round(probs.astype(np.float64), 4)
        audios.append({"name": name, "n_samples": n_samples, "probs": [float(x) for x in probs]})
        for options in OPTION_SETS:
            found = regions(probs.astype(np.float32), n_samples, options)
            cases.append({"audio": len(audios) - 1, "options": options, "regions": found})
    doc = {"generator": "tests/reference/vad_reference.py", "audios": audios, "cases": cases}
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}: {len(cases)} cases, {sum(len(c['regions']) for c in cases)} regions")


if __name__ == "__main__":
    main()
