"""Before and after, interleaved: the same model served by several hosts that differ only in
their flags or environment, each request sent to every host in turn, so that a change in the
machine's speed hits every variant alike. Medians of wall time per clip and beam, the ratio of
each variant to the first, and each host's peak RSS over the whole run.

    .venv/bin/python bench/ab.py --variant "old=--serial-graphs= --malloc-mmap-threshold=0" \\
        --variant new --variant "noprepack=--ort-config=session.disable_prepacking=1"

A variant is `name=ARGS` (host arguments, split on spaces; `KEY=VALUE` words before the first
`--` flag set the host's environment), or a bare `name` for the defaults. Hosts are started one
after another and stay idle while another one works.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BENCH_GEN, GEN, ROOT, Host, post, proc_status, sox_cut  # noqa: E402


def parse_variant(spec: str) -> tuple[str, dict, list[str]]:
    name, _, rest = spec.partition("=")
    env, args = {}, []
    for word in rest.split():
        if not args and not word.startswith("--") and "=" in word:
            k, _, v = word.partition("=")
            env[k] = v
        else:
            args.append(word)
    return name, env, args


def start(args, env: dict, host_args: list[str]) -> Host:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Host(argparse.Namespace(**{**vars(args), "server_models": [args.model], "host_arg": host_args}))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    ap.add_argument("--variant", action="append", required=True, metavar="NAME[=ARGS]")
    ap.add_argument("--model", default="base-int8")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clips", default="jfk,long")
    ap.add_argument("--beams", default="1,5")
    ap.add_argument("--host-bin", default=str(target / "release/whisper-host"))
    ap.add_argument("--component", default=str(target / "wasm32-wasip2/release/whisper_component.wasm"))
    ap.add_argument("--models-dir", dest="models", default=os.environ.get("MODELS_DIR", str(ROOT / "models/build")))
    ap.add_argument("--ort-lib", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not args.ort_lib:
        libs = sorted((ROOT / ".venv/lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.*"))
        args.ort_lib = str(libs[0]) if libs else None
    BENCH_GEN.mkdir(parents=True, exist_ok=True)
    all_clips = {"jfk": GEN / "jfk.wav", "long": GEN / "e2e/long3m.wav",
                 "clip30": sox_cut(GEN / "e2e/long3m.wav", BENCH_GEN / "clip30.wav", 30)}
    clips = {c: all_clips[c] for c in args.clips.split(",")}
    beams = [int(b) for b in args.beams.split(",")]
    variants = [parse_variant(v) for v in args.variant]
    hosts = {}
    try:
        for name, env, host_args in variants:
            hosts[name] = start(args, env, host_args)
            post(hosts[name].base, all_clips["jfk"], {"model": args.model})  # warm
        walls = {(n, c, b): [] for n in hosts for c in clips for b in beams}
        texts = {}
        for r in range(args.runs):
            for c, path in clips.items():
                for b in beams:
                    for n, host in hosts.items():
                        answer, _, wall = post(host.base, path, {"model": args.model, "beam_size": str(b)})
                        walls[(n, c, b)].append(wall)
                        texts.setdefault((c, b), {})[n] = answer["text"]
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr, flush=True)
        peaks = {n: proc_status(h.proc.pid)["VmHWM"] for n, h in hosts.items()}
    finally:
        for h in hosts.values():
            h.stop()
    first = variants[0][0]
    print(f"\n{args.model}, {args.runs} interleaved runs, medians of wall time (s); ratio to `{first}`")
    print("| clip | beam | " + " | ".join(hosts) + " | " + " | ".join(f"{n}/{first}" for n in list(hosts)[1:]) + " | same text |")
    print("|---|---|" + "---|" * (2 * len(hosts)))
    for c in clips:
        for b in beams:
            med = {n: statistics.median(walls[(n, c, b)]) for n in hosts}
            same = len(set(texts[(c, b)].values())) == 1
            print(f"| {c} | {b} | " + " | ".join(f"{med[n]:.2f}" for n in hosts) + " | "
                  + " | ".join(f"{med[n] / med[first]:.3f}" for n in list(hosts)[1:]) + f" | {'yes' if same else 'NO'} |")
    print("| peak RSS (MiB) | | " + " | ".join(f"{peaks[n]:.0f}" for n in hosts) + " |")


if __name__ == "__main__":
    main()
