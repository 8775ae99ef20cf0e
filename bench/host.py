"""Starts our host for a benchmark: `whisper-host` on 127.0.0.1:<port> with `models`, the build's
binary and component (or WHISPER_HOST_BIN / WHISPER_COMPONENT / MODELS_DIR), ONNX Runtime from
.venv; returns once `/ready` answers 200."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def start_host(port: int, models: list[str], extra: list[str] | None = None) -> subprocess.Popen:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    ort = next((REPO / ".venv/lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))
    cmd = [os.environ.get("WHISPER_HOST_BIN", str(target / "release/whisper-host")), "--listen", f"127.0.0.1:{port}",
           "--component", os.environ.get("WHISPER_COMPONENT", str(target / "wasm32-wasip2/release/whisper_component.wasm")),
           "--models", os.environ.get("MODELS_DIR", str(REPO / "models/build"))]
    cmd += [a for m in models for a in ("--model", m)] + (extra or [])
    proc = subprocess.Popen(cmd, env=dict(os.environ, ORT_DYLIB_PATH=str(ort)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if requests.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("the host did not become ready")
