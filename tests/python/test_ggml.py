"""bench/ggml.py kept honest: the whisper.cpp file it writes from CTranslate2 weights is read back
tensor by tensor against the CTranslate2 model, and whisper.cpp itself (pywhispercpp, through the
bench's own worker bench/peers.py) transcribes jfk.wav with it, in f16 and in q8_0.

Uses tiny.en's CTranslate2 files, which `make test` downloads ($WHISPER_CACHE/ct2/tiny.en), and
tests/fixtures/gen/jfk.wav (`make fixtures`). Missing pieces fail under CI=true and skip otherwise.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import ggml  # noqa: E402
from models import ct2, sources  # noqa: E402

CT2 = sources.cache_dir() / "ct2" / "tiny.en"
JFK = ROOT / "tests" / "fixtures" / "gen" / "jfk.wav"
MEL_REFERENCE = ROOT / "src" / "testdata" / "mel_reference.json"
SPOKEN = ("And so my fellow Americans ask not what your country can do for you "
          "ask what you can do for your country")


# q8_0's error bound in steps d = max|x| / 127: half a step from rounding, plus up to 127 x the
# relative error of d stored as f16 (2^-11)
HALF_STEP = 0.5 + 127 * 2.0**-11


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


def need(path: Path, how: str):
    if not path.exists():
        why = f"{path} is missing ({how})"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def model():
    need(CT2 / "model.bin", "make models MODELS=tiny.en")
    return ct2.read(CT2 / "model.bin")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    need(CT2 / "model.bin", "make models MODELS=tiny.en")
    out = tmp_path_factory.mktemp("ggml")
    return {t: ggml.convert(CT2, out / f"tiny.en-{t}.bin", t) for t in ("f16", "q8_0")}


# ---------------------------------------------------------------- no model needed

def test_mel_filterbank_matches_faster_whisper_reference():
    """The 80- and 128-mel Slaney filterbanks against faster-whisper's (src/testdata/mel_reference.json,
    which lists every non-zero weight)."""
    for f in json.loads(MEL_REFERENCE.read_text())["filters"]:
        got = ggml.mel_filters(f["n_mels"])
        assert got.shape == (f["n_mels"], 201)
        want = np.zeros_like(got)
        want[f["mel"], f["bin"]] = f["value"]
        assert np.count_nonzero(got) == len(f["value"])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_q8_0_rounds_and_scales_like_ggml():
    x = np.zeros((2, 32), np.float32)
    x[0, :4] = [127.0, -63.5, 0.5, -0.49]  # d = 1: -63.5 rounds away from zero, 0.5 to 1, -0.49 to 0
    x[0, 4] = -127.0
    # x[1] is all zeros: d = 0 and every quant 0 (no division by zero)
    b = ggml.quantize_q8_0(x)
    assert b.dtype.itemsize == 34 and len(b) == 2
    assert b["d"][0] == np.float16(1.0) and b["d"][1] == 0
    assert list(b["qs"][0, :5]) == [127, -64, 1, 0, -127]
    assert not b["qs"][1].any()
    rng = np.random.default_rng(0)
    y = rng.standard_normal((8, 64)).astype(np.float32)
    blocks = ggml.quantize_q8_0(y)
    d = np.repeat(np.abs(y).reshape(-1, 32).max(axis=1) / 127, 32)
    err = np.abs(ggml.dequantize_q8_0(blocks) - y.ravel())
    assert np.all(err <= d * HALF_STEP)
    assert err.max() > d.max() * 0.3  # it does quantize


def test_byte_level_tokens_become_raw_bytes():
    vocab = ["!", "Ġthe", "ĠÃ©", "Ċ", "", "<|endoftext|>", "<|startoftranscript|>"]
    assert ggml.text_tokens(vocab) == [b"!", b" the", " \u00e9".encode(), b"\n", b""]


# ---------------------------------------------------------------- tiny.en converted

def expected_names(hp: dict) -> set[str]:
    names = {"encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight",
             "encoder.conv2.bias", "encoder.ln_post.weight", "encoder.ln_post.bias", "decoder.positional_embedding",
             "decoder.token_embedding.weight", "decoder.ln.weight", "decoder.ln.bias"}
    attn = ["query.weight", "query.bias", "key.weight", "value.weight", "value.bias", "out.weight", "out.bias"]
    block = ["mlp_ln.weight", "mlp_ln.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias",
             "attn_ln.weight", "attn_ln.bias", *("attn." + a for a in attn)]
    for i in range(hp["n_audio_layer"]):
        names |= {f"encoder.blocks.{i}.{n}" for n in block}
    for i in range(hp["n_text_layer"]):
        names |= {f"decoder.blocks.{i}.{n}" for n in block}
        names |= {f"decoder.blocks.{i}.cross_attn_ln.{n}" for n in ("weight", "bias")}
        names |= {f"decoder.blocks.{i}.cross_attn.{a}" for a in attn}
    return names


def test_file_layout(files, model):
    f16 = ggml.read(files["f16"]["path"])
    hp = f16["hparams"]
    assert hp == {"n_vocab": 51864, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
                  "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4, "n_mels": 80,
                  "ftype": 1}
    names = [t["name"] for t in f16["tensors"]]
    # whisper.cpp creates 15 tensors per encoder block, 24 per decoder block and 11 others, and
    # refuses a file that lacks one ("not all tensors loaded")
    assert len(names) == len(set(names)) == 11 + 15 * 4 + 24 * 4
    assert set(names) == expected_names(hp)
    np.testing.assert_array_equal(f16["filters"], ggml.mel_filters(80))
    # English-only: the text tokens are ids 0 .. 50255, <|endoftext|> is 50256
    assert len(f16["tokens"]) == 50256
    assert f16["tokens"][0] == b"!" and f16["tokens"][262] == b" the"

    by = {t["name"]: t for t in f16["tensors"]}
    assert by["encoder.conv1.weight"]["ne"] == [3, 80, 384] and by["encoder.conv1.weight"]["type"] == "f16"
    assert by["encoder.conv1.bias"]["ne"] == [1, 384] and by["encoder.conv1.bias"]["type"] == "f32"
    assert by["encoder.positional_embedding"]["ne"] == [384, 1500] and by["encoder.positional_embedding"]["type"] == "f32"
    assert by["decoder.token_embedding.weight"]["ne"] == [384, 51864]
    assert by["decoder.blocks.0.mlp.0.weight"]["ne"] == [384, 1536]
    for t in f16["tensors"]:
        assert t["type"] == ("f32" if len(t["ne"]) == 1 or t["name"].endswith(("positional_embedding", "conv1.bias",
                                                                                "conv2.bias")) else "f16"), t

    # The split of CTranslate2's fused projections, value by value.
    d = 384
    def data(name):
        return ggml.tensor_data(files["f16"]["path"], by[name])
    qkv = model.f32("encoder/layer_1/self_attention/linear_0/weight")
    for part, rows in (("query", slice(0, d)), ("key", slice(d, 2 * d)), ("value", slice(2 * d, 3 * d))):
        np.testing.assert_allclose(data(f"encoder.blocks.1.attn.{part}.weight"), qkv[rows], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(data("encoder.blocks.1.attn.value.bias"),
                                  model.f32("encoder/layer_1/self_attention/linear_0/bias")[2 * d:])
    kv = model.f32("decoder/layer_2/attention/linear_1/weight")
    np.testing.assert_allclose(data("decoder.blocks.2.cross_attn.key.weight"), kv[:d], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(data("decoder.blocks.2.cross_attn.value.weight"), kv[d:], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(data("decoder.blocks.2.cross_attn.value.bias"),
                                  model.f32("decoder/layer_2/attention/linear_1/bias")[d:])
    np.testing.assert_array_equal(data("decoder.positional_embedding"), model.f32("decoder/position_encodings/encodings"))
    np.testing.assert_array_equal(data("encoder.conv2.bias"), model.f32("encoder/conv2/bias").reshape(-1, 1))

    q8 = ggml.read(files["q8_0"]["path"])
    assert q8["hparams"]["ftype"] == 2007  # MOSTLY_Q8_0 + 1000 x quantization version 2
    assert [t["name"] for t in q8["tensors"]] == names
    for t in q8["tensors"]:
        quantized = len(t["ne"]) == 2 and t["name"] not in ggml.NEVER_QUANTIZED
        assert t["type"] == ("q8_0" if quantized else by[t["name"]]["type"]), t
    # q8_0 of the f16 values: within half a quantization step of them
    w16 = data("decoder.token_embedding.weight")
    w8 = ggml.tensor_data(files["q8_0"]["path"], {t["name"]: t for t in q8["tensors"]}["decoder.token_embedding.weight"])
    step = np.abs(w16.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(w8 - w16).reshape(-1, 32) <= step * HALF_STEP)
    assert files["q8_0"]["bytes"] < 0.6 * files["f16"]["bytes"]


@pytest.mark.parametrize("ftype", ["f16", "q8_0"])
def test_whisper_cpp_transcribes_jfk(files, ftype):
    """whisper.cpp (pywhispercpp's bundled 1.8.5) loads the file and says the words — through the
    worker `make bench` uses, greedy, 2 threads."""
    need(JFK, "make fixtures")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "peers.py"), "whisper.cpp", "--model", files[ftype]["path"],
         "--beam", "1", "--threads", "2"],
        input=json.dumps({"clip": str(JFK)}) + "\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ready, answer = [json.loads(line) for line in proc.stdout.splitlines()]
    assert ready["ready"] is True
    assert words(answer["text"]) == words(SPOKEN), answer["text"]
