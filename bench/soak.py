#!/usr/bin/env python3
"""`make soak` (issue 7 "Overload"): the real whisper-host under steady load for a long time.

Starts whisper-host (model `base`, default limits) on a free loopback port, the way bench.py
does (its `Host`), then runs --clients client threads (default 4) for --seconds (default
$SOAK_SECONDS, else 600). Each client loops over a mix of requests, in its own rotation:

  seed_jfk            POST /  multipart jfk.wav                                     200, transcript checked
  openai_verbose_mp3  OpenAI SDK transcriptions.create(jfk.mp3, verbose_json)       200, text + segments checked
  short_clip          POST /v1/audio/transcriptions  1.5 s clip, response_format=json  200, "and so" checked
  bad_text_file       POST /  multipart notes.txt                                   415 unsupported_media_type
  bad_empty_seed      POST /  empty body                                            400
  bad_empty_openai    POST /v1/audio/transcriptions  empty audio/wav body           400

A 503 (queue full) is allowed and counted apart ("busy"). Anything else than the expected
status, a connection failure or a malformed answer is an error; a jfk answer without "ask not
what your country can do for you" is a wrong transcript.

Memory: the host's VmRSS is sampled every second from /proc/<pid>/status. Reported: at start
(at rest, before any request), the baseline (median over the 30 s before the 60th second of
load), the end of load (median over the last 30 s of load), at the end (idle, after the last
request) and the peak (VmHWM). Soaks under 120 s take the baseline at half-time and windows of a
quarter of the soak. Medians, because RSS swings by ±15 % from second to second with the
requests in flight.

Exit status 1 when: any error, any wrong transcript, the host died or logged a panic, /health
is not 200 afterwards, or the end-of-load RSS exceeds the baseline by more than --rss-growth
(default 25 %): a leak shows as growth after the first minute, once ONNX Runtime's arena, the
compiled code and the caches have settled. Prints a table and writes --out (JSON). bench/README.md.
"""
import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (Host, proc_status, pct, sox_cut, load_situation, paths)

ASK_NOT = "ask not what your country can do for you"
KINDS = ["seed_jfk", "openai_verbose_mp3", "short_clip", "bad_text_file", "bad_empty_seed", "bad_empty_openai"]
EXPECTED = {"seed_jfk": 200, "openai_verbose_mp3": 200, "short_clip": 200, "bad_text_file": 415,
            "bad_empty_seed": 400, "bad_empty_openai": 400}


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


class Bad(Exception):
    """The expected status, but a wrong or malformed answer. `wrong`: a wrong transcript."""

    def __init__(self, message: str, wrong: bool = False):
        super().__init__(message)
        self.wrong = wrong


