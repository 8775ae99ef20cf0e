"""The Silero VAD graph `vad/silero` (models/vad.py): its interface, and that it scores frames
exactly as the wheel's streaming `silero_vad.onnx` does, whole or in blocks with the state
carried from one block to the next (as the host carries `present_*` into `past_*`)."""
from __future__ import annotations

import os
import subprocess
import wave
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models import convert, sources, vad

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MODELS_DIR", REPO / "models" / "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD


@pytest.fixture(scope="module")
def graph() -> Path:
    assert convert.main([vad.NAME, "--out", str(BUILD)]) == 0
    return BUILD / vad.NAME / f"{vad.GRAPH}.onnx"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """jfk (11 s of speech), 2 s of digital silence, jfk again, at 16 kHz."""
    proc = subprocess.run([str(REPO / "tests/fixtures/make_fixtures.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"make_fixtures.sh failed: {proc.stderr}")
    with wave.open(str(REPO / "tests/fixtures/gen/jfk.wav")) as w:
        jfk = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    return np.concatenate([jfk, np.zeros(32000, np.float32), jfk])


def frames(audio: np.ndarray) -> np.ndarray:
    """[T, 576]: each 512-sample frame after the previous frame's last 64 samples (zeros first)."""
    padded = np.pad(audio, (0, -len(audio) % 512)).reshape(-1, 512)
    context = np.zeros((len(padded), 64), np.float32)
    context[1:] = padded[:-1, -64:]
    return np.concatenate([context, padded], axis=1)


def session(path) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def test_interface(graph):
    g = onnx.load(str(graph)).graph
    assert [i.name for i in g.input] == ["input", "past_h", "past_c"]
    assert [o.name for o in g.output] == ["speech_probs", "present_h", "present_c"]


def test_blocks_with_carried_state_equal_the_streaming_graph(graph, speech, tmp_path):
    x = frames(speech)
    wheel = sources._find_wheel(sources.cache_dir() / "wheels", vad.PACKAGE)
    with zipfile.ZipFile(wheel) as z:
        (tmp_path / "stream.onnx").write_bytes(z.read("silero_vad/data/silero_vad.onnx"))
    stream = session(tmp_path / "stream.onnx")
    state = np.zeros((2, 1, 128), np.float32)
    want = []
    for row in x:
        p, state = stream.run(None, {"input": row[None], "state": state, "sr": np.array(16000, np.int64)})
        want.append(p[0, 0])
    want = np.array(want)

    seq = session(graph)
    zeros = np.zeros((1, 1, 128), np.float32)
    whole = seq.run(["speech_probs"], {"input": x, "past_h": zeros, "past_c": zeros})[0]
    np.testing.assert_allclose(whole, want, atol=1e-5)
    got, h, c = [], zeros, zeros
    for i in range(0, len(x), 200):
        p, h, c = seq.run(None, {"input": x[i:i + 200], "past_h": h, "past_c": c})
        got.append(p)
    np.testing.assert_allclose(np.concatenate(got), want, atol=1e-5)
    # It tells speech from silence: jfk is mostly speech, the 2 s of silence between is not.
    jfk_frames = 11 * 16000 // 512
    assert (want[:jfk_frames] > 0.5).mean() > 0.6
    gap = want[jfk_frames + 8:jfk_frames + 55]
    assert gap.max() < 0.35, gap
