"""Where the server's memory goes: RSS at rest, peak RSS through the issue-18 probe, RSS after it,
and the memory each extra in-flight request adds, for each model served alone.

The probe (as `bench.py`'s `memory_alone`): warm up on jfk, then a 184 s beam-5 request with two
jfk requests sent while it runs. The peak is VmHWM, reset (`/proc/<pid>/clear_refs` = 5) after
the warm-up, so start-up and model loading are not in it — they are in "at rest". Per request:
a host with `--max-concurrent 3` gets 1, then 2, then 3 concurrent 30 s requests (peak reset
before each); the slope of peak against requests is the memory one more in-flight request adds.
Wall times of the long requests are printed too, so a memory change that costs speed shows.

    .venv/bin/python bench/memory.py                       # base-int8 and base
    .venv/bin/python bench/memory.py --models base-int8 --env MALLOC_ARENA_MAX=2
    .venv/bin/python bench/memory.py --host-arg=--ort-config=session.disable_prepacking=1
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BENCH_GEN, GEN, ROOT, Host, post, proc_status, sox_cut  # noqa: E402


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def concurrent(host: Host, jobs: list[tuple[Path, dict]]) -> list[float]:
    with cf.ThreadPoolExecutor(len(jobs)) as ex:
        futures = []
        for i, (clip, fields) in enumerate(jobs):
            futures.append(ex.submit(post, host.base, clip, fields))
            if i == 0:
                time.sleep(0.3)
        return [f.result()[2] for f in futures]


def probe(args, model: str, clips: dict) -> dict:
    host = Host(argparse.Namespace(**{**vars(args), "server_models": [model]}))
    try:
        post(host.base, clips["jfk"], {"model": model})  # warm
        time.sleep(0.5)
        rest = proc_status(host.proc.pid)["VmRSS"]
        t0 = time.perf_counter()
        post(host.base, clips["long"], {"model": model})
        greedy_s = time.perf_counter() - t0
        reset_peak(host.proc.pid)
        walls = concurrent(host, [(clips["long"], {"model": model, "beam_size": "5"}),
                                  (clips["jfk"], {"model": model}), (clips["jfk"], {"model": model})])
        peak = proc_status(host.proc.pid)["VmHWM"]
        time.sleep(1.0)
        after = proc_status(host.proc.pid)["VmRSS"]
    finally:
        host.stop()
    return {"rss_rest_mib": rest, "peak_rss_mib": peak, "rss_after_mib": after,
            "long_greedy_s": greedy_s, "long_beam5_s": walls[0]}


def per_request(args, model: str, clips: dict, most: int = 3) -> dict:
    a = argparse.Namespace(**{**vars(args), "server_models": [model],
                              "host_arg": [*args.host_arg, f"--max-concurrent={most}"]})
    host = Host(a)
    peaks = []
    try:
        post(host.base, clips["clip30"], {"model": model})  # warm
        for n in range(1, most + 1):
            time.sleep(0.5)
            reset_peak(host.proc.pid)
            concurrent(host, [(clips["clip30"], {"model": model})] * n)
            peaks.append(proc_status(host.proc.pid)["VmHWM"])
    finally:
        host.stop()
    slope = (peaks[-1] - peaks[0]) / (most - 1)
    return {"peaks_mib": peaks, "per_extra_request_mib": slope}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    ap.add_argument("--models", dest="model_names", default="base-int8,base", help="comma-separated")
    ap.add_argument("--host-bin", default=str(target / "release/whisper-host"))
    ap.add_argument("--component", default=str(target / "wasm32-wasip2/release/whisper_component.wasm"))
    ap.add_argument("--models-dir", dest="models", default=os.environ.get("MODELS_DIR", str(ROOT / "models/build")))
    ap.add_argument("--ort-lib", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--host-arg", action="append", default=[], metavar="ARG")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="environment of the host")
    ap.add_argument("--no-per-request", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench/memory.json"))
    args = ap.parse_args()
    if not args.ort_lib:
        libs = sorted((ROOT / ".venv/lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.*"))
        args.ort_lib = str(libs[0]) if libs else None
    for kv in args.env:
        k, _, v = kv.partition("=")
        os.environ[k] = v
    BENCH_GEN.mkdir(parents=True, exist_ok=True)
    clips = {"jfk": GEN / "jfk.wav", "long": GEN / "e2e/long3m.wav",
             "clip30": sox_cut(GEN / "e2e/long3m.wav", BENCH_GEN / "clip30.wav", 30)}
    rows = []
    for model in args.model_names.split(","):
        row = {"model": model, **probe(args, model, clips)}
        if not args.no_per_request:
            row.update(per_request(args, model, clips))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| model | RSS at rest | peak (probe) | after | after/peak | per extra 30 s request | long greedy s | long beam 5 s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        extra = f"{r['per_extra_request_mib']:.0f} MiB" if "per_extra_request_mib" in r else "-"
        print(f"| {r['model']} | {r['rss_rest_mib']:.0f} MiB | {r['peak_rss_mib']:.0f} MiB | {r['rss_after_mib']:.0f} MiB | "
              f"{r['rss_after_mib'] / r['peak_rss_mib']:.0%} | {extra} | {r['long_greedy_s']:.2f} | {r['long_beam5_s']:.2f} |")
    Path(args.out).write_text(json.dumps({"env": args.env, "host_args": args.host_arg, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
