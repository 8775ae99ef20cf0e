"""Long form: our batched and sequential paths beside faster-whisper's sequential transcribe and
its BatchedInferencePipeline, in one run, on the same CTranslate2 weights.

    .venv/bin/python bench/long_form.py          # (make bench-long) starts its own hosts

Clips: the 184 s long form (gen/e2e/long3m.wav: jfk and six espeak sentences, three times, then
jfk, with 2.5 s pauses) and a 21-minute one made of it seven times over (long21m.wav, built here
with sox, sent as Ogg Opus), so both have a known text. Systems, each greedy or `--beam`, 2 threads:

- ours, `condition_on_previous_text=true`: the sequential path (windows that seek, each after
  the text before it; VAD on, as by default over 30 s);
- ours, batched (the default): VAD's speech in chunks of up to 30 s, `batch_size` 1, 4 and 8;
- faster-whisper 1.2.1 `WhisperModel.transcribe` (vad_filter=False, its default) and
  `BatchedInferencePipeline.transcribe(batch_size=8)` (its defaults: VAD on, no timestamps).

Each of ours runs on a host of its own, started for it, so its peak RSS (VmHWM at the end) is
that configuration's; the peers run in workers of their own (bench/peers.py). Runs are
interleaved across systems; medians. WER by jiwer after Whisper's English normaliser, as in
bench/bench.py. Prints a table and writes tests/fixtures/gen/bench/long_form.json (--out).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BENCH_GEN, FIX, GEN, Peer, long_form_reference, proc_status, wer  # noqa: E402
from host import start_host  # noqa: E402


def long21m() -> Path:
    """Seven long3m.wav with 2.5 s pauses, as Ogg Opus at 32 kbit/s (5 MB: as a WAV, 41 MB would
    be over the 25 MiB upload cap)."""
    out = BENCH_GEN / "long21m.opus"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        pause, wav = BENCH_GEN / "pause2.5.wav", BENCH_GEN / "long21m.wav"
        subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(pause), "trim", "0", "2.5"], check=True)
        parts = []
        for i in range(7):
            parts += [str(GEN / "e2e/long3m.wav")] + ([str(pause)] if i < 6 else [])
        subprocess.run(["sox", *parts, str(wav)], check=True)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", "32k",
                        str(out)], check=True)
        wav.unlink()
    return out


class Ours:
    """A host of its own for one configuration of request fields."""

    def __init__(self, label: str, model: str, fields: dict, port: int):
        self.label, self.model, self.fields = label, model, fields
        self.proc = start_host(port, [model, "vad"])
        self.base = f"http://127.0.0.1:{port}"
        self.run(GEN / "jfk.wav")  # warm

    def run(self, clip: Path) -> dict:
        t0 = time.monotonic()
        r = requests.post(f"{self.base}/v1/audio/transcriptions", files={"file": (clip.name, clip.read_bytes())},
                          data={"model": self.model, **self.fields}, timeout=3600)
        wall = time.monotonic() - t0
        r.raise_for_status()
        return {"wall_s": wall, "text": r.json()["text"]}

    def stop(self) -> dict:
        status = proc_status(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(30)
        return {"peak_rss_mib": status.get("VmHWM")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="base-int8", help="our model (faster-whisper gets the matching compute type)")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="runs per system on the 184 s clip (the 21-minute one: 1)")
    ap.add_argument("--clips", default="long3m,long21m")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(BENCH_GEN / "long_form.json"))
    args = ap.parse_args()

    cache = Path(os.environ.get("WHISPER_CACHE", Path.home() / ".cache/whisper-edge"))
    ct2 = cache / "ct2/base"
    if not (ct2 / "model.bin").exists():
        sys.exit(f"{ct2} is missing: `make models MODELS=base` assembles it")
    compute_type = "int8" if args.model.endswith("int8") else "float32"
    jfk_text = next(c["spoken"] for c in json.loads((FIX / "clips.json").read_text())["clips"] if c["file"] == "gen/jfk.wav")
    one = long_form_reference(jfk_text)
    clips = {"long3m": (GEN / "e2e/long3m.wav", one, args.runs), "long21m": (long21m(), " ".join([one] * 7), 1)}
    clips = {k: v for k, v in clips.items() if k in args.clips.split(",")}

    beam = {"beam_size": str(args.beam)}
    configs = [("ours sequential", {**beam, "condition_on_previous_text": "true"})]
    configs += [(f"ours batched {b}", {**beam, "batch_size": b}) for b in args.batch_sizes.split(",")]
    rows, memory = [], {}
    peers = {
        "faster-whisper sequential": Peer("faster-whisper", ct2, args.beam, args.threads, GEN / "jfk.wav",
                                          BENCH_GEN / "peer-long-fw.log", compute_type=compute_type),
        "faster-whisper batched 8": Peer("faster-whisper-batched", ct2, args.beam, args.threads, GEN / "jfk.wav",
                                         BENCH_GEN / "peer-long-fwb.log", compute_type=compute_type, batch_size=8),
    }
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        for port, (label, fields) in enumerate(configs, start=18720):
            ours = Ours(label, args.model, fields, port)
            try:
                for name, (path, _, runs) in clips.items():
                    results[(label, name)] = [ours.run(path) for _ in range(runs)]
                    print(f"  {label} {name}: {statistics.median(r['wall_s'] for r in results[(label, name)]):.2f} s", flush=True)
            finally:
                memory[label] = ours.stop()
        for name, (path, _, runs) in clips.items():
            for _ in range(runs):
                for label, peer in peers.items():
                    results.setdefault((label, name), []).append(peer.run(path))
            for label in peers:
                print(f"  {label} {name}: {statistics.median(r['wall_s'] for r in results[(label, name)]):.2f} s", flush=True)
    finally:
        for label, peer in peers.items():
            memory[label] = {"peak_rss_mib": peer.stop()["peak_rss_mib"]}

    for name, (path, ref, _) in clips.items():
        secs = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                                    check=True, capture_output=True, text=True).stdout)
        fw_seq = statistics.median(r["wall_s"] for r in results[("faster-whisper sequential", name)])
        fw_bat = statistics.median(r["wall_s"] for r in results[("faster-whisper batched 8", name)])
        for label in [c[0] for c in configs] + list(peers):
            runs = results[(label, name)]
            wall = statistics.median(r["wall_s"] for r in runs)
            text = min(runs, key=lambda r: abs(r["wall_s"] - wall))["text"]
            rows.append({"clip": name, "audio_s": secs, "system": label, "wall_s": wall, "rtf": wall / secs,
                         "vs_fw_sequential": wall / fw_seq, "vs_fw_batched": wall / fw_bat,
                         "wer": wer(ref, text), "peak_rss_mib": memory[label]["peak_rss_mib"],
                         "all_s": [r["wall_s"] for r in runs]})
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv),
           "model": args.model, "fw_compute_type": compute_type, "beam": args.beam, "threads": args.threads, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"\n{args.model} / faster-whisper {compute_type}, beam {args.beam}, {args.threads} threads (peak RSS: the "
          f"whole server or worker process over both clips)")
    print(f"| clip | system | time s | RTF | ÷ fw sequential | ÷ fw batched 8 | WER | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} ({r['audio_s']:.0f} s) | {r['system']} | {r['wall_s']:.2f} | {r['rtf']:.4f} | "
              f"{r['vs_fw_sequential']:.2f} | {r['vs_fw_batched']:.2f} | {r['wer']:.3f} | {r['peak_rss_mib']:.0f} |")
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
