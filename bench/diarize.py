"""Diarization benchmark: DER per constructed conversation of real speakers, and the time
diarization adds to a request.

    .venv/bin/python bench/diarize.py            # (make bench-diarize) starts its own host

Sets: tests/fixtures/gen/diar/bench{2,3,4}_{0,1}.wav (2-4 speakers, 0.5-2 s gaps, turns of
1-3 utterances so some are under 3 s; tests/fixtures/conversations.py) plus abab and three (the
e2e sets). The reference is the turns in <set>.json. Two hypotheses from one verbose_json +
diarize=true request: `speaker_turns` (who spoke when, from the voices: the diarization itself)
and the transcript's segments with their `speaker` (what diarized_json returns: it also misses
what Whisper did not transcribe, and segment edges are Whisper's). DER by simpleder (no collar,
overlap-free references), so every 10 ms between a turn's edge and ours counts against us.

Added time: the 184 s long form (gen/e2e/long3m.wav, one speaker) and one bench set, each as
verbose_json without and with diarize=true, interleaved, medians of --runs. When the transcription's
VAD filters the audio (by default over 30 s) diarization reuses its scores; a 30 s clip or less
gets a VAD pass of diarization's own.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import requests
from host import start_host
import simpleder

REPO = Path(__file__).resolve().parents[1]
GEN = REPO / "tests/fixtures/gen"


def post(base: str, wav: Path, fields: dict) -> tuple[dict, float]:
    t0 = time.monotonic()
    r = requests.post(f"{base}/v1/audio/transcriptions", files={"file": (wav.name, wav.read_bytes())},
                      data={"beam_size": "1", **fields}, timeout=900)
    r.raise_for_status()
    return r.json(), time.monotonic() - t0


def no_overlap(segments: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Whisper's segments in time order, each starting no earlier than the previous one ends
    (its timestamps may overlap by a few tens of ms, which simpleder refuses), empty ones dropped."""
    out, end = [], 0.0
    for speaker, start, stop in sorted(segments, key=lambda s: s[1]):
        start = max(start, end)
        if stop > start:
            out.append((speaker, start, stop))
            end = stop
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a running host (default: start one)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    proc = None
    base = args.url
    if not base:
        proc = start_host(18931, ["base", "vad", "speaker"])
        base = "http://127.0.0.1:18931"
    try:
        sets = sorted(p.stem for p in (GEN / "diar").glob("*.json"))
        print(f"{'set':10s} {'speakers':>8s} {'found':>5s} {'seconds':>7s} {'DER turns':>9s} {'DER segments':>12s}")
        ders, seg_ders = [], []
        for name in sets:
            truth = json.loads((GEN / "diar" / f"{name}.json").read_text())
            ref = [(t["speaker"], float(t["start"]), float(t["end"])) for t in truth["turns"]]
            v, _ = post(base, GEN / "diar" / f"{name}.wav", {"response_format": "verbose_json", "diarize": "true"})
            turns = [(t["speaker"], float(t["start"]), float(t["end"])) for t in v["speaker_turns"] if t["end"] > t["start"]]
            segs = no_overlap([(s["speaker"], float(s["start"]), float(s["end"])) for s in v["segments"]])
            der, seg_der = simpleder.DER(ref, turns), simpleder.DER(ref, segs)
            ders.append(der)
            seg_ders.append(seg_der)
            print(f"{name:10s} {len({r[0] for r in ref}):8d} {len({h[0] for h in turns}):5d} {truth['duration']:7.1f} "
                  f"{der:9.3f} {seg_der:12.3f}")
        print(f"mean DER: speaker turns {statistics.mean(ders):.3f}, transcript segments {statistics.mean(seg_ders):.3f}")
        for wav in (GEN / "e2e/long3m.wav", GEN / "diar/bench3_0.wav"):
            # Interleaved, so that a change in the machine's speed hits both alike.
            plain, diar = [], []
            for _ in range(args.runs):
                plain.append(post(base, wav, {"response_format": "verbose_json"})[1])
                diar.append(post(base, wav, {"response_format": "verbose_json", "diarize": "true"})[1])
            a, b = statistics.median(plain), statistics.median(diar)
            print(f"{wav.name}: {a:.2f} s without, {b:.2f} s with diarize=true: +{b - a:.2f} s ({(b - a) / a * 100:+.0f} %), "
                  f"medians of {args.runs}, greedy, base")
    finally:
        if proc:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
