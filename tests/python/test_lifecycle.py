"""Graceful shutdown and cancellation, end to end through the real host (issue 15).

- SIGTERM: the listener closes, the running and the queued request both get their 200 with the
  right words, the host exits 0.
- The grace period running out, or a second signal: what still runs is stopped with a 503
  `shutting_down`, the host says why and exits 1.
- A client that disconnects: its guest stops at the next compute, the slot frees at once for
  the next request, the log says status 499 and /metrics counts it — also for a client that
  disconnects while queued.

Each test starts its own host (`--max-concurrent 1`), since each ends it.
"""
import http.client
import json
import re
import signal
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import FIXTURES
from test_metrics import multipart, request, scrape, value

ROUTE = "/v1/audio/transcriptions"
JFK = FIXTURES / "gen/jfk.wav"
LONG = FIXTURES / "gen/e2e/long3m.wav"
JFK_WORDS = "ask not what your country can do for you"


@pytest.fixture
def make_host(host_factory):
    if not LONG.exists():
        pytest.fail(f"{LONG} is missing (make fixtures)")
    return lambda *args: host_factory("--max-concurrent", "1", *args)


def long_request(repeat=1, beam=1):
    """The seed API with the 184 s long form `repeat` times: one request that runs for a while."""
    fields = {"model": "base", "beam_size": str(beam)}
    boundary = "lifecycle-boundary-9d2e"
    out = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for i in range(repeat):
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="long{i}.wav"\r\n'
                   f"Content-Type: audio/wav\r\n\r\n".encode())
        out.append(LONG.read_bytes() + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def in_background(fn):
    result = {}

    def run():
        try:
            result["r"] = fn()
        except Exception as e:  # noqa: BLE001 - the test asserts on it
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def wait_metrics(base, deadline_s=60, **want):
    """Until every gauge in `want` (e.g. whisper_requests_in_flight=1) has its value."""
    deadline = time.time() + deadline_s
    while True:
        m = scrape(base)
        if all(value(m, name) == v for name, v in want.items()):
            return m
        assert time.time() < deadline, f"metrics never reached {want}: { {n: value(m, n) for n in want} }"
        time.sleep(0.02)


def connection_refused(base, within_s=3.0):
    """True once a new TCP connection to the host is refused."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    deadline = time.time() + within_s
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)
    return False


def log_text(proc):
    return "".join(proc.log)


def test_sigterm_finishes_running_and_queued_requests(make_host):
    proc, base = make_host("--shutdown-grace", "120")
    body, ctype = long_request()
    running, long_result = in_background(lambda: request(base, "/", "POST", body, ctype))
    wait_metrics(base, whisper_requests_in_flight=1)
    jfk_body, jfk_type = multipart({"model": "base"}, {"file": JFK})
    queued, jfk_result = in_background(lambda: request(base, ROUTE, "POST", jfk_body, jfk_type))
    wait_metrics(base, whisper_requests_in_flight=1, whisper_queue_depth=1)

    proc.send_signal(signal.SIGTERM)
    assert connection_refused(base), "the listener stayed open after SIGTERM"
    running.join(120)
    queued.join(120)
    status, _, reply = long_result["r"]
    assert status == 200, reply
    transcript = json.loads(reply)["results"][0]["transcript"].lower()
    assert JFK_WORDS in transcript and len(transcript.split()) > 200
    status, _, reply = jfk_result["r"]
    assert status == 200, reply
    assert JFK_WORDS in json.loads(reply)["text"].lower()
    assert proc.wait(timeout=30) == 0
    time.sleep(0.2)
    assert "every admitted request finished" in log_text(proc)


def test_grace_period_over_stops_what_still_runs(make_host):
    proc, base = make_host("--shutdown-grace", "1")
    body, ctype = long_request(repeat=3, beam=5)
    running, result = in_background(lambda: request(base, "/", "POST", body, ctype))
    wait_metrics(base, whisper_requests_in_flight=1)
    signalled = time.time()
    proc.send_signal(signal.SIGTERM)
    running.join(60)
    status, headers, reply = result["r"]
    stopped_after = time.time() - signalled
    assert status == 503, reply
    assert json.loads(reply)["error"]["code"] == "shutting_down"
    assert headers["Retry-After"]
    # Stopped at the end of the 1 s grace, not when the request would have ended.
    assert stopped_after < 10, stopped_after
    assert proc.wait(timeout=30) == 1
    time.sleep(0.2)
    log = log_text(proc)
    assert "the grace period is over" in log and "unfinished" in log


def test_second_signal_stops_what_still_runs(make_host):
    proc, base = make_host("--shutdown-grace", "300")
    body, ctype = long_request(repeat=3, beam=5)
    running, result = in_background(lambda: request(base, "/", "POST", body, ctype))
    wait_metrics(base, whisper_requests_in_flight=1)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None, "the host exited at the first signal with a request running"
    proc.send_signal(signal.SIGTERM)
    running.join(60)
    status, _, reply = result["r"]
    assert status == 503 and json.loads(reply)["error"]["code"] == "shutting_down", reply
    assert proc.wait(timeout=30) == 1
    time.sleep(0.2)
    assert "a second signal came" in log_text(proc)


def send_and_abandon(base, body, ctype, path="/"):
    """Sends a whole request, then returns the open connection (to close without reading)."""
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc, timeout=60)
    conn.request("POST", path, body=body, headers={"Content-Type": ctype})
    return conn


def queue_ms(headers):
    match = re.search(r"queue;dur=([0-9.]+)", headers["Server-Timing"])
    assert match, headers["Server-Timing"]
    return float(match.group(1))


def test_client_disconnect_frees_the_slot(make_host):
    proc, base = make_host()
    body, ctype = long_request(repeat=3, beam=5)
    jfk_body, jfk_type = multipart({"model": "base"}, {"file": JFK})

    # Running: the client gives up after 1 s.
    gone = send_and_abandon(base, body, ctype)
    wait_metrics(base, whisper_requests_in_flight=1)
    time.sleep(1)
    # Queued behind it: this client gives up too, before its request ever runs.
    queued_gone = send_and_abandon(base, jfk_body, jfk_type, ROUTE)
    wait_metrics(base, whisper_requests_in_flight=1, whisper_queue_depth=1)
    queued_gone.close()
    wait_metrics(base, whisper_queue_depth=0)
    gone.close()
    closed = time.time()

    # The next request gets the slot within a second of the disconnect, and the right words.
    status, headers, reply = request(base, ROUTE, "POST", jfk_body, jfk_type)
    waited = time.time() - closed
    assert status == 200, reply
    assert JFK_WORDS in json.loads(reply)["text"].lower()
    assert queue_ms(headers) < 1000, headers["Server-Timing"]
    print(f"next request queued {queue_ms(headers):.0f} ms after the disconnect, answered after {waited:.2f} s")

    m = wait_metrics(base, whisper_requests_in_flight=0)
    assert value(m, "whisper_cancelled_total", reason="client_gone") == 2
    assert value(m, "whisper_cancelled_total", reason="shutdown") == 0
    time.sleep(0.2)
    log = log_text(proc)
    assert "the client closed the connection before its request ran" in log
    assert "cancelled: the client closed the connection; its guest was stopped" in log
    assert re.search(r"status=499", log), log[-2000:]
    # The host is healthy: a normal request after both still works.
    status, _, reply = request(base, ROUTE, "POST", jfk_body, jfk_type)
    assert status == 200 and JFK_WORDS in json.loads(reply)["text"].lower()
