#!/usr/bin/env python3
"""`make bench`: our server (HTTP end to end) against faster-whisper and whisper.cpp, same weights.

One run measures:
- server start-up (spawn -> /ready 200), VmRSS at rest and VmHWM (peak RSS) at the end;
- per clip (short 1.5 s, jfk 11 s, long-form 183 s) x model (base fp32, base int8) x beam (1, 5):
  wall time for us and for faster-whisper, their ratio, WER against the spoken text, RTF, and
  from the host's counters: instantiation, encoder ms per window, decoder ms per step, bytes per
  decoder step across wasi-nn, and the share of request time spent outside ONNX Runtime;
- concurrency: N clients x a 30 s clip against 1 client sequential (throughput, p50/p99);
- the peers, each in a process of its own (bench/peers.py): faster-whisper on the same
  CTranslate2 weights, and whisper.cpp (pywhispercpp) on a ggml file bench/ggml.py writes from
  them (f16 beside fp32, q8_0 beside int8): wall time, RTF, WER and peak RSS.

WER everywhere after Whisper's English normaliser (whisper-normalizer), computed with jiwer.

Medians over --runs runs. Prints a table and writes --out (JSON). See bench/README.md.
"""
import argparse
import concurrent.futures as cf
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
GEN = FIX / "gen"
BENCH_GEN = GEN / "bench"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------- fixtures and references

def sox_cut(src: Path, dst: Path, seconds: float) -> Path:
    """First `seconds` of `src` into `dst` (kept if it exists)."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(".tmp.wav")
        subprocess.run(["sox", str(src), str(tmp), "trim", "0", str(seconds)], check=True)
        tmp.rename(dst)
    return dst


def duration(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout)


def long_form_reference(jfk: str) -> str:
    """long3m.wav's text, rebuilt from make_e2e_fixtures.sh: (jfk + 6 sentences) x 3, then jfk."""
    script = (FIX / "make_e2e_fixtures.sh").read_text()
    block = re.search(r"sentences=\((.*?)\n\s*\)", script, re.S).group(1)
    sentences = re.findall(r'"([^"]+)"', block)
    assert len(sentences) == 6, sentences
    return " ".join(([jfk] + sentences) * 3 + [jfk])


def normalize(text: str) -> list[str]:
    """The bench's first, plain normaliser (lowercase, '-' -> space, punctuation stripped): kept
    for `wer_plain` and for stock.py's same-words check. It counts "12 %" against "twelve
    percent" as two errors, so the WER columns use `standard_words` instead."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


_ENGLISH = None


def standard_words(text: str) -> str:
    """Whisper's English normaliser (PyPI whisper-normalizer's EnglishTextNormalizer: numbers
    and currencies spelled out or not become digits, British spellings American, contractions
    expanded, bracketed and filler words dropped). "12 %" is joined to "12%" first: the
    normaliser drops a lone "%", while "12%", "12 percent" and "twelve percent" all give "12%"."""
    global _ENGLISH
    if _ENGLISH is None:
        from whisper_normalizer.english import EnglishTextNormalizer
        _ENGLISH = EnglishTextNormalizer()
    return _ENGLISH(re.sub(r"(?<=\d)\s+%", "%", text))


def wer(ref: str, hyp: str) -> float:
    """Word error rate (jiwer: word-level edit distance / reference words) after Whisper's
    English normaliser, the same for every system."""
    import jiwer
    r, h = standard_words(ref), standard_words(hyp)
    if not r.split():
        raise ValueError(f"reference {ref!r} has no words after normalising")
    return jiwer.wer(r, h) if h.split() else 1.0


def wer_plain(ref: str, hyp: str) -> float:
    """The bench's earlier WER (plain normaliser, own Levenshtein), in the JSON as `*_wer_plain`."""
    r, h = normalize(ref), normalize(hyp)
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1] / max(len(r), 1)


# ---------------------------------------------------------------- the server

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            k, v = line.split(":")
            out[k] = int(v.split()[0]) / 1024  # MiB
    return out