def multipart(fields: dict, file_field: str, filename: str, data: bytes, ctype: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for k, v in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
             f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def http(base: str, path: str, body: bytes, ctype: str | None) -> tuple[int, bytes]:
    """POST; returns (status, body) for every HTTP status; raises on connection failures."""
    headers = {"content-type": ctype} if ctype else {}
    req = urllib.request.Request(base + path, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Requests:
    """The request mix; each method returns the HTTP status and raises Bad for a wrong answer."""

    def __init__(self, base: str):
        import openai
        self.base = base
        self.openai = openai
        self.client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=600)
        gen = bench.GEN
        self.jfk_wav = (gen / "jfk.wav").read_bytes()
        self.jfk_mp3 = (gen / "jfk.mp3").read_bytes()
        self.short = (bench.BENCH_GEN / "short.wav").read_bytes()
        self.notes = (gen / "e2e/notes.txt").read_bytes()

    @staticmethod
    def _json(data: bytes) -> dict:
        try:
            return json.loads(data)
        except ValueError:
            raise Bad(f"not JSON: {data[:200]!r}")

    def seed_jfk(self) -> int:
        body, ct = multipart({}, "file", "jfk.wav", self.jfk_wav, "audio/wav")
        status, data = http(self.base, "/", body, ct)
        if status == 200:
            v = self._json(data)
            try:
                text = v["results"][0]["transcript"]
            except (KeyError, IndexError, TypeError):
                raise Bad(f"no results[0].transcript: {data[:300]!r}")
            if ASK_NOT not in words(text):
                raise Bad(f"wrong transcript: {text!r}", wrong=True)
        return status

    def openai_verbose_mp3(self) -> int:
        try:
            r = self.client.audio.transcriptions.create(model="whisper-1", file=("jfk.mp3", self.jfk_mp3),
                                                        response_format="verbose_json")
        except self.openai.APIStatusError as e:
            return e.status_code
        if ASK_NOT not in words(r.text or ""):
            raise Bad(f"wrong transcript: {r.text!r}", wrong=True)
        if not r.segments or abs((r.duration or 0) - 11.0) > 0.2:
            raise Bad(f"verbose_json without segments or with duration {r.duration}")
        return 200

    def short_clip(self) -> int:
        body, ct = multipart({"model": "whisper-1", "response_format": "json"}, "file", "short.wav", self.short,
                             "audio/wav")
        status, data = http(self.base, "/v1/audio/transcriptions", body, ct)
        if status == 200:
            text = self._json(data).get("text")
            if not isinstance(text, str):
                raise Bad(f"no text: {data[:300]!r}")
            if "and so" not in words(text):  # the first 1.5 s of jfk: "And so my"
                raise Bad(f"wrong transcript: {text!r}", wrong=True)
        return status

    def _error(self, status: int, data: bytes, code: str | None = None) -> int:
        if status in (400, 415):
            err = self._json(data).get("error") or {}
            if not isinstance(err.get("message"), str) or (code and err.get("code") != code):
                raise Bad(f"error not in OpenAI's shape or code not {code}: {data[:300]!r}")
        return status

    def bad_text_file(self) -> int:
        body, ct = multipart({}, "file", "notes.txt", self.notes, "text/plain")
        status, data = http(self.base, "/", body, ct)
        return self._error(status, data, "unsupported_media_type")

    def bad_empty_seed(self) -> int:
        status, data = http(self.base, "/", b"", None)
        return self._error(status, data)

    def bad_empty_openai(self) -> int:
        status, data = http(self.base, "/v1/audio/transcriptions", b"", "audio/wav")
        return self._error(status, data)


class Soak:
    def __init__(self, host: bench.Host, clients: int, seconds: float):
        self.host, self.clients, self.seconds = host, clients, seconds
        self.lock = threading.Lock()
        self.records: list[tuple[str, int | None, float, str]] = []  # kind, status, seconds, outcome
        self.problems: list[dict] = []
        self.samples: list[tuple[float, float, float]] = []  # t since load start, VmRSS, VmHWM (MiB)
        self.stop = threading.Event()

    def client(self, i: int, deadline: float):
        reqs = Requests(self.host.base)
        order = KINDS[i % len(KINDS):] + KINDS[:i % len(KINDS)]
        n = 0
        while time.monotonic() < deadline:
            kind = order[n % len(order)]
            n += 1
            t0 = time.perf_counter()
            status, detail = None, None
            try:
                status = getattr(reqs, kind)()
                outcome = ("ok" if status == EXPECTED[kind] else "busy" if status == 503 else "error")
                if outcome == "error":
                    detail = f"status {status}, expected {EXPECTED[kind]}"
            except Bad as e:
                status, outcome, detail = EXPECTED[kind], ("wrong" if e.wrong else "error"), str(e)
            except Exception as e:  # connection refused/reset, timeouts, SDK failures
                outcome, detail = "error", f"{type(e).__name__}: {e}"
            secs = time.perf_counter() - t0
            with self.lock:
                self.records.append((kind, status, secs, outcome))
                if detail:
                    self.problems.append({"t_s": round(time.monotonic() - self.t0, 1), "client": i, "kind": kind,
                                          "status": status, "outcome": outcome, "detail": detail[:500]})
            if outcome == "busy":
                time.sleep(1.0)

    def sampler(self):
        pid = self.host.proc.pid
        while not self.stop.is_set():
            try:
                s = bench.proc_status(pid)
                self.samples.append((time.monotonic() - self.t0, s["VmRSS"], s["VmHWM"]))
            except (OSError, KeyError):
                return  # the host is gone; reported at the end
            self.stop.wait(1.0)

    def run(self):
        self.t0 = time.monotonic()
        deadline = self.t0 + self.seconds
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=self.client, args=(i, deadline)) for i in range(self.clients)]
        for t in threads:
            t.start()
        last = 0.0
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            el = time.monotonic() - self.t0
            if el - last >= 30:
                last = el
                with self.lock:
                    c = Counter(o for *_, o in self.records)
                rss = self.samples[-1][1] if self.samples else float("nan")
                print(f"  {el:5.0f} s: {len(self.records)} requests {dict(c)}, RSS {rss:.0f} MiB", flush=True)
        self.load_s = time.monotonic() - self.t0
        self.stop.set()
        sampler.join()


