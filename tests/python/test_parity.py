"""Our server's greedy tokens equal faster-whisper's on the same CTranslate2 weights.

Both run beam 1 with Whisper's temperature fallback, on the clips of tests/fixtures/clips.json,
with timestamps (our default decoding) and without. Prints end-to-end seconds per clip for us
(HTTP through the host) and for faster-whisper (in-process, same 2 threads) — a quick
side-by-side, not a benchmark (see `make bench`).
"""
import json
import os
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import FIXTURES

CLIPS = [c for c in json.loads((FIXTURES / "clips.json").read_text())["clips"]]
TIMES = []


@pytest.fixture(scope="module")
def reference():
    from faster_whisper import WhisperModel
    cache = Path(os.environ.get("WHISPER_CACHE", Path.home() / ".cache/whisper-edge"))
    ct2 = cache / "ct2" / "base"
    if not (ct2 / "model.bin").exists():
        pytest.fail(f"{ct2} is missing: `make models` assembles it")
    return WhisperModel(str(ct2), device="cpu", compute_type="float32", cpu_threads=2)


def post(base, path, file, fields):
    boundary = uuid.uuid4().hex
    body = b""
    for k, v in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n").encode() + file.read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + path, data=body, method="POST",
                                 headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("without_timestamps", [False, True], ids=["timestamps", "no-timestamps"])
@pytest.mark.parametrize("clip", CLIPS, ids=[c["file"] for c in CLIPS])
def test_greedy_tokens_equal_faster_whisper(host, reference, clip, without_timestamps):
    path = FIXTURES / clip["file"]
    t0 = time.perf_counter()
    ours = post(host, "/v1/audio/transcriptions", path,
                {"model": "base", "response_format": "verbose_json", "beam_size": "1",
                 "without_timestamps": str(without_timestamps).lower()})
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    segments, info = reference.transcribe(str(path), beam_size=1, vad_filter=False,
                                          without_timestamps=without_timestamps)
    segments = list(segments)
    t_ref = time.perf_counter() - t0
    TIMES.append((clip["file"], "no-ts" if without_timestamps else "ts", t_ours, t_ref))
    assert ours["language"] == {"en": "english", "de": "german", "fr": "french", "es": "spanish"}[info.language]
    our_tokens = [t for s in ours["segments"] for t in s["tokens"]]
    ref_tokens = [t for s in segments for t in s.tokens]
    assert our_tokens == ref_tokens, f"\nours: {ours['text']}\nref:  {''.join(s.text for s in segments)}"
    if not without_timestamps:
        for a, b in zip(ours["segments"], segments):
            assert abs(a["start"] - b.start) < 0.01 and abs(a["end"] - min(b.end, ours["duration"])) < 0.01


WORD_CLIPS = ["gen/jfk.wav", "gen/espeak/en.wav", "gen/espeak/de.wav", "gen/alsa/Front_Center.wav"]


@pytest.mark.parametrize("clip", WORD_CLIPS)
def test_word_timestamps_match_faster_whisper(host, reference, clip):
    path = FIXTURES / clip
    ours = post(host, "/v1/audio/transcriptions", path,
                {"model": "base", "response_format": "verbose_json", "beam_size": "1",
                 "timestamp_granularities[]": "word"})
    segments, _ = reference.transcribe(str(path), beam_size=1, vad_filter=False, word_timestamps=True)
    ref = [w for s in segments for w in s.words]
    assert [w["word"] for w in ours["words"]] == [w.word.strip() for w in ref]
    for a, b in zip(ours["words"], ref):
        assert abs(a["start"] - b.start) <= 0.3 and abs(a["end"] - b.end) <= 0.3, (a, b)


def test_zz_print_times():
    if not TIMES:
        pytest.skip("no parity runs")
    print("\nclip                          mode    ours (s)  faster-whisper (s)  ratio")
    for name, mode, ours, ref in TIMES:
        print(f"{name:30s} {mode:6s} {ours:8.2f}  {ref:18.2f}  {ours / ref:5.2f}")
