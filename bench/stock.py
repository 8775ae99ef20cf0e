#!/usr/bin/env python3
"""`make bench-stock`: the composed component (make edge) on stock `wasmtime serve`, beside our host.

For each model composed in --edge-dir (default: every whisper-edge-<model>.wasm there):
- start-up (spawn -> /health 200) and peak RSS (VmHWM) of the stock server;
- per-request overhead before any inference: GET /health (instantiation of the composed
  component, provider memory image included, plus HTTP on loopback) and GET /v1/models (the
  same plus the app's model probes through the provider's load-by-name), medians of 20;
- jfk (11 s), a 30 s clip and the 184 s long form at beam 1 (greedy) and jfk at beam 5: wall time
  end to end, real-time factor, WER against the spoken text; medians over --runs;
- the same clips through our host (ONNX Runtime, --threads 1) with the same model: whether the
  words are the same, and the long-form WER difference.
A request on stock `wasmtime serve` runs on one core (tract in wasm has no threads).
Prints a table and writes --out (JSON). See bench/README.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (BENCH_GEN, FIX, GEN, ROOT, Host, duration, free_port, long_form_reference,  # noqa: E402
                   normalize, post, proc_status, sox_cut, wait_healthy, wer)


class Stock:
    """Stock `wasmtime serve -S cli` with one composed component."""

    def __init__(self, wasmtime: str, wasm: Path, model: str):
        self.addr = f"127.0.0.1:{free_port()}"
        self.base = f"http://{self.addr}"
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([wasmtime, "serve", "-S", "cli", "--addr", self.addr,
                                      "--env", f"WHISPER_MODEL={model}", str(wasm)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_healthy(self.proc, self.base, 300, lambda: f"wasmtime serve exited ({self.proc.returncode}) for {wasm}")
        self.startup_s = time.perf_counter() - t0

    def get_ms(self, path: str, n: int) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            with urllib.request.urlopen(self.base + path, timeout=60) as r:
                r.read()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def stop(self) -> dict:
        status = proc_status(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(30)
        return status


def timed(base: str, clip: Path, fields: dict, runs: int) -> tuple[str, float]:
    texts, walls = [], []
    for _ in range(runs):
        data, _, wall = post(base, clip, fields)
        texts.append(data["text"])
        walls.append(wall)
    return texts[-1], statistics.median(walls)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasmtime", required=True, help="stock wasmtime-cli 48 (scripts/setup-tools.sh)")
    ap.add_argument("--edge-dir", required=True, help="where make edge wrote whisper-edge-<model>.wasm")
    ap.add_argument("--models", default=None, help="comma-separated (default: every composed model)")
    ap.add_argument("--host-bin", default=str(ROOT / "target/release/whisper-host"))
    ap.add_argument("--component", default=str(ROOT / "target/wasm32-wasip2/release/whisper_component.wasm"))
    ap.add_argument("--models-dir", default=str(ROOT / "models/build"))
    ap.add_argument("--ort-lib", default=os.environ.get("ORT_DYLIB_PATH"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-long", action="store_true", help="skip the 184 s long form")
    ap.add_argument("--out", default=str(ROOT / "bench/stock.json"))
    args = ap.parse_args()

    edge = Path(args.edge_dir)
    models = args.models.split(",") if args.models else sorted(
        p.name[len("whisper-edge-"):-len(".wasm")] for p in edge.glob("whisper-edge-*.wasm"))
    if not models:
        sys.exit(f"no whisper-edge-*.wasm in {edge}: run `make edge`")
    clips_json = json.loads((FIX / "clips.json").read_text())["clips"]
    jfk_text = next(c["spoken"] for c in clips_json if c["file"] == "gen/jfk.wav")
    long_ref = long_form_reference(jfk_text)
    clip30 = sox_cut(GEN / "e2e/long3m.wav", BENCH_GEN / "clip30.wav", 30)
    ref30 = None  # cut mid-sentence: compared with our host's words, no WER
    cases = [("jfk", GEN / "jfk.wav", jfk_text, 1), ("jfk", GEN / "jfk.wav", jfk_text, 5), ("30s", clip30, ref30, 1)]
    if not args.no_long:
        cases.append(("long", GEN / "e2e/long3m.wav", long_ref, 1))

    out = {"models": {}, "runs": args.runs, "cores": os.cpu_count(), "loadavg": os.getloadavg()}
    for model in models:
        wasm = edge / f"whisper-edge-{model}.wasm"
        row = {"wasm_mb": wasm.stat().st_size / 1e6, "cases": []}
        stock = Stock(args.wasmtime, wasm, model)
        row["startup_s"] = stock.startup_s
        row["health_ms"] = stock.get_ms("/health", 20)
        row["models_ms"] = stock.get_ms("/v1/models", 20)
        print(f"{model}: {row['wasm_mb']:.0f} MB, up in {stock.startup_s:.2f} s, /health {row['health_ms']:.1f} ms, "
              f"/v1/models {row['models_ms']:.1f} ms", flush=True)
        for name, clip, ref, beam in cases:
            text, wall = timed(stock.base, clip, {"model": model, "beam_size": beam}, args.runs)
            secs = duration(clip)
            case = {"clip": name, "beam": beam, "seconds": secs, "wall_s": wall, "rtf": wall / secs, "text": text,
                    "wer": wer(ref, text) if ref else None}
            row["cases"].append(case)
            print(f"  stock {name} beam {beam}: {wall:.2f} s, RTF {wall / secs:.3f}"
                  + (f", WER {case['wer']:.3f}" if ref else ""), flush=True)
        row["rss"] = stock.stop()
        host_args = argparse.Namespace(host_bin=args.host_bin, component=args.component, models=args.models_dir,
                                       ort_lib=args.ort_lib, threads=1, server_models=[model], host_arg=[])
        host = Host(host_args)
        for case in row["cases"]:
            clip = {"jfk": GEN / "jfk.wav", "30s": clip30, "long": GEN / "e2e/long3m.wav"}[case["clip"]]
            text, wall = timed(host.base, clip, {"model": model, "beam_size": case["beam"]}, 1)
            case["host_wall_s"], case["host_text"] = wall, text
            case["same_words"] = normalize(text) == normalize(case["text"])
            ref = {"jfk": jfk_text, "long": long_ref}.get(case["clip"])
            case["host_wer"] = wer(ref, text) if ref else None
        host.stop()
        out["models"][model] = row
    Path(args.out).write_text(json.dumps(out, indent=1))
    print_table(out)


def print_table(out: dict):
    print(f"\nstock `wasmtime serve`, one core per request (medians of {out['runs']}); our host with --threads 1:")
    print("| model | .wasm | start-up | /health | /v1/models | peak RSS | clip | beam | stock | RTF | WER | our host | same words |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model, row in out["models"].items():
        for i, c in enumerate(row["cases"]):
            head = (f"| {model} | {row['wasm_mb']:.0f} MB | {row['startup_s']:.1f} s | {row['health_ms']:.1f} ms | "
                    f"{row['models_ms']:.1f} ms | {row['rss'].get('VmHWM', 0):.0f} MiB ") if i == 0 else "| | | | | | "
            w = f"{c['wer']:.3f} (host {c['host_wer']:.3f})" if c["wer"] is not None else "–"
            print(head + f"| {c['clip']} | {c['beam']} | {c['wall_s']:.2f} s | {c['rtf']:.3f} | {w} | "
                  f"{c['host_wall_s']:.2f} s | {'yes' if c['same_words'] else 'no'} |")


if __name__ == "__main__":
    main()