def summarize(rows: list[tuple[str, int | None, float, str]]) -> dict:
    lat = sorted(s for _, _, s, o in rows if o != "busy")
    c = Counter(o for *_, o in rows)
    return {"requests": len(rows), "ok": c["ok"], "busy_503": c["busy"], "errors": c["error"], "wrong": c["wrong"],
            "p50_s": bench.pct(lat, 0.5) if lat else None, "p99_s": bench.pct(lat, 0.99) if lat else None,
            "max_s": lat[-1] if lat else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host-bin", default=str(bench.ROOT / "target/release/whisper-host"))
    ap.add_argument("--component", default=str(bench.ROOT / "target/wasm32-wasip2/release/whisper_component.wasm"))
    ap.add_argument("--models", default=str(bench.ROOT / "models/build"))
    ap.add_argument("--ort-lib", default=os.environ.get("ORT_DYLIB_PATH"))
    ap.add_argument("--model", default="base")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 600))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rss-growth", type=float, default=0.25,
                    help="largest allowed growth of RSS at the end over RSS at the baseline (0.25 = 25 %%)")
    ap.add_argument("--out", default=str(bench.ROOT / "bench/soak.json"))
    args = ap.parse_args()
    if not args.ort_lib:
        libs = sorted((bench.ROOT / ".venv/lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.*"))
        args.ort_lib = str(libs[0]) if libs else None
    # What bench.Host reads. --threads = the number of cores is the host's own default; every
    # limit (--max-concurrent, --max-queue, --timeout, ...) is left at its default.
    args.threads = os.cpu_count()
    args.server_models = [args.model]

    # The short clip, made once here rather than by four clients at once.
    bench.sox_cut(bench.GEN / "jfk.wav", bench.BENCH_GEN / "short.wav", 1.5)
    load_before = bench.load_situation()
    print(f"load before: {load_before['loadavg']} on {load_before['cores']} cores", flush=True)
    host = bench.Host(args)
    rss_start = host.rest.get("VmRSS")
    print(f"host up in {host.startup_s:.2f} s (pid {host.proc.pid}), RSS at rest {rss_start:.0f} MiB; "
          f"{args.clients} clients for {args.seconds:.0f} s", flush=True)
    soak = Soak(host, args.clients, args.seconds)
    try:
        soak.run()
        alive = host.proc.poll() is None
        end = bench.proc_status(host.proc.pid) if alive else {}
        health = None
        if alive:
            try:
                with urllib.request.urlopen(host.base + "/health", timeout=10) as r:
                    health = r.status
            except OSError as e:
                health = str(e)
    finally:
        if host.proc.poll() is None:
            host.stop()
    load_after = bench.load_situation()

    # RSS swings by ±15 % from one second to the next with the requests in flight, so the rule
    # compares medians over equal windows under the same load: the window ending at the baseline
    # time (60 s, or half-way for soaks under 120 s) against the last window of the load.
    baseline_at = 60.0 if args.seconds >= 120 else args.seconds / 2
    window = min(30.0, args.seconds / 4)
    rss_base = median_rss(soak.samples, baseline_at - window, baseline_at)
    rss_loaded_end = median_rss(soak.samples, args.seconds - window, args.seconds)
    rss_end, peak = end.get("VmRSS"), end.get("VmHWM")
    growth = (rss_loaded_end / rss_base - 1) if rss_loaded_end and rss_base else None
    with host.cond:
        panics = [line for line in host.lines if "panicked" in line]
        log_errors = sum(" ERROR " in line for line in host.lines)

    rows = soak.records
    per_kind = {k: {"expected": EXPECTED[k], **summarize([r for r in rows if r[0] == k])} for k in KINDS}
    total = summarize(rows)
    statuses = Counter(str(s) if s is not None else "no answer" for _, s, _, _ in rows)
    failures = []
    if total["errors"]:
        failures.append(f"{total['errors']} unexpected errors")
    if total["wrong"]:
        failures.append(f"{total['wrong']} wrong transcripts")
    if not alive:
        failures.append(f"the host died (exit {host.proc.returncode})")
    if panics:
        failures.append(f"{len(panics)} panics in the host log")
    if alive and health != 200:
        failures.append(f"/health afterwards: {health}")
    if growth is None:
        failures.append("RSS not measured")
    elif growth > args.rss_growth:
        failures.append(f"RSS grew {growth:+.1%}: median {rss_base:.0f} MiB in the {window:.0f} s before "
                        f"{baseline_at:.0f} s, {rss_loaded_end:.0f} MiB in the last {window:.0f} s of load "
                        f"(limit {args.rss_growth:+.0%})")

    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "load_before": load_before, "load_after": load_after,
        "model": args.model, "clients": args.clients, "seconds": args.seconds, "load_s": soak.load_s,
        "server": {"startup_s": host.startup_s, "threads": args.threads, "limits": "defaults"},
        "total": total, "per_kind": per_kind, "statuses": dict(sorted(statuses.items())),
        "throughput_rps": len(rows) / soak.load_s,
        "rss_mib": {"start": rss_start, "baseline_median": rss_base, "baseline_at_s": baseline_at,
                    "window_s": window, "end_of_load_median": rss_loaded_end, "end_idle": rss_end,
                    "peak_vmhwm": peak, "peak_sampled": max((s[1] for s in soak.samples), default=None),
                    "growth": growth, "growth_limit": args.rss_growth},
        "rss_samples": [[round(t, 1), round(r, 1)] for t, r, _ in soak.samples[::5]],
        "host_log": {"panics": panics[:20], "error_lines": log_errors},
        "health_after": health,
        "problems": soak.problems[:200], "problems_total": len(soak.problems),
        "failures": failures, "passed": not failures,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print_report(out)
    print(f"\nwrote {args.out}")
    sys.exit(1 if failures else 0)


