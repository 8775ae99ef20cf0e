"""Resemblyzer's speaker encoder from the PyPI wheel `resemblyzer` (Apache-2.0) → `<out>/speaker/resemblyzer.onnx`.

    .venv/bin/python -m models.convert speaker --out models/build

The wheel ships `resemblyzer/pretrained.pt`, a GE2E speaker encoder (Wan et al. 2018) trained by
Resemblyzer's author. Its network (resemblyzer 0.1.4 `voice_encoder.py`, `hparams.py`):

    nn.LSTM(40, 256, num_layers=3, batch_first=True)   # input: 40-band mel power spectrogram
    h = final hidden state of the last layer            # [B, 256]
    e = relu(Linear(256, 256)(h)); e / ||e||₂           # [B, 256], L2-normalised

The checkpoint is a legacy `torch.save` file (pickles + raw storages) read by `models/torchfile.py`
with a restricted unpickler: no torch. The LSTM maps onto three ONNX `LSTM` nodes; PyTorch orders
the gates i, f, g, o and ONNX i, o, f, c, so the weight rows are reordered. The GE2E similarity
scale (`similarity_weight`, `similarity_bias`) is training-only and dropped.

Graph `speaker/resemblyzer` (models/README.md): input `mels` f32 [B, T, 40] (B partial utterances of T
frames; Resemblyzer uses T = 160, 1.6 s), output `embeddings` f32 [B, 256].
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import torchfile
from .sources import ConvertError, build_wheel_graph, extract_member

NAME = "speaker"
GRAPH = "resemblyzer"  # not "encoder": the host takes a model with an `encoder` graph for a Whisper model
PACKAGE = "Resemblyzer==0.1.4"  # as the wheel file is named (the cache glob is case-sensitive)
MEMBER = "resemblyzer/pretrained.pt"
N_MELS, HIDDEN, LAYERS, EMBED = 40, 256, 3, 256  # hparams.py: mel_n_channels, model_hidden_size, …


def converter_id() -> str:
    h = hashlib.sha256()
    for f in ("speaker.py", "torchfile.py"):
        h.update((Path(__file__).parent / f).read_bytes())
    return "1+" + h.hexdigest()[:12]


def read_weights(pt: Path) -> dict[str, np.ndarray]:
    try:
        state = torchfile.load(pt)["model_state"]
    except (torchfile.CheckpointError, KeyError, OSError) as e:
        raise ConvertError(f"cannot read {pt}: {e}") from None
    for l in range(LAYERS):
        n_in = N_MELS if l == 0 else HIDDEN
        if state[f"lstm.weight_ih_l{l}"].shape != (4 * HIDDEN, n_in):
            raise ConvertError(f"unexpected LSTM layer {l} shape {state[f'lstm.weight_ih_l{l}'].shape}")
    if state["linear.weight"].shape != (EMBED, HIDDEN):
        raise ConvertError(f"unexpected linear shape {state['linear.weight'].shape}")
    return {k: v.astype(np.float32) for k, v in state.items()}


def _ifgo_to_iofc(w: np.ndarray) -> np.ndarray:
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build_graph(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    # [B, T, 40] → [T, B, 40] (the LSTM op's default layout)
    nodes.append(helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2]))
    x = "x0"
    axes1 = const("axes1", np.array([1], np.int64))
    for l in range(LAYERS):
        W = const(f"W{l}", _ifgo_to_iofc(w[f"lstm.weight_ih_l{l}"])[None])
        R = const(f"R{l}", _ifgo_to_iofc(w[f"lstm.weight_hh_l{l}"])[None])
        B = const(f"B{l}", np.concatenate([_ifgo_to_iofc(w[f"lstm.bias_ih_l{l}"]),
                                           _ifgo_to_iofc(w[f"lstm.bias_hh_l{l}"])])[None])
        nodes.append(helper.make_node("LSTM", [x, W, R, B], [f"y{l}", f"h{l}", f"c{l}"], hidden_size=HIDDEN))
        if l + 1 < LAYERS:  # Y [T, 1, B, H] → [T, B, H]
            nodes.append(helper.make_node("Squeeze", [f"y{l}", axes1], [f"x{l + 1}"]))
            x = f"x{l + 1}"
    axes0 = const("axes0", np.array([0], np.int64))
    last = LAYERS - 1
    nodes += [
        helper.make_node("Squeeze", [f"h{last}", axes0], ["hidden"]),  # [1, B, H] → [B, H]
        helper.make_node("Gemm", ["hidden", const("linear_w", w["linear.weight"]), const("linear_b", w["linear.bias"])],
                         ["proj"], transB=1),
        helper.make_node("Relu", ["proj"], ["raw"]),
        helper.make_node("ReduceL2", ["raw"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", const("eps", np.array(1e-12, np.float32))], ["norm_safe"]),
        helper.make_node("Div", ["raw", "norm_safe"], ["embeddings"]),
    ]
    graph = helper.make_graph(
        nodes, "resemblyzer_speaker_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["B", "T", N_MELS])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["B", EMBED])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="whisper-edge")
    model.ir_version = 8
    return model


def reference_forward(w: dict[str, np.ndarray], mels: np.ndarray) -> np.ndarray:
    """The same network in plain numpy, in PyTorch's own gate order (the test's reference)."""
    sig = lambda z: 1 / (1 + np.exp(-z))
    x = mels.astype(np.float64)
    b, t, _ = x.shape
    for l in range(LAYERS):
        wi, wh = w[f"lstm.weight_ih_l{l}"], w[f"lstm.weight_hh_l{l}"]
        bias = w[f"lstm.bias_ih_l{l}"] + w[f"lstm.bias_hh_l{l}"]
        h, c, ys = np.zeros((b, HIDDEN)), np.zeros((b, HIDDEN)), []
        for s in range(t):
            z = x[:, s] @ wi.T + h @ wh.T + bias
            i, f, g, o = np.split(z, 4, axis=1)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            ys.append(h)
        x = np.stack(ys, axis=1)
    e = np.maximum(h @ w["linear.weight"].T + w["linear.bias"], 0)
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def extract_checkpoint(wheel: Path, pin: dict, dest: Path) -> Path:
    return extract_member(wheel, MEMBER, pin, dest)


def build(out: Path, pins: dict, cache: Path, force: bool = False) -> Path:
    return build_wheel_graph(out, pins, cache, name=NAME, graph=GRAPH, package=PACKAGE, member=MEMBER,
                             what="Resemblyzer speaker encoder", converter=converter_id(), force=force,
                             make=lambda pt: build_graph(read_weights(pt)))
