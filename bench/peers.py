#!/usr/bin/env python3
"""One peer engine in a process of its own, driven by bench/bench.py over stdin/stdout.

A process per (engine, precision, beam), so its peak RSS (VmHWM, read by the parent from
/proc/<pid>/status) is that engine's alone: the Python interpreter, the engine's libraries, its
weights and its buffers — nothing of the bench or of the other engines.

    python bench/peers.py faster-whisper --model CT2_DIR --compute-type int8 --beam 5 --threads 2 --warm jfk.wav
    python bench/peers.py faster-whisper-batched --model CT2_DIR --compute-type int8 --beam 1 --batch-size 8 --warm jfk.wav
    python bench/peers.py whisper.cpp --model ggml-base-q8_0.bin --beam 5 --threads 2 --warm jfk.wav

Protocol: one JSON object per line. After loading the model and transcribing --warm once, the
worker writes {"ready": true, "load_s", "rss_before_load_mib", "rss_loaded_mib"}; then for each
request line {"clip": PATH} it writes {"wall_s", "text"} (wall time around the engine's
transcribe call, the clip read and decoded inside it); it exits at end of input. Engine logs go
to stderr (whisper.cpp prints from C, so fd 1 is pointed at stderr and the protocol uses a
duplicate of the original stdout).

Decoding settings, matched to our server's where it works (beam search at temperature 0,
Whisper's fallback schedule 0.2 … 1.0 with best_of 5, timestamps on, Whisper's non-speech
suppression; ours and faster-whisper also condition on the previous window's text):
- faster-whisper: `transcribe(clip, beam_size=B, vad_filter=False)`, its defaults otherwise
  (language detected, as ours does when none is given);
- whisper.cpp (pywhispercpp): greedy (`params_sampling_strategy=0`) or beam search with
  `beam_size` B, `suppress_nst=True` (its default False lets non-speech tokens such as
  "[BLANK_AUDIO]" through), language "en"; kept at its defaults: `no_context=True` (the previous
  window's text is NOT used as a prompt, unlike ours: with False, whisper.cpp 1.8.5 looped on the
  184 s long form, repeating the jfk sentence 5 times in its first window, WER 0.29-0.75 on
  2026-12-02, against 0.04 for ours and faster-whisper), timestamps on (as ours), flash attention
  on (whisper.cpp's default; the same arithmetic, ordered differently), patience unset.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def rss() -> dict:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            k, v = line.split(":")
            out[k] = int(v.split()[0]) / 1024  # MiB
    return out


class FasterWhisper:
    def __init__(self, args):
        from faster_whisper import WhisperModel
        self.model = WhisperModel(args.model, device="cpu", compute_type=args.compute_type,
                                  cpu_threads=args.threads)
        self.beam = args.beam

    def transcribe(self, clip: str) -> str:
        segments, _ = self.model.transcribe(clip, beam_size=self.beam, vad_filter=False)
        return "".join(s.text for s in segments).strip()


class FasterWhisperBatched(FasterWhisper):
    """faster-whisper's BatchedInferencePipeline: VAD's speech in chunks of up to 30 s, --batch-size
    chunks per call, its defaults otherwise (VAD on, without_timestamps=True)."""

    def __init__(self, args):
        super().__init__(args)
        from faster_whisper import BatchedInferencePipeline
        self.pipeline = BatchedInferencePipeline(model=self.model)
        self.batch_size = args.batch_size

    def transcribe(self, clip: str) -> str:
        segments, _ = self.pipeline.transcribe(clip, beam_size=self.beam, batch_size=self.batch_size)
        return "".join(s.text for s in segments).strip()


class WhisperCpp:
    def __init__(self, args):
        from pywhispercpp.model import Model
        # no_context stays at its default True: with False (condition on the previous text, as ours)
        # whisper.cpp 1.8.5 repeated the jfk sentence 5 times at the start of the long form here
        params = dict(n_threads=args.threads, language="en", no_context=True, suppress_nst=True,
                      print_progress=False, print_realtime=False, print_timestamps=False)
        if args.beam > 1:
            params["beam_search"] = {"beam_size": args.beam, "patience": -1.0}
        # A path that exists is used as it is (pywhispercpp downloads only for bare model names).
        if not Path(args.model).is_file():
            raise SystemExit(f"{args.model}: no such ggml file")
        self.model = Model(args.model, params_sampling_strategy=0 if args.beam == 1 else 1,
                           redirect_whispercpp_logs_to=False, **params)

    def transcribe(self, clip: str) -> str:
        # pywhispercpp strips each segment's text (whisper.cpp's start with a space): join with one
        return " ".join(s.text for s in self.model.transcribe(clip) if s.text).strip()


ENGINES = {"faster-whisper": FasterWhisper, "faster-whisper-batched": FasterWhisperBatched, "whisper.cpp": WhisperCpp}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("engine", choices=sorted(ENGINES))
    ap.add_argument("--model", required=True, help="CTranslate2 directory (faster-whisper) or ggml file (whisper.cpp)")
    ap.add_argument("--compute-type", default="int8", help="faster-whisper only")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8, help="faster-whisper-batched only")
    ap.add_argument("--warm", help="a clip transcribed once before 'ready'")
    args = ap.parse_args()

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the engine prints goes to stderr
    sys.stdout = sys.stderr

    def say(obj):
        proto.write(json.dumps(obj) + "\n")

    before = rss()["VmRSS"]
    t0 = time.perf_counter()
    engine = ENGINES[args.engine](args)
    load_s = time.perf_counter() - t0
    loaded = rss()["VmRSS"]
    if args.warm:
        engine.transcribe(args.warm)
    say({"ready": True, "load_s": load_s, "rss_before_load_mib": before, "rss_loaded_mib": loaded})
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        t0 = time.perf_counter()
        text = engine.transcribe(req["clip"])
        say({"wall_s": time.perf_counter() - t0, "text": text})


if __name__ == "__main__":
    main()
