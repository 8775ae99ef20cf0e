"""Silero VAD from the PyPI wheel `silero-vad` (MIT) → `<out>/vad/silero.onnx`.

    .venv/bin/python -m models.convert vad --out models/build

The wheel ships several exports of the same network. We take `silero_vad_16k_sequence.onnx`,
which scores a whole block of 32 ms frames in one call (an LSTM over the block) instead of one
frame per call as `silero_vad.onnx` does; its probabilities equal the streaming graph's
(`models/tests/test_vad.py` checks it). Through wasi-nn one call per block instead of one per
frame is what makes VAD cheap (measured: models/README.md).

Only the state's names change, to the host's execution-context convention (host/src/lib.rs):
inputs `h`, `c` become `past_h`, `past_c` and outputs `hn`, `cn` become `present_h`,
`present_c`, so the LSTM state stays in the host from one block to the next and the guest
sends frames and reads probabilities only. The weights are untouched.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import onnx

from .sources import ConvertError, fetch_wheel, log, sha256_file

NAME = "vad"
GRAPH = "silero"
PACKAGE = "silero-vad==6.2.3"
MEMBER = "silero_vad/data/silero_vad_16k_sequence.onnx"
RENAMES = {"h": "past_h", "c": "past_c", "hn": "present_h", "cn": "present_c"}
STAMP = "stamp.json"


def converter_id() -> str:
    return "1+" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def rename(model: onnx.ModelProto, renames: dict[str, str]) -> onnx.ModelProto:
    """Renames graph inputs/outputs (and every node edge that uses them)."""
    g = model.graph
    for v in list(g.input) + list(g.output):
        v.name = renames.get(v.name, v.name)
    for node in g.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    return model


def _up_to_date(dest: Path, want: dict) -> bool:
    try:
        stamp = json.loads((dest / STAMP).read_text())
    except (OSError, ValueError):
        return False
    graph = dest / f"{GRAPH}.onnx"
    return (stamp.get("converter"), stamp.get("pins")) == (want["converter"], want["pins"]) and graph.is_file() \
        and graph.stat().st_size == stamp.get("bytes")


def build(out: Path, pins: dict, cache: Path, force: bool = False) -> Path:
    pin = pins.get(NAME)
    if not pin:
        raise ConvertError(f"pins file has no entry for {NAME!r}")
    dest = out / NAME
    want = {"converter": converter_id(), "pins": pin}
    if not force and _up_to_date(dest, want):
        log(f"{NAME}: up to date")
        return dest
    log(f"{NAME}: Silero VAD from {PACKAGE} -> {dest}")
    wheel = fetch_wheel(PACKAGE, pin["wheels"][PACKAGE], cache / "wheels")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}.tmp-", dir=out))
    os.chmod(tmp, 0o755)
    try:
        raw = tmp / "raw.onnx"
        try:
            with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as r, open(raw, "wb") as w:
                shutil.copyfileobj(r, w)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise ConvertError(f"cannot read {MEMBER} from {wheel.name}: {e}") from None
        want_sha = pin["files"][Path(MEMBER).name]
        if sha256_file(raw) != want_sha:
            raise ConvertError(f"checksum mismatch for {MEMBER}: pinned {want_sha}")
        graph = tmp / f"{GRAPH}.onnx"
        onnx.save_model(rename(onnx.load(str(raw)), RENAMES), str(graph))
        onnx.checker.check_model(str(graph))
        raw.unlink()
        stamp = dict(want, model=NAME, member=MEMBER, bytes=graph.stat().st_size)
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"{NAME}: done ({GRAPH}.onnx {(dest / f'{GRAPH}.onnx').stat().st_size / 1e6:.1f} MB)")
    return dest
