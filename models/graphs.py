"""Writes the Whisper encoder, decoder and meta graphs as ONNX, straight from numpy weights.

Shapes and names follow models/README.md (the contract). Architecture (openai/whisper model.py):

encoder: mel [B, n_mels, 3000]
    -> Conv1d(k3, p1) + GELU -> Conv1d(k3, s2, p1) + GELU -> [B, 1500, D] + sinusoidal positions
    -> n_audio_layer pre-LN blocks (self-attention, MLP with GELU) -> LayerNorm (ln_post)
    -> for every decoder layer i: cross K = x Wk (no bias), V = x Wv + bv, split into heads
       => cross_k<i> [B, H, dh, 1500] (transposed), cross_v<i> [B, H, 1500, dh]
decoder: token embedding + learned positions P..P+T-1 (P read from the shape of `past_k0`)
    -> n_text_layer pre-LN blocks (causal self-attention over [past ; new], cross-attention, MLP)
    -> LayerNorm -> logits of the last position = x_last @ embedding^T (tied weights)

Attention scaling: Whisper multiplies q and k each by dh^-0.25; here q alone is multiplied by
dh^-0.5 (folded into the query weights and bias), which is the same product. GELU is exact (erf).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .ct2 import Ct2Model

OPSET = 17
LN_EPS = 1e-5
MASK_VALUE = -1e9  # added to masked self-attention scores (finite: safe on every backend)
CT2_GELU = 3  # CTranslate2 ActivationType::GELU (erf)


# ----------------------------------------------------------------------------- weights


@dataclass
class Linear:
    w: np.ndarray  # [in, out] (transposed from CTranslate2's [out, in], ready for MatMul)
    b: np.ndarray | None  # [out]


@dataclass
class Norm:
    gamma: np.ndarray
    beta: np.ndarray


@dataclass
class EncoderLayer:
    attn_ln: Norm
    qkv: Linear  # fused, [D, 3D]; query part pre-scaled by dh^-0.5
    out: Linear
    mlp_ln: Norm
    fc1: Linear
    fc2: Linear


@dataclass
class DecoderLayer:
    attn_ln: Norm
    qkv: Linear  # fused self-attention projection, query pre-scaled
    out: Linear
    cross_ln: Norm
    cross_q: Linear  # pre-scaled
    cross_k: Linear  # no bias, used by the encoder graph
    cross_v: Linear  # used by the encoder graph
    cross_out: Linear
    mlp_ln: Norm
    fc1: Linear
    fc2: Linear


@dataclass
class Whisper:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_vocab: int
    conv1_w: np.ndarray  # [D, n_mels, 3]
    conv1_b: np.ndarray
    conv2_w: np.ndarray  # [D, D, 3]
    conv2_b: np.ndarray
    enc_pos: np.ndarray  # [1500, D] sinusoidal
    enc_layers: list[EncoderLayer]
    ln_post: Norm
    tok_emb: np.ndarray  # [V, D]
    dec_pos: np.ndarray  # [448, D]
    dec_layers: list[DecoderLayer]
    ln_final: Norm
    proj: np.ndarray | None  # [V, D] output projection when not tied to tok_emb

    @property
    def n_audio_layer(self) -> int:
        return len(self.enc_layers)

    @property
    def n_text_layer(self) -> int:
        return len(self.dec_layers)


def _linear(m: Ct2Model, prefix: str, rows: slice | None = None, scale: float = 1.0, bias: bool = True) -> Linear:
    w = m.f32(prefix + "/weight")
    b = m.f32(prefix + "/bias") if bias and (prefix + "/bias") in m else None
    if rows is not None:
        w = w[rows]
        b = b[rows] if b is not None else None
    w = np.ascontiguousarray(w.T)
    if scale != 1.0:
        w = w * np.float32(scale)
        b = b * np.float32(scale) if b is not None else None
    return Linear(w.astype(np.float32), None if b is None else b.astype(np.float32))


def _scaled_qkv(m: Ct2Model, prefix: str, d: int, dh: int) -> Linear:
    lin = _linear(m, prefix)
    scale = np.float32(dh**-0.5)
    lin.w[:, :d] *= scale
    if lin.b is not None:
        lin.b[:d] *= scale
    return lin


def _norm(m: Ct2Model, prefix: str) -> Norm:
    return Norm(m.f32(prefix + "/gamma"), m.f32(prefix + "/beta"))


def _count_layers(m: Ct2Model, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in m:
        n += 1
    return n


def _scalar(m: Ct2Model, name: str, default=None):
    if name not in m:
        return default
    return m.raw(name).item()


def from_ct2(m: Ct2Model) -> Whisper:
    """Map CTranslate2 WhisperSpec variables to the Whisper layout, checking what we assume."""
    if m.spec != "WhisperSpec":
        raise ValueError(f"model.bin holds a {m.spec}, not a WhisperSpec")
    checks = {"decoder/pre_norm": 1, "decoder/activation": CT2_GELU, "decoder/scale_embeddings": 0,
              "decoder/alibi": 0}
    for name, want in checks.items():
        got = _scalar(m, name, want)
        if got != want:
            raise ValueError(f"unsupported model: {name} = {got}, expected {want}")
    conv1_w = m.f32("encoder/conv1/weight")
    d_audio, n_mels, _ = conv1_w.shape
    tok_emb = m.f32("decoder/embeddings/weight")
    n_vocab, d_text = tok_emb.shape
    h_audio = int(_scalar(m, "encoder/num_heads"))
    h_text = int(_scalar(m, "decoder/num_heads"))
    dh_a, dh_t = d_audio // h_audio, d_text // h_text

    enc_layers = []
    for i in range(_count_layers(m, "encoder")):
        p = f"encoder/layer_{i}"
        enc_layers.append(EncoderLayer(
            attn_ln=_norm(m, p + "/self_attention/layer_norm"),
            qkv=_scaled_qkv(m, p + "/self_attention/linear_0", d_audio, dh_a),
            out=_linear(m, p + "/self_attention/linear_1"),
            mlp_ln=_norm(m, p + "/ffn/layer_norm"),
            fc1=_linear(m, p + "/ffn/linear_0"),
            fc2=_linear(m, p + "/ffn/linear_1"),
        ))
    dec_layers = []
    for i in range(_count_layers(m, "decoder")):
        p = f"decoder/layer_{i}"
        dec_layers.append(DecoderLayer(
            attn_ln=_norm(m, p + "/self_attention/layer_norm"),
            qkv=_scaled_qkv(m, p + "/self_attention/linear_0", d_text, dh_t),
            out=_linear(m, p + "/self_attention/linear_1"),
            cross_ln=_norm(m, p + "/attention/layer_norm"),
            cross_q=_linear(m, p + "/attention/linear_0", scale=dh_t**-0.5),
            # linear_1 is the fused [K; V] projection of the encoder output; K has no bias in
            # Whisper (CTranslate2 stores zeros there), so it is dropped.
            cross_k=_linear(m, p + "/attention/linear_1", rows=slice(0, d_text), bias=False),
            cross_v=_linear(m, p + "/attention/linear_1", rows=slice(d_text, 2 * d_text)),
            cross_out=_linear(m, p + "/attention/linear_2"),
            mlp_ln=_norm(m, p + "/ffn/layer_norm"),
            fc1=_linear(m, p + "/ffn/linear_0"),
            fc2=_linear(m, p + "/ffn/linear_1"),
        ))
    k_bias = m.f32("decoder/layer_0/attention/linear_1/bias")[:d_text]
    if np.any(k_bias != 0):
        raise ValueError("cross-attention K bias is not zero; the encoder graph assumes it is")

    proj = None
    if "decoder/projection/weight" in m:
        p = m.f32("decoder/projection/weight")
        if not (p.shape == tok_emb.shape and np.array_equal(p, tok_emb)):
            proj = p
    if "decoder/projection/bias" in m and np.any(m.f32("decoder/projection/bias") != 0):
        raise ValueError("output projection has a bias; not supported")

    enc_pos = m.f32("encoder/position_encodings/encodings")
    dec_pos = m.f32("decoder/position_encodings/encodings")
    return Whisper(
        n_mels=n_mels, n_audio_ctx=enc_pos.shape[0], n_audio_state=d_audio, n_audio_head=h_audio,
        n_text_ctx=dec_pos.shape[0], n_text_state=d_text, n_text_head=h_text, n_vocab=n_vocab,
        conv1_w=conv1_w, conv1_b=m.f32("encoder/conv1/bias"),
        conv2_w=m.f32("encoder/conv2/weight"), conv2_b=m.f32("encoder/conv2/bias"),
        enc_pos=enc_pos, enc_layers=enc_layers, ln_post=_norm(m, "encoder/layer_norm"),
        tok_emb=tok_emb, dec_pos=dec_pos, dec_layers=dec_layers,
        ln_final=_norm(m, "decoder/layer_norm"), proj=proj,
    )


# ----------------------------------------------------------------------------- graph helper


class _Builder:
    """Tiny helper around onnx.helper: unique value names, initializers, common blocks."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self._consts: dict[tuple, str] = {}

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1, **attrs):
        outs = [self._name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self._name("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array if array.flags.c_contiguous else array.copy(), name))
        return name

    def i64(self, values) -> str:
        """A small int64 constant (scalar when `values` is an int)."""
        arr = np.array(values, dtype=np.int64)
        key = ("i64", arr.shape, tuple(arr.ravel().tolist()))
        if key not in self._consts:
            self._consts[key] = self.init(self._name("c_i64"), arr)
        return self._consts[key]

    def f32(self, value: float) -> str:
        key = ("f32", float(value))
        if key not in self._consts:
            self._consts[key] = self.init(self._name("c_f32"), np.array(value, dtype=np.float32))
        return self._consts[key]

    # --- blocks

    def linear(self, x: str, lin: Linear, name: str) -> str:
        y = self.op("MatMul", [x, self.init(name + ".weight", lin.w)], hint=name)
        if lin.b is not None:
            y = self.op("Add", [y, self.init(name + ".bias", lin.b)], hint=name)
        return y

    def layer_norm(self, x: str, n: Norm, name: str) -> str:
        return self.op("LayerNormalization",
                       [x, self.init(name + ".gamma", n.gamma), self.init(name + ".beta", n.beta)],
                       hint=name, axis=-1, epsilon=LN_EPS)

    def gelu(self, x: str) -> str:
        # 0.5 * x * (1 + erf(x / sqrt(2))): exact GELU; ONNX Runtime fuses it into one Gelu kernel.
        e = self.op("Erf", [self.op("Div", [x, self.f32(np.sqrt(2.0))])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [e, self.f32(1.0)])]), self.f32(0.5)], hint="gelu")

    def mlp(self, x: str, ln: Norm, fc1: Linear, fc2: Linear, name: str) -> str:
        h = self.layer_norm(x, ln, name + ".mlp_ln")
        h = self.gelu(self.linear(h, fc1, name + ".mlp.0"))
        return self.linear(h, fc2, name + ".mlp.2")

    def split_heads(self, x: str, n_head: int, dh: int, perm: list[int]) -> str:
        """[B, S, D] -> [B, S, H, dh] -> transposed by `perm` ([0,2,1,3]: [B,H,S,dh]; [0,2,3,1]: [B,H,dh,S])."""
        r = self.op("Reshape", [x, self.i64([0, 0, n_head, dh])])
        return self.op("Transpose", [r], perm=perm)

    def merge_heads(self, x: str, d: int) -> str:
        """[B, H, S, dh] -> [B, S, D]."""
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.i64([0, 0, d])])

    def attention_by_head(self, q: str, k: str, v: str, n_head: int, d: int) -> str:
        """Self-attention without mask, one head at a time: q (pre-scaled), k, v [B, S, D] -> [B, S, D].

        The largest tensor alive is one head's [B, S, S] scores (9 MB for the encoder's S = 1500)
        instead of all heads' [B, H, S, S] (72 MB for base, twice: scores and softmax), which
        ONNX Runtime would keep in its arena for the life of the server, once per concurrent run.
        """
        dh = d // n_head
        split = self.i64([dh] * n_head)
        qs = self.op("Split", [q, split], hint="q_head", n_out=n_head, axis=-1)  # each [B, S, dh]
        ks = self.op("Split", [k, split], hint="k_head", n_out=n_head, axis=-1)
        vs = self.op("Split", [v, split], hint="v_head", n_out=n_head, axis=-1)
        outs = []
        for h in range(n_head):
            kt = self.op("Transpose", [ks[h]], hint="kt_head", perm=[0, 2, 1])  # [B, dh, S]
            w = self.op("Softmax", [self.op("MatMul", [qs[h], kt], hint="scores")], hint="attn_w", axis=-1)
            outs.append(self.op("MatMul", [w, vs[h]], hint="attn_o"))  # [B, S, dh]
        return self.op("Concat", outs, hint="attn", axis=-1)

    def attention_heads(self, q: str, kt: str, vh: str, n_head: int, d: int, mask: str | None = None):
        """q [B,T,D] (pre-scaled), kt [Bk,H,dh,S], vh [Bk,H,S,dh] -> (out [B,T,D], weights [B,H,T,S])."""
        qh = self.split_heads(q, n_head, d // n_head, [0, 2, 1, 3])
        s = self.op("MatMul", [qh, kt], hint="scores")
        if mask is not None:
            s = self.op("Add", [s, mask], hint="masked")
        w = self.op("Softmax", [s], hint="attn_w", axis=-1)
        o = self.op("MatMul", [w, vh], hint="attn_o")
        return self.merge_heads(o, d), w

    def model(self, inputs, outputs, name: str, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="whisper-edge models.convert", doc_string=doc)
        m.ir_version = 8  # ONNX Runtime >= 1.14 reads IR 8 with opset 17
        return m


def _vi(name: str, dtype, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


# ----------------------------------------------------------------------------- encoder


def build_encoder(w: Whisper) -> onnx.ModelProto:
    b = _Builder()
    d = w.n_audio_state
    x = b.op("Conv", ["mel", b.init("conv1.weight", w.conv1_w), b.init("conv1.bias", w.conv1_b)],
             hint="conv1", kernel_shape=[3], pads=[1, 1], strides=[1])
    x = b.gelu(x)
    x = b.op("Conv", [x, b.init("conv2.weight", w.conv2_w), b.init("conv2.bias", w.conv2_b)],
             hint="conv2", kernel_shape=[3], pads=[1, 1], strides=[2])
    x = b.gelu(x)
    x = b.op("Transpose", [x], perm=[0, 2, 1])  # [B, 1500, D]
    x = b.op("Add", [x, b.init("positional_embedding", w.enc_pos)], hint="x")
    for i, layer in enumerate(w.enc_layers):
        n = f"encoder.blocks.{i}"
        h = b.layer_norm(x, layer.attn_ln, n + ".attn_ln")
        qkv = b.linear(h, layer.qkv, n + ".attn.qkv")
        q, k, v = b.op("Split", [qkv, b.i64([d, d, d])], n_out=3, axis=-1)
        a = b.attention_by_head(q, k, v, w.n_audio_head, d)
        x = b.op("Add", [x, b.linear(a, layer.out, n + ".attn.out")], hint="x")
        x = b.op("Add", [x, b.mlp(x, layer.mlp_ln, layer.fc1, layer.fc2, n)], hint="x")
    x = b.layer_norm(x, w.ln_post, "encoder.ln_post")

    # Cross-attention keys/values of every decoder layer, one output each, already in the layout
    # the decoder's attention products read (K transposed), so a decoder step uses them as they
    # are: no per-step slicing, splitting or transposing of these 37 MB (base).
    dh = w.n_text_state // w.n_text_head
    outputs = []
    for i, layer in enumerate(w.dec_layers):
        n = f"decoder.blocks.{i}.cross_attn"
        k = b.linear(x, layer.cross_k, n + ".key")
        v = b.linear(x, layer.cross_v, n + ".value")
        b.nodes.append(helper.make_node(
            "Transpose", [b.op("Reshape", [k, b.i64([0, 0, w.n_text_head, dh])])], [f"cross_k{i}"],
            name=f"n_cross_k{i}", perm=[0, 2, 3, 1]))
        b.nodes.append(helper.make_node(
            "Transpose", [b.op("Reshape", [v, b.i64([0, 0, w.n_text_head, dh])])], [f"cross_v{i}"],
            name=f"n_cross_v{i}", perm=[0, 2, 1, 3]))
        outputs += [_vi(f"cross_k{i}", TensorProto.FLOAT, ["B", w.n_text_head, dh, w.n_audio_ctx]),
                    _vi(f"cross_v{i}", TensorProto.FLOAT, ["B", w.n_text_head, w.n_audio_ctx, dh])]

    inputs = [_vi("mel", TensorProto.FLOAT, ["B", w.n_mels, 2 * w.n_audio_ctx])]
    return b.model(inputs, outputs, "whisper_encoder",
                   "Whisper encoder: log-mel -> per-decoder-layer cross-attention K (transposed) and V")


# ----------------------------------------------------------------------------- decoder


def build_decoder(w: Whisper, alignment_heads: list[list[int]], tied_logits: str = "gemm") -> onnx.ModelProto:
    """One decoder step with a self-attention KV cache.

    tied_logits: "gemm" computes logits with Gemm(transB=1) on the token embedding itself (no second
    copy of the [V, D] matrix); "matmul" stores a transposed copy so that dynamic int8 quantization
    (which handles MatMul, not Gemm) also quantizes the output projection.
    """
    b = _Builder()
    d, n_head = w.n_text_state, w.n_text_head
    emb = b.init("token_embedding", w.tok_emb)

    # P (cached positions) from the shape of `past_k0`, T (new tokens) from the shape of `tokens`.
    p = b.op("Gather", [b.op("Shape", ["past_k0"]), b.i64(3)], hint="P", axis=0)
    t = b.op("Gather", [b.op("Shape", ["tokens"]), b.i64(1)], hint="T", axis=0)
    p_end = b.op("Add", [p, t], hint="P_plus_T")
    positions = b.op("Range", [p, p_end, b.i64(1)], hint="positions")  # [T]
    x = b.op("Gather", [emb, "tokens"], hint="tok", axis=0)  # [B, T, D]
    pos = b.op("Gather", [b.init("positional_embedding", w.dec_pos), positions], hint="pos", axis=0)
    x = b.op("Add", [x, pos], hint="x")

    # Causal mask [T, P+T]: new token i (absolute position P+i) sees positions 0..P+i.
    rows = b.op("Unsqueeze", [positions, b.i64([1])])  # [T, 1]
    cols = b.op("Unsqueeze", [b.op("Range", [b.i64(0), p_end, b.i64(1)]), b.i64([0])])  # [1, P+T]
    mask = b.op("Where", [b.op("Greater", [cols, rows]), b.f32(MASK_VALUE), b.f32(0.0)], hint="mask")

    # Row b of the new cache continues row cache_index[b] of `past_*`. With P = 0 there is nothing
    # to continue: every row reads row 0 of the (empty, Bp >= 1) past, whatever cache_index says.
    p_pos = b.op("Cast", [b.op("Greater", [p, b.i64(0)])], hint="p_pos", to=TensorProto.INT64)
    rows_from = b.op("Mul", ["cache_index", p_pos], hint="rows_from")

    dh = d // n_head
    ba = b.op("Shape", ["cross_k0"], hint="Ba", end=1)  # [1]
    t1 = b.op("Unsqueeze", [t, b.i64([0])], hint="T1")  # [1]
    align_parts = []
    heads_by_layer: dict[int, list[int]] = {}
    alignment_heads = [(int(l), int(h)) for l, h in alignment_heads]
    for layer_i, head in alignment_heads:
        if not (0 <= layer_i < w.n_text_layer and 0 <= head < n_head):
            raise ValueError(f"alignment head {[layer_i, head]} is outside the model")
        heads_by_layer.setdefault(layer_i, []).append(head)
    for i, layer in enumerate(w.dec_layers):
        n = f"decoder.blocks.{i}"
        h = b.layer_norm(x, layer.attn_ln, n + ".attn_ln")
        qkv = b.linear(h, layer.qkv, n + ".attn.qkv")
        q, k, v = b.op("Split", [qkv, b.i64([d, d, d])], n_out=3, axis=-1)
        # The cache keeps each layer's K transposed ([B, H, dh, P]) and V as [B, H, P, dh]: the
        # attention products read them as they are, and a step appends T columns / rows.
        pk = b.op("Gather", [f"past_k{i}", rows_from], hint="past_k", axis=0)
        pv = b.op("Gather", [f"past_v{i}", rows_from], hint="past_v", axis=0)
        b.nodes.append(helper.make_node("Concat", [pk, b.split_heads(k, n_head, dh, [0, 2, 3, 1])],
                                        [f"present_k{i}"], name=f"n_present_k{i}", axis=3))
        b.nodes.append(helper.make_node("Concat", [pv, b.split_heads(v, n_head, dh, [0, 2, 1, 3])],
                                        [f"present_v{i}"], name=f"n_present_v{i}", axis=2))
        a, _ = b.attention_heads(q, f"present_k{i}", f"present_v{i}", n_head, d, mask=mask)
        x = b.op("Add", [x, b.linear(a, layer.out, n + ".attn.out")], hint="x")

        h = b.layer_norm(x, layer.cross_ln, n + ".cross_attn_ln")
        cq = b.linear(h, layer.cross_q, n + ".cross_attn.query")
        a, align = cross_attention(b, cq, i, heads_by_layer.get(i, []), n_head, d, w.n_audio_ctx, ba, t1)
        if align is not None:
            align_parts.append(align)
        x = b.op("Add", [x, b.linear(a, layer.cross_out, n + ".cross_attn.out")], hint="x")

        x = b.op("Add", [x, b.mlp(x, layer.mlp_ln, layer.fc1, layer.fc2, n)], hint="x")

    x = b.layer_norm(x, w.ln_final, "decoder.ln")
    last = b.op("Gather", [x, b.op("Sub", [t, b.i64(1)])], hint="x_last", axis=1)  # [B, D]
    if w.proj is not None:
        b.nodes.append(helper.make_node("MatMul", [last, b.init("proj.weight_t", np.ascontiguousarray(w.proj.T))],
                                        ["logits"], name="n_logits"))
    elif tied_logits == "gemm":
        b.nodes.append(helper.make_node("Gemm", [last, emb], ["logits"], name="n_logits", transB=1))
    elif tied_logits == "matmul":
        b.nodes.append(helper.make_node(
            "MatMul", [last, b.init("token_embedding_t", np.ascontiguousarray(w.tok_emb.T))], ["logits"],
            name="n_logits"))
    else:
        raise ValueError(f"tied_logits={tied_logits!r}")
    if not align_parts:
        raise ValueError("the model config lists no alignment heads")
    # The pieces come layer by layer; reorder to the config's order if that differs.
    built = [(l, h) for l in sorted(heads_by_layer) for h in heads_by_layer[l]]
    order = [built.index((l, h)) for l, h in alignment_heads]
    if order == list(range(len(order))):
        b.nodes.append(helper.make_node("Concat", align_parts, ["alignment"], name="n_alignment", axis=1))
    else:
        cat = b.op("Concat", align_parts, hint="align_cat", axis=1)
        b.nodes.append(helper.make_node("Gather", [cat, b.i64(order)], ["alignment"], name="n_alignment", axis=1))

    H, A = n_head, w.n_audio_ctx
    inputs = [_vi("tokens", TensorProto.INT64, ["B", "T"]), _vi("cache_index", TensorProto.INT64, ["B"])]
    outputs = [_vi("logits", TensorProto.FLOAT, ["B", w.n_vocab])]
    for i in range(w.n_text_layer):
        inputs += [_vi(f"past_k{i}", TensorProto.FLOAT, ["Bp", H, dh, "P"]),
                   _vi(f"past_v{i}", TensorProto.FLOAT, ["Bp", H, "P", dh])]
    for i in range(w.n_text_layer):
        inputs += [_vi(f"cross_k{i}", TensorProto.FLOAT, ["Ba", H, dh, A]),
                   _vi(f"cross_v{i}", TensorProto.FLOAT, ["Ba", H, A, dh])]
    for i in range(w.n_text_layer):
        outputs += [_vi(f"present_k{i}", TensorProto.FLOAT, ["B", H, dh, "P_plus_T"]),
                    _vi(f"present_v{i}", TensorProto.FLOAT, ["B", H, "P_plus_T", dh])]
    outputs.append(_vi("alignment", TensorProto.FLOAT, ["B", len(alignment_heads), "T", A]))
    return b.model(inputs, outputs, "whisper_decoder",
                   "Whisper decoder step: tokens + self-attention cache + cross K/V -> last logits")


def cross_attention(b: _Builder, q: str, i: int, heads: list[int], n_head: int, d: int, n_audio: int,
                    ba: str, t1: str):
    """Cross-attention of layer i: q [B, T, D] (pre-scaled) over cross_k<i> [Ba, H, dh, A] and
    cross_v<i> [Ba, H, A, dh], where B is a multiple of Ba (Ba = 1: all B beams share one audio).

    The B / Ba rows that share an audio go into one matrix product per head, ([B/Ba * T, dh] x
    [dh, A]), so K and V are read once per step, not once per beam. Returns (out [B, T, D],
    the weights of `heads` as [B, len(heads), T, A], or None without heads).
    """
    dh = d // n_head
    shape = lambda *parts: b.op("Concat", [p if isinstance(p, str) else b.i64(p) for p in parts], axis=0)
    qh = b.op("Reshape", [q, shape(ba, [-1], t1, [n_head, dh])])  # [Ba, B/Ba, T, H, dh]
    qh = b.op("Transpose", [qh], perm=[0, 3, 1, 2, 4])  # [Ba, H, B/Ba, T, dh]
    qh = b.op("Reshape", [qh, shape(ba, [n_head, -1, dh])])  # [Ba, H, B/Ba*T, dh]
    s = b.op("MatMul", [qh, f"cross_k{i}"], hint="scores")
    w = b.op("Softmax", [s], hint="attn_w", axis=-1)  # [Ba, H, B/Ba*T, A]
    o = b.op("MatMul", [w, f"cross_v{i}"], hint="attn_o")  # [Ba, H, B/Ba*T, dh]
    o = b.op("Reshape", [o, shape(ba, [n_head, -1], t1, [dh])])  # [Ba, H, B/Ba, T, dh]
    o = b.op("Transpose", [o], perm=[0, 2, 3, 1, 4])  # [Ba, B/Ba, T, H, dh]
    out = b.op("Reshape", [o, shape([-1], t1, [d])])  # [B, T, D]
    if not heads:
        return out, None
    a = b.op("Gather", [w, b.i64(heads)], hint="align", axis=1)  # [Ba, h, B/Ba*T, A]
    a = b.op("Reshape", [a, shape(ba, [len(heads), -1], t1, [n_audio])])
    a = b.op("Transpose", [a], perm=[0, 2, 1, 3, 4])  # [Ba, B/Ba, h, T, A]
    return out, b.op("Reshape", [a, shape([-1, len(heads)], t1, [n_audio])])


# ----------------------------------------------------------------------------- meta


SPECIAL_TOKENS = {
    "eot": "<|endoftext|>",
    "sot": "<|startoftranscript|>",
    "translate": "<|translate|>",
    "transcribe": "<|transcribe|>",
    "sot_lm": "<|startoflm|>",
    "sot_prev": "<|startofprev|>",
    "no_speech": ("<|nospeech|>", "<|nocaptions|>"),
    "no_timestamps": "<|notimestamps|>",
    "timestamp_begin": "<|0.00|>",
}


def read_vocabulary(text: str, n_vocab: int) -> list[str]:
    """vocabulary.txt: one token per line in id order (a token may be empty, e.g. id 50256 of base)."""
    lines = text.split("\n")
    if len(lines) == n_vocab + 1 and lines[-1] == "":
        lines = lines[:-1]
    if len(lines) != n_vocab:
        raise ValueError(f"vocabulary.txt has {len(lines)} tokens, the model has n_vocab={n_vocab}")
    return lines


def read_merges(tokenizer_json: dict) -> list[str]:
    merges = tokenizer_json["model"]["merges"]
    out = []
    for m in merges:
        pair = m.split(" ") if isinstance(m, str) else list(m)
        if len(pair) != 2 or any("\n" in s or " " in s for s in pair):
            raise ValueError(f"unexpected merge entry {m!r}")
        out.append(f"{pair[0]} {pair[1]}")
    return out


def make_config(name: str, w: Whisper, vocab: list[str], ct2_config: dict) -> dict:
    ids = {tok: i for i, tok in enumerate(vocab) if tok.startswith("<|")}
    tokens = {}
    for key, spelled in SPECIAL_TOKENS.items():
        for s in (spelled if isinstance(spelled, tuple) else (spelled,)):
            if s in ids:
                tokens[key] = ids[s]
                break
        else:
            raise ValueError(f"vocabulary has no {spelled} token")
    multilingual = w.n_vocab >= 51865
    languages = []
    if multilingual:
        for i in ct2_config.get("lang_ids") or range(tokens["sot"] + 1, tokens["translate"]):
            tok = vocab[i]
            if not (tok.startswith("<|") and tok.endswith("|>")):
                raise ValueError(f"language id {i} is {tok!r}, not a <|xx|> token")
            languages.append([tok[2:-2], i])
    heads = ct2_config.get("alignment_heads")
    if not heads:  # Whisper's default: every head of the second half of the decoder layers
        heads = [[l, h] for l in range(w.n_text_layer // 2, w.n_text_layer) for h in range(w.n_text_head)]
    return {
        "name": name,
        "multilingual": multilingual,
        "dims": {
            "n_mels": w.n_mels, "n_audio_ctx": w.n_audio_ctx, "n_audio_state": w.n_audio_state,
            "n_audio_layer": w.n_audio_layer, "n_audio_head": w.n_audio_head,
            "n_text_ctx": w.n_text_ctx, "n_text_state": w.n_text_state, "n_text_layer": w.n_text_layer,
            "n_text_head": w.n_text_head, "n_vocab": w.n_vocab,
        },
        "tokens": tokens,
        "languages": languages,
        "suppress_ids": list(ct2_config.get("suppress_ids", [])),
        "suppress_ids_begin": list(ct2_config.get("suppress_ids_begin", [220, tokens["eot"]])),
        "alignment_heads": [list(map(int, h)) for h in heads],
    }


def build_meta(config: dict, vocab: list[str], merges: list[str]) -> onnx.ModelProto:
    b = _Builder()
    blobs = {
        "config": json.dumps(config, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        "vocab": "\n".join(vocab).encode("utf-8"),
        "merges": "\n".join(merges).encode("utf-8"),
    }
    outputs = []
    for name, data in blobs.items():
        arr = np.frombuffer(data, dtype=np.uint8)
        b.nodes.append(helper.make_node("Constant", [], [name], name="n_" + name,
                                        value=numpy_helper.from_array(arr, name + "_value")))
        outputs.append(_vi(name, TensorProto.UINT8, [len(arr)]))
    return b.model([], outputs, "whisper_meta", "Whisper model constants: config JSON, vocabulary, BPE merges")
