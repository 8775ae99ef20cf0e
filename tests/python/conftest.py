"""Starts the real host (real component, real models) once for the Python end-to-end tests.

Needs WHISPER_HOST_BIN, WHISPER_COMPONENT, WHISPER_MODELS_DIR and ORT_DYLIB_PATH (the Makefile
sets them, see `make test-python`). Missing pieces fail under CI=true and skip otherwise.
"""
import collections
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def _missing():
    for var in ("WHISPER_HOST_BIN", "WHISPER_COMPONENT", "WHISPER_MODELS_DIR", "ORT_DYLIB_PATH"):
        if not os.environ.get(var) or not Path(os.environ[var]).exists():
            return f"{var} is not set or does not exist"
    if not (FIXTURES / "gen" / "jfk.wav").exists():
        return "fixtures are missing (make fixtures)"
    return None


def start_host(extra_env=None, extra_args=(), wait_for="/ready", read_stderr=False, tls=None):
    """Starts a host on a free port and waits until `wait_for` answers 200 (`/health` answers as
    soon as it listens, `/ready` once the component and models are loaded). Its stderr is read
    all along into `proc.log` (the last 2000 lines), so the host never blocks on a full pipe;
    with `read_stderr=True` the caller reads `proc.stderr` itself instead. `tls`: an
    `ssl.SSLContext` trusting the host's certificate (the host was given --tls-cert/--tls-key);
    the base URL is then https."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    addr = f"127.0.0.1:{port.getsockname()[1]}"
    port.close()
    env = dict(os.environ, **(extra_env or {}))
    proc = subprocess.Popen(
        [os.environ["WHISPER_HOST_BIN"], "--listen", addr, "--component", os.environ["WHISPER_COMPONENT"],
         "--models", os.environ["WHISPER_MODELS_DIR"], "--model", "base", "--model", "tiny.en", "--model", "vad",
         "--model", "speaker", *extra_args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.log = collections.deque(maxlen=2000)
    if not read_stderr:
        def drain():
            for line in proc.stderr:
                proc.log.append(line.decode(errors="replace"))
        threading.Thread(target=drain, daemon=True).start()
    base = f"{'https' if tls else 'http'}://{addr}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            time.sleep(0.2)
            tail = "".join(proc.log) if not read_stderr else proc.stderr.read().decode(errors="replace")
            raise RuntimeError(f"host exited: {tail[-2000:]}")
        try:
            with urllib.request.urlopen(base + wait_for, timeout=2, context=tls) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"host did not answer {wait_for} with 200 in 120 s")


@pytest.fixture(scope="session")
def host():
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    proc, base = start_host()
    yield base
    proc.kill()
    proc.wait()


@pytest.fixture
def host_factory():
    """Starts hosts of the test's own — `make(*host_args, env=None)` returns (proc, base) — and
    kills them when the test ends."""
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    started = []

    def make(*args, env=None):
        proc, base = start_host(extra_env=env, extra_args=list(args))
        started.append(proc)
        return proc, base

    yield make
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def fixture_path():
    return lambda rel: FIXTURES / rel
