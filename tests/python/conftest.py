"""Starts the real host (real component, real models) once for the Python end-to-end tests.

Needs WHISPER_HOST_BIN, WHISPER_COMPONENT, WHISPER_MODELS_DIR and ORT_DYLIB_PATH (the Makefile
sets them, see `make test-python`). Missing pieces fail under CI=true and skip otherwise.
"""
import os
import socket
import subprocess
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


def start_host(extra_env=None, extra_args=()):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    addr = f"127.0.0.1:{port.getsockname()[1]}"
    port.close()
    env = dict(os.environ, **(extra_env or {}))
    proc = subprocess.Popen(
        [os.environ["WHISPER_HOST_BIN"], "--listen", addr, "--component", os.environ["WHISPER_COMPONENT"],
         "--models", os.environ["WHISPER_MODELS_DIR"], "--model", "base", "--model", "tiny.en", *extra_args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://{addr}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"host exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            # /health answers at once; /ready once the component and models are loaded.
            with urllib.request.urlopen(base + "/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("host was not ready (GET /ready) in 120 s")


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
def fixture_path():
    return lambda rel: FIXTURES / rel