def median_rss(samples: list[tuple[float, float, float]], start: float, end: float) -> float | None:
    """Median VmRSS of the samples taken in (start, end] seconds since the load began."""
    vals = [r for t, r, _ in samples if start < t <= end]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_report(out: dict):
    print(f"\nsoak: {out['clients']} clients x {out['seconds']:.0f} s against {out['model']} (default limits); "
          f"load {out['load_before']['loadavg'][0]:.2f} -> {out['load_after']['loadavg'][0]:.2f} "
          f"on {out['load_before']['cores']} cores")
    print("| kind | expected | requests | ok | 503 | errors | wrong | p50 s | p99 s | max s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, r in list(out["per_kind"].items()) + [("all", {"expected": "", **out["total"]})]:
        print(f"| {k} | {r['expected']} | {r['requests']} | {r['ok']} | {r['busy_503']} | {r['errors']} | "
              f"{r['wrong']} | {fmt(r['p50_s'], '.2f')} | {fmt(r['p99_s'], '.2f')} | {fmt(r['max_s'], '.2f')} |")
    print(f"statuses: {', '.join(f'{k}: {v}' for k, v in out['statuses'].items())}; "
          f"{out['throughput_rps']:.2f} requests/s")
    m = out["rss_mib"]
    w = m["window_s"]
    print(f"RSS MiB: start {fmt(m['start'], '.0f')} (at rest), baseline {fmt(m['baseline_median'], '.0f')} "
          f"(median {m['baseline_at_s'] - w:.0f}-{m['baseline_at_s']:.0f} s), end of load {fmt(m['end_of_load_median'], '.0f')} "
          f"(median of the last {w:.0f} s), end {fmt(m['end_idle'], '.0f')} (idle, after the last request), "
          f"peak {fmt(m['peak_vmhwm'], '.0f')} (VmHWM)")
    print(f"RSS growth, end of load over baseline: {fmt(m['growth'], '+.1%')} (limit {m['growth_limit']:+.0%})")
    for p in out["problems"][:10]:
        print(f"  {p['outcome']}: {p['kind']} at {p['t_s']} s (client {p['client']}): {p['detail']}")
    print("PASSED" if out["passed"] else "FAILED: " + "; ".join(out["failures"]))


if __name__ == "__main__":
    main()
