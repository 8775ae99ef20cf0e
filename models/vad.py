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
from pathlib import Path

import onnx

from .sources import build_wheel_graph

NAME = "vad"
GRAPH = "silero"
PACKAGE = "silero-vad==6.2.3"
MEMBER = "silero_vad/data/silero_vad_16k_sequence.onnx"
RENAMES = {"h": "past_h", "c": "past_c", "hn": "present_h", "cn": "present_c"}


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


def build(out: Path, pins: dict, cache: Path, force: bool = False) -> Path:
    return build_wheel_graph(out, pins, cache, name=NAME, graph=GRAPH, package=PACKAGE, member=MEMBER,
                             what="Silero VAD", converter=converter_id(), force=force,
                             make=lambda raw: rename(onnx.load(str(raw)), RENAMES))
