#!/usr/bin/env python3
"""CTranslate2 Whisper weights (`model.bin`) -> a whisper.cpp ggml model file, with numpy only.

The bench runs whisper.cpp (PyPI pywhispercpp, bundling whisper.cpp 1.8.5) on the very weights
our converter (models/) turns into ONNX, so the two differ only in their engines. This writes
the legacy ggml file that whisper.cpp's `whisper_model_load` reads (src/whisper.cpp @ v1.8.5),
all little-endian:

    u32  magic 0x67676d6c ("ggml")
    i32  n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
         n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
         (ftype: 1 = mostly f16; q8_0 = 7 + 1000 x GGML_QNT_VERSION 2 = 2007)
    i32  n_mel, n_fft (201 = 400 / 2 + 1), then f32 [n_mel][n_fft] mel filterbank
    i32  n_tokens, then per token: u32 byte length, raw bytes. Only the text tokens (ids below
         <|endoftext|>: 0-50256 for multilingual models, whose id 50256 is empty); the loader
         names the special tokens up to n_vocab itself
    per tensor: i32 n_dims, i32 name length, i32 type (0 f32, 1 f16, 8 q8_0),
         i32 ne[n_dims] (ggml order: ne[0] is the fastest-moving axis, i.e. numpy's shape
         reversed), the name, the data

The loader checks each tensor's element count, shape and byte size against the tensor it
creates (so the types below are not a choice): positional embeddings, conv biases (as [n, 1])
and every 1-D tensor are f32; conv weights (3-D) are f16 in both variants; 2-D matmul weights,
the token embedding included, are f16 or q8_0.

Mapping from CTranslate2's WhisperSpec (no transposes: both store Linear weights [out, in]):
- `*/self_attention/linear_0` is the fused [Q; K; V] projection: rows split in that order; the
  K bias is dropped (whisper.cpp has no key bias; CTranslate2 stores zeros, checked);
- the decoder's cross attention: `attention/linear_0` = query, `linear_1` = fused [K; V] of the
  encoder output (K first, no K bias), `linear_2` = out;
- `linear_1` of self attention = out; `ffn/linear_0`, `ffn/linear_1` = mlp.0, mlp.2;
- positional embeddings as stored (encoder 1500 x D, decoder 448 x D);
- `decoder/embeddings/weight` is the token embedding, and tied: whisper.cpp reuses it as the
  output projection (checked: CTranslate2's `decoder/projection/weight` is an alias of it or
  equal to it). CTranslate2 does not pre-scale the query, nor does whisper.cpp's file.

q8_0 (ggml's `quantize_row_q8_0_ref`): blocks of 32 consecutive values along ne[0], each an f16
scale d = max|x| / 127 and 32 int8 round(x / d) (rounding half away from zero). Which tensors:
what whisper.cpp's `quantize` tool does to an f16 file: every 2-D tensor except the positional
embeddings and conv biases, starting from the f16-rounded values — so `q8_0` here is the file
`quantize ggml-f16.bin out.bin q8_0` would write from our f16 file.

    .venv/bin/python bench/ggml.py ~/.cache/whisper-edge/ct2/base /tmp/ggml-base-f16.bin
    .venv/bin/python bench/ggml.py ~/.cache/whisper-edge/ct2/base /tmp/ggml-base-q8_0.bin --type q8_0
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from models import ct2  # noqa: E402  (the project's model.bin reader)

MAGIC = 0x67676D6C  # "ggml"
GGML_QNT_VERSION, GGML_QNT_VERSION_FACTOR = 2, 1000
TYPE_F32, TYPE_F16, TYPE_Q8_0 = 0, 1, 8  # enum ggml_type
TYPE_NAMES = {TYPE_F32: "f32", TYPE_F16: "f16", TYPE_Q8_0: "q8_0"}
FTYPES = {"f16": 1, "q8_0": 7}  # enum ggml_ftype: MOSTLY_F16, MOSTLY_Q8_0
QK8_0 = 32  # values per q8_0 block
Q8_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "i1", (QK8_0,))])  # 34 bytes, as block_q8_0

SAMPLE_RATE, N_FFT = 16000, 400  # Whisper's STFT: 25 ms windows at 16 kHz -> 201 bins
# Tensors whisper.cpp's quantize tool never quantizes (examples/quantize/quantize.cpp `to_skip`).
NEVER_QUANTIZED = {"encoder.conv1.bias", "encoder.conv2.bias",
                   "encoder.positional_embedding", "decoder.positional_embedding"}


# ---------------------------------------------------------------- mel filterbank

def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3.0)
    logstep = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3.0))


def mel_filters(n_mels: int = 80, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """[n_mels, n_fft/2 + 1] f32: triangular filters between n_mels + 2 points equally spaced on
    the Slaney mel scale from 0 Hz to Nyquist, each scaled by 2 / its width in Hz ("slaney" area
    normalisation) — the filterbank Whisper ships (librosa's mel(sr=16000, n_fft=400))."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


# ---------------------------------------------------------------- vocabulary

def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE spells each byte as one printable character: bytes that are
    printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') as themselves, the other 68 as U+0100 on,
    in byte order. Returns character -> byte."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    out = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            out[chr(0x100 + extra)] = b
            extra += 1
    return out


def text_tokens(vocabulary: list[str]) -> list[bytes]:
    """The raw bytes of every token below <|endoftext|> (vocabulary.txt lists tokens in id order,
    in byte-level form)."""
    try:
        eot = vocabulary.index("<|endoftext|>")
    except ValueError:
        raise ValueError("vocabulary has no <|endoftext|> token") from None
    alphabet = _byte_level_alphabet()
    out = []
    for i, tok in enumerate(vocabulary[:eot]):
        try:
            out.append(bytes(alphabet[c] for c in tok))
        except KeyError as e:
            raise ValueError(f"token {i} {tok!r} has a character outside the byte-level alphabet: {e}") from None
    return out


def read_vocabulary(ct2_dir: Path, n_vocab: int) -> list[str]:
    lines = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    if len(lines) == n_vocab + 1 and lines[-1] == "":
        lines.pop()
    if len(lines) != n_vocab:
        raise ValueError(f"vocabulary.txt has {len(lines)} tokens, the model {n_vocab}")
    return lines


# ---------------------------------------------------------------- tensors

def _scalar(m: ct2.Ct2Model, name: str, default=None):
    return m.raw(name).item() if name in m else default


def _count_layers(m: ct2.Ct2Model, side: str) -> int:
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in m:
        n += 1
    return n


def hparams(m: ct2.Ct2Model) -> dict:
    d_audio, n_mels, _ = m.raw("encoder/conv1/weight").shape
    n_vocab, d_text = m.raw("decoder/embeddings/weight").shape
    return {
        "n_vocab": n_vocab,
        "n_audio_ctx": m.raw("encoder/position_encodings/encodings").shape[0],
        "n_audio_state": d_audio,
        "n_audio_head": int(_scalar(m, "encoder/num_heads")),
        "n_audio_layer": _count_layers(m, "encoder"),
        "n_text_ctx": m.raw("decoder/position_encodings/encodings").shape[0],
        "n_text_state": d_text,
        "n_text_head": int(_scalar(m, "decoder/num_heads")),
        "n_text_layer": _count_layers(m, "decoder"),
        "n_mels": n_mels,
    }


def _check(m: ct2.Ct2Model, hp: dict) -> None:
    """What the mapping assumes; a model that differs would load in whisper.cpp but be wrong."""
    if m.spec != "WhisperSpec":
        raise ValueError(f"model.bin holds a {m.spec}, not a WhisperSpec")
    for name, want in {"decoder/pre_norm": 1, "decoder/scale_embeddings": 0, "decoder/alibi": 0}.items():
        got = _scalar(m, name, want)
        if got != want:
            raise ValueError(f"unsupported model: {name} = {got}, expected {want}")
    if hp["n_audio_state"] != hp["n_text_state"]:
        raise ValueError("whisper.cpp needs n_audio_state == n_text_state")
    d = hp["n_text_state"]
    for side in ("encoder", "decoder"):
        for i in range(hp[f"n_{'audio' if side == 'encoder' else 'text'}_layer"]):
            k_bias = m.f32(f"{side}/layer_{i}/self_attention/linear_0/bias")[d:2 * d]
            if np.any(k_bias != 0):
                raise ValueError(f"{side} layer {i}: self-attention K bias is not zero (whisper.cpp has none)")
    for i in range(hp["n_text_layer"]):
        if np.any(m.f32(f"decoder/layer_{i}/attention/linear_1/bias")[:d] != 0):
            raise ValueError(f"decoder layer {i}: cross-attention K bias is not zero (whisper.cpp has none)")
    if "decoder/projection/weight" in m:
        if not np.array_equal(m.raw("decoder/projection/weight"), m.raw("decoder/embeddings/weight")):
            raise ValueError("output projection differs from the token embedding (whisper.cpp ties them)")
    if "decoder/projection/bias" in m and np.any(m.f32("decoder/projection/bias") != 0):
        raise ValueError("output projection has a bias (whisper.cpp has none)")


def tensors(m: ct2.Ct2Model, hp: dict):
    """(whisper.cpp name, f32 array in numpy order) for every tensor whisper.cpp loads, in the
    order of Whisper's state dict. A generator, so only one tensor is widened at a time."""
    d = hp["n_text_state"]

    def norm(prefix, name):
        yield name + ".weight", m.f32(prefix + "/gamma")
        yield name + ".bias", m.f32(prefix + "/beta")

    def linear(prefix, name, rows=slice(None), bias=True):
        yield name + ".weight", np.ascontiguousarray(m.f32(prefix + "/weight")[rows])
        if bias:
            yield name + ".bias", np.ascontiguousarray(m.f32(prefix + "/bias")[rows])

    def self_attention(p, name):
        qkv = p + "/self_attention/linear_0"
        yield from linear(qkv, name + ".query", slice(0, d))
        yield from linear(qkv, name + ".key", slice(d, 2 * d), bias=False)
        yield from linear(qkv, name + ".value", slice(2 * d, 3 * d))
        yield from linear(p + "/self_attention/linear_1", name + ".out")

    def mlp(p, name):
        yield from linear(p + "/ffn/linear_0", name + ".mlp.0")
        yield from linear(p + "/ffn/linear_1", name + ".mlp.2")
        yield from norm(p + "/ffn/layer_norm", name + ".mlp_ln")

    yield "encoder.positional_embedding", m.f32("encoder/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        yield f"encoder.{conv}.weight", m.f32(f"encoder/{conv}/weight")  # [out, in, 3]
        yield f"encoder.{conv}.bias", m.f32(f"encoder/{conv}/bias").reshape(-1, 1)  # ne [1, out]
    for i in range(hp["n_audio_layer"]):
        p, n = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from self_attention(p, n + ".attn")
        yield from norm(p + "/self_attention/layer_norm", n + ".attn_ln")
        yield from mlp(p, n)
    yield from norm("encoder/layer_norm", "encoder.ln_post")

    yield "decoder.positional_embedding", m.f32("decoder/position_encodings/encodings")
    yield "decoder.token_embedding.weight", m.f32("decoder/embeddings/weight")
    for i in range(hp["n_text_layer"]):
        p, n = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from self_attention(p, n + ".attn")
        yield from norm(p + "/self_attention/layer_norm", n + ".attn_ln")
        yield from linear(p + "/attention/linear_0", n + ".cross_attn.query")
        yield from linear(p + "/attention/linear_1", n + ".cross_attn.key", slice(0, d), bias=False)
        yield from linear(p + "/attention/linear_1", n + ".cross_attn.value", slice(d, 2 * d))
        yield from linear(p + "/attention/linear_2", n + ".cross_attn.out")
        yield from norm(p + "/attention/layer_norm", n + ".cross_attn_ln")
        yield from mlp(p, n)
    yield from norm("decoder/layer_norm", "decoder.ln")


def tensor_type(name: str, ndim: int, ftype: str) -> int:
    if ndim == 1 or name in NEVER_QUANTIZED:
        return TYPE_F32
    if ftype == "q8_0" and ndim == 2:
        return TYPE_Q8_0
    return TYPE_F16


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """ggml's q8_0 of `x` (rows of a multiple of 32 values): one Q8_0_BLOCK per 32 values."""
    if x.shape[-1] % QK8_0:
        raise ValueError(f"q8_0 needs rows of a multiple of {QK8_0} values, got {x.shape}")
    v = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK8_0)
    d = np.abs(v).max(axis=1) / np.float32(127)  # f32, as the C code
    inv = np.zeros_like(d)
    np.divide(np.float32(1), d, out=inv, where=d != 0)
    scaled = (v * inv[:, None]).astype(np.float64)  # the f32 product, widened so +0.5 is exact
    q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # roundf: half away from zero
    out = np.empty(v.shape[0], dtype=Q8_0_BLOCK)
    out["d"] = d.astype(np.float16)
    out["qs"] = q.astype(np.int8)
    return out


def dequantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    return (blocks["qs"].astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).ravel()


def encode_tensor(name: str, a: np.ndarray, ftype: str) -> tuple[int, bytes]:
    t = tensor_type(name, a.ndim, ftype)
    if t == TYPE_F32:
        return t, a.astype("<f4").tobytes()
    half = a.astype("<f2")
    if t == TYPE_F16:
        return t, half.tobytes()
    return t, quantize_q8_0(half.astype(np.float32)).tobytes()


# ---------------------------------------------------------------- writing and reading back

def convert(ct2_dir: Path, out: Path, ftype: str = "f16") -> dict:
    """Writes `out` (atomically) from `ct2_dir` (model.bin + vocabulary.txt); returns a summary."""
    if ftype not in FTYPES:
        raise ValueError(f"type {ftype!r}: choose from {sorted(FTYPES)}")
    m = ct2.read(ct2_dir / "model.bin")
    hp = hparams(m)
    _check(m, hp)
    vocab = text_tokens(read_vocabulary(ct2_dir, hp["n_vocab"]))
    filters = mel_filters(hp["n_mels"])
    file_ftype = FTYPES[ftype] + (GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR if ftype != "f16" else 0)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    counts = {}
    n = 0
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<I", MAGIC))
            f.write(struct.pack("<11i", *hp.values(), file_ftype))
            f.write(struct.pack("<2i", *filters.shape))
            f.write(filters.astype("<f4").tobytes())
            f.write(struct.pack("<i", len(vocab)))
            for tok in vocab:
                f.write(struct.pack("<I", len(tok)) + tok)
            for name, a in tensors(m, hp):
                t, data = encode_tensor(name, a, ftype)
                raw = name.encode()
                f.write(struct.pack("<3i", a.ndim, len(raw), t))
                f.write(struct.pack(f"<{a.ndim}i", *reversed(a.shape)))
                f.write(raw)
                f.write(data)
                counts[TYPE_NAMES[t]] = counts.get(TYPE_NAMES[t], 0) + 1
                n += 1
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(out), "type": ftype, "bytes": out.stat().st_size, "tensors": n,
            "tensor_types": counts, "hparams": hp, "text_tokens": len(vocab)}