def wait_healthy(proc: subprocess.Popen, base: str, seconds: float, exited) -> None:
    """Waits until `base`/ready answers 200 (models loaded); `exited()` is the message if `proc` ends first."""
    deadline = time.time() + seconds
    while True:
        if proc.poll() is not None:
            raise SystemExit(exited())
        try:
            with urllib.request.urlopen(base + "/ready", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise SystemExit(f"{base} not healthy within {seconds:.0f} s")
        time.sleep(0.02)


class Host:
    """The real whisper-host, its log collected line by line (for per-graph counters)."""

    def __init__(self, args):
        self.addr = f"127.0.0.1:{free_port()}"
        self.base = f"http://{self.addr}"
        env = dict(os.environ, NO_COLOR="1")
        if args.ort_lib:
            env["ORT_DYLIB_PATH"] = args.ort_lib
        cmd = [args.host_bin, "--listen", self.addr, "--component", args.component, "--models", args.models,
               "--threads", str(args.threads)]
        for m in args.server_models:
            cmd += ["--model", m]
        cmd += getattr(args, "host_arg", [])  # soak.py shares this class without the flag
        self.lines: list[str] = []
        self.cond = threading.Condition()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # tracing logs to stdout
        threading.Thread(target=self._read, daemon=True).start()
        wait_healthy(self.proc, self.base, 180, lambda: "host exited:\n" + "\n".join(self.lines[-30:]))
        self.startup_s = time.perf_counter() - t0
        time.sleep(0.5)
        self.rest = proc_status(self.proc.pid)

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(ANSI.sub("", line.rstrip("\n")))
                self.cond.notify_all()

    def request_lines(self) -> int:
        with self.cond:
            return len(self.lines)

    def next_request_log(self, since: int, timeout=5.0) -> str | None:
        """The first POST request log line after index `since` (sequential requests only)."""
        end = time.time() + timeout
        with self.cond:
            while True:
                for line in self.lines[since:]:
                    if " request " in line and "method=POST" in line:
                        return line
                left = end - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def stop(self) -> dict:
        status = proc_status(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return status


def post(base: str, file: Path, fields: dict) -> tuple[dict, dict, float]:
    """POST /v1/audio/transcriptions; returns (json, server-timing, wall seconds incl. upload)."""
    boundary = uuid.uuid4().hex
    body = b""
    for k, v in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
             f"Content-Type: audio/wav\r\n\r\n").encode() + file.read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/v1/audio/transcriptions", data=body, method="POST",
                                 headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        data = r.read()
        timing = r.headers.get("server-timing", "")
    wall = time.perf_counter() - t0
    return json.loads(data), parse_server_timing(timing), wall


def parse_server_timing(value: str) -> dict:
    out = {}
    for part in value.split(","):
        name = part.strip().split(";")[0]
        m = re.search(r"dur=([0-9.]+)", part)
        if m:
            out[name + "_ms"] = float(m.group(1))
        d = re.search(r'desc="(\d+) computes, (\d+) B in, (\d+) B out"', part)
        if d:
            out["nn_computes"], out["nn_bytes_in"], out["nn_bytes_out"] = map(int, d.groups())
    return out


GRAPH = re.compile(r"([\w.\-]+)/(\w+): (\d+)× ([0-9.]+) ms in ([0-9.]+) MB out ([0-9.]+) MB")


def parse_graphs(line: str | None) -> dict:
    """Per-graph counters of the host's request log line: {graph: (computes, ms, MB in, MB out)}."""
    if not line:
        return {}
    return {g: (int(n), float(ms), float(i), float(o)) for _, g, n, ms, i, o in GRAPH.findall(line)}


def counters(timing: dict, graphs: dict) -> dict:
    total, nn = timing.get("total_ms"), timing.get("nn_ms")
    c = {"server_total_ms": total, "instantiate_ms": timing.get("instantiate_ms"), "nn_ms": nn,
         "outside_ort_share": (total - nn) / total if total and nn is not None else None}
    enc, dec = graphs.get("encoder"), graphs.get("decoder")
    if enc and enc[0]:
        c["encoder_windows"] = enc[0]
        c["encoder_ms_per_window"] = enc[1] / enc[0]
    if dec and dec[0]:
        c["decoder_steps"] = dec[0]
        c["decoder_ms_per_step"] = dec[1] / dec[0]
        # All bytes across wasi-nn per decoder compute, and the same without the hand-off of the
        # cross K/V (the encoder's cross_k<i>/cross_v<i>, 12 tensors for base: counted in `in`
        # once per window, equal to the encoder's bytes out). The JSON key keeps its old name.
        c["decoder_kb_per_step"] = (dec[2] + dec[3]) * 1e3 / dec[0]
        cross = enc[3] if enc else 0.0
        c["decoder_kb_per_step_wo_cross_kv"] = (dec[2] - cross + dec[3]) * 1e3 / dec[0]
    return c


# ---------------------------------------------------------------- the comparisons

def median_dict(rows: list[dict]) -> dict:
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        out[k] = statistics.median(vals) if vals else rows[0][k]
    return out


def run_ours(host: Host, clip: Path, model: str, beam: int) -> dict:
    since = host.request_lines()
    js, timing, wall = post(host.base, clip, {"model": model, "response_format": "verbose_json",
                                              "beam_size": str(beam)})
    graphs = parse_graphs(host.next_request_log(since))
    return {"wall_s": wall, "text": js["text"], **counters(timing, graphs)}


def memory_alone(args, model: str, clips: dict) -> dict:
    """A host serving `model` alone: RSS at rest, then its peak (VmHWM) over a 184 s beam-5
    request with two jfk requests sent while it runs (they queue or run, as the limits say)."""
    host = Host(argparse.Namespace(**{**vars(args), "server_models": [model]}))
    try:
        run_ours(host, clips["jfk"][0], model, 1)  # warm
        with cf.ThreadPoolExecutor(3) as ex:
            long = ex.submit(post, host.base, clips["long"][0], {"model": model, "beam_size": "5"})
            time.sleep(0.3)
            jfks = [ex.submit(post, host.base, clips["jfk"][0], {"model": model}) for _ in range(2)]
            for f in [long, *jfks]:
                f.result()
    finally:
        end = host.stop()
    return {"model": model, "rss_rest_mib": host.rest.get("VmRSS"), "peak_rss_mib": end.get("VmHWM"),
            "rss_end_mib": end.get("VmRSS")}


class Peer:
    """faster-whisper or whisper.cpp in a process of its own (bench/peers.py), loaded and warmed
    once (`warm` transcribed before the first timed run), so its peak RSS is its own."""

    def __init__(self, engine: str, model: str, beam: int, threads: int, warm: Path, log: Path, **extra):
        self.engine, self.beam = engine, beam
        cmd = [sys.executable, str(ROOT / "bench/peers.py"), engine, "--model", str(model), "--beam", str(beam),
               "--threads", str(threads), "--warm", str(warm)]
        for k, v in extra.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._log = open(log, "w")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1)
        self.ready = self._answer()
        self.startup_s = time.perf_counter() - t0
        self.rest = proc_status(self.proc.pid)  # loaded and warmed

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            tail = self.log.read_text()[-3000:]
            raise SystemExit(f"{self.engine} worker exited ({self.proc.returncode}); its log {self.log}:\n{tail}")
        return json.loads(line)

    def run(self, clip: Path) -> dict:
        self.proc.stdin.write(json.dumps({"clip": str(clip)}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def stop(self) -> dict:
        """Ends the worker; returns its memory: VmRSS once loaded and warmed, VmHWM (peak) at the
        end, and the interpreter's RSS before the model was loaded."""
        end = proc_status(self.proc.pid)
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return {"rss_rest_mib": self.rest.get("VmRSS"), "peak_rss_mib": end.get("VmHWM"),
                "rss_before_load_mib": self.ready.get("rss_before_load_mib"), "load_s": self.ready.get("load_s"),
                "startup_s": self.startup_s}


def combination(host: Host, peers: dict, clips: dict, name: str, secs: float, label: str, ours_model: str,
                compute_type: str, ggml_type: str, beam: int, runs: int) -> dict:
    """One clip x precision x beam: `runs` rounds of ours, faster-whisper, whisper.cpp, interleaved
    so that load changes hit every system; medians."""
    path, ref = clips[name]
    all_runs = {"ours": [], **{k: [] for k in peers}}
    for _ in range(runs):
        all_runs["ours"].append(run_ours(host, path, ours_model, beam))
        for k, peer in peers.items():
            all_runs[k].append(peer.run(path))
    med = {k: median_dict(v) for k, v in all_runs.items()}
    o, f = med["ours"], med["fw"]
    row = {
        "clip": name, "audio_s": secs, "precision": label, "model": ours_model,
        "fw_compute_type": compute_type, "beam": beam, "runs": runs,
        "ours_s": o["wall_s"], "fw_s": f["wall_s"], "ratio": o["wall_s"] / f["wall_s"],
        "ours_rtf": o["wall_s"] / secs, "fw_rtf": f["wall_s"] / secs,
    }
    for k, m in med.items():
        row[f"{k}_wer"] = wer(ref, m["text"]) if ref else None
        row[f"{k}_wer_plain"] = wer_plain(ref, m["text"]) if ref else None
        row[f"{k}_text"] = m["text"]
        row[f"{k}_all_s"] = [r["wall_s"] for r in all_runs[k]]
    if "wcpp" in med:
        w = med["wcpp"]["wall_s"]
        row.update({"wcpp_type": ggml_type, "wcpp_s": w, "wcpp_rtf": w / secs, "ratio_wcpp": o["wall_s"] / w})
    row.update({k: v for k, v in o.items() if k not in ("wall_s", "text")})
    # The server's peak RSS so far, to see which combination raises it.
    row["server_peak_rss_mib_so_far"] = proc_status(host.proc.pid).get("VmHWM")
    wc = f", whisper.cpp {row['wcpp_s']:.2f} s" if "wcpp_s" in row else ""
    print(f"  {label} beam {beam} {name}: ours {row['ours_s']:.2f} s, fw {row['fw_s']:.2f} s{wc}, "
          f"ours/fw {row['ratio']:.2f}", flush=True)
    return row


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("faster-whisper", "ctranslate2", "pywhispercpp", "whisper-normalizer", "jiwer", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def concurrency(host: Host, clip: Path, model: str, clients: int, per_client: int) -> dict:
    secs = duration(clip)
    fields = {"model": model, "response_format": "json", "beam_size": "1"}

    def one():
        t0 = time.perf_counter()
        post(host.base, clip, fields)
        return time.perf_counter() - t0

    def run(n_clients, n_each):
        def client():
            return [one() for _ in range(n_each)]
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(n_clients) as ex:
            lat = [x for f in [ex.submit(client) for _ in range(n_clients)] for x in f.result()]
        wall = time.perf_counter() - t0
        lat.sort()
        return {"clients": n_clients, "requests": len(lat), "wall_s": wall,
                "throughput_audio_s_per_s": secs * len(lat) / wall,
                "p50_s": statistics.median(lat), "p99_s": pct(lat, 0.99), "max_s": lat[-1]}

    single = run(1, max(per_client, 3))
    multi = run(clients, per_client)
    return {"clip_s": secs, "model": model, "beam": 1, "single": single, "concurrent": multi}


def pct(sorted_vals: list[float], q: float) -> float:
    """Linear-interpolated percentile."""
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = q * (len(sorted_vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def load_situation() -> dict:
    top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    return {"loadavg": os.getloadavg(), "cores": os.cpu_count(), "top": top.splitlines()[1:6]}


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host-bin", default=str(ROOT / "target/release/whisper-host"))
    ap.add_argument("--component", default=str(ROOT / "target/wasm32-wasip2/release/whisper_component.wasm"))
    ap.add_argument("--models", default=str(ROOT / "models/build"))
    ap.add_argument("--ct2", default=None, help="faster-whisper's CTranslate2 base directory "
                    "(default: ~/.cache/whisper-edge/ct2/base, or $WHISPER_CACHE/ct2/base)")
    ap.add_argument("--ort-lib", default=os.environ.get("ORT_DYLIB_PATH"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="runs per combination; medians are reported")
    ap.add_argument("--quick", action="store_true", help="1 run, int8 only, beam 1 and 5 on short and jfk, "
                    "2 clients x 1 request")
    ap.add_argument("--clips", default="short,jfk,long", help="comma-separated subset of short,jfk,long")
    ap.add_argument("--host-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for whisper-host (repeatable), e.g. --host-arg=--max-concurrent=1")
    ap.add_argument("--precisions", default="fp32,int8", help="comma-separated subset of fp32,int8")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=2, help="requests per concurrent client")
    ap.add_argument("--no-concurrency", action="store_true")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-model memory probe (a host per model)")
    ap.add_argument("--no-whispercpp", action="store_true", help="leave whisper.cpp out (faster-whisper only)")
    ap.add_argument("--ggml-dir", default=None, help="where bench/ggml.py's files are cached "
                    "(default: $WHISPER_CACHE/ggml)")
    ap.add_argument("--out", default=str(ROOT / "bench/results.json"))
    ap.add_argument("--report", metavar="JSON", help="only print the tables of an earlier run's JSON")
    args = ap.parse_args()
    if args.report:
        print_table(json.loads(Path(args.report).read_text()))
        return
    # A TERM (or an INT, which a background job ignores) ends the run through the `finally`
    # blocks, which stop the host and the peer workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if not args.ort_lib:
        libs = sorted((ROOT / ".venv/lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.*"))
        args.ort_lib = str(libs[0]) if libs else None
    ct2 = Path(args.ct2) if args.ct2 else Path(os.environ.get("WHISPER_CACHE", Path.home() / ".cache/whisper-edge")) / "ct2/base"
    if not (ct2 / "model.bin").exists():
        sys.exit(f"{ct2} is missing: `make models MODELS=base` assembles it")

    clips_json = json.loads((FIX / "clips.json").read_text())["clips"]
    jfk_text = next(c["spoken"] for c in clips_json if c["file"] == "gen/jfk.wav")
    clips = {
        "short": (sox_cut(GEN / "jfk.wav", BENCH_GEN / "short.wav", 1.5), None),  # no WER: cut mid-word
        "jfk": (GEN / "jfk.wav", jfk_text),
        "long": (GEN / "e2e/long3m.wav", long_form_reference(jfk_text)),
    }
    clip30 = sox_cut(GEN / "e2e/long3m.wav", BENCH_GEN / "clip30.wav", 30)
    wanted = args.clips.split(",")
    # precision label, our model, faster-whisper's compute_type, whisper.cpp's ggml type
    combos = [c for c in [("fp32", "base", "float32", "f16"), ("int8", "base-int8", "int8", "q8_0")]
              if c[0] in args.precisions.split(",")]
    beams = [1, 5]
    if args.quick:
        args.runs, args.clients, args.per_client, args.no_memory = 1, 2, 1, True
        combos = [c for c in combos if c[0] == "int8"] or combos
        wanted = [c for c in wanted if c != "long"] or wanted
    args.server_models = [c[1] for c in combos]
    durations = {k: duration(clips[k][0]) for k in wanted}
    ggml_files = {}
    if not args.no_whispercpp:
        import ggml  # bench/ggml.py: the same CTranslate2 weights as a whisper.cpp file (cached)
        for c in combos:
            ggml_files[c[3]] = ggml.ensure(ct2, c[3], Path(args.ggml_dir) if args.ggml_dir else None)

    load_before = load_situation()
    print(f"load before: {load_before['loadavg']} on {load_before['cores']} cores", flush=True)
    host = Host(args)
    print(f"host up in {host.startup_s:.2f} s, RSS at rest {host.rest.get('VmRSS', 0):.0f} MiB", flush=True)

    jfk = clips["jfk"][0]
    results, peers_memory = [], []
    try:
        for label, ours_model, compute_type, ggml_type in combos:
            run_ours(host, jfk, ours_model, 1)  # warm (first ONNX Runtime runs allocate and tune)
            for beam in beams:
                # A worker per engine, precision and beam, each warmed on jfk as it starts.
                peers = {"fw": Peer("faster-whisper", ct2, beam, args.threads, jfk,
                                    BENCH_GEN / f"peer-fw-{compute_type}-b{beam}.log", compute_type=compute_type)}
                if ggml_type in ggml_files:
                    peers["wcpp"] = Peer("whisper.cpp", ggml_files[ggml_type], beam, args.threads, jfk,
                                         BENCH_GEN / f"peer-wcpp-{ggml_type}-b{beam}.log")
                try:
                    for name in wanted:
                        results.append(combination(host, peers, clips, name, durations[name], label, ours_model,
                                                   compute_type, ggml_type, beam, args.runs))
                finally:
                    for key, peer in peers.items():
                        peers_memory.append({"system": {"fw": "faster-whisper", "wcpp": "whisper.cpp"}[key],
                                             "precision": label, "beam": beam,
                                             "config": compute_type if key == "fw" else ggml_type, **peer.stop()})
                for m in peers_memory[-len(peers):]:
                    print(f"  {m['system']} {m['config']} beam {beam}: RSS loaded {m['rss_rest_mib']:.0f} MiB, "
                          f"peak {m['peak_rss_mib']:.0f} MiB", flush=True)
        conc = None
        if not args.no_concurrency:
            conc = concurrency(host, clip30, combos[-1][1], args.clients, args.per_client)
    finally:
        end = host.stop()
    memory = []
    if not args.no_memory:
        memory = [memory_alone(args, m, clips) for m in args.server_models]
        for m in memory:
            print(f"  {m['model']} alone: RSS at rest {m['rss_rest_mib']:.0f} MiB, peak {m['peak_rss_mib']:.0f} MiB",
                  flush=True)
    load_after = load_situation()

    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "cores": os.cpu_count()},
        "load_before": load_before, "load_after": load_after,
        "threads": args.threads, "runs": args.runs,
        "server": {"startup_s": host.startup_s, "rss_rest_mib": host.rest.get("VmRSS"),
                   "rss_end_mib": end.get("VmRSS"), "peak_rss_mib": end.get("VmHWM"),
                   "models": args.server_models},
        "clips": results, "concurrency": conc, "memory_alone": memory, "peers_memory": peers_memory,
        "versions": versions(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print_table(out)
    print(f"\nwrote {args.out}")


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(out: dict):
    s = out["server"]
    print(f"\nserver: start-up {s['startup_s']:.2f} s, RSS at rest {s['rss_rest_mib']:.0f} MiB, "
          f"peak RSS {s['peak_rss_mib']:.0f} MiB (models {', '.join(s['models'])}); "
          f"load {out['load_before']['loadavg'][0]:.2f} -> {out['load_after']['loadavg'][0]:.2f}; runs {out['runs']}")
    head = ("| prec | beam | clip | ours s | fw s | ours/fw | ours RTF | fw RTF | ours WER | fw WER "
            "| inst ms | enc ms/win | dec ms/step | dec KB/step (w/o cross K/V) | outside ORT |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in out["clips"]:
        print(f"| {r['precision']} | {r['beam']} | {r['clip']} ({r['audio_s']:.1f} s) | {r['ours_s']:.2f} | "
              f"{r['fw_s']:.2f} | {r['ratio']:.2f} | {r['ours_rtf']:.3f} | {r['fw_rtf']:.3f} | "
              f"{fmt(r['ours_wer'], '.3f')} | {fmt(r['fw_wer'], '.3f')} | {fmt(r.get('instantiate_ms'), '.2f')} | "
              f"{fmt(r.get('encoder_ms_per_window'), '.0f')} | {fmt(r.get('decoder_ms_per_step'), '.1f')} | "
              f"{fmt(r.get('decoder_kb_per_step'), '.0f')} ({fmt(r.get('decoder_kb_per_step_wo_cross_kv'), '.0f')}) | "
              f"{fmt(r.get('outside_ort_share'), '.1%')} |")
    print_side_by_side(out)
    c = out.get("concurrency")
    if c:
        print(f"\nconcurrency: {c['model']} beam 1, {c['clip_s']:.0f} s clip")
        print("| clients | requests | wall s | audio s / wall s | p50 s | p99 s | p99/p50 |")
        print("|---|---|---|---|---|---|---|")
        for k in ("single", "concurrent"):
            x = c[k]
            print(f"| {x['clients']} | {x['requests']} | {x['wall_s']:.1f} | {x['throughput_audio_s_per_s']:.2f} | "
                  f"{x['p50_s']:.2f} | {x['p99_s']:.2f} | {x['p99_s'] / x['p50_s']:.2f} |")
    print_targets(out)


def print_side_by_side(out: dict):
    """Time, RTF and WER of the three systems, then each one's peak RSS measured alone."""
    rows = [r for r in out["clips"] if r.get("wcpp_s") is not None]
    if rows:
        v = out.get("versions") or {}
        print(f"\nside by side: ours, faster-whisper {v.get('faster-whisper') or ''}, whisper.cpp (pywhispercpp "
              f"{v.get('pywhispercpp') or ''}; f16 beside fp32, q8_0 beside int8); WER after Whisper's English normaliser")
        head = ("| prec | beam | clip | ours s | fw s | w.cpp s | ours/w.cpp | ours RTF | fw RTF | w.cpp RTF "
                "| ours WER | fw WER | w.cpp WER |")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for r in rows:
            print(f"| {r['precision']}/{r['wcpp_type']} | {r['beam']} | {r['clip']} ({r['audio_s']:.1f} s) | "
                  f"{r['ours_s']:.2f} | {r['fw_s']:.2f} | {r['wcpp_s']:.2f} | {r['ratio_wcpp']:.2f} | "
                  f"{r['ours_rtf']:.3f} | {r['fw_rtf']:.3f} | {r['wcpp_rtf']:.3f} | {fmt(r['ours_wer'], '.3f')} | "
                  f"{fmt(r['fw_wer'], '.3f')} | {fmt(r['wcpp_wer'], '.3f')} |")
    mem = out.get("peers_memory") or []
    alone = out.get("memory_alone") or []
    if mem or alone:
        print("\npeak RSS, each system in a process of its own (MiB)")
        print("| system | model | load | RSS loaded | peak RSS |")
        print("|---|---|---|---|---|")
        for m in alone:
            print(f"| ours (whisper-host) | {m['model']} | warm-up jfk, then 184 s beam 5 + 2 x jfk during it | "
                  f"{m['rss_rest_mib']:.0f} | {m['peak_rss_mib']:.0f} |")
        s = out["server"]
        print(f"| ours (whisper-host) | {' + '.join(s['models'])} | the whole main run | {s['rss_rest_mib']:.0f} | "
              f"{s['peak_rss_mib']:.0f} |")
        clips = ", ".join(dict.fromkeys(r["clip"] for r in out["clips"]))
        for m in mem:
            print(f"| {m['system']} worker ({m['rss_before_load_mib']:.0f} MiB bare Python) | {m['config']} | "
                  f"warm-up jfk, then beam {m['beam']} on {clips} | {m['rss_rest_mib']:.0f} | {m['peak_rss_mib']:.0f} |")


def print_targets(out: dict):
    """Issue 6's targets, met or missed, from the measured numbers."""
    rows = out["clips"]
    checks = []
    for beam in (1, 5):
        r = [x for x in rows if x["precision"] == "int8" and x["beam"] == beam]
        if r:
            worst = max(r, key=lambda x: x["ratio"])
            checks.append((f"end to end <= 0.5x faster-whisper int8, beam {beam} (worst clip)",
                           worst["ratio"] <= 0.5, f"{worst['ratio']:.2f}x ({worst['clip']})"))
    r = [x for x in rows if x.get("nn_ms")]
    if r:
        worst = max(r, key=lambda x: x["server_total_ms"] / x["nn_ms"])
        f = worst["server_total_ms"] / worst["nn_ms"]
        checks.append(("server <= 1.15x the graphs alone (approx.: server total / nn_ms)", f <= 1.15,
                       f"{f:.2f}x worst ({worst['precision']} beam {worst['beam']} {worst['clip']})"))
    r = [x for x in rows if x["precision"] == "int8" and x["beam"] == 1 and x["clip"] == "long"]
    if r:
        checks.append(("long-form RTF <= 0.03, base int8 greedy", r[0]["ours_rtf"] <= 0.03, f"{r[0]['ours_rtf']:.3f}"))
    inst = [x["instantiate_ms"] for x in rows if x.get("instantiate_ms") is not None]
    if inst:
        checks.append(("instantiation <= 1 ms (max over rows)", max(inst) <= 1.0, f"{max(inst):.2f} ms"))
    s = out["server"]
    checks.append(("start-up <= 3 s", s["startup_s"] <= 3.0, f"{s['startup_s']:.2f} s"))
    for m in out.get("memory_alone") or []:
        peak_mb = m["peak_rss_mib"] * 1.048576
        checks.append((f"peak RSS <= 400 MB, serving {m['model']} alone", peak_mb <= 400,
                       f"{peak_mb:.0f} MB (at rest {m['rss_rest_mib'] * 1.048576:.0f} MB)"))
    peak_mb = s["peak_rss_mib"] * 1.048576
    checks.append(("peak RSS <= 400 MB, this run's server", peak_mb <= 400,
                   f"{peak_mb:.0f} MB ({', '.join(s['models'])} loaded)"))
    c = out.get("concurrency")
    if c:
        one, many = c["single"], c["concurrent"]
        checks.append((f"{many['clients']} clients: throughput >= single stream",
                       many["throughput_audio_s_per_s"] >= one["throughput_audio_s_per_s"],
                       f"{many['throughput_audio_s_per_s']:.2f} vs {one['throughput_audio_s_per_s']:.2f} audio s/s"))
        checks.append((f"{many['clients']} clients: p99 <= 3x p50", many["p99_s"] <= 3 * many["p50_s"],
                       f"p99/p50 = {many['p99_s'] / many['p50_s']:.2f}"))
    print("\n| target | | measured |")
    print("|---|---|---|")
    for name, ok, measured in checks:
        print(f"| {name} | {'met' if ok else 'MISSED'} | {measured} |")


if __name__ == "__main__":
    main()
