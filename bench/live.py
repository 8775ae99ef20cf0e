"""Transcribe while uploading: how soon text comes back from a live upload.

    .venv/bin/python bench/live.py            # (make bench-live) starts its own host

Sends a WAV as a chunked `audio/wav` body to `POST /v1/audio/transcriptions?stream=true` at
real-time pace (`--pace 1`: 0.25 s of audio every 0.25 s, as a microphone would) and times every
event on arrival. Per clip it prints:

- `after_segment_end_s`: for each segment event, its arrival minus the moment the audio at the
  segment's end had been sent: how far behind the speaker the text is (median and max). The
  window policy waits for 0.6 s of silence first, so this includes that pause;
- `first_segment_after_its_end_s`: the same for the first segment, whose end is where the first
  pause begins (issue 14's target: at most 2 s after the first pause that follows 3 s of speech);
- `done_after_end_s`: `transcript.text.done` after the body's last byte (target: at most 1 s);
- the words, against the same file sent whole with the API's defaults (beam 5; WER by jiwer on
  lower-case words). Greedy, the whole speech_gap file loses its second part: VAD glues both parts
  into one window, and Whisper's seek skips the rest of a window after a segment that ends with
  a single timestamp; the live windows never put the two parts together.

Clips: speech_gap (jfk, 40 s of silence, more speech) and the 184 s long form, base, greedy.
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import threading
import time
from pathlib import Path

import jiwer
import requests
from host import start_host

REPO = Path(__file__).resolve().parents[1]
GEN = REPO / "tests/fixtures/gen"
CLIPS = {"speech_gap": GEN / "e2e/speech_gap.wav", "long3m": GEN / "e2e/long3m.wav"}


def split_wav(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    at = data.index(b"data") + 8
    head = bytearray(data[:at])
    head[at - 4:at] = (0xFFFFFFFF).to_bytes(4, "little")
    return bytes(head), data[at:]


def live(port: int, path: Path, model: str, pace: float) -> dict:
    head, samples = split_wav(path)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall((f"POST /v1/audio/transcriptions?stream=true&model={model}&beam_size=1&language=en"
                  "&timestamp_granularities[]=segment HTTP/1.1\r\nHost: bench\r\nContent-Type: audio/wav\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode())
    events: list[tuple[float, dict]] = []

    def read() -> None:
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
            body = raw.split(b"\r\n\r\n", 1)[-1]
            found = re.findall(rb"data: (\{.*?\})\n\n", body)
            for j in found[len(events):]:
                events.append((time.monotonic(), json.loads(j)))

    reader = threading.Thread(target=read)
    reader.start()
    chunk = lambda b: f"{len(b):x}\r\n".encode() + b + b"\r\n"
    sock.sendall(chunk(head))
    quarter = 16000 // 4 * 2
    t0 = time.monotonic()
    for i in range(0, len(samples), quarter):
        due = t0 + (i / quarter) * 0.25 / pace
        time.sleep(max(0.0, due - time.monotonic()))
        sock.sendall(chunk(samples[i:i + quarter]))
    sock.sendall(b"0\r\n\r\n")
    ended = time.monotonic()
    reader.join(timeout=600)
    sock.close()

    sent_at = lambda audio_s: t0 + audio_s / pace  # when the audio up to audio_s had been sent
    segments = [(t, e) for t, e in events if e["type"] == "transcript.text.segment"]
    behind = [t - sent_at(e["end"]) for t, e in segments]
    done = [(t, e) for t, e in events if e["type"] == "transcript.text.done"]
    return {
        "audio_s": round(len(samples) / 32000, 1),
        "segments": len(segments),
        "after_segment_end_s": {"median": round(statistics.median(behind), 2), "max": round(max(behind), 2)} if behind else None,
        "first_segment_after_its_end_s": round(behind[0], 2) if behind else None,
        "first_segment_end_s": segments[0][1]["end"] if segments else None,
        "done_after_end_s": round(done[0][0] - ended, 2) if done else None,
        "text": done[0][1]["text"] if done else None,
    }


def whole(base: str, path: Path, model: str) -> str:
    r = requests.post(f"{base}/v1/audio/transcriptions", files={"file": (path.name, path.read_bytes())},
                      data={"model": model, "language": "en"}, timeout=900)
    r.raise_for_status()
    return r.json()["text"]


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--pace", type=float, default=1.0, help="× real time (1 = a live microphone)")
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--port", type=int, default=18931)
    ap.add_argument("--out", default=str(REPO / "bench/live.json"))
    args = ap.parse_args()
    host = start_host(args.port, [args.model, "vad"], ["--threads", "2"])
    base = f"http://127.0.0.1:{args.port}"
    results = {}
    try:
        whole(base, CLIPS["speech_gap"], args.model)  # warm
        for name in args.clips.split(","):
            r = live(args.port, CLIPS[name], args.model, args.pace)
            reference = whole(base, CLIPS[name], args.model)
            r["wer_vs_whole_file_beam5"] = round(jiwer.wer(words(reference), words(r.pop("text") or "")), 3)
            results[name] = r
            print(name, json.dumps(r), flush=True)
    finally:
        host.kill()
    Path(args.out).write_text(json.dumps({"model": args.model, "pace": args.pace, "clips": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
