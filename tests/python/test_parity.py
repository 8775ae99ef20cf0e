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


# Temperature fallback (issue 14): a token drawn at T > 0 is scored by the UNscaled log-softmax
# (openai-whisper GreedyDecoder.update, CTranslate2 RandomSampler), so a sample of an unsure
# window reads about as unlikely as faster-whisper's and fails the -1.0 log-probability
# threshold as theirs do. Sampling is random on both sides: these compare decisions (was the
# T = 0.2 attempt accepted?) and ranges, not tokens. `temperature=0.2` on our API tries
# 0.2, 0.4 … 1.0, as faster-whisper's `temperature=[0.2, 0.4, 0.6, 0.8, 1.0]`.
SCHEDULE = [0.2, 0.4, 0.6, 0.8, 1.0]
FALLBACK_CASES = [
    # clip, model, language, the T = 0.2 attempt accepted (by faster-whisper and by us)
    ("gen/jfk.wav", "base", None, True),  # clear speech: accepted, avg_logprob about -0.3
    # French into English-only tiny.en: faster-whisper's T = 0.2 samples repeat themselves or
    # read -1.3 to -1.9 (11 draws out of 11), so it falls back. Scored on logits / 0.2, ours
    # read -0.27 and was kept at 0.2 (" I'm going to go to the next one."); now -1.23 at 1.0.
    ("gen/espeak/fr.wav", "tiny.en", None, False),
]
REFERENCES = {}


def reference_model(name):
    from faster_whisper import WhisperModel
    if name not in REFERENCES:
        cache = Path(os.environ.get("WHISPER_CACHE", Path.home() / ".cache/whisper-edge"))
        ct2 = cache / "ct2" / name
        if not (ct2 / "model.bin").exists():
            pytest.fail(f"{ct2} is missing: `make models` assembles it")
        REFERENCES[name] = WhisperModel(str(ct2), device="cpu", compute_type="float32", cpu_threads=2)
    return REFERENCES[name]


@pytest.mark.parametrize("clip,model,language,accepted", FALLBACK_CASES,
                         ids=[f"{c[1]}-{c[0]}" for c in FALLBACK_CASES])
def test_fallback_decisions_match_faster_whisper(host, clip, model, language, accepted):
    path = FIXTURES / clip
    ref_model = reference_model(model)
    lang = {"language": language} if language else {}
    # faster-whisper: the T = 0.2 attempt alone, a few draws, then the whole schedule.
    ref_samples = []
    for _ in range(3):
        segs, _ = ref_model.transcribe(str(path), beam_size=1, vad_filter=False, temperature=[0.2],
                                       without_timestamps=True, **lang)
        segs = list(segs)
        ref_samples.append((segs[0].avg_logprob, max(s.compression_ratio for s in segs)) if segs else None)
    segs, _ = ref_model.transcribe(str(path), beam_size=1, vad_filter=False, temperature=SCHEDULE,
                                   without_timestamps=True, **lang)
    ref = list(segs)
    fields = {"model": model, "response_format": "verbose_json", "beam_size": "1", "temperature": "0.2",
              "without_timestamps": "true", **lang}
    # Our sampler is seeded per window: one request is the whole story.
    ours = [post(host, "/v1/audio/transcriptions", path, fields)]
    for o in ours:
        print(f"\n{model} {clip}: ours {[(round(s['avg_logprob'], 3), s['temperature']) for s in o['segments']]}"
              f" faster-whisper T=0.2 draws {[(round(a, 3), round(c, 2)) for a, c in filter(None, ref_samples)]},"
              f" schedule {[(round(s.avg_logprob, 3), s.temperature) for s in ref]}")

    def passes(avg, cr):
        return avg >= -1.0 and cr <= 2.4

    # The premise, on faster-whisper's side: most of its T = 0.2 draws get this decision.
    drawn = [passes(*r) for r in ref_samples if r]
    assert drawn and sum(d == accepted for d in drawn) * 2 > len(drawn), (accepted, ref_samples)
    assert ref
    # Ours: the same decision, with avg_logprob in the range faster-whisper's read.
    for o in ours:
        assert o["segments"], o
        for s in o["segments"]:
            assert (s["temperature"] == pytest.approx(0.2)) == accepted, (s, ref_samples)
            if accepted:
                assert s["avg_logprob"] >= -1.0
                assert min(a for a, _ in filter(None, ref_samples)) - 0.3 <= s["avg_logprob"] <= 0
            else:
                # Fell back past 0.2: a later temperature passed, or none did and both keep the
                # likeliest non-repetitive attempt, reported at the last temperature.
                assert s["temperature"] > 0.2
                ref_avg = [r.avg_logprob for r in ref] + [a for a, _ in filter(None, ref_samples)]
                assert min(ref_avg) - 0.6 <= s["avg_logprob"] <= max(ref_avg) + 0.6, (s, ref_avg)


def test_zz_print_times():
    if not TIMES:
        pytest.skip("no parity runs")
    print("\nclip                          mode    ours (s)  faster-whisper (s)  ratio")
    for name, mode, ours, ref in TIMES:
        print(f"{name:30s} {mode:6s} {ours:8.2f}  {ref:18.2f}  {ours / ref:5.2f}")
