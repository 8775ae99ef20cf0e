"""The host's operator endpoints: /metrics (parsed with prometheus_client's own parser after
known traffic), /health and /ready (loading, ready; a shutdown closes the listener), and JSON logs on stderr.

One host of our own (not the shared session host): `--max-concurrent 1 --max-queue 0` so a
second request while one runs is a 503, a small `--max-body` for a 413 and a short
`--read-timeout` for a 408, `--log-format json` for the log checks.
"""
import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import FIXTURES, _missing, start_host

ROUTE = "/v1/audio/transcriptions"
MAX_BODY = 2 * 1024 * 1024


def multipart(fields, files):
    boundary = "metrics-test-boundary-4f1c"
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
                   f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.append(path.read_bytes() + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def request(base, path, method="GET", body=None, content_type=None):
    """(status, headers, body bytes); HTTP errors are answers too."""
    req = urllib.request.Request(base + path, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def transcribe(base, path):
    body, ctype = multipart({"model": "base", "beam_size": "1"}, {"file": path})
    return request(base, ROUTE, "POST", body, ctype)


def scrape(base):
    status, headers, body = request(base, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def wait_idle(base):
    """Until no request holds the one slot: it is freed when the guest call returns, a moment
    after the response went out (with --max-queue 0 a request then would be a 503)."""
    deadline = time.time() + 30
    while True:
        m = scrape(base)
        if value(m, "whisper_requests_in_flight") == 0 and value(m, "whisper_queue_depth") == 0:
            return
        assert time.time() < deadline, "the slot was never freed"
        time.sleep(0.02)


class Host:
    def __init__(self):
        # Returns at the first /health 200, to catch the host while it loads.
        self.proc, self.base = start_host(extra_args=[
            "--log-format", "json", "--max-concurrent", "1", "--max-queue", "0",
            "--max-body", str(MAX_BODY), "--read-timeout", "2"], wait_for="/health", read_stderr=True)
        self.lines = []
        # Read stderr all along (the host must never block on a full pipe).
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.addr = urllib.parse.urlsplit(self.base).netloc

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))


@pytest.fixture(scope="module")
def served():
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    host = Host()
    # start_host returned at the first /health 200: the listener is up, the models may not be.
    status, headers, body = request(host.base, "/ready")
    host.loading_seen = status == 503
    if host.loading_seen:
        assert json.loads(body) == {"status": "loading"}
        assert int(headers["Retry-After"]) > 0
        # Another route while loading: 503 JSON `loading` with Retry-After, no guest involved.
        status, headers, body = request(host.base, "/v1/models")
        host.loading_rejected = status == 503
        if status == 503:
            assert json.loads(body)["error"]["code"] == "loading"
            assert int(headers["Retry-After"]) > 0
    else:
        host.loading_rejected = False
    print(f"loading seen by /ready: {host.loading_seen}, a request rejected while loading: {host.loading_rejected}")
    deadline = time.time() + 120
    while request(host.base, "/ready")[0] != 200:
        assert time.time() < deadline, "/ready did not turn 200 in 120 s"
        assert host.proc.poll() is None, "".join(host.lines[-20:])
        time.sleep(0.1)
    yield host
    if host.proc.poll() is None:
        host.proc.kill()
        host.proc.wait()


def test_health_and_ready(served):
    status, _, body = request(served.base, "/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = request(served.base, "/ready")
    assert (status, json.loads(body)) == (200, {"status": "ready"})


def test_metrics_after_known_traffic(served):
    base = served.base
    jfk = FIXTURES / "gen/jfk.wav"

    status, headers, _ = transcribe(base, jfk)
    assert status == 200
    assert headers["x-route"] == ROUTE and float(headers["x-audio-duration"]) == pytest.approx(11.0, abs=0.01)

    wait_idle(base)
    # A second transcription; while it runs, the only slot is taken and the queue is 0: 503.
    result = {}
    running = threading.Thread(target=lambda: result.setdefault("r", transcribe(base, jfk)))
    running.start()
    deadline = time.time() + 60
    while value(scrape(base), "whisper_requests_in_flight") != 1:
        assert time.time() < deadline and running.is_alive(), "never saw the transcription in flight"
        time.sleep(0.02)
    status, headers, body = transcribe(base, jfk)
    assert status == 503 and json.loads(body)["error"]["code"] == "overloaded" and headers["Retry-After"]
    running.join()
    assert result["r"][0] == 200
    wait_idle(base)

    # 415 (not audio the component decodes), 404 (no route).
    unsupported = FIXTURES / "gen/e2e/jfk.wma"
    if not unsupported.exists():
        unsupported = FIXTURES / "gen/e2e/notes.txt"
    assert transcribe(base, unsupported)[0] == 415
    wait_idle(base)
    status, headers, _ = request(base, "/no/such/route")
    assert status == 404 and headers["x-route"] == "unmatched"
    wait_idle(base)

    # 413 by Content-Length (the host answers before reading the body).
    conn = http.client.HTTPConnection(served.addr, timeout=30)
    conn.putrequest("POST", ROUTE)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(MAX_BODY + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()

    # 408: a body that stops arriving for longer than --read-timeout.
    conn = http.client.HTTPConnection(served.addr, timeout=30)
    conn.putrequest("POST", ROUTE)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", "1000")
    conn.endheaders()
    conn.send(b"x" * 10)
    assert conn.getresponse().status == 408
    conn.close()

    m = scrape(base)
    loading = 1 if served.loading_rejected else 0
    for status, n in {"200": 2, "415": 1, "413": 1, "503": 1, "408": 1}.items():
        assert value(m, "whisper_requests_total", route=ROUTE, status=status) == n, status
    assert value(m, "whisper_requests_total", route="unmatched", status="404") == 1
    assert value(m, "whisper_requests_total", route="/ready", status="200") >= 1
    assert value(m, "whisper_requests_total", route="/health", status="200") >= 1
    assert value(m, "whisper_request_duration_seconds_count", route=ROUTE) == 6
    assert value(m, "whisper_request_duration_seconds_count", route="unmatched") == 1
    # Every request that ran the guest waited for a slot (2 transcriptions, the 415, the 404).
    assert value(m, "whisper_queue_wait_seconds_count") == 4
    assert value(m, "whisper_audio_seconds_total") == pytest.approx(22.0, abs=0.05)
    assert value(m, "whisper_real_time_factor_count") == 2
    assert 0 < value(m, "whisper_real_time_factor_sum") < 2 * 5
    assert value(m, "whisper_requests_in_flight") == 0
    assert value(m, "whisper_queue_depth") == 0
    assert value(m, "whisper_ready") == 1
    for reason, n in {"busy": 1, "too_large": 1, "stalled": 1, "loading": loading, "bad_request": 0}.items():
        assert value(m, "whisper_rejections_total", reason=reason) == n, reason
    for kind in ("trap", "timeout", "memory_limit", "instantiate", "error_response"):
        assert value(m, "whisper_guest_failures_total", kind=kind) == 0, kind
    for graph in ("base/encoder", "base/decoder"):
        assert value(m, "whisper_nn_compute_seconds_total", graph=graph) > 0, graph
        assert value(m, "whisper_nn_computes_total", graph=graph) > 0, graph
    # Loaded but never used.
    assert value(m, "whisper_nn_compute_seconds_total", graph="tiny.en/encoder") == 0
    for model in ("base", "tiny.en"):
        for graph in ("encoder", "decoder", "meta"):
            assert value(m, "whisper_model_load_seconds", graph=f"{model}/{graph}") > 0
    build = [labels for (name, labels) in m if name == "whisper_build_info"]
    assert len(build) == 1
    labels = dict(build[0])
    assert labels["backend"] == "onnx" and labels["wasmtime"] == "48.0.8" and labels["version"]
    assert value(m, "whisper_build_info", **labels) == 1
    # No label comes from a raw request path.
    routes = {dict(labels).get("route") for (name, labels) in m if name == "whisper_requests_total"}
    assert "/no/such/route" not in routes
    # The scrapes count too, after they are rendered.
    assert value(scrape(base), "whisper_requests_total", route="/metrics", status="200") >= 2


def test_draining_then_json_logs(served):
    """SIGTERM with a request running: the listener closes (new connections are refused), an
    idle keep-alive connection is closed, `whisper_ready` was 1 before; the running request
    still finishes, the host exits 0; every stderr line is JSON without ANSI escapes."""
    base = served.base
    probe = http.client.HTTPConnection(served.addr, timeout=30)
    probe.request("GET", "/health")
    assert probe.getresponse().read() == b'{"status":"ok"}'
    wait_idle(base)
    assert value(scrape(base), "whisper_ready") == 1
    result = {}
    running = threading.Thread(target=lambda: result.setdefault("r", transcribe(base, FIXTURES / "gen/jfk.wav")))
    running.start()
    deadline = time.time() + 60
    while value(scrape(base), "whisper_requests_in_flight") != 1:
        assert time.time() < deadline and running.is_alive(), "never saw the transcription in flight"
        time.sleep(0.02)
    served.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # The idle keep-alive connection was closed by the host; a new one is refused.
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        probe.request("GET", "/ready")
        probe.getresponse()
    with pytest.raises(ConnectionRefusedError):
        host, port = served.addr.split(":")
        socket.create_connection((host, int(port)), timeout=2)
    running.join()
    assert result["r"][0] == 200
    assert served.proc.wait(timeout=60) == 0
    served.reader.join(timeout=10)

    lines = [l for l in served.lines if l.strip()]
    assert lines, "no log lines"
    events = []
    for line in lines:
        assert "\x1b[" not in line, line
        events.append(json.loads(line))
    messages = [e.get("message") for e in events]
    assert "ready" in messages and "request" in messages
    request_log = next(e for e in events if e.get("message") == "request")
    assert request_log["level"] == "INFO" and "status" in request_log and "total_ms" in request_log