def read(path: Path) -> dict:
    """Parses a ggml Whisper file back (header, filters, tokens, and each tensor's name, type,
    ggml shape and data offset) without loading the data: for tests and inspection."""
    buf = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return vals

    (magic,) = take("<I")
    if magic != MAGIC:
        raise ValueError(f"{path}: bad magic {magic:#x}")
    keys = ["n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx",
            "n_text_state", "n_text_head", "n_text_layer", "n_mels", "ftype"]
    hp = dict(zip(keys, take("<11i")))
    n_mel, n_fft = take("<2i")
    filters = np.frombuffer(buf, "<f4", n_mel * n_fft, pos).reshape(n_mel, n_fft)
    pos += 4 * n_mel * n_fft
    (n_tok,) = take("<i")
    tokens = []
    for _ in range(n_tok):
        (ln,) = take("<I")
        tokens.append(bytes(buf[pos:pos + ln]))
        pos += ln
    out = []
    while pos < len(buf):
        n_dims, ln, t = take("<3i")
        ne = take(f"<{n_dims}i")
        name = bytes(buf[pos:pos + ln]).decode()
        pos += ln
        count = int(np.prod(ne))
        size = {TYPE_F32: 4 * count, TYPE_F16: 2 * count, TYPE_Q8_0: count // QK8_0 * Q8_0_BLOCK.itemsize}[t]
        out.append({"name": name, "type": TYPE_NAMES[t], "ne": list(ne), "offset": pos, "bytes": size})
        pos += size
    if pos != len(buf):
        raise ValueError(f"{path}: the last tensor runs past the end of the file")
    return {"hparams": hp, "filters": filters, "tokens": tokens, "tensors": out}


def tensor_data(path: Path, info: dict) -> np.ndarray:
    """One tensor of a `read` listing as f32, in numpy order (q8_0 dequantized)."""
    with open(path, "rb") as f:
        f.seek(info["offset"])
        raw = f.read(info["bytes"])
    if info["type"] == "q8_0":
        a = dequantize_q8_0(np.frombuffer(raw, Q8_0_BLOCK))
    else:
        a = np.frombuffer(raw, "<f4" if info["type"] == "f32" else "<f2").astype(np.float32)
    return a.reshape(list(reversed(info["ne"])))


# ---------------------------------------------------------------- cached conversion

def cache_dir() -> Path:
    return Path(os.environ.get("WHISPER_CACHE") or Path.home() / ".cache/whisper-edge") / "ggml"


def ensure(ct2_dir: Path, ftype: str, out_dir: Path | None = None, log=print) -> Path:
    """`<out_dir>/<model>-<ftype>.bin`, converted again only when model.bin or this file changed
    (a stamp beside it records both)."""
    ct2_dir = Path(ct2_dir)
    out = Path(out_dir or cache_dir()) / f"{ct2_dir.name}-{ftype}.bin"
    st = (ct2_dir / "model.bin").stat()
    key = {"converter": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
           "model_bin": [st.st_size, st.st_mtime_ns], "type": ftype}
    stamp = out.with_suffix(".json")
    if out.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()).get("key") == key:
                return out
        except ValueError:
            pass
    t0 = time.perf_counter()
    summary = convert(ct2_dir, out, ftype)
    summary["key"] = key
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    stamp.write_text(json.dumps(summary, indent=1) + "\n")
    log(f"ggml: wrote {out} ({summary['bytes'] / 1e6:.1f} MB, {summary['tensors']} tensors, "
        f"{summary['seconds']:.1f} s)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ct2_dir", type=Path, help="a CTranslate2 model directory (model.bin, vocabulary.txt)")
    ap.add_argument("out", type=Path, help="the ggml file to write")
    ap.add_argument("--type", choices=sorted(FTYPES), default="f16")
    args = ap.parse_args()
    s = convert(args.ct2_dir, args.out, args.type)
    print(json.dumps(s, indent=1))


if __name__ == "__main__":
    main()
